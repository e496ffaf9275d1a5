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

// Bool < UInt8 < Int64 < Float32 < Float64 is a total order for fxpack's five dtypes.
int rank(DType d) {
  switch (d) {
    case DType::Bool: return 0;
    case DType::UInt8: return 1;
    case DType::Int64: return 2;
    case DType::Float32: return 3;
    case DType::Float64: return 4;
  }
  return 0;
}
DType promote(DType a, DType b) { return rank(a) >= rank(b) ? a : b; }

struct PromoState {
  std::optional<DType> dim, zero, wrapped;
};

void update(PromoState& s, const Value& v) {
  if (const Tensor* t = std::get_if<Tensor>(&v.variant())) {
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
  return std::get<Tensor>(std::move(r.variant()));
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
  const auto* mode = std::get_if<std::string>(&rounding_mode.variant());
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
  return std::get<Tensor>(std::move(r.variant()));
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

// ---- make_fx decompositions -------------------------------------------------------------------

// F.relu is `torch.relu_(input) if inplace else torch.relu(input)`.
Value relu_functional_decomposition(OpRecorder& rec, const OpCall& call) {
  const bool inplace = call.args[1].real.to_bool();
  return rec.record(inplace ? "relu_.default" : "relu.default", {call.args[0].sym});
}

// `a / b` with only b a Tensor: Tensor.__rtruediv__ is `b.reciprocal() * a`.
Value rtruediv_decomposition(OpRecorder& rec, const OpCall& call) {
  Value r = rec.record("reciprocal.default", {call.args[1].sym});
  return rec.record("mul.Tensor", {r, call.args[0].sym});
}

}  // namespace

#include "elementwise_table.inc"

}  // namespace fxpack::ops
