#include "fxpack/graph_module.hpp"

#include <algorithm>
#include <iostream>

#include "fxpack/codegen.hpp"
#include "fxpack/content_hash.hpp"
#include "fxpack/interpreter.hpp"
#include "fxpack/ops.hpp"
#include "fxpack/tracer.hpp"
#include "sole_owner.hpp"

namespace fxpack {

namespace {
std::atomic<bool> g_lazy_mode{false};
std::atomic<std::uint64_t> g_total_recompiles{0};
std::mutex g_hook_mu;
GraphModule::RecompileHook g_hook;

// fx's _copy_attr: copy the object at `target` from `from` into `to`, creating plain
// Modules for missing parents and sharing module and tensor objects.
void copy_attr(const Module& from, Module& to, const std::string& target) {
  const Module* f = &from;
  Module* t = &to;
  std::size_t start = 0;
  while (true) {
    auto dot = target.find('.', start);
    std::string part = target.substr(start, dot == std::string::npos ? dot : dot - start);
    if (dot == std::string::npos) {
      if (auto child = f->find_child(part)) t->register_module(part, child);
      else if (auto* p = f->find_parameter(part)) t->register_parameter(part, *p);
      else if (auto* b = f->find_buffer(part)) t->register_buffer(part, *b);
      else
        throw GraphError("target '" + target + "': " + f->kind() + " has no attribute '" + part + "'");
      return;
    }
    auto fchild = f->find_child(part);
    if (!fchild)
      throw GraphError("target '" + target + "': " + f->kind() + " has no submodule '" + part + "'");
    auto tchild = t->find_child(part);
    if (tchild == fchild) return;
    if (!tchild) {
      tchild = std::make_shared<Module>("Module");
      t->register_module(part, tchild);
    }
    f = fchild.get();
    t = tchild.get();
    start = dot + 1;
  }
}
}  // namespace

Value BoundForward::operator()(std::vector<Value> inputs) const { return self_->forward(inputs); }

GraphModule::GraphModule(const Module& root, std::shared_ptr<Graph> graph, std::string class_name,
                         PlanOptions plan_options, const std::vector<const Node*>* attribute_nodes)
    : GraphModule(root, std::move(graph), std::move(class_name), false, plan_options, attribute_nodes) {}

GraphModule::GraphModule(const Module& root, std::shared_ptr<Graph> graph, std::string class_name,
                         bool lazy, PlanOptions plan_options, const std::vector<const Node*>* attribute_nodes)
    : Module(std::move(class_name)), graph_(std::move(graph)), lazy_(lazy), plan_options_(plan_options) {
  if (!graph_) throw GraphError("GraphModule: null graph");
  const auto copy = [&](const Node* n) {
    if (n->op() == Op::GetAttr || n->op() == Op::CallModule) copy_attr(root, *this, n->target());
  };
  if (attribute_nodes) std::for_each(attribute_nodes->begin(), attribute_nodes->end(), copy);
  else std::for_each(graph_->begin(), graph_->end(), copy);
  if (!lazy_) recompile();
}

GraphModule::~GraphModule() = default;

LazyGraphModule::LazyGraphModule(const Module& root, std::shared_ptr<Graph> graph,
                                 std::string class_name, const std::vector<const Node*>* attribute_nodes)
    : GraphModule(root, std::move(graph), std::move(class_name), true, PlanOptions{}, attribute_nodes) {}

void GraphModule::real_recompile_locked() {
  const std::uint64_t request = requested_.load(std::memory_order_acquire);
  auto c = std::make_shared<Compiled>();
  Spare spare = std::move(spare_);  // lost if this recompile throws: it is only memory
  // One liveness analysis for both: the code's `x = None` lines and the plan's frees.
  LastUses uses = graph_->last_uses();
  c->code = generate_python_code(*graph_, uses, {.verbose = false, .dialect = std::nullopt, .line_nodes = false},
                                 std::move(spare.code))
                .src;
  if (source_check_) {
    source_check_(c->code);  // throws: nothing installed, still dirty
    source_check_ = nullptr;
  }
  try {
    c->plan = Plan::build_instructions(*graph_, *this, plan_options_, std::move(uses), std::move(spare.plan));
  } catch (const Error&) {
    c->plan_error = std::current_exception();
  }
  std::shared_ptr<const Compiled> previous = compiled_.exchange(std::move(c), std::memory_order_acq_rel);
  built_.store(request, std::memory_order_release);
  keep_memory_of(std::move(previous));
  recompiles_.fetch_add(1);
  g_total_recompiles.fetch_add(1);
}

void GraphModule::keep_memory_of(std::shared_ptr<const Compiled> previous) {
  // Out of compiled_, a snapshot gains no holders: if this is the only one, nobody reads it.
  if (!detail::sole_owner(previous)) return;
  // Made non-const by real_recompile_locked; sole owner here.
  auto& old = const_cast<Compiled&>(*previous);
  spare_.code = std::move(old.code);
  spare_.code.clear();
  spare_.plan = Plan::recycle(std::move(old.plan));
}

void GraphModule::run_recompile_hook(const GraphModule& gm) {
  RecompileHook hook;
  {
    std::lock_guard lock(g_hook_mu);
    hook = g_hook;
  }
  if (hook) hook(gm);
}

void GraphModule::recompile() {
  if (lazy_) {
    requested_.fetch_add(1, std::memory_order_acq_rel);
    return;
  }
  force_recompile();
  auto c = compiled_.load(std::memory_order_acquire);
  if (c->plan_error) std::rethrow_exception(c->plan_error);
}

void GraphModule::force_recompile() {
  {
    std::lock_guard lock(recompile_mu_);
    real_recompile_locked();
  }
  run_recompile_hook(*this);
}

void GraphModule::ensure_compiled() {
  if (!needs_recompile()) return;
  {
    std::lock_guard lock(recompile_mu_);
    if (!needs_recompile()) return;  // another thread rebuilt it while we waited
    real_recompile_locked();
  }
  run_recompile_hook(*this);
}

std::shared_ptr<const GraphModule::Compiled> GraphModule::compiled() {
  ensure_compiled();
  return compiled_.load(std::memory_order_acquire);
}

std::string GraphModule::code() { return compiled()->code; }

std::uint64_t GraphModule::content_hash() const {
  const std::uint64_t now = graph_->generation();
  std::lock_guard lock(content_hash_mu_);
  if (!content_hash_memo_ || content_hash_memo_->first != now) content_hash_memo_.emplace(now, fxpack::content_hash(*graph_));
  return content_hash_memo_->second;
}

std::string GraphModule::print_readable(bool print_output) const {
  std::string out = readable_code(*graph_, class_name());
  if (print_output) std::cout << out << '\n';
  return out;
}

std::string GraphModule::to_string() {
  return repr() + "\n" + code() + "\n" +
         "# To see more debug info, please use `graph_module.print_readable()`";
}

Value GraphModule::forward(std::span<const Value> inputs) {
  Tracer* tracer = Tracer::current();
  if (tracer) {
    for (const Value& v : inputs)
      if (v.contains_node()) return interpret_symbolically(inputs);
  }
  return plan()->run(inputs);
}

std::shared_ptr<const Plan> GraphModule::plan() {
  auto c = compiled();
  if (c->plan_error) std::rethrow_exception(c->plan_error);
  c->plan->prepare_inference(*graph_);
  return c->plan;
}

// Under a trace: run the graph node by node through the generic dispatch, so every node is
// recorded again in the tracer's graph (fx re-traces the generated forward the same way).
Value GraphModule::interpret_symbolically(std::span<const Value> inputs) {
  return Interpreter(*graph_, *this).run(std::vector<Value>(inputs.begin(), inputs.end()));
}

BoundForward GraphModule::forward_fn() {
  return BoundForward(std::static_pointer_cast<GraphModule>(shared_from_this()));
}

void GraphModule::set_source_check(SourceCheck check) {
  std::lock_guard lock(recompile_mu_);
  source_check_ = std::move(check);
}

std::uint64_t GraphModule::total_recompile_count() { return g_total_recompiles.load(); }

GraphModule::RecompileHook GraphModule::set_recompile_hook(RecompileHook hook) {
  std::lock_guard lock(g_hook_mu);
  std::swap(hook, g_hook);
  return hook;
}

void GraphModule::lint() const {
  graph_->lint();
  for (const Node* n : *graph_) {
    try {
      if (n->op() == Op::GetAttr) get_tensor(n->target());
      if (n->op() == Op::CallModule) get_submodule(n->target());
    } catch (const Error& e) {
      throw GraphError("lint: node '" + n->name() + "': " + e.what());
    }
  }
}

std::shared_ptr<GraphModule> LazyGraphModule::from_graphmodule(const std::shared_ptr<GraphModule>& gm) {
  if (gm->is_lazy()) return gm;
  return std::make_shared<LazyGraphModule>(*gm, gm->graph_ptr());
}

std::shared_ptr<GraphModule> make_graph_module(const std::shared_ptr<Module>& root,
                                               std::shared_ptr<Graph> graph,
                                               MakeGraphModuleOptions options) {
  bool lazy = options.graph_module_cls == GraphModuleClass::Lazy ||
              (options.graph_module_cls == GraphModuleClass::FromMode && lazy_graph_module_mode());
  if (lazy) return std::make_shared<LazyGraphModule>(*root, std::move(graph), options.class_name, options.attribute_nodes);
  return std::make_shared<GraphModule>(*root, std::move(graph), options.class_name, PlanOptions{},
                                       options.attribute_nodes);
}

LazyModeGuard::LazyModeGuard(bool lazy) : previous_(g_lazy_mode.exchange(lazy)) {}
LazyModeGuard::~LazyModeGuard() { g_lazy_mode.store(previous_); }
bool lazy_graph_module_mode() { return g_lazy_mode.load(); }

}  // namespace fxpack
