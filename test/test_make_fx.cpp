// make_fx: the seed twin (test_recapture_with_make_fx), the golden op-level code of real
// PyTorch 1.13 for every reference folder (fixtures/reference/*/makefx_code.py, or the
// normalised golden of fixtures/make_fx/ where fxpack differs on purpose), the lifted
// parameters (makefx_params.json), and the numerics against output.bin.
#include <doctest/doctest.h>

#include <filesystem>
#include <regex>

#include "fxpack/fxpack.hpp"
#include "fxpack/make_fx.hpp"
#include "reference_models.hpp"

using namespace fxpack;
using fxpack::testing::random_tensor;

namespace {

bool is_lazy(const std::shared_ptr<GraphModule>& gm) {
  return dynamic_cast<LazyGraphModule*>(gm.get()) != nullptr;
}

Value f(const Value& x) { return x.sin(); }

// The eager module of a reference folder with its real weights (PyTorch ran make_fx on the
// eager model), or null for seed_sin (a callable).
std::shared_ptr<Module> eager_reference(const std::string& folder) {
  std::shared_ptr<Module> m;
  if (folder == "seed_relu_add") m = std::make_shared<fxpack::testing::ReluAdd>();
  if (folder == "mlp") m = std::make_shared<fxpack::testing::MLP>();
  if (folder == "small_convnet") m = std::make_shared<fxpack::testing::SmallConvNet>();
  if (m) fxpack::testing::load_reference_weights(*m, folder);
  return m;
}

std::shared_ptr<GraphModule> make_fx_reference(const std::string& folder, const Tensor& x, bool from_trace) {
  if (folder == "seed_sin") return make_fx([](const Value& v) { return v.sin(); })(x);
  if (from_trace) return make_fx(fxpack::testing::trace_reference(folder))(x);
  return make_fx(eager_reference(folder))(x);
}

std::string golden_code(const std::string& folder) {
  auto normalised = fxpack::testing::fixtures_dir() / "make_fx" / (folder + ".py");
  if (std::filesystem::exists(normalised)) return fxpack::testing::read_file(normalised);
  return fxpack::testing::read_file(fxpack::testing::reference_dir(folder) / "makefx_code.py");
}

// (attr, source) pairs of makefx_params.json.
std::vector<std::pair<std::string, std::string>> golden_params(const std::string& folder) {
  std::string json = fxpack::testing::read_file(fxpack::testing::reference_dir(folder) / "makefx_params.json");
  std::regex re("\"attr\": \"([^\"]+)\",\\s*\"source\": \"([^\"]+)\"");
  std::vector<std::pair<std::string, std::string>> out;
  for (auto it = std::sregex_iterator(json.begin(), json.end(), re); it != std::sregex_iterator(); ++it)
    out.emplace_back((*it)[1], (*it)[2]);
  return out;
}

}  // namespace

TEST_SUITE("TestLazyGraphModule") {

TEST_CASE("recapture_with_make_fx") {
  auto lazy = use_lazy_graph_module(true);
  auto gm = symbolic_trace(f);
  CHECK(is_lazy(gm));
  CHECK(gm->needs_recompile());
  auto gm2 = make_fx(gm)(random_tensor({2, 3}));
  CHECK(is_lazy(gm2));
  CHECK(gm2->needs_recompile());

  // make_fx runs gm's forward, which clears its needs_recompile flag.
  CHECK_FALSE(gm->needs_recompile());
}

}  // TEST_SUITE

TEST_SUITE("make_fx") {

TEST_CASE("golden code and outputs of every reference folder") {
  for (const auto& c : fxpack::testing::reference_cases()) {
    for (bool from_trace : {false, true}) {
      if (c.folder == "seed_sin" && from_trace) continue;
      CAPTURE(c.folder);
      CAPTURE(from_trace);
      Tensor x = fxpack::testing::reference_input(c);
      auto gm = make_fx_reference(c.folder, x, from_trace);
      CHECK(gm->code() == golden_code(c.folder));
      gm->lint();
      Value out = (*gm)(x);
      REQUIRE(out.is_tensor());
      CHECK(allclose(out.tensor(), fxpack::testing::reference_output(c), 1e-5, 1e-6));
    }
  }
}

TEST_CASE("small_convnet differs from PyTorch's golden only by the documented add_ line") {
  auto gm = make_fx_reference("small_convnet", fxpack::testing::reference_input(fxpack::testing::reference_cases()[3]), false);
  std::string ours = gm->code();
  std::string torch = fxpack::testing::read_file(fxpack::testing::reference_dir("small_convnet") / "makefx_code.py");
  CHECK(ours != torch);
  const std::string a = "    add_ = torch.ops.aten.add_.Tensor(getitem_5, getitem_3);  getitem_5 = getitem_3 = None\n"
                        "    relu__1 = torch.ops.aten.relu_.default(add_);  add_ = None\n";
  const std::string b = "    add = torch.ops.aten.add.Tensor(getitem_5, getitem_3);  getitem_5 = getitem_3 = None\n"
                        "    relu__1 = torch.ops.aten.relu_.default(add);  add = None\n";
  auto pos = torch.find(a);
  REQUIRE(pos != std::string::npos);
  torch.replace(pos, a.size(), b);
  CHECK(ours == torch);
}

TEST_CASE("PyTorch's own small_convnet op set runs: add_.Tensor in place of add.Tensor") {
  auto lazy = use_lazy_graph_module(false);
  const auto& c = fxpack::testing::reference_cases()[3];
  Tensor x = fxpack::testing::reference_input(c);
  auto gm = make_fx_reference(c.folder, x, false);
  Node* add = gm->graph().find_node("add");
  REQUIRE(add != nullptr);
  add->set_target("torch.ops.aten.add_.Tensor");
  gm->recompile();
  CHECK(gm->code().find("torch.ops.aten.add_.Tensor(getitem_5, getitem_3)") != std::string::npos);
  CHECK(allclose((*gm)(x).tensor(), fxpack::testing::reference_output(c), 1e-5, 1e-6));
}

TEST_CASE("lifted parameters and buffers follow makefx_params.json and share the tensors") {
  for (const auto& c : fxpack::testing::reference_cases()) {
    if (c.folder == "seed_sin") continue;
    CAPTURE(c.folder);
    auto m = eager_reference(c.folder);
    auto gm = make_fx(m)(fxpack::testing::reference_input(c));
    auto expected = golden_params(c.folder);
    std::size_t n_lifted = gm->parameters().size() + gm->buffers().size();
    CHECK(n_lifted == expected.size());
    for (const auto& entry : expected) {
      const std::string& attr = entry.first;
      const std::string& source = entry.second;
      CAPTURE(attr);
      const Tensor& src = m->get_tensor(source);
      const bool param = attr.starts_with("_param_constant");
      const Tensor* lifted = param ? gm->find_parameter(attr) : gm->find_buffer(attr);
      REQUIRE(lifted != nullptr);
      CHECK(*lifted == src);  // the same tensor object, not a copy
    }
  }
}

TEST_CASE("method and function forms normalise to the same aten op") {
  auto lazy = use_lazy_graph_module(false);
  Tensor x = random_tensor({2, 3});
  auto a = make_fx([](const Value& v) { return v.sin().relu() + 1.0; })(x);
  auto b = make_fx([](const Value& v) { return torch::relu(torch::sin(v)) + 1.0; })(x);
  CHECK(a->code() == b->code());
  CHECK(a->code() ==
        "\n\n\ndef forward(self, x_1):\n"
        "    sin = torch.ops.aten.sin.default(x_1);  x_1 = None\n"
        "    relu = torch.ops.aten.relu.default(sin);  sin = None\n"
        "    add = torch.ops.aten.add.Tensor(relu, 1.0);  relu = None\n"
        "    return add\n    ");
  CHECK_FALSE(is_lazy(a));
  CHECK(allclose((*a)(x).tensor(), (Value(x).sin().relu() + 1.0).tensor()));
}

TEST_CASE("shape ops, reductions and reversed scalar operands") {
  Tensor x = random_tensor({2, 3, 4});
  auto fn = [](const Value& v) {
    Value a = v.flatten(1);                 // _reshape_alias [2, 12]
    Value b = a.reshape(Tuple{{Value(4), Value(6)}});  // _reshape_alias [4, 6]
    Value c = 2.0 - b;                      // rsub.Scalar
    Value d = 3.0 * c;                      // mul.Tensor(c, 3.0)
    Value e = d.transpose(0, 1);            // transpose.int
    Value s = e.sum(Value(1), true);        // sum.dim_IntList
    return s.mean();                        // mean.default
  };
  auto gm = make_fx(fn)(x);
  std::string code = gm->code();
  CHECK(code.find("torch.ops.aten._reshape_alias.default(x_1, [2, 12], [12, 1])") != std::string::npos);
  CHECK(code.find("torch.ops.aten._reshape_alias.default(_reshape_alias, [4, 6], [6, 1])") != std::string::npos);
  CHECK(code.find("torch.ops.aten.rsub.Scalar(_reshape_alias_1, 2.0)") != std::string::npos);
  CHECK(code.find("torch.ops.aten.mul.Tensor(rsub, 3.0)") != std::string::npos);
  CHECK(code.find("torch.ops.aten.transpose.int(mul, 0, 1)") != std::string::npos);
  CHECK(code.find("torch.ops.aten.sum.dim_IntList(transpose, [1], True)") != std::string::npos);
  CHECK(code.find("torch.ops.aten.mean.default(sum_1)") != std::string::npos);
  CHECK(allclose((*gm)(x).tensor(), fn(Value(x)).tensor(), 1e-5, 1e-6));
}

TEST_CASE("placeholders: x_1 for callables, argN_1 for modules") {
  Tensor x = random_tensor({2, 3});
  auto g1 = make_fx([](std::span<const Value> in) { return in[0] * in[1]; }, {"a", "b"})(x, x);
  CHECK(g1->code().find("def forward(self, a_1, b_1):") != std::string::npos);
  auto gm = symbolic_trace([](std::span<const Value> in) { return in[0] - in[1]; },
                           TraceOptions{{"p", "q"}, ""});
  auto g2 = make_fx(gm)(x, x);
  CHECK(g2->code().find("def forward(self, arg0_1, arg1_1):") != std::string::npos);
  CHECK(g2->code().find("torch.ops.aten.sub.Tensor(arg0_1, arg1_1)") != std::string::npos);
}

TEST_CASE("a parameter used twice is lifted once and read by two get_attr nodes") {
  class Twice : public Module {
   public:
    Twice() : Module("Twice") { register_parameter("w", Tensor::full({2, 3}, 0.5)); }
    Value forward(std::span<const Value> in) override { return in[0] * get("w") + get("w"); }
  };
  auto m = std::make_shared<Twice>();
  Tensor x = random_tensor({2, 3});
  auto gm = make_fx(m)(x);
  CHECK(gm->parameters().size() == 1);
  CHECK(gm->code().find("_param_constant0_1 = self._param_constant0") != std::string::npos);
  CHECK(allclose((*gm)(x).tensor(), (*m)(x).tensor()));
}

TEST_CASE("make_fx of a make_fx result computes the same") {
  const auto& c = fxpack::testing::reference_cases()[3];
  Tensor x = fxpack::testing::reference_input(c);
  auto gm1 = make_fx(eager_reference(c.folder))(x);
  auto gm2 = make_fx(gm1)(x);
  CHECK(allclose((*gm2)(x).tensor(), fxpack::testing::reference_output(c), 1e-5, 1e-6));
  CHECK(gm2->code().find("native_batch_norm_1 = torch.ops.aten.native_batch_norm.default") != std::string::npos);
}

TEST_CASE("unsupported forms are errors naming the node") {
  Tensor x = random_tensor({2, 3});
  // Indexing with a list of ints runs, but PyTorch records it with a lifted index tensor,
  // which make_fx does not make.
  auto gm = symbolic_trace([](const Value& v) { return v[Value(List{{Value(0), Value(1)}})]; });
  CHECK(allclose((*gm)(x).tensor(), x));
  CHECK_THROWS_WITH_AS(make_fx(gm)(x), doctest::Contains("getitem"), OpError);
}

}  // TEST_SUITE
