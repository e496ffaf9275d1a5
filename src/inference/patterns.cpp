#include "patterns.hpp"

#include <algorithm>
#include <iterator>
#include <string_view>

#include "fxpack/ops.hpp"

namespace fxpack::inference {

using ops::dnnl_backend::Eltwise;
using dnnl::algorithm;

const char* pattern_name(PatternOp op) {
  switch (op) {
    case PatternOp::Generic: return "kernel";
    case PatternOp::Conv: return "conv2d";
    case PatternOp::Linear: return "linear";
    case PatternOp::BatchNorm: return "batch_norm";
    case PatternOp::LayerNorm: return "layer_norm";
    case PatternOp::Eltwise: return "eltwise";
    case PatternOp::Add: return "add";
    case PatternOp::Mul: return "mul";
    case PatternOp::MaxPool: return "max_pool2d";
    case PatternOp::AvgPool: return "avg_pool2d";
    case PatternOp::AdaptiveAvgPool: return "adaptive_avg_pool2d";
    case PatternOp::Flatten: return "flatten";
    case PatternOp::Identity: return "identity";
  }
  return "?";
}

namespace {

// Thrown inside recognize() when a node does not fit; turned into Generic.
struct NoMatch {};

const Node* node_arg(const Value& v) {
  if (!v.is_node()) throw NoMatch{};
  return v.node();
}

const Tensor& constant_arg(const Value& v, const Captured& captured) {
  if (!v.is_node() || v.node()->op() != Op::GetAttr) throw NoMatch{};
  const Tensor* t = captured.tensor(*v.node());
  if (!t) throw NoMatch{};
  return *t;
}

Tensor optional_constant(const Value& v, const Captured& captured) {
  return v.is_none() ? Tensor() : constant_arg(v, captured);
}

const Tensor& float_tensor(const Tensor* t) {
  if (!t || !t->defined() || t->dtype() != DType::Float32) throw NoMatch{};
  return *t;
}

Tensor optional_float(const Tensor* t) { return t ? float_tensor(t) : Tensor(); }

std::int64_t as_int(const Value& v) {
  if (!v.is_int()) throw NoMatch{};
  return v.to_int();
}

double as_number(const Value& v) {
  if (v.kind() == Value::Kind::Double) return std::get<double>(v.variant());
  if (v.is_int()) return static_cast<double>(v.to_int());
  throw NoMatch{};
}

bool as_bool(const Value& v) {
  if (v.kind() != Value::Kind::Bool) throw NoMatch{};
  return std::get<bool>(v.variant());
}

bool is_false_or_absent(const Module& m, const char* attr) {
  const Value* v = m.find_attr(attr);
  return !v || (v->kind() == Value::Kind::Bool && !std::get<bool>(v->variant()));
}

Eltwise eltwise(algorithm alg, float alpha = 0.f, float beta = 0.f) { return Eltwise{alg, alpha, beta}; }

Pattern conv(const Node* input, const Tensor& w, Tensor b, const Value& stride, const Value& padding,
             const Value& dilation, std::int64_t groups) {
  if (w.dtype() != DType::Float32 || w.dim() != 4) throw NoMatch{};
  if (b.defined() && b.dtype() != DType::Float32) throw NoMatch{};
  Pattern p;
  p.op = PatternOp::Conv;
  p.input = input;
  p.weight = w;
  p.bias = std::move(b);
  try {
    p.conv = ops::conv2d_options(stride, padding, dilation, groups, w.shape()[2], w.shape()[3]);
  } catch (const Error&) {
    throw NoMatch{};
  }
  return p;
}

Pattern batch_norm(const Node* input, const Tensor& mean, const Tensor& var, Tensor w, Tensor b, double eps) {
  Pattern p;
  p.op = PatternOp::BatchNorm;
  p.input = input;
  p.mean = float_tensor(&mean);
  p.var = float_tensor(&var);
  p.weight = optional_float(w.defined() ? &w : nullptr);
  p.bias = optional_float(b.defined() ? &b : nullptr);
  if (p.mean.dim() != 1 || !(p.var.shape() == p.mean.shape())) throw NoMatch{};
  p.eps = eps;
  return p;
}

Pattern act(const Node* input, const Eltwise& e) {
  Pattern p;
  p.op = PatternOp::Eltwise;
  p.input = input;
  p.eltwise = e;
  return p;
}

std::optional<Eltwise> gelu(std::string_view approximate) {
  if (approximate == "none") return eltwise(algorithm::eltwise_gelu_erf);
  if (approximate == "tanh") return eltwise(algorithm::eltwise_gelu_tanh);
  return std::nullopt;
}

// Tensor (op) tensor only; a Python number operand stays with the kernel (no exception:
// `x + 1.0` is common and recognising nodes must stay cheap).
Pattern binary(PatternOp op, const Value& a, const Value& b) {
  Pattern p;
  if (!a.is_node() || !b.is_node()) return p;
  p.op = op;
  p.input = a.node();
  p.other = b.node();
  return p;
}

Pattern pool(PatternOp op, const Node* input, const ops::Pool2dOptions& o, bool count_include_pad = true) {
  Pattern p;
  p.op = op;
  p.input = input;
  p.pool = o;
  p.count_include_pad = count_include_pad;
  return p;
}

std::optional<std::int64_t> size_entry(const Value& v) {
  if (v.is_none()) return std::nullopt;
  const std::int64_t i = as_int(v);
  if (i <= 0) throw NoMatch{};
  return i;
}

Pattern adaptive(const Node* input, const Value& size) {
  Pattern p;
  p.op = PatternOp::AdaptiveAvgPool;
  p.input = input;
  if (size.kind() == Value::Kind::List || size.kind() == Value::Kind::Tuple) {
    if (size.items().size() != 2) throw NoMatch{};
    p.output_size = {size_entry(size.items()[0]), size_entry(size.items()[1])};
  } else {
    p.output_size[0] = p.output_size[1] = size_entry(size);
  }
  return p;
}

Pattern flatten(const Node* input, std::int64_t start, std::int64_t end) {
  Pattern p;
  p.op = PatternOp::Flatten;
  p.input = input;
  p.start_dim = start;
  p.end_dim = end;
  return p;
}

Pattern identity(const Node* input) {
  Pattern p;
  p.op = PatternOp::Identity;
  p.input = input;
  return p;
}

Pattern layer_norm(const Node* input, const Value& shape, const Tensor* w, const Tensor* b, double eps) {
  // oneDNN normalises over the last dim: one normalized dim only.
  std::int64_t n = 0;
  if (shape.is_int()) n = shape.to_int();
  else if ((shape.kind() == Value::Kind::List || shape.kind() == Value::Kind::Tuple) && shape.items().size() == 1)
    n = as_int(shape.items()[0]);
  else throw NoMatch{};
  Pattern p;
  p.op = PatternOp::LayerNorm;
  p.input = input;
  if ((w == nullptr) != (b == nullptr)) throw NoMatch{};
  p.weight = optional_float(w);
  p.bias = optional_float(b);
  if (p.weight.defined() && !(p.weight.shape() == Shape{n} && p.bias.shape() == Shape{n})) throw NoMatch{};
  p.eps = eps;
  p.end_dim = n;
  return p;
}

Pattern module_pattern(const Node& n, const Captured& captured) {
  if (n.args().size() != 1 || !n.kwargs().items.empty() || !n.args()[0].is_node()) return {};
  const Node* x = n.args()[0].node();
  const Module* m = captured.module(n);
  if (!m) throw NoMatch{};
  const std::string& kind = m->kind();
  // Only registered leaf kinds run the semantics assumed here (a user module named "ReLU"
  // with its own forward is not a ReLU).
  if (!m->leaf_kind()) return {};
  if (kind == "Conv2d") {
    const Value& mode = m->attr("padding_mode");
    if (!(mode.kind() == Value::Kind::String) || mode.str() != "zeros") throw NoMatch{};
    const Tensor* b = m->find_parameter("bias");
    return conv(x, float_tensor(m->find_parameter("weight")), b ? float_tensor(b) : Tensor(), m->attr("stride"),
                m->attr("padding"), m->attr("dilation"), as_int(m->attr("groups")));
  }
  if (kind == "Linear") {
    Pattern p;
    p.op = PatternOp::Linear;
    p.input = x;
    p.weight = float_tensor(m->find_parameter("weight"));
    p.bias = optional_float(m->find_parameter("bias"));
    if (p.weight.dim() != 2) throw NoMatch{};
    return p;
  }
  if (kind == "BatchNorm2d" || kind == "BatchNorm1d") {
    const Tensor* rm = m->find_buffer("running_mean");
    const Tensor* rv = m->find_buffer("running_var");
    if (!rm || !rv || !is_false_or_absent(*m, "training")) throw NoMatch{};
    const Tensor* w = m->find_parameter("weight");
    const Tensor* b = m->find_parameter("bias");
    return batch_norm(x, *rm, *rv, w ? *w : Tensor(), b ? *b : Tensor(), as_number(m->attr("eps")));
  }
  if (kind == "LayerNorm") {
    return layer_norm(x, m->attr("normalized_shape"), m->find_parameter("weight"), m->find_parameter("bias"),
                      as_number(m->attr("eps")));
  }
  if (kind == "ReLU") return act(x, eltwise(algorithm::eltwise_relu));
  if (kind == "ReLU6") return act(x, eltwise(algorithm::eltwise_clip_v2, 0.f, 6.f));
  if (kind == "Hardtanh") {
    return act(x, eltwise(algorithm::eltwise_clip_v2, static_cast<float>(as_number(m->attr("min_val"))),
                          static_cast<float>(as_number(m->attr("max_val")))));
  }
  if (kind == "SiLU") return act(x, eltwise(algorithm::eltwise_swish, 1.f));
  if (kind == "Sigmoid") return act(x, eltwise(algorithm::eltwise_logistic));
  if (kind == "Tanh") return act(x, eltwise(algorithm::eltwise_tanh));
  if (kind == "Hardswish") return act(x, eltwise(algorithm::eltwise_hardswish));
  if (kind == "GELU") {
    const Value* a = m->find_attr("approximate");
    auto e = gelu(a && a->kind() == Value::Kind::String ? std::string_view(a->str()) : std::string_view("none"));
    if (!e) throw NoMatch{};
    return act(x, *e);
  }
  if (kind == "MaxPool2d") {
    if (!is_false_or_absent(*m, "return_indices")) throw NoMatch{};
    return pool(PatternOp::MaxPool, x,
                ops::pool2d_options(m->attr("kernel_size"), m->attr("stride"), m->attr("padding"),
                                    m->attr("dilation"), as_bool(m->attr("ceil_mode")), "MaxPool2d"));
  }
  if (kind == "AvgPool2d") {
    const Value* d = m->find_attr("divisor_override");
    if (d && !d->is_none()) throw NoMatch{};
    return pool(PatternOp::AvgPool, x,
                ops::pool2d_options(m->attr("kernel_size"), m->attr("stride"), m->attr("padding"),
                                    Value(std::int64_t{1}), as_bool(m->attr("ceil_mode")), "AvgPool2d"),
                as_bool(m->attr("count_include_pad")));
  }
  if (kind == "AdaptiveAvgPool2d") return adaptive(x, m->attr("output_size"));
  if (kind == "Flatten") return flatten(x, as_int(m->attr("start_dim")), as_int(m->attr("end_dim")));
  if (kind == "Identity") return identity(x);
  if (kind == "Dropout" || kind == "Dropout2d") {
    if (!is_false_or_absent(*m, "training")) throw NoMatch{};
    return identity(x);
  }
  return {};
}

// The call_function targets and call_method names function_pattern knows.
bool known_target(const Node& n) {
  static constexpr std::string_view kFunctions[] = {
      "torch.conv2d", "torch.nn.functional.conv2d", "torch.nn.functional.linear", "torch.nn.functional.batch_norm",
      "torch.relu", "torch.nn.functional.relu", "torch.sigmoid", "torch.tanh", "torch.nn.functional.relu6",
      "torch.nn.functional.silu", "torch.nn.functional.hardswish", "torch.nn.functional.gelu", "operator.add",
      "torch.add", "operator.mul", "torch.mul", "torch.nn.functional.max_pool2d",
      "torch.nn.functional.adaptive_avg_pool2d", "torch.flatten", "torchvision.ops.stochastic_depth.stochastic_depth"};
  static constexpr std::string_view kMethods[] = {"relu", "sigmoid", "tanh", "add", "mul", "flatten"};
  const std::string_view t = n.target();
  if (n.op() == Op::CallMethod) return std::find(std::begin(kMethods), std::end(kMethods), t) != std::end(kMethods);
  return std::find(std::begin(kFunctions), std::end(kFunctions), t) != std::end(kFunctions);
}

Pattern function_pattern(const Node& n, const Captured& captured, const OpDef& def) {
  if (!known_target(n)) return {};
  const std::vector<Value> a = bind_arguments(def, n.args(), n.kwargs());
  const std::string& t = n.target();
  const bool method = n.op() == Op::CallMethod;
  auto is = [&](std::string_view fn, std::string_view meth = {}) {
    return method ? (!meth.empty() && t == meth) : t == fn;
  };
  if (is("torch.conv2d") || is("torch.nn.functional.conv2d")) {
    return conv(node_arg(a[0]), constant_arg(a[1], captured), optional_constant(a[2], captured), a[3], a[4], a[5],
                as_int(a[6]));
  }
  if (is("torch.nn.functional.linear")) {
    Pattern p;
    p.op = PatternOp::Linear;
    p.input = node_arg(a[0]);
    p.weight = float_tensor(&constant_arg(a[1], captured));
    Tensor b = optional_constant(a[2], captured);
    p.bias = optional_float(b.defined() ? &b : nullptr);
    if (p.weight.dim() != 2) throw NoMatch{};
    return p;
  }
  if (is("torch.nn.functional.batch_norm")) {
    if (as_bool(a[5])) throw NoMatch{};  // training
    return batch_norm(node_arg(a[0]), constant_arg(a[1], captured), constant_arg(a[2], captured),
                      optional_constant(a[3], captured), optional_constant(a[4], captured), as_number(a[7]));
  }
  if (is("torch.relu", "relu") || is("torch.nn.functional.relu")) return act(node_arg(a[0]), eltwise(algorithm::eltwise_relu));
  if (is("torch.sigmoid", "sigmoid")) return act(node_arg(a[0]), eltwise(algorithm::eltwise_logistic));
  if (is("torch.tanh", "tanh")) return act(node_arg(a[0]), eltwise(algorithm::eltwise_tanh));
  if (is("torch.nn.functional.relu6")) return act(node_arg(a[0]), eltwise(algorithm::eltwise_clip_v2, 0.f, 6.f));
  if (is("torch.nn.functional.silu")) return act(node_arg(a[0]), eltwise(algorithm::eltwise_swish, 1.f));
  if (is("torch.nn.functional.hardswish")) return act(node_arg(a[0]), eltwise(algorithm::eltwise_hardswish));
  if (is("torch.nn.functional.gelu")) {
    const Value& ap = a.size() > 1 ? a[1] : Value(std::string("none"));
    auto e = gelu(ap.kind() == Value::Kind::String ? std::string_view(ap.str()) : std::string_view("?"));
    if (!e) throw NoMatch{};
    return act(node_arg(a[0]), *e);
  }
  if (is("operator.add") || ((is("torch.add", "add")) && a.size() == 3 && as_number(a[2]) == 1.0)) {
    return binary(PatternOp::Add, a[0], a[1]);
  }
  if (is("operator.mul") || is("torch.mul", "mul")) return binary(PatternOp::Mul, a[0], a[1]);
  if (is("torch.nn.functional.max_pool2d")) {
    if (as_bool(a[6])) throw NoMatch{};  // return_indices
    return pool(PatternOp::MaxPool, node_arg(a[0]), ops::pool2d_options(a[1], a[2], a[3], a[4], as_bool(a[5]), "max_pool2d"));
  }
  if (is("torch.nn.functional.adaptive_avg_pool2d")) return adaptive(node_arg(a[0]), a[1]);
  if (is("torch.flatten", "flatten")) return flatten(node_arg(a[0]), as_int(a[1]), as_int(a[2]));
  if (is("torchvision.ops.stochastic_depth.stochastic_depth")) {
    // Its kernel reports a bad p or mode, or training mode (an OpError, caught by recognize).
    if (a[2].kind() != Value::Kind::String) throw NoMatch{};
    (void)ops::stochastic_depth_is_identity(as_number(a[1]), a[2].str(), as_bool(a[3]));
    return identity(node_arg(a[0]));
  }
  return {};
}

}  // namespace

bool fusable_depthwise(const Pattern& pointwise, const Pattern& depthwise) {
  if (pointwise.op != PatternOp::Conv || depthwise.op != PatternOp::Conv) return false;
  const Shape& pw = pointwise.weight.shape();
  const Shape& dw = depthwise.weight.shape();
  const ops::Conv2dOptions& a = pointwise.conv;
  const ops::Conv2dOptions& b = depthwise.conv;
  const std::array<std::int64_t, 2> ones{1, 1}, zeros{0, 0};
  if (pw[2] != 1 || pw[3] != 1 || a.groups != 1 || a.stride != ones || a.dilation != ones ||
      a.padding_begin != zeros || a.padding_end != zeros)
    return false;
  const std::int64_t k = dw[2], pad = (k - 1) / 2;
  const std::array<std::int64_t, 2> same{pad, pad};
  return dw[0] == pw[0] && b.groups == pw[0] && dw[1] == 1 && dw[3] == k && k % 2 == 1 && b.stride[0] == b.stride[1] &&
         (b.stride[0] == 1 || b.stride[0] == 2) && b.dilation == ones && b.padding_begin == same && b.padding_end == same;
}

Pattern recognize(const Node& n, const Captured& captured) {
  try {
    switch (n.op()) {
      case Op::CallModule: return module_pattern(n, captured);
      case Op::CallFunction:
      case Op::CallMethod: {
        const OpRegistry& r = OpRegistry::global();
        const OpDef* def = n.op() == Op::CallFunction ? r.function(n.target()) : r.method(n.target());
        if (!def) return {};
        return function_pattern(n, captured, *def);
      }
      default: return {};
    }
  } catch (const NoMatch&) {
    return {};
  } catch (const Error&) {
    return {};
  }
}

}  // namespace fxpack::inference
