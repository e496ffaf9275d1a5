// The quick start's main job: build PyTorch's reference models in C++ with their real
// weights, trace them, print the generated code, run them, and compare with what PyTorch
// computed.
//
//   fxpack-quickstart <fixtures/reference>
#include <cstdio>
#include <iostream>

#include "fxpack/fxpack.hpp"
#include "../examples/reference_models.hpp"

using namespace fxpack;

namespace {

struct Case {
  const char* folder;
  std::shared_ptr<Module> model;
  Shape input, output;
};

int run(const std::filesystem::path& reference) {
  Case cases[] = {
      {"mlp", std::make_shared<examples::MLP>(), {2, 4}, {2, 3}},
      {"small_convnet", std::make_shared<examples::SmallConvNet>(), {2, 3, 16, 16}, {2, 10}},
  };
  int failures = 0;
  for (auto& c : cases) {
    auto dir = reference / c.folder;
    examples::load_weights(*c.model, dir / "params");
    auto gm = symbolic_trace(c.model);
    std::cout << "== " << c.folder << ": traced " << gm->graph().size() << " nodes\n"
              << gm->to_string() << "\n\n";
    Tensor x = examples::read_tensor(dir / "input.bin", c.input);
    Tensor y = (*gm)(x).tensor();
    Tensor expected = examples::read_tensor(dir / "output.bin", c.output);
    double diff = max_abs_diff(y, expected);
    bool ok = allclose(y, expected, 1e-5, 1e-6);
    std::cout << "output " << y.shape().to_string() << ":\n" << y << "\n"
              << "max |fxpack - PyTorch| = " << diff << (ok ? "  (match)" : "  (MISMATCH)") << "\n\n";
    failures += ok ? 0 : 1;
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <fixtures/reference directory>\n", argv[0]);
    return 2;
  }
  try {
    return run(argv[1]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fxpack-quickstart: %s\n", e.what());
    return 1;
  }
}
