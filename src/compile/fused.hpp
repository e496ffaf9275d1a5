// fxpack.fused_elementwise: a chain of elementwise ops run in one pass over the data.
//
// The node `fused = fxpack.fused_elementwise(x, ['sin', 'cos', ('add', 1.0), ('mul', 2.0)])`
// computes mul(add(cos(sin(x)), 1.0), 2.0). The op list holds names of unary ops and
// (name, number) tuples for a binary op with a Python-number right operand (so nothing
// broadcasts). For float32/float64 inputs the data is processed in cache-sized blocks: each
// block is read once, every op of the chain runs on it while it sits in L1, and it is
// written once; the result has the input's shape and dtype. Other dtypes fall back to the
// ordinary kernels op by op, which keeps PyTorch's type promotion exact.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "fxpack/value.hpp"

namespace fxpack::compile_detail {

inline constexpr const char* kFusedTarget = "fxpack.fused_elementwise";

enum class FusedOp : std::uint8_t { Sin, Cos, Exp, Tanh, Sigmoid, Relu, Neg, Abs, Add, Sub, Mul, Div };

struct FusedStep {
  FusedOp op;
  Value operand{};  // right operand of Add/Sub/Mul/Div: a Python number (int, float, bool)
};

// Parses the op list of a fused node; throws OpError naming the bad entry.
std::vector<FusedStep> parse_fused_ops(const Value& ops);
// The op list Value for a chain (the inverse of parse_fused_ops).
Value fused_ops_value(const std::vector<FusedStep>& steps);
// The name used in op lists ("sin", "add", ...).
const char* fused_op_name(FusedOp op);
// Runs the chain on x: one blocked pass for float32/float64, op by op with the ordinary
// kernels (exact dtype promotion) for other dtypes.
Tensor run_fused(const Tensor& x, const std::vector<FusedStep>& steps);

// The registered kernel: (input, ops).
Value fused_elementwise_kernel(std::span<const Value> args);

}  // namespace fxpack::compile_detail
