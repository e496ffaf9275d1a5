// The op registry: what fxpack can run, and how a call binds.
//
// Every built-in op and leaf module kind is declared once, in the op table (YAML beside its
// kernels; docs/design.md §5 and §6), and registered from it when OpRegistry::global() is
// first used. An op entry has a schema in PyTorch's syntax; the registry binds it under
// each name the table gives it, each name a *form* with its own OpDef:
//
//   aten      torch.ops.aten.add.Tensor   the aten overload (what make_fx records and runs)
//   python    torch.nn.functional.relu    a Python-level function (or `Tensor.size`: a method)
//   function  torch.add                   a torch function bound to an aten overload; its
//                                         first parameter is `input` where the schema says `self`
//   method    add                         a Tensor method; the receiver is the first parameter
//   operator  operator.add                a Python operator: `(a, b)` positionally, unchecked
//
// Kernels are looked up by the node's op and target: call_function by the function name,
// call_method by the method name, call_module by the module's leaf kind (module.hpp). A
// name may have several overloads (torch.max(x) / max(x, dim) / max(x, other)); a call binds
// to the first whose arguments bind and type-check, as PyTorch's Python argument parser
// does, and a call that fits none is one OpError listing what was given and what exists.
// Unknown targets are reported when a plan is built, never when a graph is made, so graphs
// with unknown ops can still be inspected, printed and saved.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fxpack/node.hpp"
#include "fxpack/value.hpp"

namespace fxpack {

class Module;
struct OpDef;

// ---- Schemas ------------------------------------------------------------------------------

// The base types of PyTorch's schema syntax (SymInt is Int).
// Callable: a function held as data, by the qualified name of a registered function target
// ("torch.nn.functional.relu"); module attributes only (TransformerEncoderLayer.activation).
enum class ArgType : std::uint8_t {
  Tensor, Scalar, Int, Float, Bool, Str, ScalarType, Layout, Device, MemoryFormat, Any, Callable
};

struct SchemaType {
  ArgType base = ArgType::Any;
  bool optional = false;          // T?
  bool list = false;              // T[] or T[N]
  bool element_optional = false;  // Tensor?[]
  std::int32_t size = 0;          // N of T[N]; 0: any length
  // "Tensor", "int[2]", "Tensor?[]", "ScalarType?".
  std::string str() const;
  friend bool operator==(const SchemaType&, const SchemaType&) = default;
};

struct Param {
  std::string name;
  bool required = true;     // false: `default_value` is used when absent
  Value default_value{};
  bool keyword_only = false;
  SchemaType type{};
  bool fixed = false;       // never bound from a call: always `default_value` (operator forms)
};

struct OpSchema {
  std::string name;      // "add" (aten), "torch.nn.functional.relu" (python)
  std::string overload;  // "Tensor"; "default" for an aten schema without one; "" (python)
  std::vector<Param> params;
  std::vector<SchemaType> returns;
  bool returns_tuple = false;  // `-> (Tensor, Tensor)` (also `-> ()`)
  bool inplace = false;        // the first parameter is annotated `(a!)`
  bool view = false;           // a return shares an alias set with a parameter: `Tensor(a)`
  // True when some return can hold a Tensor.
  bool returns_tensor() const;
  // "(Tensor input, int dim, bool keepdim=False)".
  static std::string params_str(std::span<const Param> params);
};

// Parses `name[.overload](params) -> returns`. An aten schema's name stops at the first
// dot (the overload follows); a python schema's name is the whole dotted name. Throws
// Error naming the position and what was expected.
OpSchema parse_schema(std::string_view text, bool aten);
// A parenthesised parameter list alone: "(int in_features, bool bias=True)".
std::vector<Param> parse_params(std::string_view text);

// ---- Ops ----------------------------------------------------------------------------------

// A kernel takes the bound arguments, one per parameter in schema order, already checked
// against their types and normalised (docs/design.md §5.3: int[2] expanded, int tuples as lists).
using KernelFn = Value (*)(std::span<const Value> args);

enum class Purity : std::uint8_t { Pure, View, InPlace, Nondeterministic, SideEffect };
enum class Promotion : std::uint8_t { Promote, PromoteFloat, Bool, Keep, Index, Custom };
enum class Fusion : std::uint8_t { None, Unary, Binary };
enum class OpForm : std::uint8_t { Aten, Python, Function, Method, Operator };

const char* purity_name(Purity p);        // "pure", "view", "inplace", ...
const char* promotion_name(Promotion p);  // "promote", "promote_float", ...

// The scalar function of an elementwise op (its functor), as compile's fused kernel runs it:
// in place on contiguous blocks, `y = f(y)` or, for binary ones, `y = f(y, operand)`.
struct ElementwiseFunctor {
  std::string name;  // the fused op list's name: "sin", "add"
  bool binary = false;
  void (*f32)(float* data, std::int64_t n, double operand) = nullptr;
  void (*f64)(double* data, std::int64_t n, double operand) = nullptr;
  // The generic driver, for other dtypes: (x) or (x, operand).
  KernelFn apply = nullptr;
};

// ---- make_fx's view, for decompositions (make_fx.cpp implements it) ---------------------

// A value during make_fx: its real content and its form in the new graph (a Node for a
// traced tensor; the Tensor itself for a parameter or constant, which is lifted into an
// attribute when recorded; the value itself otherwise).
struct TracedValue {
  Value real;
  Value sym;
};

// One call being decomposed: the bound arguments (inputs, for a leaf module) and the real
// result the kernel computed.
struct OpCall {
  std::span<const TracedValue> args;
  const Value& result;
};

class OpRecorder {
 public:
  // Records one call of an aten overload ("addmm.default") on symbolic arguments, laid out
  // as PyTorch does (positionals up to the last non-default, keyword-only ones as keywords
  // when not default); returns its symbolic result: a Node, or a Tuple of getitem nodes when
  // the overload returns a tuple.
  virtual Value record(std::string_view aten_overload, std::vector<Value> args, Dict kwargs = {}) = 0;
  // Runs a call of a function target through make_fx (its kernel and its own decomposition).
  virtual TracedValue call(const std::string& function, std::vector<TracedValue> args,
                           std::vector<std::pair<std::string, TracedValue>> kwargs = {}) = 0;

 protected:
  ~OpRecorder() = default;
};

using DecomposeFn = Value (*)(OpRecorder& rec, const OpCall& call);

// What the op table says about an op; shared by all forms of one entry.
struct OpInfo {
  OpSchema schema;       // as declared (aten parameter names)
  std::string text;      // the schema as written
  std::string source;    // "src/ops/reduce.yaml:12"; "" for an op registered at run time
  bool aten = false;     // an aten entry (else python)
  Purity purity = Purity::Pure;
  std::vector<Promotion> promotion;  // one per return; empty: not declared
  Fusion fusion = Fusion::None;
  bool numbers_as_tensors = false;
  bool saves_result = false;
  // Reads only the dtype and shape of its Tensor operands, never their values (x.shape,
  // x.dim(), x.size(1)): an inference plan records its result once per input signature.
  bool metadata = false;
  // Its only effect is raising an error that its operands decide (torch._assert): with
  // operands an input signature decides, a plan that saw it pass once need not run it again.
  bool assertion = false;
  const ElementwiseFunctor* functor = nullptr;
  // make_fx: record this aten overload (1:1, arguments by name), or decompose; neither: a
  // python op is recorded as it was called.
  const OpDef* make_fx_aten = nullptr;
  DecomposeFn make_fx = nullptr;
  // The operator form's make_fx when only the right operand is a Tensor.
  const OpDef* reflected_aten = nullptr;
  DecomposeFn reflected = nullptr;
  std::vector<std::string> examples;
  // The form registered under the entry's own name (aten target or python name).
  const OpDef* canonical = nullptr;
};

struct OpDef {
  std::string name;  // the op's name in messages: "add", "relu", "linear"
  OpForm form = OpForm::Python;
  std::string target;  // the name it is registered under ("torch.add", "add")
  std::vector<Param> params;
  KernelFn kernel = nullptr;
  const OpInfo* info = nullptr;
};

// Binds call arguments to one OpDef's parameters (Python's rules: positionals, then keywords,
// then defaults; a single int-list parameter takes varargs), checks each value against its
// type and normalises it. A value holding a Node is accepted unchecked (its kind is known
// only when it runs). Throws OpError naming the op, the argument and the problem.
std::vector<Value> bind_arguments(const OpDef& op, std::span<const Value> args, const Dict& kwargs);

struct BoundCall {
  const OpDef* op = nullptr;
  std::vector<Value> args;
};
// Binds to the first overload that accepts the call; throws one OpError listing what was
// given and every overload when none does.
BoundCall bind_overload(std::span<const OpDef* const> overloads, std::span<const Value> args,
                        const Dict& kwargs);
// Checks one bound value against a parameter's type and normalises it (what
// bind_arguments does per argument), for values known only when a plan runs.
Value check_argument(const OpDef& op, const Param& param, Value v);

// ---- Leaf module kinds ----------------------------------------------------------------------

// A call template `torch._C._nn.linear(input, weight, bias)`: a function target and its
// arguments, each an input, an attribute, a parameter or buffer, or a literal.
struct CallTemplate {
  enum class Source : std::uint8_t { Input, Attribute, Tensor, Literal };
  struct Arg {
    std::string keyword;  // "" for a positional argument
    Source source = Source::Literal;
    std::string name;     // input, attribute or tensor name
    std::size_t index = 0;  // the input's position
    Value literal;
  };
  std::string target;
  std::vector<Arg> args;
};

struct ModuleTensorSlot {
  std::string name;
  bool optional = false;  // PyTorch keeps None in the slot when absent (bias)
};

// A leaf module kind ("Linear", "ReLU", ...): how to build, check, run, print and trace it
// (docs/design.md §6). The op table registers the built-in kinds; user code may register its
// own with OpRegistry::add_module_kind. The member functions are implemented by module.cpp.
struct ModuleKind {
  std::string name;
  std::vector<std::string> classes;    // torch class paths; the exporter writes the first
  std::vector<Param> constructor;      // make_module's parameters
  std::vector<Param> attributes;       // in the order PyTorch's __init__ sets them
  std::vector<ModuleTensorSlot> parameters, buffers;
  std::vector<std::string> inputs{"input"};
  // forward's parameters with their types and defaults, when the kind declares them
  // (MultiheadAttention's `need_weights=True`, ...); empty: every input is required and
  // positional.
  std::vector<Param> input_params;
  // PyTorch's __init__: attributes and tensors from the bound constructor arguments. Null:
  // each attribute is the constructor argument of the same name.
  void (*init)(Module& m, std::span<const Value> args) = nullptr;
  // The forward: a function, or a call template. It receives every input, in order
  // (bind_inputs fills in keywords and defaults).
  Value (*forward_fn)(const Module& m, std::span<const Value> inputs) = nullptr;
  std::optional<CallTemplate> call;
  // make_fx's decomposition of a kind with a forward function (call.args are the inputs).
  Value (*make_fx)(OpRecorder& rec, const Module& m, const OpCall& call) = nullptr;
  // nn.Module.extra_repr: a str.format-style text over the attributes, or a function.
  std::string extra_repr_format;
  std::string (*extra_repr_fn)(const Module& m) = nullptr;
  // Checks beyond the generic ones (e.g. tensor shapes); throws FormatError.
  void (*validate_fn)(const Module& m) = nullptr;
  // Private state PyTorch's __init__ derives, written by the torch.package exporter.
  std::vector<std::pair<std::string, Value>> (*private_attributes)(const Module& m) = nullptr;
  // Containers (Sequential) are traced through rather than recorded as call_module.
  bool container = false;
  std::string source;  // "src/ops/modules.yaml:40"; "" when registered at run time
  // Examples for the table walk test: (constructor arguments, forward inputs).
  std::vector<std::pair<std::string, std::string>> examples;

  // Binds a call's arguments to forward's inputs as Python does: positionals in order, then
  // keywords by name, then defaults. Only the arrangement is checked (too many, unknown,
  // repeated or missing arguments throw OpError naming the kind); the values are forward's
  // to check, so the arguments may be graph nodes.
  std::vector<Value> bind_inputs(std::vector<Value> args, const Dict& kwargs) const;
  // Runs the module (its forward function or its call template); missing trailing inputs
  // take their defaults.
  Value forward(const Module& m, std::span<const Value> inputs) const;
  // The text inside the parentheses of repr().
  std::string extra_repr(const Module& m) const;
  // The generic checks (every attribute present with its declared type, every non-optional
  // tensor present), then validate_fn. Throws FormatError naming the kind and the field;
  // loaders call it on every module they rebuild.
  void validate(const Module& m) const;
};

// ---- The registry ---------------------------------------------------------------------------

class OpRegistry {
 public:
  // The process-wide registry, with the whole op table registered.
  static OpRegistry& global();

  // Registers a Python-level function outside the table (user code), under the schema's
  // qualified name: add_function("mylib.square(Tensor input) -> Tensor", kernel). A name
  // may be registered once; a second time throws. Thread-safe.
  const OpDef& add_function(std::string_view schema, KernelFn kernel);
  // Registers a leaf module kind; its name must be new. Thread-safe.
  const ModuleKind& add_module_kind(ModuleKind kind);

  // Lookups; nullptr (or an empty span) when not registered. function() and method() give
  // the first overload.
  const OpDef* function(std::string_view target) const;
  const OpDef* method(std::string_view method) const;
  std::span<const OpDef* const> function_overloads(std::string_view target) const;
  std::span<const OpDef* const> method_overloads(std::string_view method) const;
  const ModuleKind* module_kind(std::string_view kind) const;
  // The kind a torch class path loads as ("torch.nn.modules.linear.Linear").
  const ModuleKind* module_class(std::string_view torch_class) const;
  // A fusable elementwise functor by its fused name ("sin", "add").
  const ElementwiseFunctor* elementwise(std::string_view name) const;

  // Sorted lists, for manifests and `fxpack inspect`.
  std::vector<std::string> function_targets() const;
  std::vector<std::string> method_names() const;
  std::vector<std::string> module_kinds() const;
  // Every op entry and module kind of the table, in declaration order (the walk test).
  std::vector<const OpInfo*> op_entries() const;
  std::vector<const ModuleKind*> module_kind_entries() const;

  struct Impl;

 private:
  OpRegistry();
  ~OpRegistry();
  std::unique_ptr<Impl> impl_;
  mutable std::mutex mu_;
};

// ---- Dispatch -------------------------------------------------------------------------------

// The symbolic tracer as dispatch sees it (tracer.hpp's Tracer is one): while a recorder is
// current on this thread, a call with a Node among its arguments is recorded instead of run.
class CallRecorder {
 public:
  virtual Value record(Op op, const std::string& target, std::vector<Value> args, Dict kwargs) = 0;
  static CallRecorder* current();

 protected:
  // Makes `r` current on this thread; returns the previous one (to restore).
  static CallRecorder* exchange_current(CallRecorder* r);
  ~CallRecorder() = default;
};

// Eager dispatch, used by forward bodies and by the interpreter: binds, checks and runs,
// or records a node when any argument holds a Node reference.
Value call_function(const std::string& target, std::vector<Value> args, Dict kwargs = {});
Value call_method(const std::string& method, std::vector<Value> args, Dict kwargs = {});

}  // namespace fxpack
