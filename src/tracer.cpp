#include "fxpack/tracer.hpp"

namespace fxpack {

namespace {
thread_local Tracer* t_current = nullptr;
}  // namespace

Tracer* Tracer::current() { return t_current; }

Tracer::Tracer(std::shared_ptr<Module> root, std::shared_ptr<Graph> graph)
    : root_(std::move(root)), graph_(std::move(graph)), previous_(t_current), erased_at_start_(graph_->erased_count()) {
  for (auto& [path, m] : root_->named_modules()) paths_.emplace(m.get(), path);
  t_current = this;
  previous_recorder_ = exchange_current(this);
}

Tracer::~Tracer() {
  exchange_current(previous_recorder_);
  t_current = previous_;
}

const std::string& Tracer::path_of(const Module& m) const {
  auto it = paths_.find(&m);
  if (it == paths_.end())
    throw GraphError("module " + m.kind() + " is not part of the module tree being traced");
  return it->second;
}

Value Tracer::lift(Value v) {
  auto& var = v.variant();
  if (auto* n = std::get_if<Node*>(&var)) {
    if ((*n)->graph() != graph_.get())
      throw GraphError("node '" + (*n)->name() + "' belongs to another graph than the one being traced");
  } else if (const Tensor* t = v.if_tensor()) {
    // A tensor constant becomes an attribute of the result, read by a get_attr node.
    for (const auto& [name, c] : constants_)
      if (c.same_storage(*t) && c.byte_offset() == t->byte_offset() && c.shape() == t->shape() &&
          c.dtype() == t->dtype())
        return attr_nodes_.at(name);
    std::string name = "_tensor_constant" + std::to_string(constants_.size());
    constants_.emplace_back(name, *t);
    Node* node = made(graph_->get_attr(name));
    attr_nodes_.emplace(name, node);
    return node;
  } else if (auto* l = v.if_list()) {
    for (Value& x : l->items) x = lift(std::move(x));
  } else if (auto* tu = v.if_tuple()) {
    for (Value& x : tu->items) x = lift(std::move(x));
  } else if (auto* d = v.if_dict()) {
    for (auto& [k, x] : d->items) x = lift(std::move(x));
  }
  return v;
}

Value Tracer::record(Op op, const std::string& target, std::vector<Value> args, Dict kwargs) {
  for (Value& a : args) a = lift(std::move(a));
  for (auto& [k, v] : kwargs.items) v = lift(std::move(v));
  Node* n = made(graph_->create_node(op, target, std::move(args), std::move(kwargs)));
  // PyTorch's tracer records a function outside torch only through torch.fx.wrap(), which
  // marks the node; code generation prints a wrap line for it (and PyTorch needs that line
  // to trace the code again when it loads an exported archive). Operators and attribute
  // reads come from the Proxy itself.
  if (op == Op::CallFunction && !target.starts_with("torch.") && !target.starts_with("operator.") &&
      target != "builtins.getattr") {
    n->meta().set("is_wrapped", true);
  }
  return n;
}

Value Tracer::attribute(const Module& owner, const std::string& name) {
  if (!owner.find_parameter(name) && !owner.find_buffer(name))
    throw LookupError("module " + owner.kind() + " has no parameter or buffer '" + name + "'");
  const std::string& prefix = path_of(owner);
  std::string path = prefix.empty() ? name : prefix + "." + name;
  auto it = attr_nodes_.find(path);
  if (it != attr_nodes_.end()) return it->second;
  Node* node = made(graph_->get_attr(path));
  attr_nodes_.emplace(path, node);
  return node;
}

Node* Tracer::made(Node* n) {
  ++made_;
  appended_ = appended_ && n->next() == *graph_->end();
  if (n->op() == Op::GetAttr || n->op() == Op::CallModule) attribute_nodes_.push_back(n);
  return n;
}

std::optional<std::vector<const Node*>> Tracer::take_attribute_nodes(std::size_t others) {
  // Nothing erased: every node made is still the graph's (the list holds no dead pointer);
  // then the count says no node came from elsewhere.
  if (!appended_ || graph_->erased_count() != erased_at_start_ || made_ + others != graph_->size()) return std::nullopt;
  return std::move(attribute_nodes_);
}

}  // namespace fxpack
