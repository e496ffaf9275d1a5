// fxpack verify: every check a loader makes, and a few more, one line per problem.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <set>

#include "cli.hpp"
#include "json.hpp"

namespace fxpack::cli {

namespace {

constexpr const char* kVerifyHelp = R"HELP(usage: fxpack verify ARCHIVE [--json]

Checks an archive and prints one line per problem, "ARCHIVE: WHERE: PROBLEM", or one
"ARCHIVE: ok (...)" line. Checks:
  - the zip structure (names, offsets, overlaps, sizes) and the CRC of every record (read
    from the file, never through a memory mapping);
  - fxpack packages: the version record, that every storage record is 64-byte aligned, and
    the manifest: every op and module kind it lists must be provided by this build, and it
    must list what the graph uses;
  - every pickled module loads (bounds, storages, node references), its graph lints, its
    targets have kernels in this build;
  - the source regenerated from the graph matches the stored hash (fxpack pickles) or the
    stored fx-generated source (torch.package archives).

options:
  --json    one JSON object: {"archive", "ok", "problems": [{"where", "message"}], ...}
  -h, --help
Exit status: 0 no problem, 1 problems found (or the archive could not be read), 2 usage error.
)HELP";

std::string hex64(std::uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// Strips the "<path>: " prefix the zip layer puts on its messages.
std::string strip_path(const std::string& msg, const std::string& path) {
  const std::string prefix = printable(path) + ": ";
  return msg.starts_with(prefix) ? msg.substr(prefix.size()) : msg;
}

class Verifier {
 public:
  struct Problem {
    std::string where;
    std::string message;
  };

  explicit Verifier(std::string path) : path_(std::move(path)) {}

  void run() {
    try {
      archive_.emplace(open_archive(path_, false, LoadMode::Copy));
    } catch (const IoError&) {
      throw;  // not a verdict on the archive: a plain error
    } catch (const Error& e) {
      problem("archive", strip_path(e.what(), path_));
      return;
    }
    if (archive_->package()) {
      check_records();
      if (archive_->kind() == ArchiveKind::FxpackPackage) check_manifest();
    }
    const std::vector<std::string> pickles = archive_->pickles();
    for (const auto& record : pickles) check_pickle(record);
    if (pickles.empty()) problem("archive", "holds no pickled module");
  }

  std::string text() const {
    Lines out;
    for (const auto& p : problems_) out(path_ + ": " + p.where + ": " + p.message);
    for (const auto& n : notes_) out(path_ + ": note: " + n);
    if (problems_.empty()) {
      std::string counts;
      if (archive_->package()) {
        counts = "; " + std::to_string(records_checked_) + " records, " + std::to_string(pickles_checked_) + " pickle" +
                 (pickles_checked_ == 1 ? "" : "s");
      }
      out(path_ + ": ok (" + archive_->format_description() + counts + ")");
    }
    return out.text();
  }

  std::string json() const {
    Json j;
    j.begin_object().field("archive", path_).field("ok", problems_.empty());
    if (archive_) j.field("format", archive_->format_description());
    j.field("records_checked", std::uint64_t{records_checked_}).field("pickles_checked", std::uint64_t{pickles_checked_});
    j.key("problems").begin_array();
    for (const auto& p : problems_) j.begin_object().field("where", p.where).field("message", p.message).end_object();
    j.end_array().key("notes").begin_array();
    for (const auto& n : notes_) j.value(n);
    j.end_array().end_object();
    return j.text();
  }

  bool ok() const { return problems_.empty(); }

 private:
  void problem(std::string where, std::string message) { problems_.push_back({std::move(where), std::move(message)}); }

  // Every record's CRC, read from the file; fxpack's storage records must be aligned.
  void check_records() {
    const PackageImporter& p = *archive_->package();
    const bool fxpack = archive_->kind() == ArchiveKind::FxpackPackage;
    for (const auto& r : p.records()) {
      ++records_checked_;
      try {
        p.verify_record(r);
      } catch (const Error& e) {
        problem(r, strip_path(e.what(), path_));
        corrupt_.push_back(r);
        continue;
      }
      const RecordInfo info = p.record_info(r);
      if (fxpack && r.starts_with(".data/storages/") && info.data_offset % 64 != 0) {
        problem(r, "is not 64-byte aligned in the archive (data at offset " + std::to_string(info.data_offset) +
                       "): it is copied on load instead of mapped; 'fxpack convert' writes it aligned");
      }
    }
  }

  void check_manifest() {
    const PackageImporter& p = *archive_->package();
    try {
      manifest_ = p.manifest();
    } catch (const FormatError& e) {
      problem(".data/manifest", e.what());
      return;
    }
    for (const Manifest::Pickle& m : manifest_->pickles) {
      if (!p.has_record(m.record)) problem(".data/manifest", "lists pickle " + quote(m.record) + ", which is not in the package");
      if (m.format_version > pickle::kFormatVersion) {
        problem(".data/manifest", "pickle " + quote(m.record) + " has format version " + std::to_string(m.format_version) +
                                      "; this build reads up to " + std::to_string(pickle::kFormatVersion));
      }
      for (const auto& item : m.items)
        if (!provides(item)) {
          problem(".data/manifest",
                  "needs " + quote(item) + " (for " + quote(m.record) + "), which this build does not provide");
        }
    }
    for (const auto& record : archive_->pickles())
      if (!manifest_->find(record)) problem(".data/manifest", "does not list pickle " + quote(record));
  }

  // Loads, lints and plans one pickle, and compares what it needs with the manifest.
  void check_pickle(const std::string& record) {
    const std::string where = record.empty() ? "pickle" : record;
    ++pickles_checked_;
    LoadedPickle lp;
    try {
      lp = archive_->load(record);
    } catch (const Error& e) {
      // A pickle that fails because a record it uses is corrupt: say so in a few words.
      const std::string msg = e.what();
      std::string used;
      for (const auto& c : corrupt_)
        if (c != record && msg.find(quote(archive_->package()->root() + "/" + c)) != std::string::npos) used = c;
      problem(where, used.empty() ? strip_path(msg, path_) : "cannot be loaded: it uses the corrupt record " + used);
      return;
    }
    GraphModule& gm = *lp.module;
    bool lint_ok = true;
    try {
      gm.lint();
    } catch (const Error& e) {
      lint_ok = false;
      problem(where, e.what());
    }
    const std::set<std::string> needs = required_items(gm);
    std::vector<std::string> missing;
    for (const auto& item : needs)
      if (!provides(item)) missing.push_back(item);
    const Manifest::Pickle* listed = manifest_ ? manifest_->find(record) : nullptr;
    if (listed) {
      const std::set<std::string> items(listed->items.begin(), listed->items.end());
      for (const auto& item : needs)
        if (!items.count(item)) problem(".data/manifest", "does not list " + quote(item) + ", which " + quote(record) + " uses");
      for (const auto& item : items)
        if (!needs.count(item)) problem(".data/manifest", "lists " + quote(item) + ", which " + quote(record) + " does not use");
    } else {
      for (const auto& item : missing) problem(where, "needs " + quote(item) + ", which this build does not provide");
    }
    if (lint_ok && missing.empty()) {
      try {
        Plan::build(gm.graph(), gm);
      } catch (const Error& e) {
        problem(where, e.what());
      }
    }
    if (lp.report) check_report(where, *lp.report, gm, missing);
    if (archive_->kind() == ArchiveKind::TorchPackage) check_fx_source(where, gm);
  }

  // The loader leaves the hash comparison to the module's first recompile; verify makes it
  // here: the graph's content hash (pickle format 3 on), or the hash of the source
  // regenerated from it (formats 1 and 2; python_code is not a recompile).
  void check_report(const std::string& where, const pickle::LoadReport& rep, const GraphModule& gm,
                    const std::vector<std::string>& missing) {
    const bool content = rep.format_version >= 3;
    if (!rep.has_source_hash) {
      notes_.push_back(where + ": no stored " + (content ? "content" : "source") + " hash (saved without one)");
    } else if (const std::uint64_t now = content ? content_hash(gm.graph()) : source_hash(python_code(gm.graph()));
               now != rep.stored_source_hash) {
      std::string msg = std::string(content ? "graph content hash " : "regenerated source hash ") + hex64(now) +
                        " differs from the stored " + hex64(rep.stored_source_hash);
      msg += rep.stored_codegen_version != kCodegenVersion
                 ? " (stored by codegen version " + std::to_string(rep.stored_codegen_version) + ", this build has " +
                       std::to_string(kCodegenVersion) + ")"
                 : " (same codegen version " + std::to_string(kCodegenVersion) + ": the graph differs from what was saved)";
      problem(where, msg);
    }
    for (const auto& k : rep.unregistered_module_kinds)
      if (std::find(missing.begin(), missing.end(), "module " + k) == missing.end()) {
        problem(where, "uses module kind " + quote(k) + ", which this build does not provide");
      }
  }

  // The stored fx-generated source must end with the regenerated code.
  void check_fx_source(const std::string& where, const GraphModule& gm) {
    const std::string code = python_code(gm.graph());
    bool found = false, matched = false;
    for (const auto& r : archive_->package()->records()) {
      if (!r.starts_with("fx-generated/") || !r.ends_with(".py")) continue;
      found = true;
      try {
        const auto bytes = archive_->package()->read_record(r);
        matched = matched || std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()).ends_with(code);
      } catch (const Error&) {
      }
    }
    if (!found) problem(where, "the archive has no fx-generated source");
    else if (!matched) problem(where, "the source regenerated from the graph differs from the stored fx-generated source");
  }

  std::string path_;
  std::optional<Archive> archive_;
  const Manifest* manifest_ = nullptr;
  std::vector<Problem> problems_;
  std::vector<std::string> notes_;
  std::vector<std::string> corrupt_;  // records whose CRC failed
  std::size_t records_checked_ = 0, pickles_checked_ = 0;
};

}  // namespace

int cmd_verify(const std::vector<std::string>& argv) {
  Args args = parse_args(argv, {{"--json", false}});
  if (args.help) {
    std::cout << kVerifyHelp;
    return 0;
  }
  if (args.positional.empty()) throw UsageError("missing ARCHIVE");
  if (args.positional.size() > 1) throw UsageError("unexpected argument " + quote(args.positional[1]));
  Verifier v(args.positional[0]);
  v.run();
  std::cout << (args.has("--json") ? v.json() : v.text());
  return v.ok() ? 0 : 1;
}

}  // namespace fxpack::cli
