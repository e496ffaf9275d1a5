// Plan: a Graph compiled for execution.
//
// A plan is a flat list of instructions, one per node that computes, with kernels and
// modules resolved, arguments bound to the kernel's parameters ahead of time, values kept
// in numbered slots, and each slot freed right after its last use (so peak memory follows
// the graph's liveness, as the generated code's `x = None` lines do in PyTorch).
//
// Building a plan checks every target against the OpRegistry and the module tree and
// reports every missing one in a single OpError naming node and target. Running a plan is
// thread-safe: a plan is immutable and each run has its own slots. Parameters are captured
// when the plan is built (a GraphModule rebuilds its plan on recompile).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "fxpack/graph.hpp"
#include "fxpack/module.hpp"
#include "fxpack/ops.hpp"

namespace fxpack {

class Plan {
 public:
  // Compiles `graph` against `root` (for get_attr and call_module targets).
  static std::shared_ptr<const Plan> build(const Graph& graph, const Module& root);

  Value run(std::span<const Value> inputs) const;

  std::size_t num_inputs() const { return num_inputs_; }
  std::size_t num_slots() const { return num_slots_; }
  std::size_t num_instructions() const { return instrs_.size(); }

 private:
  enum class Kind : std::uint8_t { Input, Constant, Kernel, Module };

  // Where an argument comes from: a slot, or a constant (possibly with slots nested inside
  // lists/tuples, resolved per run).
  struct Operand {
    std::int32_t slot = -1;  // >= 0: take slot's value
    bool nested = false;     // constant holds Node refs to resolve
    Value constant;
  };

  struct Instr {
    Kind kind;
    std::uint32_t out;  // result slot
    KernelFn kernel = nullptr;
    std::shared_ptr<const Module> module;  // for Kind::Module (keeps it alive)
    const ModuleKind* module_kind = nullptr;
    std::vector<Operand> operands;
    std::vector<std::uint32_t> frees;  // slots to release after this instruction
    // "node 'add' (call_function operator.add)" for messages: a range of where_, because
    // the graph may change (or its nodes go away) while this plan still runs.
    std::uint32_t where_begin = 0, where_end = 0;
  };

  Value resolve(const Value& v, std::vector<Value>& slots) const;

  std::vector<Instr> instrs_;
  std::unordered_map<const Node*, std::uint32_t> slot_of_;  // for nested operands
  std::string where_;
  Operand output_;
  std::size_t num_inputs_ = 0;
  std::size_t num_slots_ = 0;
};

}  // namespace fxpack
