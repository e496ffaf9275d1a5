// compile, its passes, disable and innermost_fn: the seed twins (test_recapture_with_dynamo,
// test_dynamo_innermost_fn), equivalence with the uncompiled module for every reference
// folder, guard behaviour, and one unit test per pass.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <random>
#include <thread>

#include "fxpack/compile.hpp"
#include "fxpack/disable.hpp"
#include "fxpack/fxpack.hpp"
#include "fxpack/make_fx.hpp"
#include "reference_models.hpp"

using namespace fxpack;
using fxpack::testing::random_tensor;

namespace {

bool is_lazy(const std::shared_ptr<GraphModule>& gm) {
  return dynamic_cast<LazyGraphModule*>(gm.get()) != nullptr;
}

Value f_sin(const Value& x) { return x.sin(); }
Value f_times2(const Value& x) { return x * 2; }

// Tolerance of compiled vs uncompiled results (see compile.hpp).
constexpr double kRtol = 1e-5, kAtol = 1e-6;

std::size_t count_target(const Graph& g, const std::string& target) {
  std::size_t n = 0;
  for (const Node* node : g)
    if (node->target() == target) ++n;
  return n;
}

}  // namespace

TEST_SUITE("TestLazyGraphModule") {

TEST_CASE("recapture_with_dynamo") {
  auto lazy = use_lazy_graph_module(true);
  auto gm = symbolic_trace(f_sin);
  CHECK(is_lazy(gm));
  CHECK(gm->needs_recompile());
  compile(gm)(random_tensor({2, 3}, 7));

  // compile calls gm's forward, which triggers the real recompile.
  CHECK_FALSE(gm->needs_recompile());
}

TEST_CASE("dynamo_innermost_fn") {
  auto lazy = use_lazy_graph_module(true);
  auto gm = symbolic_trace(f_times2);
  auto lazy_gm = LazyGraphModule::from_graphmodule(gm);

  auto wrapped_forward = disable(gm->forward_fn());
  BoundForward got_inner_forward = innermost_fn(wrapped_forward);
  CHECK(got_inner_forward.self() == gm);

  auto wrapped_lazy_forward = disable(lazy_gm->forward_fn());
  BoundForward got_lazy_inner_forward = innermost_fn(wrapped_lazy_forward);
  CHECK(got_lazy_inner_forward.self() == lazy_gm);
}

}  // TEST_SUITE

TEST_SUITE("disable") {

TEST_CASE("innermost_fn of an eager module and of a lazy module made by from_graphmodule") {
  auto eager = use_lazy_graph_module(false);
  auto gm = symbolic_trace(f_times2);
  REQUIRE_FALSE(gm->is_lazy());
  auto lazy_gm = LazyGraphModule::from_graphmodule(gm);
  REQUIRE(lazy_gm != gm);
  REQUIRE(is_lazy(lazy_gm));
  CHECK(innermost_fn(disable(gm->forward_fn())).self() == gm);
  CHECK(innermost_fn(disable(lazy_gm->forward_fn())).self() == lazy_gm);
  // Wrappers stack; innermost_fn unwraps them all.
  auto triple = disable(disable(disable(lazy_gm->forward_fn())));
  CHECK(triple.depth() == 3);
  CHECK(triple.inner()->depth() == 2);
  CHECK(innermost_fn(triple).self() == lazy_gm);
  Tensor x = random_tensor({2, 3});
  CHECK(allclose(triple(x).tensor(), (Value(x) * 2).tensor()));
  // The saved forward still runs its (lazy, dirty) module.
  CHECK(lazy_gm->needs_recompile() == false);
}

TEST_CASE("innermost_fn of a plain callable is an error") {
  auto d = disable([](std::vector<Value> in) { return in[0]; });
  CHECK_FALSE(d.wraps_bound_forward());
  CHECK_THROWS_AS(innermost_fn(d), GraphError);
}

TEST_CASE("compile never compiles a disabled function") {
  auto gm = symbolic_trace(f_sin);
  auto c = compile(disable(gm->forward_fn()));
  Tensor x = random_tensor({2, 3});
  for (int i = 0; i < 3; ++i) CHECK(allclose(c(x).tensor(), (Value(x).sin()).tensor()));
  auto s = c.stats();
  CHECK(s.calls == 3);
  CHECK(s.cache_misses == 0);
  CHECK(s.eager_calls == 3);
  CHECK(c.cache_size() == 0);
}

TEST_CASE("a body that reaches a disabled function runs eagerly (graph break)") {
  auto inner = disable([](std::vector<Value> in) { return Value(in[0]).cos(); });
  auto c = compile([inner](const Value& x) { return inner(x.sin()) + 1.0; });
  Tensor x = random_tensor({2, 3});
  Tensor expected = (Value(x).sin().cos() + 1.0).tensor();
  CHECK(allclose(c(x).tensor(), expected));
  CHECK(allclose(c(x).tensor(), expected));
  auto s = c.stats();
  CHECK(s.cache_misses == 1);
  CHECK(s.cache_hits == 1);
  CHECK(s.eager_calls == 2);
  CHECK(c.compiled_module({x}) == nullptr);
}

}  // TEST_SUITE

TEST_SUITE("compile") {

TEST_CASE("every reference model compiles to the same results") {
  for (const auto& rc : fxpack::testing::reference_cases()) {
    CAPTURE(rc.folder);
    auto gm = fxpack::testing::trace_reference(rc.folder);
    Tensor x = fxpack::testing::reference_input(rc);
    Tensor expected = (*gm)(x).tensor();
    auto c = compile(gm);
    Tensor got = c(x).tensor();
    CHECK(allclose(got, expected, kRtol, kAtol));
    CHECK(allclose(got, fxpack::testing::reference_output(rc), 1e-5, 1e-6));
    // Another input of the same signature: a cache hit, still equal.
    Tensor x2 = random_tensor(rc.input_shape, 99);
    CHECK(allclose(c(x2).tensor(), (*gm)(x2).tensor(), kRtol, kAtol));
    CHECK(c.stats().cache_misses == 1);
    CHECK(c.stats().cache_hits == 1);
    auto cm = c.compiled_module({x});
    REQUIRE(cm != nullptr);
    cm->lint();
    // make_fx's dead detach/empty nodes are gone.
    CHECK(count_target(cm->graph(), "torch.ops.aten.detach.default") == 0);
    CHECK(count_target(cm->graph(), "torch.ops.aten.empty.memory_format") == 0);
  }
}

TEST_CASE("eager user modules compile too (traced through, leaves decomposed)") {
  auto m = std::make_shared<fxpack::testing::SmallConvNet>();
  fxpack::testing::load_reference_weights(*m, "small_convnet");
  const auto& rc = fxpack::testing::reference_cases()[3];
  Tensor x = fxpack::testing::reference_input(rc);
  auto c = compile(m);
  CHECK(allclose(c(x).tensor(), (*m)(x).tensor(), kRtol, kAtol));
  CHECK(allclose(c(x).tensor(), fxpack::testing::reference_output(rc), 1e-5, 1e-6));
  CHECK(c.stats().cache_hits == 1);
}

TEST_CASE("small_convnet: parameter-only subgraphs are folded") {
  const auto& rc = fxpack::testing::reference_cases()[3];
  auto gm = fxpack::testing::trace_reference(rc.folder);
  auto c = compile(gm);
  Tensor x = fxpack::testing::reference_input(rc);
  c(x);
  PassReport r = c.report({x});
  CHECK(r.folded == 1);  // t(fc.weight)
  CHECK(r.dead > 0);
  CHECK(r.nodes_after < r.nodes_before);
  auto cm = c.compiled_module({x});
  CHECK(count_target(cm->graph(), "torch.ops.aten.t.default") == 0);
  CHECK(cm->find_buffer("_folded_constant0") != nullptr);
}

TEST_CASE("guards: same signature hits, another shape or dtype compiles again") {
  auto gm = symbolic_trace(f_sin);
  auto c = compile(gm);
  Tensor a = random_tensor({2, 3});
  c(a);
  c(random_tensor({2, 3}, 5));
  CHECK(c.stats().cache_misses == 1);
  CHECK(c.stats().cache_hits == 1);
  Tensor b = random_tensor({4, 5});
  CHECK(allclose(c(b).tensor(), Value(b).sin().tensor()));
  CHECK(c.stats().cache_misses == 2);
  Tensor d = a.to(DType::Float64);
  Tensor got = c(d).tensor();
  CHECK(got.dtype() == DType::Float64);
  CHECK(c.stats().cache_misses == 3);
  CHECK(c.cache_size() == 3);
  CHECK(CompiledFn::signature({a, Value(2.5)}) == "float32[2, 3]; 2.5");
  c.reset();
  CHECK(c.cache_size() == 0);
  c(a);
  CHECK(c.stats().cache_misses == 4);
}

TEST_CASE("guards: editing the graph and recompiling invalidates the cache") {
  auto gm = symbolic_trace(f_sin);
  auto c = compile(gm);
  Tensor x = random_tensor({2, 3});
  CHECK(allclose(c(x).tensor(), Value(x).sin().tensor()));
  for (Node* n : gm->graph())
    if (n->target() == "sin") n->set_target("cos");
  // Not recompiled yet: the cache entry is still valid (PyTorch semantics: edits need recompile()).
  CHECK(allclose(c(x).tensor(), Value(x).sin().tensor()));
  gm->recompile();
  CHECK(allclose(c(x).tensor(), Value(x).cos().tensor()));
  CHECK(c.stats().guard_failures == 1);
  CHECK(c.stats().cache_misses == 2);
}

TEST_CASE("non-tensor inputs are specialised; the cache size limit falls back to eager") {
  CompileOptions o;
  o.cache_size_limit = 2;
  auto c = compile([](std::span<const Value> in) { return in[0] * in[1]; }, {"x", "k"}, o);
  Tensor x = random_tensor({3});
  CHECK(allclose(c(x, 2.0).tensor(), (Value(x) * 2.0).tensor()));
  CHECK(allclose(c(x, 3.0).tensor(), (Value(x) * 3.0).tensor()));
  CHECK(allclose(c(x, 4.0).tensor(), (Value(x) * 4.0).tensor()));
  auto s = c.stats();
  CHECK(s.cache_misses == 2);
  CHECK(s.eager_calls == 1);
}

TEST_CASE("a long elementwise chain fuses into one node and stays exact") {
  auto chain = [](const Value& x) {
    Value v = x;
    for (int i = 0; i < 25; ++i) {
      switch (i % 5) {
        case 0: v = v.sin(); break;
        case 1: v = v.cos(); break;
        case 2: v = torch::relu(v); break;
        case 3: v = v + 1.0; break;
        case 4: v = v * 2.0; break;
      }
    }
    return v;
  };
  auto gm = symbolic_trace(chain);
  auto c = compile(gm);
  Tensor x = random_tensor({3, 1001});  // not a multiple of the block size
  Tensor got = c(x).tensor();
  Tensor expected = (*gm)(x).tensor();
  CHECK(allclose(got, expected, kRtol, kAtol));
  auto cm = c.compiled_module({x});
  CHECK(count_target(cm->graph(), "fxpack.fused_elementwise") == 1);
  CHECK(cm->graph().size() == 3);  // placeholder, fused, output
  CHECK(c.report({x}).fused_nodes == 25);
  // float64 too.
  Tensor xd = x.to(DType::Float64);
  CHECK(allclose(c(xd).tensor(), (*gm)(xd).tensor(), 1e-12, 1e-12));
}

TEST_CASE("compiled calls from several threads") {
  auto gm = fxpack::testing::trace_reference("mlp");
  auto c = compile(gm);
  Tensor x = random_tensor({2, 4});
  Tensor expected = (*gm)(x).tensor();
  std::atomic<int> ok{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 20; ++i)
        if (allclose(c(x).tensor(), expected, kRtol, kAtol)) ok.fetch_add(1);
    });
  for (auto& t : ts) t.join();
  CHECK(ok.load() == 80);
  CHECK(c.stats().calls == 80);
  CHECK(c.stats().cache_hits + c.stats().cache_misses == 80);
  CHECK(c.cache_size() == 1);
}

}  // TEST_SUITE

TEST_SUITE("compile passes") {

TEST_CASE("dead_code_elimination") {
  Graph g;
  Node* x = g.placeholder("x");
  Node* relu = g.call_function("torch.ops.aten.relu_.default", {Value(x)});  // mutates a placeholder: kept
  Node* a = g.call_function("torch.ops.aten.sin.default", {Value(x)});
  g.call_function("torch.ops.aten.detach.default", {Value(a)});            // unused: removed
  Node* b = g.call_function("torch.ops.aten.cos.default", {Value(a)});
  Node* c = g.call_function("torch.ops.aten.exp.default", {Value(b)});      // dead chain: removed
  (void)c;
  Node* t = g.call_function("torch.ops.aten.add.Tensor", {Value(a), Value(1.0)});
  Node* inplace_dead = g.call_function("torch.ops.aten.add_.Tensor", {Value(t), Value(2.0)});  // t not read again
  (void)inplace_dead;
  g.output(Value(a));
  CHECK(passes::dead_code_elimination(g) == 5);
  g.lint();
  CHECK(g.find_node(relu->name()) != nullptr);
  CHECK(g.size() == 4);  // x, relu_, sin, output
}

TEST_CASE("common_subexpression_elimination") {
  Graph g;
  Node* x = g.placeholder("x");
  Node* w1 = g.get_attr("w");
  Node* w2 = g.create_node(Op::GetAttr, "w");
  Node* a = g.call_function("torch.ops.aten.mul.Tensor", {Value(x), Value(w1)});
  Node* b = g.call_function("torch.ops.aten.mul.Tensor", {Value(x), Value(w2)});  // same as a once w2 -> w1
  Node* c = g.call_function("torch.ops.aten.add.Tensor", {Value(a), Value(1.0)});
  Node* d = g.call_function("torch.ops.aten.add.Tensor", {Value(b), Value(1)});    // 1 is not 1.0
  Node* e = g.call_function("torch.ops.aten.add.Tensor", {Value(b), Value(1.0)});  // same as c
  Node* r1 = g.call_function("torch.ops.aten.relu_.default", {Value(c)});          // in-place: never merged
  Node* r2 = g.call_function("torch.ops.aten.relu_.default", {Value(c)});
  g.output(Value(Tuple{{Value(d), Value(e), Value(r1), Value(r2)}}));
  CHECK(passes::common_subexpression_elimination(g) == 3);  // w2, b, e
  g.lint();
  CHECK(g.size() == 8);
  const auto& out = g.output_node()->args()[0].items();
  CHECK(out[1].node() == c);
  CHECK(d->args()[0].node() == a);
}

TEST_CASE("constant_folding") {
  auto root = std::make_shared<Module>("Root");
  root->register_parameter("w", Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3}));
  root->register_buffer("b", Tensor::from_vector(std::vector<float>{10, 20}, {2}));
  auto graph = std::make_shared<Graph>();
  Graph& g = *graph;
  Node* x = g.placeholder("x");
  Node* w = g.get_attr("w");
  Node* b = g.get_attr("b");
  Node* t = g.call_function("torch.ops.aten.t.default", {Value(w)});                 // folded
  Node* t2 = g.call_function("torch.ops.aten.mul.Tensor", {Value(t), Value(2.0)});   // folded (chain)
  Node* mm = g.call_function("torch.ops.aten.addmm.default", {Value(b), Value(x), Value(t2)});  // needs x
  Node* e = g.call_function("torch.ops.aten.empty.memory_format", {Value(List{{Value(0)}})});  // factory: kept
  (void)e;
  g.output(Value(mm));
  CHECK(passes::constant_folding(g, *root) == 2);
  CHECK(passes::dead_code_elimination(g) == 3);  // w, the first folded attribute, empty
  g.lint();
  CHECK(count_target(g, "torch.ops.aten.t.default") == 0);
  CHECK(count_target(g, "torch.ops.aten.mul.Tensor") == 0);
  REQUIRE(root->find_buffer("_folded_constant1") != nullptr);
  Tensor folded = *root->find_buffer("_folded_constant1");
  CHECK(folded.shape() == Shape{3, 2});
  CHECK(folded.item_at(1) == 8.0);  // 2 * w[1][0]
  auto gm = std::make_shared<GraphModule>(*root, graph);
  Tensor in = Tensor::from_vector(std::vector<float>{1, 0, 0, 0, 1, 0}, {2, 3});
  Tensor out = (*gm)(in).tensor();
  CHECK(out.item_at(0) == 12.0);  // 10 + 2*1
  CHECK(out.item_at(3) == 30.0);  // 20 + 2*5
}

TEST_CASE("fuse_elementwise: chains, users and fallbacks") {
  auto graph = std::make_shared<Graph>();
  Graph& g = *graph;
  Node* x = g.placeholder("x");
  Node* y = g.placeholder("y");
  Node* a = g.call_function("torch.ops.aten.sin.default", {Value(x)});
  Node* b = g.call_function("torch.ops.aten.mul.Tensor", {Value(a), Value(3)});
  Node* c = g.call_function("torch.ops.aten.relu.default", {Value(b)});
  Node* d = g.call_function("torch.ops.aten.add.Tensor", {Value(c), Value(y)});  // tensor operand: not fused
  Node* e = g.call_function("torch.ops.aten.neg.default", {Value(d)});
  Node* f1 = g.call_function("torch.ops.aten.abs.default", {Value(e)});
  Node* f2 = g.call_function("torch.ops.aten.exp.default", {Value(e)});         // e has two users: chain ends at e
  Node* h = g.call_function("torch.ops.aten.div.Tensor", {Value(f2), Value(4.0)});
  g.output(Value(Tuple{{Value(f1), Value(h)}}));
  auto root = std::make_shared<Module>("Root");
  auto before = std::make_shared<GraphModule>(*root, graph->clone());

  auto [chains, nodes] = passes::fuse_elementwise(g, 2);
  CHECK(chains == 2);  // sin-mul-relu, exp-div
  CHECK(nodes == 5);
  g.lint();
  CHECK(count_target(g, "fxpack.fused_elementwise") == 2);
  CHECK(count_target(g, "torch.ops.aten.add.Tensor") == 1);
  // A function outside torch prints through a global of the source, as fx names it.
  CHECK(python_code(g).find("fxpack_fused_elementwise(x, ['sin', ('mul', 3), 'relu'])") != std::string::npos);
  auto after = std::make_shared<GraphModule>(*root, graph);

  for (DType dt : {DType::Float32, DType::Float64, DType::Int64}) {
    CAPTURE(dtype_name(dt));
    Tensor xi = random_tensor({4, 5}, 3).to(dt);
    Tensor yi = random_tensor({5}, 4).to(dt);  // broadcast add stays unfused
    Value want = (*before)(xi, yi);
    Value got = (*after)(xi, yi);
    for (std::size_t i = 0; i < 2; ++i) {
      CHECK(got.items()[i].tensor().dtype() == want.items()[i].tensor().dtype());
      CHECK(allclose(got.items()[i].tensor(), want.items()[i].tensor(), kRtol, kAtol));
    }
  }
}

TEST_CASE("fused kernel: float32 sin and cos within 2 ulp of the exact values") {
  const OpDef* op = OpRegistry::global().function("fxpack.fused_elementwise");
  REQUIRE(op != nullptr);
  std::vector<float> v;
  std::mt19937 gen(42);
  std::uniform_real_distribution<float> small(-10.0f, 10.0f), large(-8000.0f, 8000.0f);
  for (int i = 0; i < 1024; ++i) v.push_back(i % 2 ? small(gen) : large(gen));  // block 1: polynomial
  for (int i = 0; i < 1000; ++i) v.push_back(small(gen));                        // block 2 with big values:
  v.push_back(1.0e5f);                                                            // std::sin/std::cos
  v.push_back(-3.0e4f);
  v.push_back(std::numeric_limits<float>::infinity());
  v.push_back(std::numeric_limits<float>::quiet_NaN());
  v.push_back(0.0f);
  v.push_back(-0.0f);
  Tensor x = Tensor::from_vector(v, {static_cast<std::int64_t>(v.size())});
  for (const char* name : {"sin", "cos"}) {
    CAPTURE(name);
    Tensor r = op->kernel(std::vector<Value>{Value(x), Value(List{{Value(name)}})}).tensor();
    double worst = 0.0;
    for (std::size_t i = 0; i < v.size(); ++i) {
      const double want = name[0] == 's' ? std::sin(static_cast<double>(v[i])) : std::cos(static_cast<double>(v[i]));
      const double got = r.item_at(static_cast<std::int64_t>(i));
      if (std::isnan(want)) {
        CHECK(std::isnan(got));
        continue;
      }
      worst = std::max(worst, std::abs(got - want));
    }
    CHECK(worst <= 2.5e-7);  // 2 ulp of values near 1
  }
}

TEST_CASE("fused kernel: every op against the unfused kernels") {
  const OpDef* op = OpRegistry::global().function("fxpack.fused_elementwise");
  REQUIRE(op != nullptr);
  Value ops_list(List{{Value("tanh"), Value("sigmoid"), Value("exp"), Value("neg"), Value("abs"),
                       Value(Tuple{{Value("sub"), Value(1)}}), Value("relu"), Value("cos"),
                       Value(Tuple{{Value("div"), Value(0.5)}}), Value("sin")}});
  for (DType dt : {DType::Float32, DType::Float64}) {
    Tensor x = random_tensor({3, 700}, 11).to(dt);
    Value want = (((((Value(x).tanh().sigmoid().exp().neg().abs() - 1).relu().cos()) / 0.5)).sin());
    Tensor got = op->kernel(std::vector<Value>{Value(x), ops_list}).tensor();
    CHECK(got.dtype() == dt);
    CHECK(allclose(got, want.tensor(), kRtol, kAtol));
  }
}

TEST_CASE("fused kernel: op list round trip and bad lists") {
  const OpDef* op = OpRegistry::global().function("fxpack.fused_elementwise");
  REQUIRE(op != nullptr);
  Tensor x = Tensor::from_vector(std::vector<float>{-1, 0, 2}, {3});
  Value ops_list(List{{Value("relu"), Value(Tuple{{Value("add"), Value(1.5)}}), Value(Tuple{{Value("div"), Value(2)}})}});
  Tensor r = op->kernel(std::vector<Value>{Value(x), ops_list}).tensor();
  CHECK(r.item_at(0) == doctest::Approx(0.75));
  CHECK(r.item_at(2) == doctest::Approx(1.75));
  CHECK_THROWS_WITH_AS(op->kernel(std::vector<Value>{Value(x), Value(List{{Value("tan")}})}),
                       doctest::Contains("unknown op 'tan'"), OpError);
  CHECK_THROWS_WITH_AS(op->kernel(std::vector<Value>{Value(x), Value(List{{Value("add")}})}),
                       doctest::Contains("needs a number operand"), OpError);
}

}  // TEST_SUITE
