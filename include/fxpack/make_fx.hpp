// make_fx: re-trace a module or callable at the op level by running it on real inputs.
//
// PyTorch's torch.fx.experimental.proxy_tensor.make_fx (real tensors, torch 1.13 output):
// `make_fx(target)(inputs...)` runs the target once on the given inputs and records every
// kernel call as a call_function node with an aten target (`torch.ops.aten.sin.default`):
//
//   - method and function forms normalise to one op: x.sin(), torch.sin(x) -> sin.default;
//     x + y, torch.add(x, 3.0) -> add.Tensor; x.flatten(1), x.reshape(...) ->
//     _reshape_alias.default(x, concrete_shape, concrete_strides);
//   - leaf modules decompose as PyTorch's eager modules do: Linear -> t + addmm, Conv2d ->
//     convolution, BatchNorm2d (eval) -> empty + native_batch_norm + 3 getitems, ReLU ->
//     relu / relu_ (+ detach when the result requires grad, as autograd records it),
//     MaxPool2d -> max_pool2d_with_indices + 2 getitems, AdaptiveAvgPool2d((1, 1)) ->
//     mean.dim(x, [-1, -2], True);
//   - placeholders are `x_1` (a callable's input names + "_1") or `arg0_1`, `arg1_1`, ...
//     for modules; parameters are lifted as get_attr `_param_constantN`, other tensors
//     (buffers, constants) as `_tensor_constantN`, in first-use order, and registered on the
//     result module (sharing the tensors);
//   - trailing arguments equal to the schema default are left out, as PyTorch prints them.
//
// A GraphModule target runs its forward, so a dirty lazy module is real-recompiled first
// (it is clean afterwards). The result is built by make_graph_module: lazy and dirty while
// use_lazy_graph_module(true) is in force.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "fxpack/graph_module.hpp"

namespace fxpack {

struct MakeFxOptions {
  // Class name of the result (PyTorch names it after the traced function: "<lambda>").
  std::string class_name = "<lambda>";
  GraphModuleClass graph_module_cls = GraphModuleClass::FromMode;
};

// The op-level graph of one run, before it becomes a GraphModule.
struct OpLevelCapture {
  std::shared_ptr<Graph> graph;
  // Holds the lifted `_param_constantN` (parameters) and `_tensor_constantN` (buffers).
  std::shared_ptr<Module> root;
  // The real result of the run.
  Value output;
};

class MakeFx {
 public:
  // `callable`: the target wraps a callable (placeholders `<input name>_1`), else a module
  // (placeholders `argN_1`).
  MakeFx(std::shared_ptr<Module> target, bool callable, MakeFxOptions options = {});

  std::shared_ptr<GraphModule> operator()(std::vector<Value> inputs) const;
  template <class... A>
  std::shared_ptr<GraphModule> operator()(A&&... inputs) const {
    return (*this)(std::vector<Value>{Value(std::forward<A>(inputs))...});
  }
  // The graph, the module of lifted tensors and the real output, without a GraphModule.
  OpLevelCapture capture(std::vector<Value> inputs) const;

  const std::shared_ptr<Module>& target() const { return target_; }

 private:
  std::shared_ptr<Module> target_;
  bool callable_;
  MakeFxOptions options_;
};

MakeFx make_fx(std::shared_ptr<Module> module, MakeFxOptions options = {});
// A saved forward: re-traces the module it is bound to.
MakeFx make_fx(const BoundForward& forward, MakeFxOptions options = {});
MakeFx make_fx(std::function<Value(const Value&)> fn, MakeFxOptions options = {});
MakeFx make_fx(std::function<Value(std::span<const Value>)> fn, std::vector<std::string> input_names,
               MakeFxOptions options = {});

// A callable seen as a module (kind "<lambda>", not a leaf), as make_fx and compile wrap
// callables; `input_names` name its inputs.
std::shared_ptr<Module> callable_module(std::function<Value(std::span<const Value>)> fn,
                                        std::vector<std::string> input_names = {"x"});

}  // namespace fxpack
