#include "fxpack/module.hpp"

#include <algorithm>

#include "fxpack/ops.hpp"
#include "fxpack/trace.hpp"

namespace fxpack {

namespace {
void check_member_name(const Module& m, const std::string& name) {
  if (name.empty() || name.find('.') != std::string::npos)
    throw Error("module " + m.kind() + ": invalid member name '" + name +
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
  if (!m) throw Error("module " + kind_ + ": register_module('" + name + "') with a null module");
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
  throw Error("module " + kind_ + " has no parameter '" + std::string(name) + "'");
}
const Tensor& Module::buffer(std::string_view name) const {
  if (auto* t = find_buffer(name)) return *t;
  throw Error("module " + kind_ + " has no buffer '" + std::string(name) + "'");
}
const Value& Module::attr(std::string_view name) const {
  if (auto* v = find_attr(name)) return *v;
  throw Error("module " + kind_ + " has no attribute '" + std::string(name) + "'");
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
      throw Error("module path '" + std::string(path) + "': " + cur->kind() + " has no submodule '" +
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
  throw Error("attribute path '" + std::string(path) + "': " + owner->kind() +
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

bool Module::is_leaf() const {
  const ModuleKind* k = OpRegistry::global().module_kind(kind_);
  return k && !k->container;
}

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
  const ModuleKind* k = OpRegistry::global().module_kind(kind_);
  if (!k || !k->forward)
    throw OpError("module kind '" + kind_ + "' has no registered forward and does not override it");
  return k->forward(*this, inputs);
}

Value Module::get(const std::string& name) const {
  Tracer* tracer = Tracer::current();
  if (tracer && tracer->knows(*this)) return tracer->attribute(*this, name);
  if (auto* t = find_parameter(name)) return *t;
  if (auto* t = find_buffer(name)) return *t;
  throw Error("module " + kind_ + " has no parameter or buffer '" + name + "'");
}

std::string Module::extra_repr() const {
  const ModuleKind* k = OpRegistry::global().module_kind(kind_);
  return k && k->extra_repr ? k->extra_repr(*this) : std::string();
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
