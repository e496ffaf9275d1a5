// make_fx: the target's graph (its own for a GraphModule, a symbolic trace otherwise) is
// interpreted node by node on the real inputs. Every value carries its real content and
// its symbolic form in the new graph (a Node for an emitted tensor, the Tensor itself for a
// parameter/buffer not lifted yet, the constant for anything else); each source node emits
// its aten-level decomposition while the real value is computed with the same kernels. What
// each call records is the op table's (docs/design.md §5.8): an aten overload 1:1, or the
// entry's decomposition function; leaf modules decompose as their call template's call or
// by their kind's decomposition.
#include "fxpack/make_fx.hpp"

#include <unordered_map>
#include <unordered_set>

#include "fxpack/disable.hpp"
#include "fxpack/interpreter.hpp"
#include "fxpack/ops.hpp"
#include "fxpack/trace.hpp"

namespace fxpack {

namespace {

[[noreturn]] void fail(const std::string& msg) { throw OpError("make_fx: " + msg); }

// A value during interpretation: its real content and its form in the new graph.
using TV = TracedValue;

struct TensorHash {
  std::size_t operator()(const Tensor& t) const {
    return std::hash<const void*>()(t.storage().get()) * 31 + t.byte_offset();
  }
};

bool has_tensor(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Tensor: return true;
    case Value::Kind::List:
    case Value::Kind::Tuple:
      for (const Value& x : v.items())
        if (has_tensor(x)) return true;
      return false;
    case Value::Kind::Dict:
      for (const auto& kv : v.dict().items)
        if (has_tensor(kv.second)) return true;
      return false;
    default: return false;
  }
}

// ---- the new graph ----------------------------------------------------------------------

class Recorder {
 public:
  Recorder(Graph& g, Module& out) : g_(g), out_(out) {}

  void add_parameters(const Module& m) {
    for (const auto& [name, t] : m.named_parameters()) params_.insert(t);
  }
  bool is_param(const Tensor& t) const { return params_.count(t) != 0; }

  // Replaces tensors by get_attr nodes of lifted attributes (one node per use, as fx's
  // create_arg; one attribute per tensor).
  Value lift(const Value& v) {
    switch (v.kind()) {
      case Value::Kind::Tensor: {
        const Tensor& t = v.tensor();
        const bool param = is_param(t);
        std::string name;
        auto it = lifted_.find(t);
        if (it != lifted_.end()) {
          name = it->second;
        } else {
          name = param ? "_param_constant" + std::to_string(n_param_++)
                       : "_tensor_constant" + std::to_string(n_tensor_++);
          lifted_.emplace(t, name);
          if (param) out_.register_parameter(name, t);
          else out_.register_buffer(name, t);
        }
        Node* n = g_.create_node(Op::GetAttr, name, {}, {}, name);
        if (param) grad_.insert(n);
        return n;
      }
      case Value::Kind::List: {
        List l;
        for (const Value& x : v.items()) l.items.push_back(lift(x));
        return l;
      }
      case Value::Kind::Tuple: {
        Tuple t;
        for (const Value& x : v.items()) t.items.push_back(lift(x));
        return t;
      }
      case Value::Kind::Dict: {
        Dict d;
        for (const auto& [k, x] : v.dict().items) d.items.emplace_back(k, lift(x));
        return d;
      }
      default: return v;
    }
  }

  bool requires_grad(const Value& sym) const {
    switch (sym.kind()) {
      case Value::Kind::Node: return grad_.count(sym.node()) != 0;
      case Value::Kind::Tensor: return is_param(sym.tensor());
      case Value::Kind::List:
      case Value::Kind::Tuple:
        for (const Value& x : sym.items())
          if (requires_grad(x)) return true;
        return false;
      default: return false;
    }
  }

  // A call_function node of `target` (a full target) on lifted arguments.
  Node* emit_target(const std::string& target, std::vector<Value> args, Dict kwargs = {}) {
    bool rg = false;
    for (Value& a : args) {
      a = lift(a);
      rg = rg || requires_grad(a);
    }
    for (auto& [k, v] : kwargs.items) {
      v = lift(v);
      rg = rg || requires_grad(v);
    }
    Node* n = g_.create_node(Op::CallFunction, target, std::move(args), std::move(kwargs));
    if (rg) grad_.insert(n);
    return n;
  }
  // A call of an aten overload laid out as PyTorch records it: positionals up to the last
  // one that differs from its default, keyword-only arguments as keywords when not default;
  // then the detach autograd records when the op saves its result, and one getitem per
  // element of a tuple result.
  Value emit(const OpDef& aten, std::span<const Value> bound) {
    std::vector<Value> args;
    Dict kwargs;
    std::size_t last = 0;
    const auto& params = aten.params;
    for (std::size_t i = 0; i < params.size(); ++i) {
      const bool is_default = !params[i].required && bound[i] == params[i].default_value;
      if (params[i].keyword_only) {
        if (!is_default) kwargs.items.emplace_back(params[i].name, bound[i]);
      } else if (!is_default) {
        last = i + 1;
      }
    }
    for (std::size_t i = 0; i < last; ++i) args.push_back(bound[i]);
    Node* n = emit_target(aten.target, std::move(args), std::move(kwargs));
    const OpSchema& schema = aten.info->schema;
    if (aten.info->saves_result && grad_.count(n)) emit_target("torch.ops.aten.detach.default", {Value(n)});
    if (schema.returns_tuple) return getitems(n, schema.returns.size());
    return n;
  }
  // A node whose result is a tuple, followed by one getitem per element (fx's proxy does so).
  Tuple getitems(Node* n, std::size_t count) {
    Tuple t;
    for (std::size_t i = 0; i < count; ++i) {
      Node* gi = g_.create_node(Op::CallFunction, "operator.getitem",
                                {Value(n), Value(static_cast<std::int64_t>(i))});
      if (grad_.count(n)) grad_.insert(gi);
      t.items.emplace_back(gi);
    }
    return t;
  }

  Graph& graph() { return g_; }

 private:
  Graph& g_;
  Module& out_;
  std::unordered_set<Tensor, TensorHash> params_;
  std::unordered_map<Tensor, std::string, TensorHash> lifted_;
  std::unordered_set<const Node*> grad_;
  std::int64_t n_param_ = 0, n_tensor_ = 0;
};

// ---- interpretation -----------------------------------------------------------------------

class GraphRun;

class Interp final : public OpRecorder {
 public:
  explicit Interp(Recorder& rec) : rec_(rec) {}

  TV run_module(const std::shared_ptr<Module>& m, std::vector<TV> inputs);

  // OpRecorder, for decompositions.
  Value record(std::string_view aten_overload, std::vector<Value> args, Dict kwargs) override;
  TV call(const std::string& function, std::vector<TV> args, std::vector<std::pair<std::string, TV>> kwargs) override;

  using Constants = std::vector<std::pair<std::string, Tensor>>;

 private:
  using KwTVs = std::vector<std::pair<std::string, TV>>;
  TV run_graph(const Graph& graph, const Module& root, const Constants& constants, std::vector<TV> inputs);
  TV dispatch(Op op, const std::string& target, std::vector<TV> args, KwTVs kwargs);
  TV call_leaf(const Module& m, std::vector<TV> args);
  std::vector<TV> bind_leaf_inputs(const Module& m, std::vector<TV> args, const KwTVs& kwargs);

  friend class GraphRun;
  Recorder& rec_;
};

// One graph interpreted by make_fx: each node's value is its real and its symbolic value
// side by side. Values are dropped after their last use, as the generated code's `x = None`
// lines do, so a capture on large inputs holds no more than a plain run.
class GraphRun final : public BasicInterpreter<TV> {
 public:
  GraphRun(Interp& interp, const Graph& graph, const Module& root, const Interp::Constants& constants)
      : BasicInterpreter(graph, root), interp_(interp), constants_(constants) {}

 private:
  // A failing call names its node (once: the innermost node of a nested graph).
  TV run_node(const Node& n) override {
    if (n.op() == Op::Placeholder || n.op() == Op::GetAttr || n.op() == Op::Output) return BasicInterpreter::run_node(n);
    try {
      return BasicInterpreter::run_node(n);
    } catch (const DisabledTraceError&) {
      throw;
    } catch (const Error& e) {
      const std::string what = e.what();
      if (what.find("(node '") != std::string::npos) throw;
      throw OpError(what + " (node '" + n.name() + "')");
    }
  }
  // A constant the trace made, else the root's parameter or buffer.
  TV get_attr(const Node& n) override {
    for (const auto& [name, c] : constants_)
      if (name == n.target()) return TV{Value(c), Value(c)};
    const Tensor& tensor = root().get_tensor(n.target());
    return TV{Value(tensor), Value(tensor)};
  }
  TV call_function(const Node& n, std::vector<TV> args, Kwargs kwargs) override {
    return interp_.dispatch(Op::CallFunction, n.target(), std::move(args), std::move(kwargs));
  }
  TV call_method(const Node& n, std::vector<TV> args, Kwargs kwargs) override {
    return interp_.dispatch(Op::CallMethod, n.target(), std::move(args), std::move(kwargs));
  }
  TV call_module(const Node& n, std::vector<TV> args, Kwargs kwargs) override {
    auto m = root().get_submodule(n.target());
    if (!kwargs.empty()) args = interp_.bind_leaf_inputs(*m, std::move(args), kwargs);
    return interp_.run_module(m, std::move(args));
  }
  TV fetch(const Value& v) const override {
    switch (v.kind()) {
      case Value::Kind::Node: return env(v.node());
      case Value::Kind::List:
      case Value::Kind::Tuple: {
        std::vector<Value> r, s;
        for (const Value& x : v.items()) {
          TV t = fetch(x);
          r.push_back(std::move(t.real));
          s.push_back(std::move(t.sym));
        }
        if (v.kind() == Value::Kind::List) return {List{std::move(r)}, List{std::move(s)}};
        return {Tuple{std::move(r)}, Tuple{std::move(s)}};
      }
      case Value::Kind::Dict: {
        Dict r, s;
        for (const auto& [k, x] : v.dict().items) {
          TV t = fetch(x);
          r.items.emplace_back(k, std::move(t.real));
          s.items.emplace_back(k, std::move(t.sym));
        }
        return {std::move(r), std::move(s)};
      }
      default: return {v, v};
    }
  }

  Interp& interp_;
  const Interp::Constants& constants_;
};

TV Interp::run_module(const std::shared_ptr<Module>& m, std::vector<TV> inputs) {
  if (auto* gm = dynamic_cast<GraphModule*>(m.get())) {
    // make_fx runs gm.forward: a dirty lazy module is real-recompiled.
    gm->ensure_compiled();
    return run_graph(gm->graph(), *gm, {}, std::move(inputs));
  }
  if (m->is_leaf()) return call_leaf(*m, std::move(inputs));
  if (m->leaf_kind() && m->leaf_kind()->container) {
    // Sequential: children in order.
    if (inputs.size() != 1) fail(m->kind() + " takes 1 input, got " + std::to_string(inputs.size()));
    TV cur = std::move(inputs[0]);
    for (const auto& [name, child] : m->children()) cur = run_module(child, {std::move(cur)});
    return cur;
  }
  // A user module or callable: its graph comes from a symbolic trace.
  auto graph = std::make_shared<Graph>();
  Constants constants;
  {
    Tracer tracer(m, graph);
    std::vector<Value> phs;
    for (const auto& n : m->input_names()) phs.emplace_back(graph->placeholder(n));
    Value out = m->forward(phs);
    tracer.record(Op::Output, "output", {std::move(out)}, {});
    constants = tracer.constants();
  }
  return run_graph(*graph, *m, constants, std::move(inputs));
}

TV Interp::run_graph(const Graph& graph, const Module& root, const Constants& constants, std::vector<TV> inputs) {
  return GraphRun(*this, graph, root, constants).run(std::move(inputs));
}

// Binds the real values (which picks the overload), computes the real result with the
// overload's kernel, and records what the op table says the call records.
TV Interp::dispatch(Op op, const std::string& target, std::vector<TV> args, KwTVs kwargs) {
  const OpRegistry& registry = OpRegistry::global();
  auto overloads = op == Op::CallFunction ? registry.function_overloads(target) : registry.method_overloads(target);
  if (overloads.empty()) {
    fail(std::string("no kernel is registered for ") + (op == Op::CallFunction ? "function '" : "method '") + target + "'");
  }
  std::vector<Value> real_args, sym_args;
  Dict real_kwargs, sym_kwargs;
  bool tensors = false;
  for (const TV& a : args) {
    tensors = tensors || has_tensor(a.real);
    real_args.push_back(a.real);
    sym_args.push_back(a.sym);
  }
  for (const auto& [k, v] : kwargs) {
    tensors = tensors || has_tensor(v.real);
    real_kwargs.items.emplace_back(k, v.real);
    sym_kwargs.items.emplace_back(k, v.sym);
  }
  BoundCall real = bind_overload(overloads, real_args, real_kwargs);
  const OpDef& def = *real.op;
  const OpInfo& info = *def.info;
  Value result = def.kernel(real.args);
  // Python-level computation (numbers, sizes, asserts): a constant of the new graph.
  if (!info.schema.returns_tensor() || (!tensors && !has_tensor(result))) return TV{result, result};

  std::vector<Value> sym = bind_arguments(def, sym_args, sym_kwargs);
  std::vector<TV> bound;
  bound.reserve(sym.size());
  for (std::size_t i = 0; i < sym.size(); ++i) bound.push_back(TV{real.args[i], std::move(sym[i])});
  const OpCall call{bound, result};

  // `a OP b` with only b a Tensor: Python's b.__rOP__(a).
  if (def.form == OpForm::Operator && bound.size() >= 2 && !has_tensor(bound[0].real) &&
      (info.reflected || info.reflected_aten)) {
    if (info.reflected) return TV{result, info.reflected(*this, call)};
    std::vector<Value> swapped{bound[1].sym, bound[0].sym};
    return TV{result, record(info.reflected_aten->target.substr(std::string("torch.ops.aten.").size()), swapped, {})};
  }
  // An op returning Tensor[] records one node; fx's proxy indexes it once per element.
  auto elements = [&](Value sym) -> TV {
    if (sym.is_node() && result.kind() == Value::Kind::Tuple) return TV{result, rec_.getitems(sym.node(), result.items().size())};
    return TV{result, std::move(sym)};
  };
  if (info.make_fx) return elements(info.make_fx(*this, call));
  if (info.make_fx_aten) {
    // The call's arguments, matched by name to the aten overload's (input is self).
    const OpDef& aten = *info.make_fx_aten;
    const auto& own = info.schema.params;
    std::vector<Value> mapped;
    for (const Param& p : aten.params) {
      std::size_t i = 0;
      while (i < own.size() && own[i].name != p.name && !(p.name == "self" && own[i].name == "input")) ++i;
      mapped.push_back(i < own.size() ? bound[i].sym : p.default_value);
    }
    return elements(rec_.emit(aten, mapped));
  }
  // A python op without a decomposition is recorded as it was called.
  Node* n = rec_.emit_target(target, std::move(sym_args), std::move(sym_kwargs));
  if (result.kind() == Value::Kind::Tuple) return TV{result, rec_.getitems(n, result.items().size())};
  return TV{result, Value(n)};
}

Value Interp::record(std::string_view aten_overload, std::vector<Value> args, Dict kwargs) {
  const std::string target = "torch.ops.aten." + std::string(aten_overload);
  const OpDef* aten = OpRegistry::global().function(target);
  if (!aten || aten->form != OpForm::Aten) fail("a decomposition records '" + target + "', which no op table entry declares");
  return rec_.emit(*aten, bind_arguments(*aten, args, kwargs));
}

TV Interp::call(const std::string& function, std::vector<TV> args, KwTVs kwargs) {
  return dispatch(Op::CallFunction, function, std::move(args), std::move(kwargs));
}

// ---- leaf modules ---------------------------------------------------------------------

std::vector<TV> Interp::bind_leaf_inputs(const Module& m, std::vector<TV> args, const KwTVs& kwargs) {
  if (!m.is_leaf()) {
    fail("call_module with keyword arguments: module " + m.kind() +
         " is not of a registered kind, whose forward would name its inputs");
  }
  // The arrangement depends on names and positions only: bind the real and the symbolic
  // values alike and pair them up again.
  std::vector<Value> real, sym;
  Dict real_kw, sym_kw;
  for (const TV& a : args) {
    real.push_back(a.real);
    sym.push_back(a.sym);
  }
  for (const auto& [k, v] : kwargs) {
    real_kw.items.emplace_back(k, v.real);
    sym_kw.items.emplace_back(k, v.sym);
  }
  const ModuleKind& kind = *m.leaf_kind();
  real = kind.bind_inputs(std::move(real), real_kw);
  sym = kind.bind_inputs(std::move(sym), sym_kw);
  std::vector<TV> out;
  for (std::size_t i = 0; i < real.size(); ++i) out.push_back(TV{std::move(real[i]), std::move(sym[i])});
  return out;
}

TV Interp::call_leaf(const Module& m, std::vector<TV> args) {
  const ModuleKind& kind = *m.leaf_kind();
  if (args.size() < kind.inputs.size() && !kind.input_params.empty()) args = bind_leaf_inputs(m, std::move(args), {});
  if (args.size() != kind.inputs.size()) {
    fail(m.kind() + " takes " + std::to_string(kind.inputs.size()) + " input(s), got " + std::to_string(args.size()));
  }
  rec_.add_parameters(m);
  if (kind.call) {
    // The functional call the kind's forward is, decomposed as that call.
    std::vector<TV> call_args;
    KwTVs call_kwargs;
    for (const CallTemplate::Arg& a : kind.call->args) {
      TV v;
      switch (a.source) {
        case CallTemplate::Source::Input: v = args[a.index]; break;
        case CallTemplate::Source::Attribute: v = TV{m.attr(a.name), m.attr(a.name)}; break;
        case CallTemplate::Source::Tensor:
          if (const Tensor* t = m.find_parameter(a.name)) v = TV{Value(*t), Value(*t)};
          else if (const Tensor* b = m.find_buffer(a.name)) v = TV{Value(*b), Value(*b)};
          break;
        case CallTemplate::Source::Literal: v = TV{a.literal, a.literal}; break;
      }
      if (a.keyword.empty()) call_args.push_back(std::move(v));
      else call_kwargs.emplace_back(a.keyword, std::move(v));
    }
    return call(kind.call->target, std::move(call_args), std::move(call_kwargs));
  }
  if (!kind.make_fx) fail("no op-level decomposition for module kind '" + m.kind() + "'");
  std::vector<Value> reals;
  for (const TV& a : args) reals.push_back(a.real);
  Value result = kind.forward(m, reals);
  return TV{result, kind.make_fx(*this, m, OpCall{args, result})};
}

}  // namespace

std::shared_ptr<Module> callable_module(std::function<Value(std::span<const Value>)> fn,
                                        std::vector<std::string> input_names) {
  return module_from_callable(std::move(fn), std::move(input_names));
}

MakeFx::MakeFx(std::shared_ptr<Module> target, bool callable, MakeFxOptions options)
    : target_(std::move(target)), callable_(callable), options_(std::move(options)) {
  if (!target_) throw GraphError("make_fx: null module");
}

OpLevelCapture MakeFx::capture(std::vector<Value> inputs) const {
  OpLevelCapture out;
  out.graph = std::make_shared<Graph>();
  out.root = std::make_shared<Module>(options_.class_name);
  Recorder rec(*out.graph, *out.root);
  rec.add_parameters(*target_);
  std::vector<std::string> names = target_->input_names();
  std::vector<TV> in;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    std::string name = callable_ && i < names.size() ? names[i] + "_1" : "arg" + std::to_string(i) + "_1";
    Node* ph = out.graph->create_node(Op::Placeholder, name, {}, {}, name);
    if (inputs[i].contains_node()) fail("inputs must be real values, not Node references");
    in.push_back(TV{inputs[i], has_tensor(inputs[i]) ? Value(ph) : inputs[i]});
    if (has_tensor(inputs[i]) && !inputs[i].is_tensor()) fail("input " + std::to_string(i) + " must be a Tensor or a constant");
  }
  Interp interp(rec);
  TV result = interp.run_module(target_, std::move(in));
  out.graph->create_node(Op::Output, "output", {rec.lift(result.sym)});
  out.output = std::move(result.real);
  return out;
}

std::shared_ptr<GraphModule> MakeFx::operator()(std::vector<Value> inputs) const {
  OpLevelCapture c = capture(std::move(inputs));
  MakeGraphModuleOptions make;
  make.class_name = options_.class_name;
  make.graph_module_cls = options_.graph_module_cls;
  return make_graph_module(c.root, std::move(c.graph), make);
}

MakeFx make_fx(std::shared_ptr<Module> module, MakeFxOptions options) {
  return MakeFx(std::move(module), false, std::move(options));
}

MakeFx make_fx(const BoundForward& forward, MakeFxOptions options) {
  return MakeFx(forward.self(), false, std::move(options));
}

MakeFx make_fx(std::function<Value(const Value&)> fn, MakeFxOptions options) {
  if (!fn) throw GraphError("make_fx: empty callable");
  auto m = callable_module(
      [fn = std::move(fn)](std::span<const Value> in) -> Value {
        if (in.size() != 1) throw GraphError("make_fx: the callable takes one input");
        return fn(in[0]);
      },
      {"x"});
  return MakeFx(std::move(m), true, std::move(options));
}

MakeFx make_fx(std::function<Value(std::span<const Value>)> fn, std::vector<std::string> input_names,
               MakeFxOptions options) {
  if (!fn) throw GraphError("make_fx: empty callable");
  return MakeFx(callable_module(std::move(fn), std::move(input_names)), true, std::move(options));
}

}  // namespace fxpack
