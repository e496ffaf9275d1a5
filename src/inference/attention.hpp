// What the inference optimiser runs of an nn.MultiheadAttention call as one plan step:
// float32 self-attention (query, key and value one node) through the packed [3E, E] input
// projection, without masks and without returned weights, whose result the graph reads only
// as item 0 (the output) and item 1 (None when need_weights is False) by operator.getitem.
// That is how torchvision's ViT calls it: `x, _ = self.self_attention(x, x, x,
// need_weights=False)`. Anything else (masks, need_weights, cross attention, separate q/k/v
// weights, float64) stays the module's kernel. Internal to src/inference.
#pragma once

#include <optional>
#include <vector>

#include "fxpack/graph.hpp"
#include "fxpack/module.hpp"

namespace fxpack::inference {

struct Captured;  // patterns.hpp

struct AttentionPattern {
  const Node* call = nullptr;    // the call_module node
  const Node* input = nullptr;   // query = key = value
  const Node* output = nullptr;  // the getitem of item 0: the step's result
  std::vector<const Node*> unread;  // getitems of item 1 nothing reads (the weights, None)
  Tensor in_weight, in_bias;     // [3E, E], [3E]
  Tensor out_weight, out_bias;   // [E, E], [E]
  std::int64_t embed_dim = 0, heads = 0;
  bool batch_first = false;
};

// Never throws: a call that does not fit is left to the module's kernel. The module is the
// one the plan captured for the node (Captured).
std::optional<AttentionPattern> recognize_attention(const Node& node, const Captured& captured);

}  // namespace fxpack::inference
