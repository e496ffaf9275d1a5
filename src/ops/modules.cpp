// Leaf module kinds (modules.yaml): for each kind what a call template cannot say — its init
// (PyTorch's __init__), forward and make_fx decomposition, extra_repr with conditions, and
// validate (the checks beyond the generic ones, for modules rebuilt from archives) — and
// the nn:: factories.
#include <algorithm>
#include <cmath>

#include "fxpack/module.hpp"
#include "kernels.hpp"
#include "util.hpp"

namespace fxpack::ops {

namespace {

// ---- helpers --------------------------------------------------------------------------

// Python's str() of an attribute value as used by str.format in extra_repr.
std::string py_str(const Value& v) {
  if (const auto* s = v.if_string()) return *s;
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
    const auto& items = v.kind() == Value::Kind::Tuple ? v.tuple().items
                                                       : v.list().items;
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
  const Tensor* t = args[0].if_tensor();
  if (!t || !t->defined()) {
    throw OpError(m.kind() + ": forward expects a Tensor input, got " + ops::util::kind_str(args[0]));
  }
  return *t;
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
    throw ValueError("Linear: in_features and out_features must be >= 0, got " + std::to_string(in) + " and " +
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

// ---- Bilinear -------------------------------------------------------------------------

void bilinear_init(Module& m, std::span<const Value> args) {
  const std::int64_t in1 = args[0].to_int(), in2 = args[1].to_int(), out = args[2].to_int();
  if (in1 < 0 || in2 < 0 || out < 0) {
    throw ValueError("Bilinear: in1_features, in2_features and out_features must be >= 0, got " + std::to_string(in1) + ", " +
                std::to_string(in2) + " and " + std::to_string(out));
  }
  m.set_attr("in1_features", Value(in1));
  m.set_attr("in2_features", Value(in2));
  m.set_attr("out_features", Value(out));
  m.register_parameter("weight", Tensor::zeros(Shape{out, in1, in2}));
  if (args[3].to_bool()) m.register_parameter("bias", Tensor::zeros(Shape{out}));
}
std::string bilinear_repr(const Module& m) {
  return "in1_features=" + py_str(need_attr(m, "in1_features")) + ", in2_features=" +
         py_str(need_attr(m, "in2_features")) + ", out_features=" + py_str(need_attr(m, "out_features")) +
         ", bias=" + (m.find_parameter("bias") ? "True" : "False");
}
void bilinear_validate(const Module& m) {
  const std::int64_t in1 = attr_int(m, "in1_features"), in2 = attr_int(m, "in2_features"),
                     out = attr_int(m, "out_features");
  if (in1 < 0) bad_field(m, "attribute 'in1_features'", "must be >= 0");
  if (in2 < 0) bad_field(m, "attribute 'in2_features'", "must be >= 0");
  if (out < 0) bad_field(m, "attribute 'out_features'", "must be >= 0");
  check_tensor(m, m.find_parameter("weight"), "weight", Shape{out, in1, in2}, true, false);
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

// ---- Conv1d, Conv2d, ConvTranspose2d -------------------------------------------------

// The spatial rank of a convolution kind and whether it is transposed.
struct ConvKind {
  std::size_t dims;
  bool transposed;
};
ConvKind conv_kind(const Module& m) {
  if (m.kind() == "Conv1d") return {1, false};
  if (m.kind() == "ConvTranspose2d") return {2, true};
  return {2, false};
}

// PyTorch's _single / _pair: an int repeated, a tuple of that length kept.
Value ntuple(const Value& v, std::size_t n, const char* kind, const char* name) {
  if (const auto* i = std::get_if<std::int64_t>(&v.variant())) return Value(Tuple{std::vector<Value>(n, Value(*i))});
  if (v.kind() == Value::Kind::Tuple || v.kind() == Value::Kind::List) {
    const auto& items = v.items();
    if (items.size() == n && std::all_of(items.begin(), items.end(), [](const Value& e) { return e.is_int(); })) {
      return Value(Tuple{items});
    }
  }
  throw ValueError(std::string(kind) + ": " + name + " must be an int or a tuple of " + std::to_string(n) + " ints, got " +
              python_repr(v));
}

bool known_padding_mode(const Value& mode) {
  const auto* s = mode.if_string();
  return s && (*s == "zeros" || *s == "reflect" || *s == "replicate" || *s == "circular");
}

// _ConvNd.__init__: (in_channels, out_channels, kernel_size, stride, padding, dilation,
// transposed, output_padding, groups, bias, padding_mode).
void conv_init(Module& m, const ConvKind& k, std::span<const Value> a) {
  const char* kind = k.transposed ? "ConvTranspose2d" : (k.dims == 1 ? "Conv1d" : "Conv2d");
  const std::int64_t in_channels = a[0].to_int(), out_channels = a[1].to_int(), groups = a[8].to_int();
  const Value& padding = a[4];
  if (groups <= 0) throw ValueError(std::string(kind) + ": groups must be a positive integer");
  if (in_channels <= 0 || out_channels <= 0) throw ValueError(std::string(kind) + ": in_channels and out_channels must be positive");
  if (in_channels % groups != 0) throw ValueError(std::string(kind) + ": in_channels must be divisible by groups");
  if (out_channels % groups != 0) throw ValueError(std::string(kind) + ": out_channels must be divisible by groups");
  if (!known_padding_mode(a[10])) {
    throw ValueError(std::string(kind) + ": padding_mode must be one of 'zeros', 'reflect', 'replicate' or 'circular', got " +
                python_repr(a[10]));
  }
  if (k.transposed && a[10].str() != "zeros") throw ValueError("ConvTranspose2d: Only \"zeros\" padding mode is supported");
  Value ks = ntuple(a[2], k.dims, kind, "kernel_size");
  Value st = ntuple(a[3], k.dims, kind, "stride");
  Value dl = ntuple(a[5], k.dims, kind, "dilation");
  Value op = ntuple(a[7], k.dims, kind, "output_padding");
  Value pd;
  if (const auto* s = padding.if_string()) {
    if (k.transposed || (*s != "same" && *s != "valid")) {
      throw ValueError(std::string(kind) + ": Invalid padding string '" + *s + "', should be one of {'valid', 'same'}");
    }
    if (*s == "same" && !all_equal(st, 1)) {
      throw ValueError(std::string(kind) + ": padding='same' is not supported for strided convolutions");
    }
    pd = padding;
  } else {
    pd = ntuple(padding, k.dims, kind, "padding");
  }
  for (const auto* v : {&ks, &st, &dl}) {
    for (const Value& x : v->items()) {
      if (x.to_int() <= 0) {
        throw ValueError(std::string(kind) + ": kernel_size, stride and dilation must be positive, got " + python_repr(*v));
      }
    }
  }
  if (pd.kind() == Value::Kind::Tuple) {
    for (const Value& x : pd.items()) {
      if (x.to_int() < 0) throw ValueError(std::string(kind) + ": padding must be non-negative, got " + python_repr(pd));
    }
  }
  m.set_attr("in_channels", Value(in_channels));
  m.set_attr("out_channels", Value(out_channels));
  m.set_attr("kernel_size", ks);
  m.set_attr("stride", st);
  m.set_attr("padding", pd);
  m.set_attr("dilation", dl);
  m.set_attr("transposed", Value(k.transposed));
  m.set_attr("output_padding", op);
  m.set_attr("groups", Value(groups));
  m.set_attr("padding_mode", a[10]);
  Shape ws = k.transposed ? Shape{in_channels, out_channels / groups} : Shape{out_channels, in_channels / groups};
  for (const Value& x : ks.items()) ws.push_back(x.to_int());
  m.register_parameter("weight", Tensor::zeros(ws));
  if (a[9].to_bool()) m.register_parameter("bias", Tensor::zeros(Shape{out_channels}));
}

// Conv2d / Conv1d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode)
void conv2d_init(Module& m, std::span<const Value> args) {
  const Value zero(std::int64_t{0});
  const std::vector<Value> a{args[0], args[1], args[2], args[3], args[4], args[5], Value(false), zero, args[6], args[7], args[8]};
  conv_init(m, {2, false}, a);
}
void conv1d_init(Module& m, std::span<const Value> args) {
  const Value zero(std::int64_t{0});
  const std::vector<Value> a{args[0], args[1], args[2], args[3], args[4], args[5], Value(false), zero, args[6], args[7], args[8]};
  conv_init(m, {1, false}, a);
}
// ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding, output_padding,
// groups, bias, dilation, padding_mode)
void conv_transpose2d_init(Module& m, std::span<const Value> args) {
  const std::vector<Value> a{args[0], args[1], args[2], args[3], args[4], args[8], Value(true), args[5], args[6], args[7], args[9]};
  conv_init(m, {2, true}, a);
}

const std::string& padding_mode(const Module& m) {
  const Value& mode = m.attr("padding_mode");
  if (!known_padding_mode(mode)) {
    throw OpError(m.kind() + ": padding_mode " + python_repr(mode) + " is not one of 'zeros', 'reflect', 'replicate', 'circular'");
  }
  return mode.str();
}

std::vector<std::pair<std::string, Value>> conv2d_private_attributes(const Module& m);

// _ConvNd._conv_forward: with a padding_mode other than 'zeros', F.pad(input,
// _reversed_padding_repeated_twice, mode) and then a convolution without padding.
Value conv_forward(const Module& m, std::span<const Value> args) {
  const Tensor& x = single_input(m, args);
  const Tensor& w = m.parameter("weight");
  const ConvKind k = conv_kind(m);
  const Tensor* bias = m.find_parameter("bias");
  if (w.dim() != k.dims + 2) {
    throw OpError(m.kind() + ": weight must be " + std::to_string(k.dims + 2) + "-D, got shape " + w.shape().to_string());
  }
  if (k.transposed) {
    ConvTranspose2dOptions o;
    const auto v = [&](const char* name) {
      const auto l = m.attr(name).int_list();
      if (l.size() != 2) throw OpError(m.kind() + ": attribute '" + name + "' must hold 2 ints");
      return std::array<std::int64_t, 2>{l[0], l[1]};
    };
    o.stride = v("stride");
    o.padding = v("padding");
    o.output_padding = v("output_padding");
    o.dilation = v("dilation");
    o.groups = attr_int(m, "groups");
    return Value(conv_transpose2d(x, w, bias, o));
  }
  const std::string& mode = padding_mode(m);
  Tensor input = x;
  Value padding = m.attr("padding");
  if (mode != "zeros") {
    std::vector<std::int64_t> pad;
    for (const auto& [name, v] : conv2d_private_attributes(m)) pad = v.int_list();
    input = mode_pad(x, pad, mode);
    padding = Value(std::int64_t{0});
  }
  if (k.dims == 1) {
    return Value(conv1d(input, w, bias, m.attr("stride"), padding, m.attr("dilation"), attr_int(m, "groups")));
  }
  const auto opts = conv2d_options(m.attr("stride"), padding, m.attr("dilation"), attr_int(m, "groups"), w.shape()[2],
                                   w.shape()[3]);
  return Value(conv2d(input, w, bias, opts));
}

TracedValue tensor_or_none(const Tensor* t) { return t ? TracedValue{Value(*t), Value(*t)} : TracedValue{}; }
TracedValue constant(const Value& v) { return TracedValue{v, v}; }

// _ConvNd._conv_forward with padding_mode 'zeros': F.conv1d / F.conv2d / F.conv_transpose2d.
Value conv_decomposition_module(OpRecorder& rec, const Module& m, const OpCall& call) {
  const ConvKind k = conv_kind(m);
  const TracedValue w = tensor_or_none(&m.parameter("weight")), b = tensor_or_none(m.find_parameter("bias"));
  if (k.transposed) {
    return rec
        .call("torch.conv_transpose2d", {call.args[0], w, b, constant(m.attr("stride")), constant(m.attr("padding")),
                                         constant(m.attr("output_padding")), constant(m.attr("groups")),
                                         constant(m.attr("dilation"))})
        .sym;
  }
  if (padding_mode(m) != "zeros") {
    throw OpError(m.kind() + ": make_fx of padding_mode " + python_repr(m.attr("padding_mode")) + " is not supported");
  }
  return rec
      .call(k.dims == 1 ? "torch.conv1d" : "torch.conv2d",
            {call.args[0], w, b, constant(m.attr("stride")), constant(m.attr("padding")), constant(m.attr("dilation")),
             constant(m.attr("groups"))})
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
    const auto* str = pm->if_string();
    if (!str || *str != "zeros") s += ", padding_mode=" + py_str(*pm);
  }
  return s;
}

void conv2d_validate(const Module& m) {
  const ConvKind k = conv_kind(m);
  const std::int64_t in = attr_int(m, "in_channels"), out = attr_int(m, "out_channels");
  const std::int64_t groups = attr_int(m, "groups");
  if (in <= 0) bad_field(m, "attribute 'in_channels'", "must be > 0");
  if (out <= 0) bad_field(m, "attribute 'out_channels'", "must be > 0");
  if (groups <= 0) bad_field(m, "attribute 'groups'", "must be > 0");
  if (in % groups) bad_field(m, "attribute 'in_channels'", "must be divisible by groups");
  if (out % groups) bad_field(m, "attribute 'out_channels'", "must be divisible by groups");
  check_int_or_tuple(m, "kernel_size", k.dims, 1, true);
  check_int_or_tuple(m, "stride", k.dims, 1, true);
  check_int_or_tuple(m, "dilation", k.dims, 1, true);
  const Value& padding = need_attr(m, "padding");
  if (const auto* s = padding.if_string()) {
    if (k.transposed || (*s != "same" && *s != "valid")) {
      bad_field(m, "attribute 'padding'", "must be 'same', 'valid' or a tuple, got '" + *s + "'");
    }
  } else {
    check_int_or_tuple(m, "padding", k.dims, 0, true);
  }
  check_int_or_tuple(m, "output_padding", k.dims, 0, true);
  if (attr_bool(m, "transposed") != k.transposed) {
    bad_field(m, "attribute 'transposed'", std::string("must be ") + (k.transposed ? "True" : "False"));
  }
  const Value& mode = need_attr(m, "padding_mode");
  if (!known_padding_mode(mode) || (k.transposed && mode.str() != "zeros")) {
    bad_field(m, "attribute 'padding_mode'",
              std::string("must be ") + (k.transposed ? "'zeros'" : "'zeros', 'reflect', 'replicate' or 'circular'") +
                  ", got " + python_repr(mode));
  }
  Shape ws = k.transposed ? Shape{in, out / groups} : Shape{out, in / groups};
  for (const Value& x : need_attr(m, "kernel_size").items()) ws.push_back(x.to_int());
  check_tensor(m, m.find_parameter("weight"), "weight", ws, true, false);
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
  if (c <= 0) throw ValueError("BatchNorm2d: num_features must be positive, got " + std::to_string(c));
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
    throw ValueError(e.what());
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
    throw ValueError(e.what());
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

// ---- nn family: pooling -----------------------------------------------------------------

// AvgPool2d(kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
// kept as given; stride None means kernel_size.
void avgpool_init(Module& m, std::span<const Value> args) {
  const Value stride = args[1].is_none() ? args[0] : args[1];
  try {
    (void)pool2d_options(args[0], stride, args[2], Value(std::int64_t{1}), args[3].to_bool(), "AvgPool2d");
  } catch (const OpError& e) {
    throw ValueError(e.what());
  }
  if (!args[5].is_none() && args[5].to_int() == 0) throw ValueError("AvgPool2d: divisor must be not zero");
  m.set_attr("kernel_size", args[0]);
  m.set_attr("stride", stride);
  m.set_attr("padding", args[2]);
  m.set_attr("ceil_mode", args[3]);
  m.set_attr("count_include_pad", args[4]);
  m.set_attr("divisor_override", args[5]);
}
void avgpool2d_validate(const Module& m) {
  check_int_or_tuple(m, "kernel_size", 2, 1, false);
  check_int_or_tuple(m, "stride", 2, 1, false);
  check_int_or_tuple(m, "padding", 2, 0, false);
}

// PyTorch's _single: an int becomes (x,).
Value single_value(const Value& v, const char* kind, const char* name) {
  if (const auto* i = std::get_if<std::int64_t>(&v.variant())) return Value(Tuple{{Value(*i)}});
  if ((v.kind() == Value::Kind::Tuple || v.kind() == Value::Kind::List) && v.items().size() == 1 && v.items()[0].is_int()) {
    return Value(Tuple{v.items()});
  }
  throw ValueError(std::string(kind) + ": " + name + " must be an int or a tuple of one int, got " + python_repr(v));
}

// AvgPool1d(kernel_size, stride, padding, ceil_mode, count_include_pad): as tuples of one.
void avgpool1d_init(Module& m, std::span<const Value> args) {
  const Value k = single_value(args[0], "AvgPool1d", "kernel_size");
  const Value st = single_value(args[1].is_none() ? args[0] : args[1], "AvgPool1d", "stride");
  const Value pd = single_value(args[2], "AvgPool1d", "padding");
  if (k.items()[0].to_int() <= 0 || st.items()[0].to_int() <= 0 || pd.items()[0].to_int() < 0) {
    throw ValueError("AvgPool1d: kernel_size and stride must be positive and padding non-negative");
  }
  m.set_attr("kernel_size", k);
  m.set_attr("stride", st);
  m.set_attr("padding", pd);
  m.set_attr("ceil_mode", args[3]);
  m.set_attr("count_include_pad", args[4]);
}
void pool1d_validate(const Module& m) {
  check_int_or_tuple(m, "kernel_size", 1, 1, false);
  check_int_or_tuple(m, "stride", 1, 1, false);
  check_int_or_tuple(m, "padding", 1, 0, false);
  if (m.find_attr("dilation")) check_int_or_tuple(m, "dilation", 1, 1, false);
}

// AdaptiveMaxPool2d(output_size, return_indices)
void adaptive_max_init(Module& m, std::span<const Value> args) {
  try {
    (void)output_size_of(args[0], "AdaptiveMaxPool2d");
  } catch (const OpError& e) {
    throw ValueError(e.what());
  }
  m.set_attr("output_size", args[0]);
  m.set_attr("return_indices", args[1]);
}

// ---- nn family: normalisation, dropout, embedding, upsampling, padding ------------------

Value batchnorm1d_forward(const Module& m, std::span<const Value> args) {
  const Tensor& x = single_input(m, args);
  if (x.dim() != 2 && x.dim() != 3) {
    throw OpError("BatchNorm1d: expected 2D or 3D input (got " + std::to_string(x.dim()) + "D input)");
  }
  const std::int64_t c = attr_int(m, "num_features");
  if (x.shape()[1] != c) {
    throw OpError("BatchNorm1d: input shape " + x.shape().to_string() + " has " + std::to_string(x.shape()[1]) +
                  " channels, expected num_features=" + std::to_string(c));
  }
  const Tensor* rm = m.find_buffer("running_mean");
  const Tensor* rv = m.find_buffer("running_var");
  return Value(batch_norm(x, m.find_parameter("weight"), m.find_parameter("bias"), rm, rv, rm == nullptr && rv == nullptr,
                          attr_number(m, "eps")));
}

// GroupNorm(num_groups, num_channels, eps, affine)
void groupnorm_init(Module& m, std::span<const Value> args) {
  const std::int64_t g = args[0].to_int(), c = args[1].to_int();
  if (g <= 0 || c % g != 0) throw ValueError("GroupNorm: num_channels must be divisible by num_groups");
  m.set_attr("num_groups", args[0]);
  m.set_attr("num_channels", args[1]);
  m.set_attr("eps", args[2]);
  m.set_attr("affine", args[3]);
  if (args[3].to_bool()) {
    m.register_parameter("weight", Tensor::full(Shape{c}, 1.0));
    m.register_parameter("bias", Tensor::zeros(Shape{c}));
  }
}
void groupnorm_validate(const Module& m) {
  const std::int64_t g = attr_int(m, "num_groups"), c = attr_int(m, "num_channels");
  if (g <= 0 || c % g != 0) bad_field(m, "attribute 'num_channels'", "must be divisible by num_groups");
  if (attr_bool(m, "affine")) {
    check_tensor(m, m.find_parameter("weight"), "weight", Shape{c}, true, false);
    check_tensor(m, m.find_parameter("bias"), "bias", Shape{c}, true, false);
  }
}

// Dropout / Dropout2d(p, inplace)
void dropout_init(Module& m, std::span<const Value> args) {
  const double p = args[0].to_double();
  if (!(p >= 0.0 && p <= 1.0)) {
    throw ValueError(m.kind() + ": dropout probability has to be between 0 and 1, but got " + python_float_repr(p));
  }
  m.set_attr("p", args[0]);
  m.set_attr("inplace", args[1]);
}

// Embedding(num_embeddings, embedding_dim, padding_idx, max_norm, norm_type, scale_grad_by_freq,
// sparse): a negative padding_idx counts from the end, as PyTorch stores it.
void embedding_init(Module& m, std::span<const Value> args) {
  const std::int64_t n = args[0].to_int(), d = args[1].to_int();
  if (n < 0 || d < 0) throw ValueError("Embedding: num_embeddings and embedding_dim must be >= 0");
  Value padding = args[2];
  if (!padding.is_none()) {
    std::int64_t p = padding.to_int();
    if (p >= n || p < -n) throw ValueError("Embedding: Padding_idx must be within num_embeddings");
    if (p < 0) p += n;
    padding = Value(p);
  }
  m.set_attr("num_embeddings", args[0]);
  m.set_attr("embedding_dim", args[1]);
  m.set_attr("padding_idx", padding);
  m.set_attr("max_norm", args[3]);
  m.set_attr("norm_type", Value(args[4].to_double()));
  m.set_attr("scale_grad_by_freq", args[5]);
  m.set_attr("sparse", args[6]);
  m.register_parameter("weight", Tensor::zeros(Shape{n, d}));
}
std::string embedding_repr(const Module& m) {
  std::string s = py_str(need_attr(m, "num_embeddings")) + ", " + py_str(need_attr(m, "embedding_dim"));
  if (const Value* p = m.find_attr("padding_idx"); p && !p->is_none()) s += ", padding_idx=" + py_str(*p);
  if (const Value* p = m.find_attr("max_norm"); p && !p->is_none()) s += ", max_norm=" + py_str(*p);
  if (attr_number(m, "norm_type") != 2.0) s += ", norm_type=" + py_str(need_attr(m, "norm_type"));
  if (attr_bool(m, "scale_grad_by_freq")) s += ", scale_grad_by_freq=True";
  if (attr_bool(m, "sparse")) s += ", sparse=True";
  return s;
}
void embedding_validate(const Module& m) {
  const std::int64_t n = attr_int(m, "num_embeddings"), d = attr_int(m, "embedding_dim");
  if (n < 0 || d < 0) bad_field(m, "attribute 'num_embeddings'", "and 'embedding_dim' must be >= 0");
  check_tensor(m, m.find_parameter("weight"), "weight", Shape{n, d}, true, false);
}

// Upsample(size, scale_factor, mode, align_corners, recompute_scale_factor): PyTorch keeps
// scale_factor as float(s).
Value float_scale(const Value& v) {
  if (v.is_none()) return v;
  if (v.kind() == Value::Kind::Tuple || v.kind() == Value::Kind::List) {
    Tuple t;
    for (const Value& e : v.items()) t.items.emplace_back(e.to_double());
    return Value(std::move(t));
  }
  const double d = v.to_double();
  return d == 0.0 ? Value() : Value(d);
}
void set_upsample(Module& m, const char* name, const Value& size, const Value& scale, const Value& mode,
                  const Value& align_corners, const Value& recompute) {
  m.set_attr("name", Value(std::string(name)));
  m.set_attr("size", size);
  m.set_attr("scale_factor", float_scale(scale));
  m.set_attr("mode", mode);
  m.set_attr("align_corners", align_corners);
  m.set_attr("recompute_scale_factor", recompute);
}
void upsample_init(Module& m, std::span<const Value> args) {
  set_upsample(m, "Upsample", args[0], args[1], args[2], args[3], args[4]);
}
void upsampling_nearest2d_init(Module& m, std::span<const Value> args) {
  set_upsample(m, "UpsamplingNearest2d", args[0], args[1], Value(std::string("nearest")), Value(), Value());
}
// Upsample.extra_repr: scale_factor (or size), then mode as str().
std::string upsample_repr(const Module& m) {
  const Value& scale = need_attr(m, "scale_factor");
  std::string s = !scale.is_none() ? "scale_factor=" + python_repr(scale) : "size=" + python_repr(need_attr(m, "size"));
  return s + ", mode=" + py_str(need_attr(m, "mode"));
}

// ConstantPad2d(padding, value) / ZeroPad2d(padding): padding as PyTorch's _quadruple.
Value quadruple(const Value& v, const char* kind) {
  if (v.is_int()) return Value(Tuple{{v, v, v, v}});
  if ((v.kind() == Value::Kind::Tuple || v.kind() == Value::Kind::List) && v.items().size() == 4 &&
      std::all_of(v.items().begin(), v.items().end(), [](const Value& e) { return e.is_int(); })) {
    return Value(Tuple{v.items()});
  }
  throw ValueError(std::string(kind) + ": padding must be an int or a tuple of 4 ints, got " + python_repr(v));
}
void constant_pad2d_init(Module& m, std::span<const Value> args) {
  m.set_attr("value", Value(args[1].to_double()));
  m.set_attr("padding", quadruple(args[0], "ConstantPad2d"));
}
void zero_pad2d_init(Module& m, std::span<const Value> args) {
  m.set_attr("value", Value(0.0));
  m.set_attr("padding", quadruple(args[0], "ZeroPad2d"));
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
