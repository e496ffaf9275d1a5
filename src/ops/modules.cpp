// Built-in module kinds (Linear, ReLU, Conv2d, BatchNorm2d, MaxPool2d, AdaptiveAvgPool2d,
// Sequential): the nn:: factories, and for each kind its forward, extra_repr (PyTorch's
// strings) and validate (checks a module rebuilt from an archive).
#include <cmath>

#include "aten.hpp"
#include "builtin_ops.hpp"
#include "fxpack/module.hpp"
#include "kernels.hpp"
#include "util.hpp"

namespace fxpack {

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

Value linear_forward(const Module& m, std::span<const Value> args) {
  const Tensor& x = single_input(m, args);
  return Value(ops::linear(x, m.parameter("weight"), m.find_parameter("bias")));
}
std::string linear_repr(const Module& m) {
  return "in_features=" + py_str(need_attr(m, "in_features")) +
         ", out_features=" + py_str(need_attr(m, "out_features")) +
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

Value relu_forward(const Module& m, std::span<const Value> args) {
  return Value(ops::relu(single_input(m, args)));
}
std::string relu_repr(const Module& m) {
  const Value* v = m.find_attr("inplace");
  const bool inplace = v && v->kind() == Value::Kind::Bool && std::get<bool>(v->variant());
  return inplace ? "inplace=True" : "";
}
void relu_validate(const Module& m) { (void)attr_bool(m, "inplace"); }

// ---- Conv2d ---------------------------------------------------------------------------

Value conv2d_forward(const Module& m, std::span<const Value> args) {
  const Tensor& x = single_input(m, args);
  const Tensor& w = m.parameter("weight");
  const Value& mode = m.attr("padding_mode");
  if (const auto* s = std::get_if<std::string>(&mode.variant()); !s || *s != "zeros") {
    throw OpError("Conv2d: padding_mode " + python_repr(mode) + " is not supported (only 'zeros')");
  }
  if (w.dim() != 4) throw OpError("Conv2d: weight must be 4-D, got shape " + w.shape().to_string());
  const auto opts = ops::conv2d_options(m.attr("stride"), m.attr("padding"), m.attr("dilation"),
                                        attr_int(m, "groups"),
                                        w.shape()[2], w.shape()[3]);
  return Value(ops::conv2d(x, w, m.find_parameter("bias"), opts));
}
std::string conv2d_repr(const Module& m) {
  std::string s = py_str(need_attr(m, "in_channels")) + ", " + py_str(need_attr(m, "out_channels")) +
                  ", kernel_size=" + py_str(need_attr(m, "kernel_size")) +
                  ", stride=" + py_str(need_attr(m, "stride"));
  const Value& padding = need_attr(m, "padding");
  if (!all_equal(padding, 0)) s += ", padding=" + py_str(padding);
  const Value& dilation = need_attr(m, "dilation");
  if (!all_equal(dilation, 1)) s += ", dilation=" + py_str(dilation);
  if (const Value* op = m.find_attr("output_padding"); op && !all_equal(*op, 0)) {
    s += ", output_padding=" + py_str(*op);
  }
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
  if (m.find_attr("output_padding")) check_int_or_tuple(m, "output_padding", 2, 0, true);
  if (const Value* t = m.find_attr("transposed")) {
    if (t->kind() != Value::Kind::Bool || std::get<bool>(t->variant())) {
      bad_field(m, "attribute 'transposed'", "must be False");
    }
  }
  const Value& mode = need_attr(m, "padding_mode");
  if (const auto* s = std::get_if<std::string>(&mode.variant()); !s || *s != "zeros") {
    bad_field(m, "attribute 'padding_mode'", "must be 'zeros', got " + python_repr(mode));
  }
  const auto& ks = need_attr(m, "kernel_size").items();
  check_tensor(m, m.find_parameter("weight"), "weight",
               Shape{out, in / groups, ks[0].to_int(), ks[1].to_int()}, true, false);
  if (const Tensor* b = m.find_parameter("bias")) check_tensor(m, b, "bias", Shape{out}, true, false);
}

// ---- BatchNorm2d ----------------------------------------------------------------------

Value batchnorm_forward(const Module& m, std::span<const Value> args) {
  const Tensor& x = single_input(m, args);
  if (x.dim() != 4) {
    throw OpError("BatchNorm2d: expected 4D input (got " + std::to_string(x.dim()) + "D input)");
  }
  const std::int64_t c = attr_int(m, "num_features");
  if (x.shape()[1] != c) {
    throw OpError("BatchNorm2d: input shape " + x.shape().to_string() + " has " +
                  std::to_string(x.shape()[1]) + " channels, expected num_features=" + std::to_string(c));
  }
  const Tensor* rm = m.find_buffer("running_mean");
  const Tensor* rv = m.find_buffer("running_var");
  return Value(ops::batch_norm(x, m.find_parameter("weight"), m.find_parameter("bias"), rm, rv,
                               rm == nullptr, attr_number(m, "eps")));
}
std::string batchnorm_repr(const Module& m) {
  return py_str(need_attr(m, "num_features")) + ", eps=" + py_str(need_attr(m, "eps")) +
         ", momentum=" + py_str(need_attr(m, "momentum")) + ", affine=" + py_str(need_attr(m, "affine")) +
         ", track_running_stats=" + py_str(need_attr(m, "track_running_stats"));
}
void batchnorm_validate(const Module& m) {
  const std::int64_t c = attr_int(m, "num_features");
  if (c <= 0) bad_field(m, "attribute 'num_features'", "must be > 0");
  const double eps = attr_number(m, "eps");
  if (!(eps >= 0.0)) bad_field(m, "attribute 'eps'", "must be >= 0");
  const Value& mom = need_attr(m, "momentum");
  if (!mom.is_none()) (void)attr_number(m, "momentum");
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

Value maxpool_forward(const Module& m, std::span<const Value> args) {
  const Tensor& x = single_input(m, args);
  const auto opts = ops::pool2d_options(m.attr("kernel_size"), m.attr("stride"), m.attr("padding"),
                                        m.attr("dilation"), attr_bool(m, "ceil_mode"), "MaxPool2d");
  const Value* ri = m.find_attr("return_indices");
  if (ri && ri->kind() == Value::Kind::Bool && std::get<bool>(ri->variant())) {
    auto [out, idx] = ops::max_pool2d_with_indices(x, opts);
    return Value(Tuple{{Value(std::move(out)), Value(std::move(idx))}});
  }
  return Value(ops::max_pool2d(x, opts));
}
std::string maxpool_repr(const Module& m) {
  return "kernel_size=" + py_str(need_attr(m, "kernel_size")) + ", stride=" + py_str(need_attr(m, "stride")) +
         ", padding=" + py_str(need_attr(m, "padding")) + ", dilation=" + py_str(need_attr(m, "dilation")) +
         ", ceil_mode=" + py_str(need_attr(m, "ceil_mode"));
}
void maxpool_validate(const Module& m) {
  check_int_or_tuple(m, "kernel_size", 2, 1, false);
  check_int_or_tuple(m, "stride", 2, 1, false);
  check_int_or_tuple(m, "padding", 2, 0, false);
  check_int_or_tuple(m, "dilation", 2, 1, false);
  (void)attr_bool(m, "ceil_mode");
  (void)attr_bool(m, "return_indices");
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
    if (items.size() != 2) {
      throw OpError(std::string(who) + ": output_size must have 2 entries, got " + python_repr(v));
    }
    return {one(items[0]), one(items[1])};
  }
  auto s = one(v);
  return {s, s};
}

Value adaptive_forward(const Module& m, std::span<const Value> args) {
  const Tensor& x = single_input(m, args);
  return Value(ops::adaptive_avg_pool2d(x, output_size_of(m.attr("output_size"), "AdaptiveAvgPool2d")));
}
std::string adaptive_repr(const Module& m) { return "output_size=" + py_str(need_attr(m, "output_size")); }
void adaptive_validate(const Module& m) {
  try {
    (void)output_size_of(need_attr(m, "output_size"), "AdaptiveAvgPool2d");
  } catch (const OpError& e) {
    throw FormatError(std::string(e.what()) + " (attribute 'output_size')");
  }
}

// ---- Sequential -----------------------------------------------------------------------

Value sequential_forward(const Module& m, std::span<const Value> args) {
  if (args.size() != 1) {
    throw OpError("Sequential: forward expects 1 input, got " + std::to_string(args.size()));
  }
  Value cur = args[0];
  for (const auto& [name, child] : m.children()) {
    cur = (*child)(std::vector<Value>{std::move(cur)});
  }
  return cur;
}
std::string sequential_repr(const Module&) { return ""; }
void sequential_validate(const Module&) {}

}  // namespace

// ---- factories ------------------------------------------------------------------------

namespace nn {

std::shared_ptr<Module> Linear(std::int64_t in_features, std::int64_t out_features, bool bias) {
  if (in_features < 0 || out_features < 0) {
    throw Error("Linear: in_features and out_features must be >= 0, got " + std::to_string(in_features) +
                " and " + std::to_string(out_features));
  }
  auto m = std::make_shared<Module>("Linear");
  m->set_attr("in_features", Value(in_features));
  m->set_attr("out_features", Value(out_features));
  m->register_parameter("weight", Tensor::zeros(Shape{out_features, in_features}));
  if (bias) m->register_parameter("bias", Tensor::zeros(Shape{out_features}));
  return m;
}

std::shared_ptr<Module> ReLU(bool inplace) {
  auto m = std::make_shared<Module>("ReLU");
  m->set_attr("inplace", Value(inplace));
  return m;
}

std::shared_ptr<Module> Conv2d(std::int64_t in_channels, std::int64_t out_channels, Value kernel_size,
                               Value stride, Value padding, Value dilation, std::int64_t groups, bool bias) {
  if (groups <= 0) throw Error("Conv2d: groups must be a positive integer");
  if (in_channels <= 0 || out_channels <= 0) throw Error("Conv2d: in_channels and out_channels must be positive");
  if (in_channels % groups != 0) throw Error("Conv2d: in_channels must be divisible by groups");
  if (out_channels % groups != 0) throw Error("Conv2d: out_channels must be divisible by groups");
  Value ks = pair_value(kernel_size, "Conv2d", "kernel_size");
  Value st = pair_value(stride, "Conv2d", "stride");
  Value dl = pair_value(dilation, "Conv2d", "dilation");
  Value pd;
  if (const auto* s = std::get_if<std::string>(&padding.variant())) {
    if (*s != "same" && *s != "valid") {
      throw Error("Conv2d: Invalid padding string '" + *s + "', should be one of {'valid', 'same'}");
    }
    if (*s == "same" && !all_equal(st, 1)) {
      throw Error("Conv2d: padding='same' is not supported for strided convolutions");
    }
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
  auto m = std::make_shared<Module>("Conv2d");
  m->set_attr("in_channels", Value(in_channels));
  m->set_attr("out_channels", Value(out_channels));
  m->set_attr("kernel_size", ks);
  m->set_attr("stride", st);
  m->set_attr("padding", pd);
  m->set_attr("dilation", dl);
  m->set_attr("transposed", Value(false));
  m->set_attr("output_padding", Value(Tuple{{Value(std::int64_t{0}), Value(std::int64_t{0})}}));
  m->set_attr("groups", Value(groups));
  m->set_attr("padding_mode", Value("zeros"));
  const auto& k = ks.items();
  m->register_parameter("weight", Tensor::zeros(Shape{out_channels, in_channels / groups, k[0].to_int(), k[1].to_int()}));
  if (bias) m->register_parameter("bias", Tensor::zeros(Shape{out_channels}));
  return m;
}

std::shared_ptr<Module> BatchNorm2d(std::int64_t num_features, double eps, double momentum, bool affine,
                                    bool track_running_stats) {
  if (num_features <= 0) throw Error("BatchNorm2d: num_features must be positive, got " + std::to_string(num_features));
  auto m = std::make_shared<Module>("BatchNorm2d");
  m->set_attr("num_features", Value(num_features));
  m->set_attr("eps", Value(eps));
  m->set_attr("momentum", Value(momentum));
  m->set_attr("affine", Value(affine));
  m->set_attr("track_running_stats", Value(track_running_stats));
  if (affine) {
    m->register_parameter("weight", Tensor::full(Shape{num_features}, 1.0));
    m->register_parameter("bias", Tensor::zeros(Shape{num_features}));
  }
  if (track_running_stats) {
    m->register_buffer("running_mean", Tensor::zeros(Shape{num_features}));
    m->register_buffer("running_var", Tensor::full(Shape{num_features}, 1.0));
    m->register_buffer("num_batches_tracked", Tensor::scalar(0.0, DType::Int64));
  }
  return m;
}

std::shared_ptr<Module> MaxPool2d(Value kernel_size, Value stride, Value padding, Value dilation, bool ceil_mode) {
  Value st = stride.is_none() ? kernel_size : stride;
  // Parse once to reject bad values early (the module keeps what it was given).
  try {
    (void)ops::pool2d_options(kernel_size, st, padding, dilation, ceil_mode, "MaxPool2d");
  } catch (const OpError& e) {
    throw Error(e.what());
  }
  auto m = std::make_shared<Module>("MaxPool2d");
  m->set_attr("kernel_size", kernel_size);
  m->set_attr("stride", st);
  m->set_attr("padding", padding);
  m->set_attr("dilation", dilation);
  m->set_attr("return_indices", Value(false));
  m->set_attr("ceil_mode", Value(ceil_mode));
  return m;
}

std::shared_ptr<Module> AdaptiveAvgPool2d(Value output_size) {
  try {
    (void)output_size_of(output_size, "AdaptiveAvgPool2d");
  } catch (const OpError& e) {
    throw Error(e.what());
  }
  auto m = std::make_shared<Module>("AdaptiveAvgPool2d");
  m->set_attr("output_size", output_size);
  return m;
}

std::shared_ptr<Module> Sequential(std::vector<std::shared_ptr<Module>> modules) {
  auto m = std::make_shared<Module>("Sequential");
  for (std::size_t i = 0; i < modules.size(); ++i) m->register_module(std::to_string(i), modules[i]);
  return m;
}

}  // namespace nn

namespace ops {

void register_module_kinds(OpRegistry& r) {
  r.add_module_kind(ModuleKind{"Linear", &linear_forward, &linear_repr, &linear_validate, false});
  r.add_module_kind(ModuleKind{"ReLU", &relu_forward, &relu_repr, &relu_validate, false});
  r.add_module_kind(ModuleKind{"Conv2d", &conv2d_forward, &conv2d_repr, &conv2d_validate, false});
  r.add_module_kind(ModuleKind{"BatchNorm2d", &batchnorm_forward, &batchnorm_repr, &batchnorm_validate, false});
  r.add_module_kind(ModuleKind{"MaxPool2d", &maxpool_forward, &maxpool_repr, &maxpool_validate, false});
  r.add_module_kind(ModuleKind{"AdaptiveAvgPool2d", &adaptive_forward, &adaptive_repr, &adaptive_validate, false});
  r.add_module_kind(ModuleKind{"Sequential", &sequential_forward, &sequential_repr, &sequential_validate, true});
}

void register_builtin_ops(OpRegistry& r) {
  register_elementwise_ops(r);
  register_reduce_ops(r);
  register_shape_ops(r);
  register_linalg_ops(r);
  register_nn_ops(r);
  register_module_kinds(r);
  register_aten_ops(r);
}

}  // namespace ops

}  // namespace fxpack
