// Layer kernels of layers.yaml: dropout (inference), embedding, one_hot, pixel_shuffle,
// normalize, group_norm, interpolate, constant_pad_nd, mse_loss, cosine_similarity. Gathers
// and copies move whole rows (memcpy of the element bytes, any dtype); the reductions
// accumulate in double and round once, which keeps them within PyTorch's float32 results.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "elementwise.hpp"
#include "kernels.hpp"
#include "util.hpp"

namespace fxpack::ops {

using util::fail;

namespace {

std::string dt(DType d) { return std::string(dtype_name(d)); }

void check_floating(const Tensor& x, const char* op) {
  if (x.dtype() != DType::Float32 && x.dtype() != DType::Float64) {
    fail(std::string(op) + ": expected a float32 or float64 tensor, got " + dt(x.dtype()));
  }
}

// x viewed as [outer, n, inner] around dim.
struct AroundDim {
  std::int64_t outer = 1, n = 1, inner = 1;
};
AroundDim around(const Shape& s, std::int64_t dim) {
  AroundDim a;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto d = static_cast<std::int64_t>(i);
    if (d < dim) a.outer *= s[i];
    else if (d == dim) a.n = s[i];
    else a.inner *= s[i];
  }
  return a;
}

Shape without_dim(const Shape& s, std::int64_t dim) {
  Shape r;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (static_cast<std::int64_t>(i) != dim) r.push_back(s[i]);
  }
  return r;
}

}  // namespace

// ---- dropout ----------------------------------------------------------------------------

namespace {

Tensor dropout(const Tensor& x, double p, bool training, const char* op) {
  if (!(p >= 0.0 && p <= 1.0)) {
    fail(std::string(op) + ": dropout probability has to be between 0 and 1, but got " + python_float_repr(p));
  }
  if (training && p != 0.0) {
    fail(std::string(op) + ": training=True draws a random mask, which fxpack does not do (it runs inference); "
                           "call it with training=False, as a module in eval mode does");
  }
  return x;
}

// F.dropout / F.dropout2d(input, p, training, inplace)
Value dropout_functional(std::span<const Value> a) {
  return Value(dropout(a[0].tensor(), a[1].to_double(), a[2].to_bool(), "dropout"));
}

// dropout(input, p, train)
Value dropout_kernel(std::span<const Value> a) {
  return Value(dropout(a[0].tensor(), a[1].to_double(), a[2].to_bool(), "dropout"));
}

// Dropout for inference is the identity: make_fx records nothing (as PyTorch's
// CompositeImplicit dropout returns its input when not training).
Value dropout_decomposition(OpRecorder&, const OpCall& call) { return call.args[0].sym; }

}  // namespace

// ---- embedding, one_hot, pixel_shuffle ----------------------------------------------------

Tensor embedding(const Tensor& weight, const Tensor& indices) {
  if (weight.dim() != 2) fail("embedding: 'weight' must be 2-D, got shape " + weight.shape().to_string());
  if (indices.dtype() != DType::Int64 && indices.dtype() != DType::Int32) {
    fail("embedding: Expected tensor for argument #1 'indices' to have one of the following scalar types: Long, Int; "
         "but got " + dt(indices.dtype()) + " instead");
  }
  const std::int64_t V = weight.shape()[0], D = weight.shape()[1];
  Shape os = indices.shape();
  os.push_back(D);
  Tensor out = Tensor::empty(os, weight.dtype());
  const std::size_t row = static_cast<std::size_t>(D) * element_size(weight.dtype());
  const std::byte* w = weight.bytes().data();
  std::byte* o = out.storage()->data() + out.byte_offset();
  for (std::int64_t i = 0; i < indices.numel(); ++i) {
    const std::int64_t k = indices.dtype() == DType::Int64 ? indices.data<std::int64_t>()[i]
                                                            : indices.data<std::int32_t>()[i];
    if (k < 0 || k >= V) fail("embedding: index out of range in self (index " + std::to_string(k) + ", " +
                              std::to_string(V) + " embeddings)");
    if (row) std::memcpy(o + static_cast<std::size_t>(i) * row, w + static_cast<std::size_t>(k) * row, row);
  }
  return out;
}

Tensor one_hot(const Tensor& x, std::int64_t num_classes) {
  if (x.dtype() != DType::Int64) fail("one_hot: one_hot is only applicable to index tensor, got " + dt(x.dtype()));
  const std::int64_t* xd = x.data<std::int64_t>();
  if (num_classes == -1) {
    if (x.numel() == 0) fail("one_hot: Can not infer total number of classes from empty tensor.");
    num_classes = *std::max_element(xd, xd + x.numel()) + 1;
  } else if (num_classes < -1) {
    fail("one_hot: num_classes should be positive or -1, got " + std::to_string(num_classes));
  }
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    if (xd[i] < 0) fail("one_hot: Class values must be non-negative.");
    if (xd[i] >= num_classes) fail("one_hot: Class values must be smaller than num_classes.");
  }
  Shape os = x.shape();
  os.push_back(num_classes);
  Tensor out = Tensor::zeros(os, DType::Int64);
  std::int64_t* od = out.data<std::int64_t>();
  for (std::int64_t i = 0; i < x.numel(); ++i) od[i * num_classes + xd[i]] = 1;
  return out;
}

Tensor pixel_shuffle(const Tensor& x, std::int64_t r) {
  if (x.dim() < 3) {
    fail("pixel_shuffle: expects input to have at least 3 dimensions, but got input with " + std::to_string(x.dim()) +
         " dimension(s)");
  }
  if (r <= 0) fail("pixel_shuffle: expects a positive upscale_factor, but got " + std::to_string(r));
  const std::size_t nd = x.dim();
  const std::int64_t C = x.shape()[nd - 3], H = x.shape()[nd - 2], W = x.shape()[nd - 1];
  if (C % (r * r) != 0) {
    fail("pixel_shuffle: expects its input's 'channel' dimension to be divisible by the square of upscale_factor, "
         "but input.size(-3)=" + std::to_string(C) + " is not divisible by " + std::to_string(r * r));
  }
  const std::int64_t OC = C / (r * r);
  Shape os = x.shape();
  os[nd - 3] = OC;
  os[nd - 2] = H * r;
  os[nd - 1] = W * r;
  Tensor out = Tensor::empty(os, x.dtype());
  const std::size_t es = element_size(x.dtype());
  const std::byte* src = x.bytes().data();
  std::byte* dst = out.storage()->data() + out.byte_offset();
  const std::int64_t batch = C ? x.numel() / (C * H * W) : 0;
  std::int64_t o = 0;
  for (std::int64_t b = 0; b < batch; ++b) {
    for (std::int64_t c = 0; c < OC; ++c) {
      for (std::int64_t h = 0; h < H; ++h) {
        for (std::int64_t i = 0; i < r; ++i) {
          for (std::int64_t w = 0; w < W; ++w) {
            for (std::int64_t j = 0; j < r; ++j, ++o) {
              const std::int64_t in = ((b * C + (c * r + i) * r + j) * H + h) * W + w;
              std::memcpy(dst + static_cast<std::size_t>(o) * es, src + static_cast<std::size_t>(in) * es, es);
            }
          }
        }
      }
    }
  }
  return out;
}

namespace {

// F.embedding(input, weight, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse):
// padding_idx only matters for gradients; max_norm would renormalise the weight in place.
Value embedding_functional(std::span<const Value> a) {
  const Tensor& w = a[1].tensor();
  if (!a[2].is_none()) {
    const std::int64_t p = a[2].to_int(), V = w.dim() ? w.shape()[0] : 0;
    if (p >= V || p < -V) fail("embedding: Padding_idx must be within num_embeddings");
  }
  if (!a[3].is_none()) fail("embedding: max_norm renormalises the weight in place, which fxpack does not do");
  return Value(embedding(w, a[0].tensor()));
}

// embedding(weight, indices, padding_idx, scale_grad_by_freq, sparse)
Value embedding_kernel(std::span<const Value> a) { return Value(embedding(a[0].tensor(), a[1].tensor())); }

// F.embedding records aten embedding(weight, input, padding_idx normalised, -1 for None).
Value embedding_decomposition(OpRecorder& rec, const OpCall& call) {
  const auto& a = call.args;
  std::int64_t p = -1;
  if (!a[2].real.is_none()) {
    p = a[2].real.to_int();
    if (p < 0) p += a[1].real.tensor().shape()[0];
  }
  if (p == -1) return rec.record("embedding.default", {a[1].sym, a[0].sym});
  return rec.record("embedding.default", {a[1].sym, a[0].sym, Value(p)});
}

// one_hot(self, num_classes)
Value one_hot_kernel(std::span<const Value> a) { return Value(one_hot(a[0].tensor(), a[1].to_int())); }

// pixel_shuffle(self, upscale_factor)
Value pixel_shuffle_kernel(std::span<const Value> a) { return Value(pixel_shuffle(a[0].tensor(), a[1].to_int())); }

}  // namespace

// ---- normalize, group_norm ----------------------------------------------------------------

namespace {

template <class T>
void normalize_typed(const Tensor& x, Tensor& out, const AroundDim& g, double p, double eps) {
  const T* xd = x.data<T>();
  T* od = out.data<T>();
  for (std::int64_t o = 0; o < g.outer; ++o) {
    for (std::int64_t i = 0; i < g.inner; ++i) {
      const std::int64_t base = o * g.n * g.inner + i;
      double norm = 0;
      if (std::isinf(p)) {
        for (std::int64_t k = 0; k < g.n; ++k) norm = std::max(norm, std::abs(static_cast<double>(xd[base + k * g.inner])));
      } else if (p == 2.0) {
        for (std::int64_t k = 0; k < g.n; ++k) {
          const double v = xd[base + k * g.inner];
          norm += v * v;
        }
        norm = std::sqrt(norm);
      } else if (p == 1.0) {
        for (std::int64_t k = 0; k < g.n; ++k) norm += std::abs(static_cast<double>(xd[base + k * g.inner]));
      } else if (p == 0.0) {
        for (std::int64_t k = 0; k < g.n; ++k) norm += xd[base + k * g.inner] != T(0) ? 1.0 : 0.0;
      } else {
        for (std::int64_t k = 0; k < g.n; ++k) norm += std::pow(std::abs(static_cast<double>(xd[base + k * g.inner])), p);
        norm = std::pow(norm, 1.0 / p);
      }
      const T denom = static_cast<T>(std::max(norm, eps));
      for (std::int64_t k = 0; k < g.n; ++k) od[base + k * g.inner] = xd[base + k * g.inner] / denom;
    }
  }
}

template <class T>
void group_norm_typed(const Tensor& x, Tensor& out, std::int64_t G, const Tensor* w, const Tensor* b, double eps) {
  const std::int64_t N = x.shape()[0], C = x.shape()[1];
  const std::int64_t inner = N * C != 0 ? x.numel() / (N * C) : 0;
  const std::int64_t per_group = (C / G) * inner;
  const T* xd = x.data<T>();
  T* od = out.data<T>();
  for (std::int64_t n = 0; n < N; ++n) {
    for (std::int64_t g = 0; g < G; ++g) {
      const std::int64_t off = (n * C + g * (C / G)) * inner;
      double mean = 0, var = 0;
      for (std::int64_t i = 0; i < per_group; ++i) mean += xd[off + i];
      mean /= static_cast<double>(std::max<std::int64_t>(per_group, 1));
      for (std::int64_t i = 0; i < per_group; ++i) {
        const double d = xd[off + i] - mean;
        var += d * d;
      }
      var /= static_cast<double>(std::max<std::int64_t>(per_group, 1));
      const double invstd = 1.0 / std::sqrt(var + eps);
      for (std::int64_t c = 0; c < C / G; ++c) {
        const std::int64_t ch = g * (C / G) + c;
        const double scale = invstd * (w ? w->item_at(ch) : 1.0);
        const double shift = (b ? b->item_at(ch) : 0.0) - mean * scale;
        const std::int64_t co = off + c * inner;
        for (std::int64_t i = 0; i < inner; ++i) od[co + i] = static_cast<T>(xd[co + i] * scale + shift);
      }
    }
  }
}

}  // namespace

Tensor normalize(const Tensor& x, double p, std::int64_t dim, double eps) {
  check_floating(x, "normalize");
  if (x.dim() == 0) fail("normalize: expected a tensor with at least one dimension");
  const std::int64_t d = util::wrap_dim(dim, static_cast<std::int64_t>(x.dim()), "normalize");
  if (p < 0) fail("normalize: the norm order p must be non-negative, got " + python_float_repr(p));
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  const AroundDim g = around(x.shape(), d);
  if (x.dtype() == DType::Float32) normalize_typed<float>(x, out, g, p, eps);
  else normalize_typed<double>(x, out, g, p, eps);
  return out;
}

Tensor group_norm(const Tensor& x, std::int64_t num_groups, const Tensor* weight, const Tensor* bias, double eps) {
  check_floating(x, "group_norm");
  if (x.dim() < 2) fail("group_norm: Expected at least 2 dimensions for input tensor but received " + std::to_string(x.dim()));
  const std::int64_t C = x.shape()[1];
  if (num_groups <= 0 || C % num_groups != 0) {
    fail("group_norm: Expected number of channels in input to be divisible by num_groups, but got input of shape " +
         x.shape().to_string() + " and num_groups=" + std::to_string(num_groups));
  }
  for (const Tensor* t : {weight, bias}) {
    if (t && (t->dim() != 1 || t->shape()[0] != C)) {
      fail(std::string("group_norm: Expected ") + (t == weight ? "weight" : "bias") + " to be a vector of size equal to "
           "the number of channels in input, but got " + (t == weight ? "weight" : "bias") + " of shape " +
           t->shape().to_string() + " and input of shape " + x.shape().to_string());
    }
  }
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  if (x.dtype() == DType::Float32) group_norm_typed<float>(x, out, num_groups, weight, bias, eps);
  else group_norm_typed<double>(x, out, num_groups, weight, bias, eps);
  return out;
}

namespace {

// F.normalize(input, p, dim, eps, out)
Value normalize_functional(std::span<const Value> a) {
  if (!a[4].is_none()) fail("normalize: out= writes into an argument, which fxpack kernels never do");
  return Value(normalize(a[0].tensor(), a[1].to_double(), a[2].to_int(), a[3].to_double()));
}

// F.group_norm(input, num_groups, weight, bias, eps)
Value group_norm_functional(std::span<const Value> a) {
  return Value(group_norm(a[0].tensor(), a[1].to_int(), a[2].is_none() ? nullptr : &a[2].tensor(),
                          a[3].is_none() ? nullptr : &a[3].tensor(), a[4].to_double()));
}

}  // namespace

// ---- interpolate --------------------------------------------------------------------------

namespace {

// PyTorch's compute_scales_value: 1 / scale_factor when one was given, else in / out.
template <class T>
T scale_value(std::optional<double> scale, std::int64_t in, std::int64_t out) {
  return (scale && *scale > 0.0) ? static_cast<T>(1.0 / *scale) : static_cast<T>(in) / static_cast<T>(out);
}

// The source index along one dim of PyTorch's nearest / nearest-exact.
std::vector<std::int64_t> nearest_indices(std::int64_t in, std::int64_t out, std::optional<double> scale, bool exact) {
  std::vector<std::int64_t> idx(static_cast<std::size_t>(out));
  const float s = scale_value<float>(scale, in, out);
  for (std::int64_t o = 0; o < out; ++o) {
    std::int64_t i;
    if (!exact && out == in) i = o;
    else if (!exact && out == 2 * in) i = o >> 1;
    else i = std::min(static_cast<std::int64_t>(std::floor((static_cast<float>(o) + (exact ? 0.5f : 0.f)) * s)), in - 1);
    idx[static_cast<std::size_t>(o)] = i;
  }
  return idx;
}

// x [outer, spatial...] gathered along each spatial dim by `idx` (any dtype, by bytes).
Tensor gather_nearest(const Tensor& x, const Shape& out_shape, const std::vector<std::vector<std::int64_t>>& idx) {
  Tensor out = Tensor::empty(out_shape, x.dtype());
  const std::size_t es = element_size(x.dtype());
  const std::size_t k = idx.size(), nd = x.dim();
  std::int64_t outer = 1;
  for (std::size_t d = 0; d + k < nd; ++d) outer *= x.shape()[d];
  std::int64_t in_plane = 1, out_plane = 1;
  for (std::size_t d = nd - k; d < nd; ++d) {
    in_plane *= x.shape()[d];
    out_plane *= out_shape[d];
  }
  // Input strides of the spatial dims.
  std::vector<std::int64_t> in_stride(k, 1);
  for (std::size_t j = k - 1; j-- > 0;) in_stride[j] = in_stride[j + 1] * x.shape()[nd - k + j + 1];
  const std::byte* src = x.bytes().data();
  std::byte* dst = out.storage()->data() + out.byte_offset();
  std::vector<std::int64_t> pos(k, 0);
  for (std::int64_t o = 0; o < out_plane; ++o) {
    std::int64_t in_off = 0;
    for (std::size_t j = 0; j < k; ++j) in_off += idx[j][static_cast<std::size_t>(pos[j])] * in_stride[j];
    for (std::int64_t p = 0; p < outer; ++p) {
      std::memcpy(dst + static_cast<std::size_t>(p * out_plane + o) * es, src + static_cast<std::size_t>(p * in_plane + in_off) * es,
                  es);
    }
    for (std::size_t j = k; j-- > 0;) {
      if (++pos[j] < out_shape[nd - k + j]) break;
      pos[j] = 0;
    }
  }
  return out;
}

// PyTorch's linear interpolation weights along one dim (area_pixel_compute_source_index).
template <class T>
struct LinearTaps {
  std::vector<std::int64_t> i0, i1;
  std::vector<T> l0, l1;
};
template <class T>
LinearTaps<T> linear_taps(std::int64_t in, std::int64_t out, bool align_corners, std::optional<double> scale) {
  LinearTaps<T> t;
  const std::size_t n = static_cast<std::size_t>(out);
  t.i0.resize(n), t.i1.resize(n), t.l0.resize(n), t.l1.resize(n);
  T ratio;
  if (align_corners) ratio = out > 1 ? static_cast<T>(in - 1) / static_cast<T>(out - 1) : T(0);
  else ratio = scale_value<T>(scale, in, out);
  for (std::int64_t o = 0; o < out; ++o) {
    const auto u = static_cast<std::size_t>(o);
    if (out == in) {
      t.i0[u] = t.i1[u] = o;
      t.l0[u] = T(1), t.l1[u] = T(0);
      continue;
    }
    T real = align_corners ? ratio * static_cast<T>(o) : ratio * (static_cast<T>(o) + T(0.5)) - T(0.5);
    if (!align_corners && real < T(0)) real = T(0);
    const auto i0 = static_cast<std::int64_t>(real);
    t.i0[u] = i0;
    t.i1[u] = i0 + (i0 < in - 1 ? 1 : 0);
    t.l1[u] = std::min(std::max(real - static_cast<T>(i0), T(0)), T(1));
    t.l0[u] = T(1) - t.l1[u];
  }
  return t;
}

// x [P, H, W] -> out [P, OH, OW], bilinear.
template <class T>
void bilinear_typed(const Tensor& x, Tensor& out, std::int64_t P, std::int64_t H, std::int64_t W, std::int64_t OH,
                    std::int64_t OW, bool align_corners, std::optional<double> sh, std::optional<double> sw) {
  const LinearTaps<T> th = linear_taps<T>(H, OH, align_corners, sh), tw = linear_taps<T>(W, OW, align_corners, sw);
  const T* xd = x.data<T>();
  T* od = out.data<T>();
  for (std::int64_t p = 0; p < P; ++p) {
    const T* plane = xd + p * H * W;
    for (std::int64_t oh = 0; oh < OH; ++oh) {
      const auto a = static_cast<std::size_t>(oh);
      const T* r0 = plane + th.i0[a] * W;
      const T* r1 = plane + th.i1[a] * W;
      T* orow = od + (p * OH + oh) * OW;
      for (std::int64_t ow = 0; ow < OW; ++ow) {
        const auto b = static_cast<std::size_t>(ow);
        orow[ow] = th.l0[a] * (tw.l0[b] * r0[tw.i0[b]] + tw.l1[b] * r0[tw.i1[b]]) +
                   th.l1[a] * (tw.l0[b] * r1[tw.i0[b]] + tw.l1[b] * r1[tw.i1[b]]);
      }
    }
  }
}

std::vector<double> float_list(const Value& v, std::size_t k, const char* what) {
  std::vector<double> r;
  if (v.kind() == Value::Kind::List || v.kind() == Value::Kind::Tuple) {
    for (const Value& e : v.items()) {
      if (!e.is_int() && !e.is_double()) fail(std::string("interpolate: ") + what + " must hold numbers, got " + python_repr(v));
      r.push_back(e.to_double());
    }
    if (r.size() != k) {
      fail(std::string("interpolate: Input and ") + what + " must have the same number of spatial dimensions, but got "
           "input with spatial dimensions of " + std::to_string(k) + " and " + what + " of " + python_repr(v) + ".");
    }
    return r;
  }
  if (!v.is_int() && !v.is_double()) fail(std::string("interpolate: ") + what + " must be a number or a tuple, got " + python_repr(v));
  return std::vector<double>(k, v.to_double());
}

// What F.interpolate resolves before calling aten's upsample_*: the mode, the output size and
// the scale factors the kernel uses (only when given and not recomputed; else in / out).
struct Resample {
  std::string mode;
  bool linear = false;
  bool align_corners = false;
  std::vector<std::int64_t> size;
  std::vector<std::optional<double>> scales;
};

void check_mode(const Tensor& x, const Resample& r) {
  const std::size_t k = x.dim() - 2;
  if (r.mode != "nearest" && r.mode != "nearest-exact" && !r.linear) {
    fail("interpolate: mode " + python_str_repr(r.mode) + " is not supported (nearest, nearest-exact, linear, bilinear)");
  }
  if ((r.mode == "linear" && k != 1) || (r.mode == "bilinear" && k != 2) || r.mode == "trilinear") {
    fail("interpolate: mode " + python_str_repr(r.mode) + " does not take a " + std::to_string(x.dim()) + "-D input");
  }
}

// F.interpolate(input, size, scale_factor, mode, align_corners, recompute_scale_factor, antialias)
Resample interpolate_plan(std::span<const Value> a) {
  const Tensor& x = a[0].tensor();
  Resample r;
  r.mode = a[3].str();
  if (x.dim() < 3 || x.dim() > 5) {
    fail("interpolate: expected a 3-D, 4-D or 5-D input [N, C, spatial...], got shape " + x.shape().to_string());
  }
  const std::size_t k = x.dim() - 2;
  r.linear = r.mode == "linear" || r.mode == "bilinear" || r.mode == "trilinear";
  if (!r.linear && !a[4].is_none()) {
    fail("interpolate: align_corners option can only be set with the interpolating modes: linear | bilinear | "
         "bicubic | trilinear");
  }
  check_mode(x, r);
  if (a[6].to_bool()) fail("interpolate: antialias=True is not supported");
  r.align_corners = r.linear && !a[4].is_none() && a[4].to_bool();
  r.size.resize(k);
  r.scales.resize(k);
  if (!a[1].is_none() && !a[2].is_none()) fail("interpolate: only one of size or scale_factor should be defined");
  if (!a[1].is_none()) {
    if (!a[5].is_none() && a[5].to_bool()) {
      fail("interpolate: recompute_scale_factor is not meaningful with an explicit size.");
    }
    const std::vector<double> s = float_list(a[1], k, "size");
    for (std::size_t i = 0; i < k; ++i) r.size[i] = static_cast<std::int64_t>(s[i]);
  } else if (!a[2].is_none()) {
    const std::vector<double> s = float_list(a[2], k, "scale_factor");
    const bool recompute = !a[5].is_none() && a[5].to_bool();
    for (std::size_t i = 0; i < k; ++i) {
      r.size[i] = static_cast<std::int64_t>(std::floor(static_cast<double>(x.shape()[2 + i]) * s[i]));
      if (!recompute) r.scales[i] = s[i];
    }
  } else {
    fail("interpolate: either size or scale_factor should be defined");
  }
  return r;
}

Tensor resample(const Tensor& x, const Resample& r) {
  const std::size_t k = r.size.size();
  Shape os = x.shape();
  for (std::size_t i = 0; i < k; ++i) {
    if (r.size[i] <= 0 || x.shape()[2 + i] <= 0) {
      fail("interpolate: Input and output sizes should be greater than 0, but got input shape " + x.shape().to_string() +
           " and output size " + std::to_string(r.size[i]));
    }
    os[2 + i] = r.size[i];
  }
  if (!r.linear) {
    std::vector<std::vector<std::int64_t>> idx;
    for (std::size_t i = 0; i < k; ++i) {
      idx.push_back(nearest_indices(x.shape()[2 + i], r.size[i], r.scales[i], r.mode == "nearest-exact"));
    }
    return gather_nearest(x, os, idx);
  }
  check_floating(x, "interpolate");
  const std::int64_t P = x.shape()[0] * x.shape()[1];
  const std::int64_t H = k == 2 ? x.shape()[2] : 1, W = x.shape()[x.dim() - 1];
  const std::int64_t OH = k == 2 ? r.size[0] : 1, OW = r.size[k - 1];
  const std::optional<double> sh = k == 2 ? r.scales[0] : std::nullopt, sw = r.scales[k - 1];
  Tensor out = Tensor::empty(os, x.dtype());
  if (x.dtype() == DType::Float32) bilinear_typed<float>(x, out, P, H, W, OH, OW, r.align_corners, sh, sw);
  else bilinear_typed<double>(x, out, P, H, W, OH, OW, r.align_corners, sh, sw);
  return out;
}

Value interpolate_functional(std::span<const Value> a) { return Value(resample(a[0].tensor(), interpolate_plan(a))); }

// aten upsample_*.vec(input, output_size, [align_corners,] scale_factors): exactly one of
// output_size and scale_factors.
Value upsample_vec(const Tensor& x, const Value& output_size, const Value& scale_factors, const char* mode,
                   bool align_corners, std::size_t k, const char* op) {
  if (x.dim() != k + 2) {
    fail(std::string(op) + ": expected a " + std::to_string(k + 2) + "-D input, got shape " + x.shape().to_string());
  }
  if (output_size.is_none() == scale_factors.is_none()) {
    fail(std::string(op) + ": Must specify exactly one of output_size and scale_factors");
  }
  Resample r;
  r.mode = mode;
  r.linear = r.mode == "linear" || r.mode == "bilinear";
  r.align_corners = align_corners;
  r.size.resize(k);
  r.scales.resize(k);
  const std::vector<double> v = float_list(output_size.is_none() ? scale_factors : output_size, k,
                                           output_size.is_none() ? "scale_factors" : "output_size");
  for (std::size_t i = 0; i < k; ++i) {
    if (output_size.is_none()) {
      r.size[i] = static_cast<std::int64_t>(static_cast<double>(x.shape()[2 + i]) * v[i]);
      r.scales[i] = v[i];
    } else {
      r.size[i] = static_cast<std::int64_t>(v[i]);
    }
  }
  return Value(resample(x, r));
}

Value upsample_nearest1d_kernel(std::span<const Value> a) {
  return upsample_vec(a[0].tensor(), a[1], a[2], "nearest", false, 1, "upsample_nearest1d");
}
Value upsample_nearest2d_kernel(std::span<const Value> a) {
  return upsample_vec(a[0].tensor(), a[1], a[2], "nearest", false, 2, "upsample_nearest2d");
}
Value upsample_nearest3d_kernel(std::span<const Value> a) {
  return upsample_vec(a[0].tensor(), a[1], a[2], "nearest", false, 3, "upsample_nearest3d");
}
Value upsample_nearest_exact1d_kernel(std::span<const Value> a) {
  return upsample_vec(a[0].tensor(), a[1], a[2], "nearest-exact", false, 1, "_upsample_nearest_exact1d");
}
Value upsample_nearest_exact2d_kernel(std::span<const Value> a) {
  return upsample_vec(a[0].tensor(), a[1], a[2], "nearest-exact", false, 2, "_upsample_nearest_exact2d");
}
Value upsample_linear1d_kernel(std::span<const Value> a) {
  return upsample_vec(a[0].tensor(), a[1], a[3], "linear", a[2].to_bool(), 1, "upsample_linear1d");
}
Value upsample_bilinear2d_kernel(std::span<const Value> a) {
  return upsample_vec(a[0].tensor(), a[1], a[3], "bilinear", a[2].to_bool(), 2, "upsample_bilinear2d");
}

// F.interpolate records the aten upsample_* overload of its mode and rank with PyTorch 1.13's
// arguments: the scale factors when they were given (output_size None), else the size.
Value interpolate_decomposition(OpRecorder& rec, const OpCall& call) {
  std::vector<Value> reals;
  for (const TracedValue& t : call.args) reals.push_back(t.real);
  const Resample r = interpolate_plan(reals);
  const std::size_t k = r.size.size();
  const bool scaled = r.scales[0].has_value();
  List sizes, scales;
  for (std::size_t i = 0; i < k; ++i) {
    sizes.items.emplace_back(r.size[i]);
    if (scaled) scales.items.emplace_back(*r.scales[i]);
  }
  const Value output_size = scaled ? Value() : Value(std::move(sizes));
  const Value scale_factors = scaled ? Value(std::move(scales)) : Value();
  const std::string dims = std::to_string(k) + "d.vec";
  if (r.mode == "nearest") return rec.record("upsample_nearest" + dims, {call.args[0].sym, output_size, scale_factors});
  if (r.mode == "nearest-exact") {
    if (k == 3) fail("interpolate: make_fx of 3-D nearest-exact is not supported");
    return rec.record("_upsample_nearest_exact" + dims, {call.args[0].sym, output_size, scale_factors});
  }
  const std::string name = k == 1 ? "upsample_linear1d.vec" : "upsample_bilinear2d.vec";
  return rec.record(name, {call.args[0].sym, output_size, Value(r.align_corners), scale_factors});
}

}  // namespace

// ---- constant_pad_nd ------------------------------------------------------------------------

namespace {

template <class T>
void fill_as(Tensor& t, double v) {
  std::fill(t.data<T>(), t.data<T>() + t.numel(), static_cast<T>(v));
}

}  // namespace

Tensor constant_pad(const Tensor& x, std::span<const std::int64_t> pad, double value) {
  const std::size_t nd = x.dim();
  if (pad.size() % 2 != 0) fail("constant_pad_nd: Length of pad must be even but instead it equals " + std::to_string(pad.size()));
  if (pad.size() / 2 > nd) {
    fail("constant_pad_nd: Length of pad should be no more than twice the number of dimensions of the input. Pad length is " +
         std::to_string(pad.size()) + " while the input has " + std::to_string(nd) + " dimensions.");
  }
  std::vector<std::int64_t> before(nd, 0), after(nd, 0);
  for (std::size_t i = 0; i < pad.size() / 2; ++i) {
    before[nd - 1 - i] = pad[2 * i];
    after[nd - 1 - i] = pad[2 * i + 1];
  }
  Shape os = x.shape();
  for (std::size_t d = 0; d < nd; ++d) {
    os[d] = x.shape()[d] + before[d] + after[d];
    if (os[d] < 0) {
      fail("constant_pad_nd: The input size " + std::to_string(x.shape()[d]) + ", plus negative padding " +
           std::to_string(before[d]) + " and " + std::to_string(after[d]) + " resulted in a negative output size, which is "
           "invalid. Check dimension " + std::to_string(d) + " of your input.");
    }
  }
  Tensor out = Tensor::empty(os, x.dtype());
  switch (x.dtype()) {
    case DType::Float32: fill_as<float>(out, value); break;
    case DType::Float64: fill_as<double>(out, value); break;
    case DType::Int64: fill_as<std::int64_t>(out, value); break;
    case DType::Int32: fill_as<std::int32_t>(out, value); break;
    case DType::Int16: fill_as<std::int16_t>(out, value); break;
    case DType::Int8: fill_as<std::int8_t>(out, value); break;
    case DType::UInt8: fill_as<std::uint8_t>(out, value); break;
    case DType::Bool: fill_as<bool>(out, value != 0.0); break;
    default: fail("constant_pad_nd: not implemented for " + dt(x.dtype()) + " tensors");
  }
  if (out.numel() == 0 || x.numel() == 0 || nd == 0) {
    if (nd == 0) std::memcpy(out.storage()->data() + out.byte_offset(), x.bytes().data(), x.nbytes());
    return out;
  }
  // Copy the kept part of each input row (the last dim) to its place in the output.
  const std::size_t es = element_size(x.dtype());
  const std::int64_t L = x.shape()[nd - 1];
  const std::int64_t lo = std::max<std::int64_t>(0, -before[nd - 1]);
  const std::int64_t hi = std::min<std::int64_t>(L, os[nd - 1] - before[nd - 1]);
  std::vector<std::int64_t> out_stride(nd, 1);
  for (std::size_t d = nd - 1; d-- > 0;) out_stride[d] = out_stride[d + 1] * os[d + 1];
  std::vector<std::int64_t> pos(nd, 0);  // input index of the row (last entry unused)
  const std::byte* src = x.bytes().data();
  std::byte* dst = out.storage()->data() + out.byte_offset();
  const std::int64_t rows = x.numel() / L;
  for (std::int64_t r = 0; r < rows; ++r) {
    bool inside = hi > lo;
    std::int64_t off = 0;
    for (std::size_t d = 0; d + 1 < nd; ++d) {
      const std::int64_t o = pos[d] + before[d];
      if (o < 0 || o >= os[d]) inside = false;
      off += o * out_stride[d];
    }
    if (inside) {
      off += lo + before[nd - 1];
      std::memcpy(dst + static_cast<std::size_t>(off) * es, src + static_cast<std::size_t>(r * L + lo) * es,
                  static_cast<std::size_t>(hi - lo) * es);
    }
    for (std::size_t d = nd - 1; d-- > 0;) {
      if (++pos[d] < x.shape()[d]) break;
      pos[d] = 0;
    }
  }
  return out;
}

Tensor mode_pad(const Tensor& x, std::span<const std::int64_t> pad, const std::string& mode) {
  const std::size_t k = pad.size() / 2, nd = x.dim();
  if (pad.size() % 2 != 0 || k == 0 || k + 1 > nd) {
    fail("pad: " + mode + " padding of " + std::to_string(pad.size()) + " values does not fit an input of shape " +
         x.shape().to_string());
  }
  Shape os = x.shape();
  std::vector<std::vector<std::int64_t>> idx(k);
  for (std::size_t j = 0; j < k; ++j) {
    const std::size_t d = nd - k + j;  // pad pairs run from the last dim
    const std::int64_t before = pad[2 * (k - 1 - j)], after = pad[2 * (k - 1 - j) + 1], L = x.shape()[d];
    if (mode == "reflect" && (before >= L || after >= L)) {
      fail("pad: Argument #4: Padding size should be less than the corresponding input dimension, but got: padding (" +
           std::to_string(before) + ", " + std::to_string(after) + ") at dimension " + std::to_string(d) + " of input " +
           x.shape().to_string());
    }
    if (mode == "circular" && (before > L || after > L)) fail("pad: Padding value causes wrapping around more than once.");
    if (L == 0) fail("pad: " + mode + " padding needs a non-empty dimension " + std::to_string(d));
    os[d] = L + before + after;
    for (std::int64_t o = 0; o < os[d]; ++o) {
      std::int64_t i = o - before;
      if (mode == "reflect") {
        if (i < 0) i = -i;
        if (i >= L) i = 2 * (L - 1) - i;
      } else if (mode == "replicate") {
        i = std::clamp<std::int64_t>(i, 0, L - 1);
      } else if (mode == "circular") {
        i = ((i % L) + L) % L;
      } else {
        fail("pad: mode " + python_str_repr(mode) + " is not one of 'reflect', 'replicate', 'circular'");
      }
      idx[j].push_back(i);
    }
  }
  return gather_nearest(x, os, idx);
}

namespace {

// constant_pad_nd(self, pad, value)
Value constant_pad_nd_kernel(std::span<const Value> a) {
  const std::vector<std::int64_t> pad = util::int_list_arg(a[1], "constant_pad_nd", "pad");
  const Tensor& x = a[0].tensor();
  if (!is_floating(x.dtype()) && a[2].is_double() && a[2].to_double() != std::trunc(a[2].to_double())) {
    fail("constant_pad_nd: value " + python_repr(a[2]) + " cannot be converted to " + dt(x.dtype()) + " without overflow");
  }
  return Value(constant_pad(x, pad, a[2].to_double()));
}

}  // namespace

// ---- mse_loss, cosine_similarity ------------------------------------------------------------

namespace {

// F.mse_loss(input, target, size_average, reduce, reduction, weight)
Value mse_loss_functional(std::span<const Value> a) {
  if (!a[2].is_none() || !a[3].is_none()) fail("mse_loss: size_average and reduce are deprecated; use reduction");
  const std::string& reduction = a[4].str();
  if (reduction != "mean" && reduction != "sum" && reduction != "none") {
    fail("mse_loss: " + python_str_repr(reduction) + " is not a valid value for reduction");
  }
  const Tensor& x = a[0].tensor();
  check_floating(x, "mse_loss");
  const Value d = binary(BinaryOp::Sub, a[0], a[1]);
  Value sq = binary(BinaryOp::Mul, d, d);
  if (!a[5].is_none()) sq = binary(BinaryOp::Mul, sq, a[5]);
  const Tensor& t = sq.tensor();
  if (reduction == "none") return sq;
  if (reduction == "sum") return Value(sum(t, {}, false));
  return Value(mean(t, {}, false));
}

template <class T>
void cosine_typed(const Tensor& x1, const Tensor& x2, Tensor& out, const AroundDim& g, double eps) {
  const T* a = x1.data<T>();
  const T* b = x2.data<T>();
  T* o = out.data<T>();
  for (std::int64_t p = 0; p < g.outer; ++p) {
    for (std::int64_t i = 0; i < g.inner; ++i) {
      double w12 = 0, n1 = 0, n2 = 0;
      for (std::int64_t k = 0; k < g.n; ++k) {
        const std::int64_t at = (p * g.n + k) * g.inner + i;
        const double u = a[at], v = b[at];
        w12 += u * v;
        n1 += u * u;
        n2 += v * v;
      }
      o[p * g.inner + i] = static_cast<T>(w12 / (std::max(std::sqrt(n1), eps) * std::max(std::sqrt(n2), eps)));
    }
  }
}

// cosine_similarity(x1, x2, dim, eps): both broadcast to their common shape first.
Value cosine_similarity_kernel(std::span<const Value> a) {
  Tensor x1 = a[0].tensor(), x2 = a[1].tensor();
  check_floating(x1, "cosine_similarity");
  check_floating(x2, "cosine_similarity");
  if (x1.dtype() != x2.dtype()) {
    const DType common = DType::Float64;
    x1 = x1.to(common);
    x2 = x2.to(common);
  }
  if (!(x1.shape() == x2.shape())) {
    // Broadcast by multiplying with ones of the other's shape (exact).
    const Tensor ones1 = Tensor::full(x2.shape(), 1.0, x1.dtype()), ones2 = Tensor::full(x1.shape(), 1.0, x2.dtype());
    const Tensor b1 = binary(BinaryOp::Mul, x1, ones1), b2 = binary(BinaryOp::Mul, x2, ones2);
    x1 = b1;
    x2 = b2;
  }
  if (x1.dim() == 0) fail("cosine_similarity: expected tensors with at least one dimension");
  const std::int64_t dim = util::wrap_dim(a[2].to_int(), static_cast<std::int64_t>(x1.dim()), "cosine_similarity");
  Tensor out = Tensor::empty(without_dim(x1.shape(), dim), x1.dtype());
  const AroundDim g = around(x1.shape(), dim);
  if (x1.dtype() == DType::Float32) cosine_typed<float>(x1, x2, out, g, a[3].to_double());
  else cosine_typed<double>(x1, x2, out, g, a[3].to_double());
  return Value(std::move(out));
}

}  // namespace

#include "layers_table.inc"

}  // namespace fxpack::ops
