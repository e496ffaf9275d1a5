// Convolution kernels of conv.yaml: conv1d runs as nn.cpp's conv2d over an [N, C, 1, L] view
// (as PyTorch's own conv1d does); conv_transpose2d runs on oneDNN's deconvolution for
// float32 and on a scatter loop for float64 and for output padding oneDNN cannot express.
#include <algorithm>

#include "dnnl/dnnl_kernels.hpp"
#include "kernels.hpp"
#include "util.hpp"

namespace fxpack::ops {

using util::fail;

namespace {

std::int64_t single(const Value& v, const char* op, const char* name) {
  const std::vector<std::int64_t> l = util::int_list_arg(v, op, name);
  if (l.size() != 1) {
    fail(std::string(op) + ": argument '" + name + "' must be an int or a tuple of one int, got " +
         std::to_string(l.size()) + " values");
  }
  return l[0];
}

std::array<std::int64_t, 2> pair(const Value& v, const char* op, const char* name) {
  const std::vector<std::int64_t> l = util::int_list_arg(v, op, name);
  if (l.size() == 1) return {l[0], l[0]};
  if (l.size() == 2) return {l[0], l[1]};
  fail(std::string(op) + ": argument '" + name + "' must be an int or a pair of ints, got " + std::to_string(l.size()) +
       " values");
}

}  // namespace

Tensor conv1d(const Tensor& x, const Tensor& w, const Tensor* b, const Value& stride, const Value& padding,
              const Value& dilation, std::int64_t groups) {
  if (x.dim() != 3 && x.dim() != 2) {
    fail("conv1d: Expected 2D (unbatched) or 3D (batched) input to conv1d, but got input of size: " + x.shape().to_string());
  }
  if (w.dim() != 3) fail("conv1d: expected a 3-D weight [out_channels, in_channels/groups, kW], got shape " + w.shape().to_string());
  Conv2dOptions o;
  o.stride = {1, single(stride, "conv1d", "stride")};
  o.dilation = {1, single(dilation, "conv1d", "dilation")};
  o.groups = groups;
  if (const auto* s = padding.if_string()) {
    if (*s == "same") {
      if (o.stride[1] != 1) fail("conv1d: padding='same' is not supported for strided convolutions");
      const std::int64_t total = o.dilation[1] * (w.shape()[2] - 1);
      o.padding_begin = {0, total / 2};
      o.padding_end = {0, total - total / 2};
    } else if (*s != "valid") {
      fail("conv1d: Invalid padding string '" + *s + "', should be one of {'valid', 'same'}");
    }
  } else {
    const std::int64_t p = single(padding, "conv1d", "padding");
    o.padding_begin = o.padding_end = {0, p};
  }
  const Tensor x4 = x.dim() == 3 ? x.view(Shape{x.shape()[0], x.shape()[1], 1, x.shape()[2]})
                                 : x.view(Shape{1, x.shape()[0], 1, x.shape()[1]});
  const Tensor w4 = w.view(Shape{w.shape()[0], w.shape()[1], 1, w.shape()[2]});
  const Tensor y = conv2d(x4, w4, b, o);
  if (x.dim() == 3) return y.view(Shape{y.shape()[0], y.shape()[1], y.shape()[3]});
  return y.view(Shape{y.shape()[1], y.shape()[3]});
}

namespace {

// out[n, g * Og + oc, ih * s - p + kh * d, ...] += x[n, g * Ig + ic, ih, iw] * w[g * Ig + ic, oc, kh, kw]
template <class T>
void conv_transpose_typed(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& out, const ConvTranspose2dOptions& o) {
  const std::int64_t N = x.shape()[0], I = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  const std::int64_t Og = w.shape()[1], KH = w.shape()[2], KW = w.shape()[3];
  const std::int64_t G = o.groups, Ig = I / G, O = Og * G;
  const std::int64_t OH = out.shape()[2], OW = out.shape()[3];
  const T* xd = x.data<T>();
  const T* wd = w.data<T>();
  T* od = out.data<T>();
  for (std::int64_t n = 0; n < N; ++n) {
    for (std::int64_t c = 0; c < O; ++c) {
      const T v = b ? b->data<T>()[c] : T(0);
      std::fill(od + (n * O + c) * OH * OW, od + (n * O + c + 1) * OH * OW, v);
    }
    for (std::int64_t g = 0; g < G; ++g) {
      for (std::int64_t ic = 0; ic < Ig; ++ic) {
        const T* plane = xd + (n * I + g * Ig + ic) * H * W;
        for (std::int64_t oc = 0; oc < Og; ++oc) {
          const T* k = wd + ((g * Ig + ic) * Og + oc) * KH * KW;
          T* oplane = od + (n * O + g * Og + oc) * OH * OW;
          for (std::int64_t ih = 0; ih < H; ++ih) {
            for (std::int64_t kh = 0; kh < KH; ++kh) {
              const std::int64_t oh = ih * o.stride[0] - o.padding[0] + kh * o.dilation[0];
              if (oh < 0 || oh >= OH) continue;
              for (std::int64_t iw = 0; iw < W; ++iw) {
                const T v = plane[ih * W + iw];
                for (std::int64_t kw = 0; kw < KW; ++kw) {
                  const std::int64_t ow = iw * o.stride[1] - o.padding[1] + kw * o.dilation[1];
                  if (ow >= 0 && ow < OW) oplane[oh * OW + ow] += v * k[kh * KW + kw];
                }
              }
            }
          }
        }
      }
    }
  }
}

}  // namespace

Tensor conv_transpose2d(const Tensor& xin, const Tensor& w, const Tensor* b, const ConvTranspose2dOptions& o) {
  const char* op = "conv_transpose2d";
  if (xin.dim() != 4 && xin.dim() != 3) {
    fail("conv_transpose2d: Expected 3D (unbatched) or 4D (batched) input to conv_transpose2d, but got input of size: " +
         xin.shape().to_string());
  }
  const Tensor x = xin.dim() == 4 ? xin : xin.view(Shape{1, xin.shape()[0], xin.shape()[1], xin.shape()[2]});
  if (w.dim() != 4) {
    fail("conv_transpose2d: expected a 4-D weight [in_channels, out_channels/groups, kH, kW], got shape " +
         w.shape().to_string());
  }
  if (x.dtype() != DType::Float32 && x.dtype() != DType::Float64) {
    fail("conv_transpose2d: expected a float32 or float64 input, got " + std::string(dtype_name(x.dtype())));
  }
  if (w.dtype() != x.dtype()) fail("conv_transpose2d: input and weight dtypes differ");
  if (o.groups <= 0) fail("conv_transpose2d: non-positive groups is not supported");
  if (x.shape()[1] != w.shape()[0]) {
    fail("conv_transpose2d: Given transposed=1, weight of size " + w.shape().to_string() + ", expected input" +
         xin.shape().to_string() + " to have " + std::to_string(w.shape()[0]) + " channels, but got " +
         std::to_string(x.shape()[1]) + " channels instead");
  }
  if (w.shape()[0] % o.groups != 0) fail("conv_transpose2d: in_channels must be divisible by groups");
  const std::int64_t O = w.shape()[1] * o.groups;
  if (b && (b->dim() != 1 || b->shape()[0] != O || b->dtype() != x.dtype())) {
    fail("conv_transpose2d: expected a bias of shape [" + std::to_string(O) + "], got " + b->shape().to_string());
  }
  Shape os{x.shape()[0], O, 0, 0};
  for (std::size_t i = 0; i < 2; ++i) {
    if (o.stride[i] <= 0 || o.dilation[i] <= 0) fail("conv_transpose2d: stride and dilation must be positive");
    if (o.padding[i] < 0 || o.output_padding[i] < 0) fail("conv_transpose2d: negative padding is not supported");
    if (o.output_padding[i] >= o.stride[i] && o.output_padding[i] >= o.dilation[i]) {
      fail("conv_transpose2d: output padding must be smaller than either stride or dilation, but got output_padding=" +
           std::to_string(o.output_padding[i]) + ", stride=" + std::to_string(o.stride[i]) + " and dilation=" +
           std::to_string(o.dilation[i]));
    }
    os[2 + i] = (x.shape()[2 + i] - 1) * o.stride[i] - 2 * o.padding[i] + o.dilation[i] * (w.shape()[2 + i] - 1) +
                o.output_padding[i] + 1;
    if (os[2 + i] <= 0) fail("conv_transpose2d: the output size " + os.to_string() + " is too small");
  }
  (void)op;
  Tensor out = Tensor::empty(os, x.dtype());
  const bool dnnl_fits = o.output_padding[0] <= o.padding[0] && o.output_padding[1] <= o.padding[1];
  if (x.dtype() == DType::Float32 && x.numel() > 0 && w.numel() > 0 && dnnl_fits) {
    dnnl_backend::conv_transpose2d(x, w, b, o, out);
  } else if (x.dtype() == DType::Float32) {
    conv_transpose_typed<float>(x, w, b, out, o);
  } else {
    conv_transpose_typed<double>(x, w, b, out, o);
  }
  if (xin.dim() == 3) return out.view(Shape{os[1], os[2], os[3]});
  return out;
}

namespace {

// ---- Kernels (named by conv.yaml) ----------------------------------------------------------

// conv1d(input, weight, bias, stride, padding, dilation, groups); padding an int or a string.
Value conv1d_kernel(std::span<const Value> a) {
  return Value(conv1d(a[0].tensor(), a[1].tensor(), a[2].is_none() ? nullptr : &a[2].tensor(), a[3], a[4], a[5],
                      a[6].to_int()));
}

ConvTranspose2dOptions transpose_options(const Value& stride, const Value& padding, const Value& output_padding,
                                         std::int64_t groups, const Value& dilation, const char* op) {
  ConvTranspose2dOptions o;
  o.stride = pair(stride, op, "stride");
  o.padding = pair(padding, op, "padding");
  o.output_padding = pair(output_padding, op, "output_padding");
  o.dilation = pair(dilation, op, "dilation");
  o.groups = groups;
  return o;
}

// conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation)
Value conv_transpose2d_kernel(std::span<const Value> a) {
  const auto o = transpose_options(a[3], a[4], a[5], a[6].to_int(), a[7], "conv_transpose2d");
  return Value(conv_transpose2d(a[0].tensor(), a[1].tensor(), a[2].is_none() ? nullptr : &a[2].tensor(), o));
}

// ---- make_fx decompositions ----------------------------------------------------------------

List int_list(std::initializer_list<std::int64_t> v) {
  List l;
  for (std::int64_t x : v) l.items.emplace_back(x);
  return l;
}

// conv1d is convolution(x, w, b, [stride], [padding], [dilation], False, [0], groups), a
// string padding resolved to ints.
Value conv1d_decomposition(OpRecorder& rec, const OpCall& call) {
  const auto& a = call.args;
  const std::int64_t dilation = single(a[5].real, "conv1d", "dilation");
  std::int64_t padding;
  if (const auto* s = a[4].real.if_string()) {
    padding = 0;
    if (*s == "same") {
      const std::int64_t total = dilation * (a[1].real.tensor().shape()[2] - 1);
      if (total % 2) fail("conv1d: padding='same' with asymmetric padding is not supported by make_fx");
      padding = total / 2;
    }
  } else {
    padding = single(a[4].real, "conv1d", "padding");
  }
  return rec.record("convolution.default",
                    {a[0].sym, a[1].sym, a[2].sym, int_list({single(a[3].real, "conv1d", "stride")}), int_list({padding}),
                     int_list({dilation}), Value(false), int_list({0}), a[6].sym});
}

// conv_transpose2d is convolution(x, w, b, stride, padding, dilation, True, output_padding, groups).
Value conv_transpose2d_decomposition(OpRecorder& rec, const OpCall& call) {
  const auto& a = call.args;
  const auto o = transpose_options(a[3].real, a[4].real, a[5].real, a[6].real.to_int(), a[7].real, "conv_transpose2d");
  return rec.record("convolution.default",
                    {a[0].sym, a[1].sym, a[2].sym, int_list({o.stride[0], o.stride[1]}),
                     int_list({o.padding[0], o.padding[1]}), int_list({o.dilation[0], o.dilation[1]}), Value(true),
                     int_list({o.output_padding[0], o.output_padding[1]}), a[6].sym});
}

}  // namespace

#include "conv_table.inc"

}  // namespace fxpack::ops
