#include "fused.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "fxpack/errors.hpp"
#include "ops/kernels.hpp"

namespace fxpack::compile_detail {

namespace {

struct NameOp {
  const char* name;
  FusedOp op;
  bool binary;
};
constexpr NameOp kOps[] = {
    {"sin", FusedOp::Sin, false},   {"cos", FusedOp::Cos, false},         {"exp", FusedOp::Exp, false},
    {"tanh", FusedOp::Tanh, false}, {"sigmoid", FusedOp::Sigmoid, false}, {"relu", FusedOp::Relu, false},
    {"neg", FusedOp::Neg, false},   {"abs", FusedOp::Abs, false},         {"add", FusedOp::Add, true},
    {"sub", FusedOp::Sub, true},    {"mul", FusedOp::Mul, true},          {"div", FusedOp::Div, true},
};

[[noreturn]] void bad(const std::string& what) { throw OpError("fused_elementwise: " + what); }

// Elements per block: 4 KiB of float32 stays in L1 while the whole chain runs on it.
constexpr std::int64_t kBlock = 1024;

template <class T>
T scalar_of(const Value& v) {
  if (v.kind() == Value::Kind::Bool) return v.to_bool() ? T(1) : T(0);
  if (v.is_int()) return static_cast<T>(v.to_int());
  return static_cast<T>(v.to_double());
}

template <class T>
void run_block(T* y, std::int64_t n, const std::vector<FusedStep>& steps) {
  using A = Eigen::Array<T, Eigen::Dynamic, 1>;
  Eigen::Map<A> o(y, n);
  for (const FusedStep& s : steps) {
    const T c = s.op >= FusedOp::Add ? scalar_of<T>(s.operand) : T(0);
    switch (s.op) {
      case FusedOp::Sin: o = o.sin(); break;
      case FusedOp::Cos: o = o.cos(); break;
      case FusedOp::Exp: o = o.exp(); break;
      case FusedOp::Tanh: o = o.tanh(); break;
      case FusedOp::Sigmoid:  // the unfused kernel's scalar formula, for identical results
        for (std::int64_t i = 0; i < n; ++i) y[i] = T(1) / (T(1) + std::exp(-y[i]));
        break;
      case FusedOp::Relu: o = (o < T(0)).select(T(0), o); break;  // NaN stays NaN
      case FusedOp::Neg: o = -o; break;
      case FusedOp::Abs: o = o.abs(); break;
      case FusedOp::Add: o += c; break;
      case FusedOp::Sub: o -= c; break;
      case FusedOp::Mul: o *= c; break;
      case FusedOp::Div: o /= c; break;
    }
  }
}

// ---- float32: fixed-size blocks with loops the compiler vectorizes -----------------------
//
// Every loop below runs exactly kBlock times over a local buffer, so g++ -O2 (whose
// "very cheap" vectorizer needs a known trip count) turns each into SIMD code. sin and cos
// use a Cody-Waite range reduction and the Cephes minimax polynomials (error <= 2 ulp,
// checked against std::sin/std::cos in the tests); a block holding an |x| beyond
// kSinCosRange (where the float reduction loses accuracy) uses std::sin/std::cos instead.

constexpr float kSinCosRange = 8192.0f;

// With g++ on x86-64 the block kernel is also built for AVX-512 (x86-64-v4) and AVX2
// (x86-64-v3) and picked at run time (function multiversioning); per element the two versions compute the same IEEE
// operations, so results do not depend on the machine. Other compilers build one version.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__gnu_linux__)
#define FXPACK_BLOCK_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FXPACK_BLOCK_CLONES
#endif

[[gnu::always_inline]] inline float sincos_poly(float x, int shift) {
  const float fq = (x * 0.636619772367581343f + 12582912.0f) - 12582912.0f;  // round(x * 2/pi)
  const int k = static_cast<int>(fq) + shift;
  float r = x - fq * 1.5703125f;
  r = r - fq * 4.837512969970703125e-4f;
  r = r - fq * 7.54978995489188216e-8f;
  const float r2 = r * r;
  const float s = r + r * r2 * (-1.6666654611e-1f + r2 * (8.3321608736e-3f + r2 * -1.9515295891e-4f));
  const float c = 1.0f - 0.5f * r2 +
                  r2 * r2 * (4.166664568298827e-2f + r2 * (-1.388731625493765e-3f + r2 * 2.443315711809948e-5f));
  // Quadrant select without branches (keeps the loop vectorizable): odd k takes the cosine
  // polynomial, k & 2 flips the sign.
  const auto ku = static_cast<std::uint32_t>(k);
  const std::uint32_t pick = 0u - (ku & 1u);
  const std::uint32_t bits = (std::bit_cast<std::uint32_t>(c) & pick) | (std::bit_cast<std::uint32_t>(s) & ~pick);
  return std::bit_cast<float>(bits ^ ((ku & 2u) << 30));
}

[[gnu::always_inline]] inline void sincos_block(float* y, int shift) {
  int out_of_range = 0;
  for (std::int64_t i = 0; i < kBlock; ++i) out_of_range |= std::fabs(y[i]) > kSinCosRange;
  if (out_of_range) {
    if (shift) {
      for (std::int64_t i = 0; i < kBlock; ++i) y[i] = std::cos(y[i]);
    } else {
      for (std::int64_t i = 0; i < kBlock; ++i) y[i] = std::sin(y[i]);
    }
    return;
  }
  for (std::int64_t i = 0; i < kBlock; ++i) y[i] = sincos_poly(y[i], shift);
}

FXPACK_BLOCK_CLONES void run_block_f32(float* y, const std::vector<FusedStep>& steps) {
  Eigen::Map<Eigen::ArrayXf> o(y, kBlock);
  for (const FusedStep& s : steps) {
    const float c = s.op >= FusedOp::Add ? scalar_of<float>(s.operand) : 0.0f;
    switch (s.op) {
      case FusedOp::Sin: sincos_block(y, 0); break;
      case FusedOp::Cos: sincos_block(y, 1); break;
      case FusedOp::Exp: o = o.exp(); break;
      case FusedOp::Tanh: o = o.tanh(); break;
      case FusedOp::Sigmoid:  // the unfused kernel's scalar formula, for identical results
        for (std::int64_t i = 0; i < kBlock; ++i) y[i] = 1.0f / (1.0f + std::exp(-y[i]));
        break;
      case FusedOp::Relu:
        for (std::int64_t i = 0; i < kBlock; ++i) y[i] = y[i] < 0.0f ? 0.0f : y[i];  // NaN stays NaN
        break;
      case FusedOp::Neg:
        for (std::int64_t i = 0; i < kBlock; ++i) y[i] = -y[i];
        break;
      case FusedOp::Abs:
        for (std::int64_t i = 0; i < kBlock; ++i) y[i] = std::fabs(y[i]);
        break;
      case FusedOp::Add:
        for (std::int64_t i = 0; i < kBlock; ++i) y[i] += c;
        break;
      case FusedOp::Sub:
        for (std::int64_t i = 0; i < kBlock; ++i) y[i] -= c;
        break;
      case FusedOp::Mul:
        for (std::int64_t i = 0; i < kBlock; ++i) y[i] *= c;
        break;
      case FusedOp::Div:
        for (std::int64_t i = 0; i < kBlock; ++i) y[i] /= c;
        break;
    }
  }
}

void run_f32(const float* x, float* y, std::int64_t n, const std::vector<FusedStep>& steps) {
  alignas(64) float buf[kBlock];
  for (std::int64_t i = 0; i < n; i += kBlock) {
    const std::int64_t m = std::min(kBlock, n - i);
    const auto bytes = static_cast<std::size_t>(m) * sizeof(float);
    std::memcpy(buf, x + i, bytes);
    if (m < kBlock) std::fill(buf + m, buf + kBlock, 0.0f);  // padding, computed and dropped
    run_block_f32(buf, steps);
    std::memcpy(y + i, buf, bytes);
  }
}

// ---- float64: Eigen on blocks ------------------------------------------------------------

void run_f64(const double* x, double* y, std::int64_t n, const std::vector<FusedStep>& steps) {
  for (std::int64_t i = 0; i < n; i += kBlock) {
    const std::int64_t m = std::min(kBlock, n - i);
    std::memcpy(y + i, x + i, static_cast<std::size_t>(m) * sizeof(double));
    run_block(y + i, m, steps);
  }
}

}  // namespace

const char* fused_op_name(FusedOp op) {
  for (const auto& e : kOps)
    if (e.op == op) return e.name;
  return "?";
}

std::vector<FusedStep> parse_fused_ops(const Value& ops) {
  if (ops.kind() != Value::Kind::List && ops.kind() != Value::Kind::Tuple)
    bad("argument 'ops' must be a list, got " + python_repr(ops));
  std::vector<FusedStep> out;
  for (const Value& item : ops.items()) {
    const Value* name = &item;
    const Value* operand = nullptr;
    if (item.kind() == Value::Kind::Tuple || item.kind() == Value::Kind::List) {
      if (item.items().size() != 2) bad("entry " + python_repr(item) + " must be (name, number)");
      name = &item.items()[0];
      operand = &item.items()[1];
    }
    const auto* s = std::get_if<std::string>(&name->variant());
    if (!s) bad("entry " + python_repr(item) + " does not start with an op name");
    const NameOp* e = nullptr;
    for (const auto& k : kOps)
      if (*s == k.name) e = &k;
    if (!e) bad("unknown op '" + *s + "'");
    if (e->binary != (operand != nullptr))
      bad("entry " + python_repr(item) + (e->binary ? " needs a number operand" : " takes no operand"));
    FusedStep step{e->op, Value()};
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
    const std::string name = fused_op_name(s.op);
    if (s.op >= FusedOp::Add) l.items.emplace_back(Tuple{{Value(name), s.operand}});
    else l.items.emplace_back(name);
  }
  return Value(std::move(l));
}

Tensor run_fused(const Tensor& x, const std::vector<FusedStep>& steps) {
  if (!x.defined()) bad("undefined input");
  if (x.dtype() == DType::Float32 || x.dtype() == DType::Float64) {
    Tensor y = Tensor::empty(x.shape(), x.dtype());
    if (x.dtype() == DType::Float32) run_f32(x.data<float>(), y.data<float>(), x.numel(), steps);
    else run_f64(x.data<double>(), y.data<double>(), x.numel(), steps);
    return y;
  }
  // Integer and bool inputs: the ordinary kernels, one op at a time (their promotions).
  using ops::BinaryOp;
  using ops::UnaryOp;
  Value cur{x};
  for (const FusedStep& s : steps) {
    const Tensor& t = cur.tensor();
    switch (s.op) {
      case FusedOp::Sin: cur = ops::unary(UnaryOp::Sin, t); break;
      case FusedOp::Cos: cur = ops::unary(UnaryOp::Cos, t); break;
      case FusedOp::Exp: cur = ops::unary(UnaryOp::Exp, t); break;
      case FusedOp::Tanh: cur = ops::unary(UnaryOp::Tanh, t); break;
      case FusedOp::Sigmoid: cur = ops::unary(UnaryOp::Sigmoid, t); break;
      case FusedOp::Relu: cur = ops::unary(UnaryOp::Relu, t); break;
      case FusedOp::Neg: cur = ops::unary(UnaryOp::Neg, t); break;
      case FusedOp::Abs: cur = ops::unary(UnaryOp::Abs, t); break;
      case FusedOp::Add: cur = ops::binary(BinaryOp::Add, cur, s.operand); break;
      case FusedOp::Sub: cur = ops::binary(BinaryOp::Sub, cur, s.operand); break;
      case FusedOp::Mul: cur = ops::binary(BinaryOp::Mul, cur, s.operand); break;
      case FusedOp::Div: cur = ops::binary(BinaryOp::Div, cur, s.operand); break;
    }
  }
  return cur.tensor();
}

Value fused_elementwise_kernel(std::span<const Value> args) {
  if (args.size() != 2) bad("expected (input, ops)");
  if (!args[0].is_tensor()) bad("argument 'input' must be a Tensor");
  return Value(run_fused(args[0].tensor(), parse_fused_ops(args[1])));
}

}  // namespace fxpack::compile_detail
