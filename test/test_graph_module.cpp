// GraphModule / LazyGraphModule state machine, plans and bad input (thread safety: test_concurrency).
#include <doctest/doctest.h>

#include <bit>
#include <limits>

#include "fxpack/fxpack.hpp"
#include "reference_models.hpp"

using namespace fxpack;
using fxpack::testing::random_tensor;

TEST_CASE("graph_module: eager module keeps running its old plan until recompile()") {
  auto eager = use_lazy_graph_module(false);
  auto gm = symbolic_trace([](const Value& x) { return x.sin(); });
  CHECK_FALSE(gm->is_lazy());
  CHECK_FALSE(gm->needs_recompile());
  CHECK(gm->recompile_count() == 1);
  Tensor x = random_tensor({2, 3});
  for (Node* n : gm->graph())
    if (n->target() == "sin") n->set_target("cos");
  CHECK(allclose((*gm)(x).tensor(), Value(x).sin().tensor()));  // stale, as in PyTorch
  CHECK(gm->code().find("sin") != std::string::npos);
  gm->recompile();
  CHECK(gm->recompile_count() == 2);
  CHECK(allclose((*gm)(x).tensor(), Value(x).cos().tensor()));
  CHECK(gm->code().find("cos") != std::string::npos);
}

TEST_CASE("graph_module: recompiles reuse a replaced snapshot's memory only when nothing holds it") {
  // Each recompile writes in the memory of the snapshot before the last one: a plan or a
  // code string still held elsewhere must keep running and reading as it was built.
  auto eager = use_lazy_graph_module(false);
  auto root = std::make_shared<Module>();
  // cat([x.<first>(), x.cos()]) * 2.0: the cat's list is a nested operand.
  auto build = [](const char* first) {
    auto g = std::make_shared<Graph>();
    Node* x = g->placeholder("x");
    Node* a = g->call_method(first, {x});
    Node* b = g->call_method("cos", {x});
    Node* cat = g->call_function("torch.cat", {List{{Value(a), Value(b)}}});
    g->output(g->call_function("operator.mul", {cat, 2.0}));
    return g;
  };
  Tensor x = random_tensor({2, 3});
  const Tensor with_sin = (*make_graph_module(root, build("sin")))(x).tensor();
  const Tensor with_relu = (*make_graph_module(root, build("relu")))(x).tensor();
  auto gm = make_graph_module(root, build("sin"));
  std::shared_ptr<const Plan> held = gm->plan();
  const std::string held_code = gm->code();
  auto swap = [&](const char* from, const char* to) {
    for (Node* n : gm->graph())
      if (n->target() == from) n->set_target(to);
    gm->recompile();
  };
  for (int round = 0; round < 3; ++round) {
    swap("sin", "relu");
    CHECK(gm->code().find("relu") != std::string::npos);
    CHECK(allclose((*gm)(x).tensor(), with_relu));
    swap("relu", "sin");
    CHECK(gm->code() == held_code);
    CHECK(allclose((*gm)(x).tensor(), with_sin));
  }
  CHECK(gm->recompile_count() == 7);
  // The held plan (its nested cat operand included) still runs what it was built from.
  CHECK(allclose(held->run(std::vector<Value>{x}).tensor(), with_sin));
}

TEST_CASE("graph_module: lazy module state machine and counters") {
  auto lazy = use_lazy_graph_module(true);
  auto before = GraphModule::total_recompile_count();
  auto gm = symbolic_trace([](const Value& x) { return x.sin(); });
  CHECK(gm->is_lazy());
  CHECK(gm->needs_recompile());
  CHECK(gm->recompile_count() == 0);
  gm->print_readable(false);
  CHECK(gm->needs_recompile());
  gm->to_string();
  CHECK_FALSE(gm->needs_recompile());
  CHECK(gm->recompile_count() == 1);
  gm->recompile();
  gm->recompile();
  CHECK(gm->needs_recompile());
  gm->force_recompile();
  CHECK_FALSE(gm->needs_recompile());
  CHECK(gm->recompile_count() == 2);
  CHECK(GraphModule::total_recompile_count() - before >= 2);
}

TEST_CASE("graph_module: from_graphmodule and class names") {
  auto eager = use_lazy_graph_module(false);
  auto gm = symbolic_trace(std::make_shared<fxpack::testing::ReluAdd>());
  CHECK(gm->class_name() == "ReluAdd");
  auto lazy = LazyGraphModule::from_graphmodule(gm);
  CHECK(lazy->is_lazy());
  CHECK(dynamic_cast<LazyGraphModule*>(lazy.get()));
  CHECK(lazy->class_name() == "GraphModule");
  CHECK(&lazy->graph() == &gm->graph());
  CHECK(LazyGraphModule::from_graphmodule(lazy) == lazy);
  Tensor x = random_tensor({2, 3});
  CHECK(allclose((*lazy)(x).tensor(), (*gm)(x).tensor()));
}

TEST_CASE("graph_module: use_lazy_graph_module restores the previous mode") {
  CHECK_FALSE(lazy_graph_module_mode());
  {
    auto a = use_lazy_graph_module(true);
    CHECK(lazy_graph_module_mode());
    {
      auto b = use_lazy_graph_module(false);
      CHECK_FALSE(lazy_graph_module_mode());
    }
    CHECK(lazy_graph_module_mode());
  }
  CHECK_FALSE(lazy_graph_module_mode());
}

TEST_CASE("graph_module: symbolic_trace of a GraphModule reproduces its graph") {
  auto lazy = use_lazy_graph_module(true);
  auto gm = fxpack::testing::trace_reference("small_convnet");
  auto gm2 = symbolic_trace(gm);
  CHECK(gm2->graph().to_string() == gm->graph().to_string());
  CHECK(gm2->code() == gm->code());
  CHECK(gm2->class_name() == "SmallConvNet");
  Tensor x = random_tensor({1, 3, 8, 8});
  CHECK(allclose((*gm2)(x).tensor(), (*gm)(x).tensor()));
}

TEST_CASE("graph_module: tensors met while tracing become _tensor_constantN attributes") {
  Tensor bias = Tensor::from_vector(std::vector<float>{1, 2, 3}, {3});
  auto gm = symbolic_trace([bias](const Value& x) { return x + bias; });
  CHECK(gm->code() ==
        "\n\n\ndef forward(self, x):\n"
        "    _tensor_constant0 = self._tensor_constant0\n"
        "    add = x + _tensor_constant0;  x = _tensor_constant0 = None\n"
        "    return add\n    ");
  Tensor x = Tensor::zeros({2, 3});
  CHECK(allclose((*gm)(x).tensor(), Tensor::from_vector(std::vector<float>{1, 2, 3, 1, 2, 3}, {2, 3})));
}

TEST_CASE("graph_module: a trace's module holds what its get_attr and call_module nodes name, in graph order") {
  // symbolic_trace hands the module the attribute nodes its Tracer made, when the graph's
  // nodes are exactly those, appended in order; otherwise the module walks the graph. Both
  // must give the same module.
  auto lazy = use_lazy_graph_module(true);
  enum class How { Traced, MadeOnGraph, Inserted, ErasedAndMade };
  struct Net : Module {
    explicit Net(How how) : Module("Net"), how_(how) {
      register_parameter("w", Tensor::from_vector(std::vector<float>{1, 2, 3}, {3}));
      register_parameter("v", Tensor::from_vector(std::vector<float>{4, 5, 6}, {3}));
      register_module("act", nn::ReLU());
    }
    Value forward(std::span<const Value> in) override {
      Tracer& tracer = *Tracer::current();
      Value w = tracer.attribute(*this, "w");
      if (how_ == How::Inserted) {  // made by the trace, but not at the end
        auto at = tracer.graph().inserting_before(w.node());
        (void)tracer.attribute(*this, "v");
      }
      Value v = in[0] + w;
      if (how_ == How::MadeOnGraph) v = v * Value(tracer.graph().get_attr("v"));  // not by the trace
      if (how_ == How::ErasedAndMade) {  // as many nodes as the trace made, one not its own
        tracer.graph().erase_node((in[0] + 1.0).node());
        v = v * Value(tracer.graph().get_attr("v"));
      }
      return (*find_child("act"))(v);
    }
    How how_;
  };
  for (How how : {How::Traced, How::MadeOnGraph, How::Inserted, How::ErasedAndMade}) {
    CAPTURE(static_cast<int>(how));
    auto gm = symbolic_trace(std::make_shared<Net>(how));
    std::vector<std::string> params;
    for (const auto& [name, t] : gm->named_parameters()) params.push_back(name);
    // fx copies in graph order: the inserted get_attr("v") comes before w's.
    const std::vector<std::string> expected = how == How::Traced     ? std::vector<std::string>{"w"}
                                              : how == How::Inserted ? std::vector<std::string>{"v", "w"}
                                                                     : std::vector<std::string>{"w", "v"};
    CHECK(params == expected);
    CHECK(gm->find_child("act") != nullptr);
    CHECK_NOTHROW(gm->lint());
  }
}

TEST_CASE("graph_module: Sequential is traced through, numeric names use getattr") {
  auto root = std::make_shared<Module>("Net");
  root->register_module("layers", nn::Sequential({nn::Linear(3, 4), nn::ReLU()}));
  struct Net : Module {
    Net() : Module("Net") { register_module("layers", nn::Sequential({nn::Linear(3, 4), nn::ReLU()})); }
    Value forward(std::span<const Value> in) override { return (*find_child("layers"))(in[0]); }
  };
  auto gm = symbolic_trace(std::make_shared<Net>());
  CHECK(gm->code() ==
        "\n\n\ndef forward(self, x):\n"
        "    layers_0 = getattr(self.layers, \"0\")(x);  x = None\n"
        "    layers_1 = getattr(self.layers, \"1\")(layers_0);  layers_0 = None\n"
        "    return layers_1\n    ");
  CHECK((*gm)(random_tensor({2, 3})).tensor().shape() == Shape{2, 4});
}

TEST_CASE("graph_module: bad input gives clear errors") {
  auto eager = use_lazy_graph_module(false);
  SUBCASE("unknown targets are all listed when the plan is built") {
    auto g = std::make_shared<Graph>();
    Node* x = g->placeholder("x");
    Node* a = g->call_function("torch.frobnicate", {x});
    Node* b = g->call_method("wiggle", {a});
    g->output(b);
    auto root = std::make_shared<Module>();
    CHECK_THROWS_WITH_AS(make_graph_module(root, g),
                         doctest::Contains("no kernel for 2 targets: node 'frobnicate' "
                                           "(call_function torch.frobnicate); node 'wiggle' "
                                           "(call_method wiggle)"),
                         OpError);
    auto lazy = make_graph_module(root, g, {.graph_module_cls = GraphModuleClass::Lazy});
    CHECK(lazy->code().find("torch.frobnicate(x)") != std::string::npos);  // still printable
    CHECK_THROWS_WITH_AS((*lazy)(random_tensor({2})), doctest::Contains("torch.frobnicate"), OpError);
  }
  SUBCASE("wrong arity") {
    auto g = std::make_shared<Graph>();
    Node* x = g->placeholder("x");
    g->output(g->call_method("sin", {x, 1, 2}));
    CHECK_THROWS_WITH_AS(make_graph_module(std::make_shared<Module>(), g),
                         doctest::Contains("node 'sin' (call_method sin): sin: takes 1 positional"),
                         OpError);
  }
  SUBCASE("unknown keyword") {
    auto g = std::make_shared<Graph>();
    Node* x = g->placeholder("x");
    g->output(g->call_function("torch.flatten", {x}, Dict{{{"start", 1}}}));
    CHECK_THROWS_WITH_AS(make_graph_module(std::make_shared<Module>(), g),
                         doctest::Contains("unexpected keyword argument 'start'"), OpError);
  }
  SUBCASE("shape mismatch at run time names the node") {
    auto gm = symbolic_trace([](std::span<const Value> in) { return in[0] + in[1]; },
                             {.input_names = {"a", "b"}, .class_name = ""});
    CHECK_THROWS_WITH_AS((*gm)(random_tensor({2, 3}), random_tensor({4})),
                         doctest::Contains("node 'add' (call_function operator.add)"), OpError);
    CHECK_THROWS_WITH_AS((*gm)(random_tensor({2, 3})), doctest::Contains("takes 2 input(s), got 1"),
                         OpError);
  }
  SUBCASE("missing attribute targets") {
    auto g = std::make_shared<Graph>();
    g->output(g->get_attr("fc.weight"));
    CHECK_THROWS_WITH_AS(make_graph_module(std::make_shared<Module>("Root"), g),
                         doctest::Contains("target 'fc.weight': Root has no submodule 'fc'"),
                         GraphError);
  }
  SUBCASE("a Node reference used outside a trace") {
    Graph g;
    Value x = g.placeholder("x");
    CHECK_THROWS_WITH_AS(x.sin(), doctest::Contains("outside a trace"), GraphError);
  }
}

TEST_CASE("graph_module: an Interpreter runs the graph; a subclass changes what nodes do") {
  auto g = std::make_shared<Graph>();
  Node* x = g->placeholder("x");
  Node* n = g->create_node(Op::Placeholder, "n", {Value(2.0)});  // `n=2.0`
  Node* add = g->call_function("operator.add", {x, n});
  g->output(g->call_method("neg", {add}));
  Module root;
  const Tensor input = Tensor::from_vector(std::span<const float>(std::vector<float>{1, 2}), Shape{2});
  CHECK(Interpreter(*g, root).run({input}).tensor().to_doubles() == std::vector<double>{-3, -4});
  CHECK(Interpreter(*g, root).run({input, Value(1.0)}).tensor().to_doubles() == std::vector<double>{-2, -3});

  // fx's documentation example: swap what two targets do.
  struct Swap : Interpreter {
    using Interpreter::Interpreter;
    Value call_function(const Node& node, std::vector<Value> args, Kwargs kwargs) override {
      if (node.target() == "operator.add") return fxpack::call_function("operator.mul", std::move(args));
      return Interpreter::call_function(node, std::move(args), std::move(kwargs));
    }
  };
  CHECK(Swap(*g, root).run({input}).tensor().to_doubles() == std::vector<double>{-2, -4});
  CHECK_THROWS_WITH_AS(Interpreter(*g, root).run({}), doctest::Contains("no input for placeholder 'x'"), GraphError);
}

TEST_CASE("graph_module: a plan names the node in an error; a FormatError or IoError keeps its kind") {
  struct Failing : Module {
    explicit Failing(int how) : Module("Failing"), how_(how) {}
    Value forward(std::span<const Value>) override {
      if (how_ == 0) throw FormatError("record 'data/0' is truncated");
      if (how_ == 1) throw IoError("read failed");
      throw ValueError("bad value");
    }
    int how_;
  };
  for (int how : {0, 1, 2}) {
    auto root = std::make_shared<Module>();
    root->register_module("f", std::make_shared<Failing>(how));
    auto g = std::make_shared<Graph>();
    g->output(g->call_module("f", {g->placeholder("x")}));
    for (bool optimize : {false, true}) {
      auto plan = Plan::build(*g, *root, PlanOptions{optimize});
      const std::vector<Value> in{Value(1.0)};
      if (how == 0) CHECK_THROWS_WITH_AS(plan->run(in), "node 'f' (call_module f): record 'data/0' is truncated", FormatError);
      if (how == 1) CHECK_THROWS_WITH_AS(plan->run(in), "node 'f' (call_module f): read failed", IoError);
      if (how == 2) CHECK_THROWS_WITH_AS(plan->run(in), "node 'f' (call_module f): bad value", OpError);
    }
  }
}

namespace {
// mylib.second_argument(x, v) returns v as the plan passed it; registered by the first test
// case that needs it (test cases run alone or in any order).
Value second_argument(std::span<const Value> args) { return args[1]; }
const std::string& second_argument_target() {
  static const OpDef& op = OpRegistry::global().add_function("mylib.second_argument(Tensor x, Any v) -> Any", &second_argument);
  return op.target;
}
}  // namespace

TEST_CASE("graph_module: every kind of constant argument reaches its kernel and the output as it was") {
  // A plan keeps scalars that fit in the operand itself and the rest in a side block: each
  // must come back the same kind with the same bits, passed positionally, by keyword and as
  // the graph's output itself, the ints and doubles on both sides of what an operand holds.
  const std::string& target = second_argument_target();
  const Tensor t = Tensor::full({2}, 3.0);
  const std::vector<Value> constants{
      Value(), Value(true), Value(false), Value(0), Value(-1), Value(std::int64_t{2147483647}),
      Value(std::int64_t{-2147483647 - 1}), Value(std::int64_t{2147483648}), Value(std::int64_t{-2147483649}),
      Value(std::numeric_limits<std::int64_t>::max()), Value(std::numeric_limits<std::int64_t>::min()), Value(1.0),
      Value(0.5), Value(-0.0), Value(0.1), Value(1e300), Value(1e-310), Value(3.4028234663852886e38),
      Value(std::numeric_limits<double>::infinity()), Value(-std::numeric_limits<double>::infinity()),
      Value(std::numeric_limits<double>::quiet_NaN()), Value("a string"), Value(DType::Float64), Value(Device{"cpu", 0}),
      Value(Layout::Strided), Value(MemoryFormat::ChannelsLast), Value(Slice{1, std::nullopt, 2}), Value(Ellipsis{}),
      Value(List{{Value(1), Value(2.5)}}), Value(Tuple{{Value("s"), Value()}}), Value(Dict{{{"k", Value(7)}}}), Value(t)};
  const auto same = [](const Value& got, const Value& want) {
    if (got.kind() != want.kind()) return false;
    if (!want.is_double()) return got == want;
    return std::bit_cast<std::uint64_t>(got.to_double()) == std::bit_cast<std::uint64_t>(want.to_double());
  };
  for (const Value& c : constants) {
    CAPTURE(python_repr(c));
    auto g = std::make_shared<Graph>();
    Node* x = g->placeholder("x");
    Node* positional = g->call_function(target, {Value(x), c});
    Node* keyword = g->call_function(target, {Value(x)}, Dict{{{"v", c}}});
    g->output(Value(Tuple{{Value(positional), Value(keyword)}}));
    auto g_out = std::make_shared<Graph>();
    (void)g_out->placeholder("x");
    g_out->output(c);
    for (bool optimize : {false, true}) {
      const std::vector<Value> in{Value(t)};
      const Value out = Plan::build(*g, Module(), PlanOptions{optimize})->run(in);
      CHECK(same(out.items()[0], c));
      CHECK(same(out.items()[1], c));
      CHECK(same(Plan::build(*g_out, Module(), PlanOptions{optimize})->run(in), c));
    }
  }
}

TEST_CASE("graph_module: constants holding nodes are resolved per run, in arguments and the output") {
  auto g = std::make_shared<Graph>();
  Node* x = g->placeholder("x");
  Node* y = g->call_function(second_argument_target(), {Value(x), Value(List{{Value(x), Value(3), Value(0.1)}})});
  g->output(Value(Tuple{{Value(y), Value(x)}}));
  for (bool optimize : {false, true}) {
    const Tensor t = Tensor::full({2}, 1.0);
    const std::vector<Value> in{Value(t)};
    const Value out = Plan::build(*g, Module(), PlanOptions{optimize})->run(in);
    CHECK(out == Value(Tuple{{Value(List{{Value(t), Value(3), Value(0.1)}}), Value(t)}}));
  }
}
