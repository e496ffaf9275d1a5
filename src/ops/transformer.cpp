// Transformer kernels and leaf module kinds (transformer.yaml): layer norm (F.layer_norm,
// torch.layer_norm, native_layer_norm, LayerNorm), torchvision's stochastic_depth,
// multi-head attention (MultiheadAttention, its out_proj's NonDynamicallyQuantizableLinear,
// _native_multi_head_attention). Large float32 layer norms and projections run on oneDNN
// through the kernels of kernels.hpp; large float32 attention reads its heads in place with
// oneDNN's strided batched products and softmax (attend_dnnl); masking is a loop here.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <vector>

#include "dnnl/dnnl_kernels.hpp"
#include "fxpack/module.hpp"
#include "kernels.hpp"
#include "util.hpp"

namespace fxpack::ops {

using util::fail;

namespace {

const Tensor* optional_tensor(const Value& v) { return v.is_none() ? nullptr : &v.tensor(); }

std::string dtype_str(DType d) { return std::string(dtype_name(d)); }

// ---- layer norm ---------------------------------------------------------------------------

// F.layer_norm(input, normalized_shape, weight, bias, eps)
Value layer_norm_functional(std::span<const Value> a) {
  const std::vector<std::int64_t> ns = util::int_list_arg(a[1], "layer_norm", "normalized_shape");
  return Value(layer_norm(a[0].tensor(), ns, optional_tensor(a[2]), optional_tensor(a[3]), a[4].to_double()));
}

// torch.layer_norm(input, normalized_shape, weight, bias, eps, cudnn_enable): cudnn_enable
// only picks a CUDA implementation.
Value layer_norm_kernel(std::span<const Value> a) { return layer_norm_functional(a.first(5)); }

// native_layer_norm(input, normalized_shape, weight, bias, eps) -> (output, mean, rstd): the
// statistics of each normalised row, shaped as the input with the normalised dims set to 1.
template <class T>
void row_statistics(const Tensor& x, std::int64_t inner, double eps, Tensor& mean, Tensor& rstd) {
  const std::int64_t rows = inner ? x.numel() / inner : 0;
  const T* xd = x.data<T>();
  T* md = mean.data<T>();
  T* rd = rstd.data<T>();
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* row = xd + r * inner;
    double m = 0, var = 0;
    for (std::int64_t i = 0; i < inner; ++i) m += static_cast<double>(row[i]);
    m /= static_cast<double>(inner);
    for (std::int64_t i = 0; i < inner; ++i) {
      const double d = static_cast<double>(row[i]) - m;
      var += d * d;
    }
    var /= static_cast<double>(inner);
    md[r] = static_cast<T>(m);
    rd[r] = static_cast<T>(1.0 / std::sqrt(var + eps));
  }
}

Value native_layer_norm_kernel(std::span<const Value> a) {
  const Tensor& x = a[0].tensor();
  const std::vector<std::int64_t> ns = util::int_list_arg(a[1], "native_layer_norm", "normalized_shape");
  const double eps = a[4].to_double();
  Tensor out = layer_norm(x, ns, optional_tensor(a[2]), optional_tensor(a[3]), eps);  // checks the shapes
  std::vector<std::int64_t> stat_shape(x.shape().begin(), x.shape().end());
  std::int64_t inner = 1;
  for (std::size_t i = 0; i < ns.size(); ++i) {
    inner *= ns[i];
    stat_shape[stat_shape.size() - ns.size() + i] = 1;
  }
  Tensor mean = Tensor::empty(Shape(stat_shape), x.dtype()), rstd = Tensor::empty(Shape(stat_shape), x.dtype());
  if (x.dtype() == DType::Float32) row_statistics<float>(x, inner, eps, mean, rstd);
  else row_statistics<double>(x, inner, eps, mean, rstd);
  return Value(Tuple{{Value(std::move(out)), Value(std::move(mean)), Value(std::move(rstd))}});
}

// F.layer_norm and torch.layer_norm are aten::layer_norm, which PyTorch 1.13 decomposes into
// native_layer_norm (recorded with its three getitems) and takes the output.
Value layer_norm_decomposition(OpRecorder& rec, const OpCall& call) {
  const auto& a = call.args;
  Value items = rec.record("native_layer_norm.default", {a[0].sym, a[1].sym, a[2].sym, a[3].sym, a[4].sym});
  return items.items()[0];
}

// LayerNorm(normalized_shape, eps, elementwise_affine, bias): an int normalized_shape is a
// one-dim shape; weight is ones and bias zeros of that shape when affine.
void layer_norm_init(Module& m, std::span<const Value> args) {
  const std::vector<std::int64_t> ns = util::int_list_arg(args[0], "LayerNorm", "normalized_shape");
  Tuple shape;
  for (std::int64_t d : ns) {
    if (d < 0) throw ValueError("LayerNorm: normalized_shape must hold sizes >= 0, got " + python_repr(args[0]));
    shape.items.emplace_back(d);
  }
  m.set_attr("normalized_shape", Value(std::move(shape)));
  m.set_attr("eps", Value(args[1].to_double()));
  const bool affine = args[2].to_bool();
  m.set_attr("elementwise_affine", Value(affine));
  if (affine) {
    m.register_parameter("weight", Tensor::full(Shape(ns), 1.0));
    if (args[3].to_bool()) m.register_parameter("bias", Tensor::zeros(Shape(ns)));
  }
}

void layer_norm_validate(const Module& m) {
  const std::vector<std::int64_t> ns = m.attr("normalized_shape").int_list();
  for (std::int64_t d : ns) {
    if (d < 0) throw FormatError("LayerNorm: attribute 'normalized_shape' holds a negative size");
  }
  for (const char* name : {"weight", "bias"}) {
    const Tensor* t = m.find_parameter(name);
    if (!t) continue;
    if (!(t->shape() == Shape(ns))) {
      throw FormatError(std::string("LayerNorm: parameter '") + name + "' has shape " + t->shape().to_string() +
                        ", expected " + Shape(ns).to_string());
    }
    if (!is_floating(t->dtype())) throw FormatError(std::string("LayerNorm: parameter '") + name + "' is not floating");
  }
}

// ---- stochastic depth -----------------------------------------------------------------------

}  // namespace

bool stochastic_depth_is_identity(double p, const std::string& mode, bool training) {
  if (!(p >= 0.0 && p <= 1.0)) {
    fail("stochastic_depth: drop probability has to be between 0 and 1, but got " + python_repr(Value(p)));
  }
  if (mode != "batch" && mode != "row") {
    fail("stochastic_depth: mode has to be either 'batch' or 'row', but got " + python_str_repr(mode));
  }
  if (!training || p == 0.0) return true;
  fail("stochastic_depth: training=True with p=" + python_repr(Value(p)) +
       " drops rows at random, which fxpack does not do (run the model in eval mode)");
}

namespace {

Value stochastic_depth_kernel(std::span<const Value> a) {
  (void)stochastic_depth_is_identity(a[1].to_double(), a[2].str(), a[3].to_bool());
  return a[0];
}

// In eval mode torchvision's Python returns its input: make_fx records nothing.
Value stochastic_depth_decomposition(OpRecorder&, const OpCall& call) {
  const auto& a = call.args;
  (void)stochastic_depth_is_identity(a[1].real.to_double(), a[2].real.str(), a[3].real.to_bool());
  return a[0].sym;
}

// ---- multi-head attention -------------------------------------------------------------------

// Rows [start, start + count) of a contiguous matrix or vector, sharing its storage.
Tensor leading_rows(const Tensor& t, std::int64_t start, std::int64_t count) {
  std::vector<std::int64_t> shape(t.shape().begin(), t.shape().end());
  std::int64_t row = 1;
  for (std::size_t i = 1; i < shape.size(); ++i) row *= shape[i];
  shape[0] = count;
  return Tensor(t.storage(), t.byte_offset() + static_cast<std::size_t>(start * row) * element_size(t.dtype()),
                t.dtype(), Shape(shape));
}

std::vector<std::int64_t> dims_of(std::initializer_list<std::int64_t> d) { return d; }

// How a mask lines up with the attention scores (N, H, L, S).
enum class MaskLayout { LS, NS, NHLS };

struct AttentionMask {
  const Tensor* mask = nullptr;
  MaskLayout layout = MaskLayout::LS;
};

// Adds the masks to the scores (N, H, L, S) (bool: -inf where true; floating: added).
template <class T>
void add_masks(Tensor& scores, std::span<const AttentionMask> masks) {
  const std::int64_t N = scores.shape()[0], H = scores.shape()[1], L = scores.shape()[2], S = scores.shape()[3];
  T* sd = scores.data<T>();
  constexpr T kNegInf = -std::numeric_limits<T>::infinity();
  for (const AttentionMask& m : masks) {
    const Tensor& mask = *m.mask;
    const bool is_bool = mask.dtype() == DType::Bool || mask.dtype() == DType::UInt8;
    const Tensor mt = is_bool ? mask : mask.to(scores.dtype());
    const std::uint8_t* bd = is_bool ? mt.data<std::uint8_t>() : nullptr;
    const T* fd = is_bool ? nullptr : mt.data<T>();
    for (std::int64_t n = 0; n < N; ++n)
      for (std::int64_t h = 0; h < H; ++h)
        for (std::int64_t l = 0; l < L; ++l) {
          T* row = sd + ((n * H + h) * L + l) * S;
          const std::int64_t base = m.layout == MaskLayout::LS ? l * S
                                    : m.layout == MaskLayout::NS ? n * S
                                                                 : ((n * H + h) * L + l) * S;
          for (std::int64_t s = 0; s < S; ++s) {
            if (bd) {
              if (bd[base + s]) row[s] = kNegInf;
            } else {
              row[s] += fd[base + s];
            }
          }
        }
  }
}

// Softmax over the last dim of the scores. A row whose every entry is -inf becomes NaN, as in
// PyTorch.
template <class T>
void softmax_rows(Tensor& scores) {
  const std::int64_t S = scores.shape()[3], rows = scores.numel() / std::max<std::int64_t>(S, 1);
  T* sd = scores.data<T>();
  for (std::int64_t r = 0; r < rows; ++r) {
    T* row = sd + r * S;
    T mx = -std::numeric_limits<T>::infinity();
    for (std::int64_t s = 0; s < S; ++s) mx = std::max(mx, row[s]);
    T sum = 0;
    for (std::int64_t s = 0; s < S; ++s) {
      row[s] = std::exp(row[s] - mx);
      sum += row[s];
    }
    for (std::int64_t s = 0; s < S; ++s) row[s] /= sum;
  }
}

struct AttentionResult {
  Tensor output;   // (N, L, E)
  Tensor weights;  // (N, L, S) averaged, (N, H, L, S), or undefined
};

// How both attention paths end: the output projection of the merged heads (N, L, E), and the
// attention weights PyTorch returns: the probabilities (N, H, L, S), or their mean over the
// heads.
AttentionResult project_out(const Tensor& merged, const Tensor& probs, const Tensor& proj_weight,
                            const Tensor* proj_bias, bool need_weights, bool average_weights) {
  AttentionResult r;
  r.output = linear(merged, proj_weight, proj_bias);
  if (need_weights) r.weights = average_weights ? mean(probs, std::vector<std::int64_t>{1}, false) : probs;
  return r;
}

// Scaled dot-product attention over `heads` heads of projected batch-first inputs q (N, L, E),
// k (N, S, E), v (N, S, E), then the output projection: float64 and products too small for
// oneDNN (the heads are permuted copies).
AttentionResult attend(const Tensor& q, const Tensor& k, const Tensor& v, std::int64_t heads,
                       std::span<const AttentionMask> masks, const Tensor& proj_weight, const Tensor* proj_bias,
                       bool need_weights, bool average_weights) {
  const std::int64_t N = q.shape()[0], L = q.shape()[1], E = q.shape()[2], S = k.shape()[1];
  const std::int64_t hd = E / heads;
  const std::vector<std::int64_t> to_heads{0, 2, 1, 3};
  const std::vector<std::int64_t> qs = {N, L, heads, hd}, ks = {N, S, heads, hd};
  Tensor qh = permute(reshape(q, qs), to_heads);                          // (N, H, L, hd)
  Tensor kt = permute(reshape(k, ks), std::vector<std::int64_t>{0, 2, 3, 1});  // (N, H, hd, S)
  Tensor vh = permute(reshape(v, ks), to_heads);                          // (N, H, S, hd)
  qh = div(Value(qh), Value(std::sqrt(static_cast<double>(hd)))).tensor();
  Tensor scores = matmul(qh, kt);  // (N, H, L, S)
  if (scores.dtype() == DType::Float32) {
    add_masks<float>(scores, masks);
    softmax_rows<float>(scores);
  } else {
    add_masks<double>(scores, masks);
    softmax_rows<double>(scores);
  }
  Tensor heads_out = matmul(scores, vh);  // (N, H, L, hd)
  const std::vector<std::int64_t> flat = {N, L, E};
  Tensor merged = reshape(permute(heads_out, to_heads), flat);
  return project_out(merged, scores, proj_weight, proj_bias, need_weights, average_weights);
}

// A projected input (N, rows, E) read in place as heads: element (n, r, h, d) at
// data[(n * rows + r) * row_stride + offset + h * head_dim + d].
struct ProjectedHeads {
  const float* data = nullptr;
  std::int64_t rows = 0, row_stride = 0;
};

// (N, H, rows, head_dim), or transposed (N, H, head_dim, rows), as oneDNN strides.
dnnl_backend::StridedView heads_view(const ProjectedHeads& p, std::int64_t N, std::int64_t H, std::int64_t hd,
                                     bool transposed) {
  const std::int64_t rs = p.row_stride;
  if (transposed) return {p.data, {N, H, hd, p.rows}, {p.rows * rs, hd, 1, rs}};
  return {p.data, {N, H, p.rows, hd}, {p.rows * rs, hd, rs, 1}};
}

// float32 attention on oneDNN: the scores are one batched product over the heads read in
// place from the projections, with 1/sqrt(head_dim) as its output scale; the softmax is
// oneDNN's; the second product writes each head's columns straight into the merged (N, L, E)
// rows the output projection reads. No head is copied.
AttentionResult attend_dnnl(const ProjectedHeads& q, const ProjectedHeads& k, const ProjectedHeads& v,
                            std::int64_t N, std::int64_t E, std::int64_t heads, std::span<const AttentionMask> masks,
                            const Tensor& proj_weight, const Tensor* proj_bias, bool need_weights,
                            bool average_weights) {
  const std::int64_t L = q.rows, S = k.rows, hd = E / heads;
  Tensor scores = Tensor::empty(Shape{N, heads, L, S});
  const auto scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  dnnl_backend::strided_matmul(heads_view(q, N, heads, hd, false), heads_view(k, N, heads, hd, true),
                               scores.data<float>(), {N, heads, L, S}, {heads * L * S, L * S, S, 1}, scale);
  add_masks<float>(scores, masks);
  dnnl_backend::softmax(scores.data<float>(), N * heads * L, S);
  Tensor merged = Tensor::empty(Shape{N, L, E});
  dnnl_backend::strided_matmul({scores.data<float>(), {N, heads, L, S}, {heads * L * S, L * S, S, 1}},
                               heads_view(v, N, heads, hd, false), merged.data<float>(), {N, heads, L, hd},
                               {L * E, hd, E, 1}, 1.f);
  return project_out(merged, scores, proj_weight, proj_bias, need_weights, average_weights);
}

// The input projections: one packed [3E, E] weight (and [3E] bias), or three [E, E]
// weights sharing the packed bias.
struct InProjection {
  const Tensor* packed_weight = nullptr;
  const Tensor *q_weight = nullptr, *k_weight = nullptr, *v_weight = nullptr;
  const Tensor* bias = nullptr;
};

// Projects batch-first q (N, L, E), k, v (N, S, E) and attends. Self-attention (q, k and v
// one tensor) through a packed weight is one projection whose rows hold q, k and v side by
// side.
AttentionResult project_and_attend(const Tensor& q, const Tensor& k, const Tensor& v, const InProjection& in,
                                   std::int64_t heads, std::span<const AttentionMask> masks,
                                   const Tensor& proj_weight, const Tensor* proj_bias, bool need_weights,
                                   bool average_weights) {
  const std::int64_t N = q.shape()[0], L = q.shape()[1], E = q.shape()[2], S = k.shape()[1];
  const bool on_dnnl = q.dtype() == DType::Float32 && dnnl_backend::worth_it(N * L * S * E);
  if (on_dnnl && in.packed_weight && q == k && k == v) {
    const Tensor qkv = linear(q, *in.packed_weight, in.bias);  // (N, L, 3E)
    const float* d = qkv.data<float>();
    return attend_dnnl({d, L, 3 * E}, {d + E, S, 3 * E}, {d + 2 * E, S, 3 * E}, N, E, heads, masks, proj_weight,
                       proj_bias, need_weights, average_weights);
  }
  Tensor bq, bk, bv;
  if (in.bias) {
    bq = leading_rows(*in.bias, 0, E);
    bk = leading_rows(*in.bias, E, E);
    bv = leading_rows(*in.bias, 2 * E, E);
  }
  const Tensor* b[3] = {in.bias ? &bq : nullptr, in.bias ? &bk : nullptr, in.bias ? &bv : nullptr};
  const auto weight = [&](int i, const Tensor* separate) {
    return in.packed_weight ? leading_rows(*in.packed_weight, i * E, E) : *separate;
  };
  const Tensor qp = linear(q, weight(0, in.q_weight), b[0]);
  const Tensor kp = linear(k, weight(1, in.k_weight), b[1]);
  const Tensor vp = linear(v, weight(2, in.v_weight), b[2]);
  if (on_dnnl) {
    return attend_dnnl({qp.data<float>(), L, E}, {kp.data<float>(), S, E}, {vp.data<float>(), S, E}, N, E, heads,
                       masks, proj_weight, proj_bias, need_weights, average_weights);
  }
  return attend(qp, kp, vp, heads, masks, proj_weight, proj_bias, need_weights, average_weights);
}

[[noreturn]] void mha_fail(const std::string& what) { fail("multi_head_attention_forward: " + what); }

void check_mask(const Tensor* m, const Tensor& query, const char* name) {
  if (!m) return;
  const bool ok = m->dtype() == DType::Bool || m->dtype() == DType::UInt8 || m->dtype() == query.dtype();
  if (!ok) {
    mha_fail(std::string("only bool and floating types of ") + name + " are supported, and a floating " + name +
             " must have the query's dtype (" + dtype_str(query.dtype()) + "), got " + dtype_str(m->dtype()));
  }
}

// ---- scaled dot-product attention --------------------------------------------------------

// scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, *, scale,
// enable_gqa): softmax(q kᵀ · scale + mask) v over the last two dims, leading dims broadcast
// as matmul broadcasts them. A bool attn_mask says which positions take part (True: attend),
// a floating one is added; is_causal lets position l attend to s <= l only; scale defaults
// to 1/sqrt(E). enable_gqa repeats each key/value head for its group of query heads.
Value scaled_dot_product_attention_kernel(std::span<const Value> a) {
  const char* op = "scaled_dot_product_attention";
  Tensor q = a[0].tensor(), k = a[1].tensor(), v = a[2].tensor();
  const Tensor* mask = optional_tensor(a[3]);
  const double dropout_p = a[4].to_double();
  const bool is_causal = a[5].to_bool();
  const bool enable_gqa = a[7].to_bool();
  if (q.dim() < 2 || k.dim() < 2 || v.dim() < 2) {
    fail(std::string(op) + ": query, key and value need at least 2 dimensions, got " + std::to_string(q.dim()) + ", " +
         std::to_string(k.dim()) + " and " + std::to_string(v.dim()));
  }
  if (q.dtype() != k.dtype() || q.dtype() != v.dtype()) {
    fail(std::string(op) + ": Expected query, key, and value to have the same dtype, but got query.dtype: " +
         dtype_str(q.dtype()) + " key.dtype: " + dtype_str(k.dtype()) + " and value.dtype: " + dtype_str(v.dtype()));
  }
  if (q.dtype() != DType::Float32 && q.dtype() != DType::Float64) {
    fail(std::string(op) + ": not implemented for " + dtype_str(q.dtype()) + " tensors");
  }
  // PyTorch applies dropout whenever dropout_p > 0, also in eval(): a random result that
  // fxpack, which runs inference, does not produce.
  if (dropout_p != 0.0) fail(std::string(op) + ": dropout_p=" + std::to_string(dropout_p) + " is not supported (only 0.0)");
  if (is_causal && mask) fail(std::string(op) + ": Explicit attn_mask should not be set when is_causal=True");
  const std::int64_t E = q.size(-1), L = q.size(-2), S = k.size(-2);
  if (k.size(-1) != E || v.size(-2) != S) {
    fail(std::string(op) + ": query " + q.shape().to_string() + ", key " + k.shape().to_string() + " and value " +
         v.shape().to_string() + " do not fit: key must be (..., S, " + std::to_string(E) + "), value (..., S, Ev)");
  }
  if (enable_gqa && q.dim() >= 3 && k.dim() >= 3 && q.size(-3) != k.size(-3)) {
    const std::int64_t hq = q.size(-3), hk = k.size(-3);
    if (hk == 0 || hq % hk != 0 || v.size(-3) != hk) {
      fail(std::string(op) + ": with enable_gqa the query heads (" + std::to_string(hq) +
           ") must be a multiple of the key and value heads (" + std::to_string(hk) + ", " + std::to_string(v.size(-3)) + ")");
    }
    const auto repeat_heads = [&](const Tensor& t) {  // (..., Hk, S, D) -> (..., Hq, S, D)
      std::vector<std::int64_t> grouped(t.shape().begin(), t.shape().end());
      grouped.insert(grouped.end() - 2, 1);
      std::vector<std::int64_t> expanded = grouped;
      expanded[expanded.size() - 3] = hq / hk;
      std::vector<std::int64_t> merged(t.shape().begin(), t.shape().end());
      merged[merged.size() - 3] = hq;
      return reshape(expand(reshape(t, grouped), expanded), merged);
    };
    k = repeat_heads(k);
    v = repeat_heads(v);
  }
  const double scale = a[6].is_none() ? 1.0 / std::sqrt(static_cast<double>(E)) : a[6].to_double();
  Tensor scores = matmul(binary(BinaryOp::Mul, Value(q), Value(scale)).tensor(), transpose(k, -2, -1));  // (..., L, S)
  const std::vector<std::int64_t> score_shape(scores.shape().begin(), scores.shape().end());
  const auto mask_out = [&]<class T>(const std::uint8_t* attend, bool causal) {
    T* sd = scores.data<T>();
    const std::int64_t rows = scores.numel() / std::max<std::int64_t>(S, 1);
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::int64_t l = r % L;
      for (std::int64_t s = 0; s < S; ++s) {
        const bool keep = causal ? s <= l : attend[r * S + s] != 0;
        if (!keep) sd[r * S + s] = -std::numeric_limits<T>::infinity();
      }
    }
  };
  if (is_causal || (mask && mask->dtype() == DType::Bool)) {
    const Tensor attend = mask ? expand(*mask, score_shape, op) : Tensor();
    const std::uint8_t* ad = mask ? attend.data<std::uint8_t>() : nullptr;
    if (scores.dtype() == DType::Float32) mask_out.operator()<float>(ad, is_causal);
    else mask_out.operator()<double>(ad, is_causal);
  } else if (mask) {
    if (mask->dtype() != scores.dtype()) {
      fail(std::string(op) + ": Expected attn_mask dtype to be bool or " + dtype_str(scores.dtype()) +
           " to match query dtype, but got attn_mask.dtype: " + dtype_str(mask->dtype()));
    }
    scores = add(Value(scores), Value(*mask)).tensor();
  }
  return Value(matmul(softmax(scores, -1), v));
}

// F.multi_head_attention_forward's checks of the inputs' dtypes and ranks; true when batched
// (3-D), false when unbatched (2-D).
bool check_mha_inputs(const Tensor& query, const Tensor& key, const Tensor& value) {
  if (!is_floating(query.dtype())) mha_fail("expected a floating query, got " + dtype_str(query.dtype()));
  if (key.dtype() != query.dtype() || value.dtype() != query.dtype()) {
    mha_fail("query, key and value must have the same dtype, got " + dtype_str(query.dtype()) + ", " +
             dtype_str(key.dtype()) + " and " + dtype_str(value.dtype()));
  }
  const bool batched = query.dim() == 3;
  if (batched) {
    if (key.dim() != 3 || value.dim() != 3) {
      mha_fail("For batched (3-D) `query`, expected `key` and `value` to be 3-D but found " +
               std::to_string(key.dim()) + "-D and " + std::to_string(value.dim()) + "-D tensors respectively");
    }
  } else if (query.dim() == 2) {
    if (key.dim() != 2 || value.dim() != 2) {
      mha_fail("For unbatched (2-D) `query`, expected `key` and `value` to be 2-D but found " +
               std::to_string(key.dim()) + "-D and " + std::to_string(value.dim()) + "-D tensors respectively");
    }
  } else {
    mha_fail("query should be unbatched 2D or batched 3D tensor but received " + std::to_string(query.dim()) +
             "-D query tensor");
  }
  return batched;
}

// The batch-first shapes' checks: q (N, L, embed_dim), k and v (N, S, ...).
void check_mha_shapes(const Tensor& q, const Tensor& k, const Tensor& v, std::int64_t embed_dim, const Tensor& key,
                      const Tensor& value) {
  const std::int64_t N = q.shape()[0];
  if (q.shape()[2] != embed_dim) {
    mha_fail("was expecting embedding dimension of " + std::to_string(embed_dim) + ", but got " +
             std::to_string(q.shape()[2]));
  }
  if (k.shape()[0] != N || v.shape()[0] != N) {
    mha_fail("key and value must have the query's batch size " + std::to_string(N) + ", got " +
             key.shape().to_string() + " and " + value.shape().to_string());
  }
  if (k.shape()[1] != v.shape()[1]) {
    mha_fail("key shape " + key.shape().to_string() + " does not match value shape " + value.shape().to_string());
  }
}

// forward's attn_mask ((L, S) or (N * heads, L, S)) and key_padding_mask ((N, S), unbatched
// (S)), checked and lined up with the scores (N, heads, L, S).
std::vector<AttentionMask> mha_masks(const Tensor* attn_mask, const Tensor* key_padding_mask, bool is_causal,
                                     const Tensor& query, bool batched, std::int64_t N, std::int64_t heads,
                                     std::int64_t L, std::int64_t S) {
  check_mask(key_padding_mask, query, "key_padding_mask");
  check_mask(attn_mask, query, "attn_mask");
  if (is_causal && !attn_mask) {
    mha_fail("Need attn_mask if specifying the is_causal hint. You may use the Transformer module method "
             "`generate_square_subsequent_mask` to create this mask.");
  }
  std::vector<AttentionMask> masks;
  if (attn_mask) {
    if (attn_mask->dim() == 2) {
      if (!(attn_mask->shape() == Shape{L, S})) {
        mha_fail("The shape of the 2D attn_mask is " + attn_mask->shape().to_string() + ", but should be " +
                 Shape{L, S}.to_string() + ".");
      }
      masks.push_back({attn_mask, MaskLayout::LS});
    } else if (attn_mask->dim() == 3) {
      if (!(attn_mask->shape() == Shape{N * heads, L, S})) {
        mha_fail("The shape of the 3D attn_mask is " + attn_mask->shape().to_string() + ", but should be " +
                 Shape{N * heads, L, S}.to_string() + ".");
      }
      masks.push_back({attn_mask, MaskLayout::NHLS});
    } else {
      mha_fail("attn_mask's dimension " + std::to_string(attn_mask->dim()) + " is not supported");
    }
  }
  if (key_padding_mask) {
    const Shape want = batched ? Shape{N, S} : Shape{S};
    if (!(key_padding_mask->shape() == want)) {
      mha_fail("expected shape " + want.to_string() + " but got " + key_padding_mask->shape().to_string());
    }
    masks.push_back({key_padding_mask, MaskLayout::NS});
  }
  return masks;
}

// The module's input projections: one packed weight when query, key and value share the
// embedding dim, else three.
InProjection in_projection_of(const Module& m) {
  InProjection in_proj;
  in_proj.packed_weight = m.find_parameter("in_proj_weight");
  in_proj.bias = m.find_parameter("in_proj_bias");
  if (!in_proj.packed_weight) {
    in_proj.q_weight = m.find_parameter("q_proj_weight");
    in_proj.k_weight = m.find_parameter("k_proj_weight");
    in_proj.v_weight = m.find_parameter("v_proj_weight");
  }
  return in_proj;
}

// nn.MultiheadAttention.forward(query, key, value, key_padding_mask, need_weights, attn_mask,
// average_attn_weights, is_causal) in inference: F.multi_head_attention_forward's checks and
// results, (attn_output, attn_weights or None).
Value mha_forward(const Module& m, std::span<const Value> in) {
  const char* who = "MultiheadAttention";
  const Tensor& query = util::tensor_arg(in, 0, who, "query");
  const Tensor& key = util::tensor_arg(in, 1, who, "key");
  const Tensor& value = util::tensor_arg(in, 2, who, "value");
  const Tensor* key_padding_mask = util::optional_tensor_arg(in, 3, who, "key_padding_mask");
  const bool need_weights = util::bool_arg(in, 4, who, "need_weights");
  const Tensor* attn_mask = util::optional_tensor_arg(in, 5, who, "attn_mask");
  const bool average = util::bool_arg(in, 6, who, "average_attn_weights");
  const bool is_causal = util::bool_arg(in, 7, who, "is_causal");
  const std::int64_t embed_dim = m.attr("embed_dim").to_int(), heads = m.attr("num_heads").to_int();
  const bool batch_first = m.attr("batch_first").to_bool();

  const bool batched = check_mha_inputs(query, key, value);
  // Batch-first (N, L, E) from whatever the module takes.
  auto batch_first_of = [&](const Tensor& t) {
    if (!batched) return reshape(t, dims_of({1, t.shape()[0], t.shape()[1]}));
    return batch_first ? t : transpose(t, 0, 1);
  };
  const Tensor q = batch_first_of(query), k = batch_first_of(key), v = batch_first_of(value);
  check_mha_shapes(q, k, v, embed_dim, key, value);
  const std::int64_t N = q.shape()[0], L = q.shape()[1], S = k.shape()[1];
  const std::vector<AttentionMask> masks =
      mha_masks(attn_mask, key_padding_mask, is_causal, query, batched, N, heads, L, S);
  const std::shared_ptr<Module> out_proj = m.find_child("out_proj");
  AttentionResult r = project_and_attend(q, k, v, in_projection_of(m), heads, masks,
                                         *out_proj->find_parameter("weight"), out_proj->find_parameter("bias"),
                                         need_weights, average);
  Tensor out = !batched ? reshape(r.output, dims_of({L, embed_dim})) : batch_first ? r.output : transpose(r.output, 0, 1);
  Value weights;
  if (need_weights) {
    Tensor w = r.weights;
    if (!batched) {
      std::vector<std::int64_t> shape(w.shape().begin() + 1, w.shape().end());
      w = reshape(w, shape);
    }
    weights = Value(std::move(w));
  }
  return Value(Tuple{{Value(std::move(out)), std::move(weights)}});
}

// _native_multi_head_attention(query, key, value, embed_dim, num_head, qkv_weight, qkv_bias,
// proj_weight, proj_bias, mask, need_weights, average_attn_weights, mask_type): batch-first
// (N, L, E) inputs; when need_weights is false the weights are an empty tensor.
Value native_multi_head_attention_kernel(std::span<const Value> a) {
  const char* who = "_native_multi_head_attention";
  const Tensor& query = a[0].tensor();
  const Tensor& key = a[1].tensor();
  const Tensor& value = a[2].tensor();
  const std::int64_t E = a[3].to_int(), H = a[4].to_int();
  const Tensor& qkv_w = a[5].tensor();
  const Tensor& qkv_b = a[6].tensor();
  const Tensor* mask = optional_tensor(a[9]);
  const bool need_weights = a[10].to_bool(), average = a[11].to_bool();
  if (query.dim() != 3 || key.dim() != 3 || value.dim() != 3) {
    fail(std::string(who) + ": expected 3-D query, key and value, got " + query.shape().to_string() + ", " +
         key.shape().to_string() + " and " + value.shape().to_string());
  }
  if (!is_floating(query.dtype()) || key.dtype() != query.dtype() || value.dtype() != query.dtype()) {
    fail(std::string(who) + ": query, key and value must have one floating dtype");
  }
  if (H <= 0 || E % H != 0 || query.shape()[2] != E || key.shape()[2] != E || value.shape()[2] != E) {
    fail(std::string(who) + ": embed_dim " + std::to_string(E) + " must be divisible by num_head " +
         std::to_string(H) + " and match the inputs' last dim");
  }
  if (!(qkv_w.shape() == Shape{3 * E, E}) || !(qkv_b.shape() == Shape{3 * E})) {
    fail(std::string(who) + ": qkv_weight must be " + Shape{3 * E, E}.to_string() + " and qkv_bias " +
         Shape{3 * E}.to_string() + ", got " + qkv_w.shape().to_string() + " and " + qkv_b.shape().to_string());
  }
  const std::int64_t N = query.shape()[0], L = query.shape()[1], S = key.shape()[1];
  if (key.shape()[0] != N || !(value.shape() == key.shape())) {
    fail(std::string(who) + ": key and value must be (" + std::to_string(N) + ", S, " + std::to_string(E) +
         "), got " + key.shape().to_string() + " and " + value.shape().to_string());
  }
  std::vector<AttentionMask> masks;
  if (mask) {
    if (a[12].is_none()) fail(std::string(who) + ": a mask needs a mask_type");
    check_mask(mask, query, "mask");
    const std::int64_t type = a[12].to_int();
    const std::pair<MaskLayout, Shape> layouts[] = {
        {MaskLayout::LS, Shape{L, S}}, {MaskLayout::NS, Shape{N, S}}, {MaskLayout::NHLS, Shape{N, H, L, S}}};
    if (type < 0 || type > 2) fail(std::string(who) + ": mask_type must be 0, 1 or 2, got " + std::to_string(type));
    const auto& [layout, shape] = layouts[type];
    if (!(mask->shape() == shape)) {
      fail(std::string(who) + ": a mask of type " + std::to_string(type) + " must have shape " + shape.to_string() +
           ", got " + mask->shape().to_string());
    }
    masks.push_back({mask, layout});
  }
  InProjection in_proj;
  in_proj.packed_weight = &qkv_w;
  in_proj.bias = &qkv_b;
  AttentionResult r = project_and_attend(query, key, value, in_proj, H, masks, a[7].tensor(), &a[8].tensor(),
                                         need_weights, average);
  Tensor weights = need_weights ? r.weights : Tensor::empty(Shape{0}, query.dtype());
  return Value(Tuple{{Value(std::move(r.output)), Value(std::move(weights))}});
}

// make_fx records the module as PyTorch's inference fast path: _native_multi_head_attention on
// batch-first inputs (transposed or unsqueezed from the module's layout), one mask.
Value mha_decomposition(OpRecorder& rec, const Module& m, const OpCall& call) {
  const auto& a = call.args;
  const Tensor* in_w = m.find_parameter("in_proj_weight");
  const Tensor* in_b = m.find_parameter("in_proj_bias");
  if (!in_w || !in_b) {
    fail("make_fx: MultiheadAttention without a packed in_proj_weight and in_proj_bias (kdim/vdim differing from "
         "embed_dim, or bias=False) has no inference fast path to record");
  }
  const bool has_kpm = !a[3].real.is_none(), has_mask = !a[5].real.is_none();
  if (has_kpm && has_mask) fail("make_fx: MultiheadAttention with both key_padding_mask and attn_mask");
  if (has_mask && a[5].real.tensor().dim() != 2) fail("make_fx: MultiheadAttention with a 3-D attn_mask");
  const bool batched = a[0].real.tensor().dim() == 3;
  const bool batch_first = m.attr("batch_first").to_bool();
  auto to_batch_first = [&](const TracedValue& t) -> Value {
    if (!batched) return rec.record("unsqueeze.default", {t.sym, Value(std::int64_t{0})});
    if (batch_first) return t.sym;
    return rec.record("transpose.int", {t.sym, Value(std::int64_t{1}), Value(std::int64_t{0})});
  };
  const Value q = to_batch_first(a[0]), k = to_batch_first(a[1]), v = to_batch_first(a[2]);
  const std::shared_ptr<Module> out_proj = m.find_child("out_proj");
  const Tensor* pb = out_proj->find_parameter("bias");
  if (!pb) fail("make_fx: MultiheadAttention whose out_proj has no bias");
  Value mask = has_kpm ? a[3].sym : has_mask ? a[5].sym : Value();
  Value mask_type = has_kpm ? Value(std::int64_t{1}) : has_mask ? Value(std::int64_t{0}) : Value();
  if (has_kpm && !batched) {
    mask = rec.record("unsqueeze.default", {a[3].sym, Value(std::int64_t{0})});
  }
  const bool need_weights = a[4].real.to_bool();
  Value items = rec.record("_native_multi_head_attention.default",
                           {q, k, v, m.attr("embed_dim"), m.attr("num_heads"), Value(*in_w), Value(*in_b),
                            Value(*out_proj->find_parameter("weight")), Value(*pb), mask, Value(need_weights),
                            a[6].real, mask_type});
  Value out = items.items()[0];
  Value weights = need_weights ? items.items()[1] : Value();
  if (!batched) {
    const Tensor& o = call.result.items()[0].tensor();
    List shape;
    for (std::int64_t d : o.shape()) shape.items.emplace_back(d);
    out = rec.record("view.default", {out, Value(std::move(shape))});
    if (need_weights) {
      const Tensor& w = call.result.items()[1].tensor();
      List ws;
      for (std::int64_t d : w.shape()) ws.items.emplace_back(d);
      weights = rec.record("view.default", {weights, Value(std::move(ws))});
    }
  } else if (!batch_first) {
    out = rec.record("transpose.int", {out, Value(std::int64_t{1}), Value(std::int64_t{0})});
  }
  return Value(Tuple{{out, weights}});
}

// MultiheadAttention(embed_dim, num_heads, dropout, bias, add_bias_kv, add_zero_attn, kdim,
// vdim, batch_first), as PyTorch's __init__ (parameters zero-initialised: loaders set them).
void mha_init(Module& m, std::span<const Value> args) {
  const std::int64_t embed_dim = args[0].to_int(), heads = args[1].to_int();
  if (embed_dim <= 0 || heads <= 0) {
    throw ValueError("MultiheadAttention: embed_dim and num_heads must be greater than 0, got embed_dim=" +
                std::to_string(embed_dim) + " and num_heads=" + std::to_string(heads));
  }
  if (embed_dim % heads != 0) throw ValueError("MultiheadAttention: embed_dim must be divisible by num_heads");
  if (args[4].to_bool()) throw ValueError("MultiheadAttention: add_bias_kv=True is not supported");
  if (args[5].to_bool()) throw ValueError("MultiheadAttention: add_zero_attn=True is not supported");
  const std::int64_t kdim = args[6].is_none() ? embed_dim : args[6].to_int();
  const std::int64_t vdim = args[7].is_none() ? embed_dim : args[7].to_int();
  m.set_attr("embed_dim", Value(embed_dim));
  m.set_attr("kdim", Value(kdim));
  m.set_attr("vdim", Value(vdim));
  m.set_attr("num_heads", Value(heads));
  m.set_attr("dropout", Value(args[2].to_double()));
  m.set_attr("batch_first", Value(args[8].to_bool()));
  m.set_attr("head_dim", Value(embed_dim / heads));
  if (kdim == embed_dim && vdim == embed_dim) {
    m.register_parameter("in_proj_weight", Tensor::zeros(Shape{3 * embed_dim, embed_dim}));
  } else {
    m.register_parameter("q_proj_weight", Tensor::zeros(Shape{embed_dim, embed_dim}));
    m.register_parameter("k_proj_weight", Tensor::zeros(Shape{embed_dim, kdim}));
    m.register_parameter("v_proj_weight", Tensor::zeros(Shape{embed_dim, vdim}));
  }
  const bool bias = args[3].to_bool();
  if (bias) m.register_parameter("in_proj_bias", Tensor::zeros(Shape{3 * embed_dim}));
  m.register_module("out_proj", make_module("NonDynamicallyQuantizableLinear", {Value(embed_dim), Value(embed_dim), Value(bias)}));
  m.set_attr("bias_k", Value());
  m.set_attr("bias_v", Value());
  m.set_attr("add_zero_attn", Value(false));
}

void mha_validate(const Module& m) {
  auto bad = [](const std::string& what) { throw FormatError("MultiheadAttention: " + what); };
  const std::int64_t E = m.attr("embed_dim").to_int(), H = m.attr("num_heads").to_int();
  const std::int64_t kdim = m.attr("kdim").to_int(), vdim = m.attr("vdim").to_int();
  if (E <= 0 || H <= 0 || E % H != 0) bad("attribute 'embed_dim' must be a positive multiple of 'num_heads'");
  if (m.attr("head_dim").to_int() != E / H) bad("attribute 'head_dim' must be embed_dim // num_heads");
  if (!m.attr("bias_k").is_none() || !m.attr("bias_v").is_none()) bad("add_bias_kv (bias_k, bias_v) is not supported");
  if (m.attr("add_zero_attn").to_bool()) bad("add_zero_attn=True is not supported");
  auto check = [&](const char* name, const Shape& shape) {
    const Tensor* t = m.find_parameter(name);
    if (!t) bad(std::string("parameter '") + name + "' is missing");
    if (!(t->shape() == shape)) {
      bad(std::string("parameter '") + name + "' has shape " + t->shape().to_string() + ", expected " + shape.to_string());
    }
    if (!is_floating(t->dtype())) bad(std::string("parameter '") + name + "' must be floating");
  };
  if (m.find_parameter("in_proj_weight")) {
    if (kdim != E || vdim != E) bad("in_proj_weight needs kdim == vdim == embed_dim");
    check("in_proj_weight", Shape{3 * E, E});
  } else {
    check("q_proj_weight", Shape{E, E});
    check("k_proj_weight", Shape{E, kdim});
    check("v_proj_weight", Shape{E, vdim});
  }
  if (m.find_parameter("in_proj_bias")) check("in_proj_bias", Shape{3 * E});
  const std::shared_ptr<Module> out = m.find_child("out_proj");
  if (!out) bad("submodule 'out_proj' is missing");
  const Tensor* w = out->find_parameter("weight");
  if (!w || !(w->shape() == Shape{E, E})) bad("out_proj.weight must have shape " + Shape{E, E}.to_string());
  const Tensor* b = out->find_parameter("bias");
  if (b && !(b->shape() == Shape{E})) bad("out_proj.bias must have shape " + Shape{E}.to_string());
}

std::vector<std::pair<std::string, Value>> mha_private_attributes(const Module& m) {
  return {{"_qkv_same_embed_dim", Value(m.find_parameter("in_proj_weight") != nullptr)}};
}

// ---- NonDynamicallyQuantizableLinear ---------------------------------------------------------

void nd_linear_init(Module& m, std::span<const Value> args) {
  const std::int64_t in = args[0].to_int(), out = args[1].to_int();
  if (in < 0 || out < 0) throw ValueError("NonDynamicallyQuantizableLinear: in_features and out_features must be >= 0");
  m.set_attr("in_features", Value(in));
  m.set_attr("out_features", Value(out));
  m.register_parameter("weight", Tensor::zeros(Shape{out, in}));
  if (args[2].to_bool()) m.register_parameter("bias", Tensor::zeros(Shape{out}));
}

std::string nd_linear_repr(const Module& m) {
  return "in_features=" + std::to_string(m.attr("in_features").to_int()) +
         ", out_features=" + std::to_string(m.attr("out_features").to_int()) +
         ", bias=" + (m.find_parameter("bias") ? "True" : "False");
}

void nd_linear_validate(const Module& m) {
  const std::int64_t in = m.attr("in_features").to_int(), out = m.attr("out_features").to_int();
  const Tensor* w = m.find_parameter("weight");
  if (in < 0 || out < 0) throw FormatError("NonDynamicallyQuantizableLinear: in_features and out_features must be >= 0");
  if (!w || !(w->shape() == Shape{out, in}) || !is_floating(w->dtype())) {
    throw FormatError("NonDynamicallyQuantizableLinear: parameter 'weight' must be floating with shape " +
                      Shape{out, in}.to_string());
  }
  const Tensor* b = m.find_parameter("bias");
  if (b && (!(b->shape() == Shape{out}) || b->dtype() != w->dtype())) {
    throw FormatError("NonDynamicallyQuantizableLinear: parameter 'bias' must have shape " + Shape{out}.to_string() +
                      " and the weight's dtype");
  }
}

// ---- torchvision's Swin Transformer functions ---------------------------------------------------

// _patch_merging_pad(x): x [..., H, W, C] padded with zeros to even H and W, then the four
// interleaved half-resolution grids x[..., 0::2, 0::2, :], x[..., 1::2, 0::2, :],
// x[..., 0::2, 1::2, :], x[..., 1::2, 1::2, :] concatenated on the last dim. Bytes are
// copied, so every dtype works as F.pad and torch.cat take it.
Value patch_merging_pad_kernel(std::span<const Value> a) {
  const Tensor& x = a[0].tensor();
  if (x.dim() < 3) fail("_patch_merging_pad: expected an input [..., H, W, C], got shape " + x.shape().to_string());
  const std::size_t d = x.dim();
  const std::int64_t H = x.shape()[d - 3], W = x.shape()[d - 2], C = x.shape()[d - 1];
  const std::int64_t H2 = (H + 1) / 2, W2 = (W + 1) / 2;
  std::vector<std::int64_t> shape(x.shape().begin(), x.shape().end());
  shape[d - 3] = H2;
  shape[d - 2] = W2;
  shape[d - 1] = 4 * C;
  Tensor out = Tensor::zeros(Shape(shape), x.dtype());
  const std::int64_t batch = H * W * C != 0 ? x.numel() / (H * W * C) : 0;
  const std::size_t es = element_size(x.dtype());
  const std::byte* src = x.bytes().data();
  std::byte* dst = out.data<std::byte>();
  static constexpr std::int64_t kOffsets[4][2] = {{0, 0}, {1, 0}, {0, 1}, {1, 1}};
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t h2 = 0; h2 < H2; ++h2)
      for (std::int64_t w2 = 0; w2 < W2; ++w2)
        for (int part = 0; part < 4; ++part) {
          const std::int64_t h = 2 * h2 + kOffsets[part][0], w = 2 * w2 + kOffsets[part][1];
          if (h >= H || w >= W) continue;  // the zero padding
          const std::int64_t from = ((b * H + h) * W + w) * C;
          const std::int64_t to = ((b * H2 + h2) * W2 + w2) * 4 * C + part * C;
          std::memcpy(dst + static_cast<std::size_t>(to) * es, src + static_cast<std::size_t>(from) * es,
                      static_cast<std::size_t>(C) * es);
        }
  return Value(std::move(out));
}

// _get_relative_position_bias(table, index, window_size): table[index].view(N, N, -1)
// .permute(2, 0, 1).contiguous().unsqueeze(0) with N = window_size[0] * window_size[1].
Value relative_position_bias_kernel(std::span<const Value> a) {
  const char* who = "_get_relative_position_bias";
  const Tensor& table = a[0].tensor();
  const Tensor& index = a[1].tensor();
  const std::vector<std::int64_t> ws = util::int_list_arg(a[2], who, "window_size");
  if (ws.size() < 2) fail(std::string(who) + ": window_size must have 2 entries, got " + python_repr(a[2]));
  if (table.dim() < 1) fail(std::string(who) + ": the bias table must have at least one dim");
  if (index.dtype() != DType::Int64 && index.dtype() != DType::Int32) {
    fail(std::string(who) + ": tensors used as indices must be long or int tensors, got " + dtype_str(index.dtype()));
  }
  const std::int64_t rows = table.shape()[0];
  const std::int64_t row_elems = rows ? table.numel() / rows : 0;
  std::vector<std::int64_t> gathered_shape(index.shape().begin(), index.shape().end());
  gathered_shape.insert(gathered_shape.end(), table.shape().begin() + 1, table.shape().end());
  Tensor gathered = Tensor::empty(Shape(gathered_shape), table.dtype());
  const std::size_t row_bytes = static_cast<std::size_t>(row_elems) * element_size(table.dtype());
  for (std::int64_t i = 0; i < index.numel(); ++i) {
    const auto r = static_cast<std::int64_t>(index.item_at(i));
    if (r < -rows || r >= rows) {
      fail(std::string(who) + ": index " + std::to_string(r) + " is out of bounds for dimension 0 with size " +
           std::to_string(rows));
    }
    std::memcpy(gathered.data<std::byte>() + static_cast<std::size_t>(i) * row_bytes,
                table.bytes().data() + static_cast<std::size_t>(r < 0 ? r + rows : r) * row_bytes, row_bytes);
  }
  const std::int64_t n = ws[0] * ws[1];
  const Tensor v = reshape(gathered, dims_of({n, n, -1}), "view");
  const Tensor p = permute(v, dims_of({2, 0, 1}));
  std::vector<std::int64_t> out_shape{1};
  out_shape.insert(out_shape.end(), p.shape().begin(), p.shape().end());
  return Value(reshape(p, out_shape));
}

// Python's slice [start:stop] of range(n) with negative bounds counted from the end.
std::pair<std::int64_t, std::int64_t> py_slice(std::int64_t start, std::optional<std::int64_t> stop, std::int64_t n) {
  auto norm = [n](std::int64_t i) { return std::clamp(i < 0 ? i + n : i, std::int64_t{0}, n); };
  return {norm(start), stop ? norm(*stop) : n};
}

// The region label torchvision's shifted-window mask gives each (padded) row or column:
// attn_mask[h0:h1, w0:w1] = count over the 3 x 3 slices, later slices overwriting earlier ones.
std::vector<std::int64_t> shift_regions(std::int64_t n, std::int64_t window, std::int64_t shift) {
  const std::pair<std::int64_t, std::optional<std::int64_t>> slices[3] = {
      {0, -window}, {-window, -shift}, {-shift, std::nullopt}};
  std::vector<std::int64_t> label(static_cast<std::size_t>(n), 0);
  for (int k = 0; k < 3; ++k) {
    const auto [b, e] = py_slice(slices[k].first, slices[k].second, n);
    for (std::int64_t i = b; i < e; ++i) label[static_cast<std::size_t>(i)] = k;
  }
  return label;
}

template <class T>
void swin_scores(Tensor& attn, const Tensor& bias, const Tensor* mask, std::int64_t windows) {
  // attn (B*nW, heads, N, N) += bias (1, heads, N, N) [+ mask (nW, N, N)]; softmax rows.
  const std::int64_t BW = attn.shape()[0], heads = attn.shape()[1], N = attn.shape()[2];
  T* ad = attn.data<T>();
  const Tensor bt = bias.to(attn.dtype());
  const T* bd = bt.data<T>();
  const T* md = mask ? mask->data<T>() : nullptr;
  for (std::int64_t w = 0; w < BW; ++w)
    for (std::int64_t h = 0; h < heads; ++h)
      for (std::int64_t i = 0; i < N; ++i) {
        T* row = ad + ((w * heads + h) * N + i) * N;
        const T* brow = bd + (h * N + i) * N;
        const T* mrow = md ? md + ((w % windows) * N + i) * N : nullptr;
        for (std::int64_t j = 0; j < N; ++j) {
          row[j] += brow[j];  // (attn + bias) + mask, as torchvision adds them
          if (mrow) row[j] += mrow[j];
        }
      }
  softmax_rows<T>(attn);
}

// Moves (b, h, w, c) of a padded (B, pH, pW, C) map to and from window-major rows
// (B * nW, ws0 * ws1, C), rolled by `shift` (torch.roll(x, -shift) before partitioning).
template <class T>
void window_partition(const T* x, T* rows, std::int64_t B, std::int64_t pH, std::int64_t pW, std::int64_t C,
                      std::int64_t ws0, std::int64_t ws1, std::int64_t s0, std::int64_t s1, bool reverse) {
  const std::int64_t nh = pH / ws0, nw = pW / ws1;
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t wh = 0; wh < nh; ++wh)
      for (std::int64_t ww = 0; ww < nw; ++ww)
        for (std::int64_t i = 0; i < ws0; ++i)
          for (std::int64_t j = 0; j < ws1; ++j) {
            const std::int64_t h = (wh * ws0 + i + s0) % pH, w = (ww * ws1 + j + s1) % pW;
            T* map = const_cast<T*>(x) + ((b * pH + h) * pW + w) * C;
            T* row = rows + (((b * nh + wh) * nw + ww) * ws0 * ws1 + i * ws1 + j) * C;
            if (reverse) std::copy(row, row + C, map);
            else std::copy(map, map + C, row);
          }
}

// The windows' attention scores q·kᵀ (B*nW, heads, N, N): scaled by hd^-0.5, or (v2, with a
// logit_scale) cosine attention — F.normalize (eps 1e-12) of q and k, times
// exp(min(logit_scale, log 100)) per head.
template <class T>
Tensor swin_attention_scores(Tensor q, Tensor k, std::int64_t heads, const Tensor* logit_scale, const char* who) {
  const std::int64_t hd = q.shape()[3], N = q.shape()[2], rows = q.shape()[0];
  if (!logit_scale) {
    const T scale = static_cast<T>(std::pow(static_cast<double>(hd), -0.5));
    for (std::int64_t i = 0; i < q.numel(); ++i) q.data<T>()[i] *= scale;
    return matmul(q, transpose(k, -2, -1));
  }
  auto normalize_rows = [&](Tensor t) {
    T* d = t.data<T>();
    for (std::int64_t r = 0; r < t.numel() / hd; ++r) {
      double norm = 0;
      for (std::int64_t i = 0; i < hd; ++i) norm += static_cast<double>(d[r * hd + i]) * d[r * hd + i];
      const double denom = std::max(std::sqrt(norm), 1e-12);
      for (std::int64_t i = 0; i < hd; ++i) d[r * hd + i] = static_cast<T>(d[r * hd + i] / denom);
    }
    return t;
  };
  q = normalize_rows(q);
  k = normalize_rows(k.clone());
  Tensor attn = matmul(q, transpose(k, -2, -1));
  if (logit_scale->numel() != heads && logit_scale->numel() != 1) {
    fail(std::string(who) + ": logit_scale of shape " + logit_scale->shape().to_string() + " does not broadcast over " +
         std::to_string(heads) + " heads");
  }
  T* ad = attn.data<T>();
  for (std::int64_t w = 0; w < rows; ++w)
    for (std::int64_t h = 0; h < heads; ++h) {
      const double ls = logit_scale->item_at(logit_scale->numel() == 1 ? 0 : h);
      const T scale = static_cast<T>(std::exp(std::min(ls, std::log(100.0))));
      T* block = ad + (w * heads + h) * N * N;
      for (std::int64_t i = 0; i < N * N; ++i) block[i] *= scale;
    }
  return attn;
}

// The shifted windows' mask (nW, N, N): -100 between positions that came from different
// regions of the rolled map, else 0 (torchvision's attn_mask).
template <class T>
Tensor swin_shift_mask(std::int64_t pH, std::int64_t pW, std::int64_t ws0, std::int64_t ws1, std::int64_t s0,
                       std::int64_t s1, DType dtype) {
  const std::vector<std::int64_t> hr = shift_regions(pH, ws0, s0), wr = shift_regions(pW, ws1, s1);
  const std::int64_t windows = (pH / ws0) * (pW / ws1), N = ws0 * ws1, nw = pW / ws1;
  Tensor mask = Tensor::zeros(Shape{windows, N, N}, dtype);
  std::vector<std::int64_t> label(static_cast<std::size_t>(N));
  for (std::int64_t win = 0; win < windows; ++win) {
    const std::int64_t wh = win / nw, ww = win % nw;
    for (std::int64_t i = 0; i < ws0; ++i)
      for (std::int64_t j = 0; j < ws1; ++j)
        label[static_cast<std::size_t>(i * ws1 + j)] =
            hr[static_cast<std::size_t>(wh * ws0 + i)] * 3 + wr[static_cast<std::size_t>(ww * ws1 + j)];
    T* md = mask.data<T>() + win * N * N;
    for (std::int64_t i = 0; i < N; ++i)
      for (std::int64_t j = 0; j < N; ++j) md[i * N + j] = label[static_cast<std::size_t>(i)] != label[static_cast<std::size_t>(j)] ? T(-100) : T(0);
  }
  return mask;
}

template <class T>
Tensor shifted_window_attention_typed(const Tensor& input, const Tensor& qkv_weight, const Tensor& proj_weight,
                                      const Tensor& rel_bias, std::int64_t ws0, std::int64_t ws1, std::int64_t heads,
                                      std::int64_t s0, std::int64_t s1, const Tensor* qkv_bias_in,
                                      const Tensor* proj_bias, const Tensor* logit_scale) {
  const char* who = "shifted_window_attention";
  const std::int64_t B = input.shape()[0], H = input.shape()[1], W = input.shape()[2], C = input.shape()[3];
  const std::int64_t pad_r = (ws1 - W % ws1) % ws1, pad_b = (ws0 - H % ws0) % ws0;
  const std::int64_t pH = H + pad_b, pW = W + pad_r;
  if (ws0 >= pH) s0 = 0;
  if (ws1 >= pW) s1 = 0;
  const bool shifted = s0 + s1 > 0;
  // Zero-padded map (B, pH, pW, C).
  Tensor padded = Tensor::zeros(Shape{B, pH, pW, C}, input.dtype());
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t h = 0; h < H; ++h)
      std::copy(input.data<T>() + (b * H + h) * W * C, input.data<T>() + (b * H + h + 1) * W * C,
                padded.data<T>() + (b * pH + h) * pW * C);
  const std::int64_t windows = (pH / ws0) * (pW / ws1), N = ws0 * ws1, hd = C / heads;
  Tensor x = Tensor::empty(Shape{B * windows, N, C}, input.dtype());
  window_partition<T>(padded.data<T>(), x.data<T>(), B, pH, pW, C, ws0, ws1, s0, s1, false);
  // qkv, with v2's qkv_bias whose key third is zero.
  Tensor qkv_bias;
  if (qkv_bias_in) {
    qkv_bias = qkv_bias_in->clone();
    if (logit_scale) {
      const std::int64_t length = qkv_bias.numel() / 3;
      for (std::int64_t i = length; i < 2 * length; ++i) qkv_bias.data<T>()[i] = 0;
    }
  }
  const Tensor qkv = linear(x, qkv_weight, qkv_bias_in ? &qkv_bias : nullptr);
  if (qkv.shape()[2] != 3 * C) {
    fail(std::string(who) + ": qkv_weight gives " + std::to_string(qkv.shape()[2]) + " features, expected 3 * C = " +
         std::to_string(3 * C));
  }
  const Tensor parts = permute(reshape(qkv, dims_of({B * windows, N, 3, heads, hd})), dims_of({2, 0, 3, 1, 4}));
  Tensor q = leading_rows(parts, 0, 1).view(Shape{B * windows, heads, N, hd}).clone();
  Tensor k = leading_rows(parts, 1, 1).view(Shape{B * windows, heads, N, hd});
  const Tensor v = leading_rows(parts, 2, 1).view(Shape{B * windows, heads, N, hd});
  Tensor attn = swin_attention_scores<T>(std::move(q), std::move(k), heads, logit_scale, who);
  if (!(rel_bias.numel() == heads * N * N)) {
    fail(std::string(who) + ": relative_position_bias of shape " + rel_bias.shape().to_string() +
         " does not match the attention's " + Shape{B * windows, heads, N, N}.to_string());
  }
  const Tensor mask = shifted ? swin_shift_mask<T>(pH, pW, ws0, ws1, s0, s1, input.dtype()) : Tensor();
  swin_scores<T>(attn, rel_bias, shifted ? &mask : nullptr, windows);
  const Tensor heads_out = matmul(attn, v);  // (B*nW, heads, N, hd)
  const Tensor merged = reshape(transpose(heads_out, 1, 2), dims_of({B * windows, N, C}));
  const Tensor projected = linear(merged, proj_weight, proj_bias);
  if (projected.shape()[2] != C) {
    fail(std::string(who) + ": proj_weight gives " + std::to_string(projected.shape()[2]) + " features, expected " +
         std::to_string(C));
  }
  window_partition<T>(padded.data<T>(), const_cast<T*>(projected.data<T>()), B, pH, pW, C, ws0, ws1, s0, s1, true);
  Tensor out = Tensor::empty(Shape{B, H, W, C}, input.dtype());
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t h = 0; h < H; ++h)
      std::copy(padded.data<T>() + (b * pH + h) * pW * C, padded.data<T>() + ((b * pH + h) * pW + W) * C,
                out.data<T>() + (b * H + h) * W * C);
  return out;
}

// shifted_window_attention(input, qkv_weight, proj_weight, relative_position_bias,
// window_size, num_heads, shift_size, attention_dropout, dropout, qkv_bias, proj_bias,
// logit_scale, training): torchvision's Python, step for step, in one kernel.
Value shifted_window_attention_kernel(std::span<const Value> a) {
  const char* who = "shifted_window_attention";
  const Tensor& input = a[0].tensor();
  const std::vector<std::int64_t> ws = util::int_list_arg(a[4], who, "window_size");
  const std::vector<std::int64_t> shift = util::int_list_arg(a[6], who, "shift_size");
  const std::int64_t heads = a[5].to_int();
  if (input.dim() != 4) fail(std::string(who) + ": expected an input [B, H, W, C], got shape " + input.shape().to_string());
  if (!is_floating(input.dtype())) fail(std::string(who) + ": expected a floating input, got " + dtype_str(input.dtype()));
  if (ws.size() != 2 || shift.size() != 2) fail(std::string(who) + ": window_size and shift_size must have 2 entries");
  if (ws[0] <= 0 || ws[1] <= 0 || shift[0] < 0 || shift[1] < 0) {
    fail(std::string(who) + ": window_size must be positive and shift_size non-negative, got " + python_repr(a[4]) +
         " and " + python_repr(a[6]));
  }
  const std::int64_t C = input.shape()[3];
  if (heads <= 0 || C % heads != 0) {
    fail(std::string(who) + ": num_heads " + std::to_string(heads) + " must divide the channels " + std::to_string(C));
  }
  const bool training = a[12].to_bool();
  for (int i : {7, 8}) {
    if (training && a[static_cast<std::size_t>(i)].to_double() != 0.0) {
      fail(std::string(who) + ": dropout with p=" + python_repr(a[static_cast<std::size_t>(i)]) +
           " and training=True drops at random, which fxpack does not do");
    }
  }
  const Tensor* qkv_bias = optional_tensor(a[9]);
  const Tensor* proj_bias = optional_tensor(a[10]);
  const Tensor* logit_scale = optional_tensor(a[11]);
  for (const Tensor* t : {&a[1].tensor(), &a[2].tensor(), &a[3].tensor(), qkv_bias, proj_bias}) {
    if (t && t->dtype() != input.dtype()) {
      fail(std::string(who) + ": weights must have the input's dtype " + dtype_str(input.dtype()) + ", got " +
           dtype_str(t->dtype()));
    }
  }
  if (input.dtype() == DType::Float32) {
    return Value(shifted_window_attention_typed<float>(input, a[1].tensor(), a[2].tensor(), a[3].tensor(), ws[0], ws[1],
                                                       heads, shift[0], shift[1], qkv_bias, proj_bias, logit_scale));
  }
  return Value(shifted_window_attention_typed<double>(input, a[1].tensor(), a[2].tensor(), a[3].tensor(), ws[0], ws[1],
                                                      heads, shift[0], shift[1], qkv_bias, proj_bias, logit_scale));
}

// ---- TransformerEncoderLayer --------------------------------------------------------------------

// A Dropout child: the registered kind, or — while no Dropout kind is registered — the data
// form the torch.package loader gives a torch.nn class without one (it exports back as such).
std::shared_ptr<Module> dropout_child(double p) {
  if (OpRegistry::global().module_kind("Dropout")) return make_module("Dropout", {Value(p)});
  auto d = std::make_shared<Module>("torch.nn.modules.dropout.Dropout");
  d->set_attr("p", Value(p));
  d->set_attr("inplace", Value(false));
  return d;
}

// TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
// batch_first, norm_first, bias): PyTorch's children, in its order. activation "relu" and
// "gelu" are F.relu and F.gelu; any other registered function may be named directly.
void encoder_layer_init(Module& m, std::span<const Value> args) {
  const std::int64_t d_model = args[0].to_int(), nhead = args[1].to_int(), dff = args[2].to_int();
  const double p = args[3].to_double(), eps = args[5].to_double();
  const bool batch_first = args[6].to_bool(), bias = args[8].to_bool();
  std::string activation = args[4].str();
  if (activation == "relu" || activation == "gelu") activation = "torch.nn.functional." + activation;
  if (!OpRegistry::global().function(activation)) {
    throw ValueError("TransformerEncoderLayer: activation should be relu/gelu or a registered function, not " +
                python_str_repr(args[4].str()));
  }
  m.register_module("self_attn", make_module("MultiheadAttention", {Value(d_model), Value(nhead)},
                                             Dict{{{"dropout", Value(p)}, {"bias", Value(bias)},
                                                   {"batch_first", Value(batch_first)}}}));
  m.register_module("linear1", make_module("Linear", {Value(d_model), Value(dff), Value(bias)}));
  m.register_module("dropout", dropout_child(p));
  m.register_module("linear2", make_module("Linear", {Value(dff), Value(d_model), Value(bias)}));
  m.set_attr("norm_first", Value(args[7].to_bool()));
  const Tuple shape{{Value(d_model)}};
  for (const char* norm : {"norm1", "norm2"}) {
    m.register_module(norm, make_module("LayerNorm", {Value(shape)}, Dict{{{"eps", Value(eps)}, {"bias", Value(bias)}}}));
  }
  m.register_module("dropout1", dropout_child(p));
  m.register_module("dropout2", dropout_child(p));
  const std::int64_t relu_or_gelu =
      activation == "torch.nn.functional.relu" ? 1 : activation == "torch.nn.functional.gelu" ? 2 : 0;
  m.set_attr("activation_relu_or_gelu", Value(relu_or_gelu));
  m.set_attr("activation", Value(activation));
}

void encoder_layer_validate(const Module& m) {
  static const char* const kChildren[][2] = {{"self_attn", "MultiheadAttention"},
                                             {"linear1", nullptr},
                                             {"linear2", nullptr},
                                             {"norm1", "LayerNorm"},
                                             {"norm2", "LayerNorm"}};
  for (const auto& [name, kind] : kChildren) {
    const std::shared_ptr<Module> c = m.find_child(name);
    if (!c || !c->leaf_kind()) {
      throw FormatError(std::string("TransformerEncoderLayer: submodule '") + name + "' is missing or of no registered kind");
    }
    if (kind && c->leaf_kind()->name != kind) {
      throw FormatError(std::string("TransformerEncoderLayer: submodule '") + name + "' must be a " + kind + ", got " +
                        c->kind());
    }
  }
}

// One child's forward on one input.
Value run_child(const Module& m, const char* name, const Value& x) {
  return m.find_child(name)->forward(std::span<const Value>(&x, 1));
}

// (src, src_mask, src_key_padding_mask, is_causal): PyTorch's slow path, which its fast path
// matches.
//   norm_first: x = x + sa(norm1(x)); x = x + ff(norm2(x))
//   otherwise:  x = norm1(x + sa(x)); x = norm2(x + ff(x))
// sa(x) = self_attn(x, x, x, attn_mask, key_padding_mask, need_weights=False)[0],
// ff(x) = linear2(activation(linear1(x))).
Value encoder_layer_forward(const Module& m, std::span<const Value> in) {
  const std::shared_ptr<Module> attn = m.find_child("self_attn");
  auto sa = [&](const Value& x) {
    const Value args[] = {x, x, x, in[2], Value(false), in[1], Value(true), in[3]};
    return attn->forward(args).items()[0];
  };
  const std::string& activation = m.attr("activation").str();
  auto ff = [&](const Value& x) {
    return run_child(m, "linear2", call_function(activation, {run_child(m, "linear1", x)}));
  };
  Value x = in[0];
  if (m.attr("norm_first").to_bool()) {
    x = add(x, sa(run_child(m, "norm1", x)));
    x = add(x, ff(run_child(m, "norm2", x)));
  } else {
    x = run_child(m, "norm1", add(x, sa(x)));
    x = run_child(m, "norm2", add(x, ff(x)));
  }
  return x;
}

// make_fx: the same steps through make_fx's own calls — the attention as MultiheadAttention
// decomposes, the rest as F.linear, the activation, operator.add and F.layer_norm record.
Value encoder_layer_decomposition(OpRecorder& rec, const Module& m, const OpCall& call) {
  using TV = TracedValue;
  const std::shared_ptr<Module> attn = m.find_child("self_attn");
  auto param = [](const Module& c, const char* name) {
    const Tensor* t = c.find_parameter(name);
    return t ? TV{Value(*t), Value(*t)} : TV{};
  };
  auto linear_tv = [&](const char* name, const TV& x) {
    const Module& c = *m.find_child(name);
    return rec.call("torch._C._nn.linear", {x, param(c, "weight"), param(c, "bias")});
  };
  auto norm_tv = [&](const char* name, const TV& x) {
    const Module& c = *m.find_child(name);
    const Value shape = c.attr("normalized_shape"), eps = c.attr("eps");
    return rec.call("torch.nn.functional.layer_norm",
                    {x, TV{shape, shape}, param(c, "weight"), param(c, "bias"), TV{eps, eps}});
  };
  auto sa = [&](const TV& x) {
    const TV no{Value(false), Value(false)}, yes{Value(true), Value(true)};
    const TV args[] = {x, x, x, call.args[2], no, call.args[1], yes, call.args[3]};
    std::vector<Value> real;
    for (const TV& a : args) real.push_back(a.real);
    const Value result = attn->forward(real);
    const Value sym = mha_decomposition(rec, *attn, OpCall{args, result});
    return TV{result.items()[0], sym.items()[0]};
  };
  const std::string activation = m.attr("activation").str();
  auto ff = [&](const TV& x) { return linear_tv("linear2", rec.call(activation, {linear_tv("linear1", x)})); };
  auto plus = [&](const TV& a, const TV& b) { return rec.call("operator.add", {a, b}); };
  TV x = call.args[0];
  if (m.attr("norm_first").to_bool()) {
    x = plus(x, sa(norm_tv("norm1", x)));
    x = plus(x, ff(norm_tv("norm2", x)));
  } else {
    x = norm_tv("norm1", plus(x, sa(x)));
    x = norm_tv("norm2", plus(x, ff(x)));
  }
  return x.sym;
}

}  // namespace

#include "transformer_table.inc"

}  // namespace fxpack::ops
