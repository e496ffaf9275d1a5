// The reference models of PyTorch's golden output (fixtures/reference/): the same module
// names and forward bodies as the Python originals, so tracing them gives the same graphs.
// Used by the quick start, the benchmarks, the tests and the golden-pickle writer.
#pragma once

#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "fxpack/fxpack.hpp"

namespace fxpack::examples {

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A tensor of `shape` from a raw little-endian file.
inline Tensor read_tensor(const std::filesystem::path& path, Shape shape, DType dtype = DType::Float32) {
  std::string bytes = read_file(path);
  return Tensor::from_bytes(std::as_bytes(std::span(bytes.data(), bytes.size())), shape, dtype);
}

// Replaces every parameter and buffer of `m` by the file <params_dir>/<dotted name>.bin,
// keeping the shape and dtype the module declared.
inline void load_weights(Module& m, const std::filesystem::path& params_dir) {
  auto load_into = [&](Module& owner, const std::string& prefix) {
    for (const auto& [name, t] : std::vector(owner.parameters().begin(), owner.parameters().end()))
      owner.register_parameter(name, read_tensor(params_dir / (prefix + name + ".bin"), t.shape(), t.dtype()));
    for (const auto& [name, t] : std::vector(owner.buffers().begin(), owner.buffers().end()))
      owner.register_buffer(name, read_tensor(params_dir / (prefix + name + ".bin"), t.shape(), t.dtype()));
  };
  for (const auto& [path, sub] : m.named_modules()) load_into(*sub, path.empty() ? "" : path + ".");
}

// torch.relu(x + 3.0)
class ReluAdd : public Module {
 public:
  ReluAdd() : Module("ReluAdd") {}
  Value forward(std::span<const Value> in) override { return torch::relu(in[0] + 3.0); }
};

// Linear(4,8) - ReLU - Linear(8,3)
class MLP : public Module {
 public:
  MLP() : Module("MLP") {
    register_module("fc1", fc1 = nn::Linear(4, 8));
    register_module("relu", relu = nn::ReLU());
    register_module("fc2", fc2 = nn::Linear(8, 3));
  }
  Value forward(std::span<const Value> in) override { return (*fc2)((*relu)((*fc1)(in[0]))); }
  std::shared_ptr<Module> fc1, relu, fc2;
};

// A small ResNet-style block.
class SmallConvNet : public Module {
 public:
  SmallConvNet() : Module("SmallConvNet") {
    register_module("conv1", conv1 = nn::Conv2d(3, 8, 3, 1, 1, 1, 1, false));
    register_module("bn1", bn1 = nn::BatchNorm2d(8));
    register_module("relu", relu = nn::ReLU(true));
    register_module("maxpool", maxpool = nn::MaxPool2d(3, 2, 1));
    register_module("conv2", conv2 = nn::Conv2d(8, 8, 3, 1, 1, 1, 1, false));
    register_module("bn2", bn2 = nn::BatchNorm2d(8));
    register_module("avgpool", avgpool = nn::AdaptiveAvgPool2d(Tuple{{1, 1}}));
    register_module("fc", fc = nn::Linear(8, 10));
  }
  Value forward(std::span<const Value> in) override {
    Value x = (*maxpool)((*relu)((*bn1)((*conv1)(in[0]))));
    Value out = (*bn2)((*conv2)(x));
    out = out + x;
    out = (*relu)(out);
    out = (*avgpool)(out);
    out = torch::flatten(out, 1);
    return (*fc)(out);
  }
  std::shared_ptr<Module> conv1, bn1, relu, maxpool, conv2, bn2, avgpool, fc;
};

// The traced module of <reference_root>/<folder> (seed_sin, seed_relu_add, mlp,
// small_convnet), with the real weights PyTorch wrote there.
inline std::shared_ptr<GraphModule> trace_reference(const std::filesystem::path& reference_root,
                                                    const std::string& folder) {
  if (folder == "seed_sin") return symbolic_trace([](const Value& x) { return x.sin(); });
  std::shared_ptr<Module> m;
  if (folder == "seed_relu_add") m = std::make_shared<ReluAdd>();
  if (folder == "mlp") m = std::make_shared<MLP>();
  if (folder == "small_convnet") m = std::make_shared<SmallConvNet>();
  if (!m) throw std::runtime_error("no reference model " + folder);
  load_weights(*m, reference_root / folder / "params");
  return symbolic_trace(m);
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

}  // namespace fxpack::examples
