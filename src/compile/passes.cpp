// compile's graph passes: dead-code elimination, common-subexpression elimination, constant
// folding of parameter-only subgraphs, and fusion of elementwise chains.
#include <unordered_map>
#include <unordered_set>

#include "fused.hpp"
#include "fxpack/compile.hpp"
#include "fxpack/ops.hpp"

namespace fxpack::passes {

namespace {

// What the op table says about a call node's target; nullptr for targets it does not know
// (which are treated as having side effects: nothing is removed, merged or folded).
const OpDef* def_of(const Node* n) {
  const OpRegistry& r = OpRegistry::global();
  if (n->op() == Op::CallFunction) return r.function(n->target());
  if (n->op() == Op::CallMethod) return r.method(n->target());
  return nullptr;
}
const OpInfo* info_of(const Node* n) {
  const OpDef* def = def_of(n);
  return def ? def->info : nullptr;
}

Purity purity_of(const Node* n) {
  const OpInfo* info = info_of(n);
  return info ? info->purity : Purity::SideEffect;
}

bool has_effect(const Node* n) {
  if (n->op() == Op::Placeholder || n->op() == Op::Output) return true;
  if (n->op() != Op::CallFunction && n->op() != Op::CallMethod) return false;
  switch (purity_of(n)) {
    case Purity::Pure:
    case Purity::View:
    case Purity::Nondeterministic: return false;
    case Purity::SideEffect: return true;
    case Purity::InPlace: break;
  }
  // fxpack kernels never write into their inputs, so an in-place op only matters when the
  // input it would have mutated is observed: a placeholder (the caller's tensor), or a
  // value some other node reads.
  if (n->args().empty() || !n->args()[0].is_node()) return true;
  const Node* target = n->args()[0].node();
  return target->op() == Op::Placeholder || target->users().size() > 1;
}

// Pure and view calls (and attribute reads) compute the same value from the same inputs.
bool deterministic(const Node* n) {
  if (n->op() == Op::GetAttr) return true;
  if (n->op() != Op::CallFunction && n->op() != Op::CallMethod) return false;
  const Purity p = purity_of(n);
  return p == Purity::Pure || p == Purity::View;
}

}  // namespace

std::size_t dead_code_elimination(Graph& graph) {
  std::size_t removed = 0;
  std::vector<Node*> nodes(graph.begin(), graph.end());
  for (auto it = nodes.rbegin(); it != nodes.rend(); ++it) {
    Node* n = *it;
    if (n->users().empty() && !has_effect(n)) {
      graph.erase_node(n);
      ++removed;
    }
  }
  return removed;
}

std::size_t common_subexpression_elimination(Graph& graph) {
  std::unordered_map<std::string, Node*> seen;
  std::size_t replaced = 0;
  std::vector<Node*> nodes(graph.begin(), graph.end());
  for (Node* n : nodes) {
    if (!deterministic(n)) continue;
    // Node references print as their (unique) names; constants as their Python repr, which
    // tells 1 from 1.0 and True, and [a] from (a,).
    std::string key(op_name(n->op()));
    key += '|';
    key += n->target();
    key += '|';
    key += python_repr(Value(Tuple{{n->args().begin(), n->args().end()}}));
    key += '|';
    key += python_repr(Value(n->kwargs()));
    auto [it, inserted] = seen.try_emplace(std::move(key), n);
    if (inserted) continue;
    n->replace_all_uses_with(it->second);
    graph.erase_node(n);
    ++replaced;
  }
  return replaced;
}

namespace {

std::string unused_attr_name(const Module& root, std::int64_t& counter) {
  while (true) {
    std::string name = "_folded_constant" + std::to_string(counter++);
    if (!root.find_parameter(name) && !root.find_buffer(name) && !root.find_child(name) && !root.find_attr(name))
      return name;
  }
}

// The value of an argument when every node in it is a known constant; false otherwise.
bool constant_value(const Value& v, const std::unordered_map<const Node*, Tensor>& known, Value& out) {
  switch (v.kind()) {
    case Value::Kind::Node: {
      auto it = known.find(v.node());
      if (it == known.end()) return false;
      out = Value(it->second);
      return true;
    }
    case Value::Kind::List:
    case Value::Kind::Tuple: {
      std::vector<Value> items;
      for (const Value& x : v.items()) {
        Value y;
        if (!constant_value(x, known, y)) return false;
        items.push_back(std::move(y));
      }
      out = v.kind() == Value::Kind::List ? Value(List{std::move(items)}) : Value(Tuple{std::move(items)});
      return true;
    }
    case Value::Kind::Dict: {
      Dict d;
      for (const auto& [k, x] : v.dict().items) {
        Value y;
        if (!constant_value(x, known, y)) return false;
        d.items.emplace_back(k, std::move(y));
      }
      out = Value(std::move(d));
      return true;
    }
    default: out = v; return true;
  }
}

}  // namespace

std::size_t constant_folding(Graph& graph, Module& root) {
  std::unordered_map<const Node*, Tensor> known;  // get_attr tensors and folded results
  std::size_t folded = 0;
  std::int64_t counter = 0;
  const OpRegistry& registry = OpRegistry::global();
  std::vector<Node*> nodes(graph.begin(), graph.end());
  for (Node* n : nodes) {
    if (n->op() == Op::GetAttr) {
      try {
        known.emplace(n, root.get_tensor(n->target()));
      } catch (const Error&) {
        // A get_attr of something that is not a tensor: not a constant.
      }
      continue;
    }
    if (n->op() != Op::CallFunction || !deterministic(n) || n->input_nodes().empty()) continue;
    const OpDef* op = registry.function(n->target());
    if (!op) continue;
    std::vector<Value> args;
    bool ok = true;
    for (const Value& a : n->args()) {
      Value v;
      if (!constant_value(a, known, v)) {
        ok = false;
        break;
      }
      args.push_back(std::move(v));
    }
    Value kw;
    if (!ok || !constant_value(Value(n->kwargs()), known, kw)) continue;
    Value result;
    try {
      auto bound = bind_arguments(*op, args, kw.dict());
      result = op->kernel(bound);
    } catch (const Error&) {
      continue;  // left for run time, where the error names the node
    }
    if (!result.is_tensor()) continue;
    const std::string name = unused_attr_name(root, counter);
    root.register_buffer(name, result.tensor());
    Node* attr;
    {
      auto guard = graph.inserting_before(n);
      attr = graph.create_node(Op::GetAttr, name, {}, {}, name);
    }
    n->replace_all_uses_with(attr);
    graph.erase_node(n);
    known.emplace(attr, result.tensor());
    ++folded;
  }
  return folded;
}

namespace {

using detail::FusedStep;

// The fused step of a node, if it calls the aten overload of a fusable elementwise op (the op
// table's `fusion`) on a tensor argument 0: a unary op with one argument, or a binary op whose
// second argument is a Python number (a tensor operand could broadcast or promote).
bool fusable(const Node* n, FusedStep& step) {
  if (n->op() != Op::CallFunction || !n->kwargs().items.empty()) return false;
  if (n->args().empty() || !n->args()[0].is_node()) return false;
  const OpDef* def = def_of(n);
  if (!def || def->form != OpForm::Aten) return false;
  const OpInfo* info = def->info;
  if (info->fusion == Fusion::None || !info->functor) return false;
  if (info->fusion == Fusion::Unary) {
    if (n->args().size() != 1) return false;
    step = FusedStep{info->functor, Value()};
    return true;
  }
  if (n->args().size() != 2) return false;
  const Value& s = n->args()[1];
  if (s.kind() != Value::Kind::Bool && !s.is_number()) return false;
  step = FusedStep{info->functor, s};
  return true;
}

}  // namespace

std::pair<std::size_t, std::size_t> fuse_elementwise(Graph& graph, std::size_t min_length) {
  if (min_length < 1) min_length = 1;
  std::size_t chains = 0, fused_nodes = 0;
  std::unordered_set<const Node*> done;
  std::vector<Node*> nodes(graph.begin(), graph.end());
  for (Node* head : nodes) {
    if (done.count(head)) continue;
    FusedStep step;
    if (!fusable(head, step)) continue;
    std::vector<Node*> chain{head};
    std::vector<FusedStep> steps{step};
    Node* cur = head;
    while (cur->users().size() == 1) {
      Node* u = cur->users()[0];
      FusedStep s;
      if (!fusable(u, s) || u->args()[0].node() != cur) break;
      chain.push_back(u);
      steps.push_back(s);
      cur = u;
    }
    for (Node* c : chain) done.insert(c);
    if (chain.size() < min_length) continue;
    Node* last = chain.back();
    Node* fused;
    {
      auto guard = graph.inserting_before(last);
      fused = graph.create_node(Op::CallFunction, detail::kFusedTarget,
                                {head->args()[0], detail::fused_ops_value(steps)});
    }
    last->replace_all_uses_with(fused);
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) graph.erase_node(*it);
    ++chains;
    fused_nodes += chain.size();
  }
  return {chains, fused_nodes};
}

}  // namespace fxpack::passes
