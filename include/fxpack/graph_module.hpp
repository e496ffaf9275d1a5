// GraphModule and LazyGraphModule: a Graph with the modules and tensors it refers to.
//
// Construction copies what the graph's get_attr and call_module nodes name from a root
// module into the new module's own tree (sharing the objects, as fx's GraphModule does).
// A *real recompile* generates the source text (`code()`) and builds the execution Plan.
//
//                     GraphModule                 LazyGraphModule
//   construction,     real recompile now          marks dirty only
//   recompile()
//   editing nodes     nothing (the old plan keeps running, as in PyTorch)
//   call, forward,    runs                        real recompile if dirty, then runs
//   saved forward
//   code(),           returns                     real recompile if dirty
//   to_string()
//   print_readable()  renders from the graph, never changes state
//
// Lazy regeneration is thread-safe: any number of threads may call a dirty module at once;
// exactly one real recompile happens and all of them run the rebuilt plan. A recompile()
// that arrives while a rebuild is running is not lost: the module stays dirty and the next
// use rebuilds again. Real recompiles are counted per module and process-wide, and a hook
// can observe each one; the hook runs after the rebuild, outside the module's lock, so it
// may use the module (call it, or even force_recompile() it).
//
// A real recompile builds the plan's instructions, capturing the tensor each get_attr node
// names and the module each call_module node names as the module tree holds them then:
// replacing one afterwards (set_submodule; register_parameter at a get_attr's path) is
// picked up by the next real recompile, never before, whichever way a call runs. An
// inference plan's program (plan.hpp) is built by the first call after the recompile, once,
// from the graph as the recompile saw it and the objects the recompile captured. The
// parameters of a captured module are read when the program is built (for its fused steps)
// and whenever the module's own kernel runs, so one replaced inside a captured module after
// the first call may reach the fused steps only at the next recompile. Editing nodes between
// the recompile and the first call leaves the stale plan running unoptimised until the next
// recompile; changing only node meta (Meta::set) does not, as plans never read meta.
//
// A module keeps the memory of its previous snapshot's source and plan, emptied (what they
// captured is released), when nothing else held that snapshot once the next replaced it:
// the following recompile writes there instead of faulting in fresh pages, which at 10^6
// nodes was most of its cost. The price is that a module recompiled more than once holds
// that memory between recompiles (~150 MB at 10^6 nodes, ~150 bytes a node), where it held
// it only during them. A module's first recompile has nothing to reuse.
//
// A real recompile always produces the source text. If some target has no kernel, the plan
// error is kept: an eager GraphModule's recompile() throws it, and every forward throws it,
// but code() and printing still work, so such graphs can be inspected and saved.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "fxpack/graph.hpp"
#include "fxpack/module.hpp"
#include "fxpack/plan.hpp"

namespace fxpack {

class GraphModule;

// A forward bound to its module (Python's bound method `gm.forward`): keeps the module
// alive and reports it as `self()`, like `__self__`.
class BoundForward {
 public:
  explicit BoundForward(std::shared_ptr<GraphModule> self) : self_(std::move(self)) {}
  Value operator()(std::vector<Value> inputs) const;
  template <class... A>
  Value operator()(A&&... inputs) const {
    return (*this)(std::vector<Value>{Value(std::forward<A>(inputs))...});
  }
  const std::shared_ptr<GraphModule>& self() const { return self_; }

 private:
  std::shared_ptr<GraphModule> self_;
};

class GraphModule : public Module {
 public:
  // An eager GraphModule over `graph`, copying what the graph names from `root`; performs
  // the first real recompile (and throws if a target has no kernel). make_graph_module()
  // picks the class by mode. `plan_options` say how its plans are built (by default
  // optimised for inference; see plan.hpp). `attribute_nodes`: see MakeGraphModuleOptions.
  GraphModule(const Module& root, std::shared_ptr<Graph> graph,
              std::string class_name = "GraphModule", PlanOptions plan_options = {},
              const std::vector<const Node*>* attribute_nodes = nullptr);
  ~GraphModule() override;

  Graph& graph() { return *graph_; }
  const Graph& graph() const { return *graph_; }
  const std::shared_ptr<Graph>& graph_ptr() const { return graph_; }
  const std::string& class_name() const { return kind(); }
  bool is_lazy() const { return lazy_; }

  // Eager: real recompile now (throws the plan error, if any). Lazy: mark dirty.
  void recompile();
  // Real recompile now, whatever the mode (fx's _LazyGraphModule.force_recompile).
  void force_recompile();
  // Real recompile if dirty (what a call does first).
  void ensure_compiled();
  bool needs_recompile() const {
    return requested_.load(std::memory_order_acquire) != built_.load(std::memory_order_acquire);
  }

  // The generated source (fx's `gm.code`).
  std::string code();
  // content_hash.hpp's content_hash of graph() as the graph is now — what a format 3 pickle
  // stores — computed once per Graph::generation (saving an unchanged module again reads
  // no node). Never generates code.
  std::uint64_t content_hash() const;
  // torch 1.13's print_readable text; printed to stdout too when print_output is true.
  std::string print_readable(bool print_output = true) const;
  // fx's str(gm): module repr, code, and a reminder line.
  std::string to_string();

  Value forward(std::span<const Value> inputs) override;
  // The plan a call runs (a dirty lazy module is real-recompiled first, an inference plan's
  // program built); throws the plan's error when a target has no kernel.
  std::shared_ptr<const Plan> plan();
  // A saved `gm.forward`.
  BoundForward forward_fn();

  // Real recompiles of this module so far.
  std::uint64_t recompile_count() const { return recompiles_.load(); }
  // Real recompiles of all GraphModules in this process so far.
  static std::uint64_t total_recompile_count();
  // Called after every real recompile, on the thread that did it, with no lock of the
  // module held; returns the previous hook.
  using RecompileHook = std::function<void(const GraphModule&)>;
  static RecompileHook set_recompile_hook(RecompileHook hook);

  // Checks the graph (Graph::lint) and that every get_attr/call_module target exists.
  void lint() const;

  // A check the next real recompile runs on the source it generates, before anything is
  // installed (pickle loading defers its source-hash comparison to it, so loading need not
  // generate code). If the check throws, the recompile throws that, nothing changes and the
  // module stays dirty: the check runs again on the next use. Once it returns it is dropped.
  using SourceCheck = std::function<void(const std::string& source)>;
  void set_source_check(SourceCheck check);

 private:
  struct Compiled {
    std::string code;
    std::shared_ptr<const Plan> plan;
    std::exception_ptr plan_error;
  };
  std::shared_ptr<const Compiled> compiled();
  // Rebuilds the snapshot; the caller holds recompile_mu_ and runs the hook after letting
  // go of it.
  void real_recompile_locked();
  // Keeps `previous`'s memory in spare_ if the caller holds the only reference to it.
  void keep_memory_of(std::shared_ptr<const Compiled> previous);
  static void run_recompile_hook(const GraphModule& gm);
  Value interpret_symbolically(std::span<const Value> inputs);

 protected:
  // `attribute_nodes`: see MakeGraphModuleOptions.
  GraphModule(const Module& root, std::shared_ptr<Graph> graph, std::string class_name, bool lazy,
              PlanOptions plan_options, const std::vector<const Node*>* attribute_nodes = nullptr);

 private:

  std::shared_ptr<Graph> graph_;
  bool lazy_;
  PlanOptions plan_options_;
  // Dirty is requested_ != built_: recompile() bumps requested_; a rebuild records the
  // request it started from in built_, so a request made during the rebuild stays pending.
  std::atomic<std::uint64_t> requested_{1};
  std::atomic<std::uint64_t> built_{0};
  std::mutex recompile_mu_;
  std::atomic<std::shared_ptr<const Compiled>> compiled_;
  std::atomic<std::uint64_t> recompiles_{0};
  SourceCheck source_check_;  // guarded by recompile_mu_
  // The previous snapshot's memory, for the next recompile (see above; guarded by
  // recompile_mu_).
  struct Spare {
    std::string code;
    Plan::Storage plan;
  };
  Spare spare_;
  // content_hash()'s last answer: (generation, hash).
  mutable std::mutex content_hash_mu_;
  mutable std::optional<std::pair<std::uint64_t, std::uint64_t>> content_hash_memo_;
};

// The lazy flavour; a GraphModule with is_lazy() true. Exists so that code can say which
// class it wants and test for it with dynamic_cast, as PyTorch code does with isinstance.
class LazyGraphModule : public GraphModule {
 public:
  // Dirty until first used.
  // `attribute_nodes`: see MakeGraphModuleOptions.
  LazyGraphModule(const Module& root, std::shared_ptr<Graph> graph,
                  std::string class_name = "GraphModule",
                  const std::vector<const Node*>* attribute_nodes = nullptr);
  // `gm` itself when already lazy, else a new lazy module over the same root and graph.
  static std::shared_ptr<GraphModule> from_graphmodule(const std::shared_ptr<GraphModule>& gm);
};

enum class GraphModuleClass : std::uint8_t {
  FromMode,  // LazyGraphModule while use_lazy_graph_module(true) is in force
  Eager,
  Lazy,
};

struct MakeGraphModuleOptions {
  std::string class_name = "GraphModule";
  GraphModuleClass graph_module_cls = GraphModuleClass::FromMode;
  // The graph's get_attr and call_module nodes in graph order, when the caller already has
  // them (a load collects them as it builds the graph): the module copies what they name
  // from the root without walking every node again (a cache miss per node of a large
  // graph). Null: the graph is walked. Read only during the call.
  const std::vector<const Node*>* attribute_nodes = nullptr;
};

// fx's _make_graph_module.
std::shared_ptr<GraphModule> make_graph_module(const std::shared_ptr<Module>& root,
                                               std::shared_ptr<Graph> graph,
                                               MakeGraphModuleOptions options = {});

// RAII: sets the process-wide mode for FromMode and restores the previous one on exit.
class LazyModeGuard {
 public:
  explicit LazyModeGuard(bool lazy);
  ~LazyModeGuard();
  LazyModeGuard(const LazyModeGuard&) = delete;
  LazyModeGuard& operator=(const LazyModeGuard&) = delete;

 private:
  bool previous_;
};
[[nodiscard]] inline LazyModeGuard use_lazy_graph_module(bool lazy) { return LazyModeGuard(lazy); }
bool lazy_graph_module_mode();

}  // namespace fxpack
