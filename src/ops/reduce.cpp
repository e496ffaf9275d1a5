// Reductions (reduce.yaml): sum, mean, prod, std/var, amax/amin, max/min (all and along a
// dim), argmax/argmin, all/any, count_nonzero, norms, logsumexp, cumsum, topk, sort/argsort,
// softmax/log_softmax and their leaf modules.
//
// Every reduction over a set of dims runs one odometer walk over the contiguous input
// (reduce_into): when the innermost dim is reduced, each row folds into a register
// accumulator; otherwise rows fold elementwise into the output. Ops along one dim (argmax,
// cumsum, topk, sort, softmax) view the input as [outer, n, inner].
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "fxpack/quote.hpp"
#include "kernels.hpp"
#include "util.hpp"

namespace fxpack::ops {

using util::fail;
using util::scalar_type_name;

namespace {

[[noreturn]] void not_implemented(const char* op, DType dt) {
  fail(std::string(op) + ": not implemented for '" + scalar_type_name(dt) + "'");
}

// Calls fn(T{}) with the element type of dt; the 16-bit floats are refused (callers that
// support them convert to float32 first).
template <class Fn>
auto visit_dtype(DType dt, const char* op, Fn&& fn) {
  switch (dt) {
    case DType::Float32: return fn(float{});
    case DType::Float64: return fn(double{});
    case DType::Int64: return fn(std::int64_t{});
    case DType::Int32: return fn(std::int32_t{});
    case DType::Int16: return fn(std::int16_t{});
    case DType::Int8: return fn(std::int8_t{});
    case DType::UInt8: return fn(std::uint8_t{});
    case DType::Bool: return fn(bool{});
    case DType::Float16:
    case DType::BFloat16: break;
  }
  not_implemented(op, dt);
}

std::optional<DType> dtype_arg(const Value& v) {
  if (v.is_none()) return std::nullopt;
  return v.dtype();
}

// int[1]? dim: None (or an empty list, for the ops that say so) reduces every dim.
std::vector<std::int64_t> dims_arg(const Value& v) {
  if (v.is_none()) return {};
  return v.int_list();
}

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

// Folds every element of x into acc[output index] with add(acc&, element, output index);
// a row of a reduced innermost dim folds into a local accumulator first, merged with
// merge(acc&, local). acc holds one initial value per output.
template <class In, class Acc, class Add, class Merge>
void reduce_into(const In* x, const Shape& in_shape, const ReducePlan& pl, Acc* acc, Acc init, Add add,
                 Merge merge) {
  const std::size_t nd = in_shape.size();
  const std::int64_t n = in_shape.numel();
  if (n == 0) return;
  if (nd == 0) {
    add(acc[0], x[0], 0);
    return;
  }
  std::int64_t ost[Shape::kMaxDims];  // output strides per input dim (0 for reduced dims)
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
  const bool inner_reduced = ost[nd - 1] == 0;
  const std::int64_t outer = n / inner;
  std::int64_t idx[Shape::kMaxDims] = {};
  std::int64_t off = 0;
  for (std::int64_t r = 0; r < outer; ++r) {
    const In* px = x + r * inner;
    if (inner_reduced) {
      Acc a = init;
      for (std::int64_t j = 0; j < inner; ++j) add(a, px[j], off);
      merge(acc[off], a);
    } else {
      for (std::int64_t j = 0; j < inner; ++j) add(acc[off + j], px[j], off + j);
    }
    for (std::size_t d = nd - 1; d-- > 0;) {
      off += ost[d];
      if (++idx[d] < in_shape[d]) break;
      off -= ost[d] * in_shape[d];
      idx[d] = 0;
    }
  }
}

// When the reduced dims are exactly the trailing ones (sum(x), mean over H and W, amax over
// the last dim), each output reduces one contiguous row: `rows` rows of `len` elements.
bool trailing_rows(const Tensor& x, const ReducePlan& pl, std::int64_t& rows, std::int64_t& len) {
  const std::size_t nd = x.dim();
  std::size_t first = nd;
  while (first > 0 && pl.reduced[first - 1]) --first;
  if (first == nd) return false;
  for (std::size_t d = 0; d < first; ++d)
    if (pl.reduced[d]) return false;
  len = 1;
  for (std::size_t d = first; d < nd; ++d) len *= x.shape()[d];
  if (len == 0) return false;
  rows = x.numel() / len;
  return true;
}

// A contiguous float/double row as an Eigen array.
template <class T>
Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>> row_of(const T* p, std::int64_t len) {
  return Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(p, len);
}

// The sum of a contiguous row: Eigen's vectorised sum over blocks of 4096 elements, the
// block sums added in double (so long float rows keep their precision).
template <class T>
double row_sum(const T* p, std::int64_t len) {
  constexpr std::int64_t kBlock = 4096;
  double total = 0;
  for (std::int64_t i = 0; i < len; i += kBlock) total += static_cast<double>(row_of(p + i, std::min(kBlock, len - i)).sum());
  return total;
}

// Writes per-output values into a fresh tensor of dtype dt.
template <class Acc>
Tensor to_tensor(const std::vector<Acc>& acc, const Shape& shape, DType dt) {
  if (dt == DType::Float16 || dt == DType::BFloat16) return to_tensor(acc, shape, DType::Float64).to(dt);
  Tensor out = Tensor::empty(shape, dt);
  const auto n = static_cast<std::int64_t>(acc.size());
  visit_dtype(dt, "reduction", [&](auto t) {
    using T = decltype(t);
    T* o = out.data<T>();
    for (std::int64_t i = 0; i < n; ++i) {
      if constexpr (std::is_same_v<T, bool>) {
        o[i] = acc[i] != Acc(0);
      } else if constexpr (std::is_integral_v<T> && std::is_floating_point_v<Acc>) {
        o[i] = std::isfinite(acc[i]) ? static_cast<T>(static_cast<std::int64_t>(acc[i])) : T(0);
      } else {
        o[i] = static_cast<T>(acc[i]);
      }
    }
    return 0;
  });
  return out;
}

// PyTorch's result dtype of sum/prod/cumsum: the dtype argument, else integers and bool
// accumulate to int64.
DType integral_to_long(const Tensor& x, std::optional<DType> dtype) {
  if (dtype) return *dtype;
  return is_floating(x.dtype()) ? x.dtype() : DType::Int64;
}

// The input converted to what the op computes in: 16-bit floats go through float32.
Tensor computable(const Tensor& x, std::optional<DType> dtype) {
  if (dtype && *dtype != x.dtype()) return x.to(*dtype == DType::Float16 || *dtype == DType::BFloat16 ? DType::Float32 : *dtype);
  if (x.dtype() == DType::Float16 || x.dtype() == DType::BFloat16) return x.to(DType::Float32);
  return x;
}

// Sums (double for floating results, int64 with wraparound for integral ones).
Tensor sum_impl(const Tensor& x_in, std::span<const std::int64_t> dims, bool keepdim, std::optional<DType> dtype,
                bool is_mean) {
  const char* op = is_mean ? "mean" : "sum";
  if (!x_in.defined()) fail(std::string(op) + ": undefined tensor");
  const DType rt = integral_to_long(x_in, dtype);
  if (is_mean && !is_floating(rt)) {
    fail(std::string("mean(): could not infer output dtype. ") +
         (dtype ? "Optional dtype must be either a floating point or complex dtype. Got: "
                : "Input dtype must be either a floating point or complex dtype. Got: ") +
         scalar_type_name(dtype ? *dtype : x_in.dtype()));
  }
  const Tensor x = computable(x_in, std::nullopt);
  const ReducePlan pl = plan_reduction(x, dims, keepdim, op);
  const auto outputs = static_cast<std::size_t>(pl.kept_shape.numel());
  if (is_floating(rt)) {
    std::vector<double> acc(outputs, 0.0);
    std::int64_t rows = 0, len = 0;
    visit_dtype(x.dtype(), op, [&](auto t) {
      using T = decltype(t);
      if constexpr (std::is_floating_point_v<T>) {
        if (trailing_rows(x, pl, rows, len)) {
          for (std::int64_t r = 0; r < rows; ++r) acc[static_cast<std::size_t>(r)] = row_sum(x.data<T>() + r * len, len);
          return 0;
        }
      }
      reduce_into(x.data<T>(), x.shape(), pl, acc.data(), 0.0,
                  [](double& a, T v, std::int64_t) { a += static_cast<double>(v); },
                  [](double& a, double b) { a += b; });
      return 0;
    });
    if (is_mean) {
      const double count = static_cast<double>(pl.count);  // 0: 0/0 is NaN, as PyTorch
      for (double& a : acc) a /= count;
    }
    return to_tensor(acc, pl.out_shape, rt);
  }
  std::vector<std::uint64_t> acc(outputs, 0);
  visit_dtype(x.dtype(), op, [&](auto t) {
    using T = decltype(t);
    reduce_into(x.data<T>(), x.shape(), pl, acc.data(), std::uint64_t{0},
                [](std::uint64_t& a, T v, std::int64_t) { a += static_cast<std::uint64_t>(static_cast<std::int64_t>(v)); },
                [](std::uint64_t& a, std::uint64_t b) { a += b; });
    return 0;
  });
  std::vector<std::int64_t> signed_acc(acc.begin(), acc.end());
  return to_tensor(signed_acc, pl.out_shape, rt);
}

}  // namespace

Tensor sum(const Tensor& x, std::span<const std::int64_t> dims, bool keepdim, std::optional<DType> dtype) {
  return sum_impl(x, dims, keepdim, dtype, false);
}

Tensor mean(const Tensor& x, std::span<const std::int64_t> dims, bool keepdim, std::optional<DType> dtype) {
  return sum_impl(x, dims, keepdim, dtype, true);
}

namespace {

// ---- ordering with PyTorch's NaN rule ----------------------------------------------------------

// For max-like ops NaN is the greatest value; for min-like ops the least, so it propagates.
template <bool Max, class T>
bool better(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a)) return !std::isnan(b);
    if (std::isnan(b)) return false;
  }
  if constexpr (Max) return a > b;
  else return a < b;
}

// ---- prod ------------------------------------------------------------------------------------

Tensor prod_impl(const Tensor& x_in, std::span<const std::int64_t> dims, bool keepdim, std::optional<DType> dtype) {
  const DType rt = integral_to_long(x_in, dtype);
  const Tensor x = computable(x_in, std::nullopt);
  const ReducePlan pl = plan_reduction(x, dims, keepdim, "prod");
  const auto outputs = static_cast<std::size_t>(pl.kept_shape.numel());
  if (is_floating(rt)) {
    std::vector<double> acc(outputs, 1.0);
    visit_dtype(x.dtype(), "prod", [&](auto t) {
      using T = decltype(t);
      reduce_into(x.data<T>(), x.shape(), pl, acc.data(), 1.0,
                  [](double& a, T v, std::int64_t) { a *= static_cast<double>(v); },
                  [](double& a, double b) { a *= b; });
      return 0;
    });
    return to_tensor(acc, pl.out_shape, rt);
  }
  std::vector<std::uint64_t> acc(outputs, 1);  // unsigned: wraps as PyTorch's int64 does
  visit_dtype(x.dtype(), "prod", [&](auto t) {
    using T = decltype(t);
    reduce_into(x.data<T>(), x.shape(), pl, acc.data(), std::uint64_t{1},
                [](std::uint64_t& a, T v, std::int64_t) { a *= static_cast<std::uint64_t>(static_cast<std::int64_t>(v)); },
                [](std::uint64_t& a, std::uint64_t b) { a *= b; });
    return 0;
  });
  return to_tensor(std::vector<std::int64_t>(acc.begin(), acc.end()), pl.out_shape, rt);
}

// ---- amax / amin ---------------------------------------------------------------------------

template <bool Max>
Tensor extremum(const Tensor& x, std::span<const std::int64_t> dims, bool keepdim, const char* op) {
  const ReducePlan pl = plan_reduction(x, dims, keepdim, op);
  if (pl.count == 0) {
    for (std::size_t d = 0; d < x.dim(); ++d) {
      if (pl.reduced[d] && x.shape()[d] == 0)
        fail(std::string(op) + "(): Expected reduction dim " + std::to_string(d) + " to have non-zero size.");
    }
  }
  const Tensor xc = computable(x, std::nullopt);
  Tensor out = visit_dtype(xc.dtype(), op, [&](auto t) {
    using T = decltype(t);
    // Seeded with the identity: the lowest value for max (NaN still wins), the highest for min.
    T init;
    if constexpr (std::is_same_v<T, bool>) init = !Max;
    else if constexpr (std::is_floating_point_v<T>) init = Max ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::infinity();
    else init = Max ? std::numeric_limits<T>::lowest() : std::numeric_limits<T>::max();
    Tensor r = Tensor::empty(pl.out_shape, xc.dtype());
    T* acc = r.data<T>();
    std::fill(acc, acc + r.numel(), init);
    std::int64_t rows = 0, len = 0;
    if constexpr (std::is_floating_point_v<T>) {
      if (trailing_rows(xc, pl, rows, len)) {
        for (std::int64_t r = 0; r < rows; ++r) {
          const auto row = row_of(xc.data<T>() + r * len, len);
          acc[r] = Max ? row.template maxCoeff<Eigen::PropagateNaN>() : row.template minCoeff<Eigen::PropagateNaN>();
        }
        return r;
      }
    }
    auto keep_better = [](T& a, T b) {
      if (better<Max>(b, a)) a = b;
    };
    reduce_into(xc.data<T>(), xc.shape(), pl, acc, init,
                [keep_better](T& a, T v, std::int64_t) { keep_better(a, v); }, keep_better);
    return r;
  });
  return out.to(x.dtype());
}

// ---- all / any / count_nonzero -------------------------------------------------------------

// all (All) or any: bool results, uint8 for uint8 inputs (PyTorch 1.13).
template <bool All>
Tensor all_any(const Tensor& x, std::span<const std::int64_t> dims, bool keepdim) {
  const char* op = All ? "all" : "any";
  const ReducePlan pl = plan_reduction(x, dims, keepdim, op);
  const Tensor xc = computable(x, std::nullopt);
  std::vector<std::uint8_t> acc(static_cast<std::size_t>(pl.kept_shape.numel()), All ? 1 : 0);
  visit_dtype(xc.dtype(), op, [&](auto t) {
    using T = decltype(t);
    reduce_into(xc.data<T>(), xc.shape(), pl, acc.data(), std::uint8_t{All ? 1 : 0},
                [](std::uint8_t& a, T v, std::int64_t) {
                  if constexpr (All) a &= static_cast<std::uint8_t>(v != T(0));
                  else a |= static_cast<std::uint8_t>(v != T(0));
                },
                [](std::uint8_t& a, std::uint8_t b) {
                  if constexpr (All) a &= b;
                  else a |= b;
                });
    return 0;
  });
  return to_tensor(acc, pl.out_shape, x.dtype() == DType::UInt8 ? DType::UInt8 : DType::Bool);
}

Tensor count_nonzero_impl(const Tensor& x, std::span<const std::int64_t> dims) {
  const ReducePlan pl = plan_reduction(x, dims, false, "count_nonzero");
  const Tensor xc = computable(x, std::nullopt);
  std::vector<std::int64_t> acc(static_cast<std::size_t>(pl.kept_shape.numel()), 0);
  visit_dtype(xc.dtype(), "count_nonzero", [&](auto t) {
    using T = decltype(t);
    reduce_into(xc.data<T>(), xc.shape(), pl, acc.data(), std::int64_t{0},
                [](std::int64_t& a, T v, std::int64_t) { a += v != T(0); },
                [](std::int64_t& a, std::int64_t b) { a += b; });
    return 0;
  });
  return to_tensor(acc, pl.out_shape, DType::Int64);
}

// ---- std / var -------------------------------------------------------------------------------

// Two passes (mean, then squared deviations) in double; divisor max(0, N - correction)
// as PyTorch, so N <= correction gives inf or NaN.
Tensor variance(const Tensor& x_in, std::span<const std::int64_t> dims, double correction, bool keepdim, bool take_sqrt) {
  const char* op = take_sqrt ? "std" : "var";
  if (!is_floating(x_in.dtype())) {
    fail(std::string(op) + ": std and var only support floating point and complex dtypes, got " +
         scalar_type_name(x_in.dtype()));
  }
  const Tensor x = computable(x_in, std::nullopt);
  const ReducePlan pl = plan_reduction(x, dims, keepdim, op);
  const auto outputs = static_cast<std::size_t>(pl.kept_shape.numel());
  std::vector<double> mean(outputs, 0.0), m2(outputs, 0.0);
  visit_dtype(x.dtype(), op, [&](auto t) {
    using T = decltype(t);
    if constexpr (std::is_floating_point_v<T>) {
      auto sum = [](double& a, double b) { a += b; };
      reduce_into(x.data<T>(), x.shape(), pl, mean.data(), 0.0,
                  [](double& a, T v, std::int64_t) { a += static_cast<double>(v); }, sum);
      for (double& m : mean) m /= static_cast<double>(pl.count);
      const double* mp = mean.data();
      reduce_into(x.data<T>(), x.shape(), pl, m2.data(), 0.0,
                  [mp](double& a, T v, std::int64_t o) {
                    const double d = static_cast<double>(v) - mp[o];
                    a += d * d;
                  },
                  sum);
    }
    return 0;
  });
  const double divisor = std::max(0.0, static_cast<double>(pl.count) - correction);
  for (double& v : m2) {
    v /= divisor;
    if (take_sqrt) v = std::sqrt(v);
  }
  return to_tensor(m2, pl.out_shape, x_in.dtype());
}

// ---- vector norms ----------------------------------------------------------------------------

// torch.linalg.vector_norm: ord inf/-inf (max/min |x|), 0 (count of non-zeros), 1, 2, or p.
Tensor vector_norm(const Tensor& x_in, double ord, std::span<const std::int64_t> dims, bool keepdim,
                   std::optional<DType> dtype, const char* op) {
  if (!is_floating(x_in.dtype())) {
    fail(std::string(op) + ": Expected a floating point or complex tensor as input. Got " +
         scalar_type_name(x_in.dtype()));
  }
  if (dtype && !is_floating(*dtype)) {
    fail(std::string(op) + ": dtype should be floating point or complex, but got " + scalar_type_name(*dtype));
  }
  const DType rt = dtype ? *dtype : x_in.dtype();
  const Tensor x = computable(x_in, rt);
  const ReducePlan pl = plan_reduction(x, dims, keepdim, op);
  const auto outputs = static_cast<std::size_t>(pl.kept_shape.numel());
  const bool inf = std::isinf(ord);
  if (inf && pl.count == 0) {
    fail(std::string(op) + ": Expected a non-empty tensor when ord is " + (ord > 0 ? "inf" : "-inf"));
  }
  std::vector<double> acc(outputs, inf && ord < 0 ? std::numeric_limits<double>::infinity() : 0.0);
  visit_dtype(x.dtype(), op, [&](auto t) {
    using T = decltype(t);
    const T* p = x.data<T>();
    auto run = [&](double init, auto add, auto merge) { reduce_into(p, x.shape(), pl, acc.data(), init, add, merge); };
    auto plus = [](double& a, double b) { a += b; };
    if (inf && ord > 0) {
      auto mx = [](double& a, double b) { if (std::isnan(b) || b > a) a = b; };
      run(0.0, [mx](double& a, T v, std::int64_t) { mx(a, std::abs(static_cast<double>(v))); }, mx);
    } else if (inf) {
      auto mn = [](double& a, double b) { if (std::isnan(b) || b < a) a = b; };
      run(std::numeric_limits<double>::infinity(),
          [mn](double& a, T v, std::int64_t) { mn(a, std::abs(static_cast<double>(v))); }, mn);
    } else if (ord == 0.0) {
      run(0.0, [](double& a, T v, std::int64_t) { a += v != T(0); }, plus);
    } else if (ord == 1.0) {
      run(0.0, [](double& a, T v, std::int64_t) { a += std::abs(static_cast<double>(v)); }, plus);
    } else if (ord == 2.0) {
      run(0.0, [](double& a, T v, std::int64_t) { a += static_cast<double>(v) * static_cast<double>(v); }, plus);
    } else {
      run(0.0, [ord](double& a, T v, std::int64_t) { a += std::pow(std::abs(static_cast<double>(v)), ord); }, plus);
    }
    return 0;
  });
  if (!inf && ord != 0.0 && ord != 1.0) {
    for (double& v : acc) v = ord == 2.0 ? std::sqrt(v) : std::pow(v, 1.0 / ord);
  }
  return to_tensor(acc, pl.out_shape, rt);
}

// ---- logsumexp -------------------------------------------------------------------------------

Tensor logsumexp_impl(const Tensor& x_in, std::span<const std::int64_t> dims, bool keepdim) {
  const Tensor x = computable(x_in, is_floating(x_in.dtype()) ? std::nullopt : std::optional(DType::Float32));
  const DType rt = is_floating(x_in.dtype()) ? x_in.dtype() : DType::Float32;
  const Tensor mx = extremum<true>(x, dims, true, "logsumexp");
  const ReducePlan pl = plan_reduction(x, dims, keepdim, "logsumexp");
  std::vector<double> acc(static_cast<std::size_t>(pl.kept_shape.numel()), 0.0);
  visit_dtype(x.dtype(), "logsumexp", [&](auto t) {
    using T = decltype(t);
    std::int64_t rows = 0, len = 0;
    if constexpr (std::is_floating_point_v<T>) {
      if (trailing_rows(x, pl, rows, len)) {
        // Contiguous rows: Eigen's vectorised exp over each row shifted by its maximum.
        const T* m = mx.data<T>();
        for (std::int64_t r = 0; r < rows; ++r) {
          const T shift = std::isinf(m[r]) ? T(0) : m[r];
          const auto row = row_of(x.data<T>() + r * len, len);
          acc[static_cast<std::size_t>(r)] =
              std::log(static_cast<double>((row - shift).exp().sum())) + static_cast<double>(shift);
        }
        return 0;
      }
    }
    if constexpr (std::is_floating_point_v<T>) {
      const T* m = mx.data<T>();
      reduce_into(x.data<T>(), x.shape(), pl, acc.data(), 0.0,
                  [m](double& a, T v, std::int64_t o) {
                    // An infinite maximum is not subtracted (inf - inf would be NaN).
                    const double shift = std::isinf(m[o]) ? 0.0 : static_cast<double>(m[o]);
                    a += std::exp(static_cast<double>(v) - shift);
                  },
                  [](double& a, double b) { a += b; });
      for (std::size_t o = 0; o < acc.size(); ++o) {
        const double shift = std::isinf(m[o]) ? 0.0 : static_cast<double>(m[o]);
        acc[o] = std::log(acc[o]) + shift;
      }
    }
    return 0;
  });
  return to_tensor(acc, pl.out_shape, rt);
}

// ---- ops along one dim: [outer, n, inner] ------------------------------------------------------

struct AlongDim {
  std::int64_t dim = 0, outer = 1, n = 1, inner = 1;
  Shape reduced_shape;  // dim removed, or 1 with keepdim
};

AlongDim along(const Tensor& x, std::int64_t dim_in, bool keepdim, const char* op) {
  AlongDim a;
  const auto nd = static_cast<std::int64_t>(x.dim());
  a.dim = util::wrap_dim(dim_in, nd, op);
  if (nd == 0) return a;
  const Shape& s = x.shape();
  for (std::int64_t i = 0; i < a.dim; ++i) a.outer *= s[static_cast<std::size_t>(i)];
  a.n = s[static_cast<std::size_t>(a.dim)];
  for (std::int64_t i = a.dim + 1; i < nd; ++i) a.inner *= s[static_cast<std::size_t>(i)];
  for (std::int64_t i = 0; i < nd; ++i) {
    if (i != a.dim) a.reduced_shape.push_back(s[static_cast<std::size_t>(i)]);
    else if (keepdim) a.reduced_shape.push_back(1);
  }
  return a;
}

// The best value along the dim and its first index (max/min.dim, argmax/argmin).
template <bool Max>
std::pair<Tensor, Tensor> extremum_along(const Tensor& x_in, std::int64_t dim, bool keepdim, const char* op) {
  if (!x_in.defined()) fail(std::string(op) + ": undefined tensor");
  const AlongDim a = along(x_in, dim, keepdim, op);
  if (x_in.dim() > 0 && a.n == 0) {
    fail(std::string(op) + "(): Expected reduction dim " + std::to_string(a.dim) + " to have non-zero size.");
  }
  const Tensor x = computable(x_in, std::nullopt);
  Tensor values = Tensor::empty(a.reduced_shape, x.dtype());
  Tensor indices = Tensor::empty(a.reduced_shape, DType::Int64);
  if (x.numel() > 0) {
    visit_dtype(x.dtype(), op, [&](auto t) {
      using T = decltype(t);
      const T* p = x.data<T>();
      T* v = values.data<T>();
      std::int64_t* ix = indices.data<std::int64_t>();
      for (std::int64_t o = 0; o < a.outer; ++o) {
        const T* base = p + o * a.n * a.inner;
        T* vo = v + o * a.inner;
        std::int64_t* io = ix + o * a.inner;
        std::copy(base, base + a.inner, vo);
        std::fill(io, io + a.inner, 0);
        for (std::int64_t k = 1; k < a.n; ++k) {
          const T* row = base + k * a.inner;
          for (std::int64_t j = 0; j < a.inner; ++j) {
            if (better<Max>(row[j], vo[j])) {
              vo[j] = row[j];
              io[j] = k;
            }
          }
        }
      }
      return 0;
    });
  }
  return {values.to(x_in.dtype()), std::move(indices)};
}

template <bool Max>
Tensor extremum_all(const Tensor& x, const char* op) {
  if (x.numel() == 0) {
    fail(std::string(op) + "(): Expected reduction dim to be specified for input.numel() == 0. Specify the reduction "
         "dim with the 'dim' argument.");
  }
  return extremum<Max>(x, {}, false, op);
}

template <bool Max>
Tensor arg_extremum(const Tensor& x, const Value& dim, bool keepdim, const char* op) {
  if (dim.is_none()) {
    if (x.numel() == 0) fail(std::string(op) + "(): Expected reduction dim to be specified for input.numel() == 0.");
    Tensor flat = x.view(Shape{x.numel()});
    Tensor idx = extremum_along<Max>(flat, 0, false, op).second;
    if (!keepdim) return idx;
    Shape ones;
    for (std::size_t i = 0; i < x.dim(); ++i) ones.push_back(1);
    return idx.view(ones);
  }
  return extremum_along<Max>(x, dim.to_int(), keepdim, op).second;
}

// ---- cumsum ------------------------------------------------------------------------------------

Tensor cumsum_impl(const Tensor& x_in, std::int64_t dim, std::optional<DType> dtype) {
  const DType rt = integral_to_long(x_in, dtype);
  const AlongDim a = along(x_in, dim, true, "cumsum");
  const Tensor x = computable(x_in, std::nullopt);
  Tensor out = Tensor::empty(x.shape(), is_floating(rt) ? DType::Float64 : DType::Int64);
  visit_dtype(x.dtype(), "cumsum", [&](auto t) {
    using T = decltype(t);
    const T* p = x.data<T>();
    auto run = [&](auto* o) {
      using Acc = std::remove_pointer_t<decltype(o)>;
      if (a.inner == 1) {  // contiguous rows: the running sum stays in a register
        for (std::int64_t b = 0; b < a.outer; ++b) {
          const T* src = p + b * a.n;
          Acc* dst = o + b * a.n;
          Acc run = 0;
          for (std::int64_t k = 0; k < a.n; ++k) dst[k] = run += static_cast<Acc>(src[k]);
        }
        return;
      }
      for (std::int64_t b = 0; b < a.outer; ++b) {
        const T* src = p + b * a.n * a.inner;
        Acc* dst = o + b * a.n * a.inner;
        for (std::int64_t j = 0; j < a.inner; ++j) dst[j] = static_cast<Acc>(src[j]);
        for (std::int64_t k = 1; k < a.n; ++k)
          for (std::int64_t j = 0; j < a.inner; ++j)
            dst[k * a.inner + j] = dst[(k - 1) * a.inner + j] + static_cast<Acc>(src[k * a.inner + j]);
      }
    };
    if (is_floating(rt)) run(out.data<double>());
    else run(out.data<std::int64_t>());
    return 0;
  });
  return out.to(rt);
}

// ---- sort / topk -------------------------------------------------------------------------------

// Sorts each slice along dim (stable; NaN greatest) and keeps the first k of each.
std::pair<Tensor, Tensor> sorted_along(const Tensor& x_in, std::int64_t dim, std::int64_t k, bool descending,
                                       const char* op) {
  const AlongDim a = along(x_in, dim, true, op);
  if (k < 0 || k > a.n) fail(std::string(op) + ": selected index k out of range");
  Shape out_shape = x_in.shape();
  if (x_in.dim() > 0) out_shape[static_cast<std::size_t>(a.dim)] = k;
  const Tensor x = computable(x_in, std::nullopt);
  Tensor values = Tensor::empty(out_shape, x.dtype());
  Tensor indices = Tensor::empty(out_shape, DType::Int64);
  visit_dtype(x.dtype(), op, [&](auto t) {
    using T = decltype(t);
    const T* p = x.data<T>();
    T* v = values.data<T>();
    std::int64_t* ix = indices.data<std::int64_t>();
    std::vector<std::int64_t> order(static_cast<std::size_t>(a.n));
    for (std::int64_t o = 0; o < a.outer; ++o) {
      for (std::int64_t j = 0; j < a.inner; ++j) {
        const T* col = p + o * a.n * a.inner + j;
        std::iota(order.begin(), order.end(), std::int64_t{0});
        auto cmp = [&](std::int64_t l, std::int64_t r) {
          return descending ? better<true>(col[l * a.inner], col[r * a.inner])
                            : better<false>(col[l * a.inner], col[r * a.inner]);
        };
        if (k < a.n) {
          std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](std::int64_t l, std::int64_t r) {
            return cmp(l, r) || (!cmp(r, l) && l < r);
          });
        } else {
          std::stable_sort(order.begin(), order.end(), cmp);
        }
        for (std::int64_t q = 0; q < k; ++q) {
          const std::int64_t at = (o * k + q) * a.inner + j;
          v[at] = col[order[static_cast<std::size_t>(q)] * a.inner];
          ix[at] = order[static_cast<std::size_t>(q)];
        }
      }
    }
    return 0;
  });
  return {values.to(x_in.dtype()), std::move(indices)};
}

// ---- softmax / log_softmax ---------------------------------------------------------------------

template <bool Log, class T>
void softmax_rows(const T* x, T* y, const AlongDim& a) {
  using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;
  if (a.inner == 1) {
    for (std::int64_t o = 0; o < a.outer; ++o) {
      Eigen::Map<const Arr> in(x + o * a.n, a.n);
      Eigen::Map<Arr> out(y + o * a.n, a.n);
      const T m = in.maxCoeff();
      if constexpr (Log) {
        out = in - m;
        out -= std::log(out.exp().sum());
      } else {
        out = (in - m).exp();
        out /= out.sum();
      }
    }
    return;
  }
  // Softmax over a dim with trailing elements: vectorise across the inner elements.
  Arr mx(a.inner), sum(a.inner);
  for (std::int64_t o = 0; o < a.outer; ++o) {
    const T* in = x + o * a.n * a.inner;
    T* out = y + o * a.n * a.inner;
    mx = Eigen::Map<const Arr>(in, a.inner);
    for (std::int64_t k = 1; k < a.n; ++k) mx = mx.max(Eigen::Map<const Arr>(in + k * a.inner, a.inner));
    sum.setZero();
    for (std::int64_t k = 0; k < a.n; ++k) {
      Eigen::Map<Arr> row(out + k * a.inner, a.inner);
      row = (Eigen::Map<const Arr>(in + k * a.inner, a.inner) - mx).exp();
      sum += row;
    }
    if constexpr (Log) {
      sum = sum.log() + mx;
      for (std::int64_t k = 0; k < a.n; ++k)
        Eigen::Map<Arr>(out + k * a.inner, a.inner) = Eigen::Map<const Arr>(in + k * a.inner, a.inner) - sum;
    } else {
      sum = sum.inverse();
      for (std::int64_t k = 0; k < a.n; ++k) Eigen::Map<Arr>(out + k * a.inner, a.inner) *= sum;
    }
  }
}

// softmax(x, dim, dtype): x is first converted to dtype; floating inputs only.
template <bool Log>
Tensor softmax_impl(const Tensor& x_in, std::int64_t dim, std::optional<DType> dtype) {
  const char* op = Log ? "log_softmax" : "softmax";
  const DType rt = dtype ? *dtype : x_in.dtype();
  if (!is_floating(rt)) {
    fail(std::string(op) + ": \"" + (Log ? "log_softmax_lastdim_kernel_impl" : "softmax_lastdim_kernel_impl") +
         "\" not implemented for '" + scalar_type_name(rt) + "'");
  }
  const AlongDim a = along(x_in, dim, true, op);
  const Tensor x = computable(x_in, rt);
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  if (x.numel() > 0) {
    if (x.dtype() == DType::Float32) softmax_rows<Log>(x.data<float>(), out.data<float>(), a);
    else softmax_rows<Log>(x.data<double>(), out.data<double>(), a);
  }
  return out.to(rt);
}

// F.softmax's dim=None: PyTorch's legacy _get_softmax_dim (0 for 0-, 1- and 3-dim inputs, else 1).
std::int64_t legacy_softmax_dim(const Tensor& x, const Value& dim) {
  if (!dim.is_none()) return dim.to_int();
  const std::size_t nd = x.dim();
  return (nd == 0 || nd == 1 || nd == 3) ? 0 : 1;
}

}  // namespace

std::pair<Tensor, Tensor> max_along(const Tensor& x, std::int64_t dim, bool keepdim) {
  return extremum_along<true>(x, dim, keepdim, "max");
}

std::pair<Tensor, Tensor> min_along(const Tensor& x, std::int64_t dim, bool keepdim) {
  return extremum_along<false>(x, dim, keepdim, "min");
}

Tensor softmax(const Tensor& x, std::int64_t dim, std::optional<DType> dtype) {
  return softmax_impl<false>(x, dim, dtype);
}

Tensor log_softmax(const Tensor& x, std::int64_t dim, std::optional<DType> dtype) {
  return softmax_impl<true>(x, dim, dtype);
}

namespace {

// ---- kernels: the bound arguments in schema order (reduce.yaml) -----------------------------

Value pair(std::pair<Tensor, Tensor> p) { return Value(Tuple{{Value(std::move(p.first)), Value(std::move(p.second))}}); }

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
  const std::vector<std::int64_t> dims = dims_arg(a[1]);
  const bool keepdim = a[2].to_bool();
  return Value(Mean ? mean(x, dims, keepdim, dtype_arg(a[3])) : sum(x, dims, keepdim, dtype_arg(a[3])));
}

// prod(self, *, dtype) / prod.dim_int(self, dim, keepdim, *, dtype)
Value prod_kernel(std::span<const Value> a) { return Value(prod_impl(a[0].tensor(), {}, false, dtype_arg(a[1]))); }
Value prod_dim_kernel(std::span<const Value> a) {
  const std::int64_t dim = a[1].to_int();
  return Value(prod_impl(a[0].tensor(), std::span(&dim, 1), a[2].to_bool(), dtype_arg(a[3])));
}

// max(self) / min(self)
Value max_all(std::span<const Value> a) { return Value(extremum_all<true>(a[0].tensor(), "max")); }
Value min_all(std::span<const Value> a) { return Value(extremum_all<false>(a[0].tensor(), "min")); }

// max.dim / min.dim(self, dim, keepdim) -> (values, indices)
Value max_dim(std::span<const Value> a) { return pair(max_along(a[0].tensor(), a[1].to_int(), a[2].to_bool())); }
Value min_dim(std::span<const Value> a) { return pair(min_along(a[0].tensor(), a[1].to_int(), a[2].to_bool())); }

// max.other(self, other): torch.maximum.
Value max_other(std::span<const Value> a) { return binary(BinaryOp::Maximum, a[0], a[1]); }
// min.other(self, other): torch.minimum.
Value min_other(std::span<const Value> a) { return binary(BinaryOp::Minimum, a[0], a[1]); }

// amax / amin(self, dim=[], keepdim)
template <bool Max>
Value amax_kernel(std::span<const Value> a) {
  const Tensor& x = a[0].tensor();
  const std::vector<std::int64_t> dims = dims_arg(a[1]);
  const char* op = Max ? "amax" : "amin";
  if (dims.empty() && x.numel() == 0) {
    fail(std::string(op) + "(): Expected reduction dim to be specified for input.numel() == 0. Specify the "
         "reduction dim with the 'dim' argument.");
  }
  return Value(extremum<Max>(x, dims, a[2].to_bool(), op));
}

// argmax / argmin(self, dim=None, keepdim)
template <bool Max>
Value argmax_kernel(std::span<const Value> a) {
  return Value(arg_extremum<Max>(a[0].tensor(), a[1], a[2].to_bool(), Max ? "argmax" : "argmin"));
}

// all / any(self), all.dim / any.dim(self, dim, keepdim)
template <bool All>
Value all_kernel(std::span<const Value> a) { return Value(all_any<All>(a[0].tensor(), {}, false)); }
template <bool All>
Value all_dim_kernel(std::span<const Value> a) {
  const std::int64_t dim = a[1].to_int();
  return Value(all_any<All>(a[0].tensor(), std::span(&dim, 1), a[2].to_bool()));
}

// count_nonzero(self, dim=None) / count_nonzero.dim_IntList(self, dim)
Value count_nonzero_kernel(std::span<const Value> a) {
  if (a[1].is_none()) return Value(count_nonzero_impl(a[0].tensor(), {}));
  const std::int64_t dim = a[1].to_int();
  return Value(count_nonzero_impl(a[0].tensor(), std::span(&dim, 1)));
}
Value count_nonzero_dims_kernel(std::span<const Value> a) {
  return Value(count_nonzero_impl(a[0].tensor(), a[1].int_list()));  // [] counts over every dim
}

// std / var(self, unbiased)
template <bool Sqrt>
Value std_kernel(std::span<const Value> a) {
  return Value(variance(a[0].tensor(), {}, a[1].to_bool() ? 1.0 : 0.0, false, Sqrt));
}
// std.dim / var.dim(self, dim, unbiased, keepdim)
template <bool Sqrt>
Value std_dim_kernel(std::span<const Value> a) {
  return Value(variance(a[0].tensor(), dims_arg(a[1]), a[2].to_bool() ? 1.0 : 0.0, a[3].to_bool(), Sqrt));
}
// std.correction / var.correction(self, dim, *, correction, keepdim): correction None is 1.
template <bool Sqrt>
Value std_correction_kernel(std::span<const Value> a) {
  const double correction = a[2].is_none() ? 1.0 : static_cast<double>(a[2].to_int());
  return Value(variance(a[0].tensor(), dims_arg(a[1]), correction, a[3].to_bool(), Sqrt));
}

// linalg_vector_norm(self, ord, dim, keepdim, *, dtype)
double scalar_of(const Value& v) {
  if (v.is_tensor()) return v.tensor().item();
  if (v.kind() == Value::Kind::Bool) return v.to_bool() ? 1.0 : 0.0;
  return v.to_double();
}
Value linalg_vector_norm_kernel(std::span<const Value> a) {
  return Value(vector_norm(a[0].tensor(), scalar_of(a[1]), dims_arg(a[2]), a[3].to_bool(), dtype_arg(a[4]),
                           "linalg.vector_norm"));
}
// norm.ScalarOpt_dim(self, p, dim, keepdim) / norm.ScalarOpt_dim_dtype(..., *, dtype)
Value norm_dim_kernel(std::span<const Value> a) {
  const double p = a[1].is_none() ? 2.0 : scalar_of(a[1]);
  return Value(vector_norm(a[0].tensor(), p, a[2].int_list(), a[3].to_bool(), std::nullopt, "norm"));
}
Value norm_dim_dtype_kernel(std::span<const Value> a) {
  const double p = a[1].is_none() ? 2.0 : scalar_of(a[1]);
  return Value(vector_norm(a[0].tensor(), p, a[2].int_list(), a[3].to_bool(), a[4].dtype(), "norm"));
}

// torch.norm's p: "fro" (2 over the dims), a number, or None; "nuc" (a matrix norm) is
// not available.
double norm_p(const Value& p) {
  if (p.is_none()) return 2.0;
  if (p.kind() == Value::Kind::String) {
    if (p.str() == "fro") return 2.0;
    fail("norm: p " + quote(p.str()) + " is not supported (only 'fro' and numbers)");
  }
  if (!p.is_number() && !p.is_tensor() && p.kind() != Value::Kind::Bool)
    fail("norm: p must be a number or 'fro', got " + util::kind_str(p));
  return scalar_of(p);
}
std::vector<std::int64_t> norm_dims(const Value& dim) {
  if (dim.is_none()) return {};
  if (dim.is_int()) return {dim.to_int()};
  return util::int_list_arg(dim, "norm", "dim");
}
Tensor torch_norm(const Tensor& x, const Value& p, const Value& dim, bool keepdim, const Value& dtype) {
  if (p.kind() == Value::Kind::String && !dtype.is_none()) fail("norm: dtype argument is not supported in frobenius norm");
  return vector_norm(x, norm_p(p), norm_dims(dim), keepdim, dtype_arg(dtype), "norm");
}
// torch.functional.norm(input, p="fro", dim=None, keepdim=False, out=None, dtype=None)
Value norm_function_kernel(std::span<const Value> a) {
  if (!a[4].is_none()) fail("norm: out= is not supported");
  return Value(torch_norm(a[0].tensor(), a[1], a[2], a[3].to_bool(), a[5]));
}
// Tensor.norm(self, p="fro", dim=None, keepdim=False, dtype=None)
Value norm_method_kernel(std::span<const Value> a) {
  return Value(torch_norm(a[0].tensor(), a[1], a[2], a[3].to_bool(), a[4]));
}

// logsumexp(self, dim, keepdim)
Value logsumexp_kernel(std::span<const Value> a) {
  return Value(logsumexp_impl(a[0].tensor(), a[1].int_list(), a[2].to_bool()));
}

// cumsum(self, dim, *, dtype)
Value cumsum_kernel(std::span<const Value> a) {
  return Value(cumsum_impl(a[0].tensor(), a[1].to_int(), dtype_arg(a[2])));
}

// topk(self, k, dim, largest, sorted) -> (values, indices); results are always sorted.
Value topk_kernel(std::span<const Value> a) {
  return pair(sorted_along(a[0].tensor(), a[2].to_int(), a[1].to_int(), a[3].to_bool(), "topk"));
}
// sort(self, dim, descending) -> (values, indices); sort.stable(self, *, stable, dim, descending)
std::int64_t dim_size(const Tensor& x, std::int64_t dim, const char* op) {
  if (x.dim() == 0) return 1;
  return x.shape()[static_cast<std::size_t>(util::wrap_dim(dim, static_cast<std::int64_t>(x.dim()), op))];
}
Value sort_kernel(std::span<const Value> a) {
  const Tensor& x = a[0].tensor();
  return pair(sorted_along(x, a[1].to_int(), dim_size(x, a[1].to_int(), "sort"), a[2].to_bool(), "sort"));
}
Value sort_stable_kernel(std::span<const Value> a) {
  const Tensor& x = a[0].tensor();
  return pair(sorted_along(x, a[2].to_int(), dim_size(x, a[2].to_int(), "sort"), a[3].to_bool(), "sort"));
}
// argsort(self, dim, descending)
Value argsort_kernel(std::span<const Value> a) {
  const Tensor& x = a[0].tensor();
  return Value(sorted_along(x, a[1].to_int(), dim_size(x, a[1].to_int(), "argsort"), a[2].to_bool(), "argsort").second);
}

// softmax.int / log_softmax.int(self, dim, dtype)
template <bool Log>
Value softmax_int_kernel(std::span<const Value> a) {
  return Value(softmax_impl<Log>(a[0].tensor(), a[1].to_int(), dtype_arg(a[2])));
}
// _softmax / _log_softmax(self, dim, half_to_float)
template <bool Log>
Value softmax_aten_kernel(std::span<const Value> a) {
  const Tensor& x = a[0].tensor();
  const bool to_float = a[2].to_bool();
  if (to_float && x.dtype() != DType::Float16) {
    fail(std::string(Log ? "_log_softmax" : "_softmax") + ": conversion is supported for Half type only");
  }
  return Value(softmax_impl<Log>(x, a[1].to_int(), to_float ? std::optional(DType::Float32) : std::nullopt));
}
// F.softmax / F.log_softmax(input, dim=None, _stacklevel=3, dtype=None)
template <bool Log>
Value softmax_functional_kernel(std::span<const Value> a) {
  const Tensor& x = a[0].tensor();
  return Value(softmax_impl<Log>(x, legacy_softmax_dim(x, a[1]), dtype_arg(a[3])));
}

// ---- make_fx decompositions ------------------------------------------------------------------

Value int_list_value(std::span<const std::int64_t> v) {
  List l;
  for (std::int64_t d : v) l.items.emplace_back(d);
  return Value(std::move(l));
}

// std / var record their correction overload, as PyTorch 1.13 does.
Value record_correction(OpRecorder& rec, const OpCall& call, const char* overload, const Value& dims,
                        bool unbiased, bool keepdim) {
  Dict kw;
  kw.items.emplace_back("correction", Value(std::int64_t{unbiased ? 1 : 0}));
  if (keepdim) kw.items.emplace_back("keepdim", Value(true));
  return rec.record(overload, {call.args[0].sym, dims}, std::move(kw));
}
template <bool Sqrt>
Value std_decomposition(OpRecorder& rec, const OpCall& call) {
  return record_correction(rec, call, Sqrt ? "std.correction" : "var.correction", Value(), call.args[1].real.to_bool(),
                           false);
}
template <bool Sqrt>
Value std_dim_decomposition(OpRecorder& rec, const OpCall& call) {
  return record_correction(rec, call, Sqrt ? "std.correction" : "var.correction", call.args[1].real,
                           call.args[2].real.to_bool(), call.args[3].real.to_bool());
}

// argsort is sort's indices.
Value argsort_decomposition(OpRecorder& rec, const OpCall& call) {
  Value sorted = rec.record("sort.default", {call.args[0].sym, call.args[1].sym, call.args[2].sym});
  return sorted.tuple().items.at(1);
}

// torch.norm as PyTorch 1.13 records it: norm.ScalarOpt_dim(x, p, dims, keepdim), with
// the dtype overload when a dtype is given. "fro" is p 2 over the given dims ([] for all);
// a number p without dims lists every dim.
Value record_norm(OpRecorder& rec, const OpCall& call, const Value& p, const Value& dim, bool keepdim,
                  const Value& dtype) {
  const bool fro = p.is_none() || p.kind() == Value::Kind::String;
  std::vector<std::int64_t> dims = norm_dims(dim);
  if (dim.is_none() && !fro) {
    for (std::int64_t d = 0; d < static_cast<std::int64_t>(call.args[0].real.tensor().dim()); ++d) dims.push_back(d);
  }
  std::vector<Value> args{call.args[0].sym, fro ? Value(std::int64_t{2}) : p, int_list_value(dims), Value(keepdim)};
  if (dtype.is_none()) return rec.record("norm.ScalarOpt_dim", std::move(args));
  Dict kw;
  kw.items.emplace_back("dtype", dtype);
  return rec.record("norm.ScalarOpt_dim_dtype", std::move(args), std::move(kw));
}
Value norm_function_decomposition(OpRecorder& rec, const OpCall& call) {
  return record_norm(rec, call, call.args[1].real, call.args[2].real, call.args[3].real.to_bool(), call.args[5].real);
}
Value norm_method_decomposition(OpRecorder& rec, const OpCall& call) {
  return record_norm(rec, call, call.args[1].real, call.args[2].real, call.args[3].real.to_bool(), call.args[4].real);
}

// softmax(x, dim, dtype): _to_copy to the dtype when it differs, then _softmax(x, dim, False).
Value record_softmax(OpRecorder& rec, const TracedValue& x, std::int64_t dim, const Value& dtype, bool log) {
  Value in = x.sym;
  if (!dtype.is_none() && dtype.dtype() != x.real.tensor().dtype()) {
    Dict kw;
    kw.items.emplace_back("dtype", dtype);
    kw.items.emplace_back("layout", Value(Layout::Strided));
    kw.items.emplace_back("device", Value(Device{}));
    in = rec.record("_to_copy.default", {in}, std::move(kw));
  }
  return rec.record(log ? "_log_softmax.default" : "_softmax.default", {in, Value(dim), Value(false)});
}
template <bool Log>
Value softmax_int_decomposition(OpRecorder& rec, const OpCall& call) {
  return record_softmax(rec, call.args[0], call.args[1].real.to_int(), call.args[2].real, Log);
}
template <bool Log>
Value softmax_functional_decomposition(OpRecorder& rec, const OpCall& call) {
  const std::int64_t dim = legacy_softmax_dim(call.args[0].real.tensor(), call.args[1].real);
  return record_softmax(rec, call.args[0], dim, call.args[3].real, Log);
}

// ---- leaf modules ------------------------------------------------------------------------------

// Softmax2d: softmax over the channels of a [C, H, W] or [N, C, H, W] input.
Value softmax2d_forward(const Module&, std::span<const Value> in) {
  const Tensor& x = in[0].tensor();
  if (x.dim() != 3 && x.dim() != 4) {
    fail("Softmax2d: expected input to be 3D or 4D, got " + std::to_string(x.dim()) + "D instead");
  }
  return Value(softmax_impl<false>(x, -3, std::nullopt));
}
Value softmax2d_make_fx(OpRecorder& rec, const Module& m, const OpCall& call) {
  softmax2d_forward(m, std::span(&call.args[0].real, 1));
  return record_softmax(rec, call.args[0], -3, Value(), false);
}

}  // namespace

#include "reduce_table.inc"

}  // namespace fxpack::ops
