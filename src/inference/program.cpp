#include "program.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include <omp.h>
#include <sys/mman.h>

#include "attention.hpp"
#include "fxpack/threads.hpp"
#include "kept_memory.hpp"
#include "ops/dnnl/primitives.hpp"
#include "ops/kernels.hpp"
#include "ops/simd/activation_simd.hpp"
#include "result_pool.hpp"

namespace fxpack::inference {

namespace dnb = ops::dnnl_backend;
using dnb::Dims;
using dnnl::memory;

// ---- steps (built with the plan) ------------------------------------------------------

enum class StepKind : std::uint8_t {
  Input,      // the plan's placeholder instruction
  Constant,   // the plan's get_attr instruction
  Generic,    // the plan's kernel or module, as in a plain plan
  Conv,       // convolution [+ folded batch norm] [+ post-ops]
  Linear,     // matmul with packed weights [+ post-ops]
  BatchNorm,
  LayerNorm,
  Eltwise,
  Binary,     // add or mul, the second operand broadcast
  Pool,       // max, avg or adaptive avg (equal windows)
  View,       // flatten of a dense buffer
  Alias,      // identity at inference
  Attention,  // nn.MultiheadAttention's self-attention and the getitems reading it (attention.hpp)
};

struct PostOpSpec {
  bool add = false;  // an addition of the step's `other` operand; else `eltwise`
  dnb::Eltwise eltwise;
};

// A depthwise convolution (with what folds or fuses into it) that reads a 1x1 convolution
// step's result and nothing else does: oneDNN runs both in one primitive where it can fuse
// them, else the step runs them one after the other.
struct DepthwiseSpec {
  Pattern op;
  std::optional<Pattern> bn;
  std::vector<PostOpSpec> post_ops;
};

struct Step {
  StepKind kind = StepKind::Generic;
  std::uint32_t out = 0;           // result slot
  std::int32_t src = -1;           // main operand slot
  std::int32_t other = -1;         // Binary operand, or the addend of an Add post-op
  Pattern op;                      // the main op's pattern (weights, windows, ...)
  std::optional<Pattern> bn;       // folded into Conv
  std::optional<AttentionPattern> attention;
  std::vector<PostOpSpec> post_ops;
  std::optional<DepthwiseSpec> dw;  // Conv: a depthwise convolution on its result
  dnnl::algorithm binary_alg = dnnl::algorithm::binary_add;
  std::vector<std::uint32_t> instrs;  // the plan instructions it replaces, in order
  std::vector<std::uint32_t> reads;   // slots it reads
  std::vector<std::uint32_t> frees;   // slots whose last reader it is
  std::string label;                  // the node names it covers
};

std::size_t Program::num_slots() const { return plan_.num_slots(); }
Program::Program(const Plan& plan) : plan_(plan) {}
Program::~Program() = default;

namespace {

bool is_chainable_eltwise(const Pattern& p) { return p.op == PatternOp::Eltwise; }

// What the phases of Program::build read: the graph's computing nodes by slot, their
// patterns, and which of them the output reads.
struct BuildInput {
  const detail::PointerIndex<Node>& slot_of;
  std::vector<const Node*> nodes;
  std::vector<Pattern> pats;
  std::vector<bool> is_output;
  std::vector<std::uint32_t> output_slots;

  std::uint32_t slot(const Node* n) const { return slot_of.at(n); }
  // The one user of a node whose value nothing else reads (fusable into it), or null.
  const Node* sole_user(std::size_t i) const {
    const auto& users = nodes[i]->users();
    if (users.size() != 1 || is_output[i]) return nullptr;
    return users[0];
  }
};

BuildInput read_graph(const detail::PointerIndex<Node>& slot_of, const Graph& graph,
                      const Captured& captured) {
  BuildInput g{slot_of, {}, {}, {}, {}};
  const Node* output = nullptr;
  for (const Node* n : graph) {
    // The plan never runs a node after the output, but it would count as a user of what it
    // reads (the sole user a chain absorbs, an attention call's getitem) with no step.
    if (output)
      throw GraphError("no inference program: node '" + n->name() +
                       "' comes after the output node (Graph::lint refuses such graphs)");
    if (n->op() == Op::Output) output = n;
    else g.nodes.push_back(n);
  }
  g.is_output.assign(g.nodes.size(), false);
  if (output) {
    for (const Node* in : output->input_nodes()) {
      g.is_output[g.slot(in)] = true;
      g.output_slots.push_back(g.slot(in));
    }
  }
  g.pats.resize(g.nodes.size());
  for (std::size_t i = 0; i < g.nodes.size(); ++i) g.pats[i] = recognize(*g.nodes[i], captured);
  return g;
}

// Chains: a convolution or linear layer followed by what folds or fuses into it.
struct Chains {
  std::vector<bool> absorbed;   // nodes a chain covers, except its last
  std::vector<Step> steps;      // one per chain (a Step is large)
  std::vector<std::int32_t> at;  // last node of a chain -> its step
};

// Adds node `ui` (the sole user of the chain's last node `last`) to the chain when it
// folds or fuses into it; returns false when the chain ends before it.
bool extend_chain(const BuildInput& g, std::size_t ui, const Node* last, Step& st) {
  const Pattern& up = g.pats[ui];
  if (up.input != last && !(up.op == PatternOp::Add && up.other == last)) return false;
  // Batch norm and activations go to the depthwise convolution once the chain has one.
  std::optional<Pattern>& bn = st.dw ? st.dw->bn : st.bn;
  std::vector<PostOpSpec>& post_ops = st.dw ? st.dw->post_ops : st.post_ops;
  const std::int64_t channels = (st.dw ? st.dw->op : st.op).weight.shape()[0];
  const bool added = st.other >= 0;
  if (up.op == PatternOp::BatchNorm && !bn && post_ops.empty() && up.mean.numel() == channels) {
    bn = up;
  } else if (is_chainable_eltwise(up)) {
    post_ops.push_back(PostOpSpec{false, up.eltwise});
  } else if (up.op == PatternOp::Add && !added && !st.dw) {
    const Node* addend = up.input == last ? up.other : up.input;
    if (addend == last) return false;  // x + x
    st.other = static_cast<std::int32_t>(g.slot(addend));
    st.post_ops.push_back(PostOpSpec{true, {}});
  } else if (up.op == PatternOp::Identity) {
    // Dropout or stochastic depth at inference: the chain goes on through it.
  } else if (st.kind == StepKind::Conv && !st.dw && !added && fusable_depthwise(st.op, up)) {
    st.dw = DepthwiseSpec{up, std::nullopt, {}};
  } else {
    return false;
  }
  return true;
}

Chains find_chains(const BuildInput& g) {
  const std::size_t n_slots = g.nodes.size();
  Chains c{std::vector<bool>(n_slots, false), {}, std::vector<std::int32_t>(n_slots, -1)};
  for (std::size_t i = 0; i < n_slots; ++i) {
    const Pattern& p = g.pats[i];
    if (p.op != PatternOp::Conv && p.op != PatternOp::Linear) continue;
    if (c.absorbed[i] || c.at[i] >= 0) continue;  // a depthwise convolution a chain took
    Step st;
    st.kind = p.op == PatternOp::Conv ? StepKind::Conv : StepKind::Linear;
    st.op = p;
    st.src = static_cast<std::int32_t>(g.slot(p.input));
    st.instrs.push_back(static_cast<std::uint32_t>(i));
    st.label = g.nodes[i]->name();
    std::size_t cur = i;
    while (const Node* u = g.sole_user(cur)) {
      const std::size_t ui = g.slot(u);
      if (c.absorbed[ui] || !extend_chain(g, ui, g.nodes[cur], st)) break;
      c.absorbed[ui] = true;
      st.instrs.push_back(static_cast<std::uint32_t>(ui));
      st.label += " " + u->name();
      cur = ui;
    }
    st.out = static_cast<std::uint32_t>(cur);
    c.at[cur] = static_cast<std::int32_t>(c.steps.size());
    c.steps.push_back(std::move(st));
    if (cur != i) c.absorbed[cur] = false;  // the chain's step is emitted at its last node
    c.absorbed[i] = cur != i;
  }
  return c;
}

// The step of a node no chain covers.
Step single_step(const BuildInput& g, std::size_t i) {
  Step st;
  st.out = static_cast<std::uint32_t>(i);
  st.instrs.push_back(static_cast<std::uint32_t>(i));
  st.label = g.nodes[i]->name();
  const Pattern& p = g.pats[i];
  const Node* n = g.nodes[i];
  if (n->op() == Op::Placeholder) {
    st.kind = StepKind::Input;
  } else if (n->op() == Op::GetAttr) {
    st.kind = StepKind::Constant;
  } else {
    if (p.input) st.src = static_cast<std::int32_t>(g.slot(p.input));
    st.op = p;
    switch (p.op) {
      case PatternOp::BatchNorm: st.kind = StepKind::BatchNorm; break;
      case PatternOp::LayerNorm: st.kind = StepKind::LayerNorm; break;
      case PatternOp::Eltwise: st.kind = StepKind::Eltwise; break;
      case PatternOp::Add:
      case PatternOp::Mul:
        st.kind = StepKind::Binary;
        st.other = static_cast<std::int32_t>(g.slot(p.other));
        st.binary_alg = p.op == PatternOp::Add ? dnnl::algorithm::binary_add : dnnl::algorithm::binary_mul;
        break;
      case PatternOp::MaxPool:
      case PatternOp::AvgPool:
      case PatternOp::AdaptiveAvgPool: st.kind = StepKind::Pool; break;
      case PatternOp::Flatten: st.kind = StepKind::View; break;
      case PatternOp::Identity: st.kind = StepKind::Alias; break;
      default: st.kind = StepKind::Generic; break;
    }
  }
  return st;
}

// Attention steps: a MultiheadAttention call and the getitems reading it, emitted where its
// output's getitem was (nothing reads the call but those getitems, so no reader of the
// output comes earlier).
void find_attention(const BuildInput& g, const Captured& captured, Chains& c) {
  for (std::size_t i = 0; i < g.nodes.size(); ++i) {
    if (g.nodes[i]->op() != Op::CallModule || c.absorbed[i] || c.at[i] >= 0) continue;
    std::optional<AttentionPattern> a = recognize_attention(*g.nodes[i], captured);
    if (!a) continue;
    std::vector<std::uint32_t> covered{static_cast<std::uint32_t>(i), g.slot(a->output)};
    for (const Node* u : a->unread) covered.push_back(g.slot(u));
    std::sort(covered.begin(), covered.end());
    // Nodes no chain took; and nothing between the call and its output's getitem may use the
    // input (an in-place op there would change what the step, emitted later, reads).
    const bool free = std::all_of(covered.begin(), covered.end(), [&](std::uint32_t s) {
      return !c.absorbed[s] && c.at[s] < 0;
    });
    const std::uint32_t out = g.slot(a->output);
    const auto users = a->input->users();
    const bool moved_safely = std::none_of(users.begin(), users.end(), [&](const Node* u) {
      if (u->op() == Op::Output) return false;
      const std::uint32_t s = g.slot(u);
      return s > i && s < out;
    });
    if (!free || !moved_safely) continue;
    Step st;
    st.kind = StepKind::Attention;
    st.out = out;
    st.src = static_cast<std::int32_t>(g.slot(a->input));
    st.instrs = covered;
    for (std::uint32_t s : covered) st.label += (st.label.empty() ? "" : " ") + g.nodes[s]->name();
    st.attention = std::move(a);
    for (std::uint32_t s : covered) c.absorbed[s] = s != st.out;
    c.at[st.out] = static_cast<std::int32_t>(c.steps.size());
    c.steps.push_back(std::move(st));
  }
}

// What each step reads, and the slots each step reads last (outputs live to the end).
void mark_reads_and_frees(const BuildInput& g, std::vector<Step>& steps) {
  std::vector<std::int64_t> last_read(g.nodes.size(), -1);
  for (std::size_t j = 0; j < steps.size(); ++j) {
    Step& st = steps[j];
    if (st.kind == StepKind::Generic) {
      for (const Node* in : g.nodes[st.out]->input_nodes()) st.reads.push_back(g.slot(in));
    } else {
      if (st.src >= 0) st.reads.push_back(static_cast<std::uint32_t>(st.src));
      if (st.other >= 0) st.reads.push_back(static_cast<std::uint32_t>(st.other));
    }
    for (std::uint32_t r : st.reads) last_read[r] = static_cast<std::int64_t>(j);
  }
  for (std::size_t s = 0; s < g.nodes.size(); ++s)
    if (last_read[s] >= 0 && !g.is_output[s]) steps[static_cast<std::size_t>(last_read[s])].frees.push_back(
        static_cast<std::uint32_t>(s));
}

}  // namespace

std::shared_ptr<const Program> Program::build(const Plan& plan, const Graph& graph) {
  auto prog = std::shared_ptr<Program>(new Program(plan));
  // What the instructions captured at the recompile: the steps fuse these, as the plain plan
  // runs them, whatever the module tree holds by now.
  // Node → slot, for the graph as the plan was built from it (prepare_inference checked that
  // it did not change since): slot i is the i-th node. The plan keeps only its constants'.
  detail::PointerIndex<Node> slot_of;
  slot_of.reserve(graph.size());
  for (const Node* n : graph) slot_of.try_emplace(n, static_cast<std::uint32_t>(slot_of.size()));
  Captured captured{slot_of, std::vector<const Tensor*>(plan.num_slots_, nullptr),
                    std::vector<const Module*>(plan.num_slots_, nullptr)};
  for (std::size_t i = 0; i < plan.num_instructions(); ++i) {  // instruction i computes slot i
    const Plan::Instr& in = plan.instr(i);
    if (in.kind == Plan::Kind::Constant) captured.tensors[i] = plan.constant_of(i).if_tensor();
    else if (in.kind == Plan::Kind::Module) captured.modules[i] = &plan.module(in);
  }
  const BuildInput g = read_graph(slot_of, graph, captured);
  prog->output_slots_ = g.output_slots;
  Chains chains = find_chains(g);
  find_attention(g, captured, chains);
  // Steps in graph order; a chain is emitted where its last node was. Reserved to the count:
  // a Step is large, and the capacity doubling leaves up to half of it unused for the
  // program's life (vit_b_16: 0.8 MiB of steps).
  std::size_t n_steps = 0;
  for (std::size_t i = 0; i < g.nodes.size(); ++i) n_steps += chains.at[i] >= 0 || !chains.absorbed[i];
  prog->steps_.reserve(n_steps);
  for (std::size_t i = 0; i < g.nodes.size(); ++i) {
    if (chains.at[i] >= 0) {
      prog->steps_.push_back(std::move(chains.steps[static_cast<std::size_t>(chains.at[i])]));
    } else if (!chains.absorbed[i]) {
      prog->steps_.push_back(single_step(g, i));
    }
  }
  mark_reads_and_frees(g, prog->steps_);
  return prog;
}

namespace {

const char* eltwise_name(dnnl::algorithm alg) {
  switch (alg) {
    case dnnl::algorithm::eltwise_relu: return "relu";
    case dnnl::algorithm::eltwise_clip_v2: return "clip";
    case dnnl::algorithm::eltwise_swish: return "silu";
    case dnnl::algorithm::eltwise_logistic: return "sigmoid";
    case dnnl::algorithm::eltwise_tanh: return "tanh";
    case dnnl::algorithm::eltwise_hardswish: return "hardswish";
    case dnnl::algorithm::eltwise_gelu_erf:
    case dnnl::algorithm::eltwise_gelu_tanh: return "gelu";
    default: return "eltwise";
  }
}

// " batch_norm folded, post-ops: add relu" (what is there of it).
std::string folded_and_fused(const std::optional<Pattern>& bn, const std::vector<PostOpSpec>& post_ops) {
  std::string out = bn ? " batch_norm folded" : "";
  if (!post_ops.empty()) {
    out += ", post-ops:";
    for (const PostOpSpec& p : post_ops) out += std::string(" ") + (p.add ? "add" : eltwise_name(p.eltwise.alg));
  }
  return out;
}

}  // namespace

std::string Program::summary() const {
  std::string out;
  for (const Step& st : steps_) {
    if (st.kind == StepKind::Input || st.kind == StepKind::Constant) continue;
    out += st.kind == StepKind::Generic     ? "kernel"
           : st.kind == StepKind::Attention ? "multi_head_attention"
                                            : pattern_name(st.op.op);
    out += " [" + st.label + "]";
    out += folded_and_fused(st.bn, st.post_ops);
    if (st.dw) out += "; then depthwise conv2d" + folded_and_fused(st.dw->bn, st.dw->post_ops);
    out += "\n";
  }
  return out;
}

// ---- executables (one per input signature) -------------------------------------------

namespace {

// A call's inputs do not match what the executable was specialised for (a kernel between
// two oneDNN steps returned another shape): the call runs on the plain plan instead.
struct SignatureMismatch {};

struct ArgSpec {
  enum class From : std::uint8_t { Buffer, External, Constant, Scratchpad };
  int arg = 0;
  From from = From::Buffer;
  std::int32_t index = 0;  // buffer id, slot (External) or constant id
  memory::desc md;
  Shape shape;  // External: the tensor shape the primitive was made for
};

struct Launch {
  dnnl::primitive prim;
  std::vector<ArgSpec> args;
  // Set: not a primitive but fxpack's own SiLU or sigmoid (ops/simd/activation_simd.hpp) from
  // args[0] (DNNL_ARG_SRC) to args[1] (DNNL_ARG_DST), both of args[1]'s layout and size.
  std::optional<ops::simd::Activation> activation = std::nullopt;
};

struct Materialize {  // after the step: values[slot] = Tensor view of a dense buffer
  std::uint32_t slot;
  std::int32_t buffer;
  Shape shape;
};

struct Exec {
  bool generic = true;  // run the step's plan instructions
  bool one_thread = false;  // its primitives were made for, and run on, the calling thread alone
  bool fused_depthwise = false;  // its 1x1 and depthwise convolutions are one primitive
  std::vector<Launch> launches;
  std::vector<Materialize> materialize;
};

struct BufferInfo {
  std::size_t bytes = 0;
  std::size_t offset = 0;
  std::int64_t first = 0, last = 0;  // steps
};

// Where a slot's value lives when a oneDNN step produced it.
struct SlotLoc {
  std::int32_t buffer = -1;
  memory::desc md;       // its layout (blocked or dense)
  Shape shape;           // logical shape
  std::int32_t dense = -1;  // a buffer holding it in dense row-major layout (may equal `buffer`)
};

bool is_dense(const memory::desc& md, const Shape& shape) { return md == dnb::plain_md(dnb::dims_of(shape)); }

constexpr std::size_t kAlign = 64;
std::size_t align_up(std::size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// First-call buffers from this size on are mapped apart from the heap (glibc's own initial
// mmap threshold).
constexpr std::size_t kMappedBufferBytes = 128 * 1024;

// A buffer that lives only during the first call (one per value; later calls use the arena).
// A large one is its own anonymous mapping: freed, its pages go back at once. From the heap,
// the first call's buffers and the packed weights it makes in between interleave, and the
// buffers' holes stay resident until the call ends (mobilenet_v2: 1.1 MiB above the end state;
// and every large block glibc maps and frees raises its mmap threshold, so that the next ones
// come from the heap too).
std::shared_ptr<Storage> first_call_buffer(std::size_t bytes) {
  if (bytes < kMappedBufferBytes) return Storage::allocate_uninitialized(bytes);
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return Storage::allocate_uninitialized(bytes);
  std::shared_ptr<const void> mapping(p, [bytes](const void* q) { ::munmap(const_cast<void*>(q), bytes); });
  return Storage::borrow(p, bytes, std::move(mapping));
}

}  // namespace

class Workspace {
 public:
  std::vector<Value> values;
  std::vector<Value> args;
  std::shared_ptr<Storage> arena;             // later calls: every buffer at its planned offset
  std::vector<std::shared_ptr<Storage>> own;  // the first call: one storage per buffer
  std::shared_ptr<Storage> scratch;
  std::vector<std::vector<std::vector<memory>>> mems;    // [step][launch][arg]
  std::vector<std::vector<std::vector<dnnl_exec_arg_t>>> exec_args;

  std::byte* buffer(std::int32_t id, const std::vector<BufferInfo>& infos) {
    if (arena) return arena->data() + infos[static_cast<std::size_t>(id)].offset;
    return own[static_cast<std::size_t>(id)]->data();
  }
  std::shared_ptr<Storage> storage_of(std::int32_t id) const {
    return arena ? arena : own[static_cast<std::size_t>(id)];
  }
  std::size_t offset_of(std::int32_t id, const std::vector<BufferInfo>& infos) const {
    return arena ? infos[static_cast<std::size_t>(id)].offset : 0;
  }
};

class Executable {
 public:
  Executable(const Program& prog, std::span<const Value> inputs, int threads, Winograd winograd);

  bool matches(std::span<const Value> inputs, int threads, Winograd winograd) const;
  void add_stats(Plan::InferenceStats& s) const;
  // The first call: specialises every step while running it.
  Value record(std::span<const Value> inputs);
  // Later calls.
  Value replay(std::span<const Value> inputs);

 private:
  void specialise(std::size_t j, Workspace& ws);
  // One per kind of step: its launches into `ex`, its result recorded by produce().
  void specialise_conv(std::size_t j, Exec& ex, Workspace& ws);
  // A Conv step with a depthwise convolution after its 1x1 one.
  void specialise_conv_dw(std::size_t j, Exec& ex, Workspace& ws);
  // Both convolutions as one primitive, when oneDNN fuses them for these shapes.
  bool try_fused_dw(std::size_t j, const dnb::ConvGeometry& g, const ArgSpec& in, const Shape& out, Exec& ex,
                    Workspace& ws);
  void specialise_linear(std::size_t j, Exec& ex, Workspace& ws);
  void specialise_norm_or_eltwise(std::size_t j, Exec& ex, Workspace& ws);
  // An Eltwise step fxpack's own kernel runs (SiLU; sigmoid where the layout has no padding);
  // false for the others.
  bool try_native_eltwise(std::size_t j, Exec& ex, Workspace& ws);
  // A launch applying `f` to `buffer` (layout `md`) in place, after the launches before it.
  static void add_native_activation(ops::simd::Activation f, std::int32_t buffer, const memory::desc& md, Exec& ex);
  void specialise_layer_norm(std::size_t j, Exec& ex, Workspace& ws);
  void specialise_binary(std::size_t j, Exec& ex, Workspace& ws);
  void specialise_pool(std::size_t j, Exec& ex, Workspace& ws);
  void specialise_view(std::size_t j, Exec& ex, Workspace& ws);
  void specialise_alias(std::size_t j, Exec& ex, Workspace& ws);
  void specialise_attention(std::size_t j, Exec& ex, Workspace& ws);
  // A kernel step the plan has a step for (reshape, view, permute, basic indexing, cat) when
  // its other arguments are decided by the signature; throws SignatureMismatch otherwise.
  void specialise_shape_op(std::size_t j, Exec& ex, Workspace& ws);
  // The view `md` (of `shape`) of dense buffer `buffer` as step j's result: the buffer itself
  // when the view is dense, else a reorder of it into a dense buffer.
  void produce_view(std::size_t j, const memory::desc& md, const Shape& shape, std::int32_t buffer, Exec& ex,
                    Workspace& ws);
  void specialise_concat(std::size_t j, std::span<const Value> args, Exec& ex, Workspace& ws);
  // The step whose result a concatenation reads as a constant it copied on the first call: a
  // kernel of a pure op whose operands the signature decides (ViT's class token expanded
  // to the batch), or -1.
  std::int64_t folded_producer(std::uint32_t slot, const Workspace& ws) const;
  // Whether a slot's value the first call computed is the same on every call with this
  // signature: a constant, or a fixed step's result.
  bool decided_by_signature(std::uint32_t slot) const;
  bool decided_by_signature(const Plan::Operand& operand) const;
  // x [rows, in] @ w^T (+ b) into buffer `dst`, w [out, in] packed once for the matmul.
  Launch packed_linear(const Tensor& w, const Tensor& b, const ArgSpec& x, std::int64_t rows, std::int32_t dst);
  // The launch of matmul `pd` (geometry `g`) on `x`: nn.Linear's [out, in] weights `w` with
  // `scales` folded in (fold_scales) packed once, the bias `b` (null: none), the addend of an
  // Add post-op, the result into buffer `dst`.
  Launch linear_launch(const dnnl::matmul::primitive_desc& pd, const dnb::MatmulGeometry& g, const ArgSpec& x,
                       const Tensor& w, const std::vector<double>& scales, const float* b,
                       const std::optional<ArgSpec>& addend, std::int32_t dst);
  // nn.Linear's [out, in] weights `w` with `scales` folded in, packed into `packed_md`, the
  // layout of the matmul `g` (weights_transposed); returns the constant.
  std::int32_t add_linear_weights(const Tensor& w, const std::vector<double>& scales, const dnb::MatmulGeometry& g,
                                  const memory::desc& packed_md);
  void add_scratchpad(const memory::desc& md, Launch& l);
  // The launch of convolution `pd` computing `op` (with `bn` folded into its weights, which
  // are packed into the primitive's layout once) on `in`, reordered first into the
  // primitive's source layout when it is not in it. The caller adds the destination.
  Launch conv_launch(const dnnl::convolution_forward::primitive_desc& pd, const dnb::ConvGeometry& g,
                     const Pattern& op, const std::optional<Pattern>& bn, ArgSpec in, std::size_t j, Exec& ex,
                     Workspace& ws);
  // A constant from dense float32 data in `plain` layout, reordered into `packed` when it differs.
  std::int32_t add_packed(const memory::desc& plain, const memory::desc& packed, const float* data);
  // A constant: `weight` (output channels outermost) in `plain` layout (dense, the output
  // channels its outermost dimension) with `scales` folded in, reordered into `packed` a
  // chunk of output channels at a time through a small buffer — a whole folded copy would
  // add the largest weight to the first call's peak and leave the allocator holding it
  // after. The one way weights are folded and packed.
  std::int32_t add_folded_weights(const memory::desc& plain, const memory::desc& packed, const Tensor& weight,
                                  const std::vector<double>& scales);
  bool try_specialise(std::size_t j, Workspace& ws);
  // Whether step j is too small to share between threads (see kMinParallelWork).
  bool one_thread_step(std::size_t j, const Workspace& ws) const;
  void run_step(std::size_t j, Workspace& ws);
  void bind(std::size_t j, Workspace& ws);
  std::unique_ptr<Workspace> new_workspace();
  void plan_arena();

  std::int32_t new_buffer(std::size_t bytes, std::size_t step, Workspace& ws);
  // The slot as oneDNN memory: its layout and where it comes from.
  ArgSpec source(std::uint32_t slot, int arg, Workspace& ws) const;
  // The slot in dense layout (adds a reorder launch to `ex` when it is blocked).
  ArgSpec dense_source(std::uint32_t slot, int arg, std::size_t step, Exec& ex, Workspace& ws);
  std::int32_t add_constant(const memory::desc& md, const void* data);
  std::int32_t add_constant_tensor(const Tensor& t, const Dims& dims);
  // A batch or layer norm's weight and bias (`c` values each) as `l`'s scale and shift.
  void add_scale_shift(const Pattern& norm, const Dims& c, Launch& l);
  void produce(std::size_t step, std::uint32_t slot, const memory::desc& md, const Shape& shape, Exec& ex,
               Workspace& ws, std::int32_t buffer);
  void bind_launch(std::size_t j, std::size_t l, Workspace& ws);
  // The first call's buffers that no step after `j` reads (those made by step `j` from
  // `made_from` on, and those of slots read last there) are released, so its peak memory
  // stays near a later call's arena instead of the sum of every buffer.
  void release_dead_buffers(std::size_t j, std::size_t made_from, Workspace& ws) const;
  // The storages of constants that steps read as operands when they run (a kernel's, or a
  // primitive's constant operand): their originals stay in use after the first call.
  std::unordered_set<const Storage*> constants_read_when_run() const;
  // After step `j` was specialised: it holds packed copies of the weights and statistics it
  // read, so their originals' pages go back to the operating system (Storage::release_pages:
  // mapped records only) unless they are in read_when_run_. Only memory changes: the module's
  // parameters still read the same, their next read faulting the pages in from the file.
  void release_packed_originals(std::size_t j) const;

  // Kernel steps whose results the input signature decides (models' shape checks): recorded
  // by the first call, not run again (see note_fixed).
  void note_fixed(std::size_t j, const Workspace& ws);
  void mark_fixed_needed();
  // Kernel steps whose every reader took their result as a constant become Fixed::Folded.
  void mark_folded();
  void replay_fixed(std::size_t j, Workspace& ws) const;

  // Every change to slots_ and to a buffer's readers goes through these, so that a step
  // that cannot be specialised is undone in time proportional to what it changed (a copy
  // of slots_ per step made a first call quadratic in the graph's size).
  SlotLoc& edit_slot(std::uint32_t slot);
  void attach(std::uint32_t slot, std::int32_t buffer);
  // True when a slot held in `buffer` (other than `except`) is still read after step `j`
  // or is an output.
  bool buffer_live_after(std::int32_t buffer, std::int64_t j, std::int64_t except = -1) const;

  const Program& prog_;
  std::vector<Step> const& steps_;
  int threads_;
  Winograd winograd_;
  std::vector<std::pair<DType, Shape>> signature_;

  std::vector<Exec> execs_;
  std::vector<BufferInfo> buffers_;
  std::vector<std::vector<std::uint32_t>> buffer_slots_;  // per buffer: the slots held in it
  std::vector<SlotLoc> slots_;
  std::vector<bool> is_output_;                        // per slot
  std::vector<std::vector<std::uint32_t>> read_last_;  // per step: slots whose slot_last_ it is
  // The step being specialised: old values of the slots it changed, buffers it attached.
  std::vector<std::pair<std::uint32_t, SlotLoc>> slot_undo_;
  std::vector<std::int32_t> attach_undo_;
  std::vector<std::shared_ptr<Storage>> const_storage_;
  std::vector<memory> constants_;
  std::size_t scratch_bytes_ = 0;
  // constants_read_when_run(), made by record(): their pages are never given back.
  std::unordered_set<const Storage*> read_when_run_;
  std::size_t arena_bytes_ = 0;
  std::vector<std::int64_t> slot_last_;  // last step a slot's buffer must survive
  // Folded: a kernel whose every reader took its first result as a constant; not run again.
  enum class Fixed : std::uint8_t { No, Query, Derived, Folded };
  std::vector<Fixed> fixed_step_;                 // per step
  std::vector<std::uint32_t> folded_reads_;       // per slot: steps that read it as a constant
  std::vector<std::pair<DType, Shape>> queried_;  // per step: a Query's tensor when recorded
  std::vector<Value> fixed_;                      // per slot: a fixed step's result
  std::vector<bool> fixed_slot_, fixed_needed_;   // per slot: has one; a running step reads it

  std::mutex pool_mu_;
  std::vector<std::unique_ptr<Workspace>> pool_;
  ResultPool results_;
};

Executable::Executable(const Program& prog, std::span<const Value> inputs, int threads, Winograd winograd)
    : prog_(prog), steps_(prog.steps()), threads_(threads), winograd_(winograd) {
  for (const Value& v : inputs) signature_.emplace_back(v.tensor().dtype(), v.tensor().shape());
  execs_.resize(steps_.size());
  slots_.resize(prog.num_slots());
  // A buffer lives until the last step reading its slot, or anything a kernel made from it
  // (a kernel may return a view of its input): extended backwards through kernel steps.
  slot_last_.assign(prog.num_slots(), -1);
  for (std::size_t j = 0; j < steps_.size(); ++j)
    for (std::uint32_t r : steps_[j].reads) slot_last_[r] = static_cast<std::int64_t>(j);
  for (std::size_t j = steps_.size(); j-- > 0;) {
    const Step& st = steps_[j];
    if (st.kind != StepKind::Generic && st.kind != StepKind::View && st.kind != StepKind::Alias) continue;
    for (std::uint32_t r : st.reads) slot_last_[r] = std::max(slot_last_[r], slot_last_[st.out]);
  }
  is_output_.assign(prog.num_slots(), false);
  for (std::uint32_t s : prog.output_slots()) is_output_[s] = true;
  fixed_step_.assign(steps_.size(), Fixed::No);
  queried_.resize(steps_.size());
  fixed_.resize(prog.num_slots());
  fixed_slot_.assign(prog.num_slots(), false);
  fixed_needed_.assign(prog.num_slots(), false);
  folded_reads_.assign(prog.num_slots(), 0);
  read_last_.resize(steps_.size());
  for (std::size_t s = 0; s < slot_last_.size(); ++s)
    if (slot_last_[s] >= 0) read_last_[static_cast<std::size_t>(slot_last_[s])].push_back(static_cast<std::uint32_t>(s));
}

SlotLoc& Executable::edit_slot(std::uint32_t slot) {
  slot_undo_.emplace_back(slot, slots_[slot]);
  return slots_[slot];
}

void Executable::attach(std::uint32_t slot, std::int32_t buffer) {
  buffer_slots_[static_cast<std::size_t>(buffer)].push_back(slot);
  attach_undo_.push_back(buffer);
}

bool Executable::buffer_live_after(std::int32_t buffer, std::int64_t j, std::int64_t except) const {
  for (std::uint32_t s : buffer_slots_[static_cast<std::size_t>(buffer)])
    if (static_cast<std::int64_t>(s) != except && (slot_last_[s] > j || is_output_[s])) return true;
  return false;
}

bool Executable::matches(std::span<const Value> inputs, int threads, Winograd winograd) const {
  if (threads != threads_ || winograd != winograd_ || inputs.size() != signature_.size()) return false;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i].tensor();
    if (t.dtype() != signature_[i].first || !(t.shape() == signature_[i].second)) return false;
  }
  return true;
}

std::int32_t Executable::new_buffer(std::size_t bytes, std::size_t step, Workspace& ws) {
  BufferInfo b;
  b.bytes = align_up(std::max<std::size_t>(bytes, 1));
  b.first = b.last = static_cast<std::int64_t>(step);
  buffers_.push_back(b);
  buffer_slots_.emplace_back();
  ws.own.push_back(first_call_buffer(b.bytes));
  return static_cast<std::int32_t>(buffers_.size() - 1);
}

std::int32_t Executable::add_constant(const memory::desc& md, const void* data) {
  auto st = Storage::allocate_uninitialized(std::max<std::size_t>(md.get_size(), 1));
  std::memcpy(st->data(), data, md.get_size());
  const_storage_.push_back(st);
  constants_.emplace_back(md, dnb::engine(), st->data());
  return static_cast<std::int32_t>(constants_.size() - 1);
}

std::int32_t Executable::add_constant_tensor(const Tensor& t, const Dims& dims) {
  return add_constant(dnb::plain_md(dims), t.data<float>());
}

void Executable::add_scale_shift(const Pattern& norm, const Dims& c, Launch& l) {
  l.args.push_back(ArgSpec{DNNL_ARG_SCALE, ArgSpec::From::Constant, add_constant_tensor(norm.weight, c), dnb::plain_md(c), {}});
  l.args.push_back(ArgSpec{DNNL_ARG_SHIFT, ArgSpec::From::Constant, add_constant_tensor(norm.bias, c), dnb::plain_md(c), {}});
}

ArgSpec Executable::source(std::uint32_t slot, int arg, Workspace& ws) const {
  ArgSpec a;
  a.arg = arg;
  const SlotLoc& loc = slots_[slot];
  if (loc.buffer >= 0) {
    a.from = ArgSpec::From::Buffer;
    a.index = loc.buffer;
    a.md = loc.md;
    return a;
  }
  const Value& v = ws.values[slot];
  const Tensor* t = v.if_tensor();
  if (!t || !t->defined() || t->dtype() != DType::Float32 || t->numel() == 0) throw SignatureMismatch{};
  a.from = ArgSpec::From::External;
  a.index = static_cast<std::int32_t>(slot);
  a.shape = t->shape();
  a.md = dnb::plain_md(dnb::dims_of(t->shape()));
  return a;
}

ArgSpec Executable::dense_source(std::uint32_t slot, int arg, std::size_t step, Exec& ex, Workspace& ws) {
  const SlotLoc& loc = slots_[slot];
  if (loc.buffer < 0 || loc.dense >= 0) {
    ArgSpec a = source(slot, arg, ws);
    if (loc.dense >= 0) {
      a.index = loc.dense;
      a.md = dnb::plain_md(dnb::dims_of(loc.shape));
    }
    return a;
  }
  // A reorder of the blocked value into a dense buffer, kept for later readers.
  const memory::desc dense_md = dnb::plain_md(dnb::dims_of(loc.shape));
  const std::int32_t buf = new_buffer(dense_md.get_size(), step, ws);
  Launch l;
  l.prim = dnnl::reorder(dnnl::reorder::primitive_desc(dnb::engine(), loc.md, dnb::engine(), dense_md));
  l.args.push_back(ArgSpec{DNNL_ARG_FROM, ArgSpec::From::Buffer, loc.buffer, loc.md, {}});
  l.args.push_back(ArgSpec{DNNL_ARG_TO, ArgSpec::From::Buffer, buf, dense_md, {}});
  ex.launches.push_back(std::move(l));
  edit_slot(slot).dense = buf;
  attach(slot, buf);
  ArgSpec a;
  a.arg = arg;
  a.from = ArgSpec::From::Buffer;
  a.index = buf;
  a.md = dense_md;
  return a;
}

// Records that `slot` now lives in `buffer` with layout `md`; a dense value is also given
// to the kernels that read it (as a Tensor view of the buffer).
void Executable::produce(std::size_t step, std::uint32_t slot, const memory::desc& md, const Shape& shape, Exec& ex,
                         Workspace& ws, std::int32_t buffer) {
  (void)step;
  (void)ws;
  SlotLoc& loc = edit_slot(slot);
  loc.buffer = buffer;
  loc.md = md;
  loc.shape = shape;
  loc.dense = is_dense(md, shape) ? buffer : -1;
  attach(slot, buffer);
  if (loc.dense >= 0) ex.materialize.push_back(Materialize{slot, buffer, shape});
}

namespace {

// Folding `bn` into `op`: per output channel c (dim 0 of the weights), scale = gamma /
// sqrt(var + eps), w' = w * scale, b' = (b - mean) * scale + beta. The scales (empty
// without a batch norm):
std::vector<double> fold_scales(const std::optional<Pattern>& bn) {
  std::vector<double> scales;
  if (!bn) return scales;
  const std::int64_t O = bn->var.numel();
  scales.resize(static_cast<std::size_t>(O));
  for (std::int64_t c = 0; c < O; ++c) {
    const double gamma = bn->weight.defined() ? bn->weight.data<float>()[c] : 1.0;
    scales[static_cast<std::size_t>(c)] = gamma / std::sqrt(static_cast<double>(bn->var.data<float>()[c]) + bn->eps);
  }
  return scales;
}

// Elements [from, to) of `weight` (flat, row-major, output channels outermost) with
// `scales` applied, into `out`.
void folded_weights(const Tensor& weight, const std::vector<double>& scales, std::size_t from, std::size_t to,
                    float* out) {
  const float* w = weight.data<float>();
  if (scales.empty()) {
    std::copy(w + from, w + to, out);
    return;
  }
  const auto per_out = static_cast<std::size_t>(weight.numel()) / scales.size();
  for (std::size_t i = from; i < to;) {
    const std::size_t c = i / per_out, end = std::min(to, (c + 1) * per_out);
    const double scale = scales[c];
    for (; i < end; ++i) out[i - from] = static_cast<float>(w[i] * scale);
  }
}

// `op`'s bias (zeros when it has none) with the batch norm of `scales` folded in.
std::vector<float> folded_bias(const Pattern& op, const std::optional<Pattern>& bn, const std::vector<double>& scales) {
  const std::int64_t O = op.weight.shape()[0];
  std::vector<float> bf(static_cast<std::size_t>(O), 0.f);
  if (op.bias.defined()) std::copy(op.bias.data<float>(), op.bias.data<float>() + O, bf.begin());
  if (!bn) return bf;
  for (std::int64_t c = 0; c < O; ++c) {
    const double beta = bn->bias.defined() ? bn->bias.data<float>()[c] : 0.0;
    const auto u = static_cast<std::size_t>(c);
    bf[u] = static_cast<float>((bf[u] - static_cast<double>(bn->mean.data<float>()[c])) * scales[u] + beta);
  }
  return bf;
}

// The result shape of convolution `op` on x [N, C, H, W].
Shape conv_output_shape(const Shape& x, const Pattern& op) {
  const Tensor& w = op.weight;
  const auto& o = op.conv;
  if (x.size() != 4 || x[1] != w.shape()[1] * o.groups || w.shape()[0] % o.groups) throw SignatureMismatch{};
  Shape out{x[0], w.shape()[0], 0, 0};
  for (std::size_t i = 0; i < 2; ++i) {
    const std::int64_t eff = o.dilation[i] * (w.shape()[2 + i] - 1) + 1;
    const std::int64_t padded = x[2 + i] + o.padding_begin[i] + o.padding_end[i];
    if (padded < eff) throw SignatureMismatch{};
    out[2 + i] = (padded - eff) / o.stride[i] + 1;
  }
  return out;
}

// Whether Auto takes Winograd convolution `wino` over `direct`, the direct convolution it
// would replace: when what it adds to the memory a call needs is at most the activations
// the convolution itself reads and writes (its input and output). What it adds: its
// transformed weights beyond the direct one's, and its scratchpad beyond both the direct
// one's and `scratch_held` (a call's scratchpad is one buffer, as large as its largest
// step's so far). Measured on resnet18's 3x3 stride-1 stages on an AMD EPYC (batch 1, 1
// thread, CPU time per call, direct → Winograd; packed weights added, Winograd scratchpad,
// input + output):
//   64 ch at 56x56:  2.13 → 1.23 ms, +0.11 MiB, 0.23 MiB, 1.53 MiB (F(2,3))  taken
//   128 ch at 28x28: 2.05 → 0.97 ms, +1.69 MiB, 9.97 MiB, 0.77 MiB (F(4,3))
//   256 ch at 14x14: 2.12 → 1.38 ms, +1.75 MiB, 1.98 MiB, 0.38 MiB (F(2,3))
//   512 ch at 7x7:   2.52 → 2.11 ms, +7.00 MiB, 1.51 MiB, 0.19 MiB (F(2,3))
// Every stage saves about as much time (0.4–1.1 ms) while the weights grow 4x a stage and
// the activations shrink 2x, so the bytes decide: a taken one adds at most the activations
// it touches, and resnet18's peak stays within its weights plus twice its activations (51.0
// MiB against 52.3 at 1 thread on the Xeon below); the others would add 20 MiB to its plan
// (its activations: 3.8 MiB). Their weight transforms are the slow ones, too (7–58 ms each
// on a first call; 0.8 ms at 56x56). The bytes depend on the CPU's kernels: on an Intel Xeon
// (4 MiB of L2 per core) the 56x56 stage's Winograd scratchpad is 0.73 MiB, and taking it
// there adds 0.84 MiB per convolution at first (0.11 after), still within its 1.53 MiB of
// activations; it saves resnet18 about 1 ms of 18 at 1 thread.
bool winograd_pays(const dnnl::convolution_forward::primitive_desc& wino,
                   const dnnl::convolution_forward::primitive_desc& direct, const dnb::ConvGeometry& g,
                   std::size_t scratch_held) {
  const auto beyond = [](std::size_t a, std::size_t b) { return a > b ? a - b : 0; };
  const auto bytes = [](const Dims& d) {
    std::size_t n = sizeof(float);
    for (memory::dim x : d) n *= static_cast<std::size_t>(x);
    return n;
  };
  const std::size_t scratch = std::max(direct.scratchpad_desc().get_size(), scratch_held);
  const std::size_t added = beyond(wino.weights_desc().get_size(), direct.weights_desc().get_size()) +
                            beyond(wino.scratchpad_desc().get_size(), scratch);
  return added <= bytes(g.src) + bytes(g.dst);
}

// The first non-reference convolution of `algorithm` (Winograd or direct) among `layouts`
// (source, destination; nullopt lets oneDNN choose), or nullopt.
using ConvLayouts = std::vector<std::pair<std::optional<memory::desc>, std::optional<memory::desc>>>;
std::optional<dnnl::convolution_forward::primitive_desc> first_conv(const dnb::ConvGeometry& g, const ConvLayouts& layouts,
                                                                    const dnnl::primitive_attr& attr, bool winograd) {
  for (const auto& [s, d] : layouts) {
    try {
      auto pd = dnb::conv_pd(g, true, attr, s ? &*s : nullptr, d ? &*d : nullptr, winograd);
      if (!dnb::is_reference(pd.impl_info_str())) return pd;
    } catch (const dnnl::error&) {
    }
  }
  return std::nullopt;
}

// The convolution for a step: Winograd where the policy takes it, else the direct algorithm,
// each tried first in its source's layout (and the destination in the same one, so a network
// stays in one layout without reorders), then in the layouts oneDNN prefers. Reference
// implementations are refused while a fast one may exist. `scratch_held`: the scratchpad the
// call already needs for its earlier steps.
dnnl::convolution_forward::primitive_desc choose_conv(const dnb::ConvGeometry& g, const memory::desc& src,
                                                      const memory::desc* dst_fixed, const dnnl::primitive_attr& attr,
                                                      Winograd policy, std::size_t scratch_held) {
  const memory::format_tag src_tag = dnb::activation_tag(src);
  const auto same_layout = [&](const Dims& dims) { return memory::desc(dims, memory::data_type::f32, src_tag); };
  ConvLayouts layouts;
  const std::optional<memory::desc> dst_any = dst_fixed ? std::optional<memory::desc>(*dst_fixed) : std::nullopt;
  if (src_tag != memory::format_tag::undef && src_tag != memory::format_tag::nchw)
    layouts.emplace_back(src, dst_fixed ? *dst_fixed : same_layout(g.dst));
  layouts.emplace_back(src, dst_any);
  layouts.emplace_back(std::nullopt, dst_any);
  std::optional<dnnl::convolution_forward::primitive_desc> direct;
  if (policy != Winograd::Off && dnb::winograd_shape(g)) {
    if (auto wino = first_conv(g, layouts, attr, true)) {
      if (policy == Winograd::Always) return *wino;
      // Auto: a direct convolution only oneDNN's reference code runs is no alternative.
      direct = first_conv(g, layouts, attr, false);
      if (!direct || winograd_pays(*wino, *direct, g, scratch_held)) return *wino;
    }
  }
  if (!direct) direct = first_conv(g, layouts, attr, false);
  return direct ? *direct : dnb::conv_pd(g, true, attr, nullptr, dst_fixed);
}

}  // namespace

namespace {

// Steps with less work than this (multiply-adds of a convolution or linear layer on a 1x1 map,
// else elements read) run on the calling thread alone: with OMP_WAIT_POLICY=passive each
// parallel region wakes a sleeping worker (a futex wake and two context switches, more when
// the cores are busy), which costs more than such a step (a squeeze-excitation's
// convolutions: 5-20 thousand multiply-adds). oneDNN sizes its split when a primitive is made.
constexpr std::int64_t kMinParallelWork = 64 * 1024;

// Sets the calling thread's OpenMP thread count for a scope (oneDNN reads it when a primitive
// is made and when a primitive without a fixed split runs).
class ThreadsForScope {
 public:
  explicit ThreadsForScope(bool one_thread) : saved_(omp_get_max_threads()) {
    if (one_thread && saved_ != 1) omp_set_num_threads(1);
  }
  ~ThreadsForScope() {
    if (omp_get_max_threads() != saved_) omp_set_num_threads(saved_);
  }
  ThreadsForScope(const ThreadsForScope&) = delete;
  ThreadsForScope& operator=(const ThreadsForScope&) = delete;

 private:
  int saved_;
};

}  // namespace

bool Executable::one_thread_step(std::size_t j, const Workspace& ws) const {
  const Step& st = steps_[j];
  if (threads_ == 1 || st.src < 0) return false;
  const auto src = static_cast<std::size_t>(st.src);
  Shape x = slots_[src].shape;
  if (slots_[src].buffer < 0) {
    const Tensor* t = ws.values[src].if_tensor();
    if (!t || !t->defined()) return false;
    x = t->shape();
  }
  std::int64_t work = x.numel();
  if (st.kind == StepKind::Conv || st.kind == StepKind::Linear) work *= st.op.weight.shape()[0];
  return work < kMinParallelWork;
}

bool Executable::try_specialise(std::size_t j, Workspace& ws) {
  // A primitive oneDNN does not offer, or operands the kernels should judge: the step runs
  // its kernels (which report bad operands with their own messages).
  const std::size_t n_buffers = buffers_.size(), n_constants = constants_.size();
  const std::size_t n_const_storage = const_storage_.size();
  slot_undo_.clear();
  attach_undo_.clear();
  try {
    const bool one_thread = one_thread_step(j, ws);
    const ThreadsForScope scope(one_thread);
    specialise(j, ws);
    execs_[j].one_thread = one_thread;
    return true;
  } catch (const dnnl::error&) {
  } catch (const SignatureMismatch&) {
  }
  for (auto it = attach_undo_.rbegin(); it != attach_undo_.rend(); ++it)
    buffer_slots_[static_cast<std::size_t>(*it)].pop_back();
  for (auto it = slot_undo_.rbegin(); it != slot_undo_.rend(); ++it) slots_[it->first] = std::move(it->second);
  buffers_.resize(n_buffers);
  buffer_slots_.resize(n_buffers);
  ws.own.resize(n_buffers);
  constants_.resize(n_constants);
  const_storage_.resize(n_const_storage);  // the refused step's packed weights and constants
  return false;
}

namespace {
// Below this many elements (or multiply-adds, for convolutions and linear layers) a oneDNN
// primitive costs more than the kernel's own loop: such steps run their kernels.
constexpr std::int64_t kMinWork = 4096;

// Post-ops as oneDNN's. `other_md` null: an addition is a Sum (the destination holds the
// addend).
std::vector<dnb::PostOp> dnnl_post_ops(const std::vector<PostOpSpec>& post_ops, const memory::desc* other_md) {
  std::vector<dnb::PostOp> po;
  for (const PostOpSpec& p : post_ops) {
    dnb::PostOp q;
    if (p.add && other_md) {
      q.kind = dnb::PostOp::Kind::Add;
      q.other = *other_md;
    } else if (p.add) {
      q.kind = dnb::PostOp::Kind::Sum;
    } else {
      q.eltwise = p.eltwise;
    }
    po.push_back(q);
  }
  return po;
}

// The post-ops as oneDNN attributes (with a user scratchpad).
dnnl::primitive_attr post_op_attr(const std::vector<PostOpSpec>& post_ops, const memory::desc* other_md) {
  return dnb::make_attr(dnnl_post_ops(post_ops, other_md), true);
}

// The activations fxpack's own kernel computes instead of oneDNN 2.6, whose swish and
// logistic cost 2-3x as much (ops/simd/activation_simd.hpp, docs/design.md "SiLU").
std::optional<ops::simd::Activation> native_activation(const dnb::Eltwise& e) {
  if (e.alg == dnnl::algorithm::eltwise_swish && e.alpha == 1.f) return ops::simd::Activation::Silu;
  if (e.alg == dnnl::algorithm::eltwise_logistic) return ops::simd::Activation::Sigmoid;
  return std::nullopt;
}

// A convolution's post-ops as oneDNN runs them, and whether a SiLU that ended them runs after
// the primitive as fxpack's own launch, in place. Only SiLU: a blocked destination's padding
// channels must stay zero, and silu(0) is 0 (sigmoid(0) is not). Only last: what follows it
// would have to follow it out of the primitive too.
struct SplitPostOps {
  std::vector<PostOpSpec> in_primitive;
  bool silu_after = false;
};
SplitPostOps split_post_ops(const std::vector<PostOpSpec>& post_ops) {
  SplitPostOps s{post_ops, false};
  if (!s.in_primitive.empty() && !s.in_primitive.back().add &&
      native_activation(s.in_primitive.back().eltwise) == ops::simd::Activation::Silu) {
    s.in_primitive.pop_back();
    s.silu_after = true;
  }
  return s;
}
}  // namespace

void Executable::add_native_activation(ops::simd::Activation f, std::int32_t buffer, const memory::desc& md,
                                       Exec& ex) {
  Launch l;
  l.args.push_back(ArgSpec{DNNL_ARG_SRC, ArgSpec::From::Buffer, buffer, md, {}});
  l.args.push_back(ArgSpec{DNNL_ARG_DST, ArgSpec::From::Buffer, buffer, md, {}});
  l.activation = f;
  ex.launches.push_back(std::move(l));
}

bool Executable::try_native_eltwise(std::size_t j, Exec& ex, Workspace& ws) {
  const Step& st = steps_[j];
  const std::optional<ops::simd::Activation> f = native_activation(st.op.eltwise);
  if (!f) return false;
  const auto src = static_cast<std::uint32_t>(st.src);
  const ArgSpec in = source(src, DNNL_ARG_SRC, ws);
  const Shape x = in.from == ArgSpec::From::Buffer ? slots_[src].shape : in.shape;
  if (x.numel() < kMinWork) return false;
  // Padding (blocked layouts whose channels are not a multiple of the block) must stay zero.
  const bool padded = in.md.get_size() != static_cast<std::size_t>(x.numel()) * sizeof(float);
  if (padded && *f != ops::simd::Activation::Silu) return false;
  const std::int32_t dst = new_buffer(in.md.get_size(), j, ws);
  Launch l;
  l.args.push_back(in);
  l.args.push_back(ArgSpec{DNNL_ARG_DST, ArgSpec::From::Buffer, dst, in.md, {}});
  l.activation = f;
  ex.launches.push_back(std::move(l));
  produce(j, st.out, in.md, x, ex, ws, dst);
  return true;
}

void Executable::specialise(std::size_t j, Workspace& ws) {
  Exec ex;
  ex.generic = false;
  switch (steps_[j].kind) {
    case StepKind::Conv: specialise_conv(j, ex, ws); break;
    case StepKind::Linear: specialise_linear(j, ex, ws); break;
    case StepKind::BatchNorm: specialise_norm_or_eltwise(j, ex, ws); break;
    case StepKind::Eltwise:
      if (!try_native_eltwise(j, ex, ws)) specialise_norm_or_eltwise(j, ex, ws);
      break;
    case StepKind::LayerNorm: specialise_layer_norm(j, ex, ws); break;
    case StepKind::Binary: specialise_binary(j, ex, ws); break;
    case StepKind::Pool: specialise_pool(j, ex, ws); break;
    case StepKind::View: specialise_view(j, ex, ws); break;
    case StepKind::Alias: specialise_alias(j, ex, ws); break;
    case StepKind::Attention: specialise_attention(j, ex, ws); break;
    case StepKind::Generic: specialise_shape_op(j, ex, ws); break;
    default: throw SignatureMismatch{};
  }
  execs_[j] = std::move(ex);
}

// Only a primitive that uses scratch memory gets the argument: each argument costs oneDNN
// an allocation per call (see Executable).
void Executable::add_scratchpad(const memory::desc& md, Launch& l) {
  if (md.get_size() == 0) return;
  scratch_bytes_ = std::max(scratch_bytes_, md.get_size());
  l.args.push_back(ArgSpec{DNNL_ARG_SCRATCHPAD, ArgSpec::From::Scratchpad, 0, md, {}});
}

std::int32_t Executable::add_packed(const memory::desc& plain, const memory::desc& packed, const float* data) {
  if (packed == plain) return add_constant(plain, data);
  auto storage = Storage::allocate_uninitialized(packed.get_size());
  memory from(plain, dnb::engine(), const_cast<float*>(data)), to(packed, dnb::engine(), storage->data());
  dnnl::reorder(from, to).execute(dnb::stream(), from, to);
  dnb::stream().wait();
  const_storage_.push_back(storage);
  constants_.push_back(to);
  return static_cast<std::int32_t>(constants_.size() - 1);
}

namespace {
// Weights are folded and packed this many bytes (of the plain layout) at a time.
constexpr std::size_t kPackChunkBytes = 256 * 1024;

// How many values of dimension `d` a blocked layout keeps together (the product of its
// inner blocks of `d`; 1: not split); 0 for a layout that is not plainly blocked (Winograd's).
memory::dim inner_block(const memory::desc& md, int d) {
  if (md.data.format_kind != dnnl_blocked) return 0;
  const auto& b = md.data.format_desc.blocking;
  memory::dim n = 1;
  for (int i = 0; i < b.inner_nblks; ++i)
    if (b.inner_idxs[i] == d) n *= b.inner_blks[i];
  return n;
}
}  // namespace

std::int32_t Executable::add_folded_weights(const memory::desc& plain, const memory::desc& packed,
                                            const Tensor& weight, const std::vector<double>& scales) {
  const Dims dims = plain.dims();
  // The rows: the dimension `plain` keeps outermost (dim 0 of a convolution's weights; a
  // matmul's [in, out] weights are nn.Linear's [out, in] tensor, dim 1).
  const auto& plain_strides = plain.data.format_desc.blocking.strides;
  const int outer = static_cast<int>(std::max_element(plain_strides, plain_strides + dims.size()) - plain_strides);
  const memory::dim rows = dims[static_cast<std::size_t>(outer)];
  const std::size_t row_values = rows ? static_cast<std::size_t>(weight.numel() / rows) : 0;
  // Whole when the packed layout cannot be cut along the rows (Winograd's), else the blocks
  // of rows that fit in a chunk (at least one).
  memory::dim chunk = rows;
  const memory::dim block = inner_block(packed, outer);
  if (block > 0 && row_values > 0) {
    const auto fit = static_cast<memory::dim>(kPackChunkBytes / (row_values * sizeof(float)));
    chunk = std::min(rows, std::max<memory::dim>(block, fit / block * block));
  }
  // Padding the packed layout adds must be zeros: the reorders of chunks fill only their rows.
  const bool padded = !std::equal(dims.begin(), dims.end(), packed.data.padded_dims);
  // A padded one is zeroed by calloc, whose fresh pages become resident as the chunks are
  // written (mobilenet_v2's classifier, 1280x1000 padded to 1024 columns: a memset made
  // the whole 5 MiB copy resident next to the whole original, its first call's peak).
  auto storage = padded ? Storage::allocate(packed.get_size()) : Storage::allocate_uninitialized(packed.get_size());
  std::vector<float> buf(static_cast<std::size_t>(chunk) * row_values);
  for (memory::dim r0 = 0, n = 0; r0 < rows; r0 += n) {
    // A chunk is whole blocks, or the last part of one (what a sub-memory may be).
    n = std::min(chunk, rows - r0);
    if (n < rows && n > block && n % block) n -= n % block;
    folded_weights(weight, scales, static_cast<std::size_t>(r0) * row_values,
                   static_cast<std::size_t>(r0 + n) * row_values, buf.data());
    // The rows just read, given back (a mapped record's pages; see release_packed_originals):
    // otherwise a large layer's whole original stays resident next to its packed copy until
    // the step ends — resnet18's 9 MiB layer4 convolutions set its first call's peak so.
    if (read_when_run_.count(weight.storage().get()) == 0)
      weight.storage()->release_pages(weight.byte_offset() + static_cast<std::size_t>(r0) * row_values * sizeof(float),
                                      static_cast<std::size_t>(n) * row_values * sizeof(float));
    Dims sub = dims, at(dims.size(), 0);
    sub[static_cast<std::size_t>(outer)] = n;
    at[static_cast<std::size_t>(outer)] = r0;
    // Rows [r0, r0 + n) of each layout, addressed from their first byte (the sub-memory's
    // offset moved into the pointer): equal chunks share one reorder primitive.
    memory::desc from_md = n == rows ? plain : plain.submemory_desc(sub, at);
    memory::desc to_md = n == rows ? packed : packed.submemory_desc(sub, at);
    std::byte* to = storage->data() + static_cast<std::size_t>(to_md.data.offset0) * sizeof(float);
    from_md.data.offset0 = 0;
    to_md.data.offset0 = 0;
    memory src(from_md, dnb::engine(), buf.data()), dst(to_md, dnb::engine(), to);
    dnnl::reorder(src, dst).execute(dnb::stream(), src, dst);
    dnb::stream().wait();
  }
  const_storage_.push_back(storage);
  constants_.emplace_back(packed, dnb::engine(), storage->data());
  return static_cast<std::int32_t>(constants_.size() - 1);
}

Launch Executable::conv_launch(const dnnl::convolution_forward::primitive_desc& pd, const dnb::ConvGeometry& g,
                               const Pattern& op, const std::optional<Pattern>& bn, ArgSpec in, std::size_t j,
                               Exec& ex, Workspace& ws) {
  const std::vector<double> scales = fold_scales(bn);
  const memory::desc w_plain(g.weights, memory::data_type::f32,
                             g.grouped ? memory::format_tag::goihw : memory::format_tag::oihw);
  if (!(in.md == pd.src_desc())) {
    // The source in the convolution's preferred layout.
    const std::int32_t buf = new_buffer(pd.src_desc().get_size(), j, ws);
    Launch r;
    r.prim = dnnl::reorder(dnnl::reorder::primitive_desc(dnb::engine(), in.md, dnb::engine(), pd.src_desc()));
    ArgSpec from = in;
    from.arg = DNNL_ARG_FROM;
    r.args.push_back(from);
    r.args.push_back(ArgSpec{DNNL_ARG_TO, ArgSpec::From::Buffer, buf, pd.src_desc(), {}});
    ex.launches.push_back(std::move(r));
    in = ArgSpec{DNNL_ARG_SRC, ArgSpec::From::Buffer, buf, pd.src_desc(), {}};
  }
  Launch l;
  l.prim = dnnl::convolution_forward(pd);
  in.arg = DNNL_ARG_SRC;
  l.args.push_back(in);
  l.args.push_back(ArgSpec{DNNL_ARG_WEIGHTS, ArgSpec::From::Constant,
                           add_folded_weights(w_plain, pd.weights_desc(), op.weight, scales), pd.weights_desc(), {}});
  if (!g.bias.empty()) {
    l.args.push_back(ArgSpec{DNNL_ARG_BIAS, ArgSpec::From::Constant,
                             add_constant(dnb::plain_md(g.bias), folded_bias(op, bn, scales).data()), pd.bias_desc(), {}});
  }
  return l;
}

void Executable::specialise_conv(std::size_t j, Exec& ex, Workspace& ws) {
  const Step& st = steps_[j];
  if (st.dw) return specialise_conv_dw(j, ex, ws);
  const auto src = static_cast<std::uint32_t>(st.src);
  const ArgSpec in = source(src, DNNL_ARG_SRC, ws);
  const Shape x = in.from == ArgSpec::From::Buffer ? slots_[src].shape : in.shape;
  const Tensor& w = st.op.weight;
  const Shape out = conv_output_shape(x, st.op);
  // A small convolution of a plan buffer (a squeeze-excitation's on [N, C, 1, 1]) stays a
  // primitive: its kernel would take the buffer dense and go through oneDNN anyway.
  if (in.from == ArgSpec::From::External && out.numel() * (w.numel() / w.shape()[0]) < kMinWork)
    throw SignatureMismatch{};
  const dnb::ConvGeometry g =
      dnb::conv_geometry(x, w.shape(), st.op.bias.defined() || st.bn.has_value(), st.op.conv, out);
  // A residual addition is a Sum post-op: the convolution adds its result to what its
  // destination holds. In place when this step is the addend's last reader (and the
  // addend is the convolution's own kind of buffer), else the addend is copied there first.
  std::optional<ArgSpec> addend;
  std::int32_t in_place = -1;
  if (st.other >= 0) {
    const auto o_slot = static_cast<std::uint32_t>(st.other);
    addend = source(o_slot, DNNL_ARG_FROM, ws);
    const Shape as = addend->from == ArgSpec::From::Buffer ? slots_[o_slot].shape : addend->shape;
    if (!(as == out)) throw SignatureMismatch{};
    if (addend->from == ArgSpec::From::Buffer && slot_last_[o_slot] == static_cast<std::int64_t>(j) &&
        !is_output_[o_slot]) {
      in_place = addend->index;
      // Not over its own source (x + conv(x)): the convolution still reads it.
      if (slots_[src].buffer == in_place || slots_[src].dense == in_place) in_place = -1;
      // Nor over a buffer another value held in it is read from at or after this step.
      if (in_place >= 0 && buffer_live_after(in_place, static_cast<std::int64_t>(j) - 1, o_slot)) in_place = -1;
    }
  }
  const SplitPostOps post_ops = split_post_ops(st.post_ops);
  const auto pd = choose_conv(g, in.md, in_place >= 0 ? &addend->md : nullptr,
                              post_op_attr(post_ops.in_primitive, nullptr), winograd_, scratch_bytes_);
  Launch l = conv_launch(pd, g, st.op, st.bn, in, j, ex, ws);
  std::int32_t dst = in_place;
  if (dst < 0) {
    dst = new_buffer(pd.dst_desc().get_size(), j, ws);
    if (addend) {
      Launch copy;
      copy.prim = dnnl::reorder(dnnl::reorder::primitive_desc(dnb::engine(), addend->md, dnb::engine(), pd.dst_desc()));
      copy.args.push_back(*addend);
      copy.args.push_back(ArgSpec{DNNL_ARG_TO, ArgSpec::From::Buffer, dst, pd.dst_desc(), {}});
      ex.launches.push_back(std::move(copy));
    }
  }
  l.args.push_back(ArgSpec{DNNL_ARG_DST, ArgSpec::From::Buffer, dst, pd.dst_desc(), {}});
  add_scratchpad(pd.scratchpad_desc(), l);
  ex.launches.push_back(std::move(l));
  if (post_ops.silu_after) add_native_activation(ops::simd::Activation::Silu, dst, pd.dst_desc(), ex);
  produce(j, st.out, pd.dst_desc(), out, ex, ws, dst);
}

bool Executable::try_fused_dw(std::size_t j, const dnb::ConvGeometry& g, const ArgSpec& in, const Shape& out,
                              Exec& ex, Workspace& ws) {
  const Step& st = steps_[j];
  const DepthwiseSpec& dw = *st.dw;
  std::vector<dnb::PostOp> po = dnnl_post_ops(st.post_ops, nullptr);
  dnb::PostOp fused;
  fused.kind = dnb::PostOp::Kind::Depthwise;
  fused.depthwise = {dw.op.weight.shape()[2], dw.op.conv.stride[0], dw.op.conv.padding_begin[0]};
  po.push_back(fused);
  for (const dnb::PostOp& q : dnnl_post_ops(dw.post_ops, nullptr)) po.push_back(q);
  std::optional<dnnl::convolution_forward::primitive_desc> pd;
  try {
    pd = choose_conv(g, in.md, nullptr, dnb::make_attr(po, true), Winograd::Off, 0);
  } catch (const dnnl::error&) {
    return false;  // no fused primitive at all for these shapes
  }
  // A reference implementation runs the two apart with the whole intermediate in its
  // scratchpad; the depthwise result must have PyTorch's shape.
  if (dnb::is_reference(pd->impl_info_str()) || pd->dst_desc().dims() != dnb::dims_of(out)) return false;
  Launch l = conv_launch(*pd, g, st.op, st.bn, in, j, ex, ws);
  const std::vector<double> scales = fold_scales(dw.bn);
  constexpr int kWeights = DNNL_ARG_ATTR_POST_OP_DW | DNNL_ARG_WEIGHTS, kBias = DNNL_ARG_ATTR_POST_OP_DW | DNNL_ARG_BIAS;
  const memory::desc w_md = pd->query_md(dnnl::query::exec_arg_md, kWeights);
  const memory::desc b_md = pd->query_md(dnnl::query::exec_arg_md, kBias);
  const Shape& dw_shape = dw.op.weight.shape();
  const memory::desc w_plain({dw_shape[0], 1, 1, dw_shape[2], dw_shape[3]}, memory::data_type::f32,
                             memory::format_tag::goihw);
  l.args.push_back(
      ArgSpec{kWeights, ArgSpec::From::Constant, add_folded_weights(w_plain, w_md, dw.op.weight, scales), w_md, {}});
  l.args.push_back(ArgSpec{kBias, ArgSpec::From::Constant,
                           add_packed(dnb::plain_md({dw_shape[0]}), b_md, folded_bias(dw.op, dw.bn, scales).data()),
                           b_md, {}});
  const std::int32_t dst = new_buffer(pd->dst_desc().get_size(), j, ws);
  l.args.push_back(ArgSpec{DNNL_ARG_DST, ArgSpec::From::Buffer, dst, pd->dst_desc(), {}});
  add_scratchpad(pd->scratchpad_desc(), l);
  ex.launches.push_back(std::move(l));
  ex.fused_depthwise = true;
  produce(j, st.out, pd->dst_desc(), out, ex, ws, dst);
  return true;
}

void Executable::specialise_conv_dw(std::size_t j, Exec& ex, Workspace& ws) {
  const Step& st = steps_[j];
  const DepthwiseSpec& dw = *st.dw;
  const auto src = static_cast<std::uint32_t>(st.src);
  const ArgSpec in = source(src, DNNL_ARG_SRC, ws);
  const Shape x = in.from == ArgSpec::From::Buffer ? slots_[src].shape : in.shape;
  const Shape mid = conv_output_shape(x, st.op), out = conv_output_shape(mid, dw.op);
  const dnb::ConvGeometry g = dnb::conv_geometry(x, st.op.weight.shape(), true, st.op.conv, mid);
  // A SiLU runs apart from oneDNN (split_post_ops), so the two convolutions do too.
  const SplitPostOps post_ops = split_post_ops(st.post_ops), dw_post_ops = split_post_ops(dw.post_ops);
  if (!post_ops.silu_after && !dw_post_ops.silu_after && try_fused_dw(j, g, in, out, ex, ws)) return;
  // Apart: the 1x1 convolution into a buffer of this step's own, the depthwise one reading it.
  const auto pd = choose_conv(g, in.md, nullptr, post_op_attr(post_ops.in_primitive, nullptr), winograd_, scratch_bytes_);
  Launch l = conv_launch(pd, g, st.op, st.bn, in, j, ex, ws);
  const std::int32_t mid_buf = new_buffer(pd.dst_desc().get_size(), j, ws);
  l.args.push_back(ArgSpec{DNNL_ARG_DST, ArgSpec::From::Buffer, mid_buf, pd.dst_desc(), {}});
  add_scratchpad(pd.scratchpad_desc(), l);
  ex.launches.push_back(std::move(l));
  if (post_ops.silu_after) add_native_activation(ops::simd::Activation::Silu, mid_buf, pd.dst_desc(), ex);
  const dnb::ConvGeometry gd = dnb::conv_geometry(mid, dw.op.weight.shape(), true, dw.op.conv, out);
  const auto pd_dw =
      choose_conv(gd, pd.dst_desc(), nullptr, post_op_attr(dw_post_ops.in_primitive, nullptr), winograd_, scratch_bytes_);
  Launch l_dw = conv_launch(pd_dw, gd, dw.op, dw.bn, ArgSpec{DNNL_ARG_SRC, ArgSpec::From::Buffer, mid_buf, pd.dst_desc(), {}},
                            j, ex, ws);
  const std::int32_t dst = new_buffer(pd_dw.dst_desc().get_size(), j, ws);
  l_dw.args.push_back(ArgSpec{DNNL_ARG_DST, ArgSpec::From::Buffer, dst, pd_dw.dst_desc(), {}});
  add_scratchpad(pd_dw.scratchpad_desc(), l_dw);
  ex.launches.push_back(std::move(l_dw));
  if (dw_post_ops.silu_after) add_native_activation(ops::simd::Activation::Silu, dst, pd_dw.dst_desc(), ex);
  produce(j, st.out, pd_dw.dst_desc(), out, ex, ws, dst);
}

void Executable::specialise_linear(std::size_t j, Exec& ex, Workspace& ws) {
  const Step& st = steps_[j];
  const auto src = static_cast<std::uint32_t>(st.src);
  ArgSpec in = dense_source(src, DNNL_ARG_SRC, j, ex, ws);
  const Shape x = in.from == ArgSpec::From::Buffer ? slots_[src].shape : in.shape;
  const Tensor& w = st.op.weight;
  const std::int64_t outf = w.shape()[0], inf = w.shape()[1];
  if (x.size() < 1 || x[x.size() - 1] != inf || inf == 0) throw SignatureMismatch{};
  // BatchNorm1d normalises dim 1: the linear layer's features only for 2-D results.
  if (st.bn && x.size() != 2) throw SignatureMismatch{};
  const bool has_bias = st.op.bias.defined() || st.bn.has_value();
  const std::int64_t rows = x.numel() / inf;
  if (rows * inf * outf < kMinWork) throw SignatureMismatch{};
  Shape out = x;
  out[out.size() - 1] = outf;
  in.md = dnb::plain_md({rows, inf});
  std::optional<ArgSpec> addend;
  if (st.other >= 0) {
    addend = dense_source(static_cast<std::uint32_t>(st.other), DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1,
                          j, ex, ws);
    const Shape as = addend->from == ArgSpec::From::Buffer ? slots_[static_cast<std::size_t>(st.other)].shape
                                                           : addend->shape;
    if (!(as == out)) throw SignatureMismatch{};
    addend->md = dnb::plain_md({rows, outf});
  }
  const dnnl::primitive_attr attr = post_op_attr(st.post_ops, addend ? &addend->md : nullptr);
  const dnb::MatmulGeometry g{{rows, inf}, {inf, outf}, {rows, outf}, true, has_bias};
  const auto pd = dnb::matmul_pd(g, true, attr);
  // The batch norm folded into the weights as they are packed, a chunk at a time: no whole
  // copy of any weight (copies of every weight cost vit_b_16's first call 226 MB).
  const std::vector<double> scales = fold_scales(st.bn);
  const std::vector<float> bias = has_bias ? folded_bias(st.op, st.bn, scales) : std::vector<float>{};
  const std::int32_t dst = new_buffer(pd.dst_desc().get_size(), j, ws);
  ex.launches.push_back(linear_launch(pd, g, in, w, scales, has_bias ? bias.data() : nullptr, addend, dst));
  produce(j, st.out, dnb::plain_md(dnb::dims_of(out)), out, ex, ws, dst);
}

void Executable::specialise_norm_or_eltwise(std::size_t j, Exec& ex, Workspace& ws) {
  const Step& st = steps_[j];
  const auto src = static_cast<std::uint32_t>(st.src);
  ArgSpec in = source(src, DNNL_ARG_SRC, ws);
  const Shape x = in.from == ArgSpec::From::Buffer ? slots_[src].shape : in.shape;
  if (x.numel() < kMinWork) throw SignatureMismatch{};
  Launch l;
  memory::desc dst_md;
  if (st.kind == StepKind::BatchNorm) {
    const Pattern& bn = st.op;
    if (x.size() < 2 || x.size() > 5 || x[1] != bn.mean.numel()) throw SignatureMismatch{};
    if (bn.weight.defined() != bn.bias.defined()) throw SignatureMismatch{};
    const auto pd = dnb::batch_norm_pd(in.md, static_cast<float>(bn.eps), bn.weight.defined(),
                                       dnb::make_attr({}, true));
    l.prim = dnnl::batch_normalization_forward(pd);
    l.args.push_back(in);
    const Dims c{x[1]};
    l.args.push_back(ArgSpec{DNNL_ARG_MEAN, ArgSpec::From::Constant, add_constant_tensor(bn.mean, c),
                             dnb::plain_md(c), {}});
    l.args.push_back(ArgSpec{DNNL_ARG_VARIANCE, ArgSpec::From::Constant, add_constant_tensor(bn.var, c),
                             dnb::plain_md(c), {}});
    if (bn.weight.defined()) add_scale_shift(bn, c, l);
    dst_md = pd.dst_desc();
    add_scratchpad(pd.scratchpad_desc(), l);
  } else {
    const auto pd = dnb::eltwise_pd(in.md, st.op.eltwise, dnb::make_attr({}, true));
    l.prim = dnnl::eltwise_forward(pd);
    l.args.push_back(in);
    dst_md = pd.dst_desc();
    add_scratchpad(pd.scratchpad_desc(), l);
  }
  const std::int32_t dst = new_buffer(dst_md.get_size(), j, ws);
  l.args.insert(l.args.begin() + 1, ArgSpec{DNNL_ARG_DST, ArgSpec::From::Buffer, dst, dst_md, {}});
  ex.launches.push_back(std::move(l));
  produce(j, st.out, dst_md, x, ex, ws, dst);
}

void Executable::specialise_layer_norm(std::size_t j, Exec& ex, Workspace& ws) {
  const Step& st = steps_[j];
  const auto src = static_cast<std::uint32_t>(st.src);
  ArgSpec in = dense_source(src, DNNL_ARG_SRC, j, ex, ws);
  const Shape x = in.from == ArgSpec::From::Buffer ? slots_[src].shape : in.shape;
  if (x.numel() < kMinWork) throw SignatureMismatch{};
  const std::int64_t n = st.op.end_dim;
  if (x.size() < 1 || x[x.size() - 1] != n) throw SignatureMismatch{};
  in.md = dnb::plain_md({x.numel() / n, n});
  const bool affine = st.op.weight.defined();
  const auto pd = dnb::layer_norm_pd(in.md, static_cast<float>(st.op.eps), affine, dnb::make_attr({}, true));
  Launch l;
  l.prim = dnnl::layer_normalization_forward(pd);
  l.args.push_back(in);
  if (affine) add_scale_shift(st.op, Dims{n}, l);
  const std::int32_t dst = new_buffer(pd.dst_desc().get_size(), j, ws);
  l.args.push_back(ArgSpec{DNNL_ARG_DST, ArgSpec::From::Buffer, dst, pd.dst_desc(), {}});
  add_scratchpad(pd.scratchpad_desc(), l);
  ex.launches.push_back(std::move(l));
  produce(j, st.out, dnb::plain_md(dnb::dims_of(x)), x, ex, ws, dst);
}

void Executable::specialise_binary(std::size_t j, Exec& ex, Workspace& ws) {
  const Step& st = steps_[j];
  const auto src = static_cast<std::uint32_t>(st.src);
  ArgSpec a = source(src, DNNL_ARG_SRC_0, ws);
  ArgSpec b = source(static_cast<std::uint32_t>(st.other), DNNL_ARG_SRC_1, ws);
  Shape sa = a.from == ArgSpec::From::Buffer ? slots_[src].shape : a.shape;
  Shape sb = b.from == ArgSpec::From::Buffer ? slots_[static_cast<std::size_t>(st.other)].shape : b.shape;
  if (std::max(sa.numel(), sb.numel()) < kMinWork) throw SignatureMismatch{};
  const auto broadcasts_to = [](const Shape& small, const Shape& big) {
    if (small.size() != big.size()) return false;
    for (std::size_t i = 0; i < big.size(); ++i)
      if (small[i] != big[i] && small[i] != 1) return false;
    return true;
  };
  if (!broadcasts_to(sb, sa)) {
    if (!broadcasts_to(sa, sb)) throw SignatureMismatch{};
    std::swap(a, b);  // add and mul commute
    std::swap(sa, sb);
    a.arg = DNNL_ARG_SRC_0;
    b.arg = DNNL_ARG_SRC_1;
  }
  // The result takes the first operand's layout: a blocked one keeps the network blocked.
  if (sa == sb && is_dense(a.md, sa) && !is_dense(b.md, sb)) {
    std::swap(a, b);
    a.arg = DNNL_ARG_SRC_0;
    b.arg = DNNL_ARG_SRC_1;
  }
  // oneDNN's JIT binary kernels take both operands in one layout (else its reference
  // kernel runs, ~100x slower): the second, typically a squeeze-excitation scale
  // [N, C, 1, 1], is reordered into the first's.
  const memory::format_tag tag = dnb::activation_tag(a.md);
  const memory::desc want = tag != memory::format_tag::undef
                                ? memory::desc(dnb::dims_of(sb), memory::data_type::f32, tag)
                                : is_dense(a.md, sa) ? dnb::plain_md(dnb::dims_of(sb)) : b.md;
  if (!(b.md == want)) {
    const std::int32_t buf = new_buffer(want.get_size(), j, ws);
    Launch r;
    r.prim = dnnl::reorder(dnnl::reorder::primitive_desc(dnb::engine(), b.md, dnb::engine(), want));
    ArgSpec from = b;
    from.arg = DNNL_ARG_FROM;
    r.args.push_back(from);
    r.args.push_back(ArgSpec{DNNL_ARG_TO, ArgSpec::From::Buffer, buf, want, {}});
    ex.launches.push_back(std::move(r));
    b = ArgSpec{DNNL_ARG_SRC_1, ArgSpec::From::Buffer, buf, want, {}};
  }
  const auto pd = dnb::binary_pd(st.binary_alg, a.md, b.md, dnb::make_attr({}, true));
  Launch l;
  l.prim = dnnl::binary(pd);
  l.args.push_back(a);
  l.args.push_back(b);
  const std::int32_t dst = new_buffer(pd.dst_desc().get_size(), j, ws);
  l.args.push_back(ArgSpec{DNNL_ARG_DST, ArgSpec::From::Buffer, dst, pd.dst_desc(), {}});
  add_scratchpad(pd.scratchpad_desc(), l);
  ex.launches.push_back(std::move(l));
  produce(j, st.out, pd.dst_desc(), sa, ex, ws, dst);
}

void Executable::specialise_pool(std::size_t j, Exec& ex, Workspace& ws) {
  const Step& st = steps_[j];
  const auto src = static_cast<std::uint32_t>(st.src);
  ArgSpec in = source(src, DNNL_ARG_SRC, ws);
  const Shape x = in.from == ArgSpec::From::Buffer ? slots_[src].shape : in.shape;
  if (x.size() != 4 || x[2] < 1 || x[3] < 1) throw SignatureMismatch{};
  if (x.numel() < kMinWork && in.from == ArgSpec::From::External) throw SignatureMismatch{};
  ops::Pool2dOptions o = st.op.pool;
  bool average = st.op.op != PatternOp::MaxPool;
  bool include_pad = st.op.count_include_pad;
  Shape out{x[0], x[1], 0, 0};
  if (st.op.op == PatternOp::AdaptiveAvgPool) {
    for (std::size_t i = 0; i < 2; ++i) {
      const std::int64_t os = st.op.output_size[i].value_or(x[2 + i]);
      if (os < 1 || x[2 + i] % os) throw SignatureMismatch{};  // unequal windows: the kernel's loop
      o.kernel[i] = o.stride[i] = x[2 + i] / os;
      out[2 + i] = os;
    }
    include_pad = false;
  } else {
    for (std::size_t i = 0; i < 2; ++i) {
      if (o.kernel[i] <= 0 || o.stride[i] <= 0 || o.dilation[i] <= 0 || o.padding[i] < 0 ||
          o.padding[i] > ((o.kernel[i] - 1) * o.dilation[i] + 1) / 2)
        throw SignatureMismatch{};  // the kernel reports it
      out[2 + i] = ops::pool_output_size(x[2 + i], o.kernel[i], o.padding[i], o.stride[i], o.dilation[i], o.ceil_mode);
      if (out[2 + i] < 1) throw SignatureMismatch{};
    }
  }
  const auto g = dnb::pool_geometry(x, o, out, average, include_pad);
  if (!g) throw SignatureMismatch{};
  const auto pd = dnb::pool_pd(*g, in.md, dnb::make_attr({}, true));
  Launch l;
  l.prim = dnnl::pooling_v2_forward(pd);
  l.args.push_back(in);
  const std::int32_t dst = new_buffer(pd.dst_desc().get_size(), j, ws);
  l.args.push_back(ArgSpec{DNNL_ARG_DST, ArgSpec::From::Buffer, dst, pd.dst_desc(), {}});
  add_scratchpad(pd.scratchpad_desc(), l);
  ex.launches.push_back(std::move(l));
  produce(j, st.out, pd.dst_desc(), out, ex, ws, dst);
}

void Executable::specialise_view(std::size_t j, Exec& ex, Workspace& ws) {
  const Step& st = steps_[j];
  const auto src = static_cast<std::uint32_t>(st.src);
  if (slots_[src].buffer < 0) throw SignatureMismatch{};  // a kernel's tensor: its own flatten
  const ArgSpec in = dense_source(src, DNNL_ARG_SRC, j, ex, ws);
  const Shape& x = slots_[src].shape;
  const auto nd = static_cast<std::int64_t>(x.size());
  std::int64_t s = st.op.start_dim < 0 ? st.op.start_dim + nd : st.op.start_dim;
  std::int64_t e = st.op.end_dim < 0 ? st.op.end_dim + nd : st.op.end_dim;
  if (nd == 0 || s < 0 || e >= nd || s > e) throw SignatureMismatch{};
  Shape out;
  for (std::int64_t i = 0; i < s; ++i) out.push_back(x[static_cast<std::size_t>(i)]);
  std::int64_t merged = 1;
  for (std::int64_t i = s; i <= e; ++i) merged *= x[static_cast<std::size_t>(i)];
  out.push_back(merged);
  for (std::int64_t i = e + 1; i < nd; ++i) out.push_back(x[static_cast<std::size_t>(i)]);
  produce(j, st.out, dnb::plain_md(dnb::dims_of(out)), out, ex, ws, in.index);
}

void Executable::specialise_alias(std::size_t j, Exec& ex, Workspace& /*ws*/) {
  const Step& st = steps_[j];
  const auto src = static_cast<std::uint32_t>(st.src);
  if (slots_[src].buffer < 0) throw SignatureMismatch{};
  edit_slot(st.out) = slots_[src];
  attach(st.out, slots_[src].buffer);
  if (slots_[src].dense >= 0 && slots_[src].dense != slots_[src].buffer) attach(st.out, slots_[src].dense);
  if (slots_[src].dense >= 0) ex.materialize.push_back(Materialize{st.out, slots_[src].dense, slots_[src].shape});
}

// ---- shape ops on plan buffers ----------------------------------------------------------

namespace {

// Row-major strides of `shape`.
Dims dense_strides(const Shape& shape) {
  Dims s(shape.size());
  std::int64_t step = 1;
  for (std::size_t i = shape.size(); i-- > 0;) {
    s[i] = step;
    step *= shape[i];
  }
  return s;
}

// x.permute(dims) of dense x: out dim k is x's dim dims[k], with its stride.
memory::desc permuted_md(const Shape& x, const Value& dims, Shape& out) {
  const std::vector<std::int64_t> p = dims.int_list();
  const auto nd = static_cast<std::int64_t>(x.size());
  if (p.size() != x.size()) throw SignatureMismatch{};
  const Dims in_strides = dense_strides(x);
  std::vector<bool> seen(x.size(), false);
  Dims strides;
  for (std::int64_t k : p) {
    if (k < 0) k += nd;
    if (k < 0 || k >= nd || seen[static_cast<std::size_t>(k)]) throw SignatureMismatch{};
    seen[static_cast<std::size_t>(k)] = true;
    out.push_back(x[static_cast<std::size_t>(k)]);
    strides.push_back(in_strides[static_cast<std::size_t>(k)]);
  }
  return memory::desc(dnb::dims_of(out), memory::data_type::f32, strides);
}

// x[index] of dense x for basic indexing: ints and slices with positive steps over the
// leading dims (Python's clamping of slice bounds). Anything else (None, Ellipsis, tensors,
// a 0-d or empty result, an int out of range) is the kernel's.
memory::desc indexed_md(const Shape& x, const Value& index, Shape& out) {
  const bool tuple = index.kind() == Value::Kind::Tuple;
  const std::span<const Value> parts = tuple ? std::span<const Value>(index.items()) : std::span<const Value>(&index, 1);
  if (parts.size() > x.size()) throw SignatureMismatch{};
  const Dims in_strides = dense_strides(x);
  std::int64_t offset = 0;
  Dims strides;
  for (std::size_t d = 0; d < x.size(); ++d) {
    const std::int64_t n = x[d];
    const Value* part = d < parts.size() ? &parts[d] : nullptr;
    if (part && part->kind() == Value::Kind::Int) {
      std::int64_t i = part->to_int();
      if (i < 0) i += n;
      if (i < 0 || i >= n) throw SignatureMismatch{};
      offset += i * in_strides[d];
      continue;
    }
    std::int64_t start = 0, len = n, step = 1;
    if (part) {
      if (part->kind() != Value::Kind::Slice || part->slice().has_nodes()) throw SignatureMismatch{};
      const Slice& s = part->slice();
      step = s.step.value_or(1);
      if (step <= 0) throw SignatureMismatch{};
      const auto bound = [n](std::optional<std::int64_t> b, std::int64_t absent) {
        if (!b) return absent;
        return std::clamp<std::int64_t>(*b < 0 ? *b + n : *b, 0, n);
      };
      start = bound(s.start, 0);
      const std::int64_t stop = bound(s.stop, n);
      len = stop > start ? (stop - start + step - 1) / step : 0;
    }
    if (len == 0) throw SignatureMismatch{};
    offset += start * in_strides[d];
    out.push_back(len);
    strides.push_back(in_strides[d] * step);
  }
  if (out.empty()) throw SignatureMismatch{};
  memory::desc md(dnb::dims_of(out), memory::data_type::f32, strides);
  md.data.offset0 = offset;
  return md;
}

}  // namespace

bool Executable::decided_by_signature(std::uint32_t slot) const {
  return fixed_slot_[slot] || prog_.plan().instr(slot).kind == Plan::Kind::Constant;
}

bool Executable::decided_by_signature(const Plan::Operand& operand) const {
  if (operand.from_slot()) return decided_by_signature(operand.payload);
  if (!operand.nested()) return true;
  bool decided = true;
  (void)map_nodes(prog_.plan().constant(operand), [&](const Node* n) {
    decided = decided && decided_by_signature(prog_.plan().slot_of_.at(n));
    return Value();
  });
  return decided;
}

// Reshape, view, permute and basic indexing of a value in a plan buffer are views of its
// dense layout (reordered into a dense buffer of their own when they are not dense); cat is
// oneDNN's concatenation. ViT's patch embedding (conv, reshape, permute), its class token's
// cat and its head's x[:, 0] run so, without a kernel's allocations.
void Executable::specialise_shape_op(std::size_t j, Exec& ex, Workspace& ws) {
  const Step& st = steps_[j];
  const Plan& plan = prog_.plan();
  if (st.instrs.size() != 1) throw SignatureMismatch{};
  const auto& in = plan.instr(st.instrs[0]);
  const auto operands = plan.operands(st.instrs[0]);
  if (in.kind != Plan::Kind::Kernel || !in.op->info || operands.size() < 2) throw SignatureMismatch{};
  const std::string& name = in.op->info->schema.name;
  const bool concat = name == "cat";
  if (!concat && name != "reshape" && name != "view" && name != "permute" && name != "operator.getitem")
    throw SignatureMismatch{};
  // What the step does besides reading its tensors must be the same on every call.
  std::vector<Value> args;
  for (std::size_t a = 0; a < operands.size(); ++a) {
    if (a > 0 && !decided_by_signature(operands[a])) throw SignatureMismatch{};
    args.push_back(plan.value(operands[a], ws.values));
  }
  try {
    if (concat) return specialise_concat(j, args, ex, ws);
    if (!operands[0].from_slot()) throw SignatureMismatch{};
    const std::uint32_t src = operands[0].payload;
    if (slots_[src].buffer < 0) throw SignatureMismatch{};
    const ArgSpec dense = dense_source(src, DNNL_ARG_FROM, j, ex, ws);
    const Shape x = slots_[src].shape;
    Shape out;
    memory::desc md;
    if (name == "permute") {
      md = permuted_md(x, args[1], out);
    } else if (name == "operator.getitem") {
      md = indexed_md(x, args[1], out);
    } else {
      // The kernel's own shape inference: its OpError for sizes that do not fit (an
      // archive's, whose product may overflow int64) leaves the step to the kernel.
      out = ops::reshape_shape(x.numel(), args[1].int_list(), name.c_str());
      md = dnb::plain_md(dnb::dims_of(out));
    }
    produce_view(j, md, out, dense.index, ex, ws);
  } catch (const Error&) {
    throw SignatureMismatch{};  // arguments of the wrong kind: the kernel's message
  }
}

void Executable::produce_view(std::size_t j, const memory::desc& md, const Shape& shape, std::int32_t buffer, Exec& ex,
                              Workspace& ws) {
  const memory::desc dense = dnb::plain_md(dnb::dims_of(shape));
  if (md == dense) return produce(j, steps_[j].out, dense, shape, ex, ws, buffer);
  const std::int32_t dst = new_buffer(dense.get_size(), j, ws);
  Launch l;
  l.prim = dnnl::reorder(dnnl::reorder::primitive_desc(dnb::engine(), md, dnb::engine(), dense));
  l.args.push_back(ArgSpec{DNNL_ARG_FROM, ArgSpec::From::Buffer, buffer, md, {}});
  l.args.push_back(ArgSpec{DNNL_ARG_TO, ArgSpec::From::Buffer, dst, dense, {}});
  ex.launches.push_back(std::move(l));
  produce(j, steps_[j].out, dense, shape, ex, ws, dst);
}

std::int64_t Executable::folded_producer(std::uint32_t slot, const Workspace& ws) const {
  const Tensor* t = ws.values[slot].if_tensor();
  if (is_output_[slot] || !t || !t->defined() || t->dtype() != DType::Float32 || t->numel() == 0) return -1;
  const auto it = std::find_if(steps_.begin(), steps_.end(), [&](const Step& s) { return s.out == slot; });
  if (it == steps_.end() || it->kind != StepKind::Generic || it->instrs.size() != 1) return -1;
  const auto k = static_cast<std::size_t>(it - steps_.begin());
  if (!execs_[k].generic || !execs_[k].launches.empty()) return -1;
  const auto& in = prog_.plan().instr(it->instrs[0]);
  if (in.kind != Plan::Kind::Kernel || !in.op->info) return -1;
  const Purity purity = in.op->info->purity;
  if (purity != Purity::Pure && purity != Purity::View) return -1;
  const auto operands = prog_.plan().operands(it->instrs[0]);
  const bool decided = std::all_of(operands.begin(), operands.end(),
                                   [&](const Plan::Operand& o) { return decided_by_signature(o); });
  return decided ? static_cast<std::int64_t>(k) : -1;
}

// torch.cat of tensors in plan buffers, kernels' tensors and folded constants into a dense
// buffer.
void Executable::specialise_concat(std::size_t j, std::span<const Value> args, Exec& ex, Workspace& ws) {
  const Step& st = steps_[j];
  const Plan& plan = prog_.plan();
  const Plan::Operand& list = plan.operands(st.instrs[0])[0];
  if (!list.nested()) throw SignatureMismatch{};
  const std::vector<Value>& items = plan.constant(list).items();
  std::vector<ArgSpec> srcs;
  std::vector<memory::desc> mds;
  std::vector<std::uint32_t> folded;
  Shape out;
  std::int64_t dim = args[1].to_int();
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (!items[i].is_node()) throw SignatureMismatch{};
    const std::uint32_t slot = plan.slot_of_.at(items[i].node());
    const int arg = DNNL_ARG_MULTIPLE_SRC + static_cast<int>(i);
    ArgSpec a;
    Shape shape;
    if (folded_producer(slot, ws) >= 0) {
      const Tensor& t = ws.values[slot].tensor();
      shape = t.shape();
      const memory::desc md = dnb::plain_md(dnb::dims_of(shape));
      a = ArgSpec{arg, ArgSpec::From::Constant, add_constant(md, t.data<float>()), md, {}};
      if (std::find(folded.begin(), folded.end(), slot) == folded.end()) folded.push_back(slot);
    } else {
      a = source(slot, arg, ws);
      shape = a.from == ArgSpec::From::Buffer ? slots_[slot].shape : a.shape;
    }
    if (i == 0) {
      out = shape;
      const auto nd = static_cast<std::int64_t>(shape.size());
      if (dim < 0) dim += nd;
      if (dim < 0 || dim >= nd) throw SignatureMismatch{};
    } else {
      if (shape.size() != out.size()) throw SignatureMismatch{};
      for (std::size_t d = 0; d < out.size(); ++d)
        if (static_cast<std::int64_t>(d) != dim && shape[d] != out[d]) throw SignatureMismatch{};
      out[static_cast<std::size_t>(dim)] += shape[static_cast<std::size_t>(dim)];
    }
    mds.push_back(a.md);
    srcs.push_back(std::move(a));
  }
  if (srcs.empty()) throw SignatureMismatch{};
  const memory::desc dst_md = dnb::plain_md(dnb::dims_of(out));
  const dnnl::concat::primitive_desc pd(dst_md, static_cast<int>(dim), mds, dnb::engine(), dnb::make_attr({}, true));
  Launch l;
  l.prim = dnnl::concat(pd);
  l.args = std::move(srcs);
  const std::int32_t dst = new_buffer(dst_md.get_size(), j, ws);
  l.args.push_back(ArgSpec{DNNL_ARG_DST, ArgSpec::From::Buffer, dst, dst_md, {}});
  add_scratchpad(pd.scratchpad_desc(), l);
  ex.launches.push_back(std::move(l));
  produce(j, st.out, dst_md, out, ex, ws, dst);
  for (std::uint32_t s : folded) ++folded_reads_[s];
}

std::int32_t Executable::add_linear_weights(const Tensor& w, const std::vector<double>& scales,
                                            const dnb::MatmulGeometry& g, const memory::desc& packed_md) {
  dnb::MatmulGeometry plain = g;
  plain.bias = false;
  return add_folded_weights(dnb::matmul_pd(plain, false, dnb::make_attr({}, false)).weights_desc(), packed_md, w,
                            scales);
}

Launch Executable::packed_linear(const Tensor& w, const Tensor& b, const ArgSpec& x, std::int64_t rows,
                                 std::int32_t dst) {
  const std::int64_t outf = w.shape()[0], inf = w.shape()[1];
  const dnb::MatmulGeometry g{{rows, inf}, {inf, outf}, {rows, outf}, true, b.defined()};
  const auto pd = dnb::matmul_pd(g, true, dnb::make_attr({}, true));
  return linear_launch(pd, g, x, w, {}, b.defined() ? b.data<float>() : nullptr, std::nullopt, dst);
}

Launch Executable::linear_launch(const dnnl::matmul::primitive_desc& pd, const dnb::MatmulGeometry& g,
                                 const ArgSpec& x, const Tensor& w, const std::vector<double>& scales, const float* b,
                                 const std::optional<ArgSpec>& addend, std::int32_t dst) {
  Launch l;
  l.prim = dnnl::matmul(pd);
  l.args.push_back(x);
  l.args.push_back(ArgSpec{DNNL_ARG_WEIGHTS, ArgSpec::From::Constant, add_linear_weights(w, scales, g, pd.weights_desc()),
                           pd.weights_desc(), {}});
  if (b) {
    const memory::desc b_md = dnb::plain_md({1, g.dst[1]});
    l.args.push_back(ArgSpec{DNNL_ARG_BIAS, ArgSpec::From::Constant, add_constant(b_md, b), b_md, {}});
  }
  if (addend) l.args.push_back(*addend);
  l.args.push_back(ArgSpec{DNNL_ARG_DST, ArgSpec::From::Buffer, dst, pd.dst_desc(), {}});
  add_scratchpad(pd.scratchpad_desc(), l);
  return l;
}

namespace {

// The heads of a [rows, width] projection or of the merged rows, in place as (N, H, L,
// head_dim) from column `column` on. Row (n, l) is n * L + l, or l * N + n for
// sequence-major (L, N, E) inputs.
memory::desc heads_md(std::int64_t N, std::int64_t H, std::int64_t L, std::int64_t hd, std::int64_t width,
                      std::int64_t column, bool seq_major) {
  const std::int64_t ns = seq_major ? width : L * width, ls = seq_major ? N * width : width;
  memory::desc md({N, H, L, hd}, memory::data_type::f32, Dims{ns, hd, ls, 1});
  md.data.offset0 = column;  // what memory::desc::submemory_desc sets for a column offset
  return md;
}

}  // namespace

// Self-attention as the kernel's attend_dnnl computes it, on plan buffers: the packed input
// projection [rows, 3E]; the heads of Q, K and V reordered dense, (N, H, L, head_dim), into
// the buffers of the merged heads and of the output while those are not yet written (brgemm
// takes only dense heads; read in place with strides the products fall back to oneDNN's
// older sgemm, whose kernels are 3 MiB of JIT code in ViT-B); the scores, one batched product
// over the heads with 1/sqrt(head_dim) as its output scale; oneDNN's softmax over them in
// place; the second product writing each head's columns into the merged rows; the packed
// output projection.
void Executable::specialise_attention(std::size_t j, Exec& ex, Workspace& ws) {
  const Step& st = steps_[j];
  const AttentionPattern& a = *st.attention;
  const auto src = static_cast<std::uint32_t>(st.src);
  ArgSpec in = dense_source(src, DNNL_ARG_SRC, j, ex, ws);
  const Shape x = in.from == ArgSpec::From::Buffer ? slots_[src].shape : in.shape;
  const std::int64_t E = a.embed_dim, H = a.heads, hd = E / H;
  if ((x.size() != 2 && x.size() != 3) || x[x.size() - 1] != E) throw SignatureMismatch{};  // the kernel's message
  // Batch-first (N, L, E) or unbatched (L, E); else (L, N, E). One sequence is laid out the
  // same either way, and the batch-first strides are those brgemm takes for the merged heads.
  const bool seq_major = x.size() == 3 && !a.batch_first && x[1] > 1;
  const std::int64_t N = x.size() == 2 ? 1 : a.batch_first ? x[0] : x[1];
  const std::int64_t L = x.size() == 2 || !a.batch_first ? x[0] : x[1];
  // Small products take the kernel's loops, as they do outside a plan.
  if (!dnb::worth_it(N * L * L * E)) throw SignatureMismatch{};
  const std::int64_t rows = N * L;
  in.md = dnb::plain_md({rows, E});
  const auto f32_bytes = [](std::int64_t n) { return static_cast<std::size_t>(n) * sizeof(float); };
  const std::int32_t qkv = new_buffer(f32_bytes(rows * 3 * E), j, ws);
  const std::int32_t merged = new_buffer(f32_bytes(rows * E), j, ws);
  const std::int32_t out = new_buffer(f32_bytes(rows * E), j, ws);
  ex.launches.push_back(packed_linear(a.in_weight, a.in_bias, in, rows, qkv));
  const memory::desc heads = dnb::plain_md({N, H, L, hd});
  // Part `part` (0 Q, 1 K, 2 V) of the projection, its heads made dense in buffer `to`.
  const auto dense_heads = [&](std::int64_t part, std::int32_t to) {
    const memory::desc from = heads_md(N, H, L, hd, 3 * E, part * E, seq_major);
    return Launch{dnnl::reorder(dnnl::reorder::primitive_desc(dnb::engine(), from, dnb::engine(), heads)),
                  {ArgSpec{DNNL_ARG_FROM, ArgSpec::From::Buffer, qkv, from, {}},
                   ArgSpec{DNNL_ARG_TO, ArgSpec::From::Buffer, to, heads, {}}}};
  };
  ex.launches.push_back(dense_heads(0, merged));
  ex.launches.push_back(dense_heads(1, out));
  const memory::desc scores_md = dnb::plain_md({N, H, L, L});
  const std::int32_t scores = new_buffer(scores_md.get_size(), j, ws);
  dnnl::primitive_attr scale_attr = dnb::make_attr({}, true);
  scale_attr.set_output_scales(0, {static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)))});
  const memory::desc k_md({N, H, hd, L}, memory::data_type::f32, memory::format_tag::abdc);  // Kᵀ
  const dnnl::matmul::primitive_desc qk(dnnl::matmul::desc(heads, k_md, scores_md), scale_attr, dnb::engine());
  Launch l1{dnnl::matmul(qk), {ArgSpec{DNNL_ARG_SRC, ArgSpec::From::Buffer, merged, heads, {}},
                               ArgSpec{DNNL_ARG_WEIGHTS, ArgSpec::From::Buffer, out, k_md, {}},
                               ArgSpec{DNNL_ARG_DST, ArgSpec::From::Buffer, scores, scores_md, {}}}};
  add_scratchpad(qk.scratchpad_desc(), l1);
  ex.launches.push_back(std::move(l1));
  const memory::desc rows_md = dnb::plain_md({N * H * L, L});
  const dnnl::softmax_forward::primitive_desc sm(
      dnnl::softmax_forward::desc(dnnl::prop_kind::forward_inference, rows_md, 1), dnb::make_attr({}, true),
      dnb::engine());
  Launch l2{dnnl::softmax_forward(sm), {ArgSpec{DNNL_ARG_SRC, ArgSpec::From::Buffer, scores, rows_md, {}},
                                        ArgSpec{DNNL_ARG_DST, ArgSpec::From::Buffer, scores, rows_md, {}}}};
  add_scratchpad(sm.scratchpad_desc(), l2);
  ex.launches.push_back(std::move(l2));
  ex.launches.push_back(dense_heads(2, out));  // K is read
  const memory::desc merged_md = heads_md(N, H, L, hd, E, 0, seq_major);
  const dnnl::matmul::primitive_desc pv(dnnl::matmul::desc(scores_md, heads, merged_md), dnb::make_attr({}, true),
                                        dnb::engine());
  Launch l3{dnnl::matmul(pv), {ArgSpec{DNNL_ARG_SRC, ArgSpec::From::Buffer, scores, scores_md, {}},
                               ArgSpec{DNNL_ARG_WEIGHTS, ArgSpec::From::Buffer, out, heads, {}},
                               ArgSpec{DNNL_ARG_DST, ArgSpec::From::Buffer, merged, merged_md, {}}}};
  add_scratchpad(pv.scratchpad_desc(), l3);
  ex.launches.push_back(std::move(l3));
  // V is read: the output projection overwrites it.
  ex.launches.push_back(packed_linear(a.out_weight, a.out_bias,
                                      ArgSpec{DNNL_ARG_SRC, ArgSpec::From::Buffer, merged, dnb::plain_md({rows, E}), {}},
                                      rows, out));
  produce(j, st.out, dnb::plain_md(dnb::dims_of(x)), x, ex, ws, out);
}

void Executable::bind_launch(std::size_t j, std::size_t l, Workspace& ws) {
  const Launch& launch = execs_[j].launches[l];
  auto& mems = ws.mems[j][l];
  auto& args = ws.exec_args[j][l];
  mems.clear();
  args.clear();
  for (const ArgSpec& a : launch.args) {
    switch (a.from) {
      case ArgSpec::From::Buffer: mems.emplace_back(a.md, dnb::engine(), ws.buffer(a.index, buffers_)); break;
      case ArgSpec::From::External: mems.emplace_back(a.md, dnb::engine(), nullptr); break;
      case ArgSpec::From::Constant: mems.push_back(constants_[static_cast<std::size_t>(a.index)]); break;
      case ArgSpec::From::Scratchpad: mems.emplace_back(a.md, dnb::engine(), ws.scratch->data()); break;
    }
  }
  for (std::size_t i = 0; i < launch.args.size(); ++i) args.push_back(dnnl_exec_arg_t{launch.args[i].arg, mems[i].get()});
}

void Executable::bind(std::size_t j, Workspace& ws) {
  ws.mems[j].resize(execs_[j].launches.size());
  ws.exec_args[j].resize(execs_[j].launches.size());
  for (std::size_t l = 0; l < execs_[j].launches.size(); ++l) bind_launch(j, l, ws);
}

void Executable::run_step(std::size_t j, Workspace& ws) {
  const Step& st = steps_[j];
  const Plan& plan = prog_.plan();
  const Exec& ex = execs_[j];
  // oneDNN launches (a kernel step's are the reorders of its blocked operands), then the
  // dense values kernels read, then the step's own kernels when it has no primitive.
  const ThreadsForScope scope(ex.one_thread);
  for (std::size_t l = 0; l < ex.launches.size(); ++l) {
    const Launch& launch = ex.launches[l];
    auto& mems = ws.mems[j][l];
    for (std::size_t a = 0; a < launch.args.size(); ++a) {
      const ArgSpec& spec = launch.args[a];
      if (spec.from != ArgSpec::From::External) continue;
      const Tensor* t = ws.values[static_cast<std::size_t>(spec.index)].if_tensor();
      if (!t || !t->defined() || t->dtype() != DType::Float32 || !(t->shape() == spec.shape)) throw SignatureMismatch{};
      mems[a].set_data_handle(const_cast<float*>(t->data<float>()));
    }
    if (launch.activation) {
      ops::simd::apply(*launch.activation, static_cast<const float*>(mems[0].get_data_handle()),
                       static_cast<float*>(mems[1].get_data_handle()), launch.args[1].md.get_size() / sizeof(float));
      continue;
    }
    try {
      dnb::execute(launch.prim, ws.exec_args[j][l], j < steps_.size() ? pattern_name(st.op.op) : "reorder");
    } catch (const OpError& e) {
      if (j >= steps_.size()) throw;
      throw OpError(plan.where(st.instrs.back()) + ": " + e.what());
    }
  }
  for (const Materialize& m : ex.materialize)
    ws.values[m.slot] = Value(Tensor(ws.storage_of(m.buffer), ws.offset_of(m.buffer, buffers_), DType::Float32, m.shape));
  if (ex.generic && j < steps_.size())
    for (std::uint32_t i : st.instrs) plan.run_instr(i, ws.values, ws.args);
}

Value Executable::record(std::span<const Value> inputs) {
  // Memory kept for a later load goes back before the weights are packed (kept_memory.hpp).
  detail::release_kept_memory();
  Workspace ws;
  ws.values.resize(prog_.num_slots());
  ws.mems.resize(steps_.size());
  ws.exec_args.resize(steps_.size());
  ws.scratch = Storage::allocate_uninitialized(1);
  const Plan& plan = prog_.plan();
  read_when_run_ = constants_read_when_run();
  std::size_t next_input = 0;
  for (std::size_t j = 0; j < steps_.size(); ++j) {
    const Step& st = steps_[j];
    const std::size_t made_from = ws.own.size();
    if (st.kind == StepKind::Input) {
      ws.values[st.out] = inputs[next_input++];
    } else if (st.kind == StepKind::Constant) {
      ws.values[st.out] = plan.constant_of(st.out);
    } else if (try_specialise(j, ws)) {
      // A larger scratchpad replaces the old one, whose contents live only during a launch:
      // the earlier steps' bound memories still point into it, but this call never runs them
      // again (later calls bind their own workspace).
      if (ws.scratch->nbytes() < scratch_bytes_) ws.scratch = first_call_buffer(scratch_bytes_);
      bind(j, ws);
      release_packed_originals(j);
    } else {
      // The step's kernels read dense tensors: blocked operands are reordered for them.
      Exec ex;
      for (std::uint32_t r : st.reads) {
        if (slots_[r].buffer < 0) continue;
        dense_source(r, DNNL_ARG_SRC, j, ex, ws);
        ex.materialize.push_back(Materialize{r, slots_[r].dense, slots_[r].shape});
      }
      execs_[j] = std::move(ex);
      bind(j, ws);
    }
    if (st.kind != StepKind::Input && st.kind != StepKind::Constant) run_step(j, ws);
    if (execs_[j].generic) note_fixed(j, ws);
    for (std::uint32_t s : st.frees) ws.values[s] = Value();
    release_dead_buffers(j, made_from, ws);
  }
  // Outputs in dense layout.
  for (std::uint32_t s : prog_.output_slots()) {
    SlotLoc& loc = slots_[s];
    if (loc.buffer < 0) continue;
    if (loc.dense < 0) {
      Exec tail;
      tail.generic = false;
      const std::size_t j = execs_.size();
      dense_source(s, DNNL_ARG_SRC, j, tail, ws);
      execs_.push_back(std::move(tail));
      ws.mems.emplace_back();
      ws.exec_args.emplace_back();
      bind(j, ws);
      run_step(j, ws);
    }
    ws.values[s] = Value(Tensor(ws.storage_of(loc.dense), 0, DType::Float32, loc.shape));
  }
  // Again, now that nothing reads the originals: reading a record maps its neighbours' pages
  // too (the kernel's fault-around), so those released earlier came back.
  for (std::size_t j = 0; j < steps_.size(); ++j)
    if (!execs_[j].generic) release_packed_originals(j);
  mark_folded();
  mark_fixed_needed();
  plan_arena();
  return plan.output(ws.values);
}

namespace {

// True when a value holds a tensor anywhere (a fixed result must not: it would be shared).
bool holds_tensor(const Value& v) {
  if (v.is_tensor()) return true;
  if (v.kind() == Value::Kind::List || v.kind() == Value::Kind::Tuple)
    return std::any_of(v.items().begin(), v.items().end(), holds_tensor);
  return v.kind() == Value::Kind::Dict;  // not looked into: never fixed
}

// Whether calls of an op with the same operands give the same result and effect: pure ops,
// views, and assertions (whose one effect, raising, their operands decide). The op table says.
bool replayable(const OpInfo& info) {
  return info.purity == Purity::Pure || info.purity == Purity::View || info.assertion;
}

}  // namespace

// After step j's first run. A kernel step is fixed when its result holds no tensor and is
// either a metadata query of one tensor (an op the table flags `metadata`: x.shape; replay
// checks the tensor's dtype and shape are the recorded ones, else the call takes the plain
// plan) or a replayable op (pure, a view or an assertion) of fixed results and constants
// alone (getitem, ==, //, torch._assert of them). ViT's checks of its input's size are such
// steps: run again, each would allocate (a tuple, a message string) on every call.
void Executable::note_fixed(std::size_t j, const Workspace& ws) {
  const Step& st = steps_[j];
  if (st.instrs.size() != 1 || !execs_[j].launches.empty() || st.reads.empty()) return;
  if (holds_tensor(ws.values[st.out])) return;
  const auto& in = prog_.plan().instr(st.instrs[0]);
  // The op it runs, or every overload it may choose from: each must have the property.
  const std::span<const OpDef* const> ops = prog_.plan().candidates(in);
  const auto all = [&](bool (*has)(const OpInfo&)) {
    return !ops.empty() && std::all_of(ops.begin(), ops.end(), [&](const OpDef* op) { return op->info && has(*op->info); });
  };
  const auto decided = [&](const Plan::Operand& o) { return decided_by_signature(o); };
  if (all([](const OpInfo& i) { return i.metadata; }) && st.reads.size() == 1) {
    const Tensor* t = ws.values[st.reads[0]].if_tensor();
    if (!t || !t->defined()) return;
    queried_[j] = {t->dtype(), t->shape()};
    fixed_step_[j] = Fixed::Query;
  } else if (const auto operands = prog_.plan().operands(st.instrs[0]);
             all(replayable) && std::all_of(operands.begin(), operands.end(), decided)) {
    fixed_step_[j] = Fixed::Derived;
  } else {
    return;
  }
  fixed_slot_[st.out] = true;
  fixed_[st.out] = ws.values[st.out];
}

// Fixed results are put in their slots only for the steps that still run, and the output.
void Executable::mark_fixed_needed() {
  for (std::size_t j = 0; j < steps_.size(); ++j)
    if (fixed_step_[j] == Fixed::No)
      for (std::uint32_t r : steps_[j].reads) fixed_needed_[r] = fixed_slot_[r];
  for (std::uint32_t s : prog_.output_slots()) fixed_needed_[s] = fixed_slot_[s];
}

void Executable::mark_folded() {
  std::vector<std::uint32_t> readers(prog_.num_slots(), 0);
  for (const Step& st : steps_)
    for (std::uint32_t r : st.reads) ++readers[r];
  for (std::size_t k = 0; k < steps_.size(); ++k) {
    const std::uint32_t s = steps_[k].out;
    if (fixed_step_[k] == Fixed::No && folded_reads_[s] > 0 && folded_reads_[s] == readers[s] && !is_output_[s])
      fixed_step_[k] = Fixed::Folded;
  }
}

void Executable::replay_fixed(std::size_t j, Workspace& ws) const {
  const Step& st = steps_[j];
  // A plan buffer's shape is the executable's own; another tensor's is checked.
  if (fixed_step_[j] == Fixed::Query && slots_[st.reads[0]].buffer < 0) {
    const Tensor* t = ws.values[st.reads[0]].if_tensor();
    const auto& [dtype, shape] = queried_[j];
    if (!t || !t->defined() || t->dtype() != dtype || !(t->shape() == shape)) throw SignatureMismatch{};
  }
  if (fixed_needed_[st.out]) ws.values[st.out] = fixed_[st.out];
}

std::unordered_set<const Storage*> Executable::constants_read_when_run() const {
  std::vector<bool> read(prog_.num_slots(), false);
  for (const Step& st : steps_)
    for (std::uint32_t r : st.reads) read[r] = true;
  std::unordered_set<const Storage*> out;
  for (const Step& st : steps_) {
    if (st.kind != StepKind::Constant || !read[st.out]) continue;
    const Value& v = prog_.plan().constant_of(st.out);
    if (const Tensor* t = v.if_tensor(); t && t->defined()) out.insert(t->storage().get());
  }
  return out;
}

void Executable::release_packed_originals(std::size_t j) const {
  // A weight shared with a module a kernel step calls is not in read_when_run_: that step's
  // first run faults its pages back in, once.
  const auto release = [&](const Tensor& t) {
    if (t.defined() && read_when_run_.count(t.storage().get()) == 0) t.storage()->release_pages();
  };
  const Step& st = steps_[j];
  const std::optional<DepthwiseSpec>& dw = st.dw;
  for (const Pattern* p : {&st.op, st.bn ? &*st.bn : nullptr, dw ? &dw->op : nullptr, dw && dw->bn ? &*dw->bn : nullptr}) {
    if (p == nullptr) continue;
    for (const Tensor* t : {&p->weight, &p->bias, &p->mean, &p->var}) release(*t);
  }
  if (const std::optional<AttentionPattern>& a = st.attention) {
    for (const Tensor* t : {&a->in_weight, &a->in_bias, &a->out_weight, &a->out_bias}) release(*t);
  }
}

void Executable::release_dead_buffers(std::size_t j, std::size_t made_from, Workspace& ws) const {
  const auto step = static_cast<std::int64_t>(j);
  const auto release = [&](std::int32_t b) {
    std::shared_ptr<Storage>& own = ws.own[static_cast<std::size_t>(b)];
    // Tensors made from it (values, views) keep their own reference.
    if (own && !buffer_live_after(b, step)) own.reset();
  };
  for (std::size_t b = made_from; b < ws.own.size(); ++b) release(static_cast<std::int32_t>(b));
  if (j >= read_last_.size()) return;
  for (std::uint32_t s : read_last_[j])
    for (std::int32_t b : {slots_[s].buffer, slots_[s].dense})
      if (b >= 0) release(b);
}

void Executable::plan_arena() {
  // Lifetimes: a buffer lives from the step that makes it to the last step reading a slot
  // held in it (outputs: to the end).
  const auto end = static_cast<std::int64_t>(execs_.size());
  for (std::size_t s = 0; s < slots_.size(); ++s) {
    const SlotLoc& loc = slots_[s];
    std::int64_t last = slot_last_[s];
    if (is_output_[s]) last = end;
    for (std::int32_t b : {loc.buffer, loc.dense}) {
      if (b < 0) continue;
      BufferInfo& info = buffers_[static_cast<std::size_t>(b)];
      info.last = std::max(info.last, last);
    }
  }
  // First fit, largest first.
  std::vector<std::size_t> order(buffers_.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return buffers_[a].bytes > buffers_[b].bytes; });
  std::vector<std::size_t> placed;
  arena_bytes_ = 0;
  for (std::size_t i : order) {
    BufferInfo& b = buffers_[i];
    std::vector<std::pair<std::size_t, std::size_t>> taken;
    for (std::size_t k : placed) {
      const BufferInfo& o = buffers_[k];
      if (o.last < b.first || b.last < o.first) continue;
      taken.emplace_back(o.offset, o.offset + o.bytes);
    }
    std::sort(taken.begin(), taken.end());
    std::size_t off = 0;
    for (const auto& [lo, hi] : taken) {
      if (off + b.bytes <= lo) break;
      off = std::max(off, hi);
    }
    b.offset = off;
    arena_bytes_ = std::max(arena_bytes_, off + b.bytes);
    placed.push_back(i);
  }
}

std::unique_ptr<Workspace> Executable::new_workspace() {
  auto ws = std::make_unique<Workspace>();
  ws->values.resize(prog_.num_slots());
  ws->args.reserve(16);
  ws->arena = Storage::allocate_uninitialized(std::max<std::size_t>(arena_bytes_, 1));
  ws->scratch = Storage::allocate_uninitialized(std::max<std::size_t>(scratch_bytes_, 1));
  ws->mems.resize(execs_.size());
  ws->exec_args.resize(execs_.size());
  for (std::size_t j = 0; j < execs_.size(); ++j) bind(j, *ws);
  return ws;
}

Value Executable::replay(std::span<const Value> inputs) {
  std::unique_ptr<Workspace> ws;
  {
    std::lock_guard lock(pool_mu_);
    if (!pool_.empty()) {
      ws = std::move(pool_.back());
      pool_.pop_back();
    }
  }
  if (!ws) ws = new_workspace();
  struct Release {
    Executable& self;
    std::unique_ptr<Workspace>& ws;
    ~Release() {
      for (Value& v : ws->values) v = Value();
      std::lock_guard lock(self.pool_mu_);
      self.pool_.push_back(std::move(ws));
    }
  } release{*this, ws};
  const Plan& plan = prog_.plan();
  std::size_t next_input = 0;
  for (std::size_t j = 0; j < steps_.size(); ++j) {
    const Step& st = steps_[j];
    if (st.kind == StepKind::Input) {
      ws->values[st.out] = inputs[next_input++];
    } else if (st.kind == StepKind::Constant) {
      ws->values[st.out] = plan.constant_of(st.out);
    } else if (fixed_step_[j] != Fixed::No) {
      replay_fixed(j, *ws);
    } else {
      run_step(j, *ws);
    }
    for (std::uint32_t s : st.frees) ws->values[s] = Value();
  }
  for (std::size_t j = steps_.size(); j < execs_.size(); ++j) run_step(j, *ws);
  for (std::uint32_t s : prog_.output_slots()) {
    const SlotLoc& loc = slots_[s];
    if (loc.buffer >= 0)
      ws->values[s] = Value(Tensor(ws->arena, buffers_[static_cast<std::size_t>(loc.dense)].offset, DType::Float32, loc.shape));
  }
  Value out = plan.output(ws->values);
  // The result must not alias the workspace, which the next call reuses.
  const auto detach = [&](auto& self, Value& v) -> void {
    if (Tensor* t = v.if_tensor()) {
      if (t->defined() && t->storage() == ws->arena) *t = results_.lend(*t);
      return;
    }
    if (auto* l = v.if_list()) for (Value& x : l->items) self(self, x);
    if (auto* tu = v.if_tuple()) for (Value& x : tu->items) self(self, x);
    if (auto* d = v.if_dict()) for (auto& kv : d->items) self(self, kv.second);
  };
  detach(detach, out);
  return out;
}

void Executable::add_stats(Plan::InferenceStats& s) const {
  s.primitives = 0;
  s.calling_thread_primitives = 0;
  s.fused_depthwise = 0;
  s.kernel_steps = 0;
  for (std::size_t j = 0; j < steps_.size(); ++j) {
    const StepKind kind = steps_[j].kind;
    if (kind != StepKind::Input && kind != StepKind::Constant && execs_[j].generic && fixed_step_[j] == Fixed::No)
      ++s.kernel_steps;
  }
  for (const Exec& e : execs_) {
    // fxpack's own activation launches are not oneDNN primitives.
    const auto n = static_cast<std::size_t>(
        std::count_if(e.launches.begin(), e.launches.end(), [](const Launch& l) { return !l.activation; }));
    s.primitives += n;
    if (e.one_thread) s.calling_thread_primitives += n;
    if (e.fused_depthwise) ++s.fused_depthwise;
  }
  s.arena_bytes = arena_bytes_;
  s.scratchpad_bytes = scratch_bytes_;
  for (const auto& st : const_storage_) s.packed_weight_bytes += st->nbytes();
}

Plan::InferenceStats Program::stats() const {
  Plan::InferenceStats s;
  std::lock_guard lock(mu_);
  s.signatures = executables_.size();
  for (const auto& e : executables_) e->add_stats(s);
  return s;
}

// ---- running --------------------------------------------------------------------------

namespace {
// Signatures an inference plan specialises for; calls with further ones run the plain plan.
constexpr std::size_t kMaxSignatures = 8;
}  // namespace

Value Program::run(std::span<const Value> inputs) const {
  if (inputs.size() != plan_.num_inputs()) return plan_.run_plain(inputs);  // its message
  for (const Value& v : inputs) {
    const Tensor* t = v.if_tensor();
    if (!t || !t->defined()) return plan_.run_plain(inputs);
  }
  const int threads = dnb::use_threads();
  const Winograd wino = winograd();
  std::shared_ptr<Executable> ex;
  {
    std::lock_guard lock(mu_);
    for (const auto& e : executables_) {
      if (e->matches(inputs, threads, wino)) {
        ex = e;
        break;
      }
    }
    if (!ex) {
      if (executables_.size() >= kMaxSignatures) return plan_.run_plain(inputs);
      // The first call with this signature specialises the program while it runs (under
      // the lock: concurrent first calls wait rather than specialise twice).
      auto fresh = std::make_shared<Executable>(*this, inputs, threads, wino);
      Value out;
      try {
        out = fresh->record(inputs);
      } catch (const SignatureMismatch&) {
        return plan_.run_plain(inputs);
      }
      // The heap the first call freed (its own buffers, among the packed weights) goes back.
      detail::release_kept_memory();
      executables_.push_back(std::move(fresh));
      return out;
    }
  }
  try {
    return ex->replay(inputs);
  } catch (const SignatureMismatch&) {
    // A kernel between two oneDNN steps gave another shape than when specialised.
    return plan_.run_plain(inputs);
  }
}

}  // namespace fxpack::inference

namespace fxpack {

namespace {
// -1: not yet resolved from the environment.
std::atomic<int> g_winograd{-1};

Winograd winograd_from_environment() {
  const char* env = std::getenv("FXPACK_WINOGRAD");
  if (!env || !*env) return Winograd::Auto;
  const std::string_view v(env);
  if (v == "auto") return Winograd::Auto;
  if (v == "always") return Winograd::Always;
  if (v == "off") return Winograd::Off;
  throw ValueError("FXPACK_WINOGRAD='" + std::string(v.substr(0, 64)) + "' is not auto, always or off");
}
}  // namespace

void set_winograd(Winograd w) { g_winograd.store(static_cast<int>(w), std::memory_order_relaxed); }

Winograd winograd() {
  int v = g_winograd.load(std::memory_order_relaxed);
  if (v >= 0) return static_cast<Winograd>(v);
  v = static_cast<int>(winograd_from_environment());
  int expected = -1;
  // A concurrent set_winograd wins over the environment.
  if (!g_winograd.compare_exchange_strong(expected, v, std::memory_order_relaxed)) return static_cast<Winograd>(expected);
  return static_cast<Winograd>(v);
}

}  // namespace fxpack
