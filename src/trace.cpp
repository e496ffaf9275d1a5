#include "fxpack/trace.hpp"

#include "fxpack/graph_module.hpp"
#include "fxpack/tracer.hpp"

namespace fxpack {

namespace {
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

std::shared_ptr<GraphModule> symbolic_trace(const std::shared_ptr<Module>& root,
                                            TraceOptions options) {
  if (!root) throw GraphError("symbolic_trace: null module");
  // Tracing a GraphModule runs its forward, so a dirty lazy module recompiles first.
  if (auto* gm = dynamic_cast<GraphModule*>(root.get())) gm->ensure_compiled();
  auto graph = std::make_shared<Graph>(default_dialect());
  std::vector<std::string> names = options.input_names.empty() ? root->input_names()
                                                               : options.input_names;
  std::shared_ptr<Module> result_root = root;
  MakeGraphModuleOptions make;
  make.class_name = options.class_name.empty() ? root->kind() : options.class_name;
  std::vector<const Node*> attribute_nodes;
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
    if (auto made = tracer.take_attribute_nodes(names.size())) {
      attribute_nodes = std::move(*made);
      make.attribute_nodes = &attribute_nodes;
    }
  }
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
