#include "fxpack/trace.hpp"

#include "fxpack/graph_module.hpp"

namespace fxpack {

namespace {
thread_local Tracer* t_current = nullptr;

// A forward body given as a callable, seen as a module with no members.
class CallableModule : public Module {
 public:
  CallableModule(std::function<Value(std::span<const Value>)> fn, std::vector<std::string> inputs,
                 std::string kind)
      : Module(std::move(kind)), fn_(std::move(fn)), inputs_(std::move(inputs)) {}
  Value forward(std::span<const Value> inputs) override { return fn_(inputs); }
  bool is_leaf() const override { return false; }
  std::vector<std::string> input_names() const override { return inputs_; }

 private:
  std::function<Value(std::span<const Value>)> fn_;
  std::vector<std::string> inputs_;
};
}  // namespace

std::shared_ptr<Module> module_from_callable(std::function<Value(std::span<const Value>)> fn,
                                             std::vector<std::string> input_names,
                                             std::string class_name) {
  return std::make_shared<CallableModule>(std::move(fn), std::move(input_names), std::move(class_name));
}

Tracer* Tracer::current() { return t_current; }

Tracer::Tracer(std::shared_ptr<Module> root, std::shared_ptr<Graph> graph)
    : root_(std::move(root)), graph_(std::move(graph)), previous_(t_current) {
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
  } else if (auto* t = std::get_if<Tensor>(&var)) {
    // A tensor constant becomes an attribute of the result, read by a get_attr node.
    for (const auto& [name, c] : constants_)
      if (c.same_storage(*t) && c.byte_offset() == t->byte_offset() && c.shape() == t->shape() &&
          c.dtype() == t->dtype())
        return attr_nodes_.at(name);
    std::string name = "_tensor_constant" + std::to_string(constants_.size());
    constants_.emplace_back(name, *t);
    Node* node = graph_->get_attr(name);
    attr_nodes_.emplace(name, node);
    return node;
  } else if (auto* l = std::get_if<List>(&var)) {
    for (Value& x : l->items) x = lift(std::move(x));
  } else if (auto* tu = std::get_if<Tuple>(&var)) {
    for (Value& x : tu->items) x = lift(std::move(x));
  } else if (auto* d = std::get_if<Dict>(&var)) {
    for (auto& [k, x] : d->items) x = lift(std::move(x));
  }
  return v;
}

Value Tracer::record(Op op, const std::string& target, std::vector<Value> args, Dict kwargs) {
  for (Value& a : args) a = lift(std::move(a));
  for (auto& [k, v] : kwargs.items) v = lift(std::move(v));
  Node* n = graph_->create_node(op, target, std::move(args), std::move(kwargs));
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
  Node* node = graph_->get_attr(path);
  attr_nodes_.emplace(path, node);
  return node;
}

std::shared_ptr<GraphModule> symbolic_trace(const std::shared_ptr<Module>& root,
                                            TraceOptions options) {
  if (!root) throw GraphError("symbolic_trace: null module");
  // Tracing a GraphModule runs its forward, so a dirty lazy module recompiles first.
  if (auto* gm = dynamic_cast<GraphModule*>(root.get())) gm->ensure_compiled();
  auto graph = std::make_shared<Graph>(default_dialect());
  std::vector<std::string> names = options.input_names.empty() ? root->input_names()
                                                               : options.input_names;
  std::shared_ptr<Module> result_root = root;
  {
    Tracer tracer(root, graph);
    std::vector<Value> inputs;
    for (const auto& n : names) inputs.emplace_back(graph->placeholder(n));
    Value out = root->forward(inputs);
    tracer.record(Op::Output, "output", {std::move(out)}, {});
    if (!tracer.constants().empty()) {
      // Lifted tensor constants live beside the root's own members.
      auto overlay = std::make_shared<Module>(root->kind());
      for (const auto& [n, t] : root->parameters()) overlay->register_parameter(n, t);
      for (const auto& [n, t] : root->buffers()) overlay->register_buffer(n, t);
      for (const auto& [n, m] : root->children()) overlay->register_module(n, m);
      for (const auto& [n, t] : tracer.constants()) overlay->register_buffer(n, t);
      result_root = overlay;
    }
  }
  MakeGraphModuleOptions make;
  make.class_name = options.class_name.empty() ? root->kind() : options.class_name;
  return make_graph_module(result_root, std::move(graph), make);
}

std::shared_ptr<GraphModule> symbolic_trace(const std::function<Value(const Value&)>& fn,
                                            TraceOptions options) {
  return symbolic_trace(
      [fn](std::span<const Value> in) -> Value {
        if (in.size() != 1) throw GraphError("the traced callable takes one input");
        return fn(in[0]);
      },
      std::move(options));
}

std::shared_ptr<GraphModule> symbolic_trace(const std::function<Value(std::span<const Value>)>& fn,
                                            TraceOptions options) {
  std::vector<std::string> inputs =
      options.input_names.empty() ? std::vector<std::string>{"x"} : options.input_names;
  std::string name = options.class_name.empty() ? "<lambda>" : options.class_name;
  auto root = module_from_callable(fn, inputs, name);
  options.input_names = inputs;
  options.class_name = name;
  return symbolic_trace(root, std::move(options));
}

}  // namespace fxpack
