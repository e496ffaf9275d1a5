#include "primitives.hpp"

#include <algorithm>
#include <string_view>

namespace fxpack::ops::dnnl_backend {

using tag = memory::format_tag;
using dt = memory::data_type;
constexpr auto kInference = dnnl::prop_kind::forward_inference;

dnnl::primitive_attr make_attr(std::span<const PostOp> post_ops, bool user_scratchpad) {
  dnnl::primitive_attr attr;
  if (user_scratchpad) attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (!post_ops.empty()) {
    dnnl::post_ops po;
    for (const PostOp& p : post_ops) {
      switch (p.kind) {
        case PostOp::Kind::Eltwise: po.append_eltwise(1.f, p.eltwise.alg, p.eltwise.alpha, p.eltwise.beta); break;
        case PostOp::Kind::Add: po.append_binary(algorithm::binary_add, p.other); break;
        case PostOp::Kind::Mul: po.append_binary(algorithm::binary_mul, p.other); break;
        case PostOp::Kind::Sum: po.append_sum(1.f); break;
        case PostOp::Kind::Depthwise: {
          const DepthwiseFusion& d = p.depthwise;
          po.append_dw(dt::f32, dt::f32, dt::f32, d.kernel, d.stride, d.padding, 0, {});
          break;
        }
      }
    }
    attr.set_post_ops(po);
  }
  return attr;
}

ConvGeometry conv_geometry(const Shape& x, const Shape& w, bool has_bias, const Conv2dOptions& o,
                           const Shape& out) {
  ConvGeometry g;
  g.src = dims_of(x);
  g.dst = dims_of(out);
  g.grouped = o.groups > 1;
  if (g.grouped) {
    g.weights = {o.groups, w[0] / o.groups, w[1], w[2], w[3]};
  } else {
    g.weights = dims_of(w);
  }
  if (has_bias) g.bias = {w[0]};
  g.strides = {o.stride[0], o.stride[1]};
  g.dilates = {o.dilation[0] - 1, o.dilation[1] - 1};
  g.pad_l = {o.padding_begin[0], o.padding_begin[1]};
  g.pad_r = {o.padding_end[0], o.padding_end[1]};
  return g;
}

bool winograd_shape(const ConvGeometry& g) {
  return !g.grouped && g.weights[2] == 3 && g.weights[3] == 3 && g.strides[0] == 1 && g.strides[1] == 1 &&
         g.dilates[0] == 0 && g.dilates[1] == 0;
}

memory::format_tag activation_tag(const memory::desc& md) {
  const Dims d = md.dims();
  for (tag t : {tag::nChw16c, tag::nChw8c, tag::nhwc, tag::nchw})
    if (d.size() == 4 && md == memory::desc(d, dt::f32, t)) return t;
  return tag::undef;
}

bool is_reference(const char* impl) { return impl && std::string_view(impl).starts_with("ref"); }

dnnl::convolution_forward::primitive_desc conv_pd(const ConvGeometry& g, bool blocked,
                                                  const dnnl::primitive_attr& attr,
                                                  const memory::desc* src, const memory::desc* dst, bool winograd) {
  const algorithm alg = winograd ? algorithm::convolution_winograd : algorithm::convolution_direct;
  const memory::desc src_md = src ? *src : memory::desc(g.src, dt::f32, blocked ? tag::any : tag::nchw);
  const memory::desc dst_md = dst ? *dst : memory::desc(g.dst, dt::f32, blocked ? tag::any : tag::nchw);
  const memory::desc w_md(g.weights, dt::f32, blocked ? tag::any : (g.grouped ? tag::goihw : tag::oihw));
  if (g.bias.empty()) {
    dnnl::convolution_forward::desc d(kInference, alg, src_md, w_md, dst_md, g.strides, g.dilates, g.pad_l, g.pad_r);
    return {d, attr, engine()};
  }
  const memory::desc b_md(g.bias, dt::f32, tag::x);
  dnnl::convolution_forward::desc d(kInference, alg, src_md, w_md, b_md, dst_md, g.strides, g.dilates, g.pad_l,
                                    g.pad_r);
  return {d, attr, engine()};
}

dnnl::matmul::primitive_desc matmul_pd(const MatmulGeometry& g, bool packed_weights,
                                       const dnnl::primitive_attr& attr) {
  const memory::desc src_md = plain_md(g.src);
  const memory::desc dst_md = plain_md(g.dst);
  memory::desc w_md;
  if (packed_weights) {
    w_md = memory::desc(g.weights, dt::f32, tag::any);
  } else if (g.weights_transposed) {
    // Stored as [batch..., n, k]: the [k, n] matrix is its transpose.
    const std::size_t nd = g.weights.size();
    Dims strides(nd);
    const memory::dim k = g.weights[nd - 2], n = g.weights[nd - 1];
    strides[nd - 2] = 1;
    strides[nd - 1] = k;
    memory::dim st = k * n;
    for (std::size_t i = nd - 2; i-- > 0;) {
      strides[i] = st;
      st *= std::max<memory::dim>(g.weights[i], 1);
    }
    w_md = memory::desc(g.weights, dt::f32, strides);
  } else {
    w_md = plain_md(g.weights);
  }
  if (!g.bias) {
    dnnl::matmul::desc d(src_md, w_md, dst_md);
    return {d, attr, engine()};
  }
  Dims bias_dims(g.dst.size(), 1);
  bias_dims.back() = g.dst.back();
  dnnl::matmul::desc d(src_md, w_md, plain_md(bias_dims), dst_md);
  return {d, attr, engine()};
}

std::optional<PoolGeometry> pool_geometry(const Shape& x, const Pool2dOptions& o, const Shape& out,
                                          bool average, bool count_include_pad) {
  PoolGeometry g;
  g.src = dims_of(x);
  g.dst = dims_of(out);
  g.kernel = {o.kernel[0], o.kernel[1]};
  g.strides = {o.stride[0], o.stride[1]};
  g.dilates = {o.dilation[0] - 1, o.dilation[1] - 1};
  g.pad_l = {o.padding[0], o.padding[1]};
  g.pad_r = {0, 0};
  for (std::size_t i = 0; i < 2; ++i) {
    const memory::dim eff = (o.kernel[i] - 1) * o.dilation[i] + 1;
    // The right padding that makes oneDNN's floor formula give PyTorch's output size
    // (ceil_mode adds windows that end past the declared padding).
    const memory::dim needed = (out[2 + i] - 1) * o.stride[i] + eff - x[2 + i] - o.padding[i];
    if (average && count_include_pad && needed > o.padding[i]) return std::nullopt;
    g.pad_r[i] = std::max<memory::dim>(needed, 0);
  }
  g.alg = !average ? algorithm::pooling_max
                   : (count_include_pad ? algorithm::pooling_avg_include_padding
                                        : algorithm::pooling_avg_exclude_padding);
  return g;
}

dnnl::pooling_v2_forward::primitive_desc pool_pd(const PoolGeometry& g, const memory::desc& src,
                                                 const dnnl::primitive_attr& attr) {
  const memory::desc dst_md(g.dst, dt::f32, tag::any);
  dnnl::pooling_v2_forward::desc d(kInference, g.alg, src, dst_md, g.strides, g.kernel, g.dilates, g.pad_l,
                                   g.pad_r);
  return {d, attr, engine()};
}

dnnl::batch_normalization_forward::primitive_desc batch_norm_pd(const memory::desc& src, float eps, bool affine,
                                                                const dnnl::primitive_attr& attr) {
  auto flags = dnnl::normalization_flags::use_global_stats;
  if (affine) flags = flags | dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
  dnnl::batch_normalization_forward::desc d(kInference, src, eps, flags);
  return {d, attr, engine()};
}

dnnl::layer_normalization_forward::primitive_desc layer_norm_pd(const memory::desc& src, float eps, bool affine,
                                                                const dnnl::primitive_attr& attr) {
  auto flags = dnnl::normalization_flags::none;
  if (affine) flags = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
  dnnl::layer_normalization_forward::desc d(kInference, src, eps, flags);
  return {d, attr, engine()};
}

dnnl::eltwise_forward::primitive_desc eltwise_pd(const memory::desc& src, const Eltwise& e,
                                                 const dnnl::primitive_attr& attr) {
  dnnl::eltwise_forward::desc d(kInference, e.alg, src, e.alpha, e.beta);
  return {d, attr, engine()};
}

dnnl::binary::primitive_desc binary_pd(algorithm alg, const memory::desc& src0, const memory::desc& src1,
                                       const dnnl::primitive_attr& attr) {
  dnnl::binary::desc d(alg, src0, src1, src0);
  return {d, attr, engine()};
}

}  // namespace fxpack::ops::dnnl_backend
