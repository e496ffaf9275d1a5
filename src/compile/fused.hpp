// fxpack.fused_elementwise: a chain of elementwise ops run in one pass over the data.
//
// The node `fused = fxpack.fused_elementwise(x, ['sin', 'cos', ('add', 1.0), ('mul', 2.0)])`
// computes mul(add(cos(sin(x)), 1.0), 2.0). The op list holds the fused names of the op
// table's fusable entries (`fusion: unary` — a name; `fusion: binary` — a (name, number)
// tuple, the number being the right operand, so nothing broadcasts). Each step runs the
// entry's functor, the same scalar function its unfused kernel runs. For float32/float64
// inputs the data is processed in blocks of ops::kElementwiseBlock: each block is read once,
// every op of the chain runs on it while it sits in L1, and it is written once; the result
// has the input's shape and dtype. Other dtypes run the ops' generic driver op by op, which
// keeps PyTorch's type promotion exact. The op itself is declared in fused.yaml.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "fxpack/ops.hpp"
#include "fxpack/value.hpp"

namespace fxpack::detail {

inline constexpr const char* kFusedTarget = "fxpack.fused_elementwise";

struct FusedStep {
  const ElementwiseFunctor* functor = nullptr;
  Value operand{};  // the right operand of a binary step: a Python number (int, float, bool)
};

// Parses the op list of a fused node; throws OpError naming the bad entry.
std::vector<FusedStep> parse_fused_ops(const Value& ops);
// The op list Value for a chain (the inverse of parse_fused_ops).
Value fused_ops_value(const std::vector<FusedStep>& steps);
// Runs the chain on x: one blocked pass for float32/float64, op by op with the generic
// driver (exact dtype promotion) for other dtypes.
Tensor run_fused(const Tensor& x, const std::vector<FusedStep>& steps);

}  // namespace fxpack::detail
