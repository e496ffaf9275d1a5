// Neural-network kernels (nn.yaml): conv2d, batch_norm, max_pool2d, avg_pool2d,
// adaptive_avg_pool2d, layer_norm, gelu, torch._assert. float32 runs on oneDNN
// (dnnl/dnnl_kernels.hpp), which picks the CPU's instruction set at run time; float64, batch
// statistics, pooling indices and the windows oneDNN cannot express run on the loops here
// (im2col + Eigen GEMM for convolutions).
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "dnnl/dnnl_kernels.hpp"
#include "elementwise.hpp"
#include "kernels.hpp"
#include "util.hpp"

namespace fxpack::ops {

using util::fail;

namespace {

std::array<std::int64_t, 2> pair_arg(const Value& v, const char* op, const char* name) {
  const std::vector<std::int64_t> l = util::int_list_arg(v, op, name);
  if (l.size() == 1) return {l[0], l[0]};
  if (l.size() == 2) return {l[0], l[1]};
  fail(std::string(op) + ": argument '" + name + "' must be an int or a pair of ints, got " +
       std::to_string(l.size()) + " values");
}

constexpr std::int64_t kMaxWindow = std::int64_t{1} << 31;

void check_window(const std::array<std::int64_t, 2>& v, const char* op, const char* name) {
  for (std::int64_t x : v) {
    if (x > kMaxWindow || x < -kMaxWindow) {
      fail(std::string(op) + ": " + name + " value " + std::to_string(x) + " is out of range");
    }
  }
}

std::string pair_str(const std::array<std::int64_t, 2>& p) {
  return "(" + std::to_string(p[0]) + ", " + std::to_string(p[1]) + ")";
}

void check_floating(const Tensor& x, const char* op) {
  if (x.dtype() != DType::Float32 && x.dtype() != DType::Float64) {
    fail(std::string(op) + ": expected a floating tensor (float32 or float64), got " +
         std::string(dtype_name(x.dtype())));
  }
}

// 3-D unbatched input -> [1, C, H, W].
Tensor as_batched(const Tensor& x, const char* op, const char* expected) {
  if (x.dim() == 4) return x;
  if (x.dim() == 3) return x.view(Shape{1, x.shape()[0], x.shape()[1], x.shape()[2]});
  fail(std::string(op) + ": expected a 4-D input " + expected + ", got shape " + x.shape().to_string());
}

Tensor unbatch_like(const Tensor& y, const Tensor& x) {
  if (x.dim() == 3) return y.view(Shape{y.shape()[1], y.shape()[2], y.shape()[3]});
  return y;
}

template <class T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

template <class T>
void conv2d_typed(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& out,
                  const Conv2dOptions& o) {
  const std::int64_t N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  const std::int64_t O = w.shape()[0], Cg = w.shape()[1], KH = w.shape()[2], KW = w.shape()[3];
  const std::int64_t OH = out.shape()[2], OW = out.shape()[3];
  const std::int64_t G = o.groups, Og = O / G;
  const std::int64_t K = Cg * KH * KW, P = OH * OW;
  const bool pointwise = KH == 1 && KW == 1 && o.stride[0] == 1 && o.stride[1] == 1 &&
                         o.padding_begin[0] == 0 && o.padding_begin[1] == 0 &&
                         o.padding_end[0] == 0 && o.padding_end[1] == 0;
  std::vector<T> col;
  if (!pointwise) col.resize(static_cast<std::size_t>(K * P));
  const T* xd = x.data<T>();
  const T* wd = w.data<T>();
  T* od = out.data<T>();
  for (std::int64_t n = 0; n < N; ++n) {
    for (std::int64_t g = 0; g < G; ++g) {
      const T* xin = xd + (n * C + g * Cg) * H * W;
      const T* colp = xin;
      if (!pointwise) {
        T* cp = col.data();
        for (std::int64_t c = 0; c < Cg; ++c) {
          for (std::int64_t ki = 0; ki < KH; ++ki) {
            for (std::int64_t kj = 0; kj < KW; ++kj) {
              T* row = cp + ((c * KH + ki) * KW + kj) * P;
              for (std::int64_t oh = 0; oh < OH; ++oh) {
                const std::int64_t ih = oh * o.stride[0] - o.padding_begin[0] + ki * o.dilation[0];
                T* r = row + oh * OW;
                if (ih < 0 || ih >= H) {
                  std::fill(r, r + OW, T(0));
                  continue;
                }
                const T* src = xin + (c * H + ih) * W;
                for (std::int64_t ow = 0; ow < OW; ++ow) {
                  const std::int64_t iw = ow * o.stride[1] - o.padding_begin[1] + kj * o.dilation[1];
                  r[ow] = (iw < 0 || iw >= W) ? T(0) : src[iw];
                }
              }
            }
          }
        }
        colp = col.data();
      }
      Eigen::Map<const RowMat<T>> Wg(wd + g * Og * K, Og, K);
      Eigen::Map<const RowMat<T>> Col(colp, K, P);
      Eigen::Map<RowMat<T>> Out(od + (n * O + g * Og) * P, Og, P);
      if (K == 0) {
        Out.setZero();
      } else {
        Out.noalias() = Wg * Col;
      }
      if (b) {
        const T* bd = b->data<T>() + g * Og;
        for (std::int64_t oc = 0; oc < Og; ++oc) Out.row(oc).array() += bd[oc];
      }
    }
  }
}

}  // namespace

Conv2dOptions conv2d_options(const Value& stride, const Value& padding, const Value& dilation,
                             std::int64_t groups, std::int64_t kernel_h, std::int64_t kernel_w) {
  Conv2dOptions o;
  o.stride = pair_arg(stride, "conv2d", "stride");
  o.dilation = pair_arg(dilation, "conv2d", "dilation");
  o.groups = groups;
  if (const auto* s = padding.if_string()) {
    if (*s == "valid") return o;
    if (*s != "same") {
      fail("conv2d: Invalid padding string '" + *s + "', should be one of {'valid', 'same'}");
    }
    if (o.stride[0] != 1 || o.stride[1] != 1) {
      fail("conv2d: padding='same' is not supported for strided convolutions");
    }
    const std::int64_t k[2] = {kernel_h, kernel_w};
    for (int i = 0; i < 2; ++i) {
      const std::int64_t total = o.dilation[static_cast<std::size_t>(i)] * (k[i] - 1);
      o.padding_begin[static_cast<std::size_t>(i)] = total / 2;
      o.padding_end[static_cast<std::size_t>(i)] = total - total / 2;
    }
    return o;
  }
  o.padding_begin = o.padding_end = pair_arg(padding, "conv2d", "padding");
  return o;
}

Tensor conv2d(const Tensor& xin, const Tensor& w, const Tensor* b, const Conv2dOptions& o) {
  if (!xin.defined() || !w.defined()) fail("conv2d: undefined tensor");
  if (xin.dim() != 4 && xin.dim() != 3) {
    fail("conv2d: expected a 4-D input [N, C, H, W], got shape " + xin.shape().to_string());
  }
  const Tensor x = as_batched(xin, "conv2d", "[N, C, H, W]");
  if (w.dim() != 4) {
    fail("conv2d: expected a 4-D weight [out_channels, in_channels/groups, kH, kW], got shape " +
         w.shape().to_string());
  }
  check_floating(x, "conv2d");
  if (w.dtype() != x.dtype()) {
    fail("conv2d: input dtype " + std::string(dtype_name(x.dtype())) + " and weight dtype " +
         std::string(dtype_name(w.dtype())) + " differ");
  }
  for (int i = 0; i < 2; ++i) {
    const auto u = static_cast<std::size_t>(i);
    if (o.stride[u] <= 0) fail("conv2d: non-positive stride " + pair_str(o.stride) + " is not supported");
    if (o.dilation[u] <= 0) fail("conv2d: dilation " + pair_str(o.dilation) + " must be positive");
    if (o.padding_begin[u] < 0 || o.padding_end[u] < 0) fail("conv2d: negative padding is not supported");
  }
  check_window(o.stride, "conv2d", "stride");
  check_window(o.dilation, "conv2d", "dilation");
  check_window(o.padding_begin, "conv2d", "padding");
  check_window(o.padding_end, "conv2d", "padding");
  if (o.groups <= 0) fail("conv2d: non-positive groups (" + std::to_string(o.groups) + ") is not supported");
  const std::int64_t C = x.shape()[1], O = w.shape()[0];
  if (O % o.groups != 0) {
    fail("conv2d: out_channels " + std::to_string(O) + " (weight shape " + w.shape().to_string() +
         ") is not divisible by groups=" + std::to_string(o.groups));
  }
  if (w.shape()[1] * o.groups != C) {
    fail("conv2d: input shape " + xin.shape().to_string() + " has " + std::to_string(C) +
         " channels, but weight of shape " + w.shape().to_string() + " with groups=" +
         std::to_string(o.groups) + " expects " + std::to_string(w.shape()[1] * o.groups));
  }
  if (b) {
    if (b->dim() != 1 || b->shape()[0] != O) {
      fail("conv2d: expected a bias of shape [" + std::to_string(O) + "], got " + b->shape().to_string());
    }
    if (b->dtype() != x.dtype()) fail("conv2d: bias dtype differs from input dtype");
  }
  std::int64_t outs[2];
  for (int i = 0; i < 2; ++i) {
    const auto u = static_cast<std::size_t>(i);
    const std::int64_t in = x.shape()[2 + u];
    const std::int64_t eff = o.dilation[u] * (w.shape()[2 + u] - 1) + 1;
    const std::int64_t padded = in + o.padding_begin[u] + o.padding_end[u];
    if (padded < eff) {
      fail("conv2d: input size per channel (" + std::to_string(x.shape()[2]) + " x " +
           std::to_string(x.shape()[3]) + ") after padding is smaller than the kernel size (" +
           std::to_string(w.shape()[2]) + " x " + std::to_string(w.shape()[3]) + ", dilation " +
           pair_str(o.dilation) + ")");
    }
    outs[i] = (padded - eff) / o.stride[u] + 1;
  }
  Tensor out = Tensor::empty(Shape{x.shape()[0], O, outs[0], outs[1]}, x.dtype());
  if (x.dtype() == DType::Float32 && out.numel() > 0 && w.numel() > 0) {
    dnnl_backend::conv2d(x, w, b, o, out);
  } else if (x.dtype() == DType::Float32) {
    conv2d_typed<float>(x, w, b, out, o);
  } else {
    conv2d_typed<double>(x, w, b, out, o);
  }
  return unbatch_like(out, xin);
}

// ---------------------------------------------------------------------------------------

namespace {

template <class T>
void batch_norm_typed(const Tensor& x, const std::vector<double>& scale,
                      const std::vector<double>& shift, Tensor& out) {
  const std::int64_t N = x.shape()[0], C = x.shape()[1];
  const std::int64_t inner = x.numel() / std::max<std::int64_t>(N * C, 1);
  const T* xd = x.data<T>();
  T* od = out.data<T>();
  for (std::int64_t n = 0; n < N; ++n) {
    for (std::int64_t c = 0; c < C; ++c) {
      const T a = static_cast<T>(scale[static_cast<std::size_t>(c)]);
      const T b = static_cast<T>(shift[static_cast<std::size_t>(c)]);
      const std::int64_t off = (n * C + c) * inner;
      for (std::int64_t i = 0; i < inner; ++i) od[off + i] = xd[off + i] * a + b;
    }
  }
}

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor* weight, const Tensor* bias, const Tensor* running_mean,
                  const Tensor* running_var, bool use_batch_stats, double eps) {
  if (!x.defined()) fail("batch_norm: undefined tensor");
  if (x.dim() < 2) fail("batch_norm: expected an input of at least 2 dimensions [N, C, ...], got shape " + x.shape().to_string());
  check_floating(x, "batch_norm");
  const std::int64_t N = x.shape()[0], C = x.shape()[1];
  auto check_vec = [&](const Tensor* t, const char* name) {
    if (!t) return;
    if (t->dim() != 1 || t->shape()[0] != C) {
      fail(std::string("batch_norm: expected ") + name + " of shape [" + std::to_string(C) + "], got " +
           t->shape().to_string() + " (input shape " + x.shape().to_string() + ")");
    }
  };
  check_vec(weight, "weight");
  check_vec(bias, "bias");
  check_vec(running_mean, "running_mean");
  check_vec(running_var, "running_var");
  if ((running_mean == nullptr) != (running_var == nullptr)) {
    fail("batch_norm: running_mean and running_var must both be given or both be None");
  }
  const bool batch_stats = use_batch_stats || running_mean == nullptr;
  std::vector<double> mean(static_cast<std::size_t>(C)), var(static_cast<std::size_t>(C));
  const std::int64_t inner = x.numel() / std::max<std::int64_t>(N * C, 1);
  if (batch_stats) {
    const std::int64_t count = N * inner;
    if (count <= 1 && use_batch_stats) {
      fail("batch_norm: Expected more than 1 value per channel when training, got input size " + x.shape().to_string());
    }
    for (std::int64_t c = 0; c < C; ++c) {
      double s = 0, ss = 0;
      for (std::int64_t n = 0; n < N; ++n) {
        const std::int64_t off = (n * C + c) * inner;
        for (std::int64_t i = 0; i < inner; ++i) s += x.item_at(off + i);
      }
      const double m = count ? s / static_cast<double>(count) : 0.0;
      for (std::int64_t n = 0; n < N; ++n) {
        const std::int64_t off = (n * C + c) * inner;
        for (std::int64_t i = 0; i < inner; ++i) {
          const double d = x.item_at(off + i) - m;
          ss += d * d;
        }
      }
      mean[static_cast<std::size_t>(c)] = m;
      var[static_cast<std::size_t>(c)] = count ? ss / static_cast<double>(count) : 0.0;
    }
  } else {
    for (std::int64_t c = 0; c < C; ++c) {
      mean[static_cast<std::size_t>(c)] = running_mean->item_at(c);
      var[static_cast<std::size_t>(c)] = running_var->item_at(c);
    }
  }
  std::vector<double> scale(static_cast<std::size_t>(C)), shift(static_cast<std::size_t>(C));
  for (std::int64_t c = 0; c < C; ++c) {
    const auto u = static_cast<std::size_t>(c);
    const double invstd = 1.0 / std::sqrt(var[u] + eps);
    const double w = weight ? weight->item_at(c) : 1.0;
    const double b = bias ? bias->item_at(c) : 0.0;
    scale[u] = invstd * w;
    shift[u] = b - mean[u] * scale[u];
  }
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  if (x.dtype() == DType::Float32 && !batch_stats && (weight == nullptr) == (bias == nullptr) && x.numel() > 0 &&
      x.dim() <= 5) {
    const Tensor w32 = weight ? weight->to(DType::Float32) : Tensor(), b32 = bias ? bias->to(DType::Float32) : Tensor();
    dnnl_backend::batch_norm(x, running_mean->to(DType::Float32), running_var->to(DType::Float32),
                             weight ? &w32 : nullptr, bias ? &b32 : nullptr, static_cast<float>(eps), out);
  } else if (x.dtype() == DType::Float32) {
    batch_norm_typed<float>(x, scale, shift, out);
  } else {
    batch_norm_typed<double>(x, scale, shift, out);
  }
  return out;
}

// ---------------------------------------------------------------------------------------

Pool2dOptions pool2d_options(const Value& kernel_size, const Value& stride, const Value& padding,
                             const Value& dilation, bool ceil_mode, const char* op) {
  Pool2dOptions o;
  o.kernel = pair_arg(kernel_size, op, "kernel_size");
  bool stride_default = stride.is_none();
  if (!stride_default) {
    if (const auto* l = stride.if_list()) stride_default = l->items.empty();
    if (const auto* t = stride.if_tuple()) stride_default = t->items.empty();
  }
  o.stride = stride_default ? o.kernel : pair_arg(stride, op, "stride");
  o.padding = pair_arg(padding, op, "padding");
  o.dilation = pair_arg(dilation, op, "dilation");
  o.ceil_mode = ceil_mode;
  return o;
}

std::int64_t pool_output_size(std::int64_t in, std::int64_t k, std::int64_t pad, std::int64_t stride,
                              std::int64_t dil, bool ceil_mode) {
  const std::int64_t num = in + 2 * pad - dil * (k - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  // floor division (num may be negative)
  std::int64_t q = num / stride;
  if ((num % stride != 0) && ((num < 0) != (stride < 0))) --q;
  std::int64_t out = q + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

namespace {

template <class T, bool Indices>
void max_pool_typed(const Tensor& x, Tensor& out, Tensor* idx, const Pool2dOptions& o) {
  const std::int64_t NC = x.shape()[0] * x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  const std::int64_t OH = out.shape()[2], OW = out.shape()[3];
  const T* xd = x.data<T>();
  T* od = out.data<T>();
  std::int64_t* id = Indices ? idx->data<std::int64_t>() : nullptr;
  for (std::int64_t p = 0; p < NC; ++p) {
    const T* plane = xd + p * H * W;
    for (std::int64_t oh = 0; oh < OH; ++oh) {
      std::int64_t ih0 = oh * o.stride[0] - o.padding[0];
      const std::int64_t ih1 = std::min(ih0 + (o.kernel[0] - 1) * o.dilation[0] + 1, H);
      while (ih0 < 0) ih0 += o.dilation[0];
      for (std::int64_t ow = 0; ow < OW; ++ow) {
        std::int64_t iw0 = ow * o.stride[1] - o.padding[1];
        const std::int64_t iw1 = std::min(iw0 + (o.kernel[1] - 1) * o.dilation[1] + 1, W);
        while (iw0 < 0) iw0 += o.dilation[1];
        std::int64_t maxindex = ih0 * W + iw0;
        T maxval = -std::numeric_limits<T>::infinity();
        for (std::int64_t ih = ih0; ih < ih1; ih += o.dilation[0]) {
          for (std::int64_t iw = iw0; iw < iw1; iw += o.dilation[1]) {
            const std::int64_t index = ih * W + iw;
            const T v = plane[index];
            if (v > maxval || std::isnan(v)) {
              maxval = v;
              maxindex = index;
            }
          }
        }
        const std::int64_t o_off = (p * OH + oh) * OW + ow;
        od[o_off] = maxval;
        if constexpr (Indices) id[o_off] = maxindex;
      }
    }
  }
}

std::pair<Tensor, Tensor> max_pool_impl(const Tensor& xin, const Pool2dOptions& o, bool with_indices) {
  if (!xin.defined()) fail("max_pool2d: undefined tensor");
  if (xin.dim() != 4 && xin.dim() != 3) {
    fail("max_pool2d: expected a 3-D or 4-D input [N, C, H, W], got shape " + xin.shape().to_string());
  }
  const Tensor x = as_batched(xin, "max_pool2d", "[N, C, H, W]");
  check_floating(x, "max_pool2d");
  check_window(o.kernel, "max_pool2d", "kernel_size");
  check_window(o.stride, "max_pool2d", "stride");
  check_window(o.padding, "max_pool2d", "padding");
  check_window(o.dilation, "max_pool2d", "dilation");
  for (int i = 0; i < 2; ++i) {
    const auto u = static_cast<std::size_t>(i);
    if (o.kernel[u] <= 0) fail("max_pool2d: kernel_size must be greater than zero, but got " + pair_str(o.kernel));
    if (o.stride[u] <= 0) fail("max_pool2d: stride must be greater than zero, but got " + pair_str(o.stride));
    if (o.dilation[u] <= 0) fail("max_pool2d: dilation must be greater than zero, but got " + pair_str(o.dilation));
    if (o.padding[u] < 0) fail("max_pool2d: padding must be non-negative, but got " + pair_str(o.padding));
    if (o.padding[u] > ((o.kernel[u] - 1) * o.dilation[u] + 1) / 2) {
      fail("max_pool2d: pad should be at most half of effective kernel size, but got pad=" +
           std::to_string(o.padding[u]) + ", kernel_size=" + std::to_string(o.kernel[u]) +
           " and dilation=" + std::to_string(o.dilation[u]));
    }
  }
  const std::int64_t H = x.shape()[2], W = x.shape()[3];
  const std::int64_t OH = pool_output_size(H, o.kernel[0], o.padding[0], o.stride[0], o.dilation[0], o.ceil_mode);
  const std::int64_t OW = pool_output_size(W, o.kernel[1], o.padding[1], o.stride[1], o.dilation[1], o.ceil_mode);
  if (OH < 1 || OW < 1 || H < 1 || W < 1) {
    fail("max_pool2d: Given input size: (" + std::to_string(x.shape()[1]) + "x" + std::to_string(H) + "x" +
         std::to_string(W) + "). Calculated output size: (" + std::to_string(x.shape()[1]) + "x" +
         std::to_string(OH) + "x" + std::to_string(OW) + "). Output size is too small");
  }
  const Shape os{x.shape()[0], x.shape()[1], OH, OW};
  Tensor out = Tensor::empty(os, x.dtype());
  Tensor idx;
  if (with_indices) {
    idx = Tensor::empty(os, DType::Int64);
    if (x.dtype() == DType::Float32) max_pool_typed<float, true>(x, out, &idx, o);
    else max_pool_typed<double, true>(x, out, &idx, o);
    return {unbatch_like(out, xin), unbatch_like(idx, xin)};
  }
  if (x.dtype() == DType::Float32) {
    if (!dnnl_backend::pool2d(x, o, false, false, out)) max_pool_typed<float, false>(x, out, nullptr, o);
  } else {
    max_pool_typed<double, false>(x, out, nullptr, o);
  }
  return {unbatch_like(out, xin), Tensor()};
}

template <class T>
void adaptive_avg_typed(const Tensor& x, Tensor& out) {
  const std::int64_t NC = x.shape()[0] * x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  const std::int64_t OH = out.shape()[2], OW = out.shape()[3];
  const T* xd = x.data<T>();
  T* od = out.data<T>();
  for (std::int64_t p = 0; p < NC; ++p) {
    const T* plane = xd + p * H * W;
    for (std::int64_t oh = 0; oh < OH; ++oh) {
      const std::int64_t h0 = (oh * H) / OH;
      const std::int64_t h1 = ((oh + 1) * H + OH - 1) / OH;
      for (std::int64_t ow = 0; ow < OW; ++ow) {
        const std::int64_t w0 = (ow * W) / OW;
        const std::int64_t w1 = ((ow + 1) * W + OW - 1) / OW;
        double s = 0;
        for (std::int64_t ih = h0; ih < h1; ++ih) {
          for (std::int64_t iw = w0; iw < w1; ++iw) s += static_cast<double>(plane[ih * W + iw]);
        }
        od[(p * OH + oh) * OW + ow] = static_cast<T>(s / static_cast<double>((h1 - h0) * (w1 - w0)));
      }
    }
  }
}

}  // namespace

Tensor max_pool2d(const Tensor& x, const Pool2dOptions& o) { return max_pool_impl(x, o, false).first; }

std::pair<Tensor, Tensor> max_pool2d_with_indices(const Tensor& x, const Pool2dOptions& o) {
  return max_pool_impl(x, o, true);
}

Tensor adaptive_avg_pool2d(const Tensor& xin, std::array<std::optional<std::int64_t>, 2> output_size) {
  if (!xin.defined()) fail("adaptive_avg_pool2d: undefined tensor");
  if (xin.dim() != 4 && xin.dim() != 3) {
    fail("adaptive_avg_pool2d: expected a 3-D or 4-D input [N, C, H, W], got shape " + xin.shape().to_string());
  }
  const Tensor x = as_batched(xin, "adaptive_avg_pool2d", "[N, C, H, W]");
  check_floating(x, "adaptive_avg_pool2d");
  for (std::size_t i = 1; i < 4; ++i) {
    if (x.shape()[i] == 0 && !(i == 1 && xin.dim() == 4)) {
      fail("adaptive_avg_pool2d: Expected input to have non-zero size for non-batch dimensions, but input has shape " +
           xin.shape().to_string());
    }
  }
  const std::int64_t OH = output_size[0].value_or(x.shape()[2]);
  const std::int64_t OW = output_size[1].value_or(x.shape()[3]);
  if (OH < 0 || OW < 0 || OH > kMaxWindow || OW > kMaxWindow) {
    fail("adaptive_avg_pool2d: output_size must be non-negative and at most 2^31, got (" + std::to_string(OH) + ", " +
         std::to_string(OW) + ")");
  }
  Tensor out = Tensor::empty(Shape{x.shape()[0], x.shape()[1], OH, OW}, x.dtype());
  const std::int64_t H = x.shape()[2], W = x.shape()[3];
  if (x.dtype() == DType::Float32 && out.numel() > 0 && H % OH == 0 && W % OW == 0) {
    // Equal windows: an average pool (the global pool of classifier heads among them).
    Pool2dOptions po;
    po.kernel = po.stride = {H / OH, W / OW};
    dnnl_backend::pool2d(x, po, true, false, out);
  } else if (x.dtype() == DType::Float32) adaptive_avg_typed<float>(x, out);
  else adaptive_avg_typed<double>(x, out);
  return unbatch_like(out, xin);
}

// ---------------------------------------------------------------------------------------

namespace {

template <class T>
void avg_pool_typed(const Tensor& x, Tensor& out, const Pool2dOptions& o, bool count_include_pad,
                    std::optional<std::int64_t> divisor_override) {
  const std::int64_t NC = x.shape()[0] * x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  const std::int64_t OH = out.shape()[2], OW = out.shape()[3];
  const T* xd = x.data<T>();
  T* od = out.data<T>();
  for (std::int64_t p = 0; p < NC; ++p) {
    const T* plane = xd + p * H * W;
    for (std::int64_t oh = 0; oh < OH; ++oh) {
      for (std::int64_t ow = 0; ow < OW; ++ow) {
        // PyTorch's windows: the divisor counts padding up to the declared padding only.
        std::int64_t h0 = oh * o.stride[0] - o.padding[0], w0 = ow * o.stride[1] - o.padding[1];
        std::int64_t h1 = std::min(h0 + o.kernel[0], H + o.padding[0]);
        std::int64_t w1 = std::min(w0 + o.kernel[1], W + o.padding[1]);
        const std::int64_t pool_size = (h1 - h0) * (w1 - w0);
        h0 = std::max<std::int64_t>(h0, 0);
        w0 = std::max<std::int64_t>(w0, 0);
        h1 = std::min(h1, H);
        w1 = std::min(w1, W);
        T& y = od[(p * OH + oh) * OW + ow];
        if (h0 >= h1 || w0 >= w1) {
          y = T(0);
          continue;
        }
        double s = 0;
        for (std::int64_t ih = h0; ih < h1; ++ih)
          for (std::int64_t iw = w0; iw < w1; ++iw) s += static_cast<double>(plane[ih * W + iw]);
        const std::int64_t divisor =
            divisor_override ? *divisor_override : (count_include_pad ? pool_size : (h1 - h0) * (w1 - w0));
        y = static_cast<T>(s / static_cast<double>(divisor));
      }
    }
  }
}

}  // namespace

Tensor avg_pool2d(const Tensor& xin, const Pool2dOptions& o, bool count_include_pad,
                  std::optional<std::int64_t> divisor_override) {
  if (!xin.defined()) fail("avg_pool2d: undefined tensor");
  if (xin.dim() != 4 && xin.dim() != 3) {
    fail("avg_pool2d: expected a 3-D or 4-D input [N, C, H, W], got shape " + xin.shape().to_string());
  }
  const Tensor x = as_batched(xin, "avg_pool2d", "[N, C, H, W]");
  check_floating(x, "avg_pool2d");
  check_window(o.kernel, "avg_pool2d", "kernel_size");
  check_window(o.stride, "avg_pool2d", "stride");
  check_window(o.padding, "avg_pool2d", "padding");
  if (o.dilation[0] != 1 || o.dilation[1] != 1) fail("avg_pool2d: dilation must be 1, got " + pair_str(o.dilation));
  if (divisor_override && *divisor_override == 0) fail("avg_pool2d: divisor must be not zero");
  for (std::size_t u = 0; u < 2; ++u) {
    if (o.kernel[u] <= 0) fail("avg_pool2d: kernel_size must be greater than zero, but got " + pair_str(o.kernel));
    if (o.stride[u] <= 0) fail("avg_pool2d: stride must be greater than zero, but got " + pair_str(o.stride));
    if (o.padding[u] < 0 || o.padding[u] > o.kernel[u] / 2) {
      fail("avg_pool2d: pad should be at most half of kernel size, but got pad=" + std::to_string(o.padding[u]) +
           " and kernel_size=" + std::to_string(o.kernel[u]));
    }
  }
  const std::int64_t H = x.shape()[2], W = x.shape()[3];
  const std::int64_t OH = pool_output_size(H, o.kernel[0], o.padding[0], o.stride[0], 1, o.ceil_mode);
  const std::int64_t OW = pool_output_size(W, o.kernel[1], o.padding[1], o.stride[1], 1, o.ceil_mode);
  if (OH < 1 || OW < 1 || H < 1 || W < 1) {
    fail("avg_pool2d: Given input size: (" + std::to_string(x.shape()[1]) + "x" + std::to_string(H) + "x" +
         std::to_string(W) + "). Calculated output size: (" + std::to_string(x.shape()[1]) + "x" +
         std::to_string(OH) + "x" + std::to_string(OW) + "). Output size is too small");
  }
  Tensor out = Tensor::empty(Shape{x.shape()[0], x.shape()[1], OH, OW}, x.dtype());
  if (x.dtype() == DType::Float32) {
    if (divisor_override || out.numel() == 0 || !dnnl_backend::pool2d(x, o, true, count_include_pad, out))
      avg_pool_typed<float>(x, out, o, count_include_pad, divisor_override);
  } else {
    avg_pool_typed<double>(x, out, o, count_include_pad, divisor_override);
  }
  return unbatch_like(out, xin);
}

// ---------------------------------------------------------------------------------------

namespace {

template <class T>
void layer_norm_typed(const Tensor& x, std::int64_t inner, const Tensor* weight, const Tensor* bias, double eps,
                      Tensor& out) {
  const std::int64_t rows = inner ? x.numel() / inner : 0;
  const T* xd = x.data<T>();
  T* od = out.data<T>();
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* row = xd + r * inner;
    double mean = 0, var = 0;
    for (std::int64_t i = 0; i < inner; ++i) mean += static_cast<double>(row[i]);
    mean /= static_cast<double>(inner);
    for (std::int64_t i = 0; i < inner; ++i) {
      const double d = static_cast<double>(row[i]) - mean;
      var += d * d;
    }
    var /= static_cast<double>(inner);
    const double invstd = 1.0 / std::sqrt(var + eps);
    for (std::int64_t i = 0; i < inner; ++i) {
      double y = (static_cast<double>(row[i]) - mean) * invstd;
      if (weight) y *= weight->item_at(i);
      if (bias) y += bias->item_at(i);
      od[r * inner + i] = static_cast<T>(y);
    }
  }
}

}  // namespace

Tensor layer_norm(const Tensor& x, std::span<const std::int64_t> normalized_shape, const Tensor* weight,
                  const Tensor* bias, double eps) {
  if (!x.defined()) fail("layer_norm: undefined tensor");
  check_floating(x, "layer_norm");
  const Shape ns(normalized_shape);
  if (ns.empty() || ns.size() > x.dim()) {
    fail("layer_norm: normalized_shape " + ns.to_string() + " does not fit input of shape " + x.shape().to_string());
  }
  std::int64_t inner = 1;
  for (std::size_t i = 0; i < ns.size(); ++i) {
    if (x.shape()[x.dim() - ns.size() + i] != ns[i]) {
      fail("layer_norm: Given normalized_shape=" + ns.to_string() + ", expected input with shape [*, " +
           ns.to_string().substr(1) + ", but got input of size " + x.shape().to_string());
    }
    inner *= ns[i];
  }
  for (const Tensor* t : {weight, bias}) {
    if (t && !(t->shape() == ns)) {
      fail(std::string("layer_norm: expected ") + (t == weight ? "weight" : "bias") + " of shape " + ns.to_string() +
           ", got " + t->shape().to_string());
    }
  }
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  if (x.dtype() == DType::Float32 && x.numel() > 0 && (weight == nullptr) == (bias == nullptr)) {
    const Tensor w32 = weight ? weight->to(DType::Float32) : Tensor(), b32 = bias ? bias->to(DType::Float32) : Tensor();
    dnnl_backend::layer_norm(x, inner, weight ? &w32 : nullptr, bias ? &b32 : nullptr, static_cast<float>(eps), out);
  } else if (x.dtype() == DType::Float32) {
    layer_norm_typed<float>(x, inner, weight, bias, eps, out);
  } else {
    layer_norm_typed<double>(x, inner, weight, bias, eps, out);
  }
  return out;
}

// ---- Kernels (named by nn.yaml) -----------------------------------------------------------------

namespace {

// conv2d(input, weight, bias, stride, padding, dilation, groups); padding is a pair or a string.
Value conv2d_kernel(std::span<const Value> a) {
  const Tensor& x = a[0].tensor();
  const Tensor& w = a[1].tensor();
  if (w.dim() != 4) {
    fail("conv2d: expected a 4-D weight [out_channels, in_channels/groups, kH, kW], got shape " + w.shape().to_string());
  }
  const auto o = conv2d_options(a[3], a[4], a[5], a[6].to_int(), w.shape()[2], w.shape()[3]);
  return Value(conv2d(x, w, a[2].is_none() ? nullptr : &a[2].tensor(), o));
}

// convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
// what make_fx records for conv1d, conv2d and conv_transpose2d.
Value convolution_kernel(std::span<const Value> a) {
  const Tensor& x = a[0].tensor();
  const Tensor& w = a[1].tensor();
  const Tensor* b = a[2].is_none() ? nullptr : &a[2].tensor();
  if (a[6].to_bool()) {
    if (w.dim() != 4) fail("convolution: only 2-D transposed convolution is supported (weight of shape " + w.shape().to_string() + ")");
    ConvTranspose2dOptions o;
    o.stride = pair_arg(a[3], "convolution", "stride");
    o.padding = pair_arg(a[4], "convolution", "padding");
    o.dilation = pair_arg(a[5], "convolution", "dilation");
    o.output_padding = pair_arg(a[7], "convolution", "output_padding");
    o.groups = a[8].to_int();
    return Value(conv_transpose2d(x, w, b, o));
  }
  if (w.dim() == 3) return Value(conv1d(x, w, b, a[3], a[4], a[5], a[8].to_int()));
  if (w.dim() != 4) fail("convolution: only 1-D and 2-D convolution are supported (weight of shape " + w.shape().to_string() + ")");
  Conv2dOptions o;
  o.stride = pair_arg(a[3], "convolution", "stride");
  o.padding_begin = o.padding_end = pair_arg(a[4], "convolution", "padding");
  o.dilation = pair_arg(a[5], "convolution", "dilation");
  o.groups = a[8].to_int();
  return Value(conv2d(x, w, b, o));
}

// F.max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
Value max_pool2d_functional(std::span<const Value> a) {
  const Tensor& x = a[0].tensor();
  const auto o = pool2d_options(a[1], a[2], a[3], a[4], a[5].to_bool(), "max_pool2d");
  if (a[6].to_bool()) {
    auto [out, idx] = max_pool2d_with_indices(x, o);
    return Value(Tuple{{Value(std::move(out)), Value(std::move(idx))}});
  }
  return Value(max_pool2d(x, o));
}

// max_pool2d_with_indices(self, kernel_size, stride, padding, dilation, ceil_mode)
Value max_pool2d_with_indices_kernel(std::span<const Value> a) {
  const auto o = pool2d_options(a[1], a[2], a[3], a[4], a[5].to_bool(), "max_pool2d_with_indices");
  auto [out, idx] = max_pool2d_with_indices(a[0].tensor(), o);
  return Value(Tuple{{Value(std::move(out)), Value(std::move(idx))}});
}

// An output_size of F.adaptive_avg_pool2d: an int, None, or a pair of those.
std::array<std::optional<std::int64_t>, 2> adaptive_output_size(const Value& v) {
  auto one = [&](const Value& e) -> std::optional<std::int64_t> {
    if (e.is_none()) return std::nullopt;
    const auto* i = std::get_if<std::int64_t>(&e.variant());
    if (!i) fail("adaptive_avg_pool2d: output_size must hold ints or None, got " + util::kind_str(e));
    return *i;
  };
  if (v.kind() == Value::Kind::List || v.kind() == Value::Kind::Tuple) {
    if (v.items().size() != 2) fail("adaptive_avg_pool2d: output_size must have 2 entries");
    return {one(v.items()[0]), one(v.items()[1])};
  }
  auto s = one(v);
  return {s, s};
}

// F.adaptive_avg_pool2d(input, output_size)
Value adaptive_avg_pool2d_functional(std::span<const Value> a) {
  return Value(adaptive_avg_pool2d(a[0].tensor(), adaptive_output_size(a[1])));
}

// _adaptive_avg_pool2d(self, output_size)
Value adaptive_avg_pool2d_kernel(std::span<const Value> a) {
  const auto s = pair_arg(a[1], "_adaptive_avg_pool2d", "output_size");
  return Value(adaptive_avg_pool2d(a[0].tensor(), {s[0], s[1]}));
}

const Tensor* optional_tensor(const Value& v) { return v.is_none() ? nullptr : &v.tensor(); }

// F.batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)
Value batch_norm_functional(std::span<const Value> a) {
  return Value(batch_norm(a[0].tensor(), optional_tensor(a[3]), optional_tensor(a[4]), optional_tensor(a[1]),
                          optional_tensor(a[2]), a[5].to_bool(), a[7].to_double()));
}

// native_batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps)
// -> (output, save_mean, save_invstd). Running statistics are never updated (fxpack kernels
// do not write into inputs); the saved statistics are empty, as PyTorch's CPU kernel returns
// them in eval mode.
Value native_batch_norm_kernel(std::span<const Value> a) {
  const Tensor& x = a[0].tensor();
  const Tensor* rm = optional_tensor(a[3]);
  const Tensor* rv = optional_tensor(a[4]);
  const bool training = a[5].to_bool();
  if (!training && (!rm || !rv)) fail("native_batch_norm: running_mean and running_var must be defined in evaluation mode");
  Tensor out = batch_norm(x, optional_tensor(a[1]), optional_tensor(a[2]), rm, rv, training, a[7].to_double());
  return Value(Tuple{{Value(std::move(out)), Value(Tensor::empty(Shape{0}, x.dtype())),
                      Value(Tensor::empty(Shape{0}, x.dtype()))}});
}

// gelu: x * Φ(x), exactly (erf) or with PyTorch's tanh approximation.
void check_gelu_input(const Tensor& x) {
  if (!is_floating(x.dtype())) fail("gelu: not implemented for " + std::string(dtype_name(x.dtype())) + " tensors");
}
struct Gelu {
  static constexpr const char* name = "gelu";
  template <class T>
  T operator()(T x) const {
    return x * T(0.5) * (T(1) + std::erf(x * T(M_SQRT1_2)));
  }
  static void check(const Tensor& x) { check_gelu_input(x); }
};
struct GeluTanh {
  static constexpr const char* name = "gelu";
  template <class T>
  T operator()(T x) const {
    const T k = T(M_SQRT2 * M_2_SQRTPI * 0.5);  // sqrt(2 / pi)
    return T(0.5) * x * (T(1) + std::tanh(k * (x + T(0.044715) * x * x * x)));
  }
  static void check(const Tensor& x) { check_gelu_input(x); }
};

// gelu(self, *, approximate)
Value gelu_kernel(std::span<const Value> a) {
  const std::string& approximate = a[1].str();
  if (approximate == "none") return Value(unary_tensor<Gelu, Promotion::Keep>(a[0].tensor()));
  if (approximate == "tanh") return Value(unary_tensor<GeluTanh, Promotion::Keep>(a[0].tensor()));
  fail("gelu: approximate argument must be either none or tanh, got " + python_str_repr(approximate));
}

// torch._assert(condition, message): Python's `assert condition, message`.
Value assert_kernel(std::span<const Value> a) {
  const Value& c = a[0];
  bool ok;
  if (c.is_tensor()) {
    const Tensor& t = c.tensor();
    if (t.numel() != 1) fail("_assert: a condition tensor must have one element, got shape " + t.shape().to_string());
    ok = t.item_at(0) != 0.0;
  } else if (c.kind() == Value::Kind::Bool || c.is_int() || c.is_double()) {
    ok = c.to_double() != 0.0;
  } else {
    ok = !c.is_none();
  }
  if (!ok) fail("_assert: AssertionError: " + python_str_repr(a[1].str()));
  return Value();
}

// ---- make_fx decompositions ---------------------------------------------------------------------

List int_list(std::initializer_list<std::int64_t> v) {
  List l;
  for (std::int64_t x : v) l.items.emplace_back(x);
  return l;
}

// conv2d is convolution(x, w, b, stride, padding, dilation, transposed=False, [0, 0], groups),
// a string padding resolved to ints.
Value conv2d_decomposition(OpRecorder& rec, const OpCall& call) {
  const auto& a = call.args;
  Value padding = a[4].real;
  if (const auto* s = padding.if_string()) {
    if (*s == "valid") {
      padding = int_list({0, 0});
    } else {
      const Tensor& w = a[1].real.tensor();
      const auto dilation = a[5].real.int_list();
      List p;
      for (std::size_t i = 0; i < 2; ++i) {
        const std::int64_t total = dilation[i] * (w.shape()[2 + i] - 1);
        if (total % 2) fail("conv2d: padding='same' with asymmetric padding is not supported by make_fx");
        p.items.emplace_back(total / 2);
      }
      padding = Value(std::move(p));
    }
  }
  return rec.record("convolution.default",
                    {a[0].sym, a[1].sym, a[2].sym, a[3].sym, padding, a[5].sym, Value(false), int_list({0, 0}), a[6].sym});
}

// F.max_pool2d: max_pool2d_with_indices and its two getitems; the values, or both with
// return_indices.
Value max_pool2d_decomposition(OpRecorder& rec, const OpCall& call) {
  const auto& a = call.args;
  const Value stride = a[2].real.is_none() ? Value(List{}) : a[2].sym;
  Value items = rec.record("max_pool2d_with_indices.default", {a[0].sym, a[1].sym, stride, a[3].sym, a[4].sym, a[5].sym});
  if (a[6].real.to_bool()) return items;
  return items.items()[0];
}

// F.adaptive_avg_pool2d: a global pool is mean over the last two dims (PyTorch's
// CompositeImplicit adaptive_avg_pool2d), anything else _adaptive_avg_pool2d.
Value adaptive_avg_pool2d_decomposition(OpRecorder& rec, const OpCall& call) {
  const Tensor& x = call.args[0].real.tensor();
  const auto os = adaptive_output_size(call.args[1].real);
  std::int64_t size[2];
  for (std::size_t i = 0; i < 2; ++i) size[i] = os[i] ? *os[i] : x.shape()[x.dim() - 2 + i];
  if (size[0] == 1 && size[1] == 1) return rec.record("mean.dim", {call.args[0].sym, int_list({-1, -2}), Value(true)});
  return rec.record("_adaptive_avg_pool2d.default", {call.args[0].sym, int_list({size[0], size[1]})});
}

// F.batch_norm as PyTorch 1.13's _batch_norm_impl_index runs it: the (unused) reserve buffer,
// native_batch_norm and its three getitems.
Value batch_norm_decomposition(OpRecorder& rec, const OpCall& call) {
  const auto& a = call.args;
  Dict empty_kwargs;
  empty_kwargs.items.emplace_back("dtype", Value(DType::UInt8));
  empty_kwargs.items.emplace_back("layout", Value(Layout::Strided));
  empty_kwargs.items.emplace_back("device", Value(Device{}));
  rec.record("empty.memory_format", {int_list({0})}, std::move(empty_kwargs));
  Value items = rec.record("native_batch_norm.default",
                           {a[0].sym, a[3].sym, a[4].sym, a[1].sym, a[2].sym, a[5].sym, a[6].sym, a[7].sym});
  return items.items()[0];
}

}  // namespace

#include "nn_table.inc"

}  // namespace fxpack::ops
