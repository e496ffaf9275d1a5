// The op registry: what targets fxpack can run.
//
// Kernels are looked up by the node's op and target:
//   call_function  by the qualified function name  ("torch.relu", "operator.add", "torch.ops.aten.sin.default")
//   call_method    by the method name              ("sin", "view", "flatten")
//   call_module    by the leaf module's kind       ("Linear", "Conv2d")
// A function and a method may share one OpDef (torch.sin and Tensor.sin): the method's
// receiver is the first parameter.
//
// Each OpDef has a parameter list (names, defaults). `bind` turns a node's args and kwargs
// into the positional list the kernel takes, checking arity and names; kernels check kinds,
// dtypes and shapes and throw OpError with a message that names the op. The plan adds the
// node name. Unknown targets are reported when a plan is built, never when the graph is
// made, so graphs with unknown ops can still be inspected, printed and saved.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fxpack/details/string_hash.hpp"
#include "fxpack/value.hpp"

namespace fxpack {

class Module;

struct Param {
  std::string name;        // a leading '*' collects the remaining positionals into a Tuple
  bool required = true;    // false: `default_value` is used when absent
  Value default_value{};
  bool keyword_only = false;
};

// A kernel takes exactly `params.size()` bound arguments, in order.
using KernelFn = Value (*)(std::span<const Value> args);

struct OpDef {
  std::string name;  // the op's own name, for messages ("add", "flatten")
  std::vector<Param> params;
  KernelFn kernel = nullptr;
};

// Binds call arguments to an OpDef's parameters (Python's rules: positionals, then
// keywords, then defaults). Throws OpError for missing, repeated or unknown arguments.
std::vector<Value> bind_arguments(const OpDef& op, std::span<const Value> args, const Dict& kwargs);

// A leaf module kind ("Linear", "ReLU", ...): how to run it and how to print it.
struct ModuleKind {
  std::string name;
  // Runs the module on its inputs (args only; leaf modules take no kwargs).
  Value (*forward)(const Module& module, std::span<const Value> args) = nullptr;
  // nn.Module.extra_repr: "in_features=4, out_features=8, bias=True".
  std::string (*extra_repr)(const Module& module) = nullptr;
  // Checks the attributes, parameters and buffers (e.g. after loading); throws FormatError.
  void (*validate)(const Module& module) = nullptr;
  // Containers (Sequential) are traced through rather than recorded as call_module.
  bool container = false;
};

class OpRegistry {
 public:
  // The process-wide registry, with every built-in op and module kind registered.
  static OpRegistry& global();

  // Registration (thread-safe). A target may be registered once; a second time throws.
  void add_function(std::string target, std::shared_ptr<const OpDef> op);
  void add_method(std::string method, std::shared_ptr<const OpDef> op);
  void add_module_kind(ModuleKind kind);

  // Lookups: nullptr when not registered.
  const OpDef* function(std::string_view target) const;
  const OpDef* method(std::string_view method) const;
  const ModuleKind* module_kind(std::string_view kind) const;

  // Sorted lists, for manifests and `fxpack inspect`.
  std::vector<std::string> function_targets() const;
  std::vector<std::string> method_names() const;
  std::vector<std::string> module_kinds() const;

 private:
  template <class T>
  using Table = std::unordered_map<std::string, T, details::StringHash, std::equal_to<>>;

  mutable std::mutex mu_;
  Table<std::shared_ptr<const OpDef>> functions_;
  Table<std::shared_ptr<const OpDef>> methods_;
  Table<ModuleKind> module_kinds_;
};

// Eager dispatch, used by forward bodies and by the interpreter: binds, checks and runs,
// or records a node when any argument holds a Node reference (see trace.hpp).
Value call_function(const std::string& target, std::vector<Value> args, Dict kwargs = {});
Value call_method(const std::string& method, std::vector<Value> args, Dict kwargs = {});

}  // namespace fxpack
