#include "dnnl_kernels.hpp"

#include <algorithm>
#include <bit>
#include <utility>

#include <omp.h>

namespace fxpack::ops::dnnl_backend {

namespace {
const dnnl::primitive_attr& no_attr() {
  static const dnnl::primitive_attr a;
  return a;
}

// A primitive with one memory object per argument, made once per thread for what it computes
// and run again with new data pointers. oneDNN's own primitive cache is reached only after the
// primitive descriptor has been made again, which costs tens of allocations and microseconds
// per call: attention runs five such kernels per layer.
struct CachedPrimitive {
  dnnl::primitive prim;
  std::vector<memory> mems;  // in `args` order
  std::vector<dnnl_exec_arg_t> args;

  void run(std::initializer_list<const void*> data, const char* op) {
    std::size_t i = 0;
    for (const void* d : data) mems[i++].set_data_handle(const_cast<void*>(d));
    execute(prim, args, op);
  }
};

CachedPrimitive cached_of(dnnl::primitive prim, std::initializer_list<std::pair<int, memory::desc>> args) {
  CachedPrimitive c{std::move(prim), {}, {}};
  for (const auto& a : args) c.mems.emplace_back(a.second, engine(), nullptr);
  std::size_t i = 0;
  for (const auto& a : args) c.args.push_back(dnnl_exec_arg_t{a.first, c.mems[i++].get()});
  return c;
}

// Per thread, most recently used first; `key` says what the primitive computes (its kind,
// shapes, strides, options) and the thread count it was made for.
constexpr std::size_t kCachedPerThread = 64;

// The OpenMP thread count a primitive is made for and runs with on this thread, as oneDNN
// reads it (after use_threads()), not fxpack's setting: a key must name the count the
// primitive's work split was sized for, whatever set it (a plan step that runs on the calling
// thread alone sets 1).
std::int64_t primitive_threads() {
  use_threads();
  return omp_get_max_threads();
}

template <class Make>
CachedPrimitive& cached(const std::vector<std::int64_t>& key, Make&& make) {
  thread_local std::vector<std::pair<std::vector<std::int64_t>, CachedPrimitive>> cache;
  auto it = std::find_if(cache.begin(), cache.end(), [&](const auto& e) { return e.first == key; });
  if (it == cache.end()) {
    if (cache.size() == kCachedPerThread) cache.pop_back();
    cache.emplace(cache.begin(), key, make());
  } else if (it != cache.begin()) {
    std::rotate(cache.begin(), it, it + 1);
  }
  return cache.front().second;
}

void append(std::vector<std::int64_t>& key, const Dims& d) {
  key.push_back(static_cast<std::int64_t>(d.size()));
  key.insert(key.end(), d.begin(), d.end());
}
}  // namespace

void conv2d(const Tensor& x, const Tensor& w, const Tensor* b, const Conv2dOptions& o, Tensor& out) {
  use_threads();
  try {
    const ConvGeometry g = conv_geometry(x.shape(), w.shape(), b != nullptr, o, out.shape());
    const auto pd = conv_pd(g, false, no_attr());
    const dnnl::convolution_forward prim(pd);
    memory src = wrap(pd.src_desc(), x.data<float>());
    memory wei = wrap(pd.weights_desc(), w.data<float>());
    memory dst = wrap(pd.dst_desc(), out.data<float>());
    if (b) {
      memory bias = wrap(pd.bias_desc(), b->data<float>());
      execute(prim, {{DNNL_ARG_SRC, src.get()}, {DNNL_ARG_WEIGHTS, wei.get()}, {DNNL_ARG_BIAS, bias.get()},
                     {DNNL_ARG_DST, dst.get()}}, "conv2d");
    } else {
      execute(prim, {{DNNL_ARG_SRC, src.get()}, {DNNL_ARG_WEIGHTS, wei.get()}, {DNNL_ARG_DST, dst.get()}}, "conv2d");
    }
  } catch (const dnnl::error& e) {
    fail("conv2d", e);
  }
}

void conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor* b, const ConvTranspose2dOptions& o, Tensor& out) {
  use_threads();
  try {
    using tag = memory::format_tag;
    const memory::dim G = o.groups, I = w.shape()[0], Og = w.shape()[1];
    const memory::desc src_md = plain_md(dims_of(x.shape())), dst_md = plain_md(dims_of(out.shape()));
    const memory::desc w_md = G > 1 ? memory::desc({G, Og, I / G, w.shape()[2], w.shape()[3]}, memory::data_type::f32, tag::giohw)
                                    : memory::desc({Og, I, w.shape()[2], w.shape()[3]}, memory::data_type::f32, tag::iohw);
    const Dims strides{o.stride[0], o.stride[1]}, dilates{o.dilation[0] - 1, o.dilation[1] - 1};
    const Dims pad_l{o.padding[0], o.padding[1]};
    const Dims pad_r{o.padding[0] - o.output_padding[0], o.padding[1] - o.output_padding[1]};
    const auto alg = algorithm::deconvolution_direct;
    const auto kind = dnnl::prop_kind::forward_inference;
    const auto d = b ? dnnl::deconvolution_forward::desc(kind, alg, src_md, w_md, plain_md({Og * G}), dst_md, strides,
                                                         dilates, pad_l, pad_r)
                     : dnnl::deconvolution_forward::desc(kind, alg, src_md, w_md, dst_md, strides, dilates, pad_l, pad_r);
    const dnnl::deconvolution_forward::primitive_desc pd(d, no_attr(), engine());
    const dnnl::deconvolution_forward prim(pd);
    memory src = wrap(src_md, x.data<float>()), wei = wrap(w_md, w.data<float>()), dst = wrap(dst_md, out.data<float>());
    if (b) {
      memory bias = wrap(plain_md({Og * G}), b->data<float>());
      execute(prim, {{DNNL_ARG_SRC, src.get()}, {DNNL_ARG_WEIGHTS, wei.get()}, {DNNL_ARG_BIAS, bias.get()},
                     {DNNL_ARG_DST, dst.get()}}, "conv_transpose2d");
    } else {
      execute(prim, {{DNNL_ARG_SRC, src.get()}, {DNNL_ARG_WEIGHTS, wei.get()}, {DNNL_ARG_DST, dst.get()}},
              "conv_transpose2d");
    }
  } catch (const dnnl::error& e) {
    fail("conv_transpose2d", e);
  }
}

void matmul(const float* a, const Dims& a_dims, const float* b, const Dims& b_dims, float* c, const Dims& c_dims) {
  use_threads();
  try {
    const MatmulGeometry g{a_dims, b_dims, c_dims, false, false};
    const auto pd = matmul_pd(g, false, no_attr());
    const dnnl::matmul prim(pd);
    memory src = wrap(pd.src_desc(), a), wei = wrap(pd.weights_desc(), b), dst = wrap(pd.dst_desc(), c);
    execute(prim, {{DNNL_ARG_SRC, src.get()}, {DNNL_ARG_WEIGHTS, wei.get()}, {DNNL_ARG_DST, dst.get()}}, "matmul");
  } catch (const dnnl::error& e) {
    fail("matmul", e);
  }
}

void strided_matmul(const StridedView& a, const StridedView& b, float* c, const Dims& c_dims, const Dims& c_strides,
                    float scale) {
  std::vector<std::int64_t> key{'M', primitive_threads(), std::bit_cast<std::int32_t>(scale)};
  for (const Dims* d : {&a.dims, &a.strides, &b.dims, &b.strides, &c_dims, &c_strides}) append(key, *d);
  try {
    cached(key, [&] {
      const memory::desc a_md(a.dims, memory::data_type::f32, a.strides), b_md(b.dims, memory::data_type::f32, b.strides);
      const memory::desc c_md(c_dims, memory::data_type::f32, c_strides);
      dnnl::primitive_attr attr;
      if (scale != 1.f) attr.set_output_scales(0, {scale});
      const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), attr, engine());
      return cached_of(dnnl::matmul(pd), {{DNNL_ARG_SRC, a_md}, {DNNL_ARG_WEIGHTS, b_md}, {DNNL_ARG_DST, c_md}});
    }).run({a.data, b.data, c}, "matmul");
  } catch (const dnnl::error& e) {
    fail("matmul", e);
  }
}

void softmax(float* x, std::int64_t rows, std::int64_t n) {
  try {
    cached({'S', primitive_threads(), rows, n}, [&] {
      const memory::desc md = plain_md({rows, n});
      const dnnl::softmax_forward::primitive_desc pd(
          dnnl::softmax_forward::desc(dnnl::prop_kind::forward_inference, md, 1), no_attr(), engine());
      return cached_of(dnnl::softmax_forward(pd), {{DNNL_ARG_SRC, md}, {DNNL_ARG_DST, md}});
    }).run({x, x}, "softmax");
  } catch (const dnnl::error& e) {
    fail("softmax", e);
  }
}

void linear(const float* x, std::int64_t rows, const Tensor& w, const Tensor* b, float* out) {
  const memory::dim outf = w.shape()[0], in = w.shape()[1];
  try {
    CachedPrimitive& p = cached({'L', primitive_threads(), rows, in, outf, b != nullptr}, [&] {
      const MatmulGeometry g{{rows, in}, {in, outf}, {rows, outf}, true, b != nullptr};
      const auto pd = matmul_pd(g, false, no_attr());
      if (!b) return cached_of(dnnl::matmul(pd), {{DNNL_ARG_SRC, pd.src_desc()}, {DNNL_ARG_WEIGHTS, pd.weights_desc()},
                                                  {DNNL_ARG_DST, pd.dst_desc()}});
      return cached_of(dnnl::matmul(pd), {{DNNL_ARG_SRC, pd.src_desc()}, {DNNL_ARG_WEIGHTS, pd.weights_desc()},
                                          {DNNL_ARG_BIAS, plain_md({1, outf})}, {DNNL_ARG_DST, pd.dst_desc()}});
    });
    if (b) p.run({x, w.data<float>(), b->data<float>(), out}, "linear");
    else p.run({x, w.data<float>(), out}, "linear");
  } catch (const dnnl::error& e) {
    fail("linear", e);
  }
}

bool pool2d(const Tensor& x, const Pool2dOptions& o, bool average, bool count_include_pad, Tensor& out) {
  const auto g = pool_geometry(x.shape(), o, out.shape(), average, count_include_pad);
  if (!g) return false;
  const char* op = average ? "avg_pool2d" : "max_pool2d";
  use_threads();
  try {
    const auto src_md = plain_md(g->src);
    dnnl::pooling_v2_forward::desc d(dnnl::prop_kind::forward_inference, g->alg, src_md, plain_md(g->dst),
                                     g->strides, g->kernel, g->dilates, g->pad_l, g->pad_r);
    const dnnl::pooling_v2_forward::primitive_desc pd(d, no_attr(), engine());
    const dnnl::pooling_v2_forward prim(pd);
    memory src = wrap(src_md, x.data<float>()), dst = wrap(pd.dst_desc(), out.data<float>());
    execute(prim, {{DNNL_ARG_SRC, src.get()}, {DNNL_ARG_DST, dst.get()}}, op);
  } catch (const dnnl::error& e) {
    fail(op, e);
  }
  return true;
}

void batch_norm(const Tensor& x, const Tensor& mean, const Tensor& var, const Tensor* weight, const Tensor* bias,
                float eps, Tensor& out) {
  use_threads();
  try {
    const memory::desc md = plain_md(dims_of(x.shape()));
    const bool affine = weight && bias;
    const auto pd = batch_norm_pd(md, eps, affine, no_attr());
    const dnnl::batch_normalization_forward prim(pd);
    const memory::desc vec = plain_md({x.shape()[1]});
    memory src = wrap(md, x.data<float>()), dst = wrap(md, out.data<float>());
    memory m = wrap(vec, mean.data<float>()), v = wrap(vec, var.data<float>());
    if (affine) {
      memory sc = wrap(vec, weight->data<float>()), sh = wrap(vec, bias->data<float>());
      execute(prim, {{DNNL_ARG_SRC, src.get()}, {DNNL_ARG_MEAN, m.get()}, {DNNL_ARG_VARIANCE, v.get()},
                     {DNNL_ARG_SCALE, sc.get()}, {DNNL_ARG_SHIFT, sh.get()}, {DNNL_ARG_DST, dst.get()}}, "batch_norm");
    } else {
      execute(prim, {{DNNL_ARG_SRC, src.get()}, {DNNL_ARG_MEAN, m.get()}, {DNNL_ARG_VARIANCE, v.get()},
                     {DNNL_ARG_DST, dst.get()}}, "batch_norm");
    }
  } catch (const dnnl::error& e) {
    fail("batch_norm", e);
  }
}

void layer_norm(const Tensor& x, std::int64_t inner, const Tensor* weight, const Tensor* bias, float eps,
                Tensor& out) {
  use_threads();
  try {
    const memory::desc md = plain_md({x.numel() / inner, inner});
    const bool affine = weight && bias;
    const auto pd = layer_norm_pd(md, eps, affine, no_attr());
    const dnnl::layer_normalization_forward prim(pd);
    memory src = wrap(md, x.data<float>()), dst = wrap(md, out.data<float>());
    if (affine) {
      const memory::desc vec = plain_md({inner});
      memory sc = wrap(vec, weight->data<float>()), sh = wrap(vec, bias->data<float>());
      execute(prim, {{DNNL_ARG_SRC, src.get()}, {DNNL_ARG_SCALE, sc.get()}, {DNNL_ARG_SHIFT, sh.get()},
                     {DNNL_ARG_DST, dst.get()}}, "layer_norm");
    } else {
      execute(prim, {{DNNL_ARG_SRC, src.get()}, {DNNL_ARG_DST, dst.get()}}, "layer_norm");
    }
  } catch (const dnnl::error& e) {
    fail("layer_norm", e);
  }
}

void eltwise(const Tensor& x, const Eltwise& e, Tensor& out) {
  use_threads();
  try {
    const memory::desc md = plain_md({x.numel()});
    const auto pd = eltwise_pd(md, e, no_attr());
    const dnnl::eltwise_forward prim(pd);
    memory src = wrap(md, x.data<float>()), dst = wrap(md, out.data<float>());
    execute(prim, {{DNNL_ARG_SRC, src.get()}, {DNNL_ARG_DST, dst.get()}}, "eltwise");
  } catch (const dnnl::error& err) {
    fail("eltwise", err);
  }
}

void binary(algorithm alg, const float* a, const Dims& a_dims, const float* b, const Dims& b_dims, float* out) {
  use_threads();
  try {
    const memory::desc a_md = plain_md(a_dims), b_md = plain_md(b_dims);
    const auto pd = binary_pd(alg, a_md, b_md, no_attr());
    const dnnl::binary prim(pd);
    memory s0 = wrap(a_md, a), s1 = wrap(b_md, b), dst = wrap(a_md, out);
    execute(prim, {{DNNL_ARG_SRC_0, s0.get()}, {DNNL_ARG_SRC_1, s1.get()}, {DNNL_ARG_DST, dst.get()}}, "binary");
  } catch (const dnnl::error& e) {
    fail("binary", e);
  }
}

}  // namespace fxpack::ops::dnnl_backend
