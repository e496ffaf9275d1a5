// Opening archives for the fxpack command and choosing the pickle a command works on.
#include <algorithm>

#include "cli.hpp"

namespace fxpack::cli {

Archive open_archive(const std::string& path, bool check_requirements, LoadMode mode) {
  ImporterOptions options;
  options.check_requirements = check_requirements;
  options.mode = mode;
  options.on_warning = [](const std::string&) {};  // each LoadedPickle has them
  return Archive::open(path, std::move(options));
}

std::string at_path(const Archive& a, const std::string& message) {
  return printable(a.path().string()) + ": " + message;
}

std::string select_pickle(const Archive& a, const std::vector<std::string>& positional, std::size_t first) {
  if (a.kind() == ArchiveKind::Pickle) {
    if (positional.size() > first) throw UsageError("a bare pickle has no PACKAGE RESOURCE to select");
    return "";
  }
  if (positional.size() == first + 1) throw UsageError("give both PACKAGE and RESOURCE, or neither");
  if (positional.size() > first + 2) throw UsageError("unexpected argument " + quote(positional[first + 2]));
  if (positional.size() == first + 2) {
    const std::string r = record_name(positional[first], positional[first + 1]);
    if (!a.package()->has_record(r)) {
      throw LookupError(at_path(a, "no record " + quote(r) + " (package " + quote(positional[first]) + ", resource " +
                                 quote(positional[first + 1]) + ")"));
    }
    return r;
  }
  const std::vector<std::string> pickles = a.pickles();
  if (std::find(pickles.begin(), pickles.end(), "model/model.pkl") != pickles.end()) return "model/model.pkl";
  if (pickles.size() == 1) return pickles.front();
  if (pickles.empty()) throw ValueError(at_path(a, "the archive holds no pickled module"));
  std::string list;
  for (const auto& p : pickles) list += (list.empty() ? "" : ", ") + quote(p);
  throw ValueError(at_path(a, "the archive holds several pickles (" + list + "); name one as PACKAGE RESOURCE"));
}

}  // namespace fxpack::cli
