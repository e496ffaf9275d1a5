// Plan: a Graph compiled for execution.
//
// A plan is a flat list of instructions, one per node that computes, with kernels and
// modules resolved, arguments bound to the kernel's parameters ahead of time (when a name has
// several overloads and the node's argument kinds do not decide, the overload is picked per
// call from the values), values kept in numbered slots, and each slot freed right after its
// last use (so peak memory follows the graph's liveness, as the generated code's `x = None`
// lines do in PyTorch). Values that come from slots are checked against their parameter's
// type when they arrive.
//
// Building a plan checks every target against the OpRegistry and the module tree and
// reports every missing one in a single OpError naming node and target. Running a plan is
// thread-safe: a plan is immutable and each run has its own slots. Building captures the
// tensor of every get_attr node and the module object of every call_module node (a
// GraphModule builds its plan on recompile): replacing one in the module tree afterwards
// (set_submodule; register_parameter of a tensor a get_attr names) reaches the plan at its
// next build only. A plain plan reads a captured module's parameters whenever it runs it.
//
// Inference plans (PlanOptions::optimize_for_inference, the default) run the same graph
// faster without changing it, its code or its module (src/inference/): BatchNorm folded
// into the preceding convolution, activations and residual additions fused into oneDNN
// post-ops, weights pre-packed once per input signature and thread count, activations kept
// in oneDNN's blocked layouts between its ops (reordered only where other kernels read
// them), and buffers reused across calls. Results agree with the plain plan to float32
// rounding (well within rtol 1e-4). The program takes its weights from what the
// instructions captured (the get_attr tensors, the captured modules' parameters as they are
// when the program is built) and folds and packs them, so a parameter changed after that —
// replaced in a captured module or written in place — is not sure to reach an inference
// plan (signatures already specialised keep their packed copies) until it is rebuilt
// (recompile()). Nodes the optimiser does not understand run their kernels exactly as in a
// plain plan. make_fx, compile and tests of exact kernel semantics use plain plans
// (optimize_for_inference = false).
//
// An inference plan's program (its steps) costs several times what the instructions cost to
// build, so a GraphModule's real recompile builds the instructions only
// (build_instructions) and the first call builds the program (prepare_inference), once:
// concurrent first calls wait for the one build. A plan whose program is not built runs plain.
// The program reads the modules and tensors from the instructions, never from the module
// tree as it is at the first call, so a call that runs the program and one that runs plain
// (a signature past the program's limit) compute with the same objects.
#pragma once

#include <atomic>
#include <bit>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "fxpack/graph.hpp"
#include "fxpack/module.hpp"
#include "fxpack/ops.hpp"

namespace fxpack {

namespace inference {
class Executable;
class Program;
}

struct PlanOptions {
  bool optimize_for_inference = true;
};

// Where inference plans use oneDNN's Winograd convolution (3x3, stride 1, ungrouped; on
// AVX-512 CPUs). It needs fewer multiplications per call than the direct algorithm, but its
// weights are transformed once, on the plan's first call with an input signature (by far
// the slowest part of that call: ~75 ms for one 512x512x3x3 weight), and take 1.8x
// (F(2,3)) to 4x (F(4,3)) the memory of the originals.
//   Auto (the default): Winograd where what it adds to a call's memory beyond the direct
//     convolution — transformed weights, and scratchpad beyond what the call's earlier steps
//     already need (a call has one scratchpad, as large as its largest step's) — is at most
//     the activations the convolution reads and writes, so a plan's peak stays near its
//     weights plus twice its activations (resnet18: its 56x56 stage, about 1 of its 1.1–2.1
//     ms saved per call on 1 thread; the later stages save 0.4–1.1 ms each for 3.7–11.7 MiB
//     and their weight transforms are the slow ones). The bytes are the CPU's kernels', so
//     the choice may differ between CPUs, and between like convolutions of one model (the
//     first one pays for the scratchpad). Where oneDNN has only its reference code for the
//     direct convolution, Winograd is taken.
//   Always: wherever oneDNN offers it (the lowest latency once the model is warm).
//   Off: never (the smallest memory, the fastest first call).
// The setting is process-wide, read when a plan is specialised: like the thread count it
// is part of an inference plan's signature, so changing it never invalidates a module; the
// next call specialises the plan again. The default is the environment variable
// FXPACK_WINOGRAD (auto, always or off; anything else is an error naming it) when set.
enum class Winograd : std::uint8_t { Auto, Always, Off };
void set_winograd(Winograd w);
Winograd winograd();

class Plan {
 public:
  // Compiles `graph` against `root` (for get_attr and call_module targets): the
  // instructions and, for an inference plan, its program.
  static std::shared_ptr<const Plan> build(const Graph& graph, const Module& root,
                                           const PlanOptions& options = {});
  // The instructions only; an inference plan's program waits for prepare_inference().
  static std::shared_ptr<const Plan> build_instructions(const Graph& graph, const Module& root,
                                                        const PlanOptions& options = {});
  // The same, taking `uses`: graph.last_uses() as the caller already made it for `graph` as
  // it is now (a GraphModule's recompile makes one analysis for its code and its plan; its
  // positions are the slots); a stale one is a GraphError (LastUses::check_current).
  // The instructions are written in `storage`'s memory (a previous plan's, see recycle()).
  class Storage;
  static std::shared_ptr<const Plan> build_instructions(const Graph& graph, const Module& root,
                                                        const PlanOptions& options, LastUses uses);
  static std::shared_ptr<const Plan> build_instructions(const Graph& graph, const Module& root,
                                                        const PlanOptions& options, LastUses uses,
                                                        Storage storage);
  // The memory of `plan`'s instruction blocks, emptied, when the caller held the only
  // reference to it (else nothing: the plan is merely let go). A plan's blocks are ~60 MB at
  // 10^6 nodes, and faulting in fresh pages for them was much of the cost of a recompile of
  // such a graph; a GraphModule keeps its previous plan's storage for its next recompile.
  // Its captured modules and tensors are released here.
  static Storage recycle(std::shared_ptr<const Plan> plan);
  // Builds an inference plan's program if it is not built yet, from `graph` and the
  // modules and tensors the instructions captured. `graph` must be the graph the
  // instructions were built from, unchanged but for node meta (the same
  // Graph::structure_generation; neither the instructions nor the program read meta): if
  // it was edited since, a program from it would not run what the instructions run, so the
  // plan stays plain for good (PyTorch semantics: the stale code keeps running; the next
  // recompile builds a new plan). If the build fails (a graph with nodes after its output,
  // which Graph::lint refuses), the error is kept (inference_error()) and the plan runs
  // plain, also for good. Thread-safe: one caller builds, concurrent callers wait for it;
  // once decided it reads nothing of `graph` (one atomic load). Reads the graph while
  // building, so no other thread may edit it then. Nothing to do for a plain plan.
  void prepare_inference(const Graph& graph) const;

  // One input per placeholder, in order; trailing placeholders with a default value (fx's
  // `def forward(self, x, n=3)`) may be left out, and a `*args` placeholder takes every
  // remaining input as a tuple (`**kwargs`: an empty dict).
  Value run(std::span<const Value> inputs) const;
  // The plain (unoptimised) execution of the same plan, node by node.
  Value run_plain(std::span<const Value> inputs) const;

  // Whether calls run the inference program (built, for a plan from build_instructions).
  bool optimized_for_inference() const { return program() != nullptr; }
  // Why an inference plan runs plain after all: what its program's build threw, else null.
  std::exception_ptr inference_error() const;
  // What the inference plan built so far (all zero for a plain plan).
  struct InferenceStats {
    std::size_t signatures = 0;       // input signatures (dtypes, shapes, thread count) specialised
    std::size_t primitives = 0;       // oneDNN primitives a call runs (last signature)
    // Of those, the ones too small to share between threads: they run on the calling thread
    // alone (no worker is woken for them).
    std::size_t calling_thread_primitives = 0;
    // 1x1 convolutions that run their depthwise successor in the same primitive (oneDNN fuses
    // them where the 1x1 result would not fit in the cores' L2 caches; last signature).
    std::size_t fused_depthwise = 0;
    // Steps a later call runs as kernels, as a plain plan does (last signature): neither
    // oneDNN steps nor shape checks and constants recorded by the first call. Each may allocate.
    std::size_t kernel_steps = 0;
    std::size_t arena_bytes = 0;      // activations of one call, liveness-planned (last signature)
    std::size_t scratchpad_bytes = 0;
    std::size_t packed_weight_bytes = 0;  // folded and packed weights, all signatures
  };
  InferenceStats inference_stats() const;
  // One line per step of the inference plan, naming the nodes it runs and how, e.g.
  // "conv2d [conv1 bn1 relu] batch_norm folded, post-ops: relu"; empty for a plain plan.
  std::string inference_summary() const;

  std::size_t num_inputs() const { return num_inputs_; }
  std::size_t num_slots() const { return num_slots_; }
  std::size_t num_instructions() const { return blocks_.instrs.size(); }

 private:
  enum class Kind : std::uint8_t { Input, Constant, Kernel, Overloaded, Module };

  // Where an argument comes from, in 8 bytes (bound defaults included, the benchmark's chain
  // has 1.6 operands a node: at 24 bytes, a Value inline, they were 38 of the plan's 86
  // bytes a node): a slot, a scalar held in the operand (None, a bool, an int that fits 32
  // bits, a double that a float holds exactly: the defaults and literals most calls have),
  // or a constant in the plan's constants (possibly with slots nested inside lists/tuples,
  // resolved per run).
  struct Operand {
    enum class Source : std::uint8_t { Slot, None, Bool, Int, Float, Constant, Nested };
    // Slot: the slot (Kind::Input: the input's index); Bool, Int: the value; Float: the
    // float32's bits; Constant, Nested: the index in constants.
    std::uint32_t payload = 0;
    Source source = Source::None;
    bool check = false;  // Kernel: check the value against its parameter when it arrives
    bool from_slot() const { return source == Source::Slot; }  // payload is the slot
    bool nested() const { return source == Source::Nested; }  // a constant holding Node refs
  };
  static_assert(sizeof(Operand) == 8, "operands are most of a plan: keep them a word");

  // Overloaded: the overloads, and the names of the trailing operands (kwargs).
  struct Overloads {
    std::span<const OpDef* const> defs;
    std::vector<std::string> kwarg_names;
  };

  // One per node, 32 bytes: what every instruction needs inline; the rare parts (overloads,
  // modules) sit in the plan's side tables, its description for messages in two shared ones.
  // Instruction i computes slot i (the i-th node's value; a plan is only complete when every
  // node before the output compiled).
  struct Instr {
    Kind kind;
    // Its operands: operands[previous operands_end, operands_end) (one block for all
    // instructions: no allocation per instruction), read through Plan::operands(i).
    std::uint32_t operands_end = 0;
    const OpDef* op = nullptr;  // Kernel: the bound overload (its kernel runs)
    // The slots to release after this instruction: frees[previous frees_end, frees_end).
    std::uint32_t frees_end = 0;
    // For messages, kept at build time (the graph may change, or its nodes go away, while
    // this plan still runs): the node's name, names[previous name_end, name_end), and its
    // op and target, targets_[target] ("call_function operator.add"; one per distinct pair).
    std::uint32_t name_end = 0;
    std::uint32_t target = 0;
    // Overloaded: overloads_[extra]; Module: modules_[extra].
    std::uint32_t extra = 0;
  };
  static_assert(sizeof(Instr) == 32, "an Instr per node: keep it small");

  struct Builder;  // plan.cpp: compiles the graph node by node
  // The blocks a plan's instructions take, each every instruction's in instruction order
  // (Storage holds them between plans).
  struct Blocks {
    std::vector<Instr> instrs;
    std::vector<Operand> operands;
    std::vector<Value> constants;       // the operands' that do not fit in one
    std::vector<std::uint32_t> frees;   // Instr::frees_end
    std::string names;                  // node names, Instr::name_end
  };
  friend class inference::Executable;
  friend class inference::Program;
  Value resolve(const Value& v, std::vector<Value>& slots) const;
  // Instruction i, and its operands.
  const Instr& instr(std::size_t i) const { return blocks_.instrs[i]; }
  std::span<const Operand> operands(std::size_t i) const {
    const auto [begin, end] = part(i, &Instr::operands_end);
    return {blocks_.operands.data() + begin, end - begin};
  }
  // Instruction i's part [begin, end) of a block each instruction ends its part of (`end`:
  // operands_end, frees_end, name_end): it begins where the previous instruction's ends.
  std::pair<std::uint32_t, std::uint32_t> part(std::size_t i, std::uint32_t Instr::*end) const {
    return {i ? blocks_.instrs[i - 1].*end : 0, blocks_.instrs[i].*end};
  }
  // A Constant or Nested operand's constant.
  const Value& constant(const Operand& o) const { return blocks_.constants[o.payload]; }
  // Kind::Constant instruction i's value (the tensor its get_attr captured).
  const Value& constant_of(std::size_t i) const { return constant(operands(i)[0]); }
  // An operand's value in a run with these slots (inline: the interpreter's hot loop).
  Value value(const Operand& o, std::vector<Value>& slots) const {
    switch (o.source) {
      case Operand::Source::Slot: return slots[o.payload];
      case Operand::Source::None: return Value();
      case Operand::Source::Bool: return Value(o.payload != 0);
      case Operand::Source::Int: return Value(std::int64_t{static_cast<std::int32_t>(o.payload)});
      case Operand::Source::Float: return Value(static_cast<double>(std::bit_cast<float>(o.payload)));
      case Operand::Source::Constant: return constant(o);
      case Operand::Source::Nested: break;
    }
    return resolve(constant(o), slots);
  }
  // Runs instruction `i` (a kernel or module) into its slot; `args` is scratch space.
  void run_instr(std::size_t i, std::vector<Value>& slots, std::vector<Value>& args) const;
  // The plan's output from the slots.
  Value output(std::vector<Value>& slots) const;
  // "node 'add' (call_function operator.add)": instruction `i`'s node as it was built.
  std::string where(std::size_t i) const;
  // Kind::Module: the module the instruction runs.
  const Module& module(const Instr& in) const { return *modules_[in.extra]; }
  // Kernel: its op; Overloaded: the overloads it chooses from per run; else none.
  std::span<const OpDef* const> candidates(const Instr& in) const {
    if (in.kind == Kind::Kernel) return {&in.op, 1};
    if (in.kind == Kind::Overloaded) return overloads_[in.extra].defs;
    return {};
  }
  // The inference program once prepare_inference() has built it, else null.
  const inference::Program* program() const {
    return inference_ready_.load(std::memory_order_acquire) ? inference_.get() : nullptr;
  }

  Blocks blocks_;
  // Node → slot for the nodes nested operands hold (resolved per run, when the graph may
  // have changed; the inference program's specialisation reads it too).
  detail::PointerIndex<Node> slot_of_;
  std::vector<std::string> targets_;    // "call_function operator.add", one per distinct op/target
  std::vector<Overloads> overloads_;    // Kind::Overloaded instructions'
  std::vector<std::shared_ptr<const Module>> modules_;  // Kind::Module instructions' (keeps them alive)
  Operand output_;
  std::size_t num_inputs_ = 0;     // placeholders
  std::size_t num_required_ = 0;   // placeholders before the first default or *args
  std::int32_t varargs_ = -1;      // the index of a *args placeholder
  std::vector<Value> defaults_;    // per placeholder: its default (None when it has none)
  std::size_t num_slots_ = 0;
  // The inference program: wanted by the options; built from this graph at this structure
  // generation (compared, never followed); it or the error of its build written once under
  // inference_mu_, then inference_ready_ is set (release), after which they are only read.
  bool wants_inference_ = false;
  const Graph* source_graph_ = nullptr;
  std::uint64_t source_generation_ = 0;
  mutable std::mutex inference_mu_;
  mutable std::atomic<bool> inference_ready_{false};
  mutable std::shared_ptr<const inference::Program> inference_;
  mutable std::exception_ptr inference_error_;
};

// A plan's memory without its contents (Plan::recycle): what the next build writes in.
class Plan::Storage {
 public:
  Storage() = default;

 private:
  friend class Plan;
  Blocks blocks_;
};

}  // namespace fxpack
