// The quick start's main job, around the `fxpack` command that runs in between:
//
//   fxpack-quickstart save  <fixtures/reference> <dir>
//       builds PyTorch's reference MLP and small ConvNet in C++ with their real weights,
//       traces them and saves <dir>/<model>.fxpkg, plus each model's input as
//       <dir>/<model>.input.npy
//   (fxpack code / fxpack run, in other processes, load the packages and run them)
//   fxpack-quickstart check <fixtures/reference> <dir>
//       compares <dir>/<model>.output.npy, written by `fxpack run`, with PyTorch's output
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "fxpack/fxpack.hpp"
#include "./fxpack/npy.hpp"
#include "../examples/reference_models.hpp"

using namespace fxpack;
namespace fs = std::filesystem;

namespace {

struct Case {
  const char* name;
  std::shared_ptr<Module> (*make)();
  Shape input, output;
};

const Case kCases[] = {
    {"mlp", [] { return std::shared_ptr<Module>(std::make_shared<examples::MLP>()); }, {2, 4}, {2, 3}},
    {"small_convnet", [] { return std::shared_ptr<Module>(std::make_shared<examples::SmallConvNet>()); },
     {2, 3, 16, 16}, {2, 10}},
};

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw IoError("cannot write " + path.string());
}

int save(const fs::path& reference, const fs::path& dir) {
  fs::create_directories(dir);
  for (const auto& c : kCases) {
    auto model = c.make();
    examples::load_weights(*model, reference / c.name / "params");
    auto gm = symbolic_trace(model);
    PackageExporter exporter(dir / (std::string(c.name) + ".fxpkg"));
    exporter.save_pickle("model", "model.pkl", *gm);
    exporter.close();
    write_file(dir / (std::string(c.name) + ".input.npy"),
               cli::to_npy(examples::read_tensor(reference / c.name / "input.bin", c.input)));
    std::cout << "traced " << model->kind() << " (" << gm->graph().size() << " nodes) and saved "
              << (dir / (std::string(c.name) + ".fxpkg")).string() << "\n";
  }
  return 0;
}

int check(const fs::path& reference, const fs::path& dir) {
  int failures = 0;
  for (const auto& c : kCases) {
    fs::path path = dir / (std::string(c.name) + ".output.npy");
    Tensor got = cli::parse_npy(examples::read_file(path), path.string());
    Tensor expected = examples::read_tensor(reference / c.name / "output.bin", c.output);
    bool ok = got.shape() == expected.shape() && allclose(got, expected, 1e-5, 1e-6);
    std::cout << c.name << ": max |fxpack - PyTorch| = " << (ok ? max_abs_diff(got, expected) : -1.0)
              << (ok ? "  (match)" : "  (MISMATCH)") << "\n";
    failures += ok ? 0 : 1;
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc == 4 ? argv[1] : "";
  if (mode != "save" && mode != "check") {
    std::fprintf(stderr, "usage: %s save|check <fixtures/reference> <dir>\n", argv[0]);
    return 2;
  }
  try {
    return mode == "save" ? save(argv[2], argv[3]) : check(argv[2], argv[3]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fxpack-quickstart: %s\n", e.what());
    return 1;
  }
}
