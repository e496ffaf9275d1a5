// The other process of the cross-process package test:
//   package_child save <archive>              trace small_convnet with its real weights, package it
//   package_child run <archive> <input> <out> load it, run it on a raw float32 [2,3,16,16] input,
//                                             write the raw float32 output
// It shares no state with the test process but the files.
#include <cstdio>
#include <fstream>
#include <string>

#include "fxpack/fxpack.hpp"
#include "fxpack/package.hpp"
#include "../examples/reference_models.hpp"

using namespace fxpack;

int main(int argc, char** argv) {
  try {
    std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "save" && argc == 3) {
      auto model = std::make_shared<examples::SmallConvNet>();
      examples::load_weights(*model, std::filesystem::path(FXPACK_FIXTURES_DIR) / "reference/small_convnet/params");
      auto gm = symbolic_trace(model);
      PackageExporter exporter{std::filesystem::path(argv[2])};
      exporter.save_pickle("model", "model.pkl", *gm);
      exporter.close();
      return 0;
    }
    if (mode == "run" && argc == 5) {
      PackageImporter importer{std::filesystem::path(argv[2])};
      auto gm = importer.load_pickle("model", "model.pkl");
      if (!gm->is_lazy() || !gm->needs_recompile()) {
        std::fprintf(stderr, "loaded module is not lazy and dirty\n");
        return 1;
      }
      Tensor x = examples::read_tensor(argv[3], {2, 3, 16, 16});
      Tensor y = (*gm)(x).tensor();
      std::ofstream out(argv[4], std::ios::binary);
      out.write(reinterpret_cast<const char*>(y.bytes().data()), static_cast<std::streamsize>(y.nbytes()));
      return out ? 0 : 1;
    }
    std::fprintf(stderr, "usage: package_child save ARCHIVE | run ARCHIVE INPUT OUTPUT\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "package_child: %s\n", e.what());
    return 1;
  }
}
