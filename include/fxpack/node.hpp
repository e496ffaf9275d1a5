// Node: one operation of a Graph.
//
// As in torch.fx, a node has an `op` (what kind of operation), a `name` (unique in its
// graph, a valid Python identifier), a `target` (a string here: the qualified function name
// for call_function such as `torch.relu` or `operator.add`, the method name, the module
// path, or the attribute path), `args` and `kwargs` (Values that may reference other nodes
// of the same graph), the `users` that reference it, string-keyed `meta`, and a `type`
// (fx's node.type: the annotation code() prints, `x : torch.Tensor`, `-> int` on output).
//
// A type is kept as a type expression over fully qualified Python names, in the form
//     torch.Tensor    int    NoneType    typing.Union[torch.Tensor,NoneType]
//     typing.Tuple[int,...]    torchvision.models.googlenet.GoogLeNetOutputs    ()
// (a dotted name, optionally subscripted with comma-separated types, no spaces; `...` and
// `()` as in typing). Names without a dot are Python builtins. Code generation prints each
// name the way fx does (`torch.` names as they are, others through the generated source's
// globals: `typing_Union[torch.Tensor,NoneType]`). Empty: no type.
//
// A placeholder's args hold its default value when it has one (fx's `def forward(self,
// x=3)`), never anything else.
//
// `users` and each node's input list are kept in step automatically whenever args or
// kwargs change; they and the args are handed out as spans (valid until the node's args, or
// a user's, change).
//
// Memory: a node is 120 bytes in its graph's chunks, its name included; its target and type
// are interned by the graph (one copy of "torch.relu" however many nodes call it), its input
// and user lists are 8 bytes each and hold one entry without allocating, kwargs and meta take no memory when
// empty, and its arguments are 16-byte Values in the graph's argument arena
// (detail/value_arena.hpp), so building a node allocates nothing of its own. Changing a node
// never marks any GraphModule dirty: like PyTorch, the caller must call recompile().
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fxpack/detail/boxed.hpp"
#include "fxpack/detail/node_list.hpp"
#include "fxpack/value.hpp"

namespace fxpack {

class Graph;

enum class Op : std::uint8_t {
  Placeholder = 0,
  GetAttr = 1,
  CallFunction = 2,
  CallMethod = 3,
  CallModule = 4,
  Output = 5,
};

// "placeholder", "get_attr", "call_function", "call_method", "call_module", "output".
std::string_view op_name(Op op);
// Parses an op name; throws GraphError for anything else.
Op parse_op(std::string_view name);

// Node meta: string keys in insertion order, values of any Value kind. A node's meta counts
// as part of its graph (code generation reads is_wrapped): changing it changes
// Graph::generation.
class Meta {
 public:
  Meta() = default;
  Meta(const Meta& other) : d_(other.d_) {}  // a copy belongs to no graph
  Meta& operator=(const Meta& other);
  const Value* find(std::string_view key) const;
  void set(std::string key, Value value);
  bool erase(std::string_view key);
  const Dict& entries() const { return d_.get(); }
  bool empty() const { return d_.get().items.empty(); }
  friend bool operator==(const Meta& a, const Meta& b) { return a.d_ == b.d_; }

 private:
  friend class Node;
  void changed();
  detail::Boxed<Dict> d_;  // most nodes have no meta: 8 bytes, no allocation
  Graph* graph_ = nullptr;  // the graph of the node it belongs to (Node::graph reads it)
};

// Const is deep: a const Node hands out its graph, neighbours, inputs and users as const
// (args and kwargs are Values, which hold plain Node*).
class Node {
 public:
  Graph* graph() { return meta_.graph_; }
  const Graph* graph() const { return meta_.graph_; }
  Op op() const { return op_; }
  const std::string& name() const { return name_; }
  const std::string& target() const { return *target_; }
  void set_target(std::string target);

  std::span<const Value> args() const { return {args_, nargs_}; }
  const Dict& kwargs() const { return kwargs_.get(); }
  void set_args(std::vector<Value> args);
  void set_kwargs(Dict kwargs);
  void set_arg(std::size_t i, Value v);
  // Every node referenced by args/kwargs, first occurrence order, each once.
  std::span<Node* const> input_nodes() { return inputs_.span(); }
  std::span<const Node* const> input_nodes() const { return {inputs_.begin(), inputs_.size()}; }
  // Nodes whose args/kwargs reference this one, in the order they started to.
  std::span<Node* const> users() { return users_.span(); }
  std::span<const Node* const> users() const { return {users_.begin(), users_.size()}; }

  // Replaces every use of this node by `replacement`; returns the users that changed.
  std::vector<Node*> replace_all_uses_with(Node* replacement);
  // Replaces references to `old_input` in this node's args/kwargs.
  void replace_input_with(Node* old_input, Node* new_input);

  // The type expression (see above); empty when the node has none.
  const std::string& type() const { return *type_; }
  // Sets it; throws GraphError for a string that is not a type expression.
  void set_type(std::string type);

  Meta& meta() { return meta_; }
  const Meta& meta() const { return meta_; }

  Node* next() { return next_; }
  const Node* next() const { return next_; }
  Node* prev() { return prev_; }
  const Node* prev() const { return prev_; }

  // The fx form: `%add : [#users=1] = call_function[target=operator.add](args = (%x, 3.0), kwargs = {})`.
  std::string format_node() const;

  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  ~Node();

 private:
  friend class Graph;
  friend class LastUses;
  Node(Graph* graph, Op op, std::string name, const std::string* target);
  void update_inputs();
  void drop_inputs();
  // Puts `args` in the graph's argument arena in place of the current ones (reusing their
  // run when the count is the same); release_args gives the run back.
  void store_args(std::vector<Value>&& args);
  void release_args() noexcept;
  std::span<Value> mutable_args() { return {args_, nargs_}; }
  void set_kwargs_only(Dict kwargs);

  // 120 bytes: the name is the node's own (its text is needed nowhere else: the graph's name
  // table keys names by base and number), target and type are interned by the graph, the
  // arguments are a run in the graph's argument arena, input and user lists are a word each, kwargs and
  // meta are boxed (most nodes have none), and the graph is the one its meta records.
  std::string name_;
  const std::string* target_;  // interned in the graph's string pool
  const std::string* type_;    // interned in the graph's string pool ("" when none)
  Value* args_ = nullptr;  // nargs_ Values in the graph's argument arena
  detail::Boxed<Dict> kwargs_;
  detail::NodeList inputs_;
  detail::NodeList users_;
  Meta meta_;
  Node* prev_ = nullptr;
  Node* next_ = nullptr;
  std::uint32_t nargs_ = 0;
  Op op_;
  // The node's position in its graph as Graph::last_uses last numbered it, 24 bits little
  // end first, in what was the node's padding (so a graph's last_uses numbers at most 2^24
  // nodes). A field rather than an index of the graph's nodes: at 10^6 nodes that index
  // was 32 MB, and a cache miss per lookup. Relaxed atomic bytes, because analyses of one
  // graph may run at once (they are const): they write the same numbers.
  mutable std::atomic<std::uint8_t> position_[3] = {};
};

}  // namespace fxpack
