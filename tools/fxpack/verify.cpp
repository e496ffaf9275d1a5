// fxpack verify: every check a loader makes, and a few more, one line per problem.
#include <algorithm>
#include <iostream>
#include <sstream>

#include "cli.hpp"

namespace fxpack::cli {

namespace {

constexpr const char* kVerifyHelp = R"HELP(usage: fxpack verify ARCHIVE [--json]

Checks an archive and prints one line per problem, "ARCHIVE: WHERE: PROBLEM", or one
"ARCHIVE: ok (...)" line. Checks:
  - the zip structure (names, offsets, overlaps, sizes) and the CRC of every record;
  - the version record and the manifest (fxpack packages): every op and module kind it
    lists must be provided by this build, and it must list what the graph uses;
  - every pickled module loads (bounds, storages, node references), its graph lints, its
    targets have kernels in this build;
  - the source regenerated from the graph matches the stored hash (fxpack pickles) or the
    stored fx-generated source (torch.package archives).

options:
  --json    one JSON object: {"archive", "ok", "problems": [{"where", "message"}], ...}
  -h, --help
Exit status: 0 no problem, 1 problems found (or the archive could not be read), 2 usage error.
)HELP";

struct Problem {
  std::string where;
  std::string message;
};

std::string hex64(std::uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// Strips the "<path>: " prefix the zip reader puts on its messages.
std::string strip_path(const std::string& msg, const std::string& path) {
  std::string prefix = path + ": ";
  return msg.starts_with(prefix) ? msg.substr(prefix.size()) : msg;
}

}  // namespace

int cmd_verify(const std::vector<std::string>& argv) {
  Args args = parse_args(argv, {{"--json", false}});
  if (args.help) {
    std::cout << kVerifyHelp;
    return 0;
  }
  if (args.positional.empty()) throw UsageError("missing ARCHIVE");
  if (args.positional.size() > 1) throw UsageError("unexpected argument '" + args.positional[1] + "'");
  const std::string path = args.positional[0];
  std::vector<Problem> problems;
  std::vector<std::string> notes;
  auto problem = [&](std::string where, std::string message) {
    problems.push_back({std::move(where), std::move(message)});
  };
  std::optional<Archive> archive;
  std::size_t checked_records = 0, checked_pickles = 0;
  std::vector<std::string> corrupt;  // records whose CRC failed
  try {
    archive = open_archive(path);
  } catch (const IoError&) {
    throw;  // not a verdict on the archive: a plain error
  } catch (const Error& e) {
    problem("archive", strip_path(e.what(), path));
  }
  if (archive) {
    Archive& a = *archive;
    // CRCs of every record.
    if (a.zip) {
      for (const auto& r : a.records) {
        try {
          a.zip->verify(a.full(r));
        } catch (const Error& e) {
          problem(r, strip_path(e.what(), path));
          corrupt.push_back(r);
        }
        ++checked_records;
      }
    }
    // The manifest.
    std::map<std::string, std::set<std::string>> manifest;
    if (a.kind == ArchiveKind::FxpackPackage) {
      if (!a.manifest_error.empty()) problem(".data/manifest", a.manifest_error);
      for (const auto& m : a.manifest) {
        manifest[m.pickle].insert(m.items.begin(), m.items.end());
        if (!a.entry(m.pickle)) problem(".data/manifest", "lists pickle '" + m.pickle + "', which is not in the package");
        if (m.version != std::to_string(pickle::kFormatVersion) &&
            !(m.version.size() == 1 && m.version[0] >= '1' && m.version[0] < '0' + static_cast<int>(pickle::kFormatVersion)))
          problem(".data/manifest", "pickle '" + m.pickle + "' has format version " + m.version +
                                        "; this build reads up to " + std::to_string(pickle::kFormatVersion));
        for (const auto& item : m.items)
          if (!provides(item)) problem(".data/manifest", "needs " + item + " (for " + m.pickle + "), which this build does not provide");
      }
      if (a.manifest_error.empty())
        for (const auto& p : a.pickles)
          if (!manifest.count(p)) problem(".data/manifest", "does not list pickle '" + p + "'");
    }
    // Every pickle.
    for (const auto& record : a.pickles) {
      const std::string where = record.empty() ? "pickle" : record;
      ++checked_pickles;
      LoadedModule lm;
      try {
        lm = load_module(a, record);
      } catch (const Error& e) {
        // A pickle that fails because a record it uses is corrupt: say so in a few words.
        std::string msg = e.what(), used;
        for (const auto& c : corrupt)
          if (c != record && msg.find("'" + a.full(c) + "'") != std::string::npos) used = c;
        problem(where, used.empty() ? strip_path(msg, path) : "cannot be loaded: it uses the corrupt record " + used);
        continue;
      }
      GraphModule& gm = *lm.gm;
      bool lint_ok = true;
      try {
        gm.lint();
      } catch (const Error& e) {
        lint_ok = false;
        problem(where, e.what());
      }
      auto needs = required_items(gm);
      std::vector<std::string> missing;
      for (const auto& item : needs)
        if (!provides(item)) missing.push_back(item);
      if (a.kind == ArchiveKind::FxpackPackage && a.manifest_error.empty() && manifest.count(record)) {
        const auto& listed = manifest[record];
        for (const auto& item : needs)
          if (!listed.count(item)) problem(".data/manifest", "does not list " + item + ", which " + record + " uses");
        for (const auto& item : listed)
          if (!needs.count(item)) problem(".data/manifest", "lists " + item + ", which " + record + " does not use");
      } else {
        for (const auto& item : missing) problem(where, "needs " + item + ", which this build does not provide");
      }
      if (lint_ok && missing.empty()) {
        try {
          Plan::build(gm.graph(), gm);
        } catch (const Error& e) {
          problem(where, e.what());
        }
      }
      if (lm.report) {
        const auto& rep = *lm.report;
        if (!rep.has_source_hash) {
          notes.push_back(where + ": no stored source hash (saved without one)");
        } else if (rep.source_hash_matches && !*rep.source_hash_matches) {
          std::string msg = "regenerated source hash " + hex64(rep.rebuilt_source_hash.value_or(0)) +
                            " differs from the stored " + hex64(rep.stored_source_hash);
          msg += rep.stored_codegen_version != kCodegenVersion
                     ? " (stored by codegen version " + std::to_string(rep.stored_codegen_version) + ", this build has " +
                           std::to_string(kCodegenVersion) + ")"
                     : " (same codegen version " + std::to_string(kCodegenVersion) + ": the graph differs from what was saved)";
          problem(where, msg);
        }
        for (const auto& k : rep.unregistered_module_kinds)
          if (std::find(missing.begin(), missing.end(), "module " + k) == missing.end())
            problem(where, "uses module kind " + k + ", which this build does not provide");
      }
      if (a.kind == ArchiveKind::TorchPackage) {
        // The stored fx-generated source must end with the regenerated code.
        std::string code = python_code(gm.graph());
        bool found = false, matched = false;
        for (const auto& r : a.records) {
          if (!r.starts_with("fx-generated/") || !r.ends_with(".py")) continue;
          found = true;
          try {
            if (a.read(r).ends_with(code)) matched = true;
          } catch (const Error&) {
          }
        }
        if (!found) problem(where, "the archive has no fx-generated source");
        else if (!matched) problem(where, "the source regenerated from the graph differs from the stored fx-generated source");
      }
    }
    if (a.pickles.empty()) problem("archive", "holds no pickled module");
  }

  std::ostringstream o;
  if (args.has("--json")) {
    o << "{\n  \"archive\": " << json_str(path) << ",\n  \"ok\": " << (problems.empty() ? "true" : "false");
    if (archive) o << ",\n  \"format\": " << json_str(archive->format_description());
    o << ",\n  \"records_checked\": " << checked_records << ",\n  \"pickles_checked\": " << checked_pickles
      << ",\n  \"problems\": [";
    for (std::size_t i = 0; i < problems.size(); ++i)
      o << (i ? "," : "") << "\n    {\"where\": " << json_str(problems[i].where)
        << ", \"message\": " << json_str(problems[i].message) << "}";
    o << (problems.empty() ? "" : "\n  ") << "],\n  \"notes\": [";
    for (std::size_t i = 0; i < notes.size(); ++i) o << (i ? ", " : "") << json_str(notes[i]);
    o << "]\n}\n";
  } else {
    for (const auto& p : problems) o << path << ": " << p.where << ": " << p.message << "\n";
    for (const auto& n : notes) o << path << ": note: " << n << "\n";
    if (problems.empty())
      o << path << ": ok (" << archive->format_description()
        << (archive->zip ? "; " + std::to_string(checked_records) + " records, " + std::to_string(checked_pickles) +
                               " pickle" + (checked_pickles == 1 ? "" : "s")
                         : std::string())
        << ")\n";
  }
  std::cout << o.str();
  return problems.empty() ? 0 : 1;
}

}  // namespace fxpack::cli
