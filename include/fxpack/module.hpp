// Module: a tree of named parameters, buffers, attributes and submodules.
//
// The counterpart of torch.nn.Module. A module has a `kind` (its class name: "Linear",
// "MLP", "GraphModule"), an ordered set of attributes (the configuration of leaf modules:
// `in_features`, `stride`, ...), parameters and buffers (Tensors), and child modules with
// names that may be any string, e.g. "0" in a Sequential. Paths are dotted
// ("layer1.0.conv").
//
// Leaf modules (Linear, ReLU, Conv2d, BatchNorm2d, MaxPool2d, AdaptiveAvgPool2d, ...) are
// Modules made from a registered ModuleKind (ops.hpp) — by make_module, an nn:: factory or
// a loader — and hold it: leaf-ness is the registered type, never the name, so a user
// class constructed as Module("ReLU") with its own forward is traced through and runs its
// own forward. Leaf modules are data only, which is what lets an archive rebuild them
// without running any code. User modules subclass Module and override `forward`; the same
// forward body runs eagerly and under symbolic_trace.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fxpack/ops.hpp"
#include "fxpack/value.hpp"

namespace fxpack {

class Module : public std::enable_shared_from_this<Module> {
 public:
  explicit Module(std::string kind = "Module");
  // A leaf (or container) module of a registered kind, with no members yet (make_module
  // and the loaders fill them).
  explicit Module(const ModuleKind& kind);
  virtual ~Module();
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  const std::string& kind() const { return kind_; }
  void set_kind(std::string kind) { kind_ = std::move(kind); }
  // The registered kind this module was made from; nullptr for user modules.
  const ModuleKind* leaf_kind() const { return leaf_kind_; }

  // --- Contents (direct members, in registration order). Names must be non-empty and
  // contain no '.'; registering an existing name replaces its value.
  void register_parameter(const std::string& name, Tensor t);
  void register_buffer(const std::string& name, Tensor t);
  void register_module(const std::string& name, std::shared_ptr<Module> m);
  void set_attr(const std::string& name, Value v);

  const std::vector<std::pair<std::string, Tensor>>& parameters() const { return params_; }
  const std::vector<std::pair<std::string, Tensor>>& buffers() const { return buffers_; }
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const { return children_; }
  const Dict& attrs() const { return attrs_; }

  // Direct lookups; nullptr when absent.
  const Tensor* find_parameter(std::string_view name) const;
  const Tensor* find_buffer(std::string_view name) const;
  std::shared_ptr<Module> find_child(std::string_view name) const;
  const Value* find_attr(std::string_view name) const;
  // Direct lookups that throw Error naming the module kind and the missing name.
  const Tensor& parameter(std::string_view name) const;
  const Tensor& buffer(std::string_view name) const;
  const Value& attr(std::string_view name) const;

  // Dotted-path lookups ("layer1.0.conv", "fc.weight"); throw Error naming the path.
  std::shared_ptr<Module> get_submodule(std::string_view path) const;
  // A parameter or buffer by dotted path.
  const Tensor& get_tensor(std::string_view path) const;
  // Sets a parameter/buffer/module at a dotted path, creating plain "Module" parents.
  void set_submodule(std::string_view path, std::shared_ptr<Module> m);

  // Recursive listings with dotted names (registration order, depth first).
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_modules() const;  // includes "" (this)

  // --- Running.
  // Calls forward, or records a call_module node when this module is a leaf reached from
  // a forward under symbolic_trace.
  Value operator()(std::vector<Value> inputs);
  template <class... A>
  Value operator()(A&&... inputs) {
    return (*this)(std::vector<Value>{Value(std::forward<A>(inputs))...});
  }
  // The computation. The default runs the forward of the module's kind and throws for
  // anything else.
  virtual Value forward(std::span<const Value> inputs);
  // A parameter or buffer for use inside forward: a Tensor eagerly, a get_attr node under
  // symbolic_trace.
  Value get(const std::string& name) const;

  // Leaf modules are not traced through: made from a registered kind that is not a container.
  virtual bool is_leaf() const;
  // Names of forward's inputs, used for placeholders by symbolic_trace.
  virtual std::vector<std::string> input_names() const { return {"x"}; }

  // nn.Module's repr: "MLP(\n  (fc1): Linear(in_features=4, ...)\n)".
  std::string repr() const;
  // The part inside the parentheses on the first line (leaf kinds' extra_repr).
  virtual std::string extra_repr() const;

 private:
  std::string kind_;
  const ModuleKind* leaf_kind_ = nullptr;
  Dict attrs_;
  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

// A module of the registered kind `kind`, built from constructor arguments bound to the
// kind's constructor schema (make_module("Linear", {4, 8}), make_module("GELU", {},
// {{"approximate", "tanh"}})). Throws OpError for arguments that do not bind, ValueError for
// values PyTorch's constructor rejects, LookupError for an unknown kind.
std::shared_ptr<Module> make_module(std::string_view kind, std::vector<Value> args = {}, Dict kwargs = {});

// Built-in leaf modules, configured as PyTorch's (parameters zero-initialised; load real
// weights with register_parameter/register_buffer or from an archive).
namespace nn {
// Size arguments are Values as in PyTorch (`_size_2_t`): an int or a tuple of ints. Conv2d
// stores tuples (PyTorch's _pair); the pooling modules keep what they were given, which
// shows in their repr.
std::shared_ptr<Module> Linear(std::int64_t in_features, std::int64_t out_features, bool bias = true);
std::shared_ptr<Module> ReLU(bool inplace = false);
std::shared_ptr<Module> Conv2d(std::int64_t in_channels, std::int64_t out_channels,
                               Value kernel_size, Value stride = 1, Value padding = 0,
                               Value dilation = 1, std::int64_t groups = 1, bool bias = true);
std::shared_ptr<Module> BatchNorm2d(std::int64_t num_features, double eps = 1e-5,
                                    double momentum = 0.1, bool affine = true,
                                    bool track_running_stats = true);
// stride None means kernel_size, as in PyTorch.
std::shared_ptr<Module> MaxPool2d(Value kernel_size, Value stride = None{}, Value padding = 0,
                                  Value dilation = 1, bool ceil_mode = false);
std::shared_ptr<Module> AdaptiveAvgPool2d(Value output_size);
// Children named "0", "1", ...; forward calls them in order.
std::shared_ptr<Module> Sequential(std::vector<std::shared_ptr<Module>> modules);
// approximate: "none" or "tanh".
std::shared_ptr<Module> GELU(std::string approximate = "none");
}  // namespace nn

}  // namespace fxpack
