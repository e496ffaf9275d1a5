// The computations behind the built-in ops, callable directly from C++ by other kernels and
// leaf modules. Every function checks its inputs and throws OpError with a message that
// names the op; none of them writes into an input. (The ops themselves, their names and
// schemas, are the op table's: src/ops/<family>.yaml.)
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fxpack/tensor.hpp"
#include "fxpack/value.hpp"

namespace fxpack::ops {

// ---- elementwise.cpp ------------------------------------------------------------------

// Elementwise ops as C++ calls, for other kernels and for tests: the driver of
// elementwise.hpp with the op's functor (the ops themselves are elementwise.yaml's).
enum class UnaryOp : std::uint8_t { Sin, Cos, Exp, Tanh, Sigmoid, Relu, Neg, Abs };
enum class BinaryOp : std::uint8_t { Add, Sub, Mul, Div, Maximum, Minimum };

// "sin", "add", ... (the op names used in messages).
const char* op_name(UnaryOp op);
const char* op_name(BinaryOp op);

// sin/cos/exp/tanh/sigmoid promote integer and bool inputs to float32 (as PyTorch);
// relu/neg/abs keep the dtype and refuse bool.
Tensor unary(UnaryOp op, const Tensor& x);

// PyTorch's result_type for a binary op on Tensors and Python numbers (int, float, bool):
// dimensioned tensors > zero-dim tensors > numbers, a higher category (bool < int < float)
// always wins. Throws if neither operand is a Tensor or number.
DType result_type(const Value& a, const Value& b);

// Binary op with broadcasting and type promotion. Operands are Tensors or Python numbers
// (int/float/bool); two numbers give a number (Python arithmetic), two lists or two tuples
// concatenate under Add. Div is true division (integers give float32).
Value binary(BinaryOp op, const Value& a, const Value& b);
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
// torch.add(a, b, alpha=...) / torch.sub.
Value add(const Value& a, const Value& b, const Value& alpha = Value(std::int64_t{1}));
Value sub(const Value& a, const Value& b, const Value& alpha = Value(std::int64_t{1}));
// rounding_mode: None, "trunc" or "floor".
Value div(const Value& a, const Value& b, const Value& rounding_mode = Value());
// min/max: None, a number or a Tensor (broadcast); at least one must be given.
Tensor clamp(const Tensor& x, const Value& min, const Value& max);

// ---- reduce.cpp -----------------------------------------------------------------------

// dims empty (or `all`) reduces everything; negative dims count from the end; duplicates
// are an error. sum of bool/int gives int64; dtype overrides the result (and accumulation) type.
Tensor sum(const Tensor& x, std::span<const std::int64_t> dims, bool keepdim,
           std::optional<DType> dtype = std::nullopt);
// mean needs a floating input (or a floating `dtype`), as in PyTorch.
Tensor mean(const Tensor& x, std::span<const std::int64_t> dims, bool keepdim,
            std::optional<DType> dtype = std::nullopt);
// torch.max(x, dim, keepdim): the maxima along dim and their (first) indices; NaN is the
// maximum where there is one.
std::pair<Tensor, Tensor> max_along(const Tensor& x, std::int64_t dim, bool keepdim);
// torch.min(x, dim, keepdim): the minima and their (first) indices; NaN is the minimum.
std::pair<Tensor, Tensor> min_along(const Tensor& x, std::int64_t dim, bool keepdim);
// torch.softmax / log_softmax along dim of a floating tensor (x converted to dtype first).
Tensor softmax(const Tensor& x, std::int64_t dim, std::optional<DType> dtype = std::nullopt);
Tensor log_softmax(const Tensor& x, std::int64_t dim, std::optional<DType> dtype = std::nullopt);

// ---- shape.cpp ------------------------------------------------------------------------

// reshape/view's result shape for a tensor of `numel` elements: `shape` with its one -1
// inferred. Throws OpError naming `op` when the shape does not fit the elements, or its
// product does not fit in int64 (an archive's sizes are untrusted). Inference plans size
// their views with it too.
Shape reshape_shape(std::int64_t numel, std::span<const std::int64_t> shape, const char* op = "reshape");
// One -1 is inferred. Returns an alias of x's storage.
Tensor reshape(const Tensor& x, std::span<const std::int64_t> shape, const char* op = "reshape");
Tensor flatten(const Tensor& x, std::int64_t start_dim = 0, std::int64_t end_dim = -1);
// Copies (fxpack tensors are always contiguous).
Tensor permute(const Tensor& x, std::span<const std::int64_t> dims);
Tensor transpose(const Tensor& x, std::int64_t dim0, std::int64_t dim1);
// 2-D transpose; 0-D and 1-D are returned as is.
Tensor t(const Tensor& x);
// x[index]: index is an int, a slice, None, Ellipsis, one integer or bool Tensor (or list of
// ints), or a tuple of those; the tensor index is applied as PyTorch applies a single one.
Tensor index(const Tensor& x, const Value& index);
// operator.getitem: a Tensor indexed as above, or a List/Tuple indexed by an int or slice.
Value getitem(const Value& obj, const Value& index);
// torch.cat along dim with PyTorch's type promotion (legacy empty [0] tensors are skipped);
// `op` names the op in messages (cat, concat, stack).
Tensor cat(std::span<const Tensor> tensors, std::int64_t dim, const char* op = "cat");
Tensor stack(std::span<const Tensor> tensors, std::int64_t dim);
// x.narrow(dim, start, length): an alias when the slice is one contiguous block.
Tensor narrow(const Tensor& x, std::int64_t dim, std::int64_t start, std::int64_t length, const char* op = "narrow");
Tensor select(const Tensor& x, std::int64_t dim, std::int64_t index);
std::vector<Tensor> split(const Tensor& x, std::int64_t split_size, std::int64_t dim);
std::vector<Tensor> split_with_sizes(const Tensor& x, std::span<const std::int64_t> sizes, std::int64_t dim);
// Broadcast to `size` (-1 keeps a dim), copied.
Tensor expand(const Tensor& x, std::span<const std::int64_t> size, const char* op = "expand");
Tensor repeat(const Tensor& x, std::span<const std::int64_t> repeats);
Tensor flip(const Tensor& x, std::span<const std::int64_t> dims);
// dims empty: the flattened tensor rolls by shifts[0].
Tensor roll(const Tensor& x, std::span<const std::int64_t> shifts, std::span<const std::int64_t> dims);
Tensor index_select(const Tensor& x, std::int64_t dim, const Tensor& index);
Tensor gather(const Tensor& x, std::int64_t dim, const Tensor& index);
Tensor tril(const Tensor& x, std::int64_t diagonal = 0);
Tensor triu(const Tensor& x, std::int64_t diagonal = 0);
// [count, x.dim()] int64 positions of the nonzero elements, in row-major order.
Tensor nonzero(const Tensor& x);
Tensor masked_select(const Tensor& x, const Tensor& mask);
// all: every size-1 dim; else the listed dims that have size 1.
Tensor squeeze(const Tensor& x, std::span<const std::int64_t> dims, bool all);
Tensor movedim(const Tensor& x, std::span<const std::int64_t> source, std::span<const std::int64_t> destination);
// F.pad: pad[0], pad[1] pad the last dim, pad[2], pad[3] the one before, ...; mode
// "constant" (negative pads crop; value fills), "reflect", "replicate" or "circular".
Tensor pad(const Tensor& x, std::span<const std::int64_t> pad, const std::string& mode = "constant", double value = 0.0);

// ---- linalg.cpp -----------------------------------------------------------------------

// torch.matmul: 1-D/2-D/batched with broadcast batch dims.
Tensor matmul(const Tensor& a, const Tensor& b);
// 2-D x 2-D.
Tensor mm(const Tensor& a, const Tensor& b);
// [b, n, k] x [b, k, m] (equal batch sizes, no broadcasting).
Tensor bmm(const Tensor& a, const Tensor& b);
// torch.einsum: letters [a-zA-Z], one ellipsis per term, implicit or explicit output.
Tensor einsum(std::string_view equation, std::span<const Tensor> operands);
// x [..., in] @ w[out, in]^T + b[out].
Tensor linear(const Tensor& x, const Tensor& w, const Tensor* b);
// beta * bias + alpha * (m1 @ m2), bias broadcast to [n, p].
Tensor addmm(const Tensor& bias, const Tensor& m1, const Tensor& m2, double beta = 1.0,
             double alpha = 1.0);

// ---- nn.cpp ---------------------------------------------------------------------------

struct Conv2dOptions {
  std::array<std::int64_t, 2> stride{1, 1};
  // Padding before and after, per spatial dim ({top, bottom}, {left, right}).
  std::array<std::int64_t, 2> padding_begin{0, 0};
  std::array<std::int64_t, 2> padding_end{0, 0};
  std::array<std::int64_t, 2> dilation{1, 1};
  std::int64_t groups = 1;
};
// Builds options from PyTorch-style values: padding an int, a pair, "valid" or "same".
Conv2dOptions conv2d_options(const Value& stride, const Value& padding, const Value& dilation,
                             std::int64_t groups, std::int64_t kernel_h, std::int64_t kernel_w);
// x [N, C, H, W] (or unbatched [C, H, W]), w [O, C/groups, kh, kw], b [O] or null.
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor* b, const Conv2dOptions& options);

// Eval-mode batch norm over dim 1 of an [N, C, ...] input using the running statistics;
// when they are null (track_running_stats=False) or `use_batch_stats`, batch statistics.
Tensor batch_norm(const Tensor& x, const Tensor* weight, const Tensor* bias,
                  const Tensor* running_mean, const Tensor* running_var, bool use_batch_stats,
                  double eps);

struct Pool2dOptions {
  std::array<std::int64_t, 2> kernel{1, 1};
  std::array<std::int64_t, 2> stride{1, 1};
  std::array<std::int64_t, 2> padding{0, 0};
  std::array<std::int64_t, 2> dilation{1, 1};
  bool ceil_mode = false;
};
// From PyTorch-style values (ints or pairs; stride None or empty means kernel_size).
Pool2dOptions pool2d_options(const Value& kernel_size, const Value& stride, const Value& padding,
                             const Value& dilation, bool ceil_mode, const char* op);
// PyTorch's pooling output size along one dim (ceil_mode keeps a last window that starts
// inside the input or its left padding).
std::int64_t pool_output_size(std::int64_t in, std::int64_t kernel, std::int64_t pad, std::int64_t stride,
                              std::int64_t dilation, bool ceil_mode);
Tensor max_pool2d(const Tensor& x, const Pool2dOptions& options);
// Also the flat (h * W + w) int64 index of each maximum, as aten's max_pool2d_with_indices.
std::pair<Tensor, Tensor> max_pool2d_with_indices(const Tensor& x, const Pool2dOptions& options);
// output_size entries may be nullopt (keep the input size), as PyTorch's None.
Tensor adaptive_avg_pool2d(const Tensor& x, std::array<std::optional<std::int64_t>, 2> output_size);
// F.avg_pool2d (dilation must be 1): count_include_pad counts the zero padding in each
// window's divisor; divisor_override replaces the divisor.
Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& options, bool count_include_pad,
                  std::optional<std::int64_t> divisor_override = std::nullopt);

// F.layer_norm: normalises over the trailing dims `normalized_shape` (biased variance);
// weight and bias, when given, have that shape.
Tensor layer_norm(const Tensor& x, std::span<const std::int64_t> normalized_shape, const Tensor* weight,
                  const Tensor* bias, double eps);

// ---- transformer.cpp ------------------------------------------------------------------

// torchvision.ops.stochastic_depth(input, p, mode, training): checks p and mode as torchvision
// does (OpError otherwise), then true: it is the identity unless training with p > 0, which
// it reports as an OpError too (fxpack does not drop rows at random).
bool stochastic_depth_is_identity(double p, const std::string& mode, bool training);

// ---- pooling.cpp ----------------------------------------------------------------------

// F.adaptive_max_pool2d: the maxima of PyTorch's adaptive windows and their flat (h * W + w)
// int64 indices; output_size entries may be nullopt (keep the input size).
std::pair<Tensor, Tensor> adaptive_max_pool2d(const Tensor& x, std::array<std::optional<std::int64_t>, 2> output_size);

// ---- layers.cpp -----------------------------------------------------------------------

// weight [V, D] rows gathered by int64/int32 `indices`: indices.shape + [D].
Tensor embedding(const Tensor& weight, const Tensor& indices);
// int64 classes -> int64 [..., num_classes] (-1: max + 1).
Tensor one_hot(const Tensor& x, std::int64_t num_classes);
// [*, C * r * r, H, W] -> [*, C, H * r, W * r], any dtype.
Tensor pixel_shuffle(const Tensor& x, std::int64_t upscale_factor);
// x / max(||x||_p along dim, eps).
Tensor normalize(const Tensor& x, double p, std::int64_t dim, double eps);
// [N, C, ...] normalised per (sample, group of C / num_groups channels); weight, bias [C] or null.
Tensor group_norm(const Tensor& x, std::int64_t num_groups, const Tensor* weight, const Tensor* bias, double eps);
// F.pad's constant mode: pad pairs from the last dim (negative pads crop), any dtype but 16-bit floats.
Tensor constant_pad(const Tensor& x, std::span<const std::int64_t> pad, double value);
// F.pad's "reflect", "replicate" and "circular" modes (pad pairs from the last dim).
Tensor mode_pad(const Tensor& x, std::span<const std::int64_t> pad, const std::string& mode);

// ---- conv.cpp -------------------------------------------------------------------------

// F.conv1d: x [N, C, L] (or unbatched [C, L]), w [O, C/groups, k]; stride, padding
// (an int, "valid" or "same") and dilation as PyTorch takes them.
Tensor conv1d(const Tensor& x, const Tensor& w, const Tensor* b, const Value& stride, const Value& padding,
              const Value& dilation, std::int64_t groups);

struct ConvTranspose2dOptions {
  std::array<std::int64_t, 2> stride{1, 1};
  std::array<std::int64_t, 2> padding{0, 0};
  std::array<std::int64_t, 2> output_padding{0, 0};
  std::array<std::int64_t, 2> dilation{1, 1};
  std::int64_t groups = 1;
};
// x [N, C, H, W] (or unbatched), w [C, O/groups, kh, kw], b [O] or null.
Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor* b, const ConvTranspose2dOptions& options);

}  // namespace fxpack::ops
