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
#include <optional>
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
  // The get_attr and call_module nodes this trace made, in graph order, for
  // MakeGraphModuleOptions::attribute_nodes: the module then need not walk every node to
  // find them (at 10^6 nodes, 120 MB read for a handful). Empty-handed (nullopt) unless the
  // graph, empty when the trace began, holds exactly this trace's nodes, each appended at
  // the end when made, and `others` more of neither kind (the placeholders symbolic_trace
  // makes): a node made on the graph directly, an insertion point moved or a node erased
  // leave the walk to the module. Once per trace: the list is moved out.
  std::optional<std::vector<const Node*>> take_attribute_nodes(std::size_t others);

 private:
  Value lift(Value v);
  Node* made(Node* n);  // counts a node this trace made

  std::shared_ptr<Module> root_;
  std::shared_ptr<Graph> graph_;
  Tracer* previous_;
  CallRecorder* previous_recorder_;
  std::unordered_map<const Module*, std::string> paths_;
  std::unordered_map<std::string, Node*> attr_nodes_;
  std::vector<std::pair<std::string, Tensor>> constants_;
  std::vector<const Node*> attribute_nodes_;
  std::uint64_t erased_at_start_;  // the graph's erased_count() when the trace began
  std::size_t made_ = 0;
  bool appended_ = true;  // every node made was the graph's last when made
};

}  // namespace fxpack
