#include "fxpack/module.hpp"

#include <algorithm>

#include "fxpack/ops.hpp"
#include "fxpack/tracer.hpp"

namespace fxpack {

namespace {
void check_member_name(const Module& m, const std::string& name) {
  if (name.empty() || name.find('.') != std::string::npos)
    throw ValueError("module " + m.kind() + ": invalid member name '" + name +
                "' (must be non-empty and contain no '.')");
}
template <class V>
void put(std::vector<std::pair<std::string, V>>& list, const std::string& name, V v) {
  for (auto& [k, x] : list)
    if (k == name) {
      x = std::move(v);
      return;
    }
  list.emplace_back(name, std::move(v));
}
template <class V>
const V* lookup(const std::vector<std::pair<std::string, V>>& list, std::string_view name) {
  for (const auto& [k, x] : list)
    if (k == name) return &x;
  return nullptr;
}
}  // namespace

Module::Module(std::string kind) : kind_(std::move(kind)) {}
Module::Module(const ModuleKind& kind) : kind_(kind.name), leaf_kind_(&kind) {}
Module::~Module() = default;

void Module::register_parameter(const std::string& name, Tensor t) {
  check_member_name(*this, name);
  put(params_, name, std::move(t));
}
void Module::register_buffer(const std::string& name, Tensor t) {
  check_member_name(*this, name);
  put(buffers_, name, std::move(t));
}
void Module::register_module(const std::string& name, std::shared_ptr<Module> m) {
  check_member_name(*this, name);
  if (!m) throw ValueError("module " + kind_ + ": register_module('" + name + "') with a null module");
  put(children_, name, std::move(m));
}
void Module::set_attr(const std::string& name, Value v) {
  check_member_name(*this, name);
  for (auto& [k, x] : attrs_.items)
    if (k == name) {
      x = std::move(v);
      return;
    }
  attrs_.items.emplace_back(name, std::move(v));
}

const Tensor* Module::find_parameter(std::string_view name) const { return lookup(params_, name); }
const Tensor* Module::find_buffer(std::string_view name) const { return lookup(buffers_, name); }
std::shared_ptr<Module> Module::find_child(std::string_view name) const {
  auto* p = lookup(children_, name);
  return p ? *p : nullptr;
}
const Value* Module::find_attr(std::string_view name) const {
  for (const auto& [k, v] : attrs_.items)
    if (k == name) return &v;
  return nullptr;
}
const Tensor& Module::parameter(std::string_view name) const {
  if (auto* t = find_parameter(name)) return *t;
  throw LookupError("module " + kind_ + " has no parameter '" + std::string(name) + "'");
}
const Tensor& Module::buffer(std::string_view name) const {
  if (auto* t = find_buffer(name)) return *t;
  throw LookupError("module " + kind_ + " has no buffer '" + std::string(name) + "'");
}
const Value& Module::attr(std::string_view name) const {
  if (auto* v = find_attr(name)) return *v;
  throw LookupError("module " + kind_ + " has no attribute '" + std::string(name) + "'");
}

namespace {
// Walks a dotted path with raw pointers, so lookups work during construction too (before
// a shared_ptr owns the module). Returns the owning pointer of the last step, if any.
const Module* walk_path(const Module& from, std::string_view path, std::shared_ptr<Module>* owner) {
  const Module* cur = &from;
  std::size_t start = 0;
  while (true) {
    auto dot = path.find('.', start);
    std::string_view part = path.substr(start, dot == std::string_view::npos ? dot : dot - start);
    auto next = cur->find_child(part);
    if (!next)
      throw LookupError("module path '" + std::string(path) + "': " + cur->kind() + " has no submodule '" +
                  std::string(part) + "'");
    cur = next.get();
    if (dot == std::string_view::npos) {
      if (owner) *owner = std::move(next);
      return cur;
    }
    start = dot + 1;
  }
}
}  // namespace

std::shared_ptr<Module> Module::get_submodule(std::string_view path) const {
  if (path.empty()) return std::const_pointer_cast<Module>(shared_from_this());
  std::shared_ptr<Module> found;
  walk_path(*this, path, &found);
  return found;
}

const Tensor& Module::get_tensor(std::string_view path) const {
  auto dot = path.rfind('.');
  const Module* owner = dot == std::string_view::npos ? this : walk_path(*this, path.substr(0, dot), nullptr);
  std::string_view name = dot == std::string_view::npos ? path : path.substr(dot + 1);
  if (auto* t = owner->find_parameter(name)) return *t;
  if (auto* t = owner->find_buffer(name)) return *t;
  throw LookupError("attribute path '" + std::string(path) + "': " + owner->kind() +
              " has no parameter or buffer '" + std::string(name) + "'");
}

void Module::set_submodule(std::string_view path, std::shared_ptr<Module> m) {
  auto dot = path.rfind('.');
  if (dot == std::string_view::npos) {
    register_module(std::string(path), std::move(m));
    return;
  }
  Module* cur = this;
  std::size_t start = 0;
  while (true) {
    auto next_dot = path.find('.', start);
    if (next_dot == std::string_view::npos || next_dot > dot) break;
    std::string part(path.substr(start, next_dot - start));
    auto child = cur->find_child(part);
    if (!child) {
      child = std::make_shared<Module>("Module");
      cur->register_module(part, child);
    }
    cur = child.get();
    start = next_dot + 1;
  }
  cur->register_module(std::string(path.substr(dot + 1)), std::move(m));
}

namespace {
template <class Fn>
void walk(const Module& m, const std::string& prefix, Fn&& fn) {
  fn(prefix, m);
  for (const auto& [name, child] : m.children())
    walk(*child, prefix.empty() ? name : prefix + "." + name, fn);
}
std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}
}  // namespace

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> out;
  walk(*this, "", [&](const std::string& p, const Module& m) {
    for (const auto& [n, t] : m.parameters()) out.emplace_back(join(p, n), t);
  });
  return out;
}
std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor>> out;
  walk(*this, "", [&](const std::string& p, const Module& m) {
    for (const auto& [n, t] : m.buffers()) out.emplace_back(join(p, n), t);
  });
  return out;
}
std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_modules() const {
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> out;
  walk(*this, "", [&](const std::string& p, const Module& m) {
    out.emplace_back(p, std::const_pointer_cast<Module>(m.shared_from_this()));
  });
  return out;
}

bool Module::is_leaf() const { return leaf_kind_ && !leaf_kind_->container; }

Value Module::operator()(std::vector<Value> inputs) {
  Tracer* tracer = Tracer::current();
  if (tracer && tracer->knows(*this) && is_leaf()) {
    bool symbolic = std::any_of(inputs.begin(), inputs.end(),
                                [](const Value& v) { return v.contains_node(); });
    if (symbolic) return tracer->record(Op::CallModule, tracer->path_of(*this), std::move(inputs), {});
  }
  return forward(inputs);
}

Value Module::forward(std::span<const Value> inputs) {
  if (!leaf_kind_) throw OpError("module " + kind_ + " is not of a registered kind and does not override forward");
  return leaf_kind_->forward(*this, inputs);
}

Value Module::get(const std::string& name) const {
  Tracer* tracer = Tracer::current();
  if (tracer && tracer->knows(*this)) return tracer->attribute(*this, name);
  if (auto* t = find_parameter(name)) return *t;
  if (auto* t = find_buffer(name)) return *t;
  throw LookupError("module " + kind_ + " has no parameter or buffer '" + name + "'");
}

namespace {
// Python's str() of an attribute, as str.format's {name} prints it.
std::string py_str(const Value& v) {
  if (const auto* s = v.if_string()) return *s;
  return python_repr(v);
}

// str.format over the attributes: {name} is str(), {name!r} repr(); {{ and }} are braces.
std::string format_extra_repr(const ModuleKind& kind, const Module& m) {
  const std::string& f = kind.extra_repr_format;
  std::string out;
  for (std::size_t i = 0; i < f.size(); ++i) {
    if ((f[i] == '{' || f[i] == '}') && i + 1 < f.size() && f[i + 1] == f[i]) {
      out += f[i++];
      continue;
    }
    if (f[i] != '{') {
      out += f[i];
      continue;
    }
    auto close = f.find('}', i);
    if (close == std::string::npos) throw ValueError(kind.name + ": extra_repr format '" + f + "' has an unclosed '{'");
    std::string field = f.substr(i + 1, close - i - 1);
    const bool repr = field.size() > 2 && field.ends_with("!r");
    if (repr) field.resize(field.size() - 2);
    const Value& v = m.attr(field);
    out += repr ? python_repr(v) : py_str(v);
    i = close;
  }
  return out;
}
}  // namespace

std::string Module::extra_repr() const { return leaf_kind_ ? leaf_kind_->extra_repr(*this) : std::string(); }

std::string ModuleKind::extra_repr(const Module& m) const {
  if (extra_repr_fn) return extra_repr_fn(m);
  return format_extra_repr(*this, m);
}

std::shared_ptr<Module> make_module(std::string_view kind_name, std::vector<Value> args, Dict kwargs) {
  const ModuleKind* kind = OpRegistry::global().module_kind(kind_name);
  if (!kind) throw LookupError("make_module: no module kind '" + std::string(kind_name) + "' is registered");
  OpDef ctor;
  ctor.name = kind->name;
  ctor.params = kind->constructor;
  std::vector<Value> bound = bind_arguments(ctor, args, kwargs);
  auto m = std::make_shared<Module>(*kind);
  if (kind->init) {
    kind->init(*m, bound);
    return m;
  }
  for (const Param& a : kind->attributes) {
    auto it = std::find_if(ctor.params.begin(), ctor.params.end(), [&](const Param& p) { return p.name == a.name; });
    if (it == ctor.params.end())
      throw ValueError(kind->name + ": attribute '" + a.name + "' is not a constructor argument and the kind has no init");
    m->set_attr(a.name, bound[static_cast<std::size_t>(it - ctor.params.begin())]);
  }
  return m;
}

void ModuleKind::validate(const Module& m) const {
  const ModuleKind& kind = *this;
  OpDef as_op;
  as_op.name = kind.name;
  for (const Param& a : kind.attributes) {
    const Value* v = m.find_attr(a.name);
    if (!v) throw FormatError(kind.name + ": attribute '" + a.name + "' is missing");
    try {
      (void)check_argument(as_op, a, *v);
    } catch (const OpError&) {
      throw FormatError(kind.name + ": attribute '" + a.name + "' must be " + a.type.str() + ", got " +
                        python_repr(*v));
    }
  }
  for (const auto* slots : {&kind.parameters, &kind.buffers}) {
    const bool buffer = slots == &kind.buffers;
    for (const ModuleTensorSlot& s : *slots) {
      const Tensor* t = buffer ? m.find_buffer(s.name) : m.find_parameter(s.name);
      if (!t && !s.optional)
        throw FormatError(kind.name + ": " + (buffer ? "buffer '" : "parameter '") + s.name + "' is missing");
    }
  }
  if (kind.validate_fn) kind.validate_fn(m);
}

std::vector<Value> ModuleKind::bind_inputs(std::vector<Value> args, const Dict& kwargs) const {
  const std::string who = name + ".forward()";
  if (args.size() > inputs.size()) {
    throw OpError(who + " takes " + std::to_string(inputs.size()) + " input" + (inputs.size() == 1 ? "" : "s") +
                  " but " + std::to_string(args.size()) + " were given");
  }
  std::vector<std::optional<Value>> bound(inputs.size());
  for (std::size_t i = 0; i < args.size(); ++i) bound[i] = std::move(args[i]);
  for (const auto& [key, v] : kwargs.items) {
    auto it = std::find(inputs.begin(), inputs.end(), key);
    if (it == inputs.end()) throw OpError(who + " got an unexpected keyword argument " + python_str_repr(key));
    auto& slot = bound[static_cast<std::size_t>(it - inputs.begin())];
    if (slot) throw OpError(who + " got multiple values for argument " + python_str_repr(key));
    slot = v;
  }
  std::vector<Value> out;
  out.reserve(inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (bound[i]) {
      out.push_back(std::move(*bound[i]));
    } else if (i < input_params.size() && !input_params[i].required) {
      out.push_back(input_params[i].default_value);
    } else {
      throw OpError(who + " missing a required argument: " + python_str_repr(inputs[i]));
    }
  }
  return out;
}

Value ModuleKind::forward(const Module& m, std::span<const Value> given) const {
  const ModuleKind& kind = *this;
  std::vector<Value> completed;
  if (given.size() < kind.inputs.size() && !kind.input_params.empty()) {
    completed = bind_inputs(std::vector<Value>(given.begin(), given.end()), Dict{});
    given = completed;
  }
  const std::span<const Value> inputs = given;
  if (kind.forward_fn) return kind.forward_fn(m, inputs);
  if (!kind.call) throw OpError("module kind '" + kind.name + "' has no forward");
  if (inputs.size() != kind.inputs.size()) {
    throw OpError(kind.name + ": forward expects " + std::to_string(kind.inputs.size()) + " input" +
                  (kind.inputs.size() == 1 ? "" : "s") + ", got " + std::to_string(inputs.size()));
  }
  std::vector<Value> args;
  Dict kwargs;
  for (const CallTemplate::Arg& a : kind.call->args) {
    Value v;
    switch (a.source) {
      case CallTemplate::Source::Input: v = inputs[a.index]; break;
      case CallTemplate::Source::Attribute: v = m.attr(a.name); break;
      case CallTemplate::Source::Tensor:
        if (const Tensor* t = m.find_parameter(a.name)) v = *t;
        else if (const Tensor* b = m.find_buffer(a.name)) v = *b;
        break;
      case CallTemplate::Source::Literal: v = a.literal; break;
    }
    if (a.keyword.empty()) args.push_back(std::move(v));
    else kwargs.items.emplace_back(a.keyword, std::move(v));
  }
  return call_function(kind.call->target, std::move(args), std::move(kwargs));
}

std::string Module::repr() const {
  // nn.Module.__repr__: children indented by two, one per line; a module without children
  // prints on one line.
  std::string extra = extra_repr();
  std::vector<std::string> lines;
  if (!extra.empty()) {
    std::size_t start = 0;
    while (true) {
      auto nl = extra.find('\n', start);
      lines.push_back(extra.substr(start, nl - start));
      if (nl == std::string::npos) break;
      start = nl + 1;
    }
  }
  for (const auto& [name, child] : children_) {
    std::string mod = child->repr();
    // _addindent(mod, 2)
    std::string indented;
    std::size_t start = 0;
    bool first = true;
    while (true) {
      auto nl = mod.find('\n', start);
      std::string line = mod.substr(start, nl - start);
      indented += first ? line : "\n  " + line;
      first = false;
      if (nl == std::string::npos) break;
      start = nl + 1;
    }
    lines.push_back("(" + name + "): " + indented);
  }
  std::string out = kind_ + "(";
  if (!lines.empty()) {
    if (lines.size() == 1 && children_.empty()) {
      out += lines[0];
    } else {
      out += "\n";
      for (const auto& l : lines) out += "  " + l + "\n";
    }
  }
  return out + ")";
}

}  // namespace fxpack
