#include "fxpack/archive.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "fxpack/errors.hpp"
#include "fxpack/quote.hpp"

namespace fxpack {

namespace {

constexpr std::string_view kPickleMagic = "fxpack.pickle ";

// The first bytes of the file, and (for a bare pickle) all of it, read through one
// descriptor so that what is recognised is what is read.
class File {
 public:
  explicit File(const std::filesystem::path& path) : where_(printable(path.string()) + ": ") {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw IoError(where_ + "cannot open: " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd_, &st) != 0) throw IoError(where_ + "cannot stat: " + std::strerror(errno));
    if (S_ISDIR(st.st_mode)) throw IoError(where_ + "is a directory");
    if (!S_ISREG(st.st_mode)) throw IoError(where_ + "not a regular file");
    size_ = static_cast<std::uint64_t>(st.st_size);
  }
  ~File() { ::close(fd_); }
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  std::uint64_t size() const { return size_; }
  const std::string& where() const { return where_; }
  std::string read(std::uint64_t n) const {
    std::string out(static_cast<std::size_t>(std::min(n, size_)), '\0');
    std::size_t done = 0;
    while (done < out.size()) {
      const ssize_t got = ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(done));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) throw IoError(where_ + "cannot read: " + std::strerror(errno));
      if (got == 0) break;  // shrank since fstat: what is there is all there is
      done += static_cast<std::size_t>(got);
    }
    out.resize(done);
    return out;
  }

 private:
  std::string where_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

}  // namespace

Archive Archive::open(const std::filesystem::path& path, ImporterOptions options, std::uint64_t max_pickle_bytes) {
  Archive a;
  a.path_ = path;
  {
    const File file(path);
    const std::string head = file.read(16);
    if (head.starts_with(kPickleMagic)) {
      if (file.size() > max_pickle_bytes) {
        throw FormatError(file.where() + "pickle of " + std::to_string(file.size()) + " bytes, more than the limit of " +
                          std::to_string(max_pickle_bytes));
      }
      a.kind_ = ArchiveKind::Pickle;
      a.pickle_bytes_ = file.read(file.size());
      a.options_ = std::move(options);
      return a;
    }
    if (head.empty()) throw FormatError(file.where() + "the file is empty");
    if (!head.starts_with("PK")) {
      throw FormatError(file.where() + "not an fxpack package, torch.package archive or fxpack pickle");
    }
  }
  try {
    a.package_ = std::make_unique<PackageImporter>(path, options);
  } catch (const FormatError& e) {
    // The zip layer names the file itself; the package layer does not.
    const std::string where = printable(path.string()) + ": ";
    const std::string what = e.what();
    throw FormatError(what.starts_with(where) ? what : where + what);
  }
  a.kind_ = a.package_->format() == PackageFormat::Fxpack ? ArchiveKind::FxpackPackage : ArchiveKind::TorchPackage;
  a.options_ = std::move(options);
  return a;
}

std::string Archive::format_description() const {
  if (package_) return package_->format_description();
  try {
    const pickle::PickleHeader h = pickle::read_header(pickle_bytes_);
    return "fxpack pickle, " + std::string(pickle::format_name(h.format)) + " v" + std::to_string(h.version);
  } catch (const Error&) {
    return "fxpack pickle, ? v?";
  }
}

std::vector<std::string> Archive::pickles() const { return package_ ? package_->pickles() : std::vector<std::string>{""}; }

LoadedPickle Archive::load(std::string_view record) {
  if (package_) {
    auto [package, resource] = split_record_name(record);
    if (package.empty()) throw FormatError("record " + quote(record) + " is not inside a package folder");
    return package_->load_pickle_with_report(package, resource);
  }
  if (!record.empty()) throw FormatError("a bare pickle has no record " + quote(record));
  LoadedPickle out;
  pickle::LoadOptions options;
  options.limits = options_.limits;
  // The pickle's warnings come back in its report; the module keeps the user's hook (by value)
  // for its deferred source-hash check, which runs after this returns.
  options.on_warning = options_.on_warning;
  pickle::Loaded loaded = pickle::loads_with_report(pickle_bytes_, options);
  out.warnings = loaded.report.warnings;
  out.module = std::move(loaded.module);
  out.report = std::move(loaded.report);
  return out;
}

}  // namespace fxpack
