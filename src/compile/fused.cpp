#include "fused.hpp"

#include <algorithm>
#include <cstring>

#include "fxpack/errors.hpp"
#include "ops/elementwise.hpp"
#include "ops/op_table.hpp"

namespace fxpack::detail {

namespace {

[[noreturn]] void bad(const std::string& what) { throw OpError("fused_elementwise: " + what); }

constexpr std::int64_t kBlock = ops::kElementwiseBlock;

template <class T>
void run_blocks(const T* x, T* y, std::int64_t n, const std::vector<FusedStep>& steps) {
  // The chain as block functions and operands, resolved once.
  using BlockFn = void (*)(T*, std::int64_t, double);
  std::vector<std::pair<BlockFn, double>> chain;
  chain.reserve(steps.size());
  for (const FusedStep& s : steps) {
    BlockFn fn;
    if constexpr (std::is_same_v<T, float>) fn = s.functor->f32;
    else fn = s.functor->f64;
    chain.emplace_back(fn, s.functor->binary ? s.operand.to_double() : 0.0);
  }
  alignas(64) T buf[kBlock];
  for (std::int64_t i = 0; i < n; i += kBlock) {
    const std::int64_t m = std::min(kBlock, n - i);
    const auto bytes = static_cast<std::size_t>(m) * sizeof(T);
    std::memcpy(buf, x + i, bytes);
    if (m < kBlock) std::fill(buf + m, buf + kBlock, T(0));  // padding, computed and dropped
    for (const auto& [fn, operand] : chain) fn(buf, kBlock, operand);
    std::memcpy(y + i, buf, bytes);
  }
}

}  // namespace

std::vector<FusedStep> parse_fused_ops(const Value& ops) {
  if (ops.kind() != Value::Kind::List && ops.kind() != Value::Kind::Tuple)
    bad("argument 'ops' must be a list, got " + python_repr(ops));
  const OpRegistry& registry = OpRegistry::global();
  std::vector<FusedStep> out;
  for (const Value& item : ops.items()) {
    const Value* name = &item;
    const Value* operand = nullptr;
    if (item.kind() == Value::Kind::Tuple || item.kind() == Value::Kind::List) {
      if (item.items().size() != 2) bad("entry " + python_repr(item) + " must be (name, number)");
      name = &item.items()[0];
      operand = &item.items()[1];
    }
    const auto* s = name->if_string();
    if (!s) bad("entry " + python_repr(item) + " does not start with an op name");
    const ElementwiseFunctor* f = registry.elementwise(*s);
    if (!f) bad("unknown op '" + *s + "'");
    if (f->binary != (operand != nullptr))
      bad("entry " + python_repr(item) + (f->binary ? " needs a number operand" : " takes no operand"));
    FusedStep step{f, Value()};
    if (operand) {
      if (operand->kind() != Value::Kind::Bool && !operand->is_number())
        bad("entry " + python_repr(item) + ": operand must be a number");
      step.operand = *operand;
    }
    out.push_back(step);
  }
  return out;
}

Value fused_ops_value(const std::vector<FusedStep>& steps) {
  List l;
  for (const FusedStep& s : steps) {
    if (s.functor->binary) l.items.emplace_back(Tuple{{Value(s.functor->name), s.operand}});
    else l.items.emplace_back(s.functor->name);
  }
  return Value(std::move(l));
}

Tensor run_fused(const Tensor& x, const std::vector<FusedStep>& steps) {
  if (!x.defined()) bad("undefined input");
  if (x.dtype() == DType::Float32 || x.dtype() == DType::Float64) {
    Tensor y = Tensor::empty(x.shape(), x.dtype());
    if (x.dtype() == DType::Float32) run_blocks(x.data<float>(), y.data<float>(), x.numel(), steps);
    else run_blocks(x.data<double>(), y.data<double>(), x.numel(), steps);
    return y;
  }
  // Integer and bool inputs: the generic driver, one op at a time (their promotions).
  Value cur{x};
  for (const FusedStep& s : steps) {
    if (s.functor->binary) cur = s.functor->apply(std::vector<Value>{cur, s.operand});
    else cur = s.functor->apply(std::vector<Value>{cur});
  }
  return cur.tensor();
}

namespace {

// fxpack.fused_elementwise(input, ops)
Value fused_elementwise_kernel(std::span<const Value> args) {
  return Value(run_fused(args[0].tensor(), parse_fused_ops(args[1])));
}

}  // namespace

#include "fused_table.inc"

}  // namespace fxpack::detail
