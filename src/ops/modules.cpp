// Leaf module kinds (modules.yaml): for each kind what a call template cannot say — its init
// (PyTorch's __init__), forward and make_fx decomposition, extra_repr with conditions, and
// validate (the checks beyond the generic ones, for modules rebuilt from archives) — and
// the nn:: factories.
#include <cmath>

#include "fxpack/module.hpp"
#include "kernels.hpp"
#include "util.hpp"

namespace fxpack::ops {

namespace {

// ---- helpers --------------------------------------------------------------------------

// Python's str() of an attribute value as used by str.format in extra_repr.
std::string py_str(const Value& v) {
  if (const auto* s = std::get_if<std::string>(&v.variant())) return *s;
  return python_repr(v);
}

[[noreturn]] void bad_field(const Module& m, const std::string& field, const std::string& what) {
  throw FormatError(m.kind() + ": " + field + " " + what);
}

const Value& need_attr(const Module& m, const char* name) {
  const Value* v = m.find_attr(name);
  if (!v) bad_field(m, std::string("attribute '") + name + "'", "is missing");
  return *v;
}

std::int64_t attr_int(const Module& m, const char* name) {
  const Value& v = need_attr(m, name);
  if (const auto* i = std::get_if<std::int64_t>(&v.variant())) return *i;
  bad_field(m, std::string("attribute '") + name + "'", "must be an int, got " + ops::util::kind_str(v));
}

bool attr_bool(const Module& m, const char* name) {
  const Value& v = need_attr(m, name);
  if (const auto* b = std::get_if<bool>(&v.variant())) return *b;
  bad_field(m, std::string("attribute '") + name + "'", "must be a bool, got " + ops::util::kind_str(v));
}

double attr_number(const Module& m, const char* name) {
  const Value& v = need_attr(m, name);
  if (const auto* d = std::get_if<double>(&v.variant())) return *d;
  if (const auto* i = std::get_if<std::int64_t>(&v.variant())) return static_cast<double>(*i);
  bad_field(m, std::string("attribute '") + name + "'", "must be a number, got " + ops::util::kind_str(v));
}

// An int or a list/tuple of `n` ints (each >= min_value).
void check_int_or_tuple(const Module& m, const char* name, std::size_t n, std::int64_t min_value,
                        bool tuple_required) {
  const Value& v = need_attr(m, name);
  std::vector<std::int64_t> vals;
  if (const auto* i = std::get_if<std::int64_t>(&v.variant())) {
    if (tuple_required) {
      bad_field(m, std::string("attribute '") + name + "'", "must be a tuple of " + std::to_string(n) + " ints");
    }
    vals.push_back(*i);
  } else if (v.kind() == Value::Kind::Tuple || v.kind() == Value::Kind::List) {
    const auto& items = v.kind() == Value::Kind::Tuple ? std::get<Tuple>(v.variant()).items
                                                       : std::get<List>(v.variant()).items;
    if (items.size() != n) {
      bad_field(m, std::string("attribute '") + name + "'",
                "must have " + std::to_string(n) + " entries, got " + std::to_string(items.size()));
    }
    for (const Value& it : items) {
      const auto* i = std::get_if<std::int64_t>(&it.variant());
      if (!i) bad_field(m, std::string("attribute '") + name + "'", "must hold ints, found " + ops::util::kind_str(it));
      vals.push_back(*i);
    }
  } else {
    bad_field(m, std::string("attribute '") + name + "'", "must be an int or a tuple of ints, got " + ops::util::kind_str(v));
  }
  for (std::int64_t x : vals) {
    if (x < min_value) {
      bad_field(m, std::string("attribute '") + name + "'",
                "must be >= " + std::to_string(min_value) + ", got " + py_str(v));
    }
  }
}

void check_tensor(const Module& m, const Tensor* t, const char* name, const Shape& shape,
                  bool floating, bool is_buffer) {
  const std::string field = std::string(is_buffer ? "buffer '" : "parameter '") + name + "'";
  if (!t) bad_field(m, field, "is missing");
  if (!t->defined()) bad_field(m, field, "is an undefined tensor");
  if (!(t->shape() == shape)) {
    bad_field(m, field, "has shape " + t->shape().to_string() + ", expected " + shape.to_string());
  }
  if (floating && !is_floating(t->dtype())) {
    bad_field(m, field, "has dtype " + std::string(dtype_name(t->dtype())) + ", expected a floating dtype");
  }
}

const Tensor& single_input(const Module& m, std::span<const Value> args) {
  if (args.size() != 1) {
    throw OpError(m.kind() + ": forward expects 1 input, got " + std::to_string(args.size()));
  }
  const Tensor* t = std::get_if<Tensor>(&args[0].variant());
  if (!t || !t->defined()) {
    throw OpError(m.kind() + ": forward expects a Tensor input, got " + ops::util::kind_str(args[0]));
  }
  return *t;
}

// PyTorch's _pair: an int becomes (x, x); a pair stays.
Value pair_value(const Value& v, const char* kind, const char* name) {
  if (const auto* i = std::get_if<std::int64_t>(&v.variant())) return Value(Tuple{{Value(*i), Value(*i)}});
  if (v.kind() == Value::Kind::Tuple || v.kind() == Value::Kind::List) {
    const auto& items = v.items();
    if (items.size() == 2 && items[0].is_int() && items[1].is_int()) return Value(Tuple{items});
  }
  throw Error(std::string(kind) + ": " + name + " must be an int or a pair of ints, got " + python_repr(v));
}

bool all_equal(const Value& v, std::int64_t x) {
  if (const auto* i = std::get_if<std::int64_t>(&v.variant())) return *i == x;
  if (v.kind() == Value::Kind::Tuple || v.kind() == Value::Kind::List) {
    for (const Value& it : v.items()) {
      const auto* i = std::get_if<std::int64_t>(&it.variant());
      if (!i || *i != x) return false;
    }
    return true;
  }
  return false;
}

// ---- Linear ---------------------------------------------------------------------------

// (in_features, out_features, bias)
void linear_init(Module& m, std::span<const Value> args) {
  const std::int64_t in = args[0].to_int(), out = args[1].to_int();
  if (in < 0 || out < 0) {
    throw Error("Linear: in_features and out_features must be >= 0, got " + std::to_string(in) + " and " +
                std::to_string(out));
  }
  m.set_attr("in_features", Value(in));
  m.set_attr("out_features", Value(out));
  m.register_parameter("weight", Tensor::zeros(Shape{out, in}));
  if (args[2].to_bool()) m.register_parameter("bias", Tensor::zeros(Shape{out}));
}
std::string linear_repr(const Module& m) {
  return "in_features=" + py_str(need_attr(m, "in_features")) + ", out_features=" + py_str(need_attr(m, "out_features")) +
         ", bias=" + (m.find_parameter("bias") ? "True" : "False");
}
void linear_validate(const Module& m) {
  const std::int64_t in = attr_int(m, "in_features"), out = attr_int(m, "out_features");
  if (in < 0) bad_field(m, "attribute 'in_features'", "must be >= 0");
  if (out < 0) bad_field(m, "attribute 'out_features'", "must be >= 0");
  check_tensor(m, m.find_parameter("weight"), "weight", Shape{out, in}, true, false);
  if (const Tensor* b = m.find_parameter("bias")) {
    check_tensor(m, b, "bias", Shape{out}, true, false);
    if (b->dtype() != m.find_parameter("weight")->dtype()) bad_field(m, "parameter 'bias'", "dtype differs from weight");
  }
}

// ---- ReLU -----------------------------------------------------------------------------

std::string relu_repr(const Module& m) {
  const Value* v = m.find_attr("inplace");
  const bool inplace = v && v->kind() == Value::Kind::Bool && std::get<bool>(v->variant());
  return inplace ? "inplace=True" : "";
}

// ---- Conv2d ---------------------------------------------------------------------------

// (in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode)
void conv2d_init(Module& m, std::span<const Value> args) {
  const std::int64_t in_channels = args[0].to_int(), out_channels = args[1].to_int(), groups = args[6].to_int();
  const Value& padding = args[4];
  if (groups <= 0) throw Error("Conv2d: groups must be a positive integer");
  if (in_channels <= 0 || out_channels <= 0) throw Error("Conv2d: in_channels and out_channels must be positive");
  if (in_channels % groups != 0) throw Error("Conv2d: in_channels must be divisible by groups");
  if (out_channels % groups != 0) throw Error("Conv2d: out_channels must be divisible by groups");
  if (args[8].str() != "zeros") {
    throw Error("Conv2d: padding_mode " + python_repr(args[8]) + " is not supported (only 'zeros')");
  }
  Value ks = pair_value(args[2], "Conv2d", "kernel_size");
  Value st = pair_value(args[3], "Conv2d", "stride");
  Value dl = pair_value(args[5], "Conv2d", "dilation");
  Value pd;
  if (const auto* s = std::get_if<std::string>(&padding.variant())) {
    if (*s != "same" && *s != "valid") {
      throw Error("Conv2d: Invalid padding string '" + *s + "', should be one of {'valid', 'same'}");
    }
    if (*s == "same" && !all_equal(st, 1)) throw Error("Conv2d: padding='same' is not supported for strided convolutions");
    pd = padding;
  } else {
    pd = pair_value(padding, "Conv2d", "padding");
  }
  for (const auto* v : {&ks, &st, &dl}) {
    for (const Value& x : v->items()) {
      if (x.to_int() <= 0) throw Error("Conv2d: kernel_size, stride and dilation must be positive, got " + python_repr(*v));
    }
  }
  if (pd.kind() == Value::Kind::Tuple) {
    for (const Value& x : pd.items()) {
      if (x.to_int() < 0) throw Error("Conv2d: padding must be non-negative, got " + python_repr(pd));
    }
  }
  m.set_attr("in_channels", Value(in_channels));
  m.set_attr("out_channels", Value(out_channels));
  m.set_attr("kernel_size", ks);
  m.set_attr("stride", st);
  m.set_attr("padding", pd);
  m.set_attr("dilation", dl);
  m.set_attr("transposed", Value(false));
  m.set_attr("output_padding", Value(Tuple{{Value(std::int64_t{0}), Value(std::int64_t{0})}}));
  m.set_attr("groups", Value(groups));
  m.set_attr("padding_mode", args[8]);
  const auto& k = ks.items();
  m.register_parameter("weight", Tensor::zeros(Shape{out_channels, in_channels / groups, k[0].to_int(), k[1].to_int()}));
  if (args[7].to_bool()) m.register_parameter("bias", Tensor::zeros(Shape{out_channels}));
}

void check_padding_mode(const Module& m) {
  const Value& mode = m.attr("padding_mode");
  if (const auto* s = std::get_if<std::string>(&mode.variant()); !s || *s != "zeros") {
    throw OpError("Conv2d: padding_mode " + python_repr(mode) + " is not supported (only 'zeros')");
  }
}

Value conv2d_forward(const Module& m, std::span<const Value> args) {
  const Tensor& x = single_input(m, args);
  const Tensor& w = m.parameter("weight");
  check_padding_mode(m);
  if (w.dim() != 4) throw OpError("Conv2d: weight must be 4-D, got shape " + w.shape().to_string());
  const auto opts = conv2d_options(m.attr("stride"), m.attr("padding"), m.attr("dilation"), attr_int(m, "groups"),
                                   w.shape()[2], w.shape()[3]);
  return Value(conv2d(x, w, m.find_parameter("bias"), opts));
}

TracedValue tensor_or_none(const Tensor* t) { return t ? TracedValue{Value(*t), Value(*t)} : TracedValue{}; }
TracedValue constant(const Value& v) { return TracedValue{v, v}; }

// Conv2d._conv_forward with padding_mode 'zeros': F.conv2d.
Value conv2d_decomposition_module(OpRecorder& rec, const Module& m, const OpCall& call) {
  check_padding_mode(m);
  return rec
      .call("torch.conv2d", {call.args[0], tensor_or_none(&m.parameter("weight")),
                             tensor_or_none(m.find_parameter("bias")), constant(m.attr("stride")),
                             constant(m.attr("padding")), constant(m.attr("dilation")), constant(m.attr("groups"))})
      .sym;
}

std::string conv2d_repr(const Module& m) {
  std::string s = py_str(need_attr(m, "in_channels")) + ", " + py_str(need_attr(m, "out_channels")) +
                  ", kernel_size=" + py_str(need_attr(m, "kernel_size")) + ", stride=" + py_str(need_attr(m, "stride"));
  const Value& padding = need_attr(m, "padding");
  if (!all_equal(padding, 0)) s += ", padding=" + py_str(padding);
  const Value& dilation = need_attr(m, "dilation");
  if (!all_equal(dilation, 1)) s += ", dilation=" + py_str(dilation);
  if (const Value* op = m.find_attr("output_padding"); op && !all_equal(*op, 0)) s += ", output_padding=" + py_str(*op);
  const Value& groups = need_attr(m, "groups");
  if (!all_equal(groups, 1)) s += ", groups=" + py_str(groups);
  if (!m.find_parameter("bias")) s += ", bias=False";
  if (const Value* pm = m.find_attr("padding_mode")) {
    const auto* str = std::get_if<std::string>(&pm->variant());
    if (!str || *str != "zeros") s += ", padding_mode=" + py_str(*pm);
  }
  return s;
}

void conv2d_validate(const Module& m) {
  const std::int64_t in = attr_int(m, "in_channels"), out = attr_int(m, "out_channels");
  const std::int64_t groups = attr_int(m, "groups");
  if (in <= 0) bad_field(m, "attribute 'in_channels'", "must be > 0");
  if (out <= 0) bad_field(m, "attribute 'out_channels'", "must be > 0");
  if (groups <= 0) bad_field(m, "attribute 'groups'", "must be > 0");
  if (in % groups) bad_field(m, "attribute 'in_channels'", "must be divisible by groups");
  if (out % groups) bad_field(m, "attribute 'out_channels'", "must be divisible by groups");
  check_int_or_tuple(m, "kernel_size", 2, 1, true);
  check_int_or_tuple(m, "stride", 2, 1, true);
  check_int_or_tuple(m, "dilation", 2, 1, true);
  const Value& padding = need_attr(m, "padding");
  if (const auto* s = std::get_if<std::string>(&padding.variant())) {
    if (*s != "same" && *s != "valid") bad_field(m, "attribute 'padding'", "must be 'same', 'valid' or a tuple, got '" + *s + "'");
  } else {
    check_int_or_tuple(m, "padding", 2, 0, true);
  }
  check_int_or_tuple(m, "output_padding", 2, 0, true);
  if (attr_bool(m, "transposed")) bad_field(m, "attribute 'transposed'", "must be False");
  const Value& mode = need_attr(m, "padding_mode");
  if (const auto* s = std::get_if<std::string>(&mode.variant()); !s || *s != "zeros") {
    bad_field(m, "attribute 'padding_mode'", "must be 'zeros', got " + python_repr(mode));
  }
  const auto& ks = need_attr(m, "kernel_size").items();
  check_tensor(m, m.find_parameter("weight"), "weight", Shape{out, in / groups, ks[0].to_int(), ks[1].to_int()}, true,
               false);
  if (const Tensor* b = m.find_parameter("bias")) check_tensor(m, b, "bias", Shape{out}, true, false);
}

// Conv2d.__init__ derives _reversed_padding_repeated_twice from padding (F.pad order: the
// last dimension first; 'same' from the kernel).
std::vector<std::pair<std::string, Value>> conv2d_private_attributes(const Module& m) {
  const Value* pad = m.find_attr("padding");
  std::vector<std::int64_t> r;
  if (pad && pad->kind() == Value::Kind::Tuple) {
    const auto& items = pad->items();
    for (std::size_t i = items.size(); i-- > 0;) {
      r.push_back(items[i].to_int());
      r.push_back(items[i].to_int());
    }
  } else if (pad && pad->kind() == Value::Kind::String && pad->str() == "same") {
    const auto ks = m.attr("kernel_size").int_list();
    const auto dl = m.attr("dilation").int_list();
    for (std::size_t i = ks.size(); i-- > 0;) {
      const std::int64_t total = dl[i] * (ks[i] - 1);
      const std::int64_t left = total / 2;
      r.push_back(left);
      r.push_back(total - left);
    }
  } else {
    r = {0, 0, 0, 0};  // 'valid'
  }
  Tuple t;
  for (std::int64_t x : r) t.items.emplace_back(x);
  return {{"_reversed_padding_repeated_twice", Value(std::move(t))}};
}

// ---- BatchNorm2d ----------------------------------------------------------------------

// (num_features, eps, momentum, affine, track_running_stats)
void batchnorm_init(Module& m, std::span<const Value> args) {
  const std::int64_t c = args[0].to_int();
  if (c <= 0) throw Error("BatchNorm2d: num_features must be positive, got " + std::to_string(c));
  m.set_attr("num_features", Value(c));
  m.set_attr("eps", args[1]);
  m.set_attr("momentum", args[2]);
  m.set_attr("affine", args[3]);
  m.set_attr("track_running_stats", args[4]);
  if (args[3].to_bool()) {
    m.register_parameter("weight", Tensor::full(Shape{c}, 1.0));
    m.register_parameter("bias", Tensor::zeros(Shape{c}));
  }
  if (args[4].to_bool()) {
    m.register_buffer("running_mean", Tensor::zeros(Shape{c}));
    m.register_buffer("running_var", Tensor::full(Shape{c}, 1.0));
    m.register_buffer("num_batches_tracked", Tensor::scalar(0.0, DType::Int64));
  }
}

Value batchnorm_forward(const Module& m, std::span<const Value> args) {
  const Tensor& x = single_input(m, args);
  if (x.dim() != 4) throw OpError("BatchNorm2d: expected 4D input (got " + std::to_string(x.dim()) + "D input)");
  const std::int64_t c = attr_int(m, "num_features");
  if (x.shape()[1] != c) {
    throw OpError("BatchNorm2d: input shape " + x.shape().to_string() + " has " + std::to_string(x.shape()[1]) +
                  " channels, expected num_features=" + std::to_string(c));
  }
  const Tensor* rm = m.find_buffer("running_mean");
  const Tensor* rv = m.find_buffer("running_var");
  return Value(batch_norm(x, m.find_parameter("weight"), m.find_parameter("bias"), rm, rv, rm == nullptr && rv == nullptr,
                          attr_number(m, "eps")));
}

// _BatchNorm.forward in eval mode: F.batch_norm with the running statistics (batch
// statistics when there are none) and momentum None as 0.0.
Value batchnorm_decomposition(OpRecorder& rec, const Module& m, const OpCall& call) {
  const Tensor* rm = m.find_buffer("running_mean");
  const Tensor* rv = m.find_buffer("running_var");
  const Value& momentum = m.attr("momentum");
  return rec
      .call("torch.nn.functional.batch_norm",
            {call.args[0], tensor_or_none(rm), tensor_or_none(rv), tensor_or_none(m.find_parameter("weight")),
             tensor_or_none(m.find_parameter("bias")), constant(Value(rm == nullptr && rv == nullptr)),
             constant(momentum.is_none() ? Value(0.0) : Value(momentum.to_double())),
             constant(Value(attr_number(m, "eps")))})
      .sym;
}

void batchnorm_validate(const Module& m) {
  const std::int64_t c = attr_int(m, "num_features");
  if (c <= 0) bad_field(m, "attribute 'num_features'", "must be > 0");
  const double eps = attr_number(m, "eps");
  if (!(eps >= 0.0)) bad_field(m, "attribute 'eps'", "must be >= 0");
  const bool affine = attr_bool(m, "affine");
  const bool track = attr_bool(m, "track_running_stats");
  if (affine) {
    check_tensor(m, m.find_parameter("weight"), "weight", Shape{c}, true, false);
    check_tensor(m, m.find_parameter("bias"), "bias", Shape{c}, true, false);
  }
  if (track) {
    check_tensor(m, m.find_buffer("running_mean"), "running_mean", Shape{c}, true, true);
    check_tensor(m, m.find_buffer("running_var"), "running_var", Shape{c}, true, true);
    const Tensor* n = m.find_buffer("num_batches_tracked");
    check_tensor(m, n, "num_batches_tracked", Shape{}, false, true);
    if (n->dtype() != DType::Int64) bad_field(m, "buffer 'num_batches_tracked'", "must be int64");
  }
}

// ---- MaxPool2d ------------------------------------------------------------------------

// (kernel_size, stride, padding, dilation, return_indices, ceil_mode): kept as given, as
// PyTorch keeps them (which shows in repr); stride None means kernel_size.
void maxpool_init(Module& m, std::span<const Value> args) {
  const Value stride = args[1].is_none() ? args[0] : args[1];
  try {
    (void)pool2d_options(args[0], stride, args[2], args[3], args[5].to_bool(), "MaxPool2d");
  } catch (const OpError& e) {
    throw Error(e.what());
  }
  m.set_attr("kernel_size", args[0]);
  m.set_attr("stride", stride);
  m.set_attr("padding", args[2]);
  m.set_attr("dilation", args[3]);
  m.set_attr("return_indices", args[4]);
  m.set_attr("ceil_mode", args[5]);
}
void maxpool_validate(const Module& m) {
  check_int_or_tuple(m, "kernel_size", 2, 1, false);
  check_int_or_tuple(m, "stride", 2, 1, false);
  check_int_or_tuple(m, "padding", 2, 0, false);
  check_int_or_tuple(m, "dilation", 2, 1, false);
}

// ---- AdaptiveAvgPool2d ----------------------------------------------------------------

std::array<std::optional<std::int64_t>, 2> output_size_of(const Value& v, const char* who) {
  auto one = [&](const Value& x) -> std::optional<std::int64_t> {
    if (x.is_none()) return std::nullopt;
    if (const auto* i = std::get_if<std::int64_t>(&x.variant())) {
      if (*i < 0) throw OpError(std::string(who) + ": output_size must be non-negative, got " + python_repr(v));
      return *i;
    }
    throw OpError(std::string(who) + ": output_size must be an int, None or a pair of those, got " + python_repr(v));
  };
  if (v.kind() == Value::Kind::Tuple || v.kind() == Value::Kind::List) {
    const auto& items = v.items();
    if (items.size() != 2) throw OpError(std::string(who) + ": output_size must have 2 entries, got " + python_repr(v));
    return {one(items[0]), one(items[1])};
  }
  auto s = one(v);
  return {s, s};
}

// (output_size)
void adaptive_init(Module& m, std::span<const Value> args) {
  try {
    (void)output_size_of(args[0], "AdaptiveAvgPool2d");
  } catch (const OpError& e) {
    throw Error(e.what());
  }
  m.set_attr("output_size", args[0]);
}
void adaptive_validate(const Module& m) {
  try {
    (void)output_size_of(need_attr(m, "output_size"), "AdaptiveAvgPool2d");
  } catch (const OpError& e) {
    throw FormatError(std::string(e.what()) + " (attribute 'output_size')");
  }
}

// ---- Sequential -----------------------------------------------------------------------

Value sequential_forward(const Module& m, std::span<const Value> args) {
  if (args.size() != 1) throw OpError("Sequential: forward expects 1 input, got " + std::to_string(args.size()));
  Value cur = args[0];
  for (const auto& [name, child] : m.children()) cur = (*child)(std::vector<Value>{std::move(cur)});
  return cur;
}

}  // namespace

#include "modules_table.inc"

}  // namespace fxpack::ops

// ---- factories ------------------------------------------------------------------------

namespace fxpack::nn {

std::shared_ptr<Module> Linear(std::int64_t in_features, std::int64_t out_features, bool bias) {
  return make_module("Linear", {in_features, out_features, bias});
}

std::shared_ptr<Module> ReLU(bool inplace) { return make_module("ReLU", {inplace}); }

std::shared_ptr<Module> Conv2d(std::int64_t in_channels, std::int64_t out_channels, Value kernel_size, Value stride,
                               Value padding, Value dilation, std::int64_t groups, bool bias) {
  return make_module("Conv2d", {in_channels, out_channels, std::move(kernel_size), std::move(stride), std::move(padding),
                                std::move(dilation), groups, bias});
}

std::shared_ptr<Module> BatchNorm2d(std::int64_t num_features, double eps, double momentum, bool affine,
                                    bool track_running_stats) {
  return make_module("BatchNorm2d", {num_features, eps, momentum, affine, track_running_stats});
}

std::shared_ptr<Module> MaxPool2d(Value kernel_size, Value stride, Value padding, Value dilation, bool ceil_mode) {
  return make_module("MaxPool2d", {std::move(kernel_size), std::move(stride), std::move(padding), std::move(dilation)},
                     Dict{{{"ceil_mode", Value(ceil_mode)}}});
}

std::shared_ptr<Module> AdaptiveAvgPool2d(Value output_size) { return make_module("AdaptiveAvgPool2d", {std::move(output_size)}); }

std::shared_ptr<Module> GELU(std::string approximate) { return make_module("GELU", {std::move(approximate)}); }

std::shared_ptr<Module> Sequential(std::vector<std::shared_ptr<Module>> modules) {
  auto m = make_module("Sequential");
  for (std::size_t i = 0; i < modules.size(); ++i) m->register_module(std::to_string(i), modules[i]);
  return m;
}

}  // namespace fxpack::nn
