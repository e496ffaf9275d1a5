// Value's Tensor methods and Python operators: each is a call of the op of that name through
// dispatch (ops.hpp), which runs it eagerly or records it while tracing. They live with the
// ops rather than in value.cpp so that the value layer does not depend on the ops above it;
// so does detail::node_name, what the value layer asks of a Node (node.hpp, the IR).
#include "fxpack/node.hpp"
#include "fxpack/ops.hpp"
#include "fxpack/value.hpp"

namespace fxpack {

const std::string& detail::node_name(const Node& n) { return n.name(); }

Value Value::call_method(const std::string& name, std::vector<Value> args, Dict kwargs) const {
  args.insert(args.begin(), *this);
  return fxpack::call_method(name, std::move(args), std::move(kwargs));
}
Value Value::sin() const { return call_method("sin"); }
Value Value::cos() const { return call_method("cos"); }
Value Value::exp() const { return call_method("exp"); }
Value Value::tanh() const { return call_method("tanh"); }
Value Value::sigmoid() const { return call_method("sigmoid"); }
Value Value::relu() const { return call_method("relu"); }
Value Value::neg() const { return call_method("neg"); }
Value Value::abs() const { return call_method("abs"); }
Value Value::clamp(Value min, Value max) const {
  if (max.is_none()) return call_method("clamp", {std::move(min)});
  return call_method("clamp", {std::move(min), std::move(max)});
}
Value Value::sum(Value dim, bool keepdim) const {
  if (dim.is_none() && !keepdim) return call_method("sum");
  if (!keepdim) return call_method("sum", {std::move(dim)});
  return call_method("sum", {std::move(dim)}, Dict{{{"keepdim", true}}});
}
Value Value::mean(Value dim, bool keepdim) const {
  if (dim.is_none() && !keepdim) return call_method("mean");
  if (!keepdim) return call_method("mean", {std::move(dim)});
  return call_method("mean", {std::move(dim)}, Dict{{{"keepdim", true}}});
}
Value Value::reshape(Value shape) const { return call_method("reshape", {std::move(shape)}); }
Value Value::view(Value shape) const { return call_method("view", {std::move(shape)}); }
Value Value::permute(Value dims) const { return call_method("permute", {std::move(dims)}); }
Value Value::transpose(std::int64_t d0, std::int64_t d1) const {
  return call_method("transpose", {d0, d1});
}
Value Value::flatten(std::int64_t start_dim, std::int64_t end_dim) const {
  if (end_dim == -1) {
    if (start_dim == 0) return call_method("flatten");
    return call_method("flatten", {start_dim});
  }
  return call_method("flatten", {start_dim, end_dim});
}
Value Value::matmul(const Value& other) const { return call_method("matmul", {other}); }
Value Value::operator[](const Value& index) const {
  return fxpack::call_function("operator.getitem", {*this, index});
}

Value operator+(const Value& a, const Value& b) { return call_function("operator.add", {a, b}); }
Value operator-(const Value& a, const Value& b) { return call_function("operator.sub", {a, b}); }
Value operator*(const Value& a, const Value& b) { return call_function("operator.mul", {a, b}); }
Value operator/(const Value& a, const Value& b) {
  return call_function("operator.truediv", {a, b});
}
Value operator-(const Value& a) { return call_function("operator.neg", {a}); }

}  // namespace fxpack
