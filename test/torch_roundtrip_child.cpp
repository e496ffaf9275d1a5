// The C++ side of the round trip through real PyTorch (test/python/test_torch_roundtrip.py):
//   torch_roundtrip_child run ARCHIVE INPUT SHAPE OUTPUT
//       load a torch.package written by PyTorch (model/model.pkl), run it on a raw float32
//       input of SHAPE ("2,3,16,16"), write the raw float32 output
//   torch_roundtrip_child export MODEL ARCHIVE VERSION
//       trace a reference model (seed_sin, seed_relu_add, mlp, small_convnet) with its real
//       weights and write it as a torch.package that PyTorch VERSION's (1.13 or 2.6)
//       PackageImporter loads
//   torch_roundtrip_child convert ARCHIVE OUT VERSION
//       load a torch.package (model/model.pkl, any model, whether or not this build can run
//       it) and write it back as one for PyTorch VERSION; prints the code it read
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "fxpack/fxpack.hpp"
#include "fxpack/package.hpp"
#include "../examples/reference_models.hpp"

using namespace fxpack;

namespace {

Shape parse_shape(const std::string& s) {
  Shape shape;
  std::stringstream in(s);
  std::string dim;
  while (std::getline(in, dim, ',')) shape.push_back(std::stoll(dim));
  return shape;
}

std::shared_ptr<GraphModule> trace_model(const std::string& name) {
  if (name == "seed_sin") return symbolic_trace([](const Value& x) { return x.sin(); });
  std::shared_ptr<Module> m;
  if (name == "seed_relu_add") m = std::make_shared<examples::ReluAdd>();
  if (name == "mlp") m = std::make_shared<examples::MLP>();
  if (name == "small_convnet") m = std::make_shared<examples::SmallConvNet>();
  if (!m) throw Error("unknown model " + name);
  if (name != "seed_relu_add")
    examples::load_weights(*m, std::filesystem::path(FXPACK_FIXTURES_DIR) / "reference" / name / "params");
  return symbolic_trace(m);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "run" && argc == 6) {
      PackageImporter importer{std::filesystem::path(argv[2])};
      auto gm = importer.load_pickle("model", "model.pkl");
      Tensor x = examples::read_tensor(argv[3], parse_shape(argv[4]));
      Tensor y = (*gm)(x).tensor();
      std::ofstream out(argv[5], std::ios::binary);
      out.write(reinterpret_cast<const char*>(y.bytes().data()), static_cast<std::streamsize>(y.nbytes()));
      return out ? 0 : 1;
    }
    auto format_of = [](const std::string& v) {
      if (v == "1.13") return PackageFormat::TorchPackage;
      if (v == "2.6") return PackageFormat::TorchPackage2;
      throw Error("unknown PyTorch version " + v + " (1.13 or 2.6)");
    };
    if (mode == "export" && argc == 5) {
      auto gm = trace_model(argv[2]);
      PackageExporter exporter(std::filesystem::path(argv[3]), format_of(argv[4]));
      exporter.save_pickle("model", "model.pkl", *gm);
      exporter.close();
      return 0;
    }
    if (mode == "convert" && argc == 5) {
      PackageImporter importer{std::filesystem::path(argv[2])};
      auto gm = importer.load_pickle("model", "model.pkl");
      std::fputs(python_code(gm->graph()).c_str(), stdout);
      PackageExporter exporter(std::filesystem::path(argv[3]), format_of(argv[4]));
      exporter.save_pickle("model", "model.pkl", *gm);
      exporter.close();
      return 0;
    }
    std::fprintf(stderr,
                 "usage: torch_roundtrip_child run ARCHIVE INPUT SHAPE OUTPUT | export MODEL ARCHIVE VERSION |"
                 " convert ARCHIVE OUT VERSION\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "torch_roundtrip_child: %s\n", e.what());
    return 1;
  }
}
