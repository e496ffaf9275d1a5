#include "fxpack/node.hpp"

#include <algorithm>
#include <limits>
#include <memory>

#include "fxpack/graph.hpp"
#include "type_expr.hpp"

namespace fxpack {

std::string_view op_name(Op op) {
  switch (op) {
    case Op::Placeholder: return "placeholder";
    case Op::GetAttr: return "get_attr";
    case Op::CallFunction: return "call_function";
    case Op::CallMethod: return "call_method";
    case Op::CallModule: return "call_module";
    case Op::Output: return "output";
  }
  return "?";
}

Op parse_op(std::string_view name) {
  for (Op op : {Op::Placeholder, Op::GetAttr, Op::CallFunction, Op::CallMethod, Op::CallModule,
                Op::Output})
    if (op_name(op) == name) return op;
  throw GraphError("unknown node op '" + std::string(name) + "'");
}

const Value* Meta::find(std::string_view key) const {
  for (const auto& [k, v] : d_.get().items)
    if (k == key) return &v;
  return nullptr;
}
Meta& Meta::operator=(const Meta& other) {
  d_ = other.d_;
  changed();
  return *this;
}
void Meta::changed() {
  if (graph_) graph_->touch_meta();
}
void Meta::set(std::string key, Value value) {
  changed();
  auto& items = d_.get().items;
  for (auto& [k, v] : items)
    if (k == key) {
      v = std::move(value);
      return;
    }
  items.emplace_back(std::move(key), std::move(value));
}
bool Meta::erase(std::string_view key) {
  if (empty()) return false;
  auto& items = d_.get().items;
  auto it = std::find_if(items.begin(), items.end(), [&](auto& kv) { return kv.first == key; });
  if (it == items.end()) return false;
  items.erase(it);
  changed();
  return true;
}

namespace {
const std::string kNoType;
}  // namespace

Node::Node(Graph* graph, Op op, std::string name, const std::string* target)
    : name_(std::move(name)), target_(target), type_(&kNoType), op_(op) {
  meta_.graph_ = graph;
}

Node::~Node() = default;
static_assert(sizeof(Node) == 120, "node.hpp's memory figures assume this size");

void Node::store_args(std::vector<Value>&& args) {
  if (args.size() > std::numeric_limits<std::uint32_t>::max())
    throw GraphError("node '" + name() + "': " + std::to_string(args.size()) + " arguments (at most 2^32 - 1)");
  const auto n = static_cast<std::uint32_t>(args.size());
  if (n == nargs_) {
    std::move(args.begin(), args.end(), args_);
    return;
  }
  Value* fresh = n ? graph()->arguments_.allocate(n) : nullptr;
  std::uninitialized_move(args.begin(), args.end(), fresh);  // Value's move does not throw
  release_args();
  args_ = fresh;
  nargs_ = n;
}

void Node::release_args() noexcept {
  if (!nargs_) return;
  std::destroy_n(args_, nargs_);
  graph()->arguments_.release(args_, nargs_);
  args_ = nullptr;
  nargs_ = 0;
}

void Node::set_target(std::string target) {
  target_ = graph()->intern_target(target);
  graph()->touch();
}

void Node::set_type(std::string type) {
  if (!type.empty()) {
    std::string error;
    if (!detail::parse_type_expr(type, &error))
      throw GraphError("node '" + name() + "': '" + type.substr(0, 200) + "' is not a type expression: " + error);
  }
  type_ = type.empty() ? &kNoType : graph()->intern(type);
  graph()->touch();
}

namespace {
void collect_nodes(const Value& v, detail::NodeList& out) {
  switch (v.kind()) {
    case Value::Kind::Node: {
      Node* n = v.node();
      if (!out.contains(n)) out.push_back(n);
      return;
    }
    case Value::Kind::List:
    case Value::Kind::Tuple:
      for (const Value& x : v.items()) collect_nodes(x, out);
      return;
    case Value::Kind::Dict:
      for (const auto& [k, x] : v.dict().items) collect_nodes(x, out);
      return;
    case Value::Kind::Slice:
      for (Node* n : v.slice().nodes)
        if (n && !out.contains(n)) out.push_back(n);
      return;
    default: return;
  }
}

void replace_in(Value& v, Node* from, Node* to) {
  auto& var = v.variant();
  if (auto* n = std::get_if<Node*>(&var)) {
    if (*n == from) *n = to;
  } else if (auto* l = v.if_list()) {
    for (Value& x : l->items) replace_in(x, from, to);
  } else if (auto* t = v.if_tuple()) {
    for (Value& x : t->items) replace_in(x, from, to);
  } else if (auto* d = v.if_dict()) {
    for (auto& [k, x] : d->items) replace_in(x, from, to);
  } else if (auto* s = std::get_if<detail::Boxed<Slice>>(&var)) {
    for (Node*& n : s->get().nodes)
      if (n == from) n = to;
  }
}

}  // namespace

void Node::drop_inputs() {
  for (Node* in : inputs_) in->users_.erase_one(this);
  inputs_.clear();
}

void Node::update_inputs() {
  detail::NodeList fresh;
  for (const Value& a : args()) collect_nodes(a, fresh);
  for (const auto& [k, v] : kwargs().items) collect_nodes(v, fresh);
  for (Node* in : fresh)
    if (in->graph() != graph())
      throw GraphError("node '" + name() + "' references node '" + in->name() +
                       "' of another graph");
  for (Node* old : inputs_)
    if (!fresh.contains(old)) old->users_.erase_one(this);
  for (Node* in : fresh)
    if (!inputs_.contains(in)) in->users_.push_back(this);
  inputs_ = std::move(fresh);
  graph()->touch();
}

void Node::set_args(std::vector<Value> args) {
  store_args(std::move(args));
  update_inputs();
}
void Node::set_kwargs_only(Dict kwargs) {
  // No box for no kwargs (most nodes).
  kwargs_ = kwargs.items.empty() ? detail::Boxed<Dict>() : detail::Boxed<Dict>(std::move(kwargs));
}
void Node::set_kwargs(Dict kwargs) {
  set_kwargs_only(std::move(kwargs));
  update_inputs();
}
void Node::set_arg(std::size_t i, Value v) {
  if (i >= nargs_)
    throw GraphError("node '" + name() + "': argument index " + std::to_string(i) +
                     " out of range (" + std::to_string(nargs_) + " args)");
  args_[i] = std::move(v);
  update_inputs();
}

void Node::replace_input_with(Node* old_input, Node* new_input) {
  for (Value& a : mutable_args()) replace_in(a, old_input, new_input);
  if (!kwargs().items.empty())
    for (auto& [k, v] : kwargs_.get().items) replace_in(v, old_input, new_input);
  update_inputs();
}

std::vector<Node*> Node::replace_all_uses_with(Node* replacement) {
  if (replacement == this) return {};
  std::vector<Node*> changed(users_.begin(), users_.end());
  for (Node* user : changed) user->replace_input_with(this, replacement);
  return changed;
}

namespace {
std::string format_arg(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Node: return "%" + v.node()->name();
    case Value::Kind::List:
    case Value::Kind::Tuple: {
      bool list = v.kind() == Value::Kind::List;
      std::string out = list ? "[" : "(";
      const auto& items = v.items();
      for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) out += ", ";
        out += format_arg(items[i]);
      }
      if (!list && items.size() == 1) out += ",";
      return out + (list ? "]" : ")");
    }
    case Value::Kind::Dict: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, x] : v.dict().items) {
        if (!first) out += ", ";
        first = false;
        out += k + ": " + format_arg(x);
      }
      return out + "}";
    }
    default: return python_repr(v);
  }
}
}  // namespace

std::string Node::format_node() const {
  std::string users = "[#users=" + std::to_string(users_.size()) + "]";
  switch (op_) {
    case Op::Placeholder:
      return "%" + name() + " : " + users + " = placeholder[target=" + target() + "]";
    case Op::GetAttr:
      return "%" + name() + " : " + users + " = get_attr[target=" + target() + "]";
    case Op::Output:
      return "return " + (nargs_ == 0 ? std::string("None") : format_arg(args_[0]));
    default: {
      std::string out = "%" + name() + " : " + users + " = " + std::string(op_name(op_)) +
                        "[target=" + target() + "](args = " + format_arg(Tuple{{args().begin(), args().end()}}) +
                        ", kwargs = " + format_arg(kwargs()) + ")";
      return out;
    }
  }
}

}  // namespace fxpack
