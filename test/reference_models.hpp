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
  if (folder == "seed_sin") return symbolic_trace([](const Value& x) { return x.sin(); });
  std::shared_ptr<Module> m;
  if (folder == "seed_relu_add") m = std::make_shared<ReluAdd>();
  if (folder == "mlp") m = std::make_shared<MLP>();
  if (folder == "small_convnet") m = std::make_shared<SmallConvNet>();
  if (!m) throw std::runtime_error("no reference model " + folder);
  load_reference_weights(*m, folder);
  return symbolic_trace(m);
}

inline Tensor reference_input(const ReferenceCase& c) {
  return read_tensor(reference_dir(c.folder) / "input.bin", c.input_shape);
}
inline Tensor reference_output(const ReferenceCase& c) {
  return read_tensor(reference_dir(c.folder) / "output.bin", c.output_shape);
}

// A module in the 2.x dialect with what pickle format 2 added: node types, a placeholder
// default, an Ellipsis argument, a wrapped function (meta is_wrapped), an unused value, and
// buffers of every dtype appended then. Built by hand, for archives (it needs kernels that
// may not exist to run).
inline std::shared_ptr<GraphModule> typed_example() {
  auto root = std::make_shared<Module>("Typed");
  root->register_buffer("half", Tensor::full({2}, 1.5, DType::Float16));
  root->register_buffer("bf16", Tensor::full({2}, -2.0, DType::BFloat16));
  root->register_buffer("i32", Tensor::full({2}, 7, DType::Int32));
  root->register_buffer("i8", Tensor::full({2}, -3, DType::Int8));
  root->register_buffer("i16", Tensor::full({2}, 300, DType::Int16));
  auto g = std::make_shared<Graph>(Dialect::Torch2);
  Node* x = g->placeholder("x");
  x->set_type("torch.Tensor");
  Node* n = g->placeholder("n");
  n->set_type("int");
  n->set_args({3});
  Node* mul = g->call_function("operator.mul", {x, n});
  mul->set_type("torch.Tensor");
  Node* item = g->call_function("operator.getitem", {mul, Tuple{{Ellipsis{}, 0}}});
  Node* sd = g->call_function("torchvision.ops.stochastic_depth.stochastic_depth", {item, 0.0, "row", false});
  sd->meta().set("is_wrapped", true);
  std::vector<Value> buffers;
  for (const char* b : {"half", "bf16", "i32", "i8", "i16"}) buffers.emplace_back(g->get_attr(b));
  (void)g->call_method("float", {buffers[0]});
  Node* out = g->output(Tuple{{sd, n, Tuple{std::move(buffers)}}});
  out->set_type("typing.Tuple[torch.Tensor,int,typing.Tuple[torch.Tensor,...]]");
  return make_graph_module(root, g, {.class_name = "Typed", .graph_module_cls = GraphModuleClass::Lazy});
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
