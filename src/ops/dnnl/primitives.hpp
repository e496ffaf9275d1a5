// oneDNN primitive descriptors for fxpack's ops, shared by the kernels (plain layouts, built
// per call and found again in oneDNN's primitive cache) and by inference plans (layouts left
// to oneDNN, weights pre-packed, post-ops fused, built once per input signature).
// Internal to src/ops and src/inference.
#pragma once

#include <optional>
#include <span>
#include <vector>

#include "../kernels.hpp"
#include "context.hpp"

namespace fxpack::ops::dnnl_backend {

using dnnl::algorithm;

// An elementwise function: a oneDNN eltwise algorithm with its alpha and beta.
struct Eltwise {
  algorithm alg = algorithm::eltwise_relu;
  float alpha = 0.f;
  float beta = 0.f;
};

// A depthwise convolution run on a 1x1 convolution's result inside the same primitive
// (square kernel, equal strides, `padding` before each spatial dim; oneDNN works out the
// padding after from its output size, ceil(input / stride)).
struct DepthwiseFusion {
  memory::dim kernel = 3, stride = 1, padding = 1;
};

// What a convolution or matmul applies to its result, in order: eltwise functions,
// elementwise additions/multiplications of another tensor (broadcast to the result),
// Sum: adding what the destination buffer holds before the call (oneDNN's fastest kernels
// take a residual addition only this way), and Depthwise: a 1x1 convolution's depthwise
// successor (its weights and bias are the DNNL_ARG_ATTR_POST_OP_DW arguments; the post-ops
// after it apply to its result).
struct PostOp {
  enum class Kind : std::uint8_t { Eltwise, Add, Mul, Sum, Depthwise };
  Kind kind = Kind::Eltwise;
  Eltwise eltwise;
  memory::desc other;  // Add/Mul: the other operand
  DepthwiseFusion depthwise;
};

// Attributes: the post-ops, and a scratchpad the caller provides (`user_scratchpad`) or
// oneDNN allocates per call.
dnnl::primitive_attr make_attr(std::span<const PostOp> post_ops, bool user_scratchpad);

// ---- convolution ----------------------------------------------------------------------

// A 2-D convolution in oneDNN's terms: x [N, C, H, W], w [O, C/g, kh, kw] (grouped:
// [g, O/g, C/g, kh, kw]), dilation counted from 0, padding per side.
struct ConvGeometry {
  Dims src, weights, bias, dst;
  Dims strides, dilates, pad_l, pad_r;
  bool grouped = false;
};
ConvGeometry conv_geometry(const Shape& x, const Shape& w, bool has_bias, const Conv2dOptions& o,
                           const Shape& out);
// `blocked`: activations and weights in the layouts oneDNN prefers (the caller reorders);
// otherwise plain NCHW / OIHW. `src`, `dst` fix those layouts (e.g. a blocked producer's).
// `winograd`: the Winograd algorithm (3x3, stride 1: fewer multiplications, on AVX-512).
dnnl::convolution_forward::primitive_desc conv_pd(const ConvGeometry& g, bool blocked,
                                                  const dnnl::primitive_attr& attr,
                                                  const memory::desc* src = nullptr,
                                                  const memory::desc* dst = nullptr, bool winograd = false);
bool winograd_shape(const ConvGeometry& g);
// The activation layout of `md` among those oneDNN's convolutions use (nChw16c, nChw8c,
// nhwc, nchw), or `undef`.
memory::format_tag activation_tag(const memory::desc& md);
// oneDNN's reference implementations are correct but orders of magnitude slower
// (ref_fused_convolution, a 1x1 convolution with a depthwise post-op it cannot fuse, runs
// the two apart with the whole intermediate in its scratchpad: nothing gained).
bool is_reference(const char* impl);

// ---- matmul ---------------------------------------------------------------------------

// dst[b..., m, n] = src[b..., m, k] @ weights[b..., k, n] (+ bias[n]); batch dims of size 1
// broadcast. `weights_transposed`: the weights are stored as [b..., n, k] (nn.Linear's).
struct MatmulGeometry {
  Dims src, weights, dst;
  bool weights_transposed = false;
  bool bias = false;
};
dnnl::matmul::primitive_desc matmul_pd(const MatmulGeometry& g, bool packed_weights,
                                       const dnnl::primitive_attr& attr);

// ---- pooling --------------------------------------------------------------------------

struct PoolGeometry {
  Dims src, dst, kernel, strides, dilates, pad_l, pad_r;
  algorithm alg = algorithm::pooling_max;
};
// std::nullopt when oneDNN cannot reproduce PyTorch's windows (avg pooling whose ceil_mode
// windows count padding: PyTorch's divisor then stops at the declared padding).
std::optional<PoolGeometry> pool_geometry(const Shape& x, const Pool2dOptions& o, const Shape& out,
                                          bool average, bool count_include_pad);
dnnl::pooling_v2_forward::primitive_desc pool_pd(const PoolGeometry& g, const memory::desc& src,
                                                 const dnnl::primitive_attr& attr);

// ---- normalisation, elementwise -------------------------------------------------------

// Inference batch norm over dim 1 with given statistics (scale/shift when affine).
dnnl::batch_normalization_forward::primitive_desc batch_norm_pd(const memory::desc& src, float eps,
                                                                bool affine,
                                                                const dnnl::primitive_attr& attr);
// Layer norm over the last dim of `src`, with scale and shift when `affine`.
dnnl::layer_normalization_forward::primitive_desc layer_norm_pd(const memory::desc& src, float eps,
                                                                bool affine,
                                                                const dnnl::primitive_attr& attr);
dnnl::eltwise_forward::primitive_desc eltwise_pd(const memory::desc& src, const Eltwise& e,
                                                 const dnnl::primitive_attr& attr);
// dst = src0 (op) src1, src1 broadcast over dims of size 1; dst has src0's layout.
dnnl::binary::primitive_desc binary_pd(algorithm alg, const memory::desc& src0, const memory::desc& src1,
                                       const dnnl::primitive_attr& attr);

}  // namespace fxpack::ops::dnnl_backend
