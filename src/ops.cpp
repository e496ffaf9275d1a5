#include "fxpack/ops.hpp"

#include <algorithm>
#include <cctype>
#include <deque>
#include <unordered_map>

#include "fxpack/detail/string_hash.hpp"
#include "ops/op_table.hpp"

namespace fxpack {

const char* purity_name(Purity p) {
  switch (p) {
    case Purity::Pure: return "pure";
    case Purity::View: return "view";
    case Purity::InPlace: return "inplace";
    case Purity::Nondeterministic: return "nondeterministic";
    case Purity::SideEffect: return "side_effect";
  }
  return "?";
}

const char* promotion_name(Promotion p) {
  switch (p) {
    case Promotion::Promote: return "promote";
    case Promotion::PromoteFloat: return "promote_float";
    case Promotion::Bool: return "bool";
    case Promotion::Keep: return "keep";
    case Promotion::Index: return "index";
    case Promotion::Custom: return "custom";
  }
  return "?";
}

// ---- Argument checks ------------------------------------------------------------------------

namespace {

bool is_number(const Value& v) { return v.is_int() || v.is_double() || v.kind() == Value::Kind::Bool; }

bool zero_dim(const Value& v) { return v.is_tensor() && v.tensor().defined() && v.tensor().dim() == 0; }

bool accepts(ArgType t, const Value& v, bool numbers_as_tensors) {
  switch (t) {
    case ArgType::Tensor: return v.is_tensor() || (numbers_as_tensors && is_number(v));
    case ArgType::Scalar: return is_number(v) || zero_dim(v);
    case ArgType::Int:
      return v.is_int() || (zero_dim(v) && !is_floating(v.tensor().dtype()) && v.tensor().dtype() != DType::Bool);
    case ArgType::Float: return is_number(v) || zero_dim(v);
    case ArgType::Bool: return v.kind() == Value::Kind::Bool;
    case ArgType::Str: return v.kind() == Value::Kind::String;
    case ArgType::ScalarType: return v.kind() == Value::Kind::DType;
    case ArgType::Layout: return v.kind() == Value::Kind::Layout;
    case ArgType::Device: return v.kind() == Value::Kind::Device || v.kind() == Value::Kind::String;
    case ArgType::MemoryFormat: return v.kind() == Value::Kind::MemoryFormat;
    case ArgType::Any: return true;
    case ArgType::Callable:
      return v.kind() == Value::Kind::String && OpRegistry::global().function(v.str()) != nullptr;
  }
  return false;
}

const char* describe_base(ArgType t, bool plural) {
  switch (t) {
    case ArgType::Tensor: return plural ? "Tensors" : "a Tensor";
    case ArgType::Scalar: return plural ? "numbers" : "a number";
    case ArgType::Int: return plural ? "ints" : "an int";
    case ArgType::Float: return plural ? "floats" : "a float";
    case ArgType::Bool: return plural ? "bools" : "a bool";
    case ArgType::Str: return plural ? "strs" : "a str";
    case ArgType::ScalarType: return plural ? "dtypes" : "a dtype";
    case ArgType::Layout: return plural ? "layouts" : "a layout";
    case ArgType::Device: return plural ? "devices" : "a device";
    case ArgType::MemoryFormat: return plural ? "memory formats" : "a memory format";
    case ArgType::Any: return plural ? "values" : "a value";
    case ArgType::Callable: return plural ? "names of registered functions" : "the name of a registered function";
  }
  return "?";
}

std::string describe(const SchemaType& t, bool numbers_as_tensors) {
  std::string out;
  if (t.list) {
    out = std::string("a list or tuple of ") + describe_base(t.base, true);
    if (t.base == ArgType::Int) out = "an int or " + out;
  } else {
    out = describe_base(t.base, false);
    if (t.base == ArgType::Tensor && numbers_as_tensors) out += " or a number";
  }
  if (t.optional) out += " or None";
  return out;
}

// A 0-dim tensor where an int or float is expected: its value.
Value scalar_of(const Value& v, ArgType t) {
  if (!v.is_tensor()) return v;
  const Tensor& x = v.tensor();
  if (t == ArgType::Int) return Value(static_cast<std::int64_t>(x.item()));
  return Value(x.item());
}

[[noreturn]] void bad_argument(const OpDef& op, const Param& p, const Value& v, const std::string& detail = "") {
  const bool nat = op.info && op.info->numbers_as_tensors;
  throw OpError(op.name + ": argument '" + p.name + "' must be " + describe(p.type, nat) + ", got " +
                (detail.empty() ? std::string(kind_name(v.kind())) : detail));
}

}  // namespace

Value check_argument(const OpDef& op, const Param& p, Value v) {
  const SchemaType& t = p.type;
  if (!t.list && (t.base == ArgType::Any || (t.base == ArgType::Tensor && v.is_tensor()))) return v;
  if (v.contains_node()) return v;  // checked when it has a value
  if (v.is_none()) {
    if (t.optional) return v;
    bad_argument(op, p, v);
  }
  const bool nat = op.info && op.info->numbers_as_tensors;
  if (t.list) {
    if (t.base == ArgType::Int && v.is_int()) {
      // int[N] repeats one int N times; int[] takes it as a list of one (what the varargs
      // rule gives x.view(n) when n is known only when the plan runs).
      List l;
      for (std::int32_t i = 0; i < std::max<std::int32_t>(t.size, 1); ++i) l.items.push_back(v);
      return Value(std::move(l));
    }
    if (v.kind() != Value::Kind::List && v.kind() != Value::Kind::Tuple) bad_argument(op, p, v);
    List out;
    out.items.reserve(v.items().size());
    for (const Value& item : v.items()) {
      if (item.is_none() && t.element_optional) {
        out.items.push_back(item);
        continue;
      }
      if (!accepts(t.base, item, nat)) {
        bad_argument(op, p, v, std::string("a ") + kind_name(v.kind()) + " holding " + kind_name(item.kind()));
      }
      if (t.base == ArgType::Int) out.items.push_back(scalar_of(item, ArgType::Int));
      else if (t.base == ArgType::Float) out.items.push_back(Value(scalar_of(item, ArgType::Float).to_double()));
      else out.items.push_back(item);
    }
    if (t.base == ArgType::Tensor) return v;  // Tensor lists stay as given
    return Value(std::move(out));
  }
  if (!accepts(t.base, v, nat)) bad_argument(op, p, v);
  if (t.base == ArgType::Int) return scalar_of(v, ArgType::Int);
  if (t.base == ArgType::Float) return Value(scalar_of(v, ArgType::Float).to_double());
  return v;
}

std::vector<Value> bind_arguments(const OpDef& op, std::span<const Value> args, const Dict& kwargs) {
  const auto& params = op.params;
  if (params.size() > 64) throw OpError(op.name + ": more than 64 parameters");
  std::vector<Value> bound(params.size());
  std::uint64_t filled = 0;  // bit i: parameter i has a value from the call

  // The positional parameters are a prefix: keyword-only ones follow `*`, and an operator
  // form's fixed ones follow its operands.
  std::size_t positional = 0;
  while (positional < params.size() && !params[positional].keyword_only && !params[positional].fixed) ++positional;

  // PyTorch's varargs rule: a form whose only positional parameter (after a method's
  // receiver) is an int list takes the ints one by one (x.view(2, 3)): several positionals,
  // or one int (a Node that is one int is taken as a list of one when it runs).
  const std::size_t receiver = op.form == OpForm::Method ? 1 : 0;
  std::vector<Value> collected;
  if (positional == receiver + 1 && args.size() > receiver && (args.size() > receiver + 1 || args[receiver].is_int()) &&
      params[receiver].type.list && params[receiver].type.base == ArgType::Int) {
    const auto first = args.begin() + static_cast<std::ptrdiff_t>(receiver);
    collected.assign(args.begin(), first);
    collected.emplace_back(List{{first, args.end()}});
    args = collected;
  }
  // Python's *args: a python function whose last positional parameter is a Tensor list
  // (torch.functional.einsum(equation, *operands)) takes the tensors after the other
  // positionals one by one; one list or tuple there is the list itself, as einsum takes it.
  const bool tensor_varargs = op.info && !op.info->aten && positional > 0 && params[positional - 1].type.list &&
                              params[positional - 1].type.base == ArgType::Tensor;
  if (tensor_varargs && args.size() >= positional &&
      (args.size() > positional || (args.back().kind() != Value::Kind::List && args.back().kind() != Value::Kind::Tuple))) {
    const auto first = args.begin() + static_cast<std::ptrdiff_t>(positional - 1);
    collected.assign(args.begin(), first);
    collected.emplace_back(List{{first, args.end()}});
    args = collected;
  }

  if (args.size() > positional) {
    throw OpError(op.name + ": takes " + std::to_string(positional) + " positional arguments but " +
                  std::to_string(args.size()) + " were given");
  }
  for (std::size_t i = 0; i < args.size(); ++i) {
    bound[i] = args[i];
    filled |= std::uint64_t{1} << i;
  }
  for (const auto& kv : kwargs.items) {
    const std::string& key = kv.first;  // no structured binding: clang 14 cannot capture one
    const Value& value = kv.second;
    auto it = std::find_if(params.begin(), params.end(), [&](const Param& p) { return p.name == key && !p.fixed; });
    if (it == params.end()) throw OpError(op.name + ": got an unexpected keyword argument '" + key + "'");
    auto idx = static_cast<std::size_t>(it - params.begin());
    if (filled >> idx & 1) throw OpError(op.name + ": got multiple values for argument '" + key + "'");
    bound[idx] = value;
    filled |= std::uint64_t{1} << idx;
  }
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (filled >> i & 1) {
      bound[i] = check_argument(op, params[i], std::move(bound[i]));
      continue;
    }
    if (params[i].required) throw OpError(op.name + ": missing required argument '" + params[i].name + "'");
    bound[i] = params[i].default_value;
  }
  return bound;
}

namespace {

std::string given(std::span<const Value> args, const Dict& kwargs) {
  std::string out = "(";
  bool first = true;
  for (const Value& a : args) {
    if (!first) out += ", ";
    first = false;
    out += kind_name(a.kind());
  }
  for (const auto& [k, v] : kwargs.items) {
    if (!first) out += ", ";
    first = false;
    out += k + "=" + kind_name(v.kind());
  }
  return out + ")";
}

}  // namespace

BoundCall bind_overload(std::span<const OpDef* const> overloads, std::span<const Value> args, const Dict& kwargs) {
  if (overloads.empty()) throw OpError("no overloads to bind to");
  if (overloads.size() == 1) return BoundCall{overloads[0], bind_arguments(*overloads[0], args, kwargs)};
  for (const OpDef* op : overloads) {
    try {
      return BoundCall{op, bind_arguments(*op, args, kwargs)};
    } catch (const OpError&) {
      // the next overload
    }
  }
  std::string msg = overloads[0]->name + ": received an invalid combination of arguments - got " + given(args, kwargs) +
                    ", but expected one of: ";
  for (std::size_t i = 0; i < overloads.size(); ++i) {
    if (i) msg += "; ";
    msg += OpSchema::params_str(overloads[i]->params);
  }
  throw OpError(msg);
}

// ---- The registry ---------------------------------------------------------------------------

struct OpRegistry::Impl {
  template <class T>
  using Table = std::unordered_map<std::string, T, detail::StringHash, std::equal_to<>>;

  std::deque<OpInfo> infos;
  std::deque<OpDef> defs;
  std::deque<ElementwiseFunctor> functors;
  std::deque<ModuleKind> kinds;
  std::vector<OpInfo*> table_infos;
  std::vector<const ModuleKind*> table_kinds;
  Table<std::vector<const OpDef*>> functions;
  Table<std::vector<const OpDef*>> methods;
  Table<const ModuleKind*> module_kinds;
  Table<const ModuleKind*> module_classes;
  Table<const ElementwiseFunctor*> elementwise;
  // Where a name came from, for duplicate messages.
  Table<std::string> origin;

  void add_form(Table<std::vector<const OpDef*>>& table, const char* what, OpDef def, const std::string& source,
                bool overloadable) {
    const OpDef* d = &defs.emplace_back(std::move(def));
    auto& set = table[d->target];
    if (!set.empty() && !overloadable) {
      throw ValueError(std::string(what) + " '" + d->target + "' is already registered" +
                  (origin[d->target].empty() ? "" : " (by " + origin[d->target] + ")"));
    }
    if (!set.empty() && set.front()->info->source.substr(0, set.front()->info->source.rfind(':')) !=
                            source.substr(0, source.rfind(':'))) {
      throw ValueError(source + ": " + what + " '" + d->target + "' has overloads in another file (" +
                  set.front()->info->source + "); keep an op's overloads together");
    }
    if (set.empty()) origin[d->target] = source;
    set.push_back(d);
  }

  void register_op(const op_table::OpEntry& e);
  void register_module(const op_table::ModuleEntry& e);
  void resolve_make_fx(const op_table::OpEntry& e, OpInfo& info);
};

namespace {

constexpr const char* kAtenPrefix = "torch.ops.aten.";

std::string display_name(const OpSchema& s, bool aten) {
  if (aten) return s.name;
  auto dot = s.name.rfind('.');
  return s.name.substr(dot + 1);
}

const OpDef* aten_def(const OpRegistry::Impl& impl, const std::string& overload, const std::string& source,
                      const char* key) {
  std::string target = kAtenPrefix + overload;
  auto it = impl.functions.find(target);
  if (it == impl.functions.end()) throw LookupError(source + ": " + key + ": no entry declares the aten overload '" + overload + "'");
  return it->second.front();
}

}  // namespace

void OpRegistry::Impl::register_op(const op_table::OpEntry& e) {
  OpInfo& info = infos.emplace_back();
  try {
    info.schema = parse_schema(e.schema, e.aten);
  } catch (const Error& err) {
    rethrow_with_context(err, e.source);
  }
  info.text = e.schema;
  info.source = e.source;
  info.aten = e.aten;
  info.purity = e.purity ? *e.purity
                         : info.schema.inplace ? Purity::InPlace
                                               : info.schema.view ? Purity::View : Purity::Pure;
  info.promotion = e.promotion;
  info.fusion = e.fusion;
  info.numbers_as_tensors = e.numbers_as_tensors;
  info.saves_result = e.saves_result;
  info.metadata = e.metadata;
  info.assertion = e.assertion;
  info.examples = e.examples;
  info.make_fx = e.make_fx;
  info.reflected = e.reflected;
  table_infos.push_back(&info);

  const std::string name = display_name(info.schema, e.aten);
  auto make = [&](OpForm form, std::string target, std::vector<Param> params) {
    OpDef d;
    d.name = name;
    d.form = form;
    d.target = std::move(target);
    d.params = std::move(params);
    d.kernel = e.kernel;
    d.info = &info;
    return d;
  };

  if (e.aten) {
    std::string target = kAtenPrefix + info.schema.name + "." + info.schema.overload;
    add_form(functions, "function", make(OpForm::Aten, target, info.schema.params), e.source, false);
    info.canonical = functions[target].back();
  } else if (info.schema.name.starts_with("Tensor.")) {
    std::string method = info.schema.name.substr(7);
    add_form(methods, "method", make(OpForm::Python, method, info.schema.params), e.source, true);
    info.canonical = methods[method].back();
  } else {
    add_form(functions, "function", make(OpForm::Python, info.schema.name, info.schema.params), e.source, true);
    info.canonical = functions[info.schema.name].back();
  }
  for (const std::string& f : e.functions) {
    std::vector<Param> params = info.schema.params;
    if (!params.empty() && params[0].name == "self") params[0].name = "input";
    add_form(functions, "function", make(OpForm::Function, f, std::move(params)), e.source, true);
  }
  for (const std::string& m : e.methods) add_form(methods, "method", make(OpForm::Method, m, info.schema.params), e.source, true);
  if (!e.op.empty()) {
    std::vector<Param> params = info.schema.params;
    const std::size_t operands = e.op_operands;
    for (std::size_t i = 0; i < params.size(); ++i) {
      if (i < operands) {
        params[i] = Param{.name = i == 0 ? "a" : "b"};
      } else {
        if (params[i].required) throw ValueError(e.source + ": operator " + e.op + ": parameter '" + params[i].name + "' has no default");
        params[i].fixed = true;
      }
    }
    add_form(functions, "function", make(OpForm::Operator, e.op, std::move(params)), e.source, false);
  }
  if (e.functor) {
    ElementwiseFunctor& f = functors.emplace_back(*e.functor);
    f.name = info.schema.name;
    if (f.name.size() > 1 && f.name.back() == '_') f.name.pop_back();  // relu_ fuses as relu
    info.functor = &f;
    if (e.fusion != Fusion::None) {
      auto [it, inserted] = elementwise.try_emplace(f.name, &f);
      if (!inserted && (it->second->f32 != f.f32 || it->second->binary != f.binary)) {
        throw ValueError(e.source + ": fused op '" + f.name + "' already names another functor");
      }
    }
  }
}

void OpRegistry::Impl::resolve_make_fx(const op_table::OpEntry& e, OpInfo& info) {
  if (!e.make_fx_aten.empty()) info.make_fx_aten = aten_def(*this, e.make_fx_aten, e.source, "make_fx");
  else if (e.aten && !e.make_fx) info.make_fx_aten = info.canonical;
  if (!e.reflected_aten.empty()) info.reflected_aten = aten_def(*this, e.reflected_aten, e.source, "reflected");
}

namespace {

// `target(arg, name=arg)`: an argument is an input, attribute or tensor name, or a literal.
CallTemplate parse_call_template(const std::string& text, const ModuleKind& kind) {
  auto fail = [&](const std::string& what) -> void {
    throw ValueError(kind.source + ": call template '" + text + "': " + what);
  };
  CallTemplate out;
  auto open = text.find('(');
  if (open == std::string::npos || text.back() != ')') fail("expected target(arguments)");
  out.target = text.substr(0, open);
  // Parse the arguments with the schema literal grammar, one at a time, by wrapping each
  // in a parameter-list default: split at top-level commas.
  std::string body = text.substr(open + 1, text.size() - open - 2);
  std::vector<std::string> parts;
  int depth = 0;
  char quote = 0;
  std::string cur;
  for (char c : body) {
    if (quote) {
      cur += c;
      if (c == quote) quote = 0;
      continue;
    }
    if (c == '\'' || c == '"') quote = c;
    if (c == '(' || c == '[') ++depth;
    if (c == ')' || c == ']') --depth;
    if (c == ',' && depth == 0) {
      parts.push_back(cur);
      cur.clear();
      continue;
    }
    cur += c;
  }
  if (!cur.empty() || !parts.empty()) parts.push_back(cur);
  auto trim = [](std::string s) {
    s.erase(0, s.find_first_not_of(" \t"));
    s.erase(s.find_last_not_of(" \t") + 1);
    return s;
  };
  bool keywords = false;
  for (std::string part : parts) {
    part = trim(part);
    CallTemplate::Arg a;
    auto eq = part.find('=');
    if (eq != std::string::npos && part.find_first_of("'\"") > eq) {
      a.keyword = trim(part.substr(0, eq));
      part = trim(part.substr(eq + 1));
      keywords = true;
    } else if (keywords) {
      fail("a positional argument after a keyword argument");
    }
    bool ident = !part.empty() && (std::isalpha(static_cast<unsigned char>(part[0])) || part[0] == '_') &&
                 part.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") ==
                     std::string::npos &&
                 part != "None" && part != "True" && part != "False";
    if (ident) {
      a.name = part;
      auto in = std::find(kind.inputs.begin(), kind.inputs.end(), part);
      bool attr = std::any_of(kind.attributes.begin(), kind.attributes.end(), [&](const Param& p) { return p.name == part; });
      auto is_slot = [&](const std::vector<ModuleTensorSlot>& v) {
        return std::any_of(v.begin(), v.end(), [&](const ModuleTensorSlot& s) { return s.name == part; });
      };
      if (in != kind.inputs.end()) {
        a.source = CallTemplate::Source::Input;
        a.index = static_cast<std::size_t>(in - kind.inputs.begin());
      } else if (attr) {
        a.source = CallTemplate::Source::Attribute;
      } else if (is_slot(kind.parameters) || is_slot(kind.buffers)) {
        a.source = CallTemplate::Source::Tensor;
      } else {
        fail("'" + part + "' is not an input, attribute, parameter or buffer");
      }
    } else {
      a.source = CallTemplate::Source::Literal;
      a.literal = parse_params("(Any x=" + part + ")").at(0).default_value;
    }
    out.args.push_back(std::move(a));
  }
  return out;
}

std::vector<ModuleTensorSlot> slots(const std::vector<std::string>& names) {
  std::vector<ModuleTensorSlot> out;
  for (const std::string& n : names) {
    if (!n.empty() && n.back() == '?') out.push_back({n.substr(0, n.size() - 1), true});
    else out.push_back({n, false});
  }
  return out;
}

}  // namespace

void OpRegistry::Impl::register_module(const op_table::ModuleEntry& e) {
  ModuleKind k;
  k.name = e.name;
  k.classes = e.classes;
  try {
    k.constructor = parse_params(e.constructor.empty() ? "()" : e.constructor);
    k.attributes = parse_params(e.attributes.empty() ? "()" : e.attributes);
  } catch (const Error& err) {
    rethrow_with_context(err, e.source);
  }
  k.parameters = slots(e.parameters);
  k.buffers = slots(e.buffers);
  if (!e.inputs.empty()) k.inputs = e.inputs;
  if (!e.input_params.empty()) {
    try {
      k.input_params = parse_params(e.input_params);
    } catch (const Error& err) {
      rethrow_with_context(err, e.source + ": inputs");
    }
  }
  k.init = e.init;
  k.forward_fn = e.forward;
  k.make_fx = e.make_fx;
  k.extra_repr_format = e.extra_repr_format;
  k.extra_repr_fn = e.extra_repr;
  k.validate_fn = e.validate;
  k.private_attributes = e.private_attributes;
  k.container = e.container;
  k.source = e.source;
  k.examples = e.examples;
  if (!e.call.empty()) k.call = parse_call_template(e.call, k);
  const ModuleKind& kind = kinds.emplace_back(std::move(k));
  if (!module_kinds.try_emplace(kind.name, &kind).second) throw ValueError(e.source + ": module kind '" + kind.name + "' twice");
  for (const std::string& c : kind.classes)
    if (!module_classes.try_emplace(c, &kind).second) throw ValueError(e.source + ": class '" + c + "' twice");
  table_kinds.push_back(&kind);
}

OpRegistry::OpRegistry() : impl_(std::make_unique<Impl>()) {}
OpRegistry::~OpRegistry() = default;

OpRegistry& OpRegistry::global() {
  static OpRegistry* registry = [] {
    auto* r = new OpRegistry;  // never destroyed: kernels may run during static teardown
    const auto families = op_table::families();
    for (const op_table::Family* f : families)
      for (const auto& e : f->ops) r->impl_->register_op(e);
    std::size_t i = 0;
    for (const op_table::Family* f : families)
      for (const auto& e : f->ops) r->impl_->resolve_make_fx(e, *r->impl_->table_infos[i++]);
    for (const op_table::Family* f : families)
      for (const auto& e : f->modules) r->impl_->register_module(e);
    return r;
  }();
  return *registry;
}

const OpDef& OpRegistry::add_function(std::string_view schema, KernelFn kernel) {
  std::lock_guard lock(mu_);
  OpInfo& info = impl_->infos.emplace_back();
  info.schema = parse_schema(schema, false);
  info.text = std::string(schema);
  OpDef d;
  d.name = display_name(info.schema, false);
  d.form = OpForm::Python;
  d.target = info.schema.name;
  d.params = info.schema.params;
  d.kernel = kernel;
  d.info = &info;
  if (d.target.starts_with("Tensor.")) throw ValueError("add_function: '" + d.target + "' names a method; register functions");
  if (impl_->functions.count(d.target)) throw ValueError("function '" + d.target + "' is already registered");
  impl_->add_form(impl_->functions, "function", std::move(d), "", false);
  info.canonical = impl_->functions[info.schema.name].back();
  return *info.canonical;
}

const ModuleKind& OpRegistry::add_module_kind(ModuleKind kind) {
  std::lock_guard lock(mu_);
  if (impl_->module_kinds.count(kind.name)) throw ValueError("module kind '" + kind.name + "' is already registered");
  for (const std::string& c : kind.classes)
    if (impl_->module_classes.count(c)) throw ValueError("module class '" + c + "' is already registered");
  const ModuleKind& k = impl_->kinds.emplace_back(std::move(kind));
  impl_->module_kinds.emplace(k.name, &k);
  for (const std::string& c : k.classes) impl_->module_classes.emplace(c, &k);
  return k;
}

namespace {
template <class Table>
std::span<const OpDef* const> overloads_in(const Table& t, std::string_view name) {
  auto it = t.find(name);
  if (it == t.end()) return {};
  return it->second;
}
template <class Table>
std::vector<std::string> sorted_keys(const Table& t) {
  std::vector<std::string> out;
  out.reserve(t.size());
  for (const auto& [k, v] : t) out.push_back(k);
  std::sort(out.begin(), out.end());
  return out;
}
template <class T, class Table>
T find_in(const Table& t, std::string_view name) {
  auto it = t.find(name);
  return it == t.end() ? nullptr : it->second;
}
}  // namespace

const OpDef* OpRegistry::function(std::string_view target) const {
  auto s = function_overloads(target);
  return s.empty() ? nullptr : s.front();
}
const OpDef* OpRegistry::method(std::string_view method) const {
  auto s = method_overloads(method);
  return s.empty() ? nullptr : s.front();
}
std::span<const OpDef* const> OpRegistry::function_overloads(std::string_view target) const {
  std::lock_guard lock(mu_);
  return overloads_in(impl_->functions, target);
}
std::span<const OpDef* const> OpRegistry::method_overloads(std::string_view method) const {
  std::lock_guard lock(mu_);
  return overloads_in(impl_->methods, method);
}
const ModuleKind* OpRegistry::module_kind(std::string_view kind) const {
  std::lock_guard lock(mu_);
  return find_in<const ModuleKind*>(impl_->module_kinds, kind);
}
const ModuleKind* OpRegistry::module_class(std::string_view torch_class) const {
  std::lock_guard lock(mu_);
  return find_in<const ModuleKind*>(impl_->module_classes, torch_class);
}
const ElementwiseFunctor* OpRegistry::elementwise(std::string_view name) const {
  std::lock_guard lock(mu_);
  return find_in<const ElementwiseFunctor*>(impl_->elementwise, name);
}
std::vector<std::string> OpRegistry::function_targets() const {
  std::lock_guard lock(mu_);
  return sorted_keys(impl_->functions);
}
std::vector<std::string> OpRegistry::method_names() const {
  std::lock_guard lock(mu_);
  return sorted_keys(impl_->methods);
}
std::vector<std::string> OpRegistry::module_kinds() const {
  std::lock_guard lock(mu_);
  return sorted_keys(impl_->module_kinds);
}
std::vector<const OpInfo*> OpRegistry::op_entries() const {
  std::lock_guard lock(mu_);
  return {impl_->table_infos.begin(), impl_->table_infos.end()};
}
std::vector<const ModuleKind*> OpRegistry::module_kind_entries() const {
  std::lock_guard lock(mu_);
  return impl_->table_kinds;
}

// ---- Dispatch -------------------------------------------------------------------------------

namespace {
thread_local CallRecorder* t_recorder = nullptr;

bool any_node(std::span<const Value> args, const Dict& kwargs) {
  for (const Value& v : args)
    if (v.contains_node()) return true;
  for (const auto& [k, v] : kwargs.items)
    if (v.contains_node()) return true;
  return false;
}
}  // namespace

CallRecorder* CallRecorder::current() { return t_recorder; }
CallRecorder* CallRecorder::exchange_current(CallRecorder* r) { return std::exchange(t_recorder, r); }

namespace {
// Records the call when an argument is a graph value; otherwise binds it to one of the
// function's or method's overloads and runs that kernel.
Value record_or_run(Op op, const std::string& name, std::vector<Value> args, Dict kwargs) {
  const bool method = op == Op::CallMethod;
  if (any_node(args, kwargs)) {
    CallRecorder* rec = CallRecorder::current();
    if (!rec)
      throw GraphError((method ? "method '" : "call of '") + name + "' on a Node reference outside a trace");
    return rec->record(op, name, std::move(args), std::move(kwargs));
  }
  const OpRegistry& registry = OpRegistry::global();
  auto overloads = method ? registry.method_overloads(name) : registry.function_overloads(name);
  if (overloads.empty())
    throw OpError(std::string("no kernel is registered for ") + (method ? "method '" : "function '") + name + "'");
  BoundCall b = bind_overload(overloads, args, kwargs);
  return b.op->kernel(b.args);
}
}  // namespace

Value call_function(const std::string& target, std::vector<Value> args, Dict kwargs) {
  return record_or_run(Op::CallFunction, target, std::move(args), std::move(kwargs));
}

Value call_method(const std::string& method, std::vector<Value> args, Dict kwargs) {
  if (args.empty()) throw OpError("method '" + method + "' called without a receiver");
  return record_or_run(Op::CallMethod, method, std::move(args), std::move(kwargs));
}

}  // namespace fxpack
