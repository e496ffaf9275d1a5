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

}  // namespace

int cmd_convert(const std::vector<std::string>& argv) {
  Args args = parse_args(argv, {{"--format", true}});
  if (args.help) {
    std::cout << kConvertHelp;
    return 0;
  }
  if (args.positional.size() < 2) throw UsageError("missing " + std::string(args.positional.empty() ? "IN and OUT" : "OUT"));
  const std::string in = args.positional[0], out = args.positional[1];
  std::string format;
  if (auto f = args.value("--format")) {
    format = *f;
  } else {
    std::string ext = std::filesystem::path(out).extension().string();
    if (ext == ".fxpkg") format = "fxpack";
    else if (ext == ".pt") format = "torch";
    else if (ext == ".json") format = "json";
    else if (ext == ".xml") format = "boost-xml";
    else if (ext == ".pkl") format = "portable-binary";
    else throw UsageError("cannot tell the output format from " + quote(out) + ": give --format");
  }
  Target target = Target::Pickle;
  pickle::PickleFormat pformat = pickle::PickleFormat::PortableBinary;
  if (format == "fxpack") {
    target = Target::Fxpack;
  } else if (format == "torch") {
    target = Target::Torch;
  } else if (format == "torch-2") {
    target = Target::Torch2;
  } else {
    bool known = false;
    for (int i = 0; i < pickle::kPickleFormatCount; ++i) {
      auto f = static_cast<pickle::PickleFormat>(i);
      if (pickle::format_name(f) == format) {
        pformat = f;
        known = true;
      }
    }
    if (!known)
      throw UsageError("unknown format " + quote(format) +
                       " (portable-binary, json, boost-text, boost-binary, boost-xml, fxpack, torch, torch-2)");
  }
  {
    std::error_code ec;
    if (std::filesystem::equivalent(in, out, ec)) throw UsageError("IN and OUT are the same file");
  }
  // Copy: every byte is read anyway, and an input truncated meanwhile must be an error.
  Archive a = open_archive(in, false, LoadMode::Copy);
  std::vector<std::string> selected;
  const bool explicit_selection = args.positional.size() > 2;
  if (target == Target::Fxpack && a.kind() == ArchiveKind::FxpackPackage && !explicit_selection) {
    selected = a.pickles();
    if (selected.empty()) throw ValueError(at_path(a, "the archive holds no pickled module"));
  } else {
    selected = {select_pickle(a, args.positional, 2)};
  }

  if (target == Target::Pickle) {
    auto gm = a.load(selected.front()).module;
    write_file_atomic(out, pickle::dumps(*gm, pformat));
    Lines done;
    done("wrote " + out + " (fxpack pickle, " + format + ", class " + gm->class_name() + ")");
    std::cout << done.text();
    return 0;
  }

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
  return 0;
}

}  // namespace fxpack::cli
