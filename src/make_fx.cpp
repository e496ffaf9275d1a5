// make_fx: the target's graph (its own for a GraphModule, a symbolic trace otherwise) is
// interpreted node by node on the real inputs. Every value carries its real content and
// its symbolic form in the new graph (a Node for an emitted tensor, the Tensor itself for a
// parameter/buffer not lifted yet, the constant for anything else); each source node emits
// its aten-level decomposition while the real value is computed with the same kernels.
#include "fxpack/make_fx.hpp"

#include <unordered_map>
#include <unordered_set>

#include "fxpack/disable.hpp"
#include "fxpack/ops.hpp"
#include "fxpack/trace.hpp"
#include "ops/kernels.hpp"

namespace fxpack {

namespace {

[[noreturn]] void fail(const std::string& msg) { throw OpError("make_fx: " + msg); }

// A value during interpretation: its real content and its form in the new graph.
struct TV {
  Value real;
  Value sym;
};

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

List int_list(const std::vector<std::int64_t>& v) {
  List l;
  for (std::int64_t x : v) l.items.emplace_back(x);
  return l;
}

std::vector<std::int64_t> contiguous_strides(const Shape& s) {
  std::vector<std::int64_t> st(s.size());
  std::int64_t acc = 1;
  for (std::size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

// An int or a list of ints as a pair, the way PyTorch's int[2] arguments expand.
List pair_list(const Value& v, const char* what) {
  std::vector<std::int64_t> l = v.int_list();
  if (l.size() == 1) l.push_back(l[0]);
  if (l.size() != 2) fail(std::string(what) + " must be an int or a pair, got " + python_repr(v));
  return int_list(l);
}

bool all_ints_equal(const Value& v, std::int64_t x) {
  for (std::int64_t i : v.int_list())
    if (i != x) return false;
  return true;
}

// Ops whose backward saves their result: autograd records a detach of it (torch 1.13).
bool saves_result(const std::string& aten) {
  return aten == "relu.default" || aten == "relu_.default" || aten == "exp.default" ||
         aten == "tanh.default" || aten == "sigmoid.default";
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
  // torch.ops.aten.<aten> (e.g. "sin.default"), plus the detach autograd records.
  Node* emit(const std::string& aten, std::vector<Value> args, Dict kwargs = {}) {
    Node* n = emit_target("torch.ops.aten." + aten, std::move(args), std::move(kwargs));
    if (saves_result(aten) && grad_.count(n)) emit_target("torch.ops.aten.detach.default", {Value(n)});
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

class Interp {
 public:
  explicit Interp(Recorder& rec) : rec_(rec) {}

  TV run_module(const std::shared_ptr<Module>& m, std::vector<TV> inputs);

 private:
  using Constants = std::vector<std::pair<std::string, Tensor>>;
  TV run_graph(const Graph& graph, const Module& root, const Constants& constants, std::vector<TV> inputs);
  TV call_function(const std::string& target, std::vector<TV> args, std::vector<std::pair<std::string, TV>> kwargs);
  TV call_method(const std::string& method, std::vector<TV> args, std::vector<std::pair<std::string, TV>> kwargs);
  TV call_leaf(const Module& m, std::vector<TV> args);
  TV dispatch(const std::string& canon, std::vector<TV>& b, const OpDef& op);
  TV passthrough(const std::string& target, const OpDef& op, std::vector<TV> args,
                 std::vector<std::pair<std::string, TV>> kwargs);

  TV unary(ops::UnaryOp op, const std::string& aten, const TV& x);
  TV binary(const std::string& canon, const TV& a, const TV& b, const Value& extra);
  TV reshape_alias(const TV& x, const Tensor& real);
  TV linear(const TV& x, const TV& w, const TV* b, const Value& real);

  Recorder& rec_;
};

TV resolve(const Value& v, const std::unordered_map<const Node*, TV>& env) {
  switch (v.kind()) {
    case Value::Kind::Node: return env.at(v.node());
    case Value::Kind::List:
    case Value::Kind::Tuple: {
      std::vector<Value> r, s;
      for (const Value& x : v.items()) {
        TV t = resolve(x, env);
        r.push_back(std::move(t.real));
        s.push_back(std::move(t.sym));
      }
      if (v.kind() == Value::Kind::List) return {List{std::move(r)}, List{std::move(s)}};
      return {Tuple{std::move(r)}, Tuple{std::move(s)}};
    }
    case Value::Kind::Dict: {
      Dict r, s;
      for (const auto& [k, x] : v.dict().items) {
        TV t = resolve(x, env);
        r.items.emplace_back(k, std::move(t.real));
        s.items.emplace_back(k, std::move(t.sym));
      }
      return {std::move(r), std::move(s)};
    }
    default: return {v, v};
  }
}

TV Interp::run_module(const std::shared_ptr<Module>& m, std::vector<TV> inputs) {
  if (auto* gm = dynamic_cast<GraphModule*>(m.get())) {
    // make_fx runs gm.forward: a dirty lazy module is real-recompiled.
    gm->ensure_compiled();
    return run_graph(gm->graph(), *gm, {}, std::move(inputs));
  }
  if (m->is_leaf()) return call_leaf(*m, std::move(inputs));
  if (const ModuleKind* k = OpRegistry::global().module_kind(m->kind()); k && k->container) {
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
  std::unordered_map<const Node*, TV> env;
  // Values are dropped after their last use, as the generated code's `x = None` lines do,
  // so a capture on large inputs holds no more than a plain run.
  std::unordered_map<const Node*, const Node*> last_use;
  for (const Node* n : graph)
    for (const Node* in : n->input_nodes()) last_use[in] = n;
  auto release_inputs = [&](const Node* n) {
    for (const Node* in : n->input_nodes())
      if (last_use[in] == n) env.erase(in);
  };
  std::size_t next = 0;
  for (const Node* n : graph) {
    switch (n->op()) {
      case Op::Placeholder:
        if (next >= inputs.size())
          fail("the graph takes more inputs than the " + std::to_string(inputs.size()) + " given");
        env[n] = std::move(inputs[next++]);
        break;
      case Op::GetAttr: {
        const Tensor* t = nullptr;
        for (const auto& [name, c] : constants)
          if (name == n->target()) t = &c;
        const Tensor& tensor = t ? *t : root.get_tensor(n->target());
        env[n] = TV{Value(tensor), Value(tensor)};
        break;
      }
      case Op::CallFunction:
      case Op::CallMethod:
      case Op::CallModule: {
        std::vector<TV> args;
        for (const Value& a : n->args()) args.push_back(resolve(a, env));
        std::vector<std::pair<std::string, TV>> kwargs;
        for (const auto& [k, v] : n->kwargs().items) kwargs.emplace_back(k, resolve(v, env));
        try {
          if (n->op() == Op::CallFunction) {
            env[n] = call_function(n->target(), std::move(args), std::move(kwargs));
          } else if (n->op() == Op::CallMethod) {
            env[n] = call_method(n->target(), std::move(args), std::move(kwargs));
          } else {
            if (!kwargs.empty()) fail("call_module '" + n->target() + "' with keyword arguments");
            env[n] = run_module(root.get_submodule(n->target()), std::move(args));
          }
        } catch (const DisabledTraceError&) {
          throw;
        } catch (const Error& e) {
          const std::string what = e.what();
          if (what.find("(node '") != std::string::npos) throw;
          throw OpError(what + " (node '" + n->name() + "')");
        }
        release_inputs(n);
        break;
      }
      case Op::Output:
        if (n->args().empty()) return TV{};
        return resolve(n->args()[0], env);
    }
  }
  fail("the graph has no output node");
}

void bind_tv(const OpDef& op, const std::vector<TV>& args, const std::vector<std::pair<std::string, TV>>& kwargs,
          std::vector<TV>& out) {
  std::vector<Value> ra, sa;
  Dict rk, sk;
  for (const TV& a : args) {
    ra.push_back(a.real);
    sa.push_back(a.sym);
  }
  for (const auto& [k, v] : kwargs) {
    rk.items.emplace_back(k, v.real);
    sk.items.emplace_back(k, v.sym);
  }
  auto br = bind_arguments(op, ra, rk);
  auto bs = bind_arguments(op, sa, sk);
  out.clear();
  for (std::size_t i = 0; i < br.size(); ++i) out.push_back(TV{std::move(br[i]), std::move(bs[i])});
}

// Source targets → canonical op names.
std::string canonical_function(const std::string& target) {
  static const std::unordered_map<std::string, std::string> table = {
      {"torch.sin", "sin"}, {"torch.cos", "cos"}, {"torch.exp", "exp"}, {"torch.tanh", "tanh"},
      {"torch.sigmoid", "sigmoid"}, {"torch.relu", "relu"}, {"torch.neg", "neg"}, {"torch.abs", "abs"},
      {"operator.neg", "neg"}, {"torch.nn.functional.relu", "relu_fn"}, {"torch.clamp", "clamp"},
      {"torch.add", "add"}, {"operator.add", "add"}, {"torch.sub", "sub"}, {"operator.sub", "sub"},
      {"torch.mul", "mul"}, {"operator.mul", "mul"}, {"torch.div", "div"}, {"operator.truediv", "div"},
      {"torch.flatten", "flatten"}, {"torch.reshape", "reshape"}, {"torch.permute", "permute"},
      {"torch.transpose", "transpose"}, {"torch.t", "t"}, {"operator.getitem", "getitem"},
      {"torch.matmul", "matmul"}, {"operator.matmul", "matmul"}, {"torch.nn.functional.linear", "linear"},
      {"torch.sum", "sum"}, {"torch.mean", "mean"},
  };
  auto it = table.find(target);
  return it == table.end() ? std::string() : it->second;
}

std::string canonical_method(const std::string& m) {
  static const std::unordered_set<std::string> names = {
      "sin", "cos", "exp", "tanh", "sigmoid", "relu", "neg", "abs", "clamp", "add", "sub", "mul", "div",
      "flatten", "reshape", "view", "permute", "transpose", "t", "matmul", "sum", "mean", "contiguous", "size"};
  return names.count(m) ? m : std::string();
}

TV Interp::call_function(const std::string& target, std::vector<TV> args,
                         std::vector<std::pair<std::string, TV>> kwargs) {
  const OpDef* op = OpRegistry::global().function(target);
  if (!op) fail("no kernel is registered for function '" + target + "'");
  std::string canon = target.starts_with("torch.ops.") ? std::string() : canonical_function(target);
  if (canon.empty()) return passthrough(target, *op, std::move(args), std::move(kwargs));
  std::vector<TV> b;
  bind_tv(*op, args, kwargs, b);
  return dispatch(canon, b, *op);
}

TV Interp::call_method(const std::string& method, std::vector<TV> args,
                       std::vector<std::pair<std::string, TV>> kwargs) {
  const OpDef* op = OpRegistry::global().method(method);
  if (!op) fail("no kernel is registered for method '" + method + "'");
  std::vector<TV> b;
  bind_tv(*op, args, kwargs, b);
  std::string canon = canonical_method(method);
  if (canon.empty()) {
    bool tensors = false;
    for (const TV& x : b) tensors = tensors || has_tensor(x.real);
    if (tensors) fail("no op-level form for method '" + method + "'");
  }
  return dispatch(canon, b, *op);
}

// Any other function: computed by its kernel and recorded as is (aten targets of a graph
// that make_fx made already, fxpack's own ops). Tuple results get their getitems.
TV Interp::passthrough(const std::string& target, const OpDef& op, std::vector<TV> args,
                       std::vector<std::pair<std::string, TV>> kwargs) {
  std::vector<TV> b;
  bind_tv(op, args, kwargs, b);
  std::vector<Value> reals;
  for (TV& x : b) reals.push_back(x.real);
  Value real = op.kernel(reals);
  const bool aten = target.starts_with("torch.ops.");
  bool tensors = false;
  for (const TV& x : b) tensors = tensors || has_tensor(x.real);
  if (!aten && !tensors) return TV{real, real};
  if (target == "operator.getitem" && args.size() == 2) {
    const Value& s = args[0].sym;
    if (s.kind() == Value::Kind::Tuple || s.kind() == Value::Kind::List) return TV{real, ops::getitem(s, args[1].sym)};
  }
  std::vector<Value> sa;
  for (TV& a : args) sa.push_back(a.sym);
  Dict sk;
  for (auto& [k, v] : kwargs) sk.items.emplace_back(k, v.sym);
  if (aten && target.starts_with("torch.ops.aten.")) {
    const std::string name = target.substr(std::string("torch.ops.aten.").size());
    Node* n = rec_.emit(name, std::move(sa), std::move(sk));
    if (real.kind() == Value::Kind::Tuple) return TV{real, rec_.getitems(n, real.items().size())};
    return TV{real, Value(n)};
  }
  Node* n = rec_.emit_target(target, std::move(sa), std::move(sk));
  if (real.kind() == Value::Kind::Tuple) return TV{real, rec_.getitems(n, real.items().size())};
  return TV{real, Value(n)};
}

TV Interp::unary(ops::UnaryOp op, const std::string& aten, const TV& x) {
  Tensor real = ops::unary(op, x.real.tensor());
  return TV{Value(std::move(real)), Value(rec_.emit(aten, {x.sym}))};
}

TV Interp::reshape_alias(const TV& x, const Tensor& real) {
  return TV{Value(real), Value(rec_.emit("_reshape_alias.default",
                                         {x.sym, int_list(real.shape().to_vector()),
                                          int_list(contiguous_strides(real.shape()))}))};
}

// add/sub/mul/div with at least one tensor operand. `extra` is alpha (add/sub) or
// rounding_mode (div), None when absent.
TV Interp::binary(const std::string& canon, const TV& a, const TV& b, const Value& extra) {
  Value real;
  if (canon == "add") real = ops::add(a.real, b.real, extra.is_none() ? Value(std::int64_t{1}) : extra);
  else if (canon == "sub") real = ops::sub(a.real, b.real, extra.is_none() ? Value(std::int64_t{1}) : extra);
  else if (canon == "mul") real = ops::mul(a.real, b.real);
  else real = ops::div(a.real, b.real, extra);
  const bool alpha_given = (canon == "add" || canon == "sub") && !extra.is_none() &&
                           !(extra.is_int() && extra.to_int() == 1);
  Dict kw;
  if (alpha_given) kw.items.emplace_back("alpha", extra);
  if (a.real.is_tensor()) {
    if (canon == "div" && !extra.is_none()) {
      kw.items.emplace_back("rounding_mode", extra);
      return TV{real, Value(rec_.emit("div.Tensor_mode", {a.sym, b.sym}, std::move(kw)))};
    }
    return TV{real, Value(rec_.emit(canon + ".Tensor", {a.sym, b.sym}, std::move(kw)))};
  }
  // A number on the left: Tensor.__radd__ / __rmul__ / __rsub__ / __rdiv__.
  if (canon == "add" || canon == "mul") return TV{real, Value(rec_.emit(canon + ".Tensor", {b.sym, a.sym}, std::move(kw)))};
  if (canon == "sub") {
    std::vector<Value> args{b.sym, a.sym};
    if (alpha_given) args.push_back(extra);
    return TV{real, Value(rec_.emit("rsub.Scalar", std::move(args)))};
  }
  if (!extra.is_none()) fail("div with rounding_mode and a number dividend is not supported");
  Node* r = rec_.emit("reciprocal.default", {b.sym});
  return TV{real, Value(rec_.emit("mul.Tensor", {Value(r), a.sym}))};
}

// at::linear: 2-D input with bias -> addmm(b, x, w.t()); otherwise matmul (+ add).
TV Interp::linear(const TV& x, const TV& w, const TV* b, const Value& real) {
  const Tensor& xt = x.real.tensor();
  Node* t = rec_.emit("t.default", {w.sym});
  if (xt.dim() == 2) {
    if (b) return TV{real, Value(rec_.emit("addmm.default", {b->sym, x.sym, Value(t)}))};
    return TV{real, Value(rec_.emit("mm.default", {x.sym, Value(t)}))};
  }
  Node* mm = rec_.emit("matmul.default", {x.sym, Value(t)});
  if (!b) return TV{real, Value(mm)};
  return TV{real, Value(rec_.emit("add.Tensor", {Value(mm), b->sym}))};
}

TV Interp::dispatch(const std::string& canon, std::vector<TV>& b, const OpDef& op) {
  bool tensors = false;
  for (const TV& x : b) tensors = tensors || has_tensor(x.real);
  if (!tensors || canon.empty()) {
    // Python-level computation (numbers, sizes): a constant of the new graph.
    std::vector<Value> reals;
    for (TV& x : b) reals.push_back(x.real);
    Value r = op.kernel(reals);
    return TV{r, r};
  }
  if (canon == "getitem") {
    const Value& s = b[0].sym;
    if (s.kind() == Value::Kind::Tuple || s.kind() == Value::Kind::List)
      return TV{ops::getitem(b[0].real, b[1].real), ops::getitem(s, b[1].sym)};
    fail("indexing a Tensor is not supported");
  }
  using U = ops::UnaryOp;
  static const std::unordered_map<std::string, U> unaries = {
      {"sin", U::Sin}, {"cos", U::Cos}, {"exp", U::Exp}, {"tanh", U::Tanh},
      {"sigmoid", U::Sigmoid}, {"relu", U::Relu}, {"neg", U::Neg}, {"abs", U::Abs}};
  if (auto it = unaries.find(canon); it != unaries.end()) {
    if (!b[0].real.is_tensor()) fail(canon + ": expected a Tensor");
    return unary(it->second, canon + ".default", b[0]);
  }
  if (canon == "relu_fn") {
    const bool inplace = b.size() > 1 && b[1].real.kind() == Value::Kind::Bool && b[1].real.to_bool();
    return unary(U::Relu, inplace ? "relu_.default" : "relu.default", b[0]);
  }
  if (canon == "add" || canon == "sub" || canon == "mul" || canon == "div") {
    if (!b[0].real.is_tensor() && !b[1].real.is_tensor()) fail(canon + ": expected a Tensor operand");
    return binary(canon, b[0], b[1], b.size() > 2 ? b[2].real : Value());
  }
  const TV& x = b[0];
  if (!x.real.is_tensor()) fail(canon + ": expected a Tensor, got " + std::string(kind_name(x.real.kind())));
  const Tensor& xt = x.real.tensor();
  if (canon == "clamp") {
    Tensor real = ops::clamp(xt, b[1].real, b[2].real);
    const bool tensor_bounds = b[1].real.is_tensor() || b[2].real.is_tensor();
    std::vector<Value> args{x.sym, b[1].sym};
    if (!b[2].real.is_none()) args.push_back(b[2].sym);
    return TV{Value(std::move(real)), Value(rec_.emit(tensor_bounds ? "clamp.Tensor" : "clamp.default", std::move(args)))};
  }
  if (canon == "flatten") {
    const auto nd = static_cast<std::int64_t>(xt.dim());
    if (nd == 0) return reshape_alias(x, ops::reshape(xt, std::vector<std::int64_t>{1}));
    auto wrap = [&](std::int64_t d) { return d < 0 ? d + nd : d; };
    if (wrap(b[1].real.to_int()) == wrap(b[2].real.to_int())) return x;  // torch.flatten returns self
    return reshape_alias(x, ops::flatten(xt, b[1].real.to_int(), b[2].real.to_int()));
  }
  if (canon == "reshape") return reshape_alias(x, ops::reshape(xt, b[1].real.int_list()));
  if (canon == "view") {
    Tensor real = ops::reshape(xt, b[1].real.int_list(), "view");
    return TV{Value(std::move(real)), Value(rec_.emit("view.default", {x.sym, int_list(b[1].real.int_list())}))};
  }
  if (canon == "permute") {
    Tensor real = ops::permute(xt, b[1].real.int_list());
    return TV{Value(std::move(real)), Value(rec_.emit("permute.default", {x.sym, int_list(b[1].real.int_list())}))};
  }
  if (canon == "transpose") {
    Tensor real = ops::transpose(xt, b[1].real.to_int(), b[2].real.to_int());
    return TV{Value(std::move(real)), Value(rec_.emit("transpose.int", {x.sym, b[1].sym, b[2].sym}))};
  }
  if (canon == "t") return TV{Value(ops::t(xt)), Value(rec_.emit("t.default", {x.sym}))};
  if (canon == "contiguous") return x;  // fxpack tensors are contiguous: returns self
  if (canon == "matmul") {
    if (!b[1].real.is_tensor()) fail("matmul: expected a Tensor");
    const Tensor& yt = b[1].real.tensor();
    Tensor real = ops::matmul(xt, yt);
    const bool mm = xt.dim() == 2 && yt.dim() == 2;
    return TV{Value(std::move(real)), Value(rec_.emit(mm ? "mm.default" : "matmul.default", {x.sym, b[1].sym}))};
  }
  if (canon == "linear") {
    if (!b[1].real.is_tensor()) fail("linear: expected a weight Tensor");
    const Tensor* bias = b[2].real.is_tensor() ? &b[2].real.tensor() : nullptr;
    Value real(ops::linear(xt, b[1].real.tensor(), bias));
    return linear(x, b[1], bias ? &b[2] : nullptr, real);
  }
  if (canon == "sum" || canon == "mean") {
    std::vector<Value> reals;
    for (TV& v : b) reals.push_back(v.real);
    Value real = op.kernel(reals);
    const std::string name = canon;
    Value dim = b[1].real, dtype = b[3].real;
    if (dim.kind() == Value::Kind::DType) {
      dtype = dim;
      dim = Value();
    }
    Dict kw;
    if (!dtype.is_none()) kw.items.emplace_back("dtype", dtype);
    std::vector<std::int64_t> dims;
    if (!dim.is_none()) dims = dim.int_list();
    if (dims.empty()) return TV{real, Value(rec_.emit(name + ".default", {x.sym}, std::move(kw)))};
    std::vector<Value> args{x.sym, int_list(dims)};
    if (b[2].real.to_bool()) args.emplace_back(true);
    return TV{real, Value(rec_.emit(name == "sum" ? "sum.dim_IntList" : "mean.dim", std::move(args), std::move(kw)))};
  }
  if (canon == "size") {
    std::vector<Value> reals;
    for (TV& v : b) reals.push_back(v.real);
    Value r = op.kernel(reals);
    return TV{r, r};
  }
  fail("no op-level form for '" + canon + "'");
}

// ---- leaf modules ---------------------------------------------------------------------

const Value& attr(const Module& m, const char* name) { return m.attr(name); }

TV Interp::call_leaf(const Module& m, std::vector<TV> args) {
  const ModuleKind* kind = OpRegistry::global().module_kind(m.kind());
  if (!kind || !kind->forward) fail("module kind '" + m.kind() + "' has no kernel");
  if (args.size() != 1) fail(m.kind() + " takes 1 input, got " + std::to_string(args.size()));
  const TV& x = args[0];
  if (!x.real.is_tensor()) fail(m.kind() + ": expected a Tensor input");
  std::vector<Value> reals{x.real};
  Value real = kind->forward(m, reals);
  const Tensor& xt = x.real.tensor();
  const std::string& k = m.kind();
  rec_.add_parameters(m);

  if (k == "Linear") {
    const Tensor* bias = m.find_parameter("bias");
    TV w{Value(m.parameter("weight")), Value(m.parameter("weight"))};
    TV bv{bias ? Value(*bias) : Value(), bias ? Value(*bias) : Value()};
    return linear(x, w, bias ? &bv : nullptr, real);
  }
  if (k == "ReLU") {
    const Value* inplace = m.find_attr("inplace");
    const bool ip = inplace && inplace->kind() == Value::Kind::Bool && inplace->to_bool();
    return TV{real, Value(rec_.emit(ip ? "relu_.default" : "relu.default", {x.sym}))};
  }
  if (k == "Conv2d") {
    const Tensor& w = m.parameter("weight");
    const Tensor* bias = m.find_parameter("bias");
    Value padding = attr(m, "padding");
    const List dilation = pair_list(attr(m, "dilation"), "Conv2d dilation");
    if (const auto* s = std::get_if<std::string>(&padding.variant())) {
      if (*s == "valid") {
        padding = int_list({0, 0});
      } else {
        std::vector<std::int64_t> p;
        for (std::size_t i = 0; i < 2; ++i) {
          const std::int64_t total = dilation.items[i].to_int() * (w.shape()[2 + i] - 1);
          if (total % 2) fail("Conv2d: padding='same' with asymmetric padding is not supported");
          p.push_back(total / 2);
        }
        padding = int_list(p);
      }
    }
    Value out_pad = m.find_attr("output_padding") ? Value(pair_list(attr(m, "output_padding"), "output_padding"))
                                                   : Value(int_list({0, 0}));
    Node* n = rec_.emit("convolution.default",
                        {x.sym, Value(w), bias ? Value(*bias) : Value(), pair_list(attr(m, "stride"), "Conv2d stride"),
                         pair_list(padding, "Conv2d padding"), dilation, Value(false), out_pad, attr(m, "groups")});
    return TV{real, Value(n)};
  }
  if (k == "BatchNorm2d") {
    const Tensor* rm = m.find_buffer("running_mean");
    const Tensor* rv = m.find_buffer("running_var");
    const Tensor* w = m.find_parameter("weight");
    const Tensor* bias = m.find_parameter("bias");
    // _batch_norm_impl_index allocates an empty reserve before native_batch_norm.
    Dict ekw;
    ekw.items.emplace_back("dtype", Value(DType::UInt8));
    ekw.items.emplace_back("layout", Value(Layout::Strided));
    ekw.items.emplace_back("device", Value(Device{}));
    rec_.emit("empty.memory_format", {int_list({0})}, std::move(ekw));
    const Value& mom = attr(m, "momentum");
    const bool training = rm == nullptr || rv == nullptr;
    Node* n = rec_.emit("native_batch_norm.default",
                        {x.sym, w ? Value(*w) : Value(), bias ? Value(*bias) : Value(), rm ? Value(*rm) : Value(),
                         rv ? Value(*rv) : Value(), Value(training), mom.is_none() ? Value(0.0) : Value(mom.to_double()),
                         Value(attr(m, "eps").to_double())});
    Tuple items = rec_.getitems(n, 3);
    return TV{real, items.items[0]};
  }
  if (k == "MaxPool2d") {
    List ks = pair_list(attr(m, "kernel_size"), "MaxPool2d kernel_size");
    const Value& st = attr(m, "stride");
    const bool stride_default = st.is_none() || ((st.kind() == Value::Kind::List || st.kind() == Value::Kind::Tuple) &&
                                                 st.items().empty());
    std::vector<Value> a{x.sym, ks, stride_default ? Value(List{}) : Value(pair_list(st, "MaxPool2d stride")),
                         pair_list(attr(m, "padding"), "MaxPool2d padding"),
                         pair_list(attr(m, "dilation"), "MaxPool2d dilation"), attr(m, "ceil_mode")};
    // Leave out trailing arguments equal to their defaults (stride=[], padding=0, dilation=1, ceil_mode=False).
    while (a.size() > 2) {
      const Value& last = a.back();
      const std::size_t i = a.size() - 1;
      bool is_default = (i == 5 && !last.to_bool()) || (i == 4 && all_ints_equal(last, 1)) ||
                        (i == 3 && all_ints_equal(last, 0)) || (i == 2 && last.items().empty());
      if (!is_default) break;
      a.pop_back();
    }
    Node* n = rec_.emit("max_pool2d_with_indices.default", std::move(a));
    Tuple items = rec_.getitems(n, 2);
    const Value* ri = m.find_attr("return_indices");
    if (ri && ri->kind() == Value::Kind::Bool && ri->to_bool()) return TV{real, Value(items)};
    return TV{real, items.items[0]};
  }
  if (k == "AdaptiveAvgPool2d") {
    const Value& os = attr(m, "output_size");
    std::vector<Value> parts = (os.kind() == Value::Kind::Tuple || os.kind() == Value::Kind::List)
                                   ? os.items()
                                   : std::vector<Value>{os, os};
    std::vector<std::int64_t> size;
    for (std::size_t i = 0; i < 2; ++i)
      size.push_back(parts[i].is_none() ? xt.shape()[xt.dim() - 2 + i] : parts[i].to_int());
    if (size[0] == 1 && size[1] == 1)
      return TV{real, Value(rec_.emit("mean.dim", {x.sym, int_list({-1, -2}), Value(true)}))};
    return TV{real, Value(rec_.emit("_adaptive_avg_pool2d.default", {x.sym, int_list(size)}))};
  }
  fail("no op-level decomposition for module kind '" + k + "'");
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
