#include "attention.hpp"

#include "fxpack/errors.hpp"
#include "fxpack/ops.hpp"
#include "patterns.hpp"

namespace fxpack::inference {

namespace {

// A float32 parameter of the given shape, or undefined when absent and `optional`; nullopt
// when it does not fit.
std::optional<Tensor> float_parameter(const Module& m, const char* name, const Shape& shape, bool optional) {
  const Tensor* t = m.find_parameter(name);
  if (!t || !t->defined()) return optional ? std::optional<Tensor>(Tensor()) : std::nullopt;
  if (t->dtype() != DType::Float32 || !(t->shape() == shape)) return std::nullopt;
  return *t;
}

// forward's inputs bound by name (keywords and defaults filled in): self-attention without
// masks, causal hint or returned weights.
std::optional<const Node*> self_attention_input(const Node& node, const ModuleKind& kind) {
  const std::vector<Value> in = kind.bind_inputs({node.args().begin(), node.args().end()}, node.kwargs());
  if (in.size() != 8 || !in[0].is_node()) return std::nullopt;
  const Node* x = in[0].node();
  if (!in[1].is_node() || in[1].node() != x || !in[2].is_node() || in[2].node() != x) return std::nullopt;
  const auto is_false = [](const Value& v) { return v.kind() == Value::Kind::Bool && !v.to_bool(); };
  if (!in[3].is_none() || !is_false(in[4]) || !in[5].is_none() || !is_false(in[7])) return std::nullopt;
  return x;
}

// The getitem users of the call: one of item 0, any of item 1 that nothing reads.
bool read_as_items(const Node& node, AttentionPattern& p) {
  for (const Node* u : node.users()) {
    if (u->op() != Op::CallFunction || u->target() != "operator.getitem" || u->args().size() != 2 ||
        !u->kwargs().items.empty() || !u->args()[1].is_int())
      return false;
    const std::int64_t item = u->args()[1].to_int();
    if (item == 0 && !p.output) {
      p.output = u;
    } else if (item == 1 && u->users().empty()) {
      p.unread.push_back(u);
    } else {
      return false;
    }
  }
  return p.output != nullptr;
}

}  // namespace

std::optional<AttentionPattern> recognize_attention(const Node& node, const Captured& captured) {
  if (node.op() != Op::CallModule) return std::nullopt;
  try {
    const Module* m = captured.module(node);
    // Only the registered kind runs the semantics assumed here.
    const ModuleKind* kind = m ? m->leaf_kind() : nullptr;
    if (!kind || kind->name != "MultiheadAttention") return std::nullopt;
    AttentionPattern p;
    p.call = &node;
    const auto input = self_attention_input(node, *kind);
    if (!input || !read_as_items(node, p)) return std::nullopt;
    p.input = *input;
    p.embed_dim = m->attr("embed_dim").to_int();
    p.heads = m->attr("num_heads").to_int();
    p.batch_first = m->attr("batch_first").to_bool();
    const std::int64_t E = p.embed_dim;
    if (E <= 0 || p.heads <= 0 || E % p.heads) return std::nullopt;
    const std::shared_ptr<Module> out = m->find_child("out_proj");
    if (!out) return std::nullopt;
    auto in_w = float_parameter(*m, "in_proj_weight", Shape{3 * E, E}, false);
    auto in_b = float_parameter(*m, "in_proj_bias", Shape{3 * E}, true);
    auto out_w = float_parameter(*out, "weight", Shape{E, E}, false);
    auto out_b = float_parameter(*out, "bias", Shape{E}, true);
    if (!in_w || !in_b || !out_w || !out_b) return std::nullopt;
    p.in_weight = *in_w;
    p.in_bias = *in_b;
    p.out_weight = *out_w;
    p.out_bias = *out_b;
    return p;
  } catch (const Error&) {
    return std::nullopt;  // the kernel reports it when it runs
  }
}

}  // namespace fxpack::inference
