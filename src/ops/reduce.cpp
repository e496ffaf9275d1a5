// Reductions (reduce.yaml): sum and mean over all dims or a list of dims, keepdim, dtype; max.
#include <cmath>
#include <cstring>

#include "kernels.hpp"
#include "util.hpp"

namespace fxpack::ops {

using util::fail;

namespace {

struct ReducePlan {
  Shape out_shape;        // with keepdim applied
  Shape kept_shape;       // reduced dims as 1 (keepdim form)
  std::int64_t count = 1; // elements per output
  bool reduced[Shape::kMaxDims] = {};
};

ReducePlan plan_reduction(const Tensor& x, std::span<const std::int64_t> dims, bool keepdim,
                          const char* op) {
  ReducePlan pl;
  const auto nd = static_cast<std::int64_t>(x.dim());
  if (dims.empty()) {
    for (std::int64_t i = 0; i < nd; ++i) pl.reduced[i] = true;
  } else {
    for (std::int64_t d : dims) {
      const std::int64_t w = util::wrap_dim(d, nd, op);
      if (nd == 0) continue;
      if (pl.reduced[w]) {
        fail(std::string(op) + ": dim " + std::to_string(w) +
             " appears multiple times in the list of dims");
      }
      pl.reduced[w] = true;
    }
  }
  for (std::int64_t i = 0; i < nd; ++i) {
    const std::int64_t s = x.shape()[static_cast<std::size_t>(i)];
    if (pl.reduced[i]) {
      pl.count *= s;
      pl.kept_shape.push_back(1);
      if (keepdim) pl.out_shape.push_back(1);
    } else {
      pl.kept_shape.push_back(s);
      pl.out_shape.push_back(s);
    }
  }
  return pl;
}

template <class In, class Acc>
void reduce_sum(const In* x, const Shape& in_shape, const ReducePlan& pl, Acc* acc) {
  const std::size_t nd = in_shape.size();
  const std::int64_t n = in_shape.numel();
  if (n == 0) return;
  if (nd == 0) {
    acc[0] += static_cast<Acc>(x[0]);
    return;
  }
  // Output strides per input dim (0 for reduced dims).
  std::int64_t ost[Shape::kMaxDims];
  std::int64_t s = 1;
  for (std::size_t i = nd; i-- > 0;) {
    if (pl.reduced[i]) {
      ost[i] = 0;
    } else {
      ost[i] = s;
      s *= in_shape[i];
    }
  }
  const std::int64_t inner = in_shape[nd - 1];
  const std::int64_t is = ost[nd - 1];
  const std::int64_t outer = n / inner;
  std::int64_t idx[Shape::kMaxDims] = {};
  std::int64_t off = 0;
  for (std::int64_t r = 0; r < outer; ++r) {
    const In* px = x + r * inner;
    if (is == 0) {
      Acc a = 0;
      for (std::int64_t j = 0; j < inner; ++j) a += static_cast<Acc>(px[j]);
      acc[off] += a;
    } else {
      for (std::int64_t j = 0; j < inner; ++j) acc[off + j] += static_cast<Acc>(px[j]);
    }
    for (std::size_t d = nd - 1; d-- > 0;) {
      off += ost[d];
      if (++idx[d] < in_shape[d]) break;
      off -= ost[d] * in_shape[d];
      idx[d] = 0;
    }
  }
}

template <class Acc>
std::vector<Acc> accumulate(const Tensor& x, const ReducePlan& pl) {
  std::vector<Acc> acc(static_cast<std::size_t>(pl.kept_shape.numel()), Acc(0));
  switch (x.dtype()) {
    case DType::Float32: reduce_sum(x.data<float>(), x.shape(), pl, acc.data()); break;
    case DType::Float64: reduce_sum(x.data<double>(), x.shape(), pl, acc.data()); break;
    case DType::Int64: reduce_sum(x.data<std::int64_t>(), x.shape(), pl, acc.data()); break;
    case DType::Bool: reduce_sum(x.data<bool>(), x.shape(), pl, acc.data()); break;
    case DType::UInt8: reduce_sum(x.data<std::uint8_t>(), x.shape(), pl, acc.data()); break;
    default: fail("reduction: not implemented for " + std::string(dtype_name(x.dtype())) + " tensors");
  }
  return acc;
}

template <class Acc>
Tensor finish(const std::vector<Acc>& acc, const Shape& shape, DType dt, double scale) {
  Tensor out = Tensor::empty(shape, dt);
  const auto n = static_cast<std::int64_t>(acc.size());
  switch (dt) {
    case DType::Float32: {
      float* o = out.data<float>();
      for (std::int64_t i = 0; i < n; ++i) o[i] = static_cast<float>(static_cast<double>(acc[i]) * scale);
      break;
    }
    case DType::Float64: {
      double* o = out.data<double>();
      for (std::int64_t i = 0; i < n; ++i) o[i] = static_cast<double>(acc[i]) * scale;
      break;
    }
    default: {
      // Integer results (sum only, scale 1): convert via a temporary int64 tensor.
      Tensor tmp = Tensor::empty(shape, DType::Int64);
      std::int64_t* o = tmp.data<std::int64_t>();
      for (std::int64_t i = 0; i < n; ++i) {
        if constexpr (std::is_floating_point_v<Acc>) {
          const double v = static_cast<double>(acc[i]);
          o[i] = (v >= -9.2e18 && v <= 9.2e18) ? static_cast<std::int64_t>(v)
                                                 : std::numeric_limits<std::int64_t>::min();
        } else {
          o[i] = static_cast<std::int64_t>(acc[i]);
        }
      }
      out = tmp.to(dt);
      break;
    }
  }
  return out;
}

Tensor reduce(const Tensor& x, std::span<const std::int64_t> dims, bool keepdim,
              std::optional<DType> dtype, bool is_mean) {
  const char* op = is_mean ? "mean" : "sum";
  if (!x.defined()) fail(std::string(op) + ": undefined tensor");
  DType rt;
  if (dtype) {
    rt = *dtype;
  } else if (is_floating(x.dtype())) {
    rt = x.dtype();
  } else {
    rt = DType::Int64;
  }
  if (is_mean && !is_floating(rt)) {
    fail(std::string("mean(): could not infer output dtype. ") +
         (dtype ? "Optional dtype must be either a floating point or complex dtype. Got: "
                : "Input dtype must be either a floating point or complex dtype. Got: ") +
         std::string(dtype_name(dtype ? *dtype : x.dtype())));
  }
  const ReducePlan pl = plan_reduction(x, dims, keepdim, op);
  if (is_floating(rt)) {
    const std::vector<double> acc = accumulate<double>(x, pl);
    double scale = 1.0;
    if (is_mean) {
      scale = pl.count == 0 ? std::numeric_limits<double>::quiet_NaN()
                            : 1.0 / static_cast<double>(pl.count);
    }
    if (is_mean && pl.count == 0) {
      Tensor out = Tensor::full(pl.out_shape, std::numeric_limits<double>::quiet_NaN(), rt);
      return out;
    }
    if (is_mean) {
      // Divide rather than multiply by the reciprocal: matches PyTorch more closely.
      std::vector<double> q(acc.size());
      for (std::size_t i = 0; i < acc.size(); ++i) q[i] = acc[i] / static_cast<double>(pl.count);
      return finish(q, pl.out_shape, rt, 1.0);
    }
    return finish(acc, pl.out_shape, rt, scale);
  }
  const std::vector<std::int64_t> acc = accumulate<std::int64_t>(x, pl);
  return finish(acc, pl.out_shape, rt, 1.0);
}

}  // namespace

Tensor sum(const Tensor& x, std::span<const std::int64_t> dims, bool keepdim, std::optional<DType> dtype) {
  return reduce(x, dims, keepdim, dtype, false);
}

Tensor mean(const Tensor& x, std::span<const std::int64_t> dims, bool keepdim, std::optional<DType> dtype) {
  return reduce(x, dims, keepdim, dtype, true);
}

namespace {

// ---- max: the whole tensor, or along a dim with indices ------------------------------------

// a is "greater" than b for max: NaN beats everything (PyTorch propagates NaN).
template <class T>
bool greater(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a)) return !std::isnan(b);
    if (std::isnan(b)) return false;
  }
  return a > b;
}

template <class T>
Tensor max_all_typed(const Tensor& x) {
  const T* p = x.data<T>();
  T best = p[0];
  for (std::int64_t i = 1; i < x.numel(); ++i)
    if (greater(p[i], best)) best = p[i];
  Tensor out = Tensor::empty(Shape{}, x.dtype());
  out.data<T>()[0] = best;
  return out;
}

template <class T>
void max_dim_typed(const Tensor& x, std::int64_t dim, Tensor& values, Tensor& indices) {
  const Shape& s = x.shape();
  std::int64_t outer = 1, inner = 1;
  for (std::int64_t i = 0; i < dim; ++i) outer *= s[static_cast<std::size_t>(i)];
  for (std::size_t i = static_cast<std::size_t>(dim) + 1; i < s.size(); ++i) inner *= s[i];
  const std::int64_t n = s.size() == 0 ? 1 : s[static_cast<std::size_t>(dim)];
  const T* p = x.data<T>();
  T* v = values.data<T>();
  std::int64_t* ix = indices.data<std::int64_t>();
  for (std::int64_t o = 0; o < outer; ++o) {
    for (std::int64_t j = 0; j < inner; ++j) {
      const T* col = p + o * n * inner + j;
      T best = col[0];
      std::int64_t at = 0;
      for (std::int64_t k = 1; k < n; ++k) {
        if (greater(col[k * inner], best)) {
          best = col[k * inner];
          at = k;
        }
      }
      v[o * inner + j] = best;
      ix[o * inner + j] = at;
    }
  }
}

template <class Fn>
auto by_dtype(DType dt, Fn&& fn) {
  switch (dt) {
    case DType::Float32: return fn(float{});
    case DType::Float64: return fn(double{});
    case DType::Int64: return fn(std::int64_t{});
    case DType::Bool: return fn(bool{});
    case DType::UInt8: return fn(std::uint8_t{});
  }
  return fn(float{});
}

}  // namespace

std::pair<Tensor, Tensor> max_along(const Tensor& x, std::int64_t dim_in, bool keepdim) {
  if (!x.defined()) fail("max: undefined tensor");
  const auto nd = static_cast<std::int64_t>(x.dim());
  const std::int64_t dim = util::wrap_dim(dim_in, nd, "max");
  if (nd > 0 && x.shape()[static_cast<std::size_t>(dim)] == 0) {
    fail("max(): Expected reduction dim " + std::to_string(dim) + " to have non-zero size.");
  }
  Shape out;
  for (std::int64_t i = 0; i < nd; ++i) {
    if (i != dim) out.push_back(x.shape()[static_cast<std::size_t>(i)]);
    else if (keepdim) out.push_back(1);
  }
  Tensor values = Tensor::empty(out, x.dtype());
  Tensor indices = Tensor::empty(out, DType::Int64);
  if (x.numel() > 0) by_dtype(x.dtype(), [&](auto t) {
    max_dim_typed<decltype(t)>(x, nd == 0 ? 0 : dim, values, indices);
    return 0;
  });
  return {std::move(values), std::move(indices)};
}

namespace {

// max(self)
Value max_all(std::span<const Value> a) {
  const Tensor& x = a[0].tensor();
  if (x.numel() == 0) {
    fail("max(): Expected reduction dim to be specified for input.numel() == 0. Specify the reduction dim with the "
         "'dim' argument.");
  }
  return Value(by_dtype(x.dtype(), [&](auto t) { return max_all_typed<decltype(t)>(x); }));
}

// max.dim(Tensor self, int dim, bool keepdim=False) -> (Tensor values, Tensor indices)
Value max_dim(std::span<const Value> args) {
  const Tensor& x = args[0].tensor();  // the schema says Tensor: binding checked it
  auto [values, indices] = ops::max_along(x, args[1].to_int(), args[2].to_bool());
  return Value(Tuple{{Value(std::move(values)), Value(std::move(indices))}});
}

// max.other(self, other): torch.maximum.
Value max_other(std::span<const Value> a) { return binary(BinaryOp::Maximum, a[0], a[1]); }
// min.other(self, other): torch.minimum.
Value min_other(std::span<const Value> a) { return binary(BinaryOp::Minimum, a[0], a[1]); }

// ---- sum and mean ----------------------------------------------------------------------------

std::optional<DType> dtype_arg(const Value& v) {
  if (v.is_none()) return std::nullopt;
  return v.dtype();
}

// sum(self, *, dtype) / mean(self, *, dtype)
template <bool Mean>
Value reduce_all(std::span<const Value> a) {
  const Tensor& x = a[0].tensor();
  return Value(Mean ? mean(x, {}, false, dtype_arg(a[1])) : sum(x, {}, false, dtype_arg(a[1])));
}

// sum.dim_IntList(self, dim, keepdim, *, dtype) / mean.dim: dim None or [] reduces everything.
template <bool Mean>
Value reduce_dims(std::span<const Value> a) {
  const Tensor& x = a[0].tensor();
  std::vector<std::int64_t> dims;
  if (!a[1].is_none()) dims = a[1].int_list();
  const bool keepdim = a[2].to_bool();
  return Value(Mean ? mean(x, dims, keepdim, dtype_arg(a[3])) : sum(x, dims, keepdim, dtype_arg(a[3])));
}

}  // namespace

#include "reduce_table.inc"

}  // namespace fxpack::ops
