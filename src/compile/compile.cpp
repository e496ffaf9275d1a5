// compile(): capture with make_fx per input signature, optimise, cache behind guards.
#include "fxpack/compile.hpp"

#include <mutex>
#include <optional>
#include <unordered_map>

#include "fxpack/make_fx.hpp"

namespace fxpack {

struct CompiledFn::State {
  std::shared_ptr<Module> target;     // null when `disabled` is set
  bool callable = false;
  std::optional<DisabledFn> disabled;  // compile(disable(f)): never compiled
  CompileOptions options;

  struct Entry {
    std::shared_ptr<GraphModule> gm;  // null: run the target eagerly (graph break)
    std::uint64_t module_version = 0;
    PassReport report;
  };
  mutable std::mutex mu;
  std::unordered_map<std::string, std::shared_ptr<const Entry>> cache;

  std::atomic<std::uint64_t> calls{0}, hits{0}, misses{0}, guard_failures{0}, eager{0};

  std::uint64_t module_version() const {
    auto* gm = dynamic_cast<GraphModule*>(target.get());
    return gm ? gm->recompile_count() : 0;
  }
  Value run_eager(std::vector<Value> inputs) const { return (*target)(std::move(inputs)); }
  std::shared_ptr<const Entry> build(const std::vector<Value>& inputs, std::uint64_t version) const;
};

std::shared_ptr<const CompiledFn::State::Entry> CompiledFn::State::build(const std::vector<Value>& inputs,
                                                                        std::uint64_t version) const {
  auto e = std::make_shared<Entry>();
  e->module_version = version;
  MakeFxOptions mo;
  mo.class_name = target->kind();
  mo.graph_module_cls = GraphModuleClass::Eager;
  OpLevelCapture cap;
  try {
    cap = MakeFx(target, callable, mo).capture(inputs);
  } catch (const DisabledTraceError&) {
    return e;  // the body reaches a disabled function: run it eagerly
  }
  Graph& g = *cap.graph;
  PassReport& r = e->report;
  r.nodes_before = g.size();
  if (options.dead_code_elimination) r.dead += passes::dead_code_elimination(g);
  if (options.common_subexpression_elimination) r.cse += passes::common_subexpression_elimination(g);
  if (options.constant_folding) {
    r.folded += passes::constant_folding(g, *cap.root);
    if (options.dead_code_elimination) r.dead += passes::dead_code_elimination(g);
  }
  if (options.fuse_elementwise) {
    auto [chains, nodes] = passes::fuse_elementwise(g, options.min_fusion_length);
    r.fused_chains = chains;
    r.fused_nodes = nodes;
  }
  g.lint();
  r.nodes_after = g.size();
  // An eager GraphModule builds its plan now (and reports a missing kernel now). Its plan is
  // a plain one: the graph is already optimised at the op level, and each of its nodes runs
  // the kernel make_fx recorded.
  e->gm = std::make_shared<GraphModule>(*cap.root, cap.graph, target->kind(),
                                        PlanOptions{.optimize_for_inference = false});
  return e;
}

Value CompiledFn::operator()(std::vector<Value> inputs) const {
  State& s = *state_;
  s.calls.fetch_add(1);
  if (s.disabled) {
    s.eager.fetch_add(1);
    return (*s.disabled)(std::move(inputs));
  }
  // Like dynamo calling gm.forward: a dirty lazy module is real-recompiled on the first call.
  if (auto* gm = dynamic_cast<GraphModule*>(s.target.get())) gm->ensure_compiled();
  const std::uint64_t version = s.module_version();
  const std::string key = signature(inputs);
  std::shared_ptr<const State::Entry> entry;
  bool full = false;
  {
    std::lock_guard lock(s.mu);
    auto it = s.cache.find(key);
    if (it != s.cache.end()) {
      if (it->second->module_version == version) {
        entry = it->second;
      } else {
        s.guard_failures.fetch_add(1);
        s.cache.erase(it);
      }
    }
    full = !entry && s.cache.size() >= s.options.cache_size_limit;
  }
  if (entry) {
    s.hits.fetch_add(1);
  } else if (full) {
    s.eager.fetch_add(1);
    return s.run_eager(std::move(inputs));
  } else {
    s.misses.fetch_add(1);
    entry = s.build(inputs, version);
    std::lock_guard lock(s.mu);
    auto [it, inserted] = s.cache.try_emplace(key, entry);
    if (!inserted) entry = it->second;  // another thread compiled the same signature first
  }
  if (!entry->gm) {
    s.eager.fetch_add(1);
    return s.run_eager(std::move(inputs));
  }
  return entry->gm->forward(inputs);
}

CompileStats CompiledFn::stats() const {
  const State& s = *state_;
  CompileStats st;
  st.calls = s.calls.load();
  st.cache_hits = s.hits.load();
  st.cache_misses = s.misses.load();
  st.guard_failures = s.guard_failures.load();
  st.eager_calls = s.eager.load();
  return st;
}

std::size_t CompiledFn::cache_size() const {
  std::lock_guard lock(state_->mu);
  return state_->cache.size();
}

void CompiledFn::reset() const {
  std::lock_guard lock(state_->mu);
  state_->cache.clear();
}

std::shared_ptr<GraphModule> CompiledFn::compiled_module(const std::vector<Value>& inputs) const {
  std::lock_guard lock(state_->mu);
  auto it = state_->cache.find(signature(inputs));
  return it == state_->cache.end() ? nullptr : it->second->gm;
}

PassReport CompiledFn::report(const std::vector<Value>& inputs) const {
  std::lock_guard lock(state_->mu);
  auto it = state_->cache.find(signature(inputs));
  return it == state_->cache.end() ? PassReport{} : it->second->report;
}

std::string CompiledFn::signature(const std::vector<Value>& inputs) {
  std::string key;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (i) key += "; ";
    const Value& v = inputs[i];
    if (v.is_tensor()) {
      const Tensor& t = v.tensor();
      key += t.defined() ? std::string(dtype_name(t.dtype())) + t.shape().to_string() : "undefined";
    } else {
      key += python_repr(v);  // non-tensor inputs are specialised on their value
    }
  }
  return key;
}

namespace {
CompiledFn make(std::shared_ptr<Module> target, bool callable, CompileOptions options) {
  if (!target) throw GraphError("compile: null module");
  auto s = std::make_shared<CompiledFn::State>();
  s->target = std::move(target);
  s->callable = callable;
  s->options = options;
  return CompiledFn(std::move(s));
}
}  // namespace

CompiledFn compile(std::shared_ptr<Module> module, CompileOptions options) {
  return make(std::move(module), false, options);
}

CompiledFn compile(const BoundForward& forward, CompileOptions options) {
  return make(forward.self(), false, options);
}

CompiledFn compile(const DisabledFn& fn, CompileOptions options) {
  auto s = std::make_shared<CompiledFn::State>();
  s->disabled = fn;
  s->options = options;
  return CompiledFn(std::move(s));
}

CompiledFn compile(std::function<Value(const Value&)> fn, CompileOptions options) {
  if (!fn) throw GraphError("compile: empty callable");
  auto m = callable_module(
      [fn = std::move(fn)](std::span<const Value> in) -> Value {
        if (in.size() != 1) throw GraphError("compile: the callable takes one input");
        return fn(in[0]);
      },
      {"x"});
  return make(std::move(m), true, options);
}

CompiledFn compile(std::function<Value(std::span<const Value>)> fn, std::vector<std::string> input_names,
                   CompileOptions options) {
  if (!fn) throw GraphError("compile: empty callable");
  return make(callable_module(std::move(fn), std::move(input_names)), true, options);
}

}  // namespace fxpack
