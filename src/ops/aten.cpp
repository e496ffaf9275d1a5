// The aten-level ops of make_fx graphs (torch.ops.aten.<op>.<overload>), with PyTorch's
// schemas (parameter names and defaults), on top of the kernels of kernels.hpp.
//
// fxpack tensors never alias for writing, so the in-place overloads (relu_, add_) compute
// a fresh result like their functional twins; graphs made by make_fx never read an input
// after an in-place op has consumed it, which is the only case where that would differ.
#include "aten.hpp"


#include "../compile/fused.hpp"
#include "kernels.hpp"
#include "util.hpp"

namespace fxpack::ops {

namespace {

using util::def;
using util::fail;
using util::kw;
using util::p;

const Value kOne{std::int64_t{1}};

template <UnaryOp OP>
Value k_unary(std::span<const Value> a) {
  return Value(unary(OP, util::tensor_arg(a, 0, op_name(OP), "self")));
}
Value k_detach(std::span<const Value> a) { return Value(util::tensor_arg(a, 0, "detach", "self")); }
Value k_clone(std::span<const Value> a) { return Value(util::tensor_arg(a, 0, "clone", "self").clone()); }
Value k_reciprocal(std::span<const Value> a) {
  return div(Value(1.0), Value(util::tensor_arg(a, 0, "reciprocal", "self")));
}
Value k_add(std::span<const Value> a) { return add(a[0], a[1], a[2]); }
Value k_sub(std::span<const Value> a) { return sub(a[0], a[1], a[2]); }
Value k_rsub(std::span<const Value> a) { return sub(a[1], a[0], a[2]); }
Value k_mul(std::span<const Value> a) { return mul(a[0], a[1]); }
Value k_div(std::span<const Value> a) { return div(a[0], a[1]); }
Value k_div_mode(std::span<const Value> a) { return div(a[0], a[1], a[2]); }
Value k_clamp(std::span<const Value> a) {
  return Value(clamp(util::tensor_arg(a, 0, "clamp", "self"), a[1], a[2]));
}

Value k_t(std::span<const Value> a) { return Value(t(util::tensor_arg(a, 0, "t", "self"))); }
Value k_mm(std::span<const Value> a) {
  return Value(mm(util::tensor_arg(a, 0, "mm", "self"), util::tensor_arg(a, 1, "mm", "mat2")));
}
Value k_matmul(std::span<const Value> a) {
  return Value(matmul(util::tensor_arg(a, 0, "matmul", "self"), util::tensor_arg(a, 1, "matmul", "other")));
}
Value k_addmm(std::span<const Value> a) {
  return Value(addmm(util::tensor_arg(a, 0, "addmm", "self"), util::tensor_arg(a, 1, "addmm", "mat1"),
                     util::tensor_arg(a, 2, "addmm", "mat2"), util::double_arg(a, 3, "addmm", "beta"),
                     util::double_arg(a, 4, "addmm", "alpha")));
}

std::array<std::int64_t, 2> pair_of(const Value& v, const char* op, const char* name) {
  auto l = util::int_list_arg(v, op, name);
  if (l.size() == 1) return {l[0], l[0]};
  if (l.size() != 2) fail(std::string(op) + ": argument '" + name + "' must have 2 entries, got " + python_repr(v));
  return {l[0], l[1]};
}

// convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups)
Value k_convolution(std::span<const Value> a) {
  const char* op = "convolution";
  const Tensor& x = util::tensor_arg(a, 0, op, "input");
  const Tensor& w = util::tensor_arg(a, 1, op, "weight");
  const Tensor* b = util::optional_tensor_arg(a, 2, op, "bias");
  if (util::bool_arg(a, 6, op, "transposed")) fail("convolution: transposed convolution is not supported");
  if (w.dim() != 4) fail("convolution: only 2-D convolution is supported (weight of shape " + w.shape().to_string() + ")");
  Conv2dOptions o;
  o.stride = pair_of(a[3], op, "stride");
  o.padding_begin = o.padding_end = pair_of(a[4], op, "padding");
  o.dilation = pair_of(a[5], op, "dilation");
  o.groups = util::int_arg(a, 8, op, "groups");
  return Value(conv2d(x, w, b, o));
}

// empty.memory_format(size, *, dtype=None, layout=None, device=None, pin_memory=None, memory_format=None)
Value k_empty(std::span<const Value> a) {
  auto dims = util::int_list_arg(a[0], "empty", "size");
  DType dt = DType::Float32;
  if (!a[1].is_none()) dt = a[1].dtype();
  for (std::int64_t d : dims)
    if (d < 0) fail("empty: negative dimension " + std::to_string(d));
  return Value(Tensor::empty(Shape(std::span<const std::int64_t>(dims)), dt));
}

// native_batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps)
// -> (output, save_mean, save_invstd). Running statistics are never updated (fxpack
// kernels do not write into inputs); the saved statistics are empty, as PyTorch's CPU
// kernel returns them in eval mode.
Value k_native_batch_norm(std::span<const Value> a) {
  const char* op = "native_batch_norm";
  const Tensor& x = util::tensor_arg(a, 0, op, "input");
  const Tensor* rm = util::optional_tensor_arg(a, 3, op, "running_mean");
  const Tensor* rv = util::optional_tensor_arg(a, 4, op, "running_var");
  const bool training = util::bool_arg(a, 5, op, "training");
  if (!training && (!rm || !rv)) fail("native_batch_norm: running_mean and running_var must be defined in evaluation mode");
  Tensor out = batch_norm(x, util::optional_tensor_arg(a, 1, op, "weight"), util::optional_tensor_arg(a, 2, op, "bias"),
                          rm, rv, training, util::double_arg(a, 7, op, "eps"));
  return Value(Tuple{{Value(std::move(out)), Value(Tensor::empty(Shape{0}, x.dtype())),
                      Value(Tensor::empty(Shape{0}, x.dtype()))}});
}

// max_pool2d_with_indices(self, kernel_size, stride=[], padding=0, dilation=1, ceil_mode=False)
Value k_max_pool2d_with_indices(std::span<const Value> a) {
  const char* op = "max_pool2d_with_indices";
  const Tensor& x = util::tensor_arg(a, 0, op, "self");
  auto o = pool2d_options(a[1], a[2], a[3], a[4], util::bool_arg(a, 5, op, "ceil_mode"), op);
  auto [out, idx] = max_pool2d_with_indices(x, o);
  return Value(Tuple{{Value(std::move(out)), Value(std::move(idx))}});
}

Value k_adaptive_avg_pool2d(std::span<const Value> a) {
  const Tensor& x = util::tensor_arg(a, 0, "_adaptive_avg_pool2d", "self");
  auto s = pair_of(a[1], "_adaptive_avg_pool2d", "output_size");
  return Value(adaptive_avg_pool2d(x, {s[0], s[1]}));
}

std::optional<DType> dtype_arg(const Value& v) {
  if (v.is_none()) return std::nullopt;
  return v.dtype();
}
// mean.dim / sum.dim_IntList (self, dim, keepdim=False, *, dtype=None)
template <bool Mean>
Value k_reduce_dim(std::span<const Value> a) {
  const char* op = Mean ? "mean" : "sum";
  const Tensor& x = util::tensor_arg(a, 0, op, "self");
  std::vector<std::int64_t> dims;
  if (!a[1].is_none()) dims = util::int_list_arg(a[1], op, "dim");
  const bool keepdim = util::bool_arg(a, 2, op, "keepdim");
  return Value(Mean ? mean(x, dims, keepdim, dtype_arg(a[3])) : sum(x, dims, keepdim, dtype_arg(a[3])));
}
// mean.default / sum.default (self, *, dtype=None)
template <bool Mean>
Value k_reduce_all(std::span<const Value> a) {
  const char* op = Mean ? "mean" : "sum";
  const Tensor& x = util::tensor_arg(a, 0, op, "self");
  return Value(Mean ? mean(x, {}, false, dtype_arg(a[1])) : sum(x, {}, false, dtype_arg(a[1])));
}

// _reshape_alias(self, size, stride): fxpack tensors are contiguous, so the strides must be
// the contiguous strides of `size`.
Value k_reshape_alias(std::span<const Value> a) {
  const Tensor& x = util::tensor_arg(a, 0, "_reshape_alias", "self");
  auto size = util::int_list_arg(a[1], "_reshape_alias", "size");
  auto stride = util::int_list_arg(a[2], "_reshape_alias", "stride");
  if (size.size() != stride.size())
    fail("_reshape_alias: size and stride have different lengths (" + python_repr(a[1]) + ", " + python_repr(a[2]) + ")");
  std::int64_t expect = 1;
  for (std::size_t i = size.size(); i-- > 0;) {
    if (size[i] != 1 && stride[i] != expect)
      fail("_reshape_alias: only contiguous strides are supported, got size " + python_repr(a[1]) + " and stride " +
           python_repr(a[2]));
    expect *= size[i];
  }
  return Value(reshape(x, size, "_reshape_alias"));
}
Value k_view(std::span<const Value> a) {
  return Value(reshape(util::tensor_arg(a, 0, "view", "self"), util::int_list_arg(a[1], "view", "size"), "view"));
}
Value k_unsafe_view(std::span<const Value> a) {
  return Value(reshape(util::tensor_arg(a, 0, "_unsafe_view", "self"),
                       util::int_list_arg(a[1], "_unsafe_view", "size"), "_unsafe_view"));
}
Value k_permute(std::span<const Value> a) {
  return Value(permute(util::tensor_arg(a, 0, "permute", "self"), util::int_list_arg(a[1], "permute", "dims")));
}
Value k_transpose(std::span<const Value> a) {
  return Value(transpose(util::tensor_arg(a, 0, "transpose", "self"), util::int_arg(a, 1, "transpose", "dim0"),
                         util::int_arg(a, 2, "transpose", "dim1")));
}
Value k_unsqueeze(std::span<const Value> a) {
  const Tensor& x = util::tensor_arg(a, 0, "unsqueeze", "self");
  const auto nd = static_cast<std::int64_t>(x.dim());
  const std::int64_t d = util::wrap_dim(util::int_arg(a, 1, "unsqueeze", "dim"), nd + 1, "unsqueeze");
  std::vector<std::int64_t> s = x.shape().to_vector();
  s.insert(s.begin() + d, 1);
  return Value(reshape(x, s, "unsqueeze"));
}

constexpr const char* kAten = "torch.ops.aten.";

// Registers a target unless something already did (register_aten_ops is idempotent, and
// another part of fxpack may register some aten targets itself).
void add_once(OpRegistry& r, const std::string& target, std::shared_ptr<const OpDef> op) {
  if (!r.function(target)) r.add_function(target, std::move(op));
}

void reg(OpRegistry& r, const std::string& name, std::vector<Param> params, KernelFn k) {
  const std::string op = name.substr(0, name.find('.'));
  add_once(r, kAten + name, def(op.c_str(), std::move(params), k));
}

}  // namespace

void register_aten_ops(OpRegistry& r) {
  reg(r, "sin.default", {p("self")}, &k_unary<UnaryOp::Sin>);
  reg(r, "cos.default", {p("self")}, &k_unary<UnaryOp::Cos>);
  reg(r, "exp.default", {p("self")}, &k_unary<UnaryOp::Exp>);
  reg(r, "tanh.default", {p("self")}, &k_unary<UnaryOp::Tanh>);
  reg(r, "sigmoid.default", {p("self")}, &k_unary<UnaryOp::Sigmoid>);
  reg(r, "relu.default", {p("self")}, &k_unary<UnaryOp::Relu>);
  reg(r, "relu_.default", {p("self")}, &k_unary<UnaryOp::Relu>);
  reg(r, "neg.default", {p("self")}, &k_unary<UnaryOp::Neg>);
  reg(r, "abs.default", {p("self")}, &k_unary<UnaryOp::Abs>);
  reg(r, "reciprocal.default", {p("self")}, &k_reciprocal);
  reg(r, "detach.default", {p("self")}, &k_detach);
  reg(r, "clone.default", {p("self"), kw("memory_format", Value())}, &k_clone);

  reg(r, "add.Tensor", {p("self"), p("other"), kw("alpha", kOne)}, &k_add);
  reg(r, "add_.Tensor", {p("self"), p("other"), kw("alpha", kOne)}, &k_add);
  reg(r, "add.Scalar", {p("self"), p("other"), p("alpha", kOne)}, &k_add);
  reg(r, "sub.Tensor", {p("self"), p("other"), kw("alpha", kOne)}, &k_sub);
  reg(r, "sub.Scalar", {p("self"), p("other"), p("alpha", kOne)}, &k_sub);
  reg(r, "rsub.Scalar", {p("self"), p("other"), p("alpha", kOne)}, &k_rsub);
  reg(r, "rsub.Tensor", {p("self"), p("other"), kw("alpha", kOne)}, &k_rsub);
  reg(r, "mul.Tensor", {p("self"), p("other")}, &k_mul);
  reg(r, "mul.Scalar", {p("self"), p("other")}, &k_mul);
  reg(r, "div.Tensor", {p("self"), p("other")}, &k_div);
  reg(r, "div.Tensor_mode", {p("self"), p("other"), kw("rounding_mode", Value())}, &k_div_mode);
  reg(r, "div.Scalar", {p("self"), p("other")}, &k_div);
  reg(r, "clamp.default", {p("self"), p("min", Value()), p("max", Value())}, &k_clamp);
  reg(r, "clamp.Tensor", {p("self"), p("min", Value()), p("max", Value())}, &k_clamp);

  reg(r, "t.default", {p("self")}, &k_t);
  reg(r, "mm.default", {p("self"), p("mat2")}, &k_mm);
  reg(r, "matmul.default", {p("self"), p("other")}, &k_matmul);
  reg(r, "addmm.default", {p("self"), p("mat1"), p("mat2"), kw("beta", kOne), kw("alpha", kOne)}, &k_addmm);

  reg(r, "convolution.default",
      {p("input"), p("weight"), p("bias"), p("stride"), p("padding"), p("dilation"), p("transposed"),
       p("output_padding"), p("groups")},
      &k_convolution);
  reg(r, "empty.memory_format",
      {p("size"), kw("dtype", Value()), kw("layout", Value()), kw("device", Value()), kw("pin_memory", Value()),
       kw("memory_format", Value())},
      &k_empty);
  reg(r, "native_batch_norm.default",
      {p("input"), p("weight"), p("bias"), p("running_mean"), p("running_var"), p("training"), p("momentum"),
       p("eps")},
      &k_native_batch_norm);
  reg(r, "max_pool2d_with_indices.default",
      {p("self"), p("kernel_size"), p("stride", Value(List{})), p("padding", Value(std::int64_t{0})),
       p("dilation", kOne), p("ceil_mode", Value(false))},
      &k_max_pool2d_with_indices);
  reg(r, "_adaptive_avg_pool2d.default", {p("self"), p("output_size")}, &k_adaptive_avg_pool2d);
  reg(r, "mean.dim", {p("self"), p("dim"), p("keepdim", Value(false)), kw("dtype", Value())}, &k_reduce_dim<true>);
  reg(r, "sum.dim_IntList", {p("self"), p("dim"), p("keepdim", Value(false)), kw("dtype", Value())},
      &k_reduce_dim<false>);
  reg(r, "mean.default", {p("self"), kw("dtype", Value())}, &k_reduce_all<true>);
  reg(r, "sum.default", {p("self"), kw("dtype", Value())}, &k_reduce_all<false>);

  reg(r, "_reshape_alias.default", {p("self"), p("size"), p("stride")}, &k_reshape_alias);
  reg(r, "view.default", {p("self"), p("size")}, &k_view);
  reg(r, "_unsafe_view.default", {p("self"), p("size")}, &k_unsafe_view);
  reg(r, "permute.default", {p("self"), p("dims")}, &k_permute);
  reg(r, "transpose.int", {p("self"), p("dim0"), p("dim1")}, &k_transpose);
  reg(r, "unsqueeze.default", {p("self"), p("dim")}, &k_unsqueeze);

  // compile's fusion pass.
  add_once(r, compile_detail::kFusedTarget,
           def("fused_elementwise", {p("input"), p("ops")}, &compile_detail::fused_elementwise_kernel));
}

}  // namespace fxpack::ops
