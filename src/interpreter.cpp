#include "fxpack/interpreter.hpp"

#include "fxpack/ops.hpp"

namespace fxpack {

template class BasicInterpreter<Value>;

Value Interpreter::placeholder(const Node& n, std::vector<Value> args) {
  const std::string& target = n.target();
  if (target.starts_with("**")) return has_next_input() ? next_input() : Value(Dict{});
  if (target.starts_with("*")) return Tuple{remaining_inputs()};
  return BasicInterpreter::placeholder(n, std::move(args));
}

Value Interpreter::get_attr(const Node& n) {
  const std::string& target = n.target();
  const auto dot = target.rfind('.');
  if (dot == std::string::npos) return root().get(target);
  return root().get_submodule(target.substr(0, dot))->get(target.substr(dot + 1));
}

Value Interpreter::call_function(const Node& n, std::vector<Value> args, Kwargs kwargs) {
  return fxpack::call_function(n.target(), std::move(args), Dict{std::move(kwargs)});
}

Value Interpreter::call_method(const Node& n, std::vector<Value> args, Kwargs kwargs) {
  return fxpack::call_method(n.target(), std::move(args), Dict{std::move(kwargs)});
}

Value Interpreter::call_module(const Node& n, std::vector<Value> args, Kwargs kwargs) {
  auto module = root().get_submodule(n.target());
  if (!kwargs.empty()) {
    const ModuleKind* kind = module->leaf_kind();
    if (!kind)
      throw OpError("call_module with keyword arguments: module " + module->kind() +
                    " is not of a registered kind, whose forward would name its inputs");
    args = kind->bind_inputs(std::move(args), Dict{std::move(kwargs)});
  }
  return (*module)(std::move(args));
}

Value Interpreter::fetch(const Value& arg) const {
  return map_nodes(arg, [&](const Node* n) { return env(n); });
}

}  // namespace fxpack
