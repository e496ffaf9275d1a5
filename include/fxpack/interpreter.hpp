// Interpreter: runs a Graph node by node, as torch.fx's Interpreter does.
//
// run() takes the inputs of the placeholders in order and walks the graph: each node's
// arguments are fetched from the environment (the values of the nodes before it), the node
// runs through the method named after its op (placeholder, get_attr, call_function,
// call_method, call_module, output), its value goes into the environment, and the values
// whose last use it was (Graph::last_uses) are dropped, so a run holds no more than the
// generated code would. The output node's value is run()'s result. A subclass changes what
// nodes do by overriding run_node or any op method, as in fx; unlike fx, the methods get the
// node itself (its target, name and meta) rather than only its target.
//
// BasicInterpreter<V> is that walk for any value type V (make_fx interprets with a real and
// a symbolic value per node); it leaves fetching arguments and the four ops that need a
// meaning for V to the subclass. Interpreter is the walk on Values: targets go through the
// generic dispatch (ops.hpp's call_function/call_method, Module::operator()), so it computes
// on real values, and under a Tracer records each node again (how a GraphModule re-traces
// its forward). Plans (plan.hpp) compile the same walk ahead of time instead.
//
// An interpreter is for one run at a time; `graph` and `root` must outlive it.
#pragma once

#include <cstddef>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "fxpack/errors.hpp"
#include "fxpack/graph.hpp"
#include "fxpack/module.hpp"

namespace fxpack {

template <class V>
class BasicInterpreter {
 public:
  using Kwargs = std::vector<std::pair<std::string, V>>;

  // `root` holds the modules and tensors the graph's get_attr and call_module nodes name.
  BasicInterpreter(const Graph& graph, const Module& root)
      : graph_(graph), root_(root), last_uses_(graph.last_uses()) {}
  virtual ~BasicInterpreter() = default;
  BasicInterpreter(const BasicInterpreter&) = delete;
  BasicInterpreter& operator=(const BasicInterpreter&) = delete;

  // fx's Interpreter.run: the output node's value. Throws GraphError for a graph without
  // an output node.
  V run(std::vector<V> inputs) {
    env_.clear();
    inputs_ = std::move(inputs);
    next_input_ = 0;
    std::size_t position = 0;
    for (const Node* n : graph_) {
      if (n->op() == Op::Output) return run_node(*n);
      V value = run_node(*n);
      env_.insert_or_assign(n, std::move(value));
      for (const Node* dead : last_uses_.at(position++)) env_.erase(dead);
    }
    throw GraphError("the graph has no output node");
  }

  const Graph& graph() const { return graph_; }
  const Module& root() const { return root_; }

 protected:
  // Fetches the node's arguments and calls the method of its op.
  virtual V run_node(const Node& n) {
    std::vector<V> args;
    args.reserve(n.args().size());
    for (const Value& a : n.args()) args.push_back(fetch(a));
    Kwargs kwargs;
    kwargs.reserve(n.kwargs().items.size());
    for (const auto& [k, v] : n.kwargs().items) kwargs.emplace_back(k, fetch(v));
    switch (n.op()) {
      case Op::Placeholder: return placeholder(n, std::move(args));
      case Op::GetAttr: return get_attr(n);
      case Op::CallFunction: return call_function(n, std::move(args), std::move(kwargs));
      case Op::CallMethod: return call_method(n, std::move(args), std::move(kwargs));
      case Op::CallModule: return call_module(n, std::move(args), std::move(kwargs));
      case Op::Output: return output(n, std::move(args));
    }
    throw GraphError("node '" + n.name() + "' has an unknown op");
  }

  // The next input; past the last one, the placeholder's default value (its argument).
  virtual V placeholder(const Node& n, std::vector<V> args) {
    if (has_next_input()) return next_input();
    if (!args.empty()) return std::move(args[0]);
    throw GraphError("no input for placeholder '" + n.target() + "': the graph takes more than the " +
                     std::to_string(inputs_.size()) + " input(s) given");
  }
  virtual V get_attr(const Node& n) = 0;
  virtual V call_function(const Node& n, std::vector<V> args, Kwargs kwargs) = 0;
  virtual V call_method(const Node& n, std::vector<V> args, Kwargs kwargs) = 0;
  virtual V call_module(const Node& n, std::vector<V> args, Kwargs kwargs) = 0;
  // The value returned (None when the output node has no argument).
  virtual V output(const Node&, std::vector<V> args) { return args.empty() ? V{} : std::move(args[0]); }

  // An argument's value: `arg` with each node in it replaced by the node's value.
  virtual V fetch(const Value& arg) const = 0;
  // A node's value; it must have run and not be dead yet.
  const V& env(const Node* n) const { return env_.at(n); }

  bool has_next_input() const { return next_input_ < inputs_.size(); }
  V next_input() { return std::move(inputs_.at(next_input_++)); }
  // The inputs placeholders have not taken yet, in order (for a `*args` placeholder).
  std::vector<V> remaining_inputs() {
    std::vector<V> rest(std::make_move_iterator(inputs_.begin() + static_cast<std::ptrdiff_t>(next_input_)),
                        std::make_move_iterator(inputs_.end()));
    next_input_ = inputs_.size();
    return rest;
  }

 private:
  const Graph& graph_;
  const Module& root_;
  const LastUses last_uses_;
  std::unordered_map<const Node*, V> env_;
  std::vector<V> inputs_;
  std::size_t next_input_ = 0;
};

extern template class BasicInterpreter<Value>;

class Interpreter : public BasicInterpreter<Value> {
 public:
  using BasicInterpreter::BasicInterpreter;

 protected:
  // Also fx's `*args` (the remaining inputs as a tuple) and `**kwargs` (an empty dict).
  Value placeholder(const Node& n, std::vector<Value> args) override;
  // fx's fetch_attr: the parameter, buffer, module or attribute at the dotted target.
  Value get_attr(const Node& n) override;
  Value call_function(const Node& n, std::vector<Value> args, Kwargs kwargs) override;
  Value call_method(const Node& n, std::vector<Value> args, Kwargs kwargs) override;
  // Keywords bind to the inputs a registered module kind declares (a user module's forward
  // takes positional inputs only).
  Value call_module(const Node& n, std::vector<Value> args, Kwargs kwargs) override;
  Value fetch(const Value& arg) const override;
};

}  // namespace fxpack
