// Activation functions (activation.yaml): the functors of the parameterless activations
// (silu, hardswish, hardsigmoid, mish), the kernels of those with parameters (hardtanh and
// relu6, leaky_relu, elu, softplus, prelu), the torch.nn.functional forms with `inplace`,
// their make_fx decompositions, and the activation leaf module kinds. All run through the
// elementwise driver's contiguous loops (elementwise.hpp); the functors with a vector form
// use Eigen, silu's float32 form fxpack's own body for the CPU (simd/activation_simd.hpp).
#include <Eigen/Core>
#include <cmath>
#include <string>

#include "dnnl/context.hpp"
#include "elementwise.hpp"
#include "fxpack/module.hpp"
#include "kernels.hpp"
#include "simd/activation_simd.hpp"
#include "util.hpp"

namespace fxpack::ops {

namespace {

using util::fail;

template <class T>
using EigenArray = Eigen::Array<T, Eigen::Dynamic, 1>;

// PyTorch's activation kernels take floating tensors only.
void require_floating(const Tensor& x, const char* op, const char* kernel) {
  if (!x.defined()) fail(std::string(op) + ": undefined tensor");
  if (!is_floating(x.dtype())) {
    fail(std::string(op) + ": \"" + kernel + "\" not implemented for '" + scalar_type_name(x.dtype()) + "'");
  }
}

// ---- Functors ---------------------------------------------------------------------------------

// x * sigmoid(x); float32 arrays through the body for this CPU (simd/activation_simd.hpp:
// oneDNN 2.6's swish takes 2.4x as long), on fxpack's threads.
struct Silu {
  static constexpr const char* name = "silu";
  static void check(const Tensor& x) { require_floating(x, name, "silu_cpu"); }
  template <class T>
  T operator()(T x) const {
    return x / (T(1) + std::exp(-x));
  }
  template <class T>
    requires std::is_floating_point_v<T>
  static void apply(const T* xp, T* yp, std::int64_t n) {
    if constexpr (std::is_same_v<T, float>) {
      dnnl_backend::use_threads();
      simd::apply(simd::Activation::Silu, xp, yp, static_cast<std::size_t>(n));
    } else {
      const auto x = Eigen::Map<const EigenArray<T>>(xp, n);
      Eigen::Map<EigenArray<T>>(yp, n) = x / (T(1) + (-x).exp());
    }
  }
};

// x * min(max(x + 3, 0), 6) / 6; NaN stays NaN (the comparisons are false for it).
struct Hardswish {
  static constexpr const char* name = "hardswish";
  static void check(const Tensor& x) { require_floating(x, name, "hardswish_cpu"); }
  template <class T>
  T operator()(T x) const {
    T t = x + T(3);
    t = t < T(0) ? T(0) : t;
    t = t > T(6) ? T(6) : t;
    return x * t / T(6);
  }
};

// min(max(x + 3, 0), 6) / 6
struct Hardsigmoid {
  static constexpr const char* name = "hardsigmoid";
  static void check(const Tensor& x) { require_floating(x, name, "hardsigmoid_cpu"); }
  template <class T>
  T operator()(T x) const {
    T t = x + T(3);
    t = t < T(0) ? T(0) : t;
    t = t > T(6) ? T(6) : t;
    return t / T(6);
  }
};

// x * tanh(softplus(x)), softplus without a threshold as PyTorch's mish computes it.
struct Mish {
  static constexpr const char* name = "mish";
  static dnnl_backend::Eltwise dnnl_eltwise() { return {dnnl::algorithm::eltwise_mish}; }
  static void check(const Tensor& x) { require_floating(x, name, "mish_cpu"); }
  template <class T>
  T operator()(T x) const {
    return x * std::tanh(std::log1p(std::exp(x)));
  }
  template <class T>
    requires std::is_floating_point_v<T>
  static void apply(const T* xp, T* yp, std::int64_t n) {
    const auto x = Eigen::Map<const EigenArray<T>>(xp, n);
    Eigen::Map<EigenArray<T>>(yp, n) = x * x.exp().log1p().tanh();
  }
};

// ---- Kernels with parameters ---------------------------------------------------------------------

// y = fn(x) over a floating tensor, computed in float32 (16-bit floats) or float64, in the input's dtype.
template <class Fn>
Tensor float_map(const Tensor& x, const char* op, const char* kernel, Fn fn) {
  require_floating(x, op, kernel);
  const Tensor src = x.dtype() == compute_dtype(x.dtype()) ? x : x.to(compute_dtype(x.dtype()));
  Tensor y = Tensor::empty(x.shape(), src.dtype());
  auto run = [&]<class T>() {
    const T* __restrict px = src.data<T>();
    T* __restrict py = y.data<T>();
    const std::int64_t n = x.numel();
    for (std::int64_t i = 0; i < n; ++i) py[i] = fn(px[i]);
  };
  if (src.dtype() == DType::Float64) run.template operator()<double>();
  else run.template operator()<float>();
  return y.dtype() == x.dtype() ? y : y.to(x.dtype());
}

// hardtanh(x, min_val, max_val) = clamp(x, min_val, max_val) in x's dtype; NaN stays NaN.
Tensor hardtanh(const Tensor& x, const Value& min_val, const Value& max_val, const char* op) {
  if (!x.defined()) fail(std::string(op) + ": undefined tensor");
  if (x.dtype() == DType::Bool) fail(std::string(op) + ": \"hardtanh_cpu\" not implemented for 'Bool'");
  if (!is_floating(x.dtype())) {
    // Integer tensors clamp to the bounds converted to integers, as PyTorch's clamp does.
    const std::int64_t lo = number_as<std::int64_t>(min_val), hi = number_as<std::int64_t>(max_val);
    const Tensor src = x.dtype() == DType::Int64 ? x : x.to(DType::Int64);
    Tensor y = Tensor::empty(x.shape(), DType::Int64);
    const std::int64_t* px = src.data<std::int64_t>();
    std::int64_t* py = y.data<std::int64_t>();
    for (std::int64_t i = 0; i < x.numel(); ++i) py[i] = std::min(std::max(px[i], lo), hi);
    return y.dtype() == x.dtype() ? y : y.to(x.dtype());
  }
  const double lo = number_as<double>(min_val), hi = number_as<double>(max_val);
  return float_map(x, op, "hardtanh_cpu", [lo, hi](auto v) {
    using T = decltype(v);
    const T l = static_cast<T>(lo), h = static_cast<T>(hi);
    v = v < l ? l : v;
    return v > h ? h : v;
  });
}

Tensor leaky_relu(const Tensor& x, double slope) {
  return float_map(x, "leaky_relu", "leaky_relu_cpu", [slope](auto v) {
    using T = decltype(v);
    return v > T(0) ? v : v * static_cast<T>(slope);
  });
}

// y = expr(x) over a floating tensor with Eigen's vectorised array functions, computed in
// float32 (16-bit floats) or float64, in the input's dtype.
template <class Expr>
Tensor eigen_map(const Tensor& x, const char* op, const char* kernel, Expr expr) {
  require_floating(x, op, kernel);
  const Tensor src = x.dtype() == compute_dtype(x.dtype()) ? x : x.to(compute_dtype(x.dtype()));
  Tensor y = Tensor::empty(x.shape(), src.dtype());
  auto run = [&]<class T>() {
    const auto a = Eigen::Map<const EigenArray<T>>(src.data<T>(), x.numel());
    Eigen::Map<EigenArray<T>>(y.data<T>(), x.numel()) = expr(a);
  };
  if (src.dtype() == DType::Float64) run.template operator()<double>();
  else run.template operator()<float>();
  return y.dtype() == x.dtype() ? y : y.to(x.dtype());
}

// elu(x, alpha, scale, input_scale): x * scale above 0, expm1(x * input_scale) * alpha * scale
// below (NaN stays NaN). Large float32 tensors with unit scales run on oneDNN's elu.
Tensor elu(const Tensor& x, double alpha, double scale, double input_scale) {
  if (x.defined() && x.dtype() == DType::Float32 && scale == 1.0 && input_scale == 1.0 &&
      dnnl_backend::worth_it(x.numel())) {
    Tensor y = Tensor::empty(x.shape(), DType::Float32);
    dnnl_backend::eltwise(x, {dnnl::algorithm::eltwise_elu, static_cast<float>(alpha), 0.f}, y);
    return y;
  }
  return eigen_map(x, "elu", "elu_cpu", [=](const auto& a) {
    using T = typename std::decay_t<decltype(a)>::Scalar;
    return (a > T(0)).select(a * static_cast<T>(scale), (a * static_cast<T>(input_scale)).expm1() * static_cast<T>(alpha * scale));
  });
}

// softplus(x, beta, threshold): x where x * beta > threshold, log1p(exp(x * beta)) / beta elsewhere.
// Large float32 tensors with beta 1 run on oneDNN's soft_relu when the threshold is at least 20:
// beyond 17, log1p(exp(x)) rounds to x in float32, so the threshold changes nothing there.
Tensor softplus(const Tensor& x, double beta, double threshold) {
  if (x.defined() && x.dtype() == DType::Float32 && beta == 1.0 && threshold >= 20.0 && dnnl_backend::worth_it(x.numel())) {
    Tensor y = Tensor::empty(x.shape(), DType::Float32);
    dnnl_backend::eltwise(x, {dnnl::algorithm::eltwise_soft_relu}, y);
    return y;
  }
  return eigen_map(x, "softplus", "softplus_cpu", [=](const auto& a) {
    using T = typename std::decay_t<decltype(a)>::Scalar;
    const T b = static_cast<T>(beta);
    return (a * b > static_cast<T>(threshold)).select(a, (a * b).exp().log1p() / b);
  });
}

// prelu(x, weight): a slope per channel (dim 1), or one for all.
Tensor prelu(const Tensor& x, const Tensor& w) {
  require_floating(x, "prelu", "prelu_cpu");
  if (w.dtype() != x.dtype()) {
    fail("prelu: expected weight to have dtype " + std::string(scalar_type_name(x.dtype())) + ", got " +
         scalar_type_name(w.dtype()));
  }
  const std::int64_t channels = x.dim() >= 2 ? x.shape()[1] : 1;
  const std::int64_t wn = w.numel();
  if (w.dim() > 1) fail("prelu: weight must be a 0-dim or 1-D tensor, got " + std::to_string(w.dim()) + " dims");
  if (wn != 1 && wn != channels) {
    fail("prelu: Mismatch of parameter numbers and input channel size. Found parameter numbers = " + std::to_string(wn) +
         " and channel size = " + std::to_string(channels) + ".");
  }
  std::int64_t inner = 1;
  for (std::size_t d = 2; d < x.dim(); ++d) inner *= x.shape()[d];
  const DType cd = compute_dtype(x.dtype());
  const Tensor src = x.dtype() == cd ? x : x.to(cd);
  const Tensor ws = w.dtype() == cd ? w : w.to(cd);
  Tensor y = Tensor::empty(x.shape(), cd);
  auto run = [&]<class T>() {
    const T* px = src.data<T>();
    const T* pw = ws.data<T>();
    T* py = y.data<T>();
    const std::int64_t n = x.numel();
    if (wn == 1) {
      const T a = pw[0];
      for (std::int64_t i = 0; i < n; ++i) py[i] = px[i] > T(0) ? px[i] : a * px[i];
      return;
    }
    // One contiguous run of `inner` elements per (batch, channel).
    for (std::int64_t start = 0, c = 0; start < n; start += inner, c = (c + 1) % channels) {
      const T a = pw[c];
      for (std::int64_t j = start; j < start + inner; ++j) py[j] = px[j] > T(0) ? px[j] : a * px[j];
    }
  };
  if (cd == DType::Float64) run.operator()<double>();
  else run.operator()<float>();
  return y.dtype() == x.dtype() ? y : y.to(x.dtype());
}

// ---- Kernels (named by activation.yaml); fxpack kernels never write into an argument --------------

// hardtanh(self, min_val, max_val), and the functional (input, min_val, max_val, inplace)
Value hardtanh_kernel(std::span<const Value> a) { return Value(hardtanh(a[0].tensor(), a[1], a[2], "hardtanh")); }
// F.relu6(input, inplace)
Value relu6_functional(std::span<const Value> a) {
  return Value(hardtanh(a[0].tensor(), Value(0.0), Value(6.0), "relu6"));
}
// F.silu / F.hardswish / F.hardsigmoid / F.mish (input, inplace)
Value silu_functional(std::span<const Value> a) { return Value(unary_tensor<Silu, Promotion::Keep>(a[0].tensor())); }
Value hardswish_functional(std::span<const Value> a) {
  return Value(unary_tensor<Hardswish, Promotion::Keep>(a[0].tensor()));
}
Value hardsigmoid_functional(std::span<const Value> a) {
  return Value(unary_tensor<Hardsigmoid, Promotion::Keep>(a[0].tensor()));
}
Value mish_functional(std::span<const Value> a) { return Value(unary_tensor<Mish, Promotion::Keep>(a[0].tensor())); }
// leaky_relu(self, negative_slope) and F.leaky_relu(input, negative_slope, inplace)
Value leaky_relu_kernel(std::span<const Value> a) { return Value(leaky_relu(a[0].tensor(), number_as<double>(a[1]))); }
// elu(self, alpha, scale, input_scale)
Value elu_kernel(std::span<const Value> a) {
  return Value(elu(a[0].tensor(), number_as<double>(a[1]), number_as<double>(a[2]), number_as<double>(a[3])));
}
// F.elu(input, alpha, inplace)
Value elu_functional(std::span<const Value> a) { return Value(elu(a[0].tensor(), a[1].to_double(), 1.0, 1.0)); }
// softplus(self, beta, threshold)
Value softplus_kernel(std::span<const Value> a) {
  return Value(softplus(a[0].tensor(), number_as<double>(a[1]), number_as<double>(a[2])));
}
// prelu(self, weight)
Value prelu_kernel(std::span<const Value> a) { return Value(prelu(a[0].tensor(), a[1].tensor())); }

// ---- make_fx decompositions: what PyTorch 1.13 records for the functional forms ---------------------

bool inplace_arg(const OpCall& call) { return call.args.back().real.to_bool(); }

// F.relu6 is hardtanh(x, 0, 6) (hardtanh_ in place).
Value relu6_decomposition(OpRecorder& rec, const OpCall& call) {
  return rec.record(inplace_arg(call) ? "hardtanh_.default" : "hardtanh.default",
                    {call.args[0].sym, Value(std::int64_t{0}), Value(std::int64_t{6})});
}
Value hardtanh_decomposition(OpRecorder& rec, const OpCall& call) {
  return rec.record(inplace_arg(call) ? "hardtanh_.default" : "hardtanh.default",
                    {call.args[0].sym, call.args[1].sym, call.args[2].sym});
}
Value silu_decomposition(OpRecorder& rec, const OpCall& call) {
  return rec.record(inplace_arg(call) ? "silu_.default" : "silu.default", {call.args[0].sym});
}
Value hardswish_decomposition(OpRecorder& rec, const OpCall& call) {
  return rec.record(inplace_arg(call) ? "hardswish_.default" : "hardswish.default", {call.args[0].sym});
}
Value hardsigmoid_decomposition(OpRecorder& rec, const OpCall& call) {
  return rec.record(inplace_arg(call) ? "hardsigmoid_.default" : "hardsigmoid.default", {call.args[0].sym});
}
Value mish_decomposition(OpRecorder& rec, const OpCall& call) {
  return rec.record(inplace_arg(call) ? "mish_.default" : "mish.default", {call.args[0].sym});
}
Value leaky_relu_decomposition(OpRecorder& rec, const OpCall& call) {
  return rec.record(inplace_arg(call) ? "leaky_relu_.default" : "leaky_relu.default",
                    {call.args[0].sym, call.args[1].sym});
}
Value elu_decomposition(OpRecorder& rec, const OpCall& call) {
  return rec.record(inplace_arg(call) ? "elu_.default" : "elu.default", {call.args[0].sym, call.args[1].sym});
}

// ---- Leaf module kinds -------------------------------------------------------------------------------

bool inplace_attr(const Module& m) {
  const Value* v = m.find_attr("inplace");
  return v && v->kind() == Value::Kind::Bool && std::get<bool>(v->variant());
}

std::string attr_str(const Module& m, const char* name) {
  const Value* v = m.find_attr(name);
  if (!v) throw FormatError(m.kind() + ": attribute '" + name + "' is missing");
  return python_repr(*v);
}

// ReLU6 is Hardtanh(0.0, 6.0, inplace).
void relu6_init(Module& m, std::span<const Value> args) {
  m.set_attr("min_val", Value(0.0));
  m.set_attr("max_val", Value(6.0));
  m.set_attr("inplace", args[0]);
}

// PReLU(num_parameters, init): one slope per parameter, all `init`.
void prelu_init(Module& m, std::span<const Value> args) {
  const std::int64_t n = args[0].to_int();
  if (n < 1) throw ValueError("PReLU: num_parameters must be >= 1, got " + std::to_string(n));
  m.set_attr("num_parameters", Value(n));
  m.set_attr("init", args[1]);
  m.register_parameter("weight", Tensor::full(Shape{n}, args[1].to_double()));
}

void prelu_validate(const Module& m) {
  const Value* n = m.find_attr("num_parameters");
  const Tensor& w = m.parameter("weight");
  if (n && n->is_int() && w.defined() && (w.dim() != 1 || w.numel() != n->to_int())) {
    throw FormatError("PReLU: weight of shape " + w.shape().to_string() + " does not hold num_parameters=" +
                      std::to_string(n->to_int()) + " slopes");
  }
}

// extra_repr: 'inplace=True' when set (ReLU6, SiLU, Hardswish, Hardsigmoid, Mish).
std::string inplace_repr(const Module& m) { return inplace_attr(m) ? "inplace=True" : ""; }
// Hardtanh: 'min_val=-1.0, max_val=1.0' and ', inplace=True' when set.
std::string hardtanh_repr(const Module& m) {
  return "min_val=" + attr_str(m, "min_val") + ", max_val=" + attr_str(m, "max_val") +
         (inplace_attr(m) ? ", inplace=True" : "");
}
std::string leaky_relu_repr(const Module& m) {
  return "negative_slope=" + attr_str(m, "negative_slope") + (inplace_attr(m) ? ", inplace=True" : "");
}
std::string elu_repr(const Module& m) { return "alpha=" + attr_str(m, "alpha") + (inplace_attr(m) ? ", inplace=True" : ""); }

}  // namespace

#include "activation_table.inc"

}  // namespace fxpack::ops
