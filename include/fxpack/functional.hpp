// torch.* functions for forward bodies: each runs eagerly on Tensors or records a
// call_function node with the PyTorch target name under symbolic_trace.
#pragma once

#include "fxpack/value.hpp"

namespace fxpack::torch {

Value sin(const Value& x);
Value cos(const Value& x);
Value exp(const Value& x);
Value tanh(const Value& x);
Value sigmoid(const Value& x);
Value relu(const Value& x);
Value neg(const Value& x);
Value abs(const Value& x);
Value clamp(const Value& x, Value min, Value max = None{});
Value flatten(const Value& x, std::int64_t start_dim = 0, std::int64_t end_dim = -1);
Value matmul(const Value& a, const Value& b);
Value sum(const Value& x, Value dim, bool keepdim = false);
Value mean(const Value& x, Value dim, bool keepdim = false);
Value reshape(const Value& x, Value shape);
Value permute(const Value& x, Value dims);
Value transpose(const Value& x, std::int64_t dim0, std::int64_t dim1);

}  // namespace fxpack::torch
