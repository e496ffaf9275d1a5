// Elementwise ops (elementwise.yaml): the functors of unary math and binary arithmetic, the
// kernels with extra arguments (alpha, rounding_mode, clamp's bounds), PyTorch's type
// promotion and broadcasting for the driver (elementwise.hpp), and make_fx decompositions.
// Large contiguous float32 operands run on oneDNN's eltwise and binary primitives where a
// functor names one (vectorised for the CPU at run time).
#include "elementwise.hpp"

#include <Eigen/Core>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels.hpp"
#include "util.hpp"

namespace fxpack::ops {

using util::fail;

// ---- Type promotion and broadcasting -----------------------------------------------------

namespace {

// PyTorch's promoteTypes for fxpack's dtypes: bool is below everything; a floating dtype
// wins over integers; float16 with bfloat16 is float32; uint8 with int8 is int16; otherwise
// the wider of two integers or two floats.
DType promote(DType a, DType b) {
  if (a == b || b == DType::Bool) return a;
  if (a == DType::Bool) return b;
  const bool fa = is_floating(a), fb = is_floating(b);
  if (fa && fb) {
    if (a == DType::Float64 || b == DType::Float64) return DType::Float64;
    return DType::Float32;  // float32 with anything narrower, or float16 with bfloat16
  }
  if (fa) return a;
  if (fb) return b;
  if (a == DType::UInt8 || b == DType::UInt8) {
    const DType s = a == DType::UInt8 ? b : a;
    return s == DType::Int8 ? DType::Int16 : s;
  }
  return element_size(a) >= element_size(b) ? a : b;
}

struct PromoState {
  std::optional<DType> dim, zero, wrapped;
};

void update(PromoState& s, const Value& v) {
  if (const Tensor* t = v.if_tensor()) {
    auto& slot = t->dim() == 0 ? s.zero : s.dim;
    slot = slot ? promote(*slot, t->dtype()) : t->dtype();
    return;
  }
  DType d;
  switch (v.kind()) {
    case Value::Kind::Bool: d = DType::Bool; break;
    case Value::Kind::Int: d = DType::Int64; break;
    case Value::Kind::Double: d = DType::Float32; break;  // the default dtype
    default: return;
  }
  s.wrapped = s.wrapped ? promote(*s.wrapped, d) : d;
}

std::optional<DType> combine(std::optional<DType> higher, std::optional<DType> lower) {
  if (!higher) return lower;
  if (!lower) return higher;
  if (is_floating(*higher)) return higher;
  if (*higher == DType::Bool || is_floating(*lower)) return promote(*higher, *lower);
  return higher;
}

}  // namespace

DType result_type_of(std::initializer_list<const Value*> values) {
  PromoState s;
  for (const Value* v : values) update(s, *v);
  auto r = combine(s.dim, combine(s.zero, s.wrapped));
  return r ? *r : DType::Float32;
}

DType result_type(const Value& a, const Value& b) {
  if (!(a.is_tensor() || is_python_number(a)) || !(b.is_tensor() || is_python_number(b))) {
    fail("result_type: unsupported operand types " + util::kind_str(a) + " and " + util::kind_str(b));
  }
  return result_type_of({&a, &b});
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const std::size_t nd = std::max(a.size(), b.size());
  Shape out;
  for (std::size_t i = 0; i < nd; ++i) {
    const std::size_t k = nd - i;  // from the end
    const std::int64_t da = k <= a.size() ? a[a.size() - k] : 1;
    const std::int64_t db = k <= b.size() ? b[b.size() - k] : 1;
    if (da != db && da != 1 && db != 1) {
      fail(std::string(op) + ": shapes " + a.to_string() + " and " + b.to_string() + " cannot be broadcast (size " +
           std::to_string(da) + " vs " + std::to_string(db) + " at dimension " + std::to_string(i) + " of the result)");
    }
    out.push_back(da == 1 ? db : da);
  }
  return out;
}

// ---- Unary functors ---------------------------------------------------------------------------

namespace {

template <class T>
using EigenArray = Eigen::Array<T, Eigen::Dynamic, 1>;

// float32 sin and cos: a Cody-Waite range reduction and the Cephes minimax polynomials (error
// <= 2 ulp, checked against std::sin/std::cos in the tests), on chunks of kSinCosChunk with
// loops the compiler vectorises; a chunk holding an |x| beyond kSinCosRange (where the float
// reduction loses accuracy) or a NaN uses std::sin/std::cos instead.
constexpr float kSinCosRange = 8192.0f;
constexpr std::int64_t kSinCosChunk = 1024;

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
  // Quadrant select without branches (keeps the loop vectorisable): odd k takes the cosine
  // polynomial, k & 2 flips the sign.
  const auto ku = static_cast<std::uint32_t>(k);
  const std::uint32_t pick = 0u - (ku & 1u);
  const std::uint32_t bits = (std::bit_cast<std::uint32_t>(c) & pick) | (std::bit_cast<std::uint32_t>(s) & ~pick);
  return std::bit_cast<float>(bits ^ ((ku & 2u) << 30));
}

FXPACK_BLOCK_CLONES void sincos_chunk(float* y, int shift) {
  int out_of_range = 0;
  for (std::int64_t i = 0; i < kSinCosChunk; ++i) out_of_range |= !(std::fabs(y[i]) <= kSinCosRange);  // NaN too
  if (out_of_range) {
    if (shift) {
      for (std::int64_t i = 0; i < kSinCosChunk; ++i) y[i] = std::cos(y[i]);
    } else {
      for (std::int64_t i = 0; i < kSinCosChunk; ++i) y[i] = std::sin(y[i]);
    }
    return;
  }
  for (std::int64_t i = 0; i < kSinCosChunk; ++i) y[i] = sincos_poly(y[i], shift);
}

// In place after one copy: whole chunks where they are, the tail through a padded buffer.
void sincos_f32(const float* x, float* y, std::int64_t n, int shift) {
  if (x != y) std::memcpy(y, x, static_cast<std::size_t>(n) * sizeof(float));
  std::int64_t i = 0;
  for (; i + kSinCosChunk <= n; i += kSinCosChunk) sincos_chunk(y + i, shift);
  if (i == n) return;
  alignas(64) float buf[kSinCosChunk];
  const auto bytes = static_cast<std::size_t>(n - i) * sizeof(float);
  std::memcpy(buf, y + i, bytes);
  std::fill(buf + (n - i), buf + kSinCosChunk, 0.0f);  // computed and dropped
  sincos_chunk(buf, shift);
  std::memcpy(y + i, buf, bytes);
}

struct Sin {
  static constexpr const char* name = "sin";
  template <class T>
  T operator()(T x) const {
    return std::sin(x);
  }
  static void apply(const float* x, float* y, std::int64_t n) { sincos_f32(x, y, n, 0); }
  static void apply(const double* x, double* y, std::int64_t n) {
    Eigen::Map<EigenArray<double>>(y, n) = Eigen::Map<const EigenArray<double>>(x, n).sin();
  }
};

struct Cos {
  static constexpr const char* name = "cos";
  template <class T>
  T operator()(T x) const {
    return std::cos(x);
  }
  static void apply(const float* x, float* y, std::int64_t n) { sincos_f32(x, y, n, 1); }
  static void apply(const double* x, double* y, std::int64_t n) {
    Eigen::Map<EigenArray<double>>(y, n) = Eigen::Map<const EigenArray<double>>(x, n).cos();
  }
};

struct Exp {
  static constexpr const char* name = "exp";
  template <class T>
  T operator()(T x) const {
    return std::exp(x);
  }
  template <class T>
  static void apply(const T* x, T* y, std::int64_t n) {
    Eigen::Map<EigenArray<T>>(y, n) = Eigen::Map<const EigenArray<T>>(x, n).exp();
  }
};

struct Tanh {
  static constexpr const char* name = "tanh";
  static dnnl_backend::Eltwise dnnl_eltwise() { return {dnnl::algorithm::eltwise_tanh}; }
  template <class T>
  T operator()(T x) const {
    return std::tanh(x);
  }
  template <class T>
  static void apply(const T* x, T* y, std::int64_t n) {
    Eigen::Map<EigenArray<T>>(y, n) = Eigen::Map<const EigenArray<T>>(x, n).tanh();
  }
};

struct Sigmoid {
  static constexpr const char* name = "sigmoid";
  static dnnl_backend::Eltwise dnnl_eltwise() { return {dnnl::algorithm::eltwise_logistic}; }
  template <class T>
  T operator()(T x) const {
    return T(1) / (T(1) + std::exp(-x));
  }
};

struct Relu {
  static constexpr const char* name = "relu";
  template <class T>
  T operator()(T x) const {
    return x < T(0) ? T(0) : x;  // NaN stays NaN
  }
};

struct Neg {
  static constexpr const char* name = "neg";
  static dnnl_backend::Eltwise dnnl_eltwise() { return {dnnl::algorithm::eltwise_linear, -1.f, 0.f}; }
  template <class T>
  T operator()(T x) const {
    if constexpr (std::is_same_v<T, std::uint8_t>) return static_cast<std::uint8_t>(256 - x);
    else if constexpr (std::is_integral_v<T>) return static_cast<T>(0ull - static_cast<std::uint64_t>(x));
    else return -x;
  }
  static void check(const Tensor& x) {
    if (x.dtype() == DType::Bool) {
      fail("neg: Negation, the `-` operator, on a bool tensor is not supported. If you are trying to invert a mask, "
           "use the `~` or `logical_not()` operator instead.");
    }
  }
  // Python's -x.
  static std::optional<Value> python(const Value& v) {
    if (v.is_int()) {
      const std::int64_t i = v.to_int();
      if (i == std::numeric_limits<std::int64_t>::min()) fail("neg: integer overflow");
      return Value(-i);
    }
    if (v.is_double()) return Value(-v.to_double());
    if (v.kind() == Value::Kind::Bool) return Value(std::int64_t{v.to_bool() ? -1 : 0});
    return std::nullopt;
  }
};

struct Abs {
  static constexpr const char* name = "abs";
  static dnnl_backend::Eltwise dnnl_eltwise() { return {dnnl::algorithm::eltwise_abs}; }
  template <class T>
  T operator()(T x) const {
    if constexpr (std::is_same_v<T, std::uint8_t>) return x;
    else if constexpr (std::is_integral_v<T>) return x < 0 ? static_cast<T>(0ull - static_cast<std::uint64_t>(x)) : x;
    else return std::abs(x);
  }
};

struct Reciprocal {
  static constexpr const char* name = "reciprocal";
  template <class T>
  T operator()(T x) const {
    return T(1) / x;
  }
};

// ---- Rounding, roots, logarithms, predicates ----------------------------------------------

// Unary functors whose float form Eigen vectorises.
#define FXPACK_EIGEN_APPLY(expr)                                                         \
  template <class T>                                                                     \
    requires std::is_floating_point_v<T>                                                 \
  static void apply(const T* xp, T* yp, std::int64_t n) {                                \
    const auto x = Eigen::Map<const EigenArray<T>>(xp, n);                               \
    Eigen::Map<EigenArray<T>>(yp, n) = (expr);                                           \
  }

// floor, ceil, round: integers are returned as they are (PyTorch keeps their dtype).
struct Floor {
  static constexpr const char* name = "floor";
  template <class T>
  T operator()(T x) const {
    if constexpr (std::is_integral_v<T>) return x;
    else return std::floor(x);
  }
  FXPACK_EIGEN_APPLY(x.floor())
};

struct Ceil {
  static constexpr const char* name = "ceil";
  template <class T>
  T operator()(T x) const {
    if constexpr (std::is_integral_v<T>) return x;
    else return std::ceil(x);
  }
  FXPACK_EIGEN_APPLY(x.ceil())
};

// Halfway cases to even, as PyTorch's round (std::nearbyint in the default rounding mode).
struct Round {
  static constexpr const char* name = "round";
  template <class T>
  T operator()(T x) const {
    if constexpr (std::is_integral_v<T>) return x;
    else return std::nearbyint(x);
  }
};

struct Sqrt {
  static constexpr const char* name = "sqrt";
  template <class T>
  T operator()(T x) const {
    return std::sqrt(x);
  }
  FXPACK_EIGEN_APPLY(x.sqrt())
};

struct Rsqrt {
  static constexpr const char* name = "rsqrt";
  template <class T>
  T operator()(T x) const {
    return T(1) / std::sqrt(x);
  }
  FXPACK_EIGEN_APPLY(x.sqrt().inverse())
};

struct Log {
  static constexpr const char* name = "log";
  static dnnl_backend::Eltwise dnnl_eltwise() { return {dnnl::algorithm::eltwise_log}; }
  template <class T>
  T operator()(T x) const {
    return std::log(x);
  }
  FXPACK_EIGEN_APPLY(x.log())
};

struct Log1p {
  static constexpr const char* name = "log1p";
  template <class T>
  T operator()(T x) const {
    return std::log1p(x);
  }
  FXPACK_EIGEN_APPLY(x.log1p())
};

struct Log2 {
  static constexpr const char* name = "log2";
  template <class T>
  T operator()(T x) const {
    return std::log2(x);
  }
};

struct Erf {
  static constexpr const char* name = "erf";
  template <class T>
  T operator()(T x) const {
    return std::erf(x);
  }
};

// -1, 0 or 1; NaN gives 0, as PyTorch's CPU kernel computes it.
struct Sign {
  static constexpr const char* name = "sign";
  template <class T>
  T operator()(T x) const {
    return static_cast<T>(static_cast<int>(T(0) < x) - static_cast<int>(x < T(0)));
  }
};

// torch.square is pow(x, 2): the same dtype, bool refused as the driver refuses it for `keep`.
struct Square {
  static constexpr const char* name = "square";
  template <class T>
  T operator()(T x) const {
    if constexpr (std::is_integral_v<T>) return static_cast<T>(static_cast<std::uint64_t>(x) * static_cast<std::uint64_t>(x));
    else return x * x;
  }
};

struct IsNan {
  static constexpr const char* name = "isnan";
  template <class T>
  bool operator()(T x) const {
    if constexpr (std::is_floating_point_v<T>) return std::isnan(x);
    else return false;
  }
};

struct IsInf {
  static constexpr const char* name = "isinf";
  template <class T>
  bool operator()(T x) const {
    if constexpr (std::is_floating_point_v<T>) return std::isinf(x);
    else return false;
  }
};

struct IsFinite {
  static constexpr const char* name = "isfinite";
  template <class T>
  bool operator()(T x) const {
    if constexpr (std::is_floating_point_v<T>) return std::isfinite(x);
    else return true;
  }
};

struct LogicalNot {
  static constexpr const char* name = "logical_not";
  template <class T>
  bool operator()(T x) const {
    return x == T(0);  // NaN is true, so its negation is false
  }
};

[[noreturn]] void not_implemented(const char* op, const char* kernel, DType d) {
  fail(std::string(op) + ": \"" + kernel + "\" not implemented for '" + scalar_type_name(d) + "'");
}

// ~x on integers; bool tensors are negated logically by bitwise_not_kernel.
struct BitwiseNot {
  static constexpr const char* name = "bitwise_not";
  template <class T>
  T operator()(T x) const {
    if constexpr (std::is_integral_v<T>) return static_cast<T>(~x);
    else return x;  // unreachable: check refuses floating tensors
  }
  static void check(const Tensor& x) {
    if (is_floating(x.dtype())) not_implemented(name, "bitwise_not_cpu", x.dtype());
  }
  // Python's ~ on an int or a bool (~True is -2).
  static std::optional<Value> python(const Value& v) {
    if (v.is_int() || v.kind() == Value::Kind::Bool) return Value(static_cast<std::int64_t>(~number_as<std::int64_t>(v)));
    return std::nullopt;
  }
};

// ---- Binary functors ----------------------------------------------------------------------

[[noreturn]] void zero_division(const char* name, bool integer) {
  fail(std::string(name) + (integer ? ": ZeroDivisionError: integer division by zero" : ": ZeroDivisionError: division by zero"));
}

bool both_int(const Value& a, const Value& b) {
  return is_python_number(a) && is_python_number(b) && !a.is_double() && !b.is_double();
}

// Python int arithmetic with overflow checks, float arithmetic otherwise; nullopt unless
// both are numbers.
template <class IntOp, class FloatOp>
std::optional<Value> python_arith(const char* name, const Value& a, const Value& b, IntOp iop, FloatOp fop) {
  if (!is_python_number(a) || !is_python_number(b)) return std::nullopt;
  if (both_int(a, b)) {
    std::int64_t r = 0;
    if (iop(number_as<std::int64_t>(a), number_as<std::int64_t>(b), &r)) fail(std::string(name) + ": integer overflow");
    return Value(r);
  }
  return Value(fop(number_as<double>(a), number_as<double>(b)));
}

// Integer division rounding toward negative infinity; float division as PyTorch's (and
// Python's) floor division computes it.
template <class T>
T floor_div(T a, T b, const char* name) {
  if constexpr (std::is_integral_v<T>) {
    if (b == 0) fail(std::string(name) + ": ZeroDivisionError (integer division by zero)");
    if (b == -1) return static_cast<T>(0ull - static_cast<std::uint64_t>(a));
    T q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
    return q;
  } else {
    if (b == 0) return a / b;
    const T mod = std::fmod(a, b);
    T div = (a - mod) / b;
    if (mod != 0 && (b < 0) != (mod < 0)) div -= T(1);
    if (div == 0) return std::copysign(T(0), a / b);
    T floordiv = std::floor(div);
    if (div - floordiv > T(0.5)) floordiv += T(1);
    return floordiv;
  }
}

struct Add {
  static constexpr const char* name = "add";
  static constexpr dnnl::algorithm dnnl_binary = dnnl::algorithm::binary_add;
  static constexpr bool commutative = true;
  template <class T>
  T operator()(T a, T b) const {
    if constexpr (std::is_integral_v<T>) return static_cast<T>(static_cast<std::uint64_t>(a) + static_cast<std::uint64_t>(b));
    else return a + b;
  }
  // Python's a + b: numbers, and list/tuple concatenation.
  static std::optional<Value> python(const Value& a, const Value& b) {
    if (a.kind() == b.kind() && (a.kind() == Value::Kind::List || a.kind() == Value::Kind::Tuple)) {
      std::vector<Value> items = a.items();
      items.insert(items.end(), b.items().begin(), b.items().end());
      if (a.kind() == Value::Kind::List) return Value(List{std::move(items)});
      return Value(Tuple{std::move(items)});
    }
    return python_arith(name, a, b, [](std::int64_t x, std::int64_t y, std::int64_t* r) {
      return __builtin_add_overflow(x, y, r);
    }, [](double x, double y) { return x + y; });
  }
};

struct Sub {
  static constexpr const char* name = "sub";
  static constexpr dnnl::algorithm dnnl_binary = dnnl::algorithm::binary_sub;
  static constexpr bool commutative = false;
  template <class T>
  T operator()(T a, T b) const {
    if constexpr (std::is_integral_v<T>) return static_cast<T>(static_cast<std::uint64_t>(a) - static_cast<std::uint64_t>(b));
    else return a - b;
  }
  static void check(const Value& a, const Value& b) {
    auto is_bool = [](const Value& v) {
      return v.is_tensor() ? v.tensor().defined() && v.tensor().dtype() == DType::Bool : v.kind() == Value::Kind::Bool;
    };
    if (is_bool(a) && is_bool(b)) {
      fail("sub: Subtraction, the `-` operator, with two bool tensors is not supported. Use the `^` or "
           "`logical_xor()` operator instead.");
    }
    if (is_bool(a) || is_bool(b)) {
      fail("sub: Subtraction, the `-` operator, with a bool tensor is not supported. If you are trying to invert a "
           "mask, use the `~` or `logical_not()` operator instead.");
    }
  }
  static std::optional<Value> python(const Value& a, const Value& b) {
    return python_arith(name, a, b, [](std::int64_t x, std::int64_t y, std::int64_t* r) {
      return __builtin_sub_overflow(x, y, r);
    }, [](double x, double y) { return x - y; });
  }
};

struct Mul {
  static constexpr const char* name = "mul";
  static constexpr dnnl::algorithm dnnl_binary = dnnl::algorithm::binary_mul;
  static constexpr bool commutative = true;
  template <class T>
  T operator()(T a, T b) const {
    if constexpr (std::is_integral_v<T>) return static_cast<T>(static_cast<std::uint64_t>(a) * static_cast<std::uint64_t>(b));
    else return a * b;
  }
  static std::optional<Value> python(const Value& a, const Value& b) {
    return python_arith(name, a, b, [](std::int64_t x, std::int64_t y, std::int64_t* r) {
      return __builtin_mul_overflow(x, y, r);
    }, [](double x, double y) { return x * y; });
  }
};

// True division (the driver computes it in a floating dtype: promote_float).
struct Div {
  static constexpr const char* name = "div";
  static constexpr dnnl::algorithm dnnl_binary = dnnl::algorithm::binary_div;
  static constexpr bool commutative = false;
  template <class T>
  T operator()(T a, T b) const {
    if constexpr (std::is_integral_v<T>) {
      if (b == 0) fail("div: ZeroDivisionError (integer division by zero)");
      if (b == -1) return static_cast<T>(0ull - static_cast<std::uint64_t>(a));
      return a / b;
    } else {
      return a / b;
    }
  }
  static std::optional<Value> python(const Value& a, const Value& b) {
    if (!is_python_number(a) || !is_python_number(b)) return std::nullopt;
    const double y = number_as<double>(b);
    if (y == 0.0) zero_division(name, false);
    return Value(number_as<double>(a) / y);
  }
};

// div(rounding_mode='trunc').
struct DivTrunc {
  static constexpr const char* name = "div";
  template <class T>
  T operator()(T a, T b) const {
    if constexpr (std::is_integral_v<T>) return Div{}(a, b);
    else return std::trunc(a / b);
  }
  static std::optional<Value> python(const Value& a, const Value& b) {
    if (!is_python_number(a) || !is_python_number(b)) return std::nullopt;
    if (both_int(a, b)) {
      const std::int64_t x = number_as<std::int64_t>(a), y = number_as<std::int64_t>(b);
      if (y == 0) zero_division(name, true);
      if (x == std::numeric_limits<std::int64_t>::min() && y == -1) fail("div: integer overflow");
      return Value(x / y);
    }
    const double y = number_as<double>(b);
    if (y == 0.0) zero_division(name, false);
    return Value(std::trunc(number_as<double>(a) / y));
  }
};

// Python's a // b on numbers.
std::optional<Value> python_floor_div(const char* name, const Value& a, const Value& b) {
  if (!is_python_number(a) || !is_python_number(b)) return std::nullopt;
  if (both_int(a, b)) {
    const std::int64_t x = number_as<std::int64_t>(a), y = number_as<std::int64_t>(b);
    if (y == 0) zero_division(name, true);
    if (x == std::numeric_limits<std::int64_t>::min() && y == -1) fail(std::string(name) + ": integer overflow");
    return Value(floor_div<std::int64_t>(x, y, name));
  }
  const double y = number_as<double>(b);
  if (y == 0.0) zero_division(name, false);
  return Value(floor_div<double>(number_as<double>(a), y, name));
}

// div(rounding_mode='floor').
struct DivFloor {
  static constexpr const char* name = "div";
  template <class T>
  T operator()(T a, T b) const {
    return floor_div<T>(a, b, name);
  }
  static std::optional<Value> python(const Value& a, const Value& b) { return python_floor_div(name, a, b); }
};

// torch.floor_divide and Python's `//`.
struct FloorDivide {
  static constexpr const char* name = "floor_divide";
  template <class T>
  T operator()(T a, T b) const {
    return floor_div<T>(a, b, name);
  }
  static std::optional<Value> python(const Value& a, const Value& b) { return python_floor_div(name, a, b); }
};

struct Maximum {
  static constexpr const char* name = "maximum";
  template <class T>
  T operator()(T a, T b) const {
    if constexpr (std::is_floating_point_v<T>) {
      if (std::isnan(a)) return a;
      if (std::isnan(b)) return b;
    }
    return a < b ? b : a;
  }
};

struct Minimum {
  static constexpr const char* name = "minimum";
  template <class T>
  T operator()(T a, T b) const {
    if constexpr (std::is_floating_point_v<T>) {
      if (std::isnan(a)) return a;
      if (std::isnan(b)) return b;
    }
    return b < a ? b : a;
  }
};

// ---- Comparisons and logical ops (predicates: the result is bool) ---------------------------

// Python's comparison of two numbers (operator.lt on sizes).
template <class Cmp>
std::optional<Value> python_compare(const Value& a, const Value& b, Cmp cmp) {
  if (!is_python_number(a) || !is_python_number(b)) return std::nullopt;
  if (both_int(a, b)) return Value(cmp(number_as<std::int64_t>(a), number_as<std::int64_t>(b)));
  return Value(cmp(number_as<double>(a), number_as<double>(b)));
}

#define FXPACK_COMPARISON(Name, op_name, expr)                                                     \
  struct Name {                                                                                    \
    static constexpr const char* name = op_name;                                                   \
    template <class T>                                                                             \
    bool operator()(T a, T b) const {                                                              \
      return expr;                                                                                 \
    }                                                                                              \
    static std::optional<Value> python(const Value& a, const Value& b) {                           \
      return python_compare(a, b, [](auto x, auto y) { return Name{}(x, y); });                    \
    }                                                                                              \
  };
FXPACK_COMPARISON(Eq, "eq", a == b)
FXPACK_COMPARISON(Ne, "ne", a != b)
FXPACK_COMPARISON(Lt, "lt", a < b)
FXPACK_COMPARISON(Le, "le", a <= b)
FXPACK_COMPARISON(Gt, "gt", a > b)
FXPACK_COMPARISON(Ge, "ge", a >= b)
#undef FXPACK_COMPARISON

struct LogicalAnd {
  static constexpr const char* name = "logical_and";
  template <class T>
  bool operator()(T a, T b) const {
    return (a != T(0)) & (b != T(0));
  }
};

struct LogicalOr {
  static constexpr const char* name = "logical_or";
  template <class T>
  bool operator()(T a, T b) const {
    return (a != T(0)) | (b != T(0));
  }
};

struct LogicalXor {
  static constexpr const char* name = "logical_xor";
  template <class T>
  bool operator()(T a, T b) const {
    return (a != T(0)) != (b != T(0));
  }
};

// ---- Bitwise and shifts: integers and bools only --------------------------------------------

// Python's &, |, ^ on ints and bools (two bools give a bool).
template <class Op>
std::optional<Value> python_bitwise(const Value& a, const Value& b, Op op) {
  const bool ok_a = a.is_int() || a.kind() == Value::Kind::Bool, ok_b = b.is_int() || b.kind() == Value::Kind::Bool;
  if (!ok_a || !ok_b) return std::nullopt;
  const std::int64_t r = op(number_as<std::int64_t>(a), number_as<std::int64_t>(b));
  if (a.kind() == Value::Kind::Bool && b.kind() == Value::Kind::Bool) return Value(r != 0);
  return Value(r);
}

#define FXPACK_BITWISE(Name, op_name, kernel_name, op)                                             \
  struct Name {                                                                                    \
    static constexpr const char* name = op_name;                                                   \
    template <class T>                                                                             \
    T operator()(T a, T b) const {                                                                 \
      if constexpr (std::is_integral_v<T>) return static_cast<T>(a op b);                          \
      else return a; /* unreachable: check_dtype refuses floating results */                       \
    }                                                                                              \
    static void check_dtype(DType d) {                                                             \
      if (is_floating(d)) not_implemented(name, kernel_name, d);                                   \
    }                                                                                              \
    static std::optional<Value> python(const Value& a, const Value& b) {                           \
      return python_bitwise(a, b, [](std::int64_t x, std::int64_t y) { return x op y; });          \
    }                                                                                              \
  };
FXPACK_BITWISE(BitwiseAnd, "bitwise_and", "bitwise_and_cpu", &)
FXPACK_BITWISE(BitwiseOr, "bitwise_or", "bitwise_or_cpu", |)
FXPACK_BITWISE(BitwiseXor, "bitwise_xor", "bitwise_xor_cpu", ^)
#undef FXPACK_BITWISE

// a << b as PyTorch computes it: 0 once b reaches the width (or is negative).
struct LShift {
  static constexpr const char* name = "lshift";
  template <class T>
  T operator()(T a, T b) const {
    if constexpr (std::is_integral_v<T>) {
      using U = std::make_unsigned_t<T>;
      if (b < 0 || b >= static_cast<T>(sizeof(T) * 8)) return T(0);
      return static_cast<T>(static_cast<U>(a) << b);
    } else {
      return a;  // unreachable: check_dtype refuses floating results
    }
  }
  static void check_dtype(DType d) {
    if (is_floating(d)) not_implemented(name, "lshift_cpu", d);
  }
  static std::optional<Value> python(const Value& a, const Value& b) {
    if (!a.is_int() || !b.is_int()) return std::nullopt;
    const std::int64_t x = a.to_int(), y = b.to_int();
    if (y < 0) fail("lshift: ValueError: negative shift count");
    if (x == 0) return Value(std::int64_t{0});
    if (y >= 63 || (x >> (63 - y)) != (x < 0 ? -1 : 0)) fail("lshift: integer overflow");
    return Value(static_cast<std::int64_t>(static_cast<std::uint64_t>(x) << y));
  }
};

// a >> b, arithmetic: the sign fills once b reaches the width.
struct RShift {
  static constexpr const char* name = "rshift";
  template <class T>
  T operator()(T a, T b) const {
    if constexpr (std::is_integral_v<T>) {
      constexpr T bits = static_cast<T>(sizeof(T) * 8);
      if (b < 0 || b >= bits) return std::is_signed_v<T> ? static_cast<T>(a >> (bits - 1)) : T(0);
      return static_cast<T>(a >> b);
    } else {
      return a;  // unreachable: check_dtype refuses floating results
    }
  }
  static void check_dtype(DType d) {
    if (is_floating(d)) not_implemented(name, "rshift_cpu", d);
  }
  static std::optional<Value> python(const Value& a, const Value& b) {
    if (!a.is_int() || !b.is_int()) return std::nullopt;
    const std::int64_t x = a.to_int(), y = b.to_int();
    if (y < 0) fail("rshift: ValueError: negative shift count");
    return Value(y >= 63 ? (x < 0 ? std::int64_t{-1} : std::int64_t{0}) : x >> y);
  }
};

// ---- pow, remainder, fmod, atan2 --------------------------------------------------------------

// Integer powers by squaring (wrapping like PyTorch's); a negative exponent gives 0 unless the
// base is 1 or -1 (a negative Python-number exponent is refused by pow_kernel first).
template <class T>
T int_pow(T base, T exp) {
  if (exp < 0) {
    if (base == 1) return 1;
    if constexpr (std::is_signed_v<T>) {
      if (base == -1) return (exp & 1) ? T(-1) : T(1);
    }
    return 0;
  }
  std::uint64_t result = 1, b = static_cast<std::uint64_t>(base);
  for (auto e = static_cast<std::uint64_t>(exp); e; e >>= 1) {
    if (e & 1) result *= b;
    b *= b;
  }
  return static_cast<T>(result);
}

struct Pow {
  static constexpr const char* name = "pow";
  template <class T>
  T operator()(T a, T b) const {
    if constexpr (std::is_integral_v<T>) return int_pow(a, b);
    else if (b == T(2)) return a * a;  // exactly pow(a, 2), without the call
    else return std::pow(a, b);
  }
  // Python's a ** b: ints to non-negative int powers stay ints (overflow refused).
  static std::optional<Value> python(const Value& a, const Value& b) {
    if (!is_python_number(a) || !is_python_number(b)) return std::nullopt;
    if (both_int(a, b) && number_as<std::int64_t>(b) >= 0) {
      std::int64_t r = 1, base = number_as<std::int64_t>(a);
      for (std::int64_t e = number_as<std::int64_t>(b); e > 0; --e) {
        if (__builtin_mul_overflow(r, base, &r)) fail("pow: integer overflow");
        if (r == 0 || r == 1) break;
      }
      return Value(r);
    }
    const double x = number_as<double>(a), y = number_as<double>(b);
    if (x == 0.0 && y < 0.0) fail("pow: ZeroDivisionError: 0.0 cannot be raised to a negative power");
    if (x < 0.0 && y != std::floor(y)) fail("pow: a negative number to a fractional power is complex, which fxpack does not support");
    return Value(std::pow(x, y));
  }
};

// Python's modulo: the result has the divisor's sign.
struct Remainder {
  static constexpr const char* name = "remainder";
  template <class T>
  T operator()(T a, T b) const {
    if constexpr (std::is_integral_v<T>) {
      if (b == 0) fail("remainder: ZeroDivisionError");
      if constexpr (std::is_signed_v<T>) {
        if (b == -1) return 0;
      }
      T r = a % b;
      if (r != 0 && ((r < 0) != (b < 0))) r += b;
      return r;
    } else {
      T mod = std::fmod(a, b);
      if (mod != 0 && ((b < 0) != (mod < 0))) mod += b;
      return mod;
    }
  }
  static std::optional<Value> python(const Value& a, const Value& b) {
    if (!is_python_number(a) || !is_python_number(b)) return std::nullopt;
    if (both_int(a, b)) {
      if (number_as<std::int64_t>(b) == 0) zero_division(name, true);
      return Value(Remainder{}(number_as<std::int64_t>(a), number_as<std::int64_t>(b)));
    }
    if (number_as<double>(b) == 0.0) zero_division(name, false);
    return Value(Remainder{}(number_as<double>(a), number_as<double>(b)));
  }
};

// C's fmod: the result has the dividend's sign.
struct Fmod {
  static constexpr const char* name = "fmod";
  template <class T>
  T operator()(T a, T b) const {
    if constexpr (std::is_integral_v<T>) {
      if (b == 0) fail("fmod: ZeroDivisionError");
      if constexpr (std::is_signed_v<T>) {
        if (b == -1) return 0;
      }
      return static_cast<T>(a % b);
    } else {
      return std::fmod(a, b);
    }
  }
};

struct Atan2 {
  static constexpr const char* name = "atan2";
  template <class T>
  T operator()(T a, T b) const {
    return std::atan2(a, b);
  }
};

bool is_one(const Value& v) {
  if (v.is_int()) return v.to_int() == 1;
  if (v.is_double()) return v.to_double() == 1.0;
  if (v.kind() == Value::Kind::Bool) return v.to_bool();
  return v.is_none();
}

}  // namespace

// ---- The C++ API of kernels.hpp -------------------------------------------------------------

const char* op_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::Sin: return Sin::name;
    case UnaryOp::Cos: return Cos::name;
    case UnaryOp::Exp: return Exp::name;
    case UnaryOp::Tanh: return Tanh::name;
    case UnaryOp::Sigmoid: return Sigmoid::name;
    case UnaryOp::Relu: return Relu::name;
    case UnaryOp::Neg: return Neg::name;
    case UnaryOp::Abs: return Abs::name;
  }
  return "unary";
}

const char* op_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return Add::name;
    case BinaryOp::Sub: return Sub::name;
    case BinaryOp::Mul: return Mul::name;
    case BinaryOp::Div: return Div::name;
    case BinaryOp::Maximum: return Maximum::name;
    case BinaryOp::Minimum: return Minimum::name;
  }
  return "binary";
}

Tensor unary(UnaryOp op, const Tensor& x) {
  switch (op) {
    case UnaryOp::Sin: return unary_tensor<Sin, Promotion::PromoteFloat>(x);
    case UnaryOp::Cos: return unary_tensor<Cos, Promotion::PromoteFloat>(x);
    case UnaryOp::Exp: return unary_tensor<Exp, Promotion::PromoteFloat>(x);
    case UnaryOp::Tanh: return unary_tensor<Tanh, Promotion::PromoteFloat>(x);
    case UnaryOp::Sigmoid: return unary_tensor<Sigmoid, Promotion::PromoteFloat>(x);
    case UnaryOp::Relu: return unary_tensor<Relu, Promotion::Keep>(x);
    case UnaryOp::Neg: return unary_tensor<Neg, Promotion::Keep>(x);
    case UnaryOp::Abs: return unary_tensor<Abs, Promotion::Keep>(x);
  }
  fail("unary: unknown op");
}

Value binary(BinaryOp op, const Value& a, const Value& b) {
  switch (op) {
    case BinaryOp::Add: return binary_value<Add, Promotion::Promote>(a, b);
    case BinaryOp::Sub: return binary_value<Sub, Promotion::Promote>(a, b);
    case BinaryOp::Mul: return binary_value<Mul, Promotion::Promote>(a, b);
    case BinaryOp::Div: return binary_value<Div, Promotion::PromoteFloat>(a, b);
    case BinaryOp::Maximum: return binary_value<Maximum, Promotion::Promote>(a, b);
    case BinaryOp::Minimum: return binary_value<Minimum, Promotion::Promote>(a, b);
  }
  fail("binary: unknown op");
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  Value r = binary(op, Value(a), Value(b));
  return r.tensor();
}

Value add(const Value& a, const Value& b, const Value& alpha) {
  if (is_one(alpha)) return binary(BinaryOp::Add, a, b);
  if (!is_python_number(alpha)) fail("add: argument 'alpha' must be a number, got " + util::kind_str(alpha));
  return binary(BinaryOp::Add, a, binary(BinaryOp::Mul, b, alpha));
}

Value sub(const Value& a, const Value& b, const Value& alpha) {
  if (is_one(alpha)) return binary(BinaryOp::Sub, a, b);
  if (!is_python_number(alpha)) fail("sub: argument 'alpha' must be a number, got " + util::kind_str(alpha));
  return binary(BinaryOp::Sub, a, binary(BinaryOp::Mul, b, alpha));
}

Value div(const Value& a, const Value& b, const Value& rounding_mode) {
  if (rounding_mode.is_none()) return binary(BinaryOp::Div, a, b);
  const auto* mode = rounding_mode.if_string();
  if (mode && *mode == "trunc") return binary_value<DivTrunc, Promotion::Promote>(a, b);
  if (mode && *mode == "floor") return binary_value<DivFloor, Promotion::Promote>(a, b);
  fail("div: expected rounding_mode to be one of None, 'trunc', or 'floor' but found " +
       (mode ? "'" + *mode + "'" : util::kind_str(rounding_mode)));
}

Tensor clamp(const Tensor& x, const Value& min, const Value& max) {
  if (!x.defined()) fail("clamp: undefined tensor");
  if (min.is_none() && max.is_none()) fail("clamp: At least one of 'min' or 'max' must not be None");
  for (const Value* v : {&min, &max}) {
    if (!v->is_none() && !v->is_tensor() && !is_python_number(*v)) {
      fail("clamp: argument '" + std::string(v == &min ? "min" : "max") + "' must be a number, a Tensor or None, got " +
           util::kind_str(*v));
    }
  }
  if (x.dtype() == DType::Bool) fail("clamp: not implemented for bool tensors");
  Value r{x};
  if (!min.is_none()) r = binary(BinaryOp::Maximum, r, min);
  if (!max.is_none()) r = binary(BinaryOp::Minimum, r, max);
  return r.tensor();
}

// ---- Kernels (named by elementwise.yaml) ----------------------------------------------------

namespace {

// (self, other, alpha)
Value add_kernel(std::span<const Value> a) { return add(a[0], a[1], a[2]); }
Value sub_kernel(std::span<const Value> a) { return sub(a[0], a[1], a[2]); }
// rsub(self, other, alpha) = other - alpha * self
Value rsub_kernel(std::span<const Value> a) { return sub(a[1], a[0], a[2]); }
// div.Tensor_mode(self, other, rounding_mode)
Value div_mode_kernel(std::span<const Value> a) { return div(a[0], a[1], a[2]); }
// clamp(self, min, max)
Value clamp_kernel(std::span<const Value> a) { return Value(clamp(a[0].tensor(), a[1], a[2])); }
// torch.nn.functional.relu(input, inplace): fxpack kernels never write into an input.
Value relu_functional(std::span<const Value> a) { return Value(unary_tensor<Relu, Promotion::Keep>(a[0].tensor())); }

// ---- In-place forms -------------------------------------------------------------------------

// PyTorch's canCast: a floating result cannot go into an integer tensor, nor a non-bool one
// into a bool tensor.
bool can_cast(DType from, DType to) {
  if (is_floating(from) && !is_floating(to)) return false;
  return !(from != DType::Bool && to == DType::Bool);
}

// What PyTorch writes into `self` for an in-place op whose out-of-place result is `r`: the
// result cast to self's dtype, refused when the cast or the broadcast shape does not fit.
Value inplace_result(const char* op, const Tensor& self, Value r) {
  const Tensor& t = r.tensor();
  if (t.shape() != self.shape()) {
    fail(std::string(op) + ": output with shape " + self.shape().to_string() + " doesn't match the broadcast shape " +
         t.shape().to_string());
  }
  if (t.dtype() == self.dtype()) return r;
  if (!can_cast(t.dtype(), self.dtype())) {
    fail(std::string(op) + ": result type " + scalar_type_name(t.dtype()) + " can't be cast to the desired output type " +
         scalar_type_name(self.dtype()));
  }
  return Value(t.to(self.dtype()));
}

// add_/sub_(self, other, alpha), mul_/div_(self, other). As operator.iadd & co. they also see
// Python numbers (`n += 1` on a size), which Python rebinds: plain arithmetic.
Value add_inplace_kernel(std::span<const Value> a) {
  if (!a[0].is_tensor()) return add(a[0], a[1], a[2]);
  return inplace_result("add_", a[0].tensor(), add(a[0], a[1], a[2]));
}
Value sub_inplace_kernel(std::span<const Value> a) {
  if (!a[0].is_tensor()) return sub(a[0], a[1], a[2]);
  return inplace_result("sub_", a[0].tensor(), sub(a[0], a[1], a[2]));
}
Value mul_inplace_kernel(std::span<const Value> a) {
  if (!a[0].is_tensor()) return binary(BinaryOp::Mul, a[0], a[1]);
  return inplace_result("mul_", a[0].tensor(), binary(BinaryOp::Mul, a[0], a[1]));
}
Value div_inplace_kernel(std::span<const Value> a) {
  if (!a[0].is_tensor()) return binary(BinaryOp::Div, a[0], a[1]);
  return inplace_result("div_", a[0].tensor(), binary(BinaryOp::Div, a[0], a[1]));
}
// clamp_(self, min, max)
Value clamp_inplace_kernel(std::span<const Value> a) {
  return inplace_result("clamp_", a[0].tensor(), Value(clamp(a[0].tensor(), a[1], a[2])));
}

// ---- Kernels with more than a functor ------------------------------------------------------------

// +x: the tensor itself (PyTorch's positive returns its input), refused for bool as PyTorch does.
Value positive_kernel(std::span<const Value> a) {
  if (a[0].is_tensor()) {
    if (a[0].tensor().dtype() == DType::Bool) {
      fail("positive: The `+` operator, on a bool tensor is not supported.");
    }
    return a[0];
  }
  if (a[0].is_int() || a[0].is_double()) return a[0];
  if (a[0].kind() == Value::Kind::Bool) return Value(std::int64_t{a[0].to_bool() ? 1 : 0});
  fail("positive: bad operand type for unary +: " + util::kind_str(a[0]));
}

// ~x and torch.bitwise_not: bool tensors are negated logically, integers bitwise.
Value bitwise_not_kernel(std::span<const Value> a) {
  if (const Tensor* t = a[0].if_tensor(); t && t->defined() && t->dtype() == DType::Bool) {
    return Value(unary_tensor<LogicalNot, Promotion::Bool>(*t));
  }
  return unary_value<BitwiseNot, Promotion::Keep>(a[0]);
}

// pow(self, exponent) for every combination of Tensors and numbers; PyTorch refuses a negative
// integer number as the power of an integer tensor.
Value pow_kernel(std::span<const Value> a) {
  const Value& base = a[0];
  const Value& exponent = a[1];
  if (base.is_tensor() && base.tensor().defined() && !is_floating(base.tensor().dtype()) && exponent.is_int() &&
      exponent.to_int() < 0) {
    fail("pow: Integers to negative integer powers are not allowed.");
  }
  return binary_value<Pow, Promotion::Promote>(base, exponent);
}

// round.decimals(self, *, decimals): x * 10^d rounded half to even, divided back (negative d:
// the other way round), as PyTorch computes it.
Value round_decimals_kernel(std::span<const Value> a) {
  const Tensor& x = a[0].tensor();
  const std::int64_t decimals = a[1].to_int();
  if (decimals == 0) return Value(unary_tensor<Round, Promotion::Keep>(x));
  if (!is_floating(x.dtype())) fail("round: \"round_cpu\" not implemented for '" + std::string(scalar_type_name(x.dtype())) + "'");
  const bool negative = decimals < 0;
  const double ten_pow = std::pow(10.0, static_cast<double>(negative ? -decimals : decimals));
  auto run = [&]<class T>() {
    Tensor src = x.dtype() == compute_dtype(x.dtype()) ? x : x.to(compute_dtype(x.dtype()));
    Tensor y = Tensor::empty(x.shape(), src.dtype());
    const T* px = src.data<T>();
    T* py = y.data<T>();
    const T p = static_cast<T>(ten_pow);
    for (std::int64_t i = 0; i < x.numel(); ++i) {
      py[i] = negative ? std::nearbyint(px[i] / p) * p : std::nearbyint(px[i] * p) / p;
    }
    return y.dtype() == x.dtype() ? y : y.to(x.dtype());
  };
  return Value(x.dtype() == DType::Float64 ? run.operator()<double>() : run.operator()<float>());
}

// nan_to_num(self, nan=None, posinf=None, neginf=None): NaN to 0 by default, infinities to the
// dtype's largest finite values; integer tensors are returned unchanged.
Value nan_to_num_kernel(std::span<const Value> a) {
  const Tensor& x = a[0].tensor();
  if (!is_floating(x.dtype())) return Value(x);
  auto run = [&]<class T>(DType finite_of) {
    // The largest finite value of the tensor's dtype (float16's is 65504).
    const double big = finite_of == DType::Float64   ? std::numeric_limits<double>::max()
                       : finite_of == DType::Float16 ? 65504.0
                       : finite_of == DType::BFloat16 ? 3.3895313892515355e38
                                                      : static_cast<double>(std::numeric_limits<float>::max());
    const T nan = a[1].is_none() ? T(0) : static_cast<T>(a[1].to_double());
    const T posinf = a[2].is_none() ? static_cast<T>(big) : static_cast<T>(a[2].to_double());
    const T neginf = a[3].is_none() ? static_cast<T>(-big) : static_cast<T>(a[3].to_double());
    Tensor src = x.dtype() == compute_dtype(x.dtype()) ? x : x.to(compute_dtype(x.dtype()));
    Tensor y = Tensor::empty(x.shape(), src.dtype());
    const T* px = src.data<T>();
    T* py = y.data<T>();
    for (std::int64_t i = 0; i < x.numel(); ++i) {
      const T v = px[i];
      py[i] = std::isnan(v) ? nan : v == std::numeric_limits<T>::infinity() ? posinf : v == -std::numeric_limits<T>::infinity() ? neginf : v;
    }
    return y.dtype() == x.dtype() ? y : y.to(x.dtype());
  };
  return Value(x.dtype() == DType::Float64 ? run.operator()<double>(DType::Float64) : run.operator()<float>(x.dtype()));
}

// lerp.Scalar(self, end, weight): PyTorch's two-sided formula, exact at both ends.
Value lerp_kernel(std::span<const Value> a) {
  const Tensor& self = a[0].tensor();
  const Tensor& end = a[1].tensor();
  if (self.dtype() != end.dtype()) {
    fail("lerp: expected dtype " + std::string(scalar_type_name(self.dtype())) + " for `end` but got dtype " +
         scalar_type_name(end.dtype()));
  }
  if (!is_floating(self.dtype())) not_implemented("lerp", "lerp_kernel_scalar", self.dtype());
  const double w = a[2].to_double();
  const Value diff = binary(BinaryOp::Sub, a[1], a[0]);
  Value r = w < 0.5 ? binary(BinaryOp::Add, a[0], binary(BinaryOp::Mul, diff, Value(w)))
                    : binary(BinaryOp::Sub, a[1], binary(BinaryOp::Mul, diff, Value(1.0 - w)));
  return r;
}

// A tensor broadcast to `shape` and made contiguous (itself when it has that shape already).
Tensor broadcast_to(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t;
  Tensor out = Tensor::empty(shape, t.dtype());
  auto copy = [&]<class U>() {
    const U none{};
    broadcast_apply<U, U>(t.data<U>(), t.shape(), &none, Shape{}, out.data<U>(), shape, [](U v, U) { return v; });
  };
  switch (element_size(t.dtype())) {
    case 1: copy.operator()<std::uint8_t>(); break;
    case 2: copy.operator()<std::uint16_t>(); break;
    case 4: copy.operator()<std::uint32_t>(); break;
    default: copy.operator()<std::uint64_t>(); break;
  }
  return out;
}

// A Tensor or Python-number operand as a tensor of dtype `dt` (numbers as 0-dim tensors).
Tensor operand_as(const Value& v, DType dt) {
  if (const Tensor* t = v.if_tensor()) return t->dtype() == dt ? *t : t->to(dt);
  if (v.is_int() && !is_floating(dt)) {
    Tensor s = Tensor::empty(Shape{}, DType::Int64);
    s.data<std::int64_t>()[0] = v.to_int();  // exact beyond 2^53
    return dt == DType::Int64 ? s : s.to(dt);
  }
  return Tensor::scalar(number_as<double>(v), dt);
}

// out = cond ? a : b elementwise, all three broadcast to one shape; a and b already of out's dtype.
Tensor select_where(const Tensor& cond, const Tensor& a, const Tensor& b, const char* op) {
  const Shape so = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), op), b.shape(), op);
  const Tensor c = broadcast_to(cond, so), x = broadcast_to(a, so), y = broadcast_to(b, so);
  Tensor out = Tensor::empty(so, a.dtype());
  const bool* pc = c.data<bool>();
  const std::int64_t n = so.numel();
  auto run = [&]<class U>() {
    const U* __restrict px = x.data<U>();
    const U* __restrict py = y.data<U>();
    U* __restrict po = out.data<U>();
    for (std::int64_t i = 0; i < n; ++i) po[i] = pc[i] ? px[i] : py[i];
  };
  switch (element_size(a.dtype())) {
    case 1: run.operator()<std::uint8_t>(); break;
    case 2: run.operator()<std::uint16_t>(); break;
    case 4: run.operator()<std::uint32_t>(); break;
    default: run.operator()<std::uint64_t>(); break;
  }
  return out;
}

// where.self(condition, self, other); self and other may be Python numbers.
Value where_kernel(std::span<const Value> a) {
  const Tensor& cond = a[0].tensor();
  if (cond.dtype() != DType::Bool) {
    fail("where: where expected condition to be a boolean tensor, but got a tensor with dtype " +
         std::string(scalar_type_name(cond.dtype())));
  }
  for (const Value* v : {&a[1], &a[2]}) {
    if (!v->is_tensor() && !is_python_number(*v)) {
      fail("where: argument '" + std::string(v == &a[1] ? "input" : "other") + "' must be a Tensor or a number, got " +
           util::kind_str(*v));
    }
  }
  const DType rt = result_type_of({&a[1], &a[2]});
  return Value(select_where(cond, operand_as(a[1], rt), operand_as(a[2], rt), "where"));
}

// where(condition): the indices of its nonzero elements, one int64 tensor per dimension (a
// 0-dim condition counts as one dimension, as in PyTorch).
Value where_condition_kernel(std::span<const Value> a) {
  const Tensor& cond = a[0].tensor();
  const Tensor indices = nonzero(cond.dim() == 0 ? reshape(cond, std::vector<std::int64_t>{1}) : cond);
  Tuple out;
  for (std::int64_t d = 0; d < indices.shape()[1]; ++d) out.items.emplace_back(select(indices, 1, d));
  return Value(std::move(out));
}

// masked_fill(self, mask, value): self's dtype; the mask broadcasts (and so may self).
Value masked_fill_kernel(std::span<const Value> a) {
  const Tensor& self = a[0].tensor();
  const Tensor& mask = a[1].tensor();
  if (mask.dtype() != DType::Bool) {
    fail("masked_fill: masked_fill_ only supports boolean masks, but got mask with dtype " +
         std::string(scalar_type_name(mask.dtype())));
  }
  const Value& value = a[2];
  if (const Tensor* t = value.if_tensor(); t && t->dim() != 0) {
    fail("masked_fill: masked_fill_ only supports a 0-dimensional value tensor, but got tensor with " +
         std::to_string(t->dim()) + " dimension(s).");
  }
  if (self.dtype() == DType::Bool && !value.is_tensor() && value.kind() != Value::Kind::Bool) {
    // PyTorch converts the number to bool (nonzero is true).
    return Value(select_where(mask, Tensor::scalar(number_as<double>(value) != 0.0 ? 1.0 : 0.0, DType::Bool), self,
                              "masked_fill"));
  }
  return Value(select_where(mask, operand_as(value, self.dtype()), self, "masked_fill"));
}

// masked_fill_: as masked_fill, into self (which does not broadcast).
Value masked_fill_inplace_kernel(std::span<const Value> a) {
  return inplace_result("masked_fill_", a[0].tensor(), masked_fill_kernel(a));
}

// ---- make_fx decompositions -------------------------------------------------------------------

// F.relu is `torch.relu_(input) if inplace else torch.relu(input)`.
Value relu_functional_decomposition(OpRecorder& rec, const OpCall& call) {
  const bool inplace = call.args[1].real.to_bool();
  return rec.record(inplace ? "relu_.default" : "relu.default", {call.args[0].sym});
}

// torch.where(condition) is nonzero_numpy: condition(.unsqueeze(0) when 0-dim).nonzero().unbind(1).
Value where_condition_decomposition(OpRecorder& rec, const OpCall& call) {
  Value cond = call.args[0].sym;
  if (call.args[0].real.tensor().dim() == 0) cond = rec.record("unsqueeze.default", {cond, Value(std::int64_t{0})});
  return rec.record("unbind.int", {rec.record("nonzero.default", {cond}), Value(std::int64_t{1})});
}

// `a / b` with only b a Tensor: Tensor.__rtruediv__ is `b.reciprocal() * a`.
Value rtruediv_decomposition(OpRecorder& rec, const OpCall& call) {
  Value r = rec.record("reciprocal.default", {call.args[1].sym});
  return rec.record("mul.Tensor", {r, call.args[0].sym});
}

// A binary op as make_fx records it: `<op>.Tensor` for two Tensors, `<op>.Scalar` with a
// number second, and with a number first (Python's reflected operator, `0 < x`) the
// `reflected` op's `.Scalar` on the swapped operands (`gt.Scalar(x, 0)`).
Value record_tensor_or_scalar(OpRecorder& rec, const OpCall& call, const std::string& op, const std::string& reflected) {
  const TracedValue& a = call.args[0];
  const TracedValue& b = call.args[1];
  if (!a.real.is_tensor()) return rec.record(reflected + ".Scalar", {b.sym, a.sym});
  if (!b.real.is_tensor()) return rec.record(op + ".Scalar", {a.sym, b.sym});
  return rec.record(op + ".Tensor", {a.sym, b.sym});
}

Value eq_decomposition(OpRecorder& rec, const OpCall& call) { return record_tensor_or_scalar(rec, call, "eq", "eq"); }
Value ne_decomposition(OpRecorder& rec, const OpCall& call) { return record_tensor_or_scalar(rec, call, "ne", "ne"); }
Value lt_decomposition(OpRecorder& rec, const OpCall& call) { return record_tensor_or_scalar(rec, call, "lt", "gt"); }
Value le_decomposition(OpRecorder& rec, const OpCall& call) { return record_tensor_or_scalar(rec, call, "le", "ge"); }
Value gt_decomposition(OpRecorder& rec, const OpCall& call) { return record_tensor_or_scalar(rec, call, "gt", "lt"); }
Value ge_decomposition(OpRecorder& rec, const OpCall& call) { return record_tensor_or_scalar(rec, call, "ge", "le"); }
Value bitwise_and_decomposition(OpRecorder& rec, const OpCall& call) {
  return record_tensor_or_scalar(rec, call, "bitwise_and", "bitwise_and");
}
Value bitwise_or_decomposition(OpRecorder& rec, const OpCall& call) {
  return record_tensor_or_scalar(rec, call, "bitwise_or", "bitwise_or");
}
Value bitwise_xor_decomposition(OpRecorder& rec, const OpCall& call) {
  return record_tensor_or_scalar(rec, call, "bitwise_xor", "bitwise_xor");
}

// `x << 2` is __lshift__.Scalar, `x << y` __lshift__.Tensor; likewise >>.
Value lshift_decomposition(OpRecorder& rec, const OpCall& call) {
  return rec.record(call.args[1].real.is_tensor() ? "__lshift__.Tensor" : "__lshift__.Scalar", {call.args[0].sym, call.args[1].sym});
}
Value rshift_decomposition(OpRecorder& rec, const OpCall& call) {
  return rec.record(call.args[1].real.is_tensor() ? "__rshift__.Tensor" : "__rshift__.Scalar", {call.args[0].sym, call.args[1].sym});
}

// `x % 2` is remainder.Scalar, `5.0 % x` remainder.Scalar_Tensor, two Tensors remainder.Tensor.
Value remainder_decomposition(OpRecorder& rec, const OpCall& call) {
  const TracedValue& a = call.args[0];
  const TracedValue& b = call.args[1];
  if (!a.real.is_tensor()) return rec.record("remainder.Scalar_Tensor", {a.sym, b.sym});
  return rec.record(b.real.is_tensor() ? "remainder.Tensor" : "remainder.Scalar", {a.sym, b.sym});
}

// `x ** 2` is pow.Tensor_Scalar, `2 ** x` pow.Scalar, two Tensors pow.Tensor_Tensor.
Value pow_decomposition(OpRecorder& rec, const OpCall& call) {
  const TracedValue& a = call.args[0];
  const TracedValue& b = call.args[1];
  if (!a.real.is_tensor()) return rec.record("pow.Scalar", {a.sym, b.sym});
  return rec.record(b.real.is_tensor() ? "pow.Tensor_Tensor" : "pow.Tensor_Scalar", {a.sym, b.sym});
}

// torch.square(x) is pow(x, 2).
Value square_decomposition(OpRecorder& rec, const OpCall& call) {
  return rec.record("pow.Tensor_Scalar", {call.args[0].sym, Value(std::int64_t{2})});
}

// +x returns x itself: PyTorch records nothing.
Value positive_decomposition(OpRecorder&, const OpCall& call) { return call.args[0].sym; }

}  // namespace

#include "elementwise_table.inc"

}  // namespace fxpack::ops
