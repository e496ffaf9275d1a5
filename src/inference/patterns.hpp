// What the inference optimiser understands of a node: the op it computes, its tensor
// operands and its constants (weights, statistics, windows), whether it is written as a
// leaf module (Conv2d), a function (F.conv2d with get_attr weights) or a method (x.relu()).
// A node it does not understand is Generic and runs its own kernel. Internal to src/inference.
#pragma once

#include <optional>
#include <vector>

#include "fxpack/graph.hpp"
#include "fxpack/module.hpp"
#include "ops/dnnl/primitives.hpp"

namespace fxpack::inference {

enum class PatternOp : std::uint8_t {
  Generic,
  Conv,             // 2-D convolution with constant weights
  Linear,           // x @ w^T + b with constant weights
  BatchNorm,        // inference batch norm with constant statistics
  LayerNorm,        // over the last dim, constant weight and bias
  Eltwise,          // an activation oneDNN has (relu, relu6, silu, gelu, hardswish, sigmoid, tanh)
  Add,              // tensor + tensor
  Mul,              // tensor * tensor
  MaxPool,
  AvgPool,
  AdaptiveAvgPool,
  Flatten,          // a view
  Identity,         // dropout and stochastic depth at inference, nn.Identity
};

const char* pattern_name(PatternOp op);

struct Pattern {
  PatternOp op = PatternOp::Generic;
  const Node* input = nullptr;  // the main tensor operand
  const Node* other = nullptr;  // Add/Mul: the second tensor operand
  Tensor weight, bias;          // Conv, Linear, LayerNorm (bias may be undefined)
  Tensor mean, var;             // BatchNorm (weight/bias: gamma/beta, may be undefined)
  double eps = 1e-5;
  ops::Conv2dOptions conv;
  ops::Pool2dOptions pool;
  bool count_include_pad = true;
  std::array<std::optional<std::int64_t>, 2> output_size;  // AdaptiveAvgPool
  std::int64_t start_dim = 0, end_dim = -1;                 // Flatten
  ops::dnnl_backend::Eltwise eltwise;                       // Eltwise
};

// Whether `depthwise` (reading `pointwise`'s result) can run inside `pointwise`'s primitive
// as oneDNN's depthwise post-op: `pointwise` a 1x1 convolution with stride 1, no padding or
// groups; `depthwise` one filter per channel of it, a square odd kernel, equal strides of 1
// or 2, no dilation, and PyTorch's "same" padding (k - 1) / 2 on every side, which gives the
// output size oneDNN assumes, ceil(input / stride).
bool fusable_depthwise(const Pattern& pointwise, const Pattern& depthwise);

// What the plan's instructions hold for the graph's get_attr and call_module nodes, by
// slot: the tensors and modules the plan captured when it was built (at the recompile).
// Patterns read these, never the module tree, which may have changed by the time the
// program is built (the first call): the program then fuses what the plain plan runs.
struct Captured {
  const detail::PointerIndex<Node>& slot_of;
  std::vector<const Tensor*> tensors;  // a get_attr node's tensor, else null
  std::vector<const Module*> modules;  // a call_module node's module, else null

  const Tensor* tensor(const Node& n) const { return at(tensors, n); }
  const Module* module(const Node& n) const { return at(modules, n); }

 private:
  template <class T>
  const T* at(const std::vector<const T*>& by_slot, const Node& n) const {
    const std::optional<std::uint32_t> s = slot_of.find(&n);
    return s && *s < by_slot.size() ? by_slot[*s] : nullptr;
  }
};

// Never throws: anything unexpected (an attribute of the wrong kind, a non-constant weight)
// makes the node Generic, and its kernel reports the problem when it runs.
Pattern recognize(const Node& node, const Captured& captured);

}  // namespace fxpack::inference
