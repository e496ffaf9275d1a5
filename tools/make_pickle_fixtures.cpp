// Writes the golden pickles of the current pickle format version:
//   fixtures/pickle/v<kFormatVersion>/<model>.<format>.pkl
// for the seed `x.sin()` module, mlp and small_convnet in all five formats, with the real
// weights of fixtures/reference/, and (from format 2) the `typed` example of what format 2
// added. test_pickle loads every file found there forever, so files
// that exist are never overwritten (pass --force to regenerate the current version while it
// is still unreleased). Usage: make_pickle_fixtures [--force] [output_dir]
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "fxpack/fxpack.hpp"
#include "fxpack/pickle.hpp"
#include "../examples/reference_models.hpp"

int main(int argc, char** argv) {
  namespace pk = fxpack::pickle;
  bool force = false;
  std::filesystem::path out =
      std::filesystem::path(FXPACK_FIXTURES_DIR) / "pickle" / ("v" + std::to_string(pk::kFormatVersion));
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--force") == 0) force = true;
    else out = argv[i];
  }
  try {
    std::filesystem::create_directories(out);
    auto lazy = fxpack::use_lazy_graph_module(true);
    const auto reference = std::filesystem::path(FXPACK_FIXTURES_DIR) / "reference";
    for (const char* model : {"seed_sin", "mlp", "small_convnet", "typed"}) {
      auto gm = std::string(model) == "typed" ? fxpack::examples::typed_example()
                                              : fxpack::examples::trace_reference(reference, model);
      for (int f = 0; f < pk::kPickleFormatCount; ++f) {
        auto format = static_cast<pk::PickleFormat>(f);
        auto path = out / (std::string(model) + "." + std::string(pk::format_name(format)) + ".pkl");
        if (std::filesystem::exists(path) && !force) {
          std::cout << "kept    " << path.string() << '\n';
          continue;
        }
        std::string bytes = pk::dumps(*gm, format);
        std::ofstream file(path, std::ios::binary | std::ios::trunc);
        file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        if (!file) throw fxpack::IoError("cannot write " + path.string());
        std::cout << "wrote   " << path.string() << " (" << bytes.size() << " bytes)\n";
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "make_pickle_fixtures: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
