#include "fxpack/ops.hpp"

#include <algorithm>

#include "fxpack/trace.hpp"
#include "ops/builtin_ops.hpp"

namespace fxpack {

OpRegistry& OpRegistry::global() {
  static OpRegistry* registry = [] {
    auto* r = new OpRegistry;  // never destroyed: kernels may run during static teardown
    ops::register_builtin_ops(*r);
    return r;
  }();
  return *registry;
}

namespace {
template <class T>
void add_unique(auto& table, std::string key, T value, const char* what) {
  auto [it, inserted] = table.try_emplace(std::move(key), std::move(value));
  if (!inserted) throw Error(std::string(what) + " '" + it->first + "' is already registered");
}
template <class Table>
std::vector<std::string> sorted_keys(const Table& t) {
  std::vector<std::string> out;
  out.reserve(t.size());
  for (const auto& [k, v] : t) out.push_back(k);
  std::sort(out.begin(), out.end());
  return out;
}
}  // namespace

void OpRegistry::add_function(std::string target, std::shared_ptr<const OpDef> op) {
  std::lock_guard lock(mu_);
  add_unique(functions_, std::move(target), std::move(op), "function");
}
void OpRegistry::add_method(std::string method, std::shared_ptr<const OpDef> op) {
  std::lock_guard lock(mu_);
  add_unique(methods_, std::move(method), std::move(op), "method");
}
void OpRegistry::add_module_kind(ModuleKind kind) {
  std::lock_guard lock(mu_);
  std::string name = kind.name;
  add_unique(module_kinds_, std::move(name), std::move(kind), "module kind");
}

const OpDef* OpRegistry::function(std::string_view target) const {
  std::lock_guard lock(mu_);
  auto it = functions_.find(target);
  return it == functions_.end() ? nullptr : it->second.get();
}
const OpDef* OpRegistry::method(std::string_view method) const {
  std::lock_guard lock(mu_);
  auto it = methods_.find(method);
  return it == methods_.end() ? nullptr : it->second.get();
}
const ModuleKind* OpRegistry::module_kind(std::string_view kind) const {
  std::lock_guard lock(mu_);
  auto it = module_kinds_.find(kind);
  return it == module_kinds_.end() ? nullptr : &it->second;
}
std::vector<std::string> OpRegistry::function_targets() const {
  std::lock_guard lock(mu_);
  return sorted_keys(functions_);
}
std::vector<std::string> OpRegistry::method_names() const {
  std::lock_guard lock(mu_);
  return sorted_keys(methods_);
}
std::vector<std::string> OpRegistry::module_kinds() const {
  std::lock_guard lock(mu_);
  return sorted_keys(module_kinds_);
}

std::vector<Value> bind_arguments(const OpDef& op, std::span<const Value> args,
                                  const Dict& kwargs) {
  const auto& params = op.params;
  std::vector<Value> bound(params.size());
  std::vector<bool> filled(params.size(), false);
  std::size_t next = 0;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (next >= params.size() || params[next].keyword_only)
      throw OpError(op.name + ": takes " + std::to_string(next) +
                    " positional arguments but " + std::to_string(args.size()) + " were given");
    if (params[next].name[0] == '*') {
      // Varargs: a single list/tuple is the sequence itself, otherwise collect the rest.
      if (args.size() - i == 1 && (args[i].kind() == Value::Kind::List ||
                                   args[i].kind() == Value::Kind::Tuple)) {
        bound[next] = args[i];
      } else {
        bound[next] = Tuple{{args.begin() + static_cast<std::ptrdiff_t>(i), args.end()}};
      }
      filled[next++] = true;
      break;
    }
    bound[next] = args[i];
    filled[next++] = true;
  }
  for (const auto& kv : kwargs.items) {
    const std::string& key = kv.first;
    const Value& value = kv.second;
    auto it = std::find_if(params.begin(), params.end(), [&](const Param& p) {
      return p.name == key || (p.name[0] == '*' && p.name.compare(1, std::string::npos, key) == 0);
    });
    if (it == params.end())
      throw OpError(op.name + ": got an unexpected keyword argument '" + key + "'");
    auto idx = static_cast<std::size_t>(it - params.begin());
    if (filled[idx]) throw OpError(op.name + ": got multiple values for argument '" + key + "'");
    bound[idx] = value;
    filled[idx] = true;
  }
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (filled[i]) continue;
    if (params[i].required)
      throw OpError(op.name + ": missing required argument '" + params[i].name + "'");
    bound[i] = params[i].default_value;
  }
  return bound;
}

namespace {
bool any_node(std::span<const Value> args, const Dict& kwargs) {
  for (const Value& v : args)
    if (v.contains_node()) return true;
  for (const auto& [k, v] : kwargs.items)
    if (v.contains_node()) return true;
  return false;
}
}  // namespace

Value call_function(const std::string& target, std::vector<Value> args, Dict kwargs) {
  if (any_node(args, kwargs)) {
    Tracer* tracer = Tracer::current();
    if (!tracer) throw GraphError("call of '" + target + "' on a Node reference outside a trace");
    return tracer->record(Op::CallFunction, target, std::move(args), std::move(kwargs));
  }
  const OpDef* op = OpRegistry::global().function(target);
  if (!op) throw OpError("no kernel is registered for function '" + target + "'");
  auto bound = bind_arguments(*op, args, kwargs);
  return op->kernel(bound);
}

Value call_method(const std::string& method, std::vector<Value> args, Dict kwargs) {
  if (args.empty()) throw OpError("method '" + method + "' called without a receiver");
  if (any_node(args, kwargs)) {
    Tracer* tracer = Tracer::current();
    if (!tracer) throw GraphError("method '" + method + "' on a Node reference outside a trace");
    return tracer->record(Op::CallMethod, method, std::move(args), std::move(kwargs));
  }
  const OpDef* op = OpRegistry::global().method(method);
  if (!op) throw OpError("no kernel is registered for method '" + method + "'");
  auto bound = bind_arguments(*op, args, kwargs);
  return op->kernel(bound);
}

}  // namespace fxpack
