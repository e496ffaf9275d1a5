// Elementwise kernels: unary math, binary arithmetic with broadcasting and PyTorch's type
// promotion, Python-number arithmetic, clamp. Large contiguous float32 operands run on
// oneDNN's eltwise and binary primitives, vectorised for the CPU at run time.
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>

#include "builtin_ops.hpp"
#include "dnnl/dnnl_kernels.hpp"
#include "kernels.hpp"
#include "util.hpp"

namespace fxpack::ops {

using util::fail;

const char* op_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::Sin: return "sin";
    case UnaryOp::Cos: return "cos";
    case UnaryOp::Exp: return "exp";
    case UnaryOp::Tanh: return "tanh";
    case UnaryOp::Sigmoid: return "sigmoid";
    case UnaryOp::Relu: return "relu";
    case UnaryOp::Neg: return "neg";
    case UnaryOp::Abs: return "abs";
  }
  return "unary";
}

const char* op_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return "add";
    case BinaryOp::Sub: return "sub";
    case BinaryOp::Mul: return "mul";
    case BinaryOp::Div: return "div";
    case BinaryOp::Maximum: return "maximum";
    case BinaryOp::Minimum: return "minimum";
  }
  return "binary";
}

namespace {

// ---------------------------------------------------------------------------------------
// Unary

constexpr std::int64_t kEigenThreshold = 64;

template <class T>
void unary_loop(UnaryOp op, const T* x, T* y, std::int64_t n) {
  switch (op) {
    case UnaryOp::Sin:
      for (std::int64_t i = 0; i < n; ++i) y[i] = std::sin(x[i]);
      break;
    case UnaryOp::Cos:
      for (std::int64_t i = 0; i < n; ++i) y[i] = std::cos(x[i]);
      break;
    case UnaryOp::Exp:
      for (std::int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
      break;
    case UnaryOp::Tanh:
      for (std::int64_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
      break;
    case UnaryOp::Sigmoid:
      for (std::int64_t i = 0; i < n; ++i) y[i] = T(1) / (T(1) + std::exp(-x[i]));
      break;
    case UnaryOp::Relu:
      for (std::int64_t i = 0; i < n; ++i) y[i] = x[i] < T(0) ? T(0) : x[i];  // NaN stays NaN
      break;
    case UnaryOp::Neg:
      if constexpr (std::is_same_v<T, std::uint8_t>) {
        for (std::int64_t i = 0; i < n; ++i) y[i] = static_cast<std::uint8_t>(256 - x[i]);
      } else if constexpr (std::is_same_v<T, std::int64_t>) {
        for (std::int64_t i = 0; i < n; ++i)
          y[i] = static_cast<std::int64_t>(0ull - static_cast<std::uint64_t>(x[i]));
      } else {
        for (std::int64_t i = 0; i < n; ++i) y[i] = -x[i];
      }
      break;
    case UnaryOp::Abs:
      if constexpr (std::is_same_v<T, std::uint8_t>) {
        for (std::int64_t i = 0; i < n; ++i) y[i] = x[i];
      } else if constexpr (std::is_same_v<T, std::int64_t>) {
        for (std::int64_t i = 0; i < n; ++i)
          y[i] = x[i] < 0 ? static_cast<std::int64_t>(0ull - static_cast<std::uint64_t>(x[i])) : x[i];
      } else {
        for (std::int64_t i = 0; i < n; ++i) y[i] = std::abs(x[i]);
      }
      break;
  }
}

template <class T>
bool unary_eigen(UnaryOp op, const T* x, T* y, std::int64_t n) {
  using A = Eigen::Array<T, Eigen::Dynamic, 1>;
  Eigen::Map<const A> in(x, n);
  Eigen::Map<A> out(y, n);
  switch (op) {
    case UnaryOp::Sin: out = in.sin(); return true;
    case UnaryOp::Cos: out = in.cos(); return true;
    case UnaryOp::Exp: out = in.exp(); return true;
    case UnaryOp::Tanh: out = in.tanh(); return true;
    default: return false;
  }
}

// oneDNN's form of a unary op, where its results are PyTorch's (NaN in, NaN out).
std::optional<dnnl_backend::Eltwise> dnnl_eltwise(UnaryOp op) {
  using dnnl::algorithm;
  switch (op) {
    case UnaryOp::Tanh: return dnnl_backend::Eltwise{algorithm::eltwise_tanh};
    case UnaryOp::Sigmoid: return dnnl_backend::Eltwise{algorithm::eltwise_logistic};
    case UnaryOp::Abs: return dnnl_backend::Eltwise{algorithm::eltwise_abs};
    case UnaryOp::Neg: return dnnl_backend::Eltwise{algorithm::eltwise_linear, -1.f, 0.f};
    default: return std::nullopt;  // sin, cos: no primitive; relu and exp: oneDNN's lose NaN
  }
}

bool is_float_op(UnaryOp op) {
  return op == UnaryOp::Sin || op == UnaryOp::Cos || op == UnaryOp::Exp || op == UnaryOp::Tanh ||
         op == UnaryOp::Sigmoid;
}

}  // namespace

Tensor unary(UnaryOp op, const Tensor& xin) {
  if (!xin.defined()) fail(std::string(op_name(op)) + ": undefined tensor");
  const DType dt = xin.dtype();
  if (dt == DType::Bool && !is_float_op(op)) {
    if (op == UnaryOp::Neg) {
      fail("neg: Negation, the `-` operator, on a bool tensor is not supported. If you are "
           "trying to invert a mask, use the `~` or `logical_not()` operator instead.");
    }
    fail(std::string(op_name(op)) + ": not implemented for bool tensors");
  }
  const Tensor x = (is_float_op(op) && !is_floating(dt)) ? xin.to(DType::Float32) : xin;
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  const std::int64_t n = x.numel();
  if (x.dtype() == DType::Float32 && dnnl_backend::worth_it(n)) {
    if (auto e = dnnl_eltwise(op)) {
      dnnl_backend::eltwise(x, *e, y);
      return y;
    }
  }
  switch (x.dtype()) {
    case DType::Float32:
      if (n < kEigenThreshold || !unary_eigen(op, x.data<float>(), y.data<float>(), n))
        unary_loop(op, x.data<float>(), y.data<float>(), n);
      break;
    case DType::Float64:
      if (n < kEigenThreshold || !unary_eigen(op, x.data<double>(), y.data<double>(), n))
        unary_loop(op, x.data<double>(), y.data<double>(), n);
      break;
    case DType::Int64: unary_loop(op, x.data<std::int64_t>(), y.data<std::int64_t>(), n); break;
    case DType::UInt8: unary_loop(op, x.data<std::uint8_t>(), y.data<std::uint8_t>(), n); break;
    case DType::Bool: fail(std::string(op_name(op)) + ": not implemented for bool tensors");
    default: fail(std::string(op_name(op)) + ": not implemented for " + std::string(dtype_name(x.dtype())) + " tensors");
  }
  return y;
}

Tensor relu(const Tensor& x) { return unary(UnaryOp::Relu, x); }

// ---------------------------------------------------------------------------------------
// Type promotion

namespace {

// Bool < UInt8 < Int64 < Float32 < Float64 is a total order for fxpack's five dtypes.
int rank(DType d) {
  switch (d) {
    case DType::Bool: return 0;
    case DType::UInt8: return 1;
    case DType::Int64: return 2;
    case DType::Float32: return 3;
    case DType::Float64: return 4;
    default: fail(std::string("type promotion: not implemented for ") + std::string(dtype_name(d)) + " tensors");
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

DType result_type_of(std::initializer_list<const Value*> values) {
  PromoState s;
  for (const Value* v : values) update(s, *v);
  auto r = combine(s.dim, combine(s.zero, s.wrapped));
  return r ? *r : DType::Float32;
}

bool is_number(const Value& v) {
  return v.kind() == Value::Kind::Int || v.kind() == Value::Kind::Double ||
         v.kind() == Value::Kind::Bool;
}

}  // namespace

DType result_type(const Value& a, const Value& b) {
  if (!(a.is_tensor() || is_number(a)) || !(b.is_tensor() || is_number(b))) {
    fail("result_type: unsupported operand types " + util::kind_str(a) + " and " +
         util::kind_str(b));
  }
  return result_type_of({&a, &b});
}

// ---------------------------------------------------------------------------------------
// Binary

namespace {

enum class Bop : std::uint8_t { Add, Sub, Mul, Div, Maximum, Minimum, DivTrunc, DivFloor };

const char* bop_name(Bop op) {
  switch (op) {
    case Bop::Add: return "add";
    case Bop::Sub: return "sub";
    case Bop::Mul: return "mul";
    case Bop::Div:
    case Bop::DivTrunc:
    case Bop::DivFloor: return "div";
    case Bop::Maximum: return "maximum";
    case Bop::Minimum: return "minimum";
  }
  return "binary";
}

Bop to_bop(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return Bop::Add;
    case BinaryOp::Sub: return Bop::Sub;
    case BinaryOp::Mul: return Bop::Mul;
    case BinaryOp::Div: return Bop::Div;
    case BinaryOp::Maximum: return Bop::Maximum;
    case BinaryOp::Minimum: return Bop::Minimum;
  }
  return Bop::Add;
}

dnnl::algorithm dnnl_binary(Bop op) {
  switch (op) {
    case Bop::Sub: return dnnl::algorithm::binary_sub;
    case Bop::Mul: return dnnl::algorithm::binary_mul;
    case Bop::Div: return dnnl::algorithm::binary_div;
    default: return dnnl::algorithm::binary_add;
  }
}

template <class T>
struct OpAdd {
  T operator()(T a, T b) const {
    if constexpr (std::is_integral_v<T>)
      return static_cast<T>(static_cast<std::uint64_t>(a) + static_cast<std::uint64_t>(b));
    else
      return a + b;
  }
};
template <class T>
struct OpSub {
  T operator()(T a, T b) const {
    if constexpr (std::is_integral_v<T>)
      return static_cast<T>(static_cast<std::uint64_t>(a) - static_cast<std::uint64_t>(b));
    else
      return a - b;
  }
};
template <class T>
struct OpMul {
  T operator()(T a, T b) const {
    if constexpr (std::is_integral_v<T>)
      return static_cast<T>(static_cast<std::uint64_t>(a) * static_cast<std::uint64_t>(b));
    else
      return a * b;
  }
};
template <class T>
struct OpDiv {
  T operator()(T a, T b) const {
    if constexpr (std::is_integral_v<T>) {
      if (b == 0) fail("div: ZeroDivisionError (integer division by zero)");
      if (b == -1) return static_cast<T>(0ull - static_cast<std::uint64_t>(a));
      return a / b;
    } else {
      return a / b;
    }
  }
};
template <class T>
struct OpDivTrunc {
  T operator()(T a, T b) const {
    if constexpr (std::is_integral_v<T>) return OpDiv<T>{}(a, b);
    else return std::trunc(a / b);
  }
};
template <class T>
struct OpDivFloor {
  T operator()(T a, T b) const {
    if constexpr (std::is_integral_v<T>) {
      T q = OpDiv<T>{}(a, b);
      if (b != -1 && (a % b != 0) && ((a < 0) != (b < 0))) --q;
      return q;
    } else {
      return std::floor(a / b);
    }
  }
};
template <class T>
struct OpMax {
  T operator()(T a, T b) const {
    if constexpr (std::is_floating_point_v<T>) {
      if (std::isnan(a)) return a;
      if (std::isnan(b)) return b;
    }
    return a < b ? b : a;
  }
};
template <class T>
struct OpMin {
  T operator()(T a, T b) const {
    if constexpr (std::is_floating_point_v<T>) {
      if (std::isnan(a)) return a;
      if (std::isnan(b)) return b;
    }
    return b < a ? b : a;
  }
};

// out[i] = f(a[ia], b[ib]) over the broadcast shape `so`; sa/sb are the operand shapes
// (right-aligned, size-1 or missing dims broadcast).
template <class T, class F>
void broadcast_apply(const T* a, const Shape& sa, const T* b, const Shape& sb, T* out,
                     const Shape& so, F f) {
  const std::size_t nd = so.size();
  const std::int64_t n = so.numel();
  if (n == 0) return;
  if (nd == 0) {
    out[0] = f(a[0], b[0]);
    return;
  }
  std::int64_t st_a[Shape::kMaxDims], st_b[Shape::kMaxDims];
  {
    std::int64_t s = 1;
    for (std::size_t i = nd; i-- > 0;) {
      const std::size_t k = nd - i;  // position from the end (1-based)
      if (k <= sa.size() && sa[sa.size() - k] != 1) {
        st_a[i] = s;
        s *= sa[sa.size() - k];
      } else {
        st_a[i] = 0;
      }
    }
    s = 1;
    for (std::size_t i = nd; i-- > 0;) {
      const std::size_t k = nd - i;
      if (k <= sb.size() && sb[sb.size() - k] != 1) {
        st_b[i] = s;
        s *= sb[sb.size() - k];
      } else {
        st_b[i] = 0;
      }
    }
  }
  const std::int64_t inner = so[nd - 1];
  const std::int64_t ia = st_a[nd - 1], ib = st_b[nd - 1];
  const std::int64_t outer = n / inner;
  std::int64_t idx[Shape::kMaxDims] = {};
  std::int64_t off_a = 0, off_b = 0;
  T* o = out;
  for (std::int64_t r = 0; r < outer; ++r) {
    const T* pa = a + off_a;
    const T* pb = b + off_b;
    if (ia == 1 && ib == 1) {
      for (std::int64_t j = 0; j < inner; ++j) o[j] = f(pa[j], pb[j]);
    } else if (ia == 1 && ib == 0) {
      const T vb = pb[0];
      for (std::int64_t j = 0; j < inner; ++j) o[j] = f(pa[j], vb);
    } else if (ia == 0 && ib == 1) {
      const T va = pa[0];
      for (std::int64_t j = 0; j < inner; ++j) o[j] = f(va, pb[j]);
    } else {
      for (std::int64_t j = 0; j < inner; ++j) o[j] = f(pa[j * ia], pb[j * ib]);
    }
    o += inner;
    for (std::size_t d = nd - 1; d-- > 0;) {
      off_a += st_a[d];
      off_b += st_b[d];
      if (++idx[d] < so[d]) break;
      off_a -= st_a[d] * so[d];
      off_b -= st_b[d] * so[d];
      idx[d] = 0;
    }
  }
}

template <class T>
void dispatch_apply(Bop op, const T* a, const Shape& sa, const T* b, const Shape& sb, T* out,
                    const Shape& so) {
  switch (op) {
    case Bop::Add: broadcast_apply(a, sa, b, sb, out, so, OpAdd<T>{}); break;
    case Bop::Sub: broadcast_apply(a, sa, b, sb, out, so, OpSub<T>{}); break;
    case Bop::Mul: broadcast_apply(a, sa, b, sb, out, so, OpMul<T>{}); break;
    case Bop::Div: broadcast_apply(a, sa, b, sb, out, so, OpDiv<T>{}); break;
    case Bop::DivTrunc: broadcast_apply(a, sa, b, sb, out, so, OpDivTrunc<T>{}); break;
    case Bop::DivFloor: broadcast_apply(a, sa, b, sb, out, so, OpDivFloor<T>{}); break;
    case Bop::Maximum: broadcast_apply(a, sa, b, sb, out, so, OpMax<T>{}); break;
    case Bop::Minimum: broadcast_apply(a, sa, b, sb, out, so, OpMin<T>{}); break;
  }
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const std::size_t nd = std::max(a.size(), b.size());
  Shape out;
  for (std::size_t i = 0; i < nd; ++i) {
    const std::size_t k = nd - i;  // from the end
    const std::int64_t da = k <= a.size() ? a[a.size() - k] : 1;
    const std::int64_t db = k <= b.size() ? b[b.size() - k] : 1;
    if (da != db && da != 1 && db != 1) {
      fail(std::string(op) + ": shapes " + a.to_string() + " and " + b.to_string() +
           " cannot be broadcast (size " + std::to_string(da) + " vs " + std::to_string(db) +
           " at dimension " + std::to_string(i) + " of the result)");
    }
    out.push_back(da == 1 ? db : da);
  }
  return out;
}

DType compute_dtype(DType r) {
  return is_floating(r) ? r : DType::Int64;
}

// A number operand as a 0-d "tensor" of T on the stack.
template <class T>
T scalar_as(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Bool: return static_cast<T>(std::get<bool>(v.variant()) ? 1 : 0);
    case Value::Kind::Int: return static_cast<T>(std::get<std::int64_t>(v.variant()));
    case Value::Kind::Double: {
      const double d = std::get<double>(v.variant());
      if constexpr (std::is_integral_v<T>) {
        if (!(d >= -9.2e18 && d <= 9.2e18)) return std::numeric_limits<T>::min();
      }
      return static_cast<T>(d);
    }
    default: return T(0);
  }
}

template <class T>
Tensor binary_typed(Bop op, const Value& a, const Value& b, DType cd) {
  Tensor ta, tb;
  T sa{}, sb{};
  const T* pa;
  const T* pb;
  Shape shape_a, shape_b;
  if (const Tensor* t = std::get_if<Tensor>(&a.variant())) {
    ta = t->dtype() == cd ? *t : t->to(cd);
    pa = ta.data<T>();
    shape_a = ta.shape();
  } else {
    sa = scalar_as<T>(a);
    pa = &sa;
  }
  if (const Tensor* t = std::get_if<Tensor>(&b.variant())) {
    tb = t->dtype() == cd ? *t : t->to(cd);
    pb = tb.data<T>();
    shape_b = tb.shape();
  } else {
    sb = scalar_as<T>(b);
    pb = &sb;
  }
  const Shape so = (shape_a == shape_b) ? shape_a : broadcast_shapes(shape_a, shape_b, bop_name(op));
  Tensor out = Tensor::empty(so, cd);
  dispatch_apply<T>(op, pa, shape_a, pb, shape_b, out.data<T>(), so);
  return out;
}

// Python arithmetic on two numbers.
Value number_binary(Bop op, const Value& a, const Value& b) {
  const bool both_int = a.kind() != Value::Kind::Double && b.kind() != Value::Kind::Double;
  const char* name = bop_name(op);
  if (both_int && op != Bop::Div) {
    const std::int64_t x = scalar_as<std::int64_t>(a), y = scalar_as<std::int64_t>(b);
    std::int64_t r = 0;
    bool overflow = false;
    switch (op) {
      case Bop::Add: overflow = __builtin_add_overflow(x, y, &r); break;
      case Bop::Sub: overflow = __builtin_sub_overflow(x, y, &r); break;
      case Bop::Mul: overflow = __builtin_mul_overflow(x, y, &r); break;
      case Bop::Maximum: r = std::max(x, y); break;
      case Bop::Minimum: r = std::min(x, y); break;
      case Bop::DivTrunc:
      case Bop::DivFloor:
        if (y == 0) fail(std::string(name) + ": ZeroDivisionError: integer division by zero");
        if (x == std::numeric_limits<std::int64_t>::min() && y == -1) {
          overflow = true;
          break;
        }
        r = op == Bop::DivTrunc ? OpDivTrunc<std::int64_t>{}(x, y) : OpDivFloor<std::int64_t>{}(x, y);
        break;
      case Bop::Div: break;
    }
    if (overflow) fail(std::string(name) + ": integer overflow");
    return Value(r);
  }
  const double x = scalar_as<double>(a), y = scalar_as<double>(b);
  switch (op) {
    case Bop::Add: return Value(x + y);
    case Bop::Sub: return Value(x - y);
    case Bop::Mul: return Value(x * y);
    case Bop::Div:
      if (y == 0.0) fail(std::string(name) + ": ZeroDivisionError: division by zero");
      return Value(x / y);
    case Bop::DivTrunc:
      if (y == 0.0) fail(std::string(name) + ": ZeroDivisionError: division by zero");
      return Value(std::trunc(x / y));
    case Bop::DivFloor:
      if (y == 0.0) fail(std::string(name) + ": ZeroDivisionError: division by zero");
      return Value(std::floor(x / y));
    case Bop::Maximum: return Value(OpMax<double>{}(x, y));
    case Bop::Minimum: return Value(OpMin<double>{}(x, y));
  }
  return Value();
}

Value binary_impl(Bop op, const Value& a, const Value& b) {
  const Tensor* ta = std::get_if<Tensor>(&a.variant());
  const Tensor* tb = std::get_if<Tensor>(&b.variant());
  // Fast path: float32 tensors of one shape, or a float32 tensor and a Python number.
  if (ta && tb) {
    if (ta->dtype() == DType::Float32 && tb->dtype() == DType::Float32 &&
        ta->shape() == tb->shape() && op <= Bop::Div && ta->defined() && tb->defined()) {
      Tensor out = Tensor::empty(ta->shape(), DType::Float32);
      if (dnnl_backend::worth_it(ta->numel())) {
        const dnnl_backend::Dims dims{ta->numel()};
        dnnl_backend::binary(dnnl_binary(op), ta->data<float>(), dims, tb->data<float>(), dims, out.data<float>());
        return Value(std::move(out));
      }
      const float* x = ta->data<float>();
      const float* y = tb->data<float>();
      float* z = out.data<float>();
      const std::int64_t n = ta->numel();
      switch (op) {
        case Bop::Add: for (std::int64_t i = 0; i < n; ++i) z[i] = x[i] + y[i]; break;
        case Bop::Sub: for (std::int64_t i = 0; i < n; ++i) z[i] = x[i] - y[i]; break;
        case Bop::Mul: for (std::int64_t i = 0; i < n; ++i) z[i] = x[i] * y[i]; break;
        default: for (std::int64_t i = 0; i < n; ++i) z[i] = x[i] / y[i]; break;
      }
      return Value(std::move(out));
    }
  }
  // Fast path: a float32 tensor and a Python number (the result is float32 whatever the number).
  if (op <= Bop::Div && a.kind() != Value::Kind::Bool && b.kind() != Value::Kind::Bool &&
      ((ta && ta->dtype() == DType::Float32 && is_number(b)) ||
       (tb && tb->dtype() == DType::Float32 && is_number(a)))) {
    const Tensor& t = ta ? *ta : *tb;
    if (t.defined()) {
      const float s = scalar_as<float>(ta ? b : a);
      Tensor out = Tensor::empty(t.shape(), DType::Float32);
      if (dnnl_backend::worth_it(t.numel()) && (ta || op == Bop::Add || op == Bop::Mul)) {
        // The number as a broadcast one-element operand (tensor (op) number, or a commuting op).
        dnnl_backend::binary(dnnl_binary(op), t.data<float>(), {t.numel()}, &s, {1}, out.data<float>());
        return Value(std::move(out));
      }
      const float* x = t.data<float>();
      float* z = out.data<float>();
      const std::int64_t n = t.numel();
      switch (op) {
        case Bop::Add: for (std::int64_t i = 0; i < n; ++i) z[i] = x[i] + s; break;
        case Bop::Mul: for (std::int64_t i = 0; i < n; ++i) z[i] = x[i] * s; break;
        case Bop::Sub:
          if (ta) for (std::int64_t i = 0; i < n; ++i) z[i] = x[i] - s;
          else for (std::int64_t i = 0; i < n; ++i) z[i] = s - x[i];
          break;
        default:
          if (ta) for (std::int64_t i = 0; i < n; ++i) z[i] = x[i] / s;
          else for (std::int64_t i = 0; i < n; ++i) z[i] = s / x[i];
          break;
      }
      return Value(std::move(out));
    }
  }
  if (!ta && !tb) {
    if (is_number(a) && is_number(b)) return number_binary(op, a, b);
    if (op == Bop::Add && a.kind() == Value::Kind::List && b.kind() == Value::Kind::List) {
      List r = std::get<List>(a.variant());
      const auto& more = std::get<List>(b.variant()).items;
      r.items.insert(r.items.end(), more.begin(), more.end());
      return Value(std::move(r));
    }
    if (op == Bop::Add && a.kind() == Value::Kind::Tuple && b.kind() == Value::Kind::Tuple) {
      Tuple r = std::get<Tuple>(a.variant());
      const auto& more = std::get<Tuple>(b.variant()).items;
      r.items.insert(r.items.end(), more.begin(), more.end());
      return Value(std::move(r));
    }
  }
  if (!(ta || is_number(a)) || !(tb || is_number(b))) {
    fail(std::string(bop_name(op)) + ": unsupported operand types " + util::kind_str(a) +
         " and " + util::kind_str(b));
  }
  if ((ta && !ta->defined()) || (tb && !tb->defined())) {
    fail(std::string(bop_name(op)) + ": undefined tensor operand");
  }
  DType rt = result_type_of({&a, &b});
  if (op == Bop::Sub) {
    const bool bool_a = ta ? ta->dtype() == DType::Bool : a.kind() == Value::Kind::Bool;
    const bool bool_b = tb ? tb->dtype() == DType::Bool : b.kind() == Value::Kind::Bool;
    if (bool_a && bool_b) {
      fail("sub: Subtraction, the `-` operator, with two bool tensors is not supported. Use the "
           "`^` or `logical_xor()` operator instead.");
    }
    if (bool_a || bool_b) {
      fail("sub: Subtraction, the `-` operator, with a bool tensor is not supported. If you are "
           "trying to invert a mask, use the `~` or `logical_not()` operator instead.");
    }
  }
  if (op == Bop::Div && !is_floating(rt)) rt = DType::Float32;  // true division
  const DType cd = compute_dtype(rt);
  Tensor out;
  switch (cd) {
    case DType::Float32: out = binary_typed<float>(op, a, b, cd); break;
    case DType::Float64: out = binary_typed<double>(op, a, b, cd); break;
    default: out = binary_typed<std::int64_t>(op, a, b, DType::Int64); break;
  }
  if (out.dtype() != rt) out = out.to(rt);
  return Value(std::move(out));
}

bool is_one(const Value& v) {
  if (v.kind() == Value::Kind::Int) return std::get<std::int64_t>(v.variant()) == 1;
  if (v.kind() == Value::Kind::Double) return std::get<double>(v.variant()) == 1.0;
  if (v.kind() == Value::Kind::Bool) return std::get<bool>(v.variant());
  return v.is_none();
}

}  // namespace

Value binary(BinaryOp op, const Value& a, const Value& b) { return binary_impl(to_bop(op), a, b); }

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  Value r = binary_impl(to_bop(op), Value(a), Value(b));
  return std::get<Tensor>(std::move(r.variant()));
}

Value add(const Value& a, const Value& b, const Value& alpha) {
  if (is_one(alpha)) return binary_impl(Bop::Add, a, b);
  if (!is_number(alpha)) fail("add: argument 'alpha' must be a number, got " + util::kind_str(alpha));
  return binary_impl(Bop::Add, a, binary_impl(Bop::Mul, b, alpha));
}

Value sub(const Value& a, const Value& b, const Value& alpha) {
  if (is_one(alpha)) return binary_impl(Bop::Sub, a, b);
  if (!is_number(alpha)) fail("sub: argument 'alpha' must be a number, got " + util::kind_str(alpha));
  return binary_impl(Bop::Sub, a, binary_impl(Bop::Mul, b, alpha));
}

Value mul(const Value& a, const Value& b) { return binary_impl(Bop::Mul, a, b); }

Value div(const Value& a, const Value& b, const Value& rounding_mode) {
  if (rounding_mode.is_none()) return binary_impl(Bop::Div, a, b);
  const auto* mode = std::get_if<std::string>(&rounding_mode.variant());
  if (mode && *mode == "trunc") return binary_impl(Bop::DivTrunc, a, b);
  if (mode && *mode == "floor") return binary_impl(Bop::DivFloor, a, b);
  fail("div: expected rounding_mode to be one of None, 'trunc', or 'floor' but found " +
       (mode ? "'" + *mode + "'" : util::kind_str(rounding_mode)));
}

Tensor clamp(const Tensor& x, const Value& min, const Value& max) {
  if (!x.defined()) fail("clamp: undefined tensor");
  if (min.is_none() && max.is_none()) {
    fail("clamp: At least one of 'min' or 'max' must not be None");
  }
  for (const Value* v : {&min, &max}) {
    if (!v->is_none() && !v->is_tensor() && !is_number(*v)) {
      fail("clamp: argument '" + std::string(v == &min ? "min" : "max") +
           "' must be a number, a Tensor or None, got " + util::kind_str(*v));
    }
  }
  if (x.dtype() == DType::Bool) fail("clamp: not implemented for bool tensors");
  Value r{x};
  if (!min.is_none()) r = binary_impl(Bop::Maximum, r, min);
  if (!max.is_none()) r = binary_impl(Bop::Minimum, r, max);
  return std::get<Tensor>(std::move(r.variant()));
}

// ---------------------------------------------------------------------------------------
// Registration

namespace {

using util::def;
using util::kw;
using util::p;

template <UnaryOp OP>
Value k_unary(std::span<const Value> a) {
  return Value(unary(OP, util::tensor_arg(a, 0, op_name(OP), "input")));
}

Value k_neg_any(std::span<const Value> a) {
  if (a.empty()) fail("neg: missing operand");
  const Value& v = a[0];
  if (v.kind() == Value::Kind::Int) {
    const std::int64_t i = std::get<std::int64_t>(v.variant());
    if (i == std::numeric_limits<std::int64_t>::min()) fail("neg: integer overflow");
    return Value(-i);
  }
  if (v.kind() == Value::Kind::Double) return Value(-std::get<double>(v.variant()));
  if (v.kind() == Value::Kind::Bool) return Value(std::int64_t{std::get<bool>(v.variant()) ? -1 : 0});
  return Value(unary(UnaryOp::Neg, util::tensor_arg(a, 0, "neg", "a")));
}

template <Bop OP>
Value k_operator(std::span<const Value> a) {
  if (a.size() < 2) fail(std::string(bop_name(OP)) + ": expected two operands");
  return binary_impl(OP, a[0], a[1]);
}

Value k_add(std::span<const Value> a) { return add(a[0], a[1], a[2]); }
Value k_sub(std::span<const Value> a) { return sub(a[0], a[1], a[2]); }
Value k_mul(std::span<const Value> a) { return mul(a[0], a[1]); }
Value k_div(std::span<const Value> a) { return div(a[0], a[1], a[2]); }

Value k_clamp(std::span<const Value> a) {
  return Value(clamp(util::tensor_arg(a, 0, "clamp", "input"), a[1], a[2]));
}

void reg_both(OpRegistry& r, const char* fn, const char* method, const char* name,
              std::vector<Param> rest, KernelFn k) {
  std::vector<Param> fp{p("input")};
  std::vector<Param> mp{p("self")};
  fp.insert(fp.end(), rest.begin(), rest.end());
  mp.insert(mp.end(), rest.begin(), rest.end());
  if (fn) r.add_function(fn, def(name, std::move(fp), k));
  if (method) r.add_method(method, def(name, std::move(mp), k));
}

}  // namespace

void register_elementwise_ops(OpRegistry& r) {
  reg_both(r, "torch.sin", "sin", "sin", {}, &k_unary<UnaryOp::Sin>);
  reg_both(r, "torch.cos", "cos", "cos", {}, &k_unary<UnaryOp::Cos>);
  reg_both(r, "torch.exp", "exp", "exp", {}, &k_unary<UnaryOp::Exp>);
  reg_both(r, "torch.tanh", "tanh", "tanh", {}, &k_unary<UnaryOp::Tanh>);
  reg_both(r, "torch.sigmoid", "sigmoid", "sigmoid", {}, &k_unary<UnaryOp::Sigmoid>);
  reg_both(r, "torch.relu", "relu", "relu", {}, &k_unary<UnaryOp::Relu>);
  reg_both(r, "torch.neg", "neg", "neg", {}, &k_unary<UnaryOp::Neg>);
  reg_both(r, "torch.abs", "abs", "abs", {}, &k_unary<UnaryOp::Abs>);
  r.add_function("torch.nn.functional.relu",
                 def("relu", {p("input"), p("inplace", Value(false))}, &k_unary<UnaryOp::Relu>));
  reg_both(r, "torch.clamp", "clamp", "clamp", {p("min", Value()), p("max", Value())}, &k_clamp);

  reg_both(r, "torch.add", "add", "add", {p("other"), kw("alpha", Value(std::int64_t{1}))}, &k_add);
  reg_both(r, "torch.sub", "sub", "sub", {p("other"), kw("alpha", Value(std::int64_t{1}))}, &k_sub);
  reg_both(r, "torch.mul", "mul", "mul", {p("other")}, &k_mul);
  reg_both(r, "torch.div", "div", "div", {p("other"), kw("rounding_mode", Value())}, &k_div);

  r.add_function("operator.add", def("add", {p("a"), p("b")}, &k_operator<Bop::Add>));
  r.add_function("operator.sub", def("sub", {p("a"), p("b")}, &k_operator<Bop::Sub>));
  r.add_function("operator.mul", def("mul", {p("a"), p("b")}, &k_operator<Bop::Mul>));
  r.add_function("operator.truediv", def("truediv", {p("a"), p("b")}, &k_operator<Bop::Div>));
  r.add_function("operator.neg", def("neg", {p("a")}, &k_neg_any));
}

}  // namespace fxpack::ops
