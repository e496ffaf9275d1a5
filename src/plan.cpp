#include "fxpack/plan.hpp"

#include <array>
#include <bit>

#include "inference/program.hpp"
#include "sole_owner.hpp"

namespace fxpack {

namespace {
// "call_function operator.add"
std::string op_and_target(const Node* n) {
  std::string out(op_name(n->op()));
  out += ' ';
  out += n->target();
  return out;
}
// "node 'add' (call_function operator.add)": a node while it is compiled, and an
// instruction's (Plan::where) from what the plan kept of it.
std::string describe(std::string_view name, std::string_view op_and_target) {
  std::string out = "node '";
  out += name;
  out += "' (";
  out += op_and_target;
  out += ')';
  return out;
}
std::string describe(const Node* n) { return describe(n->name(), op_and_target(n)); }
}  // namespace

// Compiles the nodes of a graph into the plan's instructions, one node at a time: slot i
// holds the value of the i-th node, computed by instruction i.
struct Plan::Builder {
  Builder(Plan& p, const Module& r, const LastUses& u) : plan(p), root(r), uses(u) {}

  Plan& plan;
  const Module& root;
  const LastUses& uses;  // current for the graph: slot i is position i
  const OpRegistry& registry = OpRegistry::global();
  std::vector<std::string> missing;  // call targets without a kernel, reported together
  // Each call target's overloads, looked up in the registry once: the graph interns targets,
  // so one address stands for one name (per kind: a function and a method may share it).
  detail::PointerIndex<std::string> function_index, method_index;
  std::vector<std::span<const OpDef* const>> overloads_by_index;
  // Each op kind's targets' index in plan.targets_, by the interned target's address.
  std::array<detail::PointerIndex<std::string>, static_cast<std::size_t>(Op::Output) + 1> target_index;

  std::span<const OpDef* const> overloads_of(const Node* n) {
    const bool function = n->op() == Op::CallFunction;
    auto [index, added] = (function ? function_index : method_index)
                              .try_emplace(&n->target(), static_cast<std::uint32_t>(overloads_by_index.size()));
    if (added)
      overloads_by_index.push_back(function ? registry.function_overloads(n->target())
                                            : registry.method_overloads(n->target()));
    return overloads_by_index[index];
  }

  // Where an argument comes from: the slot of a node, a scalar the operand holds, or a
  // constant (nested: holding nodes).
  Operand operand(const Value& v) const {
    using Source = Operand::Source;
    switch (v.kind()) {
      case Value::Kind::Node: return {uses.position(v.node()), Source::Slot};
      case Value::Kind::None: return {0, Source::None};
      case Value::Kind::Bool: return {v.to_bool() ? 1u : 0u, Source::Bool};
      case Value::Kind::Int:
        if (const std::int64_t i = v.to_int(); i == static_cast<std::int32_t>(i))
          return {static_cast<std::uint32_t>(static_cast<std::int32_t>(i)), Source::Int};
        break;
      case Value::Kind::Double:
        // Bit for bit (-0.0 stays negative; a NaN's payload is kept).
        if (const double d = v.to_double();
            std::bit_cast<std::uint64_t>(static_cast<double>(static_cast<float>(d))) == std::bit_cast<std::uint64_t>(d))
          return {std::bit_cast<std::uint32_t>(static_cast<float>(d)), Source::Float};
        break;
      default: break;
    }
    const bool nested = v.contains_node();
    // Resolved per run, when the graph may have changed: the plan keeps these slots.
    if (nested)
      (void)map_nodes(v, [&](const Node* n) {
        plan.slot_of_.try_emplace(n, uses.position(n));
        return Value();
      });
    plan.blocks_.constants.push_back(v);
    return {static_cast<std::uint32_t>(plan.blocks_.constants.size() - 1), nested ? Source::Nested : Source::Constant};
  }

  void placeholder(const Node* n, Instr& in) {
    in.kind = Kind::Input;
    const auto index = static_cast<std::int32_t>(plan.num_inputs_++);
    const std::string& t = n->target();
    // A placeholder's one argument is its default value; `**kwargs` defaults to {}.
    Value def = !n->args().empty() ? n->args()[0] : t.starts_with("**") ? Value(Dict{}) : Value();
    if (t.starts_with("*") && !t.starts_with("**")) plan.varargs_ = index;
    if (n->args().empty() && !t.starts_with("*") && plan.num_required_ == static_cast<std::size_t>(index))
      plan.num_required_ = plan.num_inputs_;
    plan.defaults_.push_back(std::move(def));
    plan.blocks_.operands.push_back({static_cast<std::uint32_t>(index), Operand::Source::Slot});
  }

  void get_attr(const Node* n, Instr& in) const {
    in.kind = Kind::Constant;
    plan.blocks_.operands.push_back(operand(Value(root.get_tensor(n->target()))));
  }

  // A call_function or call_method; false (and the target noted in `missing`) when no op
  // has that name.
  bool call(const Node* n, Instr& in) {
    const std::span<const OpDef* const> overloads = overloads_of(n);
    if (overloads.empty()) {
      missing.push_back(describe(n));
      return false;
    }
    // Bind now when the argument kinds known at build time leave one overload.
    const OpDef* chosen = nullptr;
    std::vector<Value> bound;
    std::size_t fits = 0;
    for (const OpDef* def : overloads) {
      try {
        std::vector<Value> b = bind_arguments(*def, n->args(), n->kwargs());
        if (++fits == 1) {
          chosen = def;
          bound = std::move(b);
        }
      } catch (const OpError&) {
        if (overloads.size() == 1) throw;
      }
    }
    if (fits == 0) (void)bind_overload(overloads, n->args(), n->kwargs());  // throws the listing
    if (fits == 1) kernel(*chosen, bound, in);
    else overloaded(overloads, n, in);
    return true;
  }

  // The one overload that fits, bound at build time.
  void kernel(const OpDef& chosen, const std::vector<Value>& bound, Instr& in) const {
    in.kind = Kind::Kernel;
    in.op = &chosen;
    for (std::size_t i = 0; i < bound.size(); ++i) {
      Operand op = operand(bound[i]);
      op.check = (op.from_slot() || op.nested()) && chosen.params[i].type.base != ArgType::Any;
      plan.blocks_.operands.push_back(op);
    }
  }

  // Several overloads fit the kinds known now: chosen per run, by the values that arrive.
  void overloaded(std::span<const OpDef* const> overloads, const Node* n, Instr& in) const {
    in.kind = Kind::Overloaded;
    Overloads o;
    o.defs = overloads;
    for (const Value& a : n->args()) plan.blocks_.operands.push_back(operand(a));
    for (const auto& [k, v] : n->kwargs().items) {
      o.kwarg_names.push_back(k);
      plan.blocks_.operands.push_back(operand(v));
    }
    in.extra = static_cast<std::uint32_t>(plan.overloads_.size());
    plan.overloads_.push_back(std::move(o));
  }

  void call_module(const Node* n, Instr& in) const {
    auto mod = root.get_submodule(n->target());
    in.kind = Kind::Module;
    // A leaf kind declares forward's inputs: keywords bind to them here, once. A user
    // module's forward takes positional inputs only.
    std::vector<Value> inputs(n->args().begin(), n->args().end());
    if (!n->kwargs().items.empty()) {
      if (!mod->leaf_kind())
        throw OpError("call_module with keyword arguments: module " + mod->kind() +
                      " is not of a registered kind, whose forward would name its inputs");
      inputs = mod->leaf_kind()->bind_inputs(std::move(inputs), n->kwargs());
    }
    in.extra = static_cast<std::uint32_t>(plan.modules_.size());
    plan.modules_.push_back(std::move(mod));
    for (const Value& a : inputs) plan.blocks_.operands.push_back(operand(a));
  }

  // Compiles node `n` into `in`; false when it has no kernel (noted in `missing`).
  bool compile(const Node* n, Instr& in) {
    switch (n->op()) {
      case Op::Placeholder: placeholder(n, in); break;
      case Op::GetAttr: get_attr(n, in); break;
      case Op::CallFunction:
      case Op::CallMethod: return call(n, in);
      case Op::CallModule: call_module(n, in); break;
      case Op::Output: break;
    }
    return true;
  }

  // What Plan::where says of `in`: the node's name, and its op and target once per plan.
  void note_where(const Node* n, Instr& in) {
    plan.blocks_.names += n->name();
    in.name_end = static_cast<std::uint32_t>(plan.blocks_.names.size());
    auto [index, added] = target_index[static_cast<std::size_t>(n->op())].try_emplace(
        &n->target(), static_cast<std::uint32_t>(plan.targets_.size()));
    if (added) plan.targets_.push_back(op_and_target(n));
    in.target = index;
  }

  void throw_if_missing() const {
    if (missing.empty()) return;
    std::string msg = "cannot build plan: no kernel for " + std::to_string(missing.size()) +
                      (missing.size() == 1 ? " target: " : " targets: ");
    for (std::size_t i = 0; i < missing.size(); ++i) msg += (i ? "; " : "") + missing[i];
    throw OpError(msg);
  }
};

std::shared_ptr<const Plan> Plan::build(const Graph& graph, const Module& root, const PlanOptions& options) {
  auto plan = build_instructions(graph, root, options);
  plan->prepare_inference(graph);
  return plan;
}

void Plan::prepare_inference(const Graph& graph) const {
  if (inference_ready_.load(std::memory_order_acquire)) return;
  std::lock_guard lock(inference_mu_);
  if (inference_ready_.load(std::memory_order_relaxed)) return;  // built while we waited
  if (wants_inference_ && &graph == source_graph_ && graph.structure_generation() == source_generation_) {
    try {
      inference_ = inference::Program::build(*this, graph);
    } catch (const Error&) {
      // Decided all the same: the plan runs plain, and no later call builds again.
      inference_error_ = std::current_exception();
    }
  }
  inference_ready_.store(true, std::memory_order_release);
}

std::exception_ptr Plan::inference_error() const {
  return inference_ready_.load(std::memory_order_acquire) ? inference_error_ : nullptr;
}

// A typical name's length ("relu_12345"): names is reserved for this many per node, so that
// it seldom grows (and copies itself) while built.
constexpr std::size_t kNameBytesPerNode = 16;

std::shared_ptr<const Plan> Plan::build_instructions(const Graph& graph, const Module& root,
                                                     const PlanOptions& options) {
  return build_instructions(graph, root, options, graph.last_uses());
}

std::shared_ptr<const Plan> Plan::build_instructions(const Graph& graph, const Module& root,
                                                     const PlanOptions& options, LastUses uses) {
  return build_instructions(graph, root, options, std::move(uses), Storage{});
}

Plan::Storage Plan::recycle(std::shared_ptr<const Plan> plan) {
  Storage s;
  if (!detail::sole_owner(plan)) return s;  // nobody else can reach it any more
  // Built non-const by build_instructions; sole owner here.
  Plan& p = const_cast<Plan&>(*plan);
  p.inference_.reset();  // the program reads the plan while it goes
  s.blocks_ = std::move(p.blocks_);
  s.blocks_.instrs.clear();
  s.blocks_.operands.clear();
  s.blocks_.constants.clear();  // the captured tensors go now
  s.blocks_.frees.clear();
  s.blocks_.names.clear();
  return s;
}

std::shared_ptr<const Plan> Plan::build_instructions(const Graph& graph, const Module& root,
                                                     const PlanOptions& options, LastUses uses,
                                                     Storage storage) {
  uses.check_current(graph, "Plan::build_instructions");
  auto plan = std::shared_ptr<Plan>(new Plan);
  Blocks& b = plan->blocks_;
  b = std::move(storage.blocks_);
  Builder builder(*plan, root, uses);
  b.instrs.reserve(graph.size());
  b.operands.reserve(2 * graph.size());  // most nodes take one or two
  b.frees.reserve(graph.size());         // a value dies at most once
  b.names.reserve(graph.size() * kNameBytesPerNode);
  // Instruction i frees the slots whose last use it is (what the output reads lives to the
  // end). Slot i is the i-th node: the analysis's positions.
  std::uint32_t next_slot = 0;
  for (const Node* n : graph) {
    if (n->op() == Op::Output) {
      plan->output_ = n->args().empty() ? Operand{} : builder.operand(n->args()[0]);
      break;
    }
    Instr in;
    for (const Node* dead : uses.at(next_slot)) b.frees.push_back(uses.position(dead));
    in.frees_end = static_cast<std::uint32_t>(b.frees.size());
    ++next_slot;
    try {
      if (!builder.compile(n, in)) continue;
    } catch (const Error& e) {
      rethrow_with_context<OpError>(e, describe(n));
    }
    in.operands_end = static_cast<std::uint32_t>(b.operands.size());
    builder.note_where(n, in);
    b.instrs.push_back(in);
  }
  builder.throw_if_missing();
  plan->num_slots_ = next_slot;
  plan->wants_inference_ = options.optimize_for_inference;
  plan->source_graph_ = &graph;
  plan->source_generation_ = graph.structure_generation();
  return plan;
}

std::string Plan::inference_summary() const {
  const inference::Program* p = program();
  return p ? p->summary() : std::string();
}

Plan::InferenceStats Plan::inference_stats() const {
  const inference::Program* p = program();
  return p ? p->stats() : InferenceStats{};
}

std::string Plan::where(std::size_t i) const {
  const auto [begin, end] = part(i, &Instr::name_end);
  return describe(std::string_view(blocks_.names).substr(begin, end - begin), targets_[blocks_.instrs[i].target]);
}

Value Plan::resolve(const Value& v, std::vector<Value>& slots) const {
  return map_nodes(v, [&](const Node* n) { return slots[slot_of_.at(n)]; });
}

Value Plan::run(std::span<const Value> inputs) const {
  if (num_required_ == num_inputs_ && varargs_ < 0 && inputs.size() == num_inputs_) {
    const inference::Program* p = program();
    return p ? p->run(inputs) : run_plain(inputs);
  }
  // Defaults and *args: the inputs as the placeholders take them.
  const std::size_t fixed = varargs_ >= 0 ? static_cast<std::size_t>(varargs_) : num_inputs_;
  if (inputs.size() < num_required_ || (varargs_ < 0 && inputs.size() > num_inputs_)) {
    throw OpError("forward takes " +
                  (num_required_ == num_inputs_ && varargs_ < 0
                       ? std::to_string(num_inputs_)
                       : std::to_string(num_required_) + (varargs_ < 0 ? " to " + std::to_string(num_inputs_) : " or more")) +
                  " input(s), got " + std::to_string(inputs.size()));
  }
  std::vector<Value> bound(num_inputs_);
  for (std::size_t i = 0; i < num_inputs_; ++i) {
    if (static_cast<std::int32_t>(i) == varargs_) {
      Tuple rest;
      for (std::size_t k = fixed; k < inputs.size(); ++k) rest.items.push_back(inputs[k]);
      bound[i] = std::move(rest);
    } else if (i < fixed && i < inputs.size()) {
      bound[i] = inputs[i];
    } else {
      bound[i] = defaults_[i];  // after *args, placeholders are keyword-only: their defaults
    }
  }
  const inference::Program* p = program();
  return p ? p->run(bound) : run_plain(bound);
}

Value Plan::run_plain(std::span<const Value> inputs) const {
  if (inputs.size() != num_inputs_)
    throw OpError("forward takes " + std::to_string(num_inputs_) + " input(s), got " +
                  std::to_string(inputs.size()));
  std::vector<Value> slots(num_slots_);
  std::vector<Value> args;
  args.reserve(8);
  for (std::size_t i = 0; i < blocks_.instrs.size(); ++i) {
    const Instr& in = blocks_.instrs[i];
    switch (in.kind) {
      case Kind::Input: slots[i] = inputs[operands(i)[0].payload]; break;
      case Kind::Constant: slots[i] = constant_of(i); break;
      case Kind::Kernel:
      case Kind::Overloaded:
      case Kind::Module: run_instr(i, slots, args); break;
    }
    const auto [frees_begin, frees_end] = part(i, &Instr::frees_end);
    for (std::uint32_t f = frees_begin; f < frees_end; ++f) slots[blocks_.frees[f]] = Value();
  }
  return output(slots);
}

void Plan::run_instr(std::size_t i, std::vector<Value>& slots, std::vector<Value>& args) const {
  const Instr& in = blocks_.instrs[i];
  const std::span<const Operand> operands = this->operands(i);
  args.clear();
  for (const Operand& op : operands) {
    // The common case copied in place (value() would make a Value to move).
    if (op.from_slot()) args.push_back(slots[op.payload]);
    else args.push_back(value(op, slots));
  }
  try {
    if (in.kind == Kind::Kernel) {
      for (std::size_t a = 0; a < args.size(); ++a) {
        if (!operands[a].check) continue;
        const SchemaType& t = in.op->params[a].type;
        if (t.base == ArgType::Tensor && !t.list && args[a].is_tensor()) continue;  // the common case
        args[a] = check_argument(*in.op, in.op->params[a], std::move(args[a]));
      }
      slots[i] = in.op->kernel(args);
    } else if (in.kind == Kind::Overloaded) {
      const Overloads& overloads = overloads_[in.extra];
      const auto& names = overloads.kwarg_names;
      const std::size_t npos = args.size() - names.size();
      Dict kwargs;
      for (std::size_t k = 0; k < names.size(); ++k) kwargs.items.emplace_back(names[k], std::move(args[npos + k]));
      args.resize(npos);
      BoundCall b = bind_overload(overloads.defs, args, kwargs);
      slots[i] = b.op->kernel(b.args);
    } else if (const ModuleKind* kind = module(in).leaf_kind()) {
      // A module of a registered kind runs the kind's forward; a user module object its
      // own (virtual) forward.
      slots[i] = kind->forward(module(in), args);
    } else {
      slots[i] = const_cast<Module&>(module(in)).forward(args);
    }
  } catch (const Error& e) {
    rethrow_with_context<OpError>(e, where(i));
  }
}

Value Plan::output(std::vector<Value>& slots) const {
  if (output_.from_slot()) return std::move(slots[output_.payload]);
  return value(output_, slots);
}

}  // namespace fxpack
