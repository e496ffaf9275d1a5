// C++ twins of PyTorch's test/fx/test_lazy_graph_module.py, test by test, same names and
// same assertions. Like the Python class's setUpClass, every test runs in lazy mode.
#include <doctest/doctest.h>

#include <atomic>

#include "fxpack/fxpack.hpp"
#include "reference_models.hpp"

using namespace fxpack;
using fxpack::testing::random_tensor;

namespace {

bool is_lazy(const std::shared_ptr<GraphModule>& gm) {
  return dynamic_cast<LazyGraphModule*>(gm.get()) != nullptr;
}

void replace_sin_with_cos(GraphModule& gm) {
  for (Node* n : gm.graph())
    if (n->target() == "sin") n->set_target("cos");
}

Value f(const Value& x) { return x.sin(); }

Tensor eager_cos(const Tensor& x) { return Value(x).cos().tensor(); }
Tensor eager_sin(const Tensor& x) { return Value(x).sin().tensor(); }

}  // namespace

TEST_SUITE("TestLazyGraphModule") {

TEST_CASE("replace_sin_with_cos") {
  auto lazy = use_lazy_graph_module(true);
  Tensor x = random_tensor({2, 3});
  auto gm = symbolic_trace(f);
  replace_sin_with_cos(*gm);

  gm->recompile();
  Tensor expected = eager_cos(x);
  Value actual = (*gm)(x);

  CHECK(allclose(expected, actual.tensor()));
  std::string code = gm->print_readable(false);
  CHECK(code.find("cos()") != std::string::npos);
  CHECK(is_lazy(gm));
}

TEST_CASE("call_forward_directly") {
  auto lazy = use_lazy_graph_module(true);
  Tensor x = random_tensor({2, 3});
  auto gm = symbolic_trace(f);
  CHECK(is_lazy(gm));
  replace_sin_with_cos(*gm);
  gm->recompile();
  Tensor expected = eager_cos(x);
  Value actual = gm->forward(std::vector<Value>{x});

  CHECK(allclose(expected, actual.tensor()));
}

TEST_CASE("needs_recompile") {
  auto lazy = use_lazy_graph_module(true);
  auto gm = symbolic_trace(f);
  CHECK(is_lazy(gm));
  CHECK(gm->needs_recompile());
  (*gm)(random_tensor({2, 3}));
  CHECK_FALSE(gm->needs_recompile());
}

TEST_CASE("multi_recompile") {
  auto lazy = use_lazy_graph_module(true);
  auto gm = symbolic_trace(f);
  CHECK(is_lazy(gm));
  CHECK(gm->needs_recompile());
  Tensor x = random_tensor({2, 3});
  // first recompilation
  CHECK(allclose(eager_sin(x), (*gm)(x).tensor()));
  CHECK_FALSE(gm->needs_recompile());

  replace_sin_with_cos(*gm);
  CHECK_FALSE(gm->needs_recompile());
  gm->recompile();
  CHECK(gm->needs_recompile());
  // second recompilation
  CHECK(allclose(eager_cos(x), (*gm)(x).tensor()));
  CHECK_FALSE(gm->needs_recompile());
}

TEST_CASE("accessing_code_cause_recompiling") {
  auto lazy = use_lazy_graph_module(true);
  auto gm = symbolic_trace(f);
  CHECK(is_lazy(gm));
  CHECK(gm->needs_recompile());
  // accessing code should trigger a recompile
  std::string code = gm->code();
  CHECK(code.find("sin") != std::string::npos);
  CHECK_FALSE(gm->needs_recompile());
}

TEST_CASE("graph_module_str") {
  auto lazy = use_lazy_graph_module(true);
  auto gm = symbolic_trace(f);
  CHECK(is_lazy(gm));
  CHECK(gm->to_string().find("sin") != std::string::npos);
}

TEST_CASE("recapture_with_symbolic_trace") {
  auto lazy = use_lazy_graph_module(true);
  auto gm = symbolic_trace(f);
  CHECK(is_lazy(gm));
  CHECK(gm->needs_recompile());
  auto gm2 = symbolic_trace(gm);

  // the lazy recompilation is done when symbolic_trace starts
  CHECK_FALSE(gm->needs_recompile());
  CHECK(gm2->needs_recompile());
}

TEST_CASE("save_lazy_forward") {
  auto lazy = use_lazy_graph_module(true);
  std::atomic<int> recompile_count{0};
  auto previous = GraphModule::set_recompile_hook(
      [&](const GraphModule&) { recompile_count.fetch_add(1); });
  {
    auto gm = symbolic_trace(f);
    CHECK(is_lazy(gm));
    auto saved_fwd = gm->forward_fn();

    Tensor x = random_tensor({2, 3});
    for (int i = 0; i < 10; ++i) saved_fwd(x);
  }
  GraphModule::set_recompile_hook(previous);
  CHECK(recompile_count.load() == 1);
}

TEST_CASE("make_graph_module") {
  auto lazy = use_lazy_graph_module(true);
  auto gm = symbolic_trace([](const Value& x) { return x.sin(); });
  CHECK(is_lazy(gm));

  auto gm1 = make_graph_module(gm, gm->graph_ptr(),
                               {.class_name = "MyGraphModule",
                                .graph_module_cls = GraphModuleClass::Eager});
  CHECK_FALSE(is_lazy(gm1));
  CHECK(gm1->class_name() == "MyGraphModule");

  auto gm2 = make_graph_module(gm, gm->graph_ptr());
  CHECK(is_lazy(gm2));
  CHECK(gm2->class_name() == "GraphModule");
}

}  // TEST_SUITE
