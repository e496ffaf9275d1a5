// Matrix products (linalg.yaml): matmul (1-D/2-D/batched with broadcasting), mm, bmm, linear, addmm.
// float32 products of more than a few thousand multiply-adds run on oneDNN's matmul (chosen
// for the CPU at run time); smaller ones, float64 and int64 on Eigen.
#include <Eigen/Core>
#include <algorithm>

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
  Tensor out = std::get<Tensor>(std::move(r.variant()));
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

namespace {

// ---- Kernels (named by linalg.yaml) -------------------------------------------------------------

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
