// symbolic_trace: turn a forward body into a Graph by running it on Node references.
//
// The forward body is ordinary C++ over Values. Under a trace, its inputs are Values that
// hold placeholder Nodes (fx's Proxies); each operation on them records a node instead of
// computing:
//   x.sin()                      → call_method   sin
//   torch::relu(x), x + 3.0      → call_function torch.relu, operator.add
//   (*fc1)(x) on a leaf module   → call_module   fc1
//   get("weight") on a module    → get_attr      weight  (once per attribute and trace)
// Containers such as Sequential and user modules are traced through. A Tensor met as an
// argument is lifted into the result as a `_tensor_constantN` attribute. A call of a function
// outside torch (a registered `mylib.square`) gets meta `is_wrapped`, as fx's wrap() does, so
// the code carries its wrap line. The graph is in default_dialect() (set_default_dialect).
//
// A trace is bound to the calling thread; traces on different threads are independent.
// The Tracer that records is tracer.hpp's (the tracing layer); symbolic_trace, which wraps its
// graph in a GraphModule, sits a layer above, with graph modules.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "fxpack/dialect.hpp"
#include "fxpack/module.hpp"
#include "fxpack/tracer.hpp"

namespace fxpack {

class GraphModule;

struct TraceOptions {
  // Placeholder names; a Module's input_names() when empty (a callable: {"x"}).
  std::vector<std::string> input_names;
  // Class name of the result; a Module's kind when empty (a callable: "<lambda>", which
  // is what fx reports for a traced Python lambda).
  std::string class_name;
};

// Traces a module (a GraphModule is forced to recompile first, like fx).
// The result is made by make_graph_module, so its class follows use_lazy_graph_module.
std::shared_ptr<GraphModule> symbolic_trace(const std::shared_ptr<Module>& root,
                                            TraceOptions options = {});
// Traces a callable of one Value or of a span of Values.
std::shared_ptr<GraphModule> symbolic_trace(const std::function<Value(const Value&)>& fn,
                                            TraceOptions options = {});
std::shared_ptr<GraphModule> symbolic_trace(
    const std::function<Value(std::span<const Value>)>& fn, TraceOptions options = {});

// A module whose forward is `fn`: how callables are traced (kind `class_name`, inputs named
// `input_names`, traced through rather than recorded as call_module).
std::shared_ptr<Module> module_from_callable(std::function<Value(std::span<const Value>)> fn,
                                             std::vector<std::string> input_names,
                                             std::string class_name = "<lambda>");

}  // namespace fxpack
