// The Tracer: what turns operations on Node-holding Values into nodes of a Graph while a
// forward body runs (symbolic_trace, trace.hpp, drives it and wraps the result in a
// GraphModule; make_fx and a GraphModule's symbolic re-interpretation run under it too).
//
// Constructing a Tracer makes it the current trace of the calling thread, and the current
// CallRecorder that dispatch (ops.hpp) records calls with: an operation with a Node among
// its arguments becomes a node. A module in the root's tree called on Nodes records a
// call_module node (a leaf) or is traced through (Module::operator()); a tensor attribute
// read becomes a get_attr node, once per attribute; a Tensor met as an argument is lifted
// into a `_tensor_constantN` attribute (constants()). Destroying it restores the previous
// trace. It sits in the tracing layer, below graph modules: it knows Graph, Module and
// dispatch, not what the caller makes of the graph.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "fxpack/graph.hpp"
#include "fxpack/module.hpp"
#include "fxpack/ops.hpp"

namespace fxpack {

// The active trace of this thread (nullptr when none). Module asks it whether a module is
// part of the traced tree; dispatch (ops.hpp) reaches it as the current CallRecorder.
class Tracer : public CallRecorder {
 public:
  static Tracer* current();

  Graph& graph() { return *graph_; }
  // Records a node, checking that every Node reference belongs to this trace's graph and
  // lifting Tensor arguments into attributes.
  Value record(Op op, const std::string& target, std::vector<Value> args, Dict kwargs) override;
  // A get_attr node for a tensor attribute of `owner` (cached per attribute).
  Value attribute(const Module& owner, const std::string& name);
  // The dotted path of a module reached from the root; throws if it is not in the tree.
  const std::string& path_of(const Module& m) const;
  // True while this module is being traced (part of the root's tree).
  bool knows(const Module& m) const { return paths_.count(&m) != 0; }

  Tracer(std::shared_ptr<Module> root, std::shared_ptr<Graph> graph);
  ~Tracer();
  Tracer(const Tracer&) = delete;
  Tracer& operator=(const Tracer&) = delete;

  // Tensors lifted from arguments: (attribute name, tensor).
  const std::vector<std::pair<std::string, Tensor>>& constants() const { return constants_; }

 private:
  Value lift(Value v);

  std::shared_ptr<Module> root_;
  std::shared_ptr<Graph> graph_;
  Tracer* previous_;
  CallRecorder* previous_recorder_;
  std::unordered_map<const Module*, std::string> paths_;
  std::unordered_map<std::string, Node*> attr_nodes_;
  std::vector<std::pair<std::string, Tensor>> constants_;
};

}  // namespace fxpack
