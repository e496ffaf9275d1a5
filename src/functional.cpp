#include "fxpack/functional.hpp"

#include "fxpack/ops.hpp"

namespace fxpack::torch {

Value sin(const Value& x) { return call_function("torch.sin", {x}); }
Value cos(const Value& x) { return call_function("torch.cos", {x}); }
Value exp(const Value& x) { return call_function("torch.exp", {x}); }
Value tanh(const Value& x) { return call_function("torch.tanh", {x}); }
Value sigmoid(const Value& x) { return call_function("torch.sigmoid", {x}); }
Value relu(const Value& x) { return call_function("torch.relu", {x}); }
Value neg(const Value& x) { return call_function("torch.neg", {x}); }
Value abs(const Value& x) { return call_function("torch.abs", {x}); }
Value clamp(const Value& x, Value min, Value max) {
  if (max.is_none()) return call_function("torch.clamp", {x, std::move(min)});
  return call_function("torch.clamp", {x, std::move(min), std::move(max)});
}
Value flatten(const Value& x, std::int64_t start_dim, std::int64_t end_dim) {
  if (end_dim == -1) {
    if (start_dim == 0) return call_function("torch.flatten", {x});
    return call_function("torch.flatten", {x, start_dim});
  }
  return call_function("torch.flatten", {x, start_dim, end_dim});
}
Value matmul(const Value& a, const Value& b) { return call_function("torch.matmul", {a, b}); }
Value sum(const Value& x, Value dim, bool keepdim) {
  if (!keepdim) return call_function("torch.sum", {x, std::move(dim)});
  return call_function("torch.sum", {x, std::move(dim)}, Dict{{{"keepdim", true}}});
}
Value mean(const Value& x, Value dim, bool keepdim) {
  if (!keepdim) return call_function("torch.mean", {x, std::move(dim)});
  return call_function("torch.mean", {x, std::move(dim)}, Dict{{{"keepdim", true}}});
}
Value reshape(const Value& x, Value shape) {
  return call_function("torch.reshape", {x, std::move(shape)});
}
Value permute(const Value& x, Value dims) {
  return call_function("torch.permute", {x, std::move(dims)});
}
Value transpose(const Value& x, std::int64_t dim0, std::int64_t dim1) {
  return call_function("torch.transpose", {x, dim0, dim1});
}

}  // namespace fxpack::torch
