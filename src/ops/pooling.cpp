// Pooling kernels of pooling.yaml: average pooling (torch._C._nn.avg_pool2d), the 1-D
// poolings, which run as their 2-D forms over an [N, C, 1, L] view (as PyTorch's own
// max_pool1d and avg_pool1d do), and adaptive max pooling. The 2-D computations are nn.cpp's
// (kernels.hpp): float32 windows oneDNN can express run there, the rest on loops.
#include <cmath>
#include <limits>

#include "kernels.hpp"
#include "util.hpp"

namespace fxpack::ops {

using util::fail;

namespace {

// A 1-D pooling argument (an int or a list of one) as the pair (1, x) of the 2-D form.
std::array<std::int64_t, 2> single_arg(const Value& v, const char* op, const char* name, std::int64_t h) {
  const std::vector<std::int64_t> l = util::int_list_arg(v, op, name);
  if (l.size() != 1) {
    fail(std::string(op) + ": argument '" + name + "' must be an int or a tuple of one int, got " +
         std::to_string(l.size()) + " values");
  }
  return {h, l[0]};
}

bool empty_list(const Value& v) {
  return v.is_none() || ((v.kind() == Value::Kind::List || v.kind() == Value::Kind::Tuple) && v.items().empty());
}

// [N, C, L] or [C, L] -> [N, C, 1, L] (or [C, 1, L], which the 2-D kernels take as unbatched).
Tensor as_2d(const Tensor& x, const char* op) {
  if (x.dim() == 3) return x.view(Shape{x.shape()[0], x.shape()[1], 1, x.shape()[2]});
  if (x.dim() == 2) return x.view(Shape{x.shape()[0], 1, x.shape()[1]});
  fail(std::string(op) + ": Expected 2D or 3D (batch mode) tensor for input, but got shape " + x.shape().to_string());
}

// The 2-D result back to the 1-D input's rank.
Tensor from_2d(const Tensor& y, const Tensor& x) {
  if (x.dim() == 3) return y.view(Shape{y.shape()[0], y.shape()[1], y.shape()[3]});
  return y.view(Shape{y.shape()[0], y.shape()[2]});
}

Pool2dOptions pool1d_options(const Value& kernel, const Value& stride, const Value& padding, const Value* dilation,
                             bool ceil_mode, const char* op) {
  Pool2dOptions o;
  o.kernel = single_arg(kernel, op, "kernel_size", 1);
  o.stride = empty_list(stride) ? o.kernel : single_arg(stride, op, "stride", 1);
  o.padding = single_arg(padding, op, "padding", 0);
  if (dilation) o.dilation = single_arg(*dilation, op, "dilation", 1);
  o.ceil_mode = ceil_mode;
  return o;
}

Value pair(Tensor a, Tensor b) { return Value(Tuple{{Value(std::move(a)), Value(std::move(b))}}); }

// ---- adaptive max pooling ---------------------------------------------------------------

// PyTorch's adaptive windows: [floor(i * in / out), ceil((i + 1) * in / out)); NaN wins.
template <class T>
void adaptive_max_typed(const Tensor& x, Tensor& out, Tensor& idx) {
  const std::int64_t NC = x.shape()[0] * x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  const std::int64_t OH = out.shape()[2], OW = out.shape()[3];
  const T* xd = x.data<T>();
  T* od = out.data<T>();
  std::int64_t* id = idx.data<std::int64_t>();
  for (std::int64_t p = 0; p < NC; ++p) {
    const T* plane = xd + p * H * W;
    for (std::int64_t oh = 0; oh < OH; ++oh) {
      const std::int64_t h0 = (oh * H) / OH, h1 = ((oh + 1) * H + OH - 1) / OH;
      for (std::int64_t ow = 0; ow < OW; ++ow) {
        const std::int64_t w0 = (ow * W) / OW, w1 = ((ow + 1) * W + OW - 1) / OW;
        T best = -std::numeric_limits<T>::infinity();
        std::int64_t at = h0 * W + w0;
        for (std::int64_t ih = h0; ih < h1; ++ih) {
          for (std::int64_t iw = w0; iw < w1; ++iw) {
            const T v = plane[ih * W + iw];
            if (v > best || std::isnan(v)) {
              best = v;
              at = ih * W + iw;
            }
            if (std::isnan(best)) break;
          }
          if (std::isnan(best)) break;
        }
        od[(p * OH + oh) * OW + ow] = best;
        id[(p * OH + oh) * OW + ow] = at;
      }
    }
  }
}

}  // namespace

std::pair<Tensor, Tensor> adaptive_max_pool2d(const Tensor& xin, std::array<std::optional<std::int64_t>, 2> size) {
  if (!xin.defined()) fail("adaptive_max_pool2d: undefined tensor");
  if (xin.dim() != 4 && xin.dim() != 3) {
    fail("adaptive_max_pool2d: Expected 3D or 4D tensor, but got shape " + xin.shape().to_string());
  }
  const Tensor x = xin.dim() == 4 ? xin : xin.view(Shape{1, xin.shape()[0], xin.shape()[1], xin.shape()[2]});
  if (x.dtype() != DType::Float32 && x.dtype() != DType::Float64) {
    fail("adaptive_max_pool2d: not implemented for " + std::string(dtype_name(x.dtype())) + " tensors");
  }
  for (std::size_t d = 1; d < 4; ++d) {
    if (x.shape()[d] == 0) {
      fail("adaptive_max_pool2d: Expected input to have non-zero size for non-batch dimensions, but input has shape " +
           xin.shape().to_string());
    }
  }
  const std::int64_t OH = size[0] ? *size[0] : x.shape()[2], OW = size[1] ? *size[1] : x.shape()[3];
  constexpr std::int64_t kMax = std::int64_t{1} << 31;
  if (OH < 0 || OW < 0 || OH > kMax || OW > kMax) {
    fail("adaptive_max_pool2d: output_size must be non-negative and at most 2^31, got (" + std::to_string(OH) + ", " +
         std::to_string(OW) + ")");
  }
  const Shape os{x.shape()[0], x.shape()[1], OH, OW};
  Tensor out = Tensor::empty(os, x.dtype()), idx = Tensor::empty(os, DType::Int64);
  if (x.dtype() == DType::Float32) adaptive_max_typed<float>(x, out, idx);
  else adaptive_max_typed<double>(x, out, idx);
  if (xin.dim() == 3) return {out.view(Shape{os[1], OH, OW}), idx.view(Shape{os[1], OH, OW})};
  return {out, idx};
}

namespace {

// ---- Kernels (named by pooling.yaml) ----------------------------------------------------

// avg_pool2d(self, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
Value avg_pool2d_kernel(std::span<const Value> a) {
  const Pool2dOptions o = pool2d_options(a[1], a[2], a[3], Value(std::int64_t{1}), a[4].to_bool(), "avg_pool2d");
  std::optional<std::int64_t> divisor;
  if (!a[6].is_none()) divisor = a[6].to_int();
  return Value(avg_pool2d(a[0].tensor(), o, a[5].to_bool(), divisor));
}

// avg_pool1d(self, kernel_size, stride, padding, ceil_mode, count_include_pad)
Value avg_pool1d_kernel(std::span<const Value> a) {
  const Tensor& x = a[0].tensor();
  const Pool2dOptions o = pool1d_options(a[1], a[2], a[3], nullptr, a[4].to_bool(), "avg_pool1d");
  return Value(from_2d(avg_pool2d(as_2d(x, "avg_pool1d"), o, a[5].to_bool()), x));
}

// max_pool2d(self, kernel_size, stride, padding, dilation, ceil_mode)
Value max_pool2d_kernel(std::span<const Value> a) {
  return Value(max_pool2d(a[0].tensor(), pool2d_options(a[1], a[2], a[3], a[4], a[5].to_bool(), "max_pool2d")));
}

// max_pool1d(self, kernel_size, stride, padding, dilation, ceil_mode)
Value max_pool1d_kernel(std::span<const Value> a) {
  const Tensor& x = a[0].tensor();
  const Pool2dOptions o = pool1d_options(a[1], a[2], a[3], &a[4], a[5].to_bool(), "max_pool1d");
  return Value(from_2d(max_pool2d(as_2d(x, "max_pool1d"), o), x));
}

// max_pool1d_with_indices(self, kernel_size, stride, padding, dilation, ceil_mode)
Value max_pool1d_with_indices_kernel(std::span<const Value> a) {
  const Tensor& x = a[0].tensor();
  const Pool2dOptions o = pool1d_options(a[1], a[2], a[3], &a[4], a[5].to_bool(), "max_pool1d_with_indices");
  auto [values, indices] = max_pool2d_with_indices(as_2d(x, "max_pool1d_with_indices"), o);
  return pair(from_2d(values, x), from_2d(indices, x));
}

// F.max_pool1d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
Value max_pool1d_functional(std::span<const Value> a) {
  if (a[6].to_bool()) return max_pool1d_with_indices_kernel(a.first(6));
  return max_pool1d_kernel(a.first(6));
}

// adaptive_avg_pool1d(self, output_size)
Value adaptive_avg_pool1d_kernel(std::span<const Value> a) {
  const Tensor& x = a[0].tensor();
  const std::vector<std::int64_t> size = util::int_list_arg(a[1], "adaptive_avg_pool1d", "output_size");
  if (size.size() != 1) fail("adaptive_avg_pool1d: output_size must have 1 entry, got " + python_repr(a[1]));
  if (x.dim() != 2 && x.dim() != 3) {
    fail("adaptive_avg_pool1d: Expected 2D or 3D tensor, but got shape " + x.shape().to_string());
  }
  return Value(from_2d(adaptive_avg_pool2d(as_2d(x, "adaptive_avg_pool1d"), {1, size[0]}), x));
}

// An output_size of F.adaptive_max_pool2d: an int, None, or a pair of those.
std::array<std::optional<std::int64_t>, 2> output_size_arg(const Value& v) {
  auto one = [&](const Value& e) -> std::optional<std::int64_t> {
    if (e.is_none()) return std::nullopt;
    if (!e.is_int()) fail("adaptive_max_pool2d: output_size must hold ints or None, got " + util::kind_str(e));
    return e.to_int();
  };
  if (v.kind() == Value::Kind::List || v.kind() == Value::Kind::Tuple) {
    if (v.items().size() != 2) fail("adaptive_max_pool2d: output_size must have 2 entries, got " + python_repr(v));
    return {one(v.items()[0]), one(v.items()[1])};
  }
  auto s = one(v);
  return {s, s};
}

// adaptive_max_pool2d(self, output_size) -> (values, indices)
Value adaptive_max_pool2d_kernel(std::span<const Value> a) {
  const std::vector<std::int64_t> s = util::int_list_arg(a[1], "adaptive_max_pool2d", "output_size");
  if (s.size() != 2) fail("adaptive_max_pool2d: output_size must have 2 entries, got " + python_repr(a[1]));
  auto [values, indices] = adaptive_max_pool2d(a[0].tensor(), {s[0], s[1]});
  return pair(std::move(values), std::move(indices));
}

// F.adaptive_max_pool2d(input, output_size, return_indices)
Value adaptive_max_pool2d_functional(std::span<const Value> a) {
  auto [values, indices] = adaptive_max_pool2d(a[0].tensor(), output_size_arg(a[1]));
  if (a[2].to_bool()) return pair(std::move(values), std::move(indices));
  return Value(std::move(values));
}

// F.adaptive_max_pool2d_with_indices(input, output_size, return_indices): always both.
Value adaptive_max_pool2d_with_indices_functional(std::span<const Value> a) {
  auto [values, indices] = adaptive_max_pool2d(a[0].tensor(), output_size_arg(a[1]));
  return pair(std::move(values), std::move(indices));
}

// ---- make_fx decompositions -------------------------------------------------------------

List int_list(std::initializer_list<std::int64_t> v) {
  List l;
  for (std::int64_t x : v) l.items.emplace_back(x);
  return l;
}

// torch.max_pool2d: PyTorch 1.13's CompositeImplicit max_pool2d records
// max_pool2d_with_indices and keeps the values.
Value max_pool2d_values_decomposition(OpRecorder& rec, const OpCall& call) {
  const auto& a = call.args;
  Value items = rec.record("max_pool2d_with_indices.default", {a[0].sym, a[1].sym, a[2].sym, a[3].sym, a[4].sym, a[5].sym});
  return items.items()[0];
}

// F.max_pool1d: max_pool1d (values only) or max_pool1d_with_indices.
Value max_pool1d_decomposition(OpRecorder& rec, const OpCall& call) {
  const auto& a = call.args;
  const Value stride = a[2].real.is_none() ? Value(List{}) : a[2].sym;
  if (a[6].real.to_bool()) {
    return rec.record("max_pool1d_with_indices.default", {a[0].sym, a[1].sym, stride, a[3].sym, a[4].sym, a[5].sym});
  }
  return rec.record("max_pool1d.default", {a[0].sym, a[1].sym, stride, a[3].sym, a[4].sym, a[5].sym});
}

// The output size F.adaptive_max_pool2d resolves (None keeps the input's size).
List resolved_size(const OpCall& call) {
  const Tensor& x = call.args[0].real.tensor();
  const auto os = output_size_arg(call.args[1].real);
  std::int64_t size[2];
  for (std::size_t i = 0; i < 2; ++i) size[i] = os[i] ? *os[i] : x.shape()[x.dim() - 2 + i];
  return int_list({size[0], size[1]});
}

// F.adaptive_max_pool2d: aten adaptive_max_pool2d and its getitems; the values, or both.
Value adaptive_max_pool2d_decomposition(OpRecorder& rec, const OpCall& call) {
  Value items = rec.record("adaptive_max_pool2d.default", {call.args[0].sym, Value(resolved_size(call))});
  if (call.args[2].real.to_bool()) return items;
  return items.items()[0];
}

Value adaptive_max_pool2d_with_indices_decomposition(OpRecorder& rec, const OpCall& call) {
  return rec.record("adaptive_max_pool2d.default", {call.args[0].sym, Value(resolved_size(call))});
}

}  // namespace

#include "pooling_table.inc"

}  // namespace fxpack::ops
