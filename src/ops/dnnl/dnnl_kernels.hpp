// The compute bodies of fxpack's float32 kernels on oneDNN (plain layouts; the primitive is
// found again in oneDNN's primitive cache on the next call with the same shapes). The
// callers in src/ops have checked every argument; these only compute into `out`.
#pragma once

#include "../kernels.hpp"
#include "primitives.hpp"

namespace fxpack::ops::dnnl_backend {

// x [N, C, H, W], w [O, C/groups, kh, kw], out [N, O, OH, OW].
void conv2d(const Tensor& x, const Tensor& w, const Tensor* b, const Conv2dOptions& o, Tensor& out);

// x [N, C, H, W], w [C, O/groups, kh, kw] (PyTorch's layout: oneDNN's iohw), out [N, O, OH, OW];
// output_padding at most padding (it becomes a smaller right padding).
void conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor* b, const ConvTranspose2dOptions& o, Tensor& out);

// c = a @ b over equal-rank dims (batch dims of size 1 broadcast), all row-major.
void matmul(const float* a, const Dims& a_dims, const float* b, const Dims& b_dims, float* c, const Dims& c_dims);

// A float32 operand read in place: dims and strides in elements (any plain layout, e.g. one
// head's columns of a packed projection).
struct StridedView {
  const float* data = nullptr;
  Dims dims, strides;
};

// c[b..., m, n] = scale * a[b..., m, k] @ b[b..., k, n] over equal-rank strided operands,
// written through c's strides (attention's heads without permuting copies).
void strided_matmul(const StridedView& a, const StridedView& b, float* c, const Dims& c_dims, const Dims& c_strides,
                    float scale);

// Softmax over the last dim of dense [rows, n], in place.
void softmax(float* x, std::int64_t rows, std::int64_t n);

// out [rows, out_features] = x [rows, in] @ w[out, in]^T + b.
void linear(const float* x, std::int64_t rows, const Tensor& w, const Tensor* b, float* out);

// False when oneDNN cannot reproduce PyTorch's windows (see pool_geometry).
bool pool2d(const Tensor& x, const Pool2dOptions& o, bool average, bool count_include_pad, Tensor& out);

// Inference batch norm over dim 1 with the given float32 statistics [C] (weight, bias may be null).
void batch_norm(const Tensor& x, const Tensor& mean, const Tensor& var, const Tensor* weight, const Tensor* bias,
                float eps, Tensor& out);

// Layer norm of x viewed as [rows, inner] (weight, bias [inner] or null).
void layer_norm(const Tensor& x, std::int64_t inner, const Tensor* weight, const Tensor* bias, float eps,
                Tensor& out);

void eltwise(const Tensor& x, const Eltwise& e, Tensor& out);

// out = a (op) b with b's dims broadcast to a's (equal rank, size-1 dims broadcast).
void binary(algorithm alg, const float* a, const Dims& a_dims, const float* b, const Dims& b_dims, float* out);

}  // namespace fxpack::ops::dnnl_backend
