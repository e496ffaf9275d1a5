// The inference side of a Plan (PlanOptions::optimize_for_inference): the graph's nodes
// grouped into steps, most of them oneDNN primitives with fused post-ops, the rest the
// plan's own kernels. Internal to src/.
//
// Built by the plan's prepare_inference (pattern matching over the graph and the tensors and
// modules the plan's instructions captured; no tensor data is read). The first call with an
// input signature (dtypes, shapes, thread count) specialises it: primitives are created for
// those shapes with the layouts oneDNN prefers, BatchNorm is folded into the weights, which
// are then packed once into the primitive's layout, and every intermediate buffer gets an
// offset in one arena planned from the values' lifetimes. Later calls with that signature
// take a workspace (arena, scratchpad, bound oneDNN memories) from a pool and run the
// primitives on it; fxpack allocates nothing there, oneDNN does (its per-execution argument
// map and its kernels' std::function loops; docs/design.md). Kernel steps whose results the
// signature decides (shape checks) are recorded once; other kernel steps allocate as in a
// plain plan. Calls from several threads run at once, each on its own workspace.
#pragma once

#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "fxpack/plan.hpp"
#include "patterns.hpp"

namespace fxpack::inference {

struct Step;
class Executable;

class Program {
 public:
  // The steps of `plan`'s instructions for `graph` (the graph they were built from, as it
  // was then): the tensors and modules they use are the ones the instructions captured.
  // Throws GraphError for a graph with nodes after its output.
  static std::shared_ptr<const Program> build(const Plan& plan, const Graph& graph);
  ~Program();

  Value run(std::span<const Value> inputs) const;
  std::string summary() const;
  Plan::InferenceStats stats() const;

  const Plan& plan() const { return plan_; }
  const std::vector<Step>& steps() const { return steps_; }
  const std::vector<std::uint32_t>& output_slots() const { return output_slots_; }
  std::size_t num_slots() const;

 private:
  explicit Program(const Plan& plan);

  const Plan& plan_;  // the plan that owns this program
  std::vector<Step> steps_;
  std::vector<std::uint32_t> output_slots_;  // slots the plan's output reads

  mutable std::mutex mu_;
  mutable std::vector<std::shared_ptr<Executable>> executables_;  // one per signature
};

}  // namespace fxpack::inference
