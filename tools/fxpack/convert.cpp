// fxpack convert: between the pickle formats, between packages and bare pickles, and
// between fxpack packages and torch.package archives.
#include <algorithm>
#include <filesystem>
#include <iostream>

#include "cli.hpp"

namespace fxpack::cli {

namespace {

constexpr const char* kConvertHelp = R"HELP(usage: fxpack convert IN OUT [PACKAGE RESOURCE] [--format FORMAT]

Reads a module from IN (an fxpack package, a torch.package archive or a bare fxpack pickle;
PACKAGE RESOURCE select the pickle, default model model.pkl or the only one) and writes it
to OUT (atomically: OUT appears complete or not at all) in FORMAT:
  portable-binary, json, boost-text, boost-binary, boost-xml
                 a bare fxpack pickle in that format
  fxpack         an fxpack package (weights as aligned records, manifest of the ops)
  torch          a torch.package archive that PyTorch 1.13's PackageImporter loads
  torch-2        a torch.package archive for PyTorch 2.x (checked against 2.6): its
                 module state, its generated code, its byteorder and serialization id
Without --format the format follows OUT's extension: .fxpkg fxpack, .pt torch, .json
json, .xml boost-xml, .pkl portable-binary.

Between packages, the other resources (save_text/save_binary records) are copied too; an
fxpack package converted to fxpack keeps all of its pickles unless one is selected. A
torch.package archive holds one pickle.

options:
  --format FORMAT
  -h, --help
Exit status: 0 written, 1 failed (nothing written), 2 usage error.
)HELP";

enum class Target { Pickle, Fxpack, Torch, Torch2 };

// What to write: FORMAT (--format, or OUT's extension), as a package target or a bare pickle.
struct Output {
  std::string format;
  Target target = Target::Pickle;
  pickle::PickleFormat pickle_format = pickle::PickleFormat::PortableBinary;
};

Output output_of(const Args& args, const std::string& out) {
  Output o;
  if (auto f = args.value("--format")) {
    o.format = *f;
  } else {
    std::string ext = std::filesystem::path(out).extension().string();
    if (ext == ".fxpkg") o.format = "fxpack";
    else if (ext == ".pt") o.format = "torch";
    else if (ext == ".json") o.format = "json";
    else if (ext == ".xml") o.format = "boost-xml";
    else if (ext == ".pkl") o.format = "portable-binary";
    else throw UsageError("cannot tell the output format from " + quote(out) + ": give --format");
  }
  if (o.format == "fxpack") {
    o.target = Target::Fxpack;
  } else if (o.format == "torch") {
    o.target = Target::Torch;
  } else if (o.format == "torch-2") {
    o.target = Target::Torch2;
  } else {
    bool known = false;
    for (int i = 0; i < pickle::kPickleFormatCount; ++i) {
      auto f = static_cast<pickle::PickleFormat>(i);
      if (pickle::format_name(f) == o.format) {
        o.pickle_format = f;
        known = true;
      }
    }
    if (!known)
      throw UsageError("unknown format " + quote(o.format) +
                       " (portable-binary, json, boost-text, boost-binary, boost-xml, fxpack, torch, torch-2)");
  }
  return o;
}

// The pickles to convert: all of an fxpack package's when it becomes an fxpack package and
// none is selected, else the one [PACKAGE RESOURCE] selects.
std::vector<std::string> selected_pickles(const Archive& a, const Args& args, Target target) {
  const bool explicit_selection = args.positional.size() > 2;
  if (target == Target::Fxpack && a.kind() == ArchiveKind::FxpackPackage && !explicit_selection) {
    std::vector<std::string> all = a.pickles();
    if (all.empty()) throw ValueError(at_path(a, "the archive holds no pickled module"));
    return all;
  }
  return {select_pickle(a, args.positional, 2)};
}

// A bare pickle of `record`'s module.
void write_pickle(Archive& a, const std::string& record, const Output& o, const std::string& out) {
  auto gm = a.load(record).module;
  write_file_atomic(out, pickle::dumps(*gm, o.pickle_format));
  Lines done;
  done("wrote " + out + " (fxpack pickle, " + o.format + ", class " + gm->class_name() + ")");
  std::cout << done.text();
}

// A package of the selected pickles and the archive's other records.
void write_package(Archive& a, const std::vector<std::string>& selected, Target target, const std::string& out) {
  PackageExporter exporter(out, target == Target::Torch    ? PackageFormat::TorchPackage
                                : target == Target::Torch2 ? PackageFormat::TorchPackage2
                                                           : PackageFormat::Fxpack);
  std::size_t pickles = 0, resources = 0;
  for (const auto& record : selected) {
    auto gm = a.load(record).module;
    const std::string r = record.empty() ? "model/model.pkl" : record;
    auto [package, resource] = split_record_name(r);
    if (package.empty()) throw ValueError("pickle " + quote(r) + " is not inside a package folder");
    exporter.save_pickle(package, resource, *gm);
    ++pickles;
  }
  if (const PackageImporter* p = a.package()) {
    const std::vector<std::string> pickle_records = a.pickles();
    for (const auto& r : p->records()) {
      if (r.starts_with(".data/") || r.starts_with("fx-generated/")) continue;
      if (std::find(pickle_records.begin(), pickle_records.end(), r) != pickle_records.end()) continue;
      auto [package, resource] = split_record_name(r);
      if (package.empty()) continue;  // a record right under the root has no package
      exporter.save_binary(package, resource, p->read_record(r));
      ++resources;
    }
  }
  exporter.close();
  Lines done;
  done("wrote " + out + " (" +
       (target == Target::Torch    ? "torch.package"
        : target == Target::Torch2 ? "torch.package for PyTorch 2.x"
                                   : "fxpack package") +
       ", " + std::to_string(pickles) + " pickle" + (pickles == 1 ? "" : "s") + ", " + std::to_string(resources) +
       " other record" + (resources == 1 ? "" : "s") + ")");
  std::cout << done.text();
}

}  // namespace

int cmd_convert(const std::vector<std::string>& argv) {
  Args args = parse_args(argv, {{"--format", true}});
  if (args.help) {
    std::cout << kConvertHelp;
    return 0;
  }
  if (args.positional.size() < 2) throw UsageError("missing " + std::string(args.positional.empty() ? "IN and OUT" : "OUT"));
  const std::string in = args.positional[0], out = args.positional[1];
  const Output o = output_of(args, out);
  {
    std::error_code ec;
    if (std::filesystem::equivalent(in, out, ec)) throw UsageError("IN and OUT are the same file");
  }
  // Copy: every byte is read anyway, and an input truncated meanwhile must be an error.
  Archive a = open_archive(in, false, LoadMode::Copy);
  const std::vector<std::string> selected = selected_pickles(a, args, o.target);
  if (o.target == Target::Pickle) write_pickle(a, selected.front(), o, out);
  else write_package(a, selected, o.target, out);
  return 0;
}

}  // namespace fxpack::cli
