// Matrix products (linalg.yaml): matmul (1-D/2-D/batched with broadcasting), mm, bmm, linear, addmm.
// float32 products of more than a few thousand multiply-adds run on oneDNN's matmul (chosen
// for the CPU at run time); smaller ones, float64 and int64 on Eigen.
#include <Eigen/Core>
#include <algorithm>
#include <array>
#include <cstring>

#include "dnnl/dnnl_kernels.hpp"
#include "kernels.hpp"
#include "util.hpp"

namespace fxpack::ops {

using util::fail;

namespace {

template <class T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// C[n, m] = A[n, k] * B[k, m], all row-major and contiguous.
template <class T>
void gemm(const T* a, const T* b, T* c, std::int64_t n, std::int64_t k, std::int64_t m) {
  Eigen::Map<RowMat<T>> C(c, n, m);
  if (k == 0) {
    C.setZero();
    return;
  }
  Eigen::Map<const RowMat<T>> A(a, n, k);
  Eigen::Map<const RowMat<T>> B(b, k, m);
  C.noalias() = A * B;
}

void check_matmul_dtypes(const Tensor& a, const Tensor& b, const char* op) {
  if (a.dtype() != b.dtype()) {
    fail(std::string(op) + ": expected both operands to have the same dtype, but got " +
         std::string(dtype_name(a.dtype())) + " and " + std::string(dtype_name(b.dtype())));
  }
  if (a.dtype() != DType::Float32 && a.dtype() != DType::Float64 && a.dtype() != DType::Int64) {
    fail(std::string(op) + ": not implemented for " + std::string(dtype_name(a.dtype())) + " tensors");
  }
}

template <class T>
void batched_gemm(const Tensor& a, const Tensor& b, Tensor& out, const Shape& batch,
                  const Shape& a_batch, const Shape& b_batch, std::int64_t n, std::int64_t k,
                  std::int64_t m) {
  const std::size_t nd = batch.size();
  std::int64_t st_a[Shape::kMaxDims], st_b[Shape::kMaxDims];
  std::int64_t sa = n * k, sb = k * m;
  for (std::size_t i = nd; i-- > 0;) {
    const std::size_t kk = nd - i;
    if (kk <= a_batch.size() && a_batch[a_batch.size() - kk] != 1) {
      st_a[i] = sa;
      sa *= a_batch[a_batch.size() - kk];
    } else {
      st_a[i] = 0;
    }
    if (kk <= b_batch.size() && b_batch[b_batch.size() - kk] != 1) {
      st_b[i] = sb;
      sb *= b_batch[b_batch.size() - kk];
    } else {
      st_b[i] = 0;
    }
  }
  const std::int64_t nb = batch.numel();
  std::int64_t idx[Shape::kMaxDims] = {};
  std::int64_t off_a = 0, off_b = 0;
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  T* pc = out.data<T>();
  for (std::int64_t r = 0; r < nb; ++r) {
    gemm(pa + off_a, pb + off_b, pc + r * n * m, n, k, m);
    for (std::size_t d = nd; d-- > 0;) {
      off_a += st_a[d];
      off_b += st_b[d];
      if (++idx[d] < batch[d]) break;
      off_a -= st_a[d] * batch[d];
      off_b -= st_b[d] * batch[d];
      idx[d] = 0;
    }
  }
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined()) fail("matmul: undefined tensor");
  const std::size_t da = a.dim(), db = b.dim();
  if (da == 0 || db == 0) {
    fail("matmul: both arguments to matmul need to be at least 1D, but they are " +
         std::to_string(da) + "D and " + std::to_string(db) + "D");
  }
  check_matmul_dtypes(a, b, "matmul");
  // Matrix views: a -> [batch..., n, k], b -> [batch..., k, m].
  const std::int64_t n = da == 1 ? 1 : a.shape()[da - 2];
  const std::int64_t ka = a.shape()[da - 1];
  const std::int64_t kb = db == 1 ? b.shape()[0] : b.shape()[db - 2];
  const std::int64_t m = db == 1 ? 1 : b.shape()[db - 1];
  if (ka != kb) {
    fail("matmul: shapes " + a.shape().to_string() + " and " + b.shape().to_string() +
         " cannot be multiplied (" + std::to_string(ka) + " != " + std::to_string(kb) + ")");
  }
  Shape a_batch, b_batch;
  for (std::size_t i = 0; i + 2 < da; ++i) a_batch.push_back(a.shape()[i]);
  for (std::size_t i = 0; i + 2 < db; ++i) b_batch.push_back(b.shape()[i]);
  // Broadcast the batch dims.
  Shape batch;
  const std::size_t nb = std::max(a_batch.size(), b_batch.size());
  for (std::size_t i = 0; i < nb; ++i) {
    const std::size_t kk = nb - i;
    const std::int64_t x = kk <= a_batch.size() ? a_batch[a_batch.size() - kk] : 1;
    const std::int64_t y = kk <= b_batch.size() ? b_batch[b_batch.size() - kk] : 1;
    if (x != y && x != 1 && y != 1) {
      fail("matmul: batch dimensions of shapes " + a.shape().to_string() + " and " +
           b.shape().to_string() + " cannot be broadcast");
    }
    batch.push_back(x == 1 ? y : x);
  }
  Shape out_shape = batch;
  if (da > 1) out_shape.push_back(n);
  if (db > 1) out_shape.push_back(m);
  Tensor out = Tensor::empty(out_shape, a.dtype());
  if (a.dtype() == DType::Float32 && out.numel() > 0 && ka > 0 && dnnl_backend::worth_it(out.numel() * ka)) {
    // Equal-rank views [batch..., n, k] @ [batch..., k, m]; size-1 batch dims broadcast.
    dnnl_backend::Dims ad(batch.size() + 2, 1), bd(batch.size() + 2, 1), cd(batch.size() + 2, 1);
    const std::size_t nb = batch.size();
    for (std::size_t i = 0; i < nb; ++i) {
      const std::size_t k = nb - i;
      if (k <= a_batch.size()) ad[i] = a_batch[a_batch.size() - k];
      if (k <= b_batch.size()) bd[i] = b_batch[b_batch.size() - k];
      cd[i] = batch[i];
    }
    ad[nb] = n, ad[nb + 1] = ka, bd[nb] = ka, bd[nb + 1] = m, cd[nb] = n, cd[nb + 1] = m;
    dnnl_backend::matmul(a.data<float>(), ad, b.data<float>(), bd, out.data<float>(), cd);
    return out;
  }
  switch (a.dtype()) {
    case DType::Float32: batched_gemm<float>(a, b, out, batch, a_batch, b_batch, n, ka, m); break;
    case DType::Float64: batched_gemm<double>(a, b, out, batch, a_batch, b_batch, n, ka, m); break;
    case DType::Int64: batched_gemm<std::int64_t>(a, b, out, batch, a_batch, b_batch, n, ka, m); break;
    default: break;
  }
  return out;
}

Tensor mm(const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined()) fail("mm: undefined tensor");
  if (a.dim() != 2 || b.dim() != 2) {
    fail("mm: expected 2-D tensors, got shapes " + a.shape().to_string() + " and " + b.shape().to_string());
  }
  if (a.shape()[1] != b.shape()[0]) {
    fail("mm: mat1 and mat2 shapes cannot be multiplied (" + std::to_string(a.shape()[0]) + "x" +
         std::to_string(a.shape()[1]) + " and " + std::to_string(b.shape()[0]) + "x" +
         std::to_string(b.shape()[1]) + ")");
  }
  return matmul(a, b);
}

namespace {

template <class T>
void linear_typed(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& out, std::int64_t rows,
                  std::int64_t in, std::int64_t outf) {
  Eigen::Map<RowMat<T>> Y(out.data<T>(), rows, outf);
  if (in == 0 || rows == 0) {
    Y.setZero();
  } else {
    Eigen::Map<const RowMat<T>> X(x.data<T>(), rows, in);
    Eigen::Map<const RowMat<T>> W(w.data<T>(), outf, in);
    Y.noalias() = X * W.transpose();
  }
  if (b) {
    Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>> B(b->data<T>(), outf);
    Y.rowwise() += B;
  }
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& w, const Tensor* b) {
  if (!x.defined() || !w.defined()) fail("linear: undefined tensor");
  if (w.dim() != 2) fail("linear: expected a 2-D weight [out_features, in_features], got shape " + w.shape().to_string());
  if (x.dim() == 0) fail("linear: expected an input with at least 1 dimension, got a 0-D tensor");
  const std::int64_t in = w.shape()[1], outf = w.shape()[0];
  if (x.shape()[x.dim() - 1] != in) {
    fail("linear: input shape " + x.shape().to_string() + " and weight shape " + w.shape().to_string() +
         " cannot be multiplied (" + std::to_string(x.shape()[x.dim() - 1]) + " != " + std::to_string(in) + ")");
  }
  check_matmul_dtypes(x, w, "linear");
  if (b) {
    if (b->dtype() != x.dtype()) {
      fail("linear: bias dtype " + std::string(dtype_name(b->dtype())) + " differs from input dtype " +
           std::string(dtype_name(x.dtype())));
    }
    if (b->dim() != 1 || b->shape()[0] != outf) {
      fail("linear: expected a bias of shape [" + std::to_string(outf) + "], got " + b->shape().to_string());
    }
  }
  Shape out_shape;
  for (std::size_t i = 0; i + 1 < x.dim(); ++i) out_shape.push_back(x.shape()[i]);
  out_shape.push_back(outf);
  const std::int64_t rows = x.numel() / (in == 0 ? 1 : in);
  const std::int64_t rows_fixed = in == 0 ? out_shape.numel() / (outf == 0 ? 1 : outf) : rows;
  Tensor out = Tensor::empty(out_shape, x.dtype());
  if (x.dtype() == DType::Float32 && in > 0 && out.numel() > 0 && dnnl_backend::worth_it(out.numel() * in)) {
    dnnl_backend::linear(x.data<float>(), rows_fixed, w, b, out.data<float>());
    return out;
  }
  switch (x.dtype()) {
    case DType::Float32: linear_typed<float>(x, w, b, out, rows_fixed, in, outf); break;
    case DType::Float64: linear_typed<double>(x, w, b, out, rows_fixed, in, outf); break;
    case DType::Int64: linear_typed<std::int64_t>(x, w, b, out, rows_fixed, in, outf); break;
    default: break;
  }
  return out;
}

Tensor addmm(const Tensor& bias, const Tensor& m1, const Tensor& m2, double beta, double alpha) {
  Tensor prod = mm(m1, m2);
  if (!bias.defined()) fail("addmm: undefined bias");
  Value p{prod};
  if (alpha != 1.0) p = binary(BinaryOp::Mul, p, Value(alpha));
  Value bv{bias};
  if (beta == 0.0) {
    // beta = 0 ignores the bias values (nan/inf included), only its broadcast shape matters.
    bv = binary(BinaryOp::Mul, bv, Value(0.0));
  } else if (beta != 1.0) {
    bv = binary(BinaryOp::Mul, bv, Value(beta));
  }
  Value r = binary(BinaryOp::Add, bv, p);
  Tensor out = r.tensor();
  if (!(out.shape() == prod.shape())) {
    fail("addmm: bias of shape " + bias.shape().to_string() + " does not broadcast to " +
         prod.shape().to_string());
  }
  return out;
}

Tensor bmm(const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined()) fail("bmm: undefined tensor");
  if (a.dim() != 3) fail("bmm: batch1 must be a 3D tensor, got shape " + a.shape().to_string());
  if (b.dim() != 3) fail("bmm: batch2 must be a 3D tensor, got shape " + b.shape().to_string());
  if (a.shape()[0] != b.shape()[0] || a.shape()[2] != b.shape()[1]) {
    fail("bmm: Expected size for first two dimensions of batch2 tensor to be: [" + std::to_string(a.shape()[0]) + ", " +
         std::to_string(a.shape()[2]) + "] but got: [" + std::to_string(b.shape()[0]) + ", " +
         std::to_string(b.shape()[1]) + "]");
  }
  return matmul(a, b);
}

// ---- einsum ------------------------------------------------------------------------------------
//
// As PyTorch computes it (aten/src/ATen/native/Linear.cpp): each operand's repeated labels
// become a diagonal, labels no later operand or the output needs are summed out, and the
// operands are contracted left to right, each pair as one batched matrix product (bmm, on
// oneDNN or Eigen) over permuted and reshaped copies. Size-1 dimensions broadcast.

namespace {

// Labels: 'A'-'Z' are 0-25, 'a'-'z' 26-51 (PyTorch's order for the implicit output), the
// dimensions an ellipsis covers 52 and up.
constexpr int kLetters = 52;

int label_of(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return 26 + (c - 'a');
  return -1;
}

// One term of the equation: its letters, and where the ellipsis stands (-1: none).
struct Term {
  std::vector<int> labels;
  int ellipsis = -1;
};

Term parse_term(std::string_view text, std::string_view equation) {
  Term t;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '.') {
      if (t.ellipsis >= 0 || text.substr(i, 3) != "...") {
        fail("einsum(): found '.' that is not part of any ellipsis ('...') in equation '" + std::string(equation) + "'");
      }
      t.ellipsis = static_cast<int>(t.labels.size());
      i += 2;
      continue;
    }
    const int l = label_of(text[i]);
    if (l < 0) {
      fail("einsum(): invalid subscript given at index " + std::to_string(i) + " in the equation string '" +
           std::string(equation) + "', subscripts must be in [a-zA-Z]");
    }
    t.labels.push_back(l);
  }
  return t;
}

// An operand and the label of each of its dimensions.
struct Labelled {
  Tensor t;
  std::vector<int> labels;
};

// The diagonal over repeated labels: each label once, in first-seen order (a copy).
Labelled take_diagonals(const Tensor& x, const std::vector<int>& labels) {
  std::vector<int> unique;
  std::vector<std::int64_t> sizes;
  const auto nd = labels.size();
  std::vector<std::int64_t> in_strides(nd, 1);
  for (std::size_t d = nd; d-- > 1;) in_strides[d - 1] = in_strides[d] * x.shape()[d];
  std::vector<std::int64_t> out_stride_in;  // per unique label: sum of its dims' input strides
  for (std::size_t d = 0; d < nd; ++d) {
    auto it = std::find(unique.begin(), unique.end(), labels[d]);
    if (it == unique.end()) {
      unique.push_back(labels[d]);
      sizes.push_back(x.shape()[d]);
      out_stride_in.push_back(in_strides[d]);
      continue;
    }
    const auto u = static_cast<std::size_t>(it - unique.begin());
    if (sizes[u] != x.shape()[d]) {
      fail("einsum(): subscript " + std::string(1, labels[d] < 26 ? static_cast<char>('A' + labels[d])
                                                                  : static_cast<char>('a' + labels[d] - 26)) +
           " is repeated for operand but the sizes don't match, " + std::to_string(sizes[u]) +
           " != " + std::to_string(x.shape()[d]));
    }
    out_stride_in[u] += in_strides[d];
  }
  if (unique.size() == nd) return {x, labels};
  Tensor out = Tensor::empty(Shape(std::span<const std::int64_t>(sizes)), x.dtype());
  const std::size_t es = element_size(x.dtype());
  const std::byte* src = x.storage()->data() + x.byte_offset();
  std::byte* dst = out.storage()->data() + out.byte_offset();
  std::vector<std::int64_t> idx(unique.size(), 0);
  for (std::int64_t i = 0; i < out.numel(); ++i) {
    std::int64_t off = 0;
    for (std::size_t u = 0; u < unique.size(); ++u) off += idx[u] * out_stride_in[u];
    std::memcpy(dst + static_cast<std::size_t>(i) * es, src + static_cast<std::size_t>(off) * es, es);
    for (std::size_t u = unique.size(); u-- > 0;) {
      if (++idx[u] < sizes[u]) break;
      idx[u] = 0;
    }
  }
  return {out, unique};
}

std::int64_t size_of(const Labelled& x, int label) {
  const auto it = std::find(x.labels.begin(), x.labels.end(), label);
  return it == x.labels.end() ? 1 : x.t.shape()[static_cast<std::size_t>(it - x.labels.begin())];
}

bool has(const std::vector<int>& labels, int label) {
  return std::find(labels.begin(), labels.end(), label) != labels.end();
}

// Sums out the dimensions whose labels are not in `keep`.
Labelled sum_out(Labelled x, const std::vector<int>& keep) {
  std::vector<std::int64_t> dims;
  std::vector<int> rest;
  for (std::size_t d = 0; d < x.labels.size(); ++d) {
    if (has(keep, x.labels[d])) rest.push_back(x.labels[d]);
    else dims.push_back(static_cast<std::int64_t>(d));
  }
  if (dims.empty()) return x;
  return {sum(x.t, dims, false), rest};
}

// `x` with its dimensions in the order of `order` (each of its labels once), broadcast to
// `sizes` (by label) and reshaped to the products of the groups' sizes.
Tensor arrange(const Labelled& x, const std::vector<std::vector<int>>& groups,
               const std::array<std::int64_t, 128>& sizes) {
  std::vector<std::int64_t> perm, full, grouped;
  for (const auto& g : groups) {
    std::int64_t n = 1;
    for (int l : g) {
      perm.push_back(static_cast<std::int64_t>(std::find(x.labels.begin(), x.labels.end(), l) - x.labels.begin()));
      full.push_back(sizes[static_cast<std::size_t>(l)]);
      n *= sizes[static_cast<std::size_t>(l)];
    }
    grouped.push_back(n);
  }
  Tensor t = permute(x.t, perm);
  if (!std::equal(full.begin(), full.end(), t.shape().begin(), t.shape().end())) t = expand(t, full, "einsum");
  return reshape(t, grouped, "einsum");
}

// Contracts a and b over their shared labels not in `keep`: labels in both and kept are
// batch dimensions, the others of each side stay. Result labels: batch, a's, b's.
Labelled contract(const Labelled& a, const Labelled& b, const std::vector<int>& keep) {
  std::array<std::int64_t, 128> sizes{};
  std::vector<int> batch, a_only, b_only, summed;
  for (int l : a.labels) {
    sizes[static_cast<std::size_t>(l)] = std::max(size_of(a, l), size_of(b, l));
    if (!has(b.labels, l)) a_only.push_back(l);
    else if (has(keep, l)) batch.push_back(l);
    else summed.push_back(l);
  }
  for (int l : b.labels) {
    if (has(a.labels, l)) continue;
    sizes[static_cast<std::size_t>(l)] = size_of(b, l);
    b_only.push_back(l);
  }
  const Tensor product = bmm(arrange(a, {batch, a_only, summed}, sizes), arrange(b, {batch, summed, b_only}, sizes));
  Labelled out;
  std::vector<std::int64_t> shape;
  for (const auto* g : {&batch, &a_only, &b_only}) {
    for (int l : *g) {
      out.labels.push_back(l);
      shape.push_back(sizes[static_cast<std::size_t>(l)]);
    }
  }
  out.t = reshape(product, shape, "einsum");
  return out;
}

// The input terms of the equation, left of "->", spaces removed.
std::vector<std::string> input_terms(std::string_view equation, std::size_t arrow) {
  std::vector<std::string> inputs;
  std::string compact;
  for (char c : equation.substr(0, arrow)) if (c != ' ') compact += c;
  for (std::size_t start = 0;;) {
    const auto comma = compact.find(',', start);
    inputs.push_back(compact.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return inputs;
}

// The operands with the label of each dimension, their ellipsis dimensions labelled
// kLetters + (position from the right among all ellipsis dimensions), so that they broadcast
// right-aligned; how many dimensions the widest ellipsis covers; how often each letter occurs.
struct LabelledOperands {
  std::vector<Labelled> ops;
  std::size_t ellipsis_dims = 0;
  std::array<int, kLetters> count{};
};

LabelledOperands label_operands(std::string_view equation, const std::vector<std::string>& inputs,
                                std::span<const Tensor> operands) {
  LabelledOperands r;
  for (std::size_t i = 0; i < operands.size(); ++i) {
    const Tensor& x = operands[i];
    if (x.dtype() != operands[0].dtype()) {
      fail("einsum(): expected all operands to have the same dtype, got " + std::string(dtype_name(operands[0].dtype())) +
           " and " + std::string(dtype_name(x.dtype())));
    }
    const Term t = parse_term(inputs[i], equation);
    const std::size_t covered = x.dim() >= t.labels.size() ? x.dim() - t.labels.size() : 0;
    if (t.ellipsis < 0 ? x.dim() != t.labels.size() : x.dim() < t.labels.size()) {
      fail("einsum(): the number of subscripts in the equation (" + std::to_string(t.labels.size()) +
           ") does not match the number of dimensions (" + std::to_string(x.dim()) + ") for operand " +
           std::to_string(i) + (t.ellipsis < 0 ? " and no ellipsis was given" : ""));
    }
    Labelled l{x, {}};
    for (std::size_t j = 0; j < t.labels.size(); ++j) {
      if (static_cast<int>(j) == t.ellipsis)
        for (std::size_t e = covered; e-- > 0;) l.labels.push_back(kLetters + static_cast<int>(e));
      l.labels.push_back(t.labels[j]);
      ++r.count[static_cast<std::size_t>(t.labels[j])];
    }
    if (t.ellipsis == static_cast<int>(t.labels.size()))
      for (std::size_t e = covered; e-- > 0;) l.labels.push_back(kLetters + static_cast<int>(e));
    if (t.ellipsis >= 0) r.ellipsis_dims = std::max(r.ellipsis_dims, covered);
    r.ops.push_back(std::move(l));
  }
  return r;
}

// The output labels: as written, or the ellipsis dimensions then each label used once, in order.
std::vector<int> output_labels(std::string_view equation, std::size_t arrow, const LabelledOperands& in) {
  std::vector<int> output;
  const auto add_ellipsis = [&] {
    for (std::size_t e = in.ellipsis_dims; e-- > 0;) output.push_back(kLetters + static_cast<int>(e));
  };
  if (arrow == std::string_view::npos) {
    add_ellipsis();
    for (int l = 0; l < kLetters; ++l)
      if (in.count[static_cast<std::size_t>(l)] == 1) output.push_back(l);
    return output;
  }
  std::string out_text;
  for (char c : equation.substr(arrow + 2)) if (c != ' ') out_text += c;
  const Term t = parse_term(out_text, equation);
  for (std::size_t j = 0; j <= t.labels.size(); ++j) {
    if (static_cast<int>(j) == t.ellipsis) add_ellipsis();
    if (j == t.labels.size()) break;
    const int l = t.labels[j];
    if (has(output, l)) fail("einsum(): output subscript " + std::string(1, out_text[j]) + " appears more than once in the output");
    if (in.count[static_cast<std::size_t>(l)] == 0) {
      fail("einsum(): output subscript " + std::string(1, out_text[j]) + " does not appear in the equation for any input operand");
    }
    output.push_back(l);
  }
  return output;
}

// Takes each operand's diagonals; returns each label's size, which agrees across operands or
// is 1 (broadcast).
std::array<std::int64_t, 128> diagonals_and_sizes(std::vector<Labelled>& ops) {
  std::array<std::int64_t, 128> sizes;
  sizes.fill(-1);
  for (auto& op : ops) {
    op = take_diagonals(op.t, op.labels);
    for (std::size_t d = 0; d < op.labels.size(); ++d) {
      std::int64_t& s = sizes[static_cast<std::size_t>(op.labels[d])];
      const std::int64_t n = op.t.shape()[d];
      if (s == -1 || s == 1) s = n;
      else if (n != 1 && n != s) {
        fail("einsum(): operands do not broadcast with remapped shapes (original->remapped): dimension of size " +
             std::to_string(n) + " against " + std::to_string(s));
      }
    }
  }
  return sizes;
}

// Contracts the operands left to right, keeping what the output or a later operand needs.
Labelled contract_all(const std::vector<Labelled>& ops, const std::vector<int>& output) {
  const auto needed_after = [&](std::size_t i) {
    std::vector<int> keep = output;
    for (std::size_t j = i + 1; j < ops.size(); ++j) keep.insert(keep.end(), ops[j].labels.begin(), ops[j].labels.end());
    return keep;
  };
  Labelled acc = sum_out(ops[0], needed_after(0));
  for (std::size_t i = 1; i < ops.size(); ++i) {
    std::vector<int> keep = needed_after(i);
    // What only this operand has and nothing needs later is summed before the product.
    std::vector<int> own = keep;
    own.insert(own.end(), acc.labels.begin(), acc.labels.end());
    acc = contract(acc, sum_out(ops[i], own), keep);
  }
  return sum_out(std::move(acc), output);
}

}  // namespace

Tensor einsum(std::string_view equation, std::span<const Tensor> operands) {
  const auto arrow = equation.find("->");
  const std::vector<std::string> inputs = input_terms(equation, arrow);
  if (operands.empty()) fail("einsum(): must provide at least one operand");
  if (inputs.size() != operands.size()) {
    fail(std::string("einsum(): ") + (inputs.size() > operands.size() ? "fewer" : "more") +
         " operands were provided than specified in the equation");
  }
  LabelledOperands in = label_operands(equation, inputs, operands);
  const std::vector<int> output = output_labels(equation, arrow, in);
  const std::array<std::int64_t, 128> sizes = diagonals_and_sizes(in.ops);
  const Labelled acc = contract_all(in.ops, output);
  std::vector<std::int64_t> perm;
  std::vector<std::int64_t> shape;
  for (int l : output) {
    perm.push_back(static_cast<std::int64_t>(std::find(acc.labels.begin(), acc.labels.end(), l) - acc.labels.begin()));
    shape.push_back(sizes[static_cast<std::size_t>(l)]);
  }
  Tensor out = permute(acc.t, perm);
  if (!std::equal(shape.begin(), shape.end(), out.shape().begin(), out.shape().end())) out = expand(out, shape, "einsum");
  return out;
}

namespace {

// ---- Kernels (named by linalg.yaml) -------------------------------------------------------------

// bilinear(input1, input2, weight, bias): y[..., o] = sum_ij x1[..., i] W[o, i, j] x2[..., j] + b[o].
Value bilinear_kernel(std::span<const Value> a) {
  const Tensor& x1 = a[0].tensor();
  const Tensor& x2 = a[1].tensor();
  const Tensor& w = a[2].tensor();
  if (w.dim() != 3) fail("bilinear: weight must be 3-D (out, in1, in2), got shape " + w.shape().to_string());
  if (x1.dim() < 1 || x1.dim() != x2.dim() ||
      !std::equal(x1.shape().begin(), x1.shape().end() - 1, x2.shape().begin(), x2.shape().end() - 1)) {
    fail("bilinear: input1 " + x1.shape().to_string() + " and input2 " + x2.shape().to_string() +
         " must have the same size except in their last dimension");
  }
  if (x1.size(-1) != w.shape()[1] || x2.size(-1) != w.shape()[2]) {
    fail("bilinear: input1 " + x1.shape().to_string() + " and input2 " + x2.shape().to_string() +
         " do not fit weight " + w.shape().to_string());
  }
  const Tensor operands[] = {x1, w, x2};
  Tensor y = einsum("...i,oij,...j->...o", operands);
  if (!a[3].is_none()) y = binary(BinaryOp::Add, y, a[3].tensor());
  return Value(std::move(y));
}

// einsum(equation, tensors); torch.functional.einsum(equation, *operands) binds the same way.
Value einsum_kernel(std::span<const Value> a) {
  std::vector<Tensor> operands;
  for (const Value& v : a[1].items()) operands.push_back(v.tensor());
  return Value(einsum(a[0].str(), operands));
}

// matmul(self, other)
Value matmul_kernel(std::span<const Value> a) { return Value(matmul(a[0].tensor(), a[1].tensor())); }
// mm(self, mat2)
Value mm_kernel(std::span<const Value> a) { return Value(mm(a[0].tensor(), a[1].tensor())); }
// bmm(self, mat2)
Value bmm_kernel(std::span<const Value> a) { return Value(bmm(a[0].tensor(), a[1].tensor())); }
// addmm(self, mat1, mat2, *, beta, alpha)
Value addmm_kernel(std::span<const Value> a) {
  return Value(addmm(a[0].tensor(), a[1].tensor(), a[2].tensor(), a[3].to_double(), a[4].to_double()));
}
// linear(input, weight, bias)
Value linear_kernel(std::span<const Value> a) {
  return Value(linear(a[0].tensor(), a[1].tensor(), a[2].is_none() ? nullptr : &a[2].tensor()));
}

// ---- make_fx decompositions ---------------------------------------------------------------------

// matmul of two matrices is mm (PyTorch's CompositeImplicit matmul).
Value matmul_decomposition(OpRecorder& rec, const OpCall& call) {
  const bool mm = call.args[0].real.tensor().dim() == 2 && call.args[1].real.tensor().dim() == 2;
  return rec.record(mm ? "mm.default" : "matmul.default", {call.args[0].sym, call.args[1].sym});
}

// at::linear: a 2-D input with a bias is addmm(b, x, w.t()); otherwise a product (+ add).
Value linear_decomposition(OpRecorder& rec, const OpCall& call) {
  const TracedValue& x = call.args[0];
  const TracedValue& w = call.args[1];
  const TracedValue& b = call.args[2];
  const bool bias = !b.real.is_none();
  Value t = rec.record("t.default", {w.sym});
  if (x.real.tensor().dim() == 2) {
    if (bias) return rec.record("addmm.default", {b.sym, x.sym, t});
    return rec.record("mm.default", {x.sym, t});
  }
  Value mm = rec.record("matmul.default", {x.sym, t});
  if (!bias) return mm;
  return rec.record("add.Tensor", {mm, b.sym});
}

}  // namespace

#include "linalg_table.inc"

}  // namespace fxpack::ops
