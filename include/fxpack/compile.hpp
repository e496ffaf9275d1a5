// compile: the optimizing entry point (the role of torch.compile).
//
// `auto c = compile(module_or_callable, options); c(x)` — the first call with a given input
// signature (the dtype and shape of every tensor input, the value of every other input)
// captures the op-level graph with make_fx (which real-recompiles a dirty lazy GraphModule
// first, like dynamo calling gm.forward), optimises it with the passes below, builds an
// execution plan, and caches it behind guards on that signature. A call with the same
// signature runs the cached plan (a cache hit); another signature compiles again (a miss).
// For a GraphModule target the guards also check its real-recompile count, so editing the
// graph and recompiling invalidates the cache. Parameters are captured when compiling
// (replacing a module's parameter objects afterwards is not seen; call reset()).
//
// Passes, each usable on its own (fxpack::passes):
//   dead_code_elimination            unused pure nodes (and the detach/empty nodes make_fx keeps)
//   common_subexpression_elimination identical pure nodes on identical inputs
//   constant_folding                 nodes computed from parameters/buffers only, evaluated
//                                    once and stored as `_folded_constantN` buffers
//   fuse_elementwise                 chains of the op table's fusable elementwise ops (its
//                                    `fusion` entries: sin, cos, exp, tanh, sigmoid, relu,
//                                    neg, abs, add/sub/mul/div/floor_divide by a Python number)
//                                    become one `fxpack.fused_elementwise` node that makes one
//                                    pass over the data (float32/float64; other dtypes run op
//                                    by op)
//
// Dead-code elimination, CSE and constant folding follow the table's purity: side-effecting
// ops (torch._assert) and ops the table does not know are never removed or merged,
// nondeterministic ones (empty) never merged or folded.
//
// Results equal the uncompiled module's to rtol 1e-5, atol 1e-6. A fused step runs the same
// functor as the unfused kernel; they can differ in the last bits only where the functor has
// a vectorised form (sin and cos: a polynomial within 2 ulp for float32; exp, tanh: Eigen's;
// tanh, sigmoid, abs, neg, add/sub/mul/div: oneDNN's primitives on large float32 tensors),
// which the unfused kernel uses past a size threshold and a fused chain (without oneDNN) on
// every block.
//
// A callable wrapped by disable() is never compiled: compile(disable(f)) runs f as is, and a
// target whose body reaches a disabled function runs eagerly for that signature.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "fxpack/disable.hpp"
#include "fxpack/graph_module.hpp"

namespace fxpack {

struct CompileOptions {
  bool dead_code_elimination = true;
  bool common_subexpression_elimination = true;
  bool constant_folding = true;
  bool fuse_elementwise = true;
  // Shortest chain worth a fused node.
  std::size_t min_fusion_length = 2;
  // Signatures compiled per target before further new signatures run eagerly (dynamo's
  // cache_size_limit).
  std::size_t cache_size_limit = 8;
};

struct CompileStats {
  std::uint64_t calls = 0;
  std::uint64_t cache_hits = 0;
  std::uint64_t cache_misses = 0;    // captures + optimisations (compiles)
  std::uint64_t guard_failures = 0;  // cached entries dropped because the module recompiled
  std::uint64_t eager_calls = 0;     // disabled targets, graph breaks, cache limit reached
};

// What the passes did in one compile.
struct PassReport {
  std::size_t nodes_before = 0, nodes_after = 0;
  std::size_t dead = 0, cse = 0, folded = 0, fused_chains = 0, fused_nodes = 0;
};

class CompiledFn {
 public:
  Value operator()(std::vector<Value> inputs) const;
  template <class... A>
  Value operator()(A&&... inputs) const {
    return (*this)(std::vector<Value>{Value(std::forward<A>(inputs))...});
  }

  CompileStats stats() const;
  // Cached signatures.
  std::size_t cache_size() const;
  // Drops every cached entry (the next call of each signature compiles again).
  void reset() const;
  // The optimised module cached for the signature of `inputs`, or nullptr.
  std::shared_ptr<GraphModule> compiled_module(const std::vector<Value>& inputs) const;
  // The pass report of the entry cached for the signature of `inputs` (zeros if none).
  PassReport report(const std::vector<Value>& inputs) const;
  // The signature key for `inputs` ("float32[2, 3]; 3.0").
  static std::string signature(const std::vector<Value>& inputs);

  struct State;
  explicit CompiledFn(std::shared_ptr<State> state) : state_(std::move(state)) {}

 private:
  std::shared_ptr<State> state_;
};

CompiledFn compile(std::shared_ptr<Module> module, CompileOptions options = {});
CompiledFn compile(const BoundForward& forward, CompileOptions options = {});
CompiledFn compile(const DisabledFn& fn, CompileOptions options = {});
CompiledFn compile(std::function<Value(const Value&)> fn, CompileOptions options = {});
CompiledFn compile(std::function<Value(std::span<const Value>)> fn, std::vector<std::string> input_names,
                   CompileOptions options = {});

namespace passes {

// Removes nodes without users that have no effect: everything but placeholders, the output,
// and in-place ops whose mutated input is read elsewhere or is a placeholder. Returns the
// number of nodes removed.
std::size_t dead_code_elimination(Graph& graph);
// Replaces each pure call_function/call_method/get_attr node that repeats an earlier one
// (same op, target, arguments) by that one. Returns the number of nodes replaced.
std::size_t common_subexpression_elimination(Graph& graph);
// Evaluates call_function nodes whose inputs are all get_attr tensors of `root` (or results
// of folded nodes) and whose result is a tensor; each folded node becomes a get_attr of a new
// buffer `_folded_constantN` registered on `root`. Returns the number of nodes folded (the
// get_attr nodes left unused are for dead_code_elimination).
std::size_t constant_folding(Graph& graph, Module& root);
// Replaces chains of at least `min_length` fusable elementwise nodes, each intermediate used
// only by the next, by one fxpack.fused_elementwise node. Returns {chains, nodes fused}.
std::pair<std::size_t, std::size_t> fuse_elementwise(Graph& graph, std::size_t min_length = 2);

}  // namespace passes

}  // namespace fxpack
