// The four models of fixtures/reference/ (copied from real PyTorch output), built in C++
// with the same module names and forward bodies, and their weights and I/O loaded from the
// raw little-endian files PyTorch wrote.
#pragma once

#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "fxpack/fxpack.hpp"
#include "../examples/reference_models.hpp"

namespace fxpack::testing {

inline std::filesystem::path fixtures_dir() { return FXPACK_FIXTURES_DIR; }
inline std::filesystem::path reference_dir(const std::string& model) {
  return fixtures_dir() / "reference" / model;
}

using examples::MLP;
using examples::ReluAdd;
using examples::SmallConvNet;
using examples::read_file;
using examples::read_tensor;
using examples::typed_example;

inline void load_reference_weights(Module& m, const std::string& model) {
  examples::load_weights(m, reference_dir(model) / "params");
}

struct ReferenceCase {
  std::string folder;
  Shape input_shape;
  Shape output_shape;
};

inline const std::vector<ReferenceCase>& reference_cases() {
  static const std::vector<ReferenceCase> cases = {
      {"seed_sin", {2, 3}, {2, 3}},
      {"seed_relu_add", {2, 3}, {2, 3}},
      {"mlp", {2, 4}, {2, 3}},
      {"small_convnet", {2, 3, 16, 16}, {2, 10}},
  };
  return cases;
}

// The traced module of a reference folder, with its real weights.
inline std::shared_ptr<GraphModule> trace_reference(const std::string& folder) {
  return examples::trace_reference(fixtures_dir() / "reference", folder);
}

inline Tensor reference_input(const ReferenceCase& c) {
  return read_tensor(reference_dir(c.folder) / "input.bin", c.input_shape);
}
inline Tensor reference_output(const ReferenceCase& c) {
  return read_tensor(reference_dir(c.folder) / "output.bin", c.output_shape);
}

// torch.randn-like data from a fixed seed.
inline Tensor random_tensor(Shape shape, unsigned seed = 1234) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist;
  std::vector<float> v(static_cast<std::size_t>(shape.numel()));
  for (float& x : v) x = dist(gen);
  return Tensor::from_vector(v, shape);
}

}  // namespace fxpack::testing
