// The generic elementwise driver: an op's scalar function is written once, as a functor, and
// this driver runs it — over contiguous data with PyTorch's type promotion, over broadcast
// operands for binary functors, and in place on the blocks of compile's fused chains.
// docs/design.md §5.7 says what a functor may define. Internal to src/ops (the op table's
// generated code instantiates elementwise_kernel and elementwise_functor per functor).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <type_traits>

#include "dnnl/dnnl_kernels.hpp"
#include "fxpack/ops.hpp"
#include "fxpack/tensor.hpp"
#include "fxpack/value.hpp"
#include "util.hpp"

namespace fxpack::ops {

// Elements per block of a fused chain (compile): 8 KiB of float32 (16 of float64) stays in
// L1 while every op of the chain runs on it, and each step is one call per block. Loops over
// exactly this many elements vectorise at -O2.
inline constexpr std::int64_t kElementwiseBlock = 2048;

// With g++ on x86-64 the block functions are also built for AVX-512 (x86-64-v4) and AVX2
// (x86-64-v3) and picked at run time; per element every version computes the same IEEE
// operations, so results do not depend on the machine.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__gnu_linux__)
#define FXPACK_BLOCK_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FXPACK_BLOCK_CLONES
#endif

// ---- Type promotion ---------------------------------------------------------------------

// PyTorch's result_type for Tensors and Python numbers: dimensioned tensors > zero-dim
// tensors > numbers, and a higher category (bool < integer < floating) always wins.
DType result_type_of(std::initializer_list<const Value*> values);

inline bool is_python_number(const Value& v) {
  return v.is_int() || v.is_double() || v.kind() == Value::Kind::Bool;
}

// A Python number as an element of type T.
template <class T>
T number_as(const Value& v) {
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

// ---- Functor traits -----------------------------------------------------------------------

template <class F>
concept BinaryFunctor = requires(F f) { f(1.0, 1.0); };
template <class F>
concept UnaryFunctor = !BinaryFunctor<F> && requires(F f) { f(1.0); };

template <class F, class T>
concept HasApply = requires(const T* x, T* y, std::int64_t n) { F::apply(x, y, n); };

// The result element of F on T: bool for predicates, T otherwise.
template <class F, class T>
using UnaryResult = std::conditional_t<std::is_same_v<decltype(F{}(T{})), bool>, bool, T>;
template <class F, class T>
using BinaryResult = std::conditional_t<std::is_same_v<decltype(F{}(T{}, T{})), bool>, bool, T>;
// Whether F is a predicate (its result dtype is bool).
template <class F>
constexpr bool is_predicate() {
  if constexpr (BinaryFunctor<F>) return std::is_same_v<decltype(F{}(1.0f, 1.0f)), bool>;
  else return std::is_same_v<decltype(F{}(1.0f)), bool>;
}

// ---- Loops --------------------------------------------------------------------------------

// y[i] = f(x[i]) over contiguous data: the functor's vector form when it has one.
template <class F, class T, class R>
void unary_loop(const T* __restrict x, R* __restrict y, std::int64_t n) {
  if constexpr (std::is_same_v<T, R> && HasApply<F, T>) {
    if (n >= 64) {
      F::apply(x, y, n);
      return;
    }
  }
  const F f{};
  for (std::int64_t i = 0; i < n; ++i) y[i] = static_cast<R>(f(x[i]));
}

// out[i] = f(a[ia], b[ib]) over the broadcast shape `so`; sa/sb are the operand shapes
// (right-aligned, size-1 or missing dims broadcast).
template <class T, class R, class F>
void broadcast_apply(const T* a, const Shape& sa, const T* b, const Shape& sb, R* out, const Shape& so, F f) {
  const std::size_t nd = so.size();
  const std::int64_t n = so.numel();
  if (n == 0) return;
  if (nd == 0) {
    out[0] = static_cast<R>(f(a[0], b[0]));
    return;
  }
  std::int64_t st_a[Shape::kMaxDims], st_b[Shape::kMaxDims];
  for (auto [st, s_] : {std::pair{st_a, &sa}, std::pair{st_b, &sb}}) {
    const Shape& s = *s_;
    std::int64_t acc = 1;
    for (std::size_t i = nd; i-- > 0;) {
      const std::size_t k = nd - i;  // position from the end (1-based)
      if (k <= s.size() && s[s.size() - k] != 1) {
        st[i] = acc;
        acc *= s[s.size() - k];
      } else {
        st[i] = 0;
      }
    }
  }
  const std::int64_t inner = so[nd - 1];
  const std::int64_t ia = st_a[nd - 1], ib = st_b[nd - 1];
  const std::int64_t outer = n / inner;
  std::int64_t idx[Shape::kMaxDims] = {};
  std::int64_t off_a = 0, off_b = 0;
  R* o = out;
  for (std::int64_t r = 0; r < outer; ++r) {
    const T* pa = a + off_a;
    const T* pb = b + off_b;
    if (ia == 1 && ib == 1) {
      for (std::int64_t j = 0; j < inner; ++j) o[j] = static_cast<R>(f(pa[j], pb[j]));
    } else if (ia == 1 && ib == 0) {
      const T vb = pb[0];
      for (std::int64_t j = 0; j < inner; ++j) o[j] = static_cast<R>(f(pa[j], vb));
    } else if (ia == 0 && ib == 1) {
      const T va = pa[0];
      for (std::int64_t j = 0; j < inner; ++j) o[j] = static_cast<R>(f(va, pb[j]));
    } else {
      for (std::int64_t j = 0; j < inner; ++j) o[j] = static_cast<R>(f(pa[j * ia], pb[j * ib]));
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

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

// ---- Unary --------------------------------------------------------------------------------

using util::scalar_type_name;

// The dtype a unary kernel loop runs in: the driver's loops are instantiated for float,
// double, int64, int32 and uint8; int8/16 compute in int64 and float16/bfloat16 in float32,
// and the result is converted back (the same values as PyTorch's native loops: integer
// arithmetic wraps modulo 2^n either way, and PyTorch's CPU kernels compute 16-bit floats
// in float).
inline DType compute_dtype(DType d) {
  switch (d) {
    case DType::Float16:
    case DType::BFloat16: return DType::Float32;
    case DType::Int8:
    case DType::Int16: return DType::Int64;
    case DType::Bool: return DType::UInt8;
    default: return d;
  }
}

template <class F, Promotion P>
Tensor unary_tensor(const Tensor& xin) {
  if (!xin.defined()) util::fail(std::string(F::name) + ": undefined tensor");
  if constexpr (requires { F::check(xin); }) F::check(xin);
  constexpr bool kPredicate = is_predicate<F>();
  const DType dt = xin.dtype();
  if (!kPredicate && P != Promotion::PromoteFloat && dt == DType::Bool) {
    util::fail(std::string(F::name) + ": \"" + F::name + "\" not implemented for 'Bool'");
  }
  // The dtype of the result (of the input for predicates), and the one the loop runs in.
  const DType in_dt = (P == Promotion::PromoteFloat && !is_floating(dt)) ? DType::Float32 : dt;
  const DType cd = compute_dtype(in_dt);
  const Tensor x = xin.dtype() == cd ? xin : xin.to(cd);
  const std::int64_t n = x.numel();
  if constexpr (requires { F::dnnl_eltwise(); }) {
    // oneDNN's primitive, vectorised for the CPU at run time, where it computes the same.
    if (x.dtype() == DType::Float32 && dnnl_backend::worth_it(n)) {
      Tensor y = Tensor::empty(x.shape(), DType::Float32);
      dnnl_backend::eltwise(x, F::dnnl_eltwise(), y);
      return in_dt == DType::Float32 ? y : y.to(in_dt);
    }
  }
  auto run = [&]<class T>(const T* px) -> Tensor {
    using R = UnaryResult<F, T>;
    Tensor y = Tensor::empty(x.shape(), std::is_same_v<R, bool> ? DType::Bool : x.dtype());
    unary_loop<F, T, R>(px, y.data<R>(), n);
    if (!std::is_same_v<R, bool> && y.dtype() != in_dt) return y.to(in_dt);
    return y;
  };
  switch (x.dtype()) {
    case DType::Float32: return run(x.data<float>());
    case DType::Float64: return run(x.data<double>());
    case DType::Int64: return run(x.data<std::int64_t>());
    case DType::Int32: return run(x.data<std::int32_t>());
    case DType::UInt8: return run(x.data<std::uint8_t>());
    default: break;
  }
  util::fail(std::string(F::name) + ": \"" + F::name + "\" not implemented for '" + scalar_type_name(dt) + "'");
}

template <class F, Promotion P>
Value unary_value(const Value& a) {
  if (const Tensor* t = a.if_tensor()) return Value(unary_tensor<F, P>(*t));
  if constexpr (requires { F::python(a); }) {
    if (auto r = F::python(a)) return *r;
  }
  util::fail(std::string(F::name) + ": argument 'input' must be a Tensor, got " + util::kind_str(a));
}

// ---- Binary -------------------------------------------------------------------------------

template <class F, class T>
Tensor binary_typed(const Value& a, const Value& b, DType cd) {
  using R = BinaryResult<F, T>;
  Tensor ta, tb;
  T sa{}, sb{};
  const T* pa;
  const T* pb;
  Shape shape_a, shape_b;
  if (const Tensor* t = a.if_tensor()) {
    ta = t->dtype() == cd ? *t : t->to(cd);
    pa = ta.data<T>();
    shape_a = ta.shape();
  } else {
    sa = number_as<T>(a);
    pa = &sa;
  }
  if (const Tensor* t = b.if_tensor()) {
    tb = t->dtype() == cd ? *t : t->to(cd);
    pb = tb.data<T>();
    shape_b = tb.shape();
  } else {
    sb = number_as<T>(b);
    pb = &sb;
  }
  const Shape so = (shape_a == shape_b) ? shape_a : broadcast_shapes(shape_a, shape_b, F::name);
  Tensor out = Tensor::empty(so, std::is_same_v<R, bool> ? DType::Bool : cd);
  broadcast_apply<T, R>(pa, shape_a, pb, shape_b, out.data<R>(), so, F{});
  return out;
}

// PyTorch's binary elementwise op on Tensors and Python numbers: broadcasting, type
// promotion (P: Promote, PromoteFloat for true division, Bool for predicates); two
// non-Tensors follow the functor's Python semantics when it has them.
template <class F, Promotion P>
Value binary_value(const Value& a, const Value& b) {
  const Tensor* ta = a.if_tensor();
  const Tensor* tb = b.if_tensor();
  constexpr bool kPredicate = is_predicate<F>();
  // The float32 fast paths below are for arithmetic: not for predicates, nor for functors
  // that refuse some dtypes (bitwise ops on floats).
  constexpr bool kFast = !kPredicate && !requires { F::check_dtype(DType::Float32); };
  if (!ta && !tb) {
    if constexpr (requires { F::python(a, b); }) {
      if (auto r = F::python(a, b)) return *r;
    }
  }
  if constexpr (requires { F::check(a, b); }) F::check(a, b);
  if (kFast && ta && tb && ta->defined() && tb->defined()) {
    // Fast path: float32 tensors of one shape.
    if (ta->dtype() == DType::Float32 && tb->dtype() == DType::Float32 && ta->shape() == tb->shape()) {
      Tensor out = Tensor::empty(ta->shape(), DType::Float32);
      if constexpr (requires { F::dnnl_binary; }) {
        if (dnnl_backend::worth_it(ta->numel())) {
          const dnnl_backend::Dims dims{ta->numel()};
          dnnl_backend::binary(F::dnnl_binary, ta->data<float>(), dims, tb->data<float>(), dims, out.data<float>());
          return Value(std::move(out));
        }
      }
      const float* __restrict x = ta->data<float>();
      const float* __restrict y = tb->data<float>();
      float* __restrict z = out.data<float>();
      const std::int64_t n = ta->numel();
      const F f{};
      for (std::int64_t i = 0; i < n; ++i) z[i] = f(x[i], y[i]);
      return Value(std::move(out));
    }
  }
  // Fast path: a float32 tensor and a Python number (the result is float32 whatever the number).
  if (kFast && a.kind() != Value::Kind::Bool && b.kind() != Value::Kind::Bool &&
      ((ta && ta->dtype() == DType::Float32 && is_python_number(b)) ||
       (tb && tb->dtype() == DType::Float32 && is_python_number(a)))) {
    const Tensor& t = ta ? *ta : *tb;
    if (t.defined()) {
      const float s = number_as<float>(ta ? b : a);
      Tensor out = Tensor::empty(t.shape(), DType::Float32);
      if constexpr (requires { F::dnnl_binary; }) {
        // The number as a broadcast one-element operand: tensor (op) number, or a commuting op.
        if (dnnl_backend::worth_it(t.numel()) && (ta || F::commutative)) {
          dnnl_backend::binary(F::dnnl_binary, t.data<float>(), {t.numel()}, &s, {1}, out.data<float>());
          return Value(std::move(out));
        }
      }
      const float* __restrict x = t.data<float>();
      float* __restrict z = out.data<float>();
      const std::int64_t n = t.numel();
      const F f{};
      if (ta) {
        for (std::int64_t i = 0; i < n; ++i) z[i] = f(x[i], s);
      } else {
        for (std::int64_t i = 0; i < n; ++i) z[i] = f(s, x[i]);
      }
      return Value(std::move(out));
    }
  }
  if (!(ta || is_python_number(a)) || !(tb || is_python_number(b))) {
    util::fail(std::string(F::name) + ": unsupported operand types " + util::kind_str(a) + " and " + util::kind_str(b));
  }
  if ((ta && !ta->defined()) || (tb && !tb->defined())) util::fail(std::string(F::name) + ": undefined tensor operand");
  DType rt = result_type_of({&a, &b});
  if (P == Promotion::PromoteFloat && !is_floating(rt)) rt = DType::Float32;
  if constexpr (requires { F::check_dtype(rt); }) F::check_dtype(rt);
  // Integers (bool included) compute in int64, 16-bit floats in float32; converted back below.
  const DType cd = rt == DType::Float64 ? DType::Float64 : is_floating(rt) ? DType::Float32 : DType::Int64;
  Tensor out;
  switch (cd) {
    case DType::Float32: out = binary_typed<F, float>(a, b, cd); break;
    case DType::Float64: out = binary_typed<F, double>(a, b, cd); break;
    default: out = binary_typed<F, std::int64_t>(a, b, DType::Int64); break;
  }
  if (!kPredicate && out.dtype() != rt) out = out.to(rt);
  return Value(std::move(out));
}

// ---- What the op table instantiates ----------------------------------------------------------

// The kernel of an entry with a functor and no kernel: (x) or (a, b).
template <class F, Promotion P>
Value elementwise_kernel(std::span<const Value> args) {
  if constexpr (BinaryFunctor<F>) {
    if (args.size() < 2) util::fail(std::string(F::name) + ": expected two operands");
    return binary_value<F, P>(args[0], args[1]);
  } else {
    if (args.empty()) util::fail(std::string(F::name) + ": expected an operand");
    return unary_value<F, P>(args[0]);
  }
}

// In place on a contiguous block of a fused chain: y = f(y) or y = f(y, operand).
template <class F, class T>
FXPACK_BLOCK_CLONES void fused_block(T* y, std::int64_t n, double operand) {
  const F f{};
  if constexpr (BinaryFunctor<F>) {
    const T c = static_cast<T>(operand);
    if (n == kElementwiseBlock) {
      for (std::int64_t i = 0; i < kElementwiseBlock; ++i) y[i] = f(y[i], c);
    } else {
      for (std::int64_t i = 0; i < n; ++i) y[i] = f(y[i], c);
    }
  } else if constexpr (HasApply<F, T>) {
    F::apply(y, y, n);
  } else {
    if (n == kElementwiseBlock) {
      for (std::int64_t i = 0; i < kElementwiseBlock; ++i) y[i] = f(y[i]);
    } else {
      for (std::int64_t i = 0; i < n; ++i) y[i] = f(y[i]);
    }
  }
}

template <class F, Promotion P>
ElementwiseFunctor elementwise_functor() {
  ElementwiseFunctor out;
  out.binary = BinaryFunctor<F>;
  if constexpr (!is_predicate<F>()) {
    out.f32 = &fused_block<F, float>;
    out.f64 = &fused_block<F, double>;
  }
  out.apply = &elementwise_kernel<F, P>;
  return out;
}

}  // namespace fxpack::ops
