// Transformer ops and leaf kinds (src/ops/transformer.yaml): what the table walk's examples do
// not pin. Expected numbers come from PyTorch 1.13 / torchvision 0.14 (the Python that made
// them is quoted beside each).
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "fxpack/graph.hpp"
#include "fxpack/graph_module.hpp"
#include "fxpack/make_fx.hpp"
#include "fxpack/module.hpp"
#include "fxpack/ops.hpp"
#include "fxpack/tensor.hpp"
#include "fxpack/value.hpp"
#include "interop/unpickler.hpp"
#include "ops/kernels.hpp"

using namespace fxpack;

namespace {

// ((i * 37 + 11) % 17) / 17 * scale - scale / 2 + off, i = 0..n-1: deterministic test values
// that the Python below recomputes as `vals(n, scale, off)`.
Tensor vals(std::int64_t n, double scale, double off, Shape shape) {
  std::vector<float> v;
  for (std::int64_t i = 0; i < n; ++i) v.push_back(static_cast<float>(((i * 37 + 11) % 17) / 17.0 * scale - scale / 2 + off));
  return Tensor::from_vector(std::span<const float>(v), shape);
}

void check_close(const Tensor& got, const std::vector<double>& want) {
  REQUIRE(got.numel() == static_cast<std::int64_t>(want.size()));
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double g = got.item_at(static_cast<std::int64_t>(i));
    CHECK_MESSAGE(std::abs(g - want[i]) <= 1e-5 + 1e-4 * std::abs(want[i]), "element " << i << ": " << g << " vs " << want[i]);
  }
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::shared_ptr<Module> small_mha(bool batch_first) {
  auto m = make_module("MultiheadAttention", {Value(std::int64_t{4}), Value(std::int64_t{2})},
                       Dict{{{"batch_first", Value(batch_first)}}});
  m->register_parameter("in_proj_weight", vals(48, 1.0, 0.0, Shape{12, 4}));
  m->register_parameter("in_proj_bias", vals(12, 0.2, 0.0, Shape{12}));
  auto out = m->find_child("out_proj");
  out->register_parameter("weight", vals(16, 1.0, 0.05, Shape{4, 4}));
  out->register_parameter("bias", vals(4, 0.1, 0.0, Shape{4}));
  return m;
}

}  // namespace

// m = nn.MultiheadAttention(4, 2, batch_first=True) with the vals above; q = vals(12, 2.0).view(1, 3, 4)
TEST_CASE("MultiheadAttention: key padding mask, per-head weights, float attn_mask") {
  auto m = small_mha(true);
  const Tensor q = vals(12, 2.0, 0.0, Shape{1, 3, 4});
  std::vector<std::uint8_t> kpm{0, 1, 1};
  const Tensor mask = Tensor::from_bytes(std::as_bytes(std::span<const std::uint8_t>(kpm)), Shape{1, 3}, DType::Bool);
  const ModuleKind& kind = *m->leaf_kind();
  // m(q, q, q, key_padding_mask=kpm, average_attn_weights=False)
  std::vector<Value> in = kind.bind_inputs({Value(q), Value(q), Value(q)},
                                           Dict{{{"key_padding_mask", Value(mask)}, {"average_attn_weights", Value(false)}}});
  Value r = kind.forward(*m, in);
  check_close(r.items()[0].tensor(), {-0.46277832984924316, 0.07512111961841583, 0.1116364598274231, -0.5573844909667969,
                                      -0.46277832984924316, 0.07512111961841583, 0.1116364598274231, -0.5573844909667969,
                                      -0.46277832984924316, 0.07512111961841583, 0.1116364598274231, -0.5573844909667969});
  CHECK(r.items()[1].tensor().shape() == Shape{1, 2, 3, 3});
  check_close(r.items()[1].tensor(), {1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0});
  // m(q, q, q, attn_mask=am): a float mask is added to the scores; weights averaged over heads
  const Tensor am = Tensor::from_vector(std::span<const float>(std::vector<float>{0.0f, -1.0f, 0.5f, 0.25f, 0.0f, -0.5f, 1.0f, 0.0f, 0.0f}), Shape{3, 3});
  r = kind.forward(*m, kind.bind_inputs({Value(q), Value(q), Value(q)}, Dict{{{"attn_mask", Value(am)}}}));
  check_close(r.items()[0].tensor(), {0.03397392854094505, 0.046212147921323776, -0.045711539685726166, -0.009256601333618164,
                                      -0.03582896664738655, 0.06895540654659271, -0.052484702318906784, -0.06725291907787323,
                                      -0.13571326434612274, 0.06407737731933594, -0.014239821583032608, -0.18438635766506195});
  check_close(r.items()[1].tensor(), {0.3928350806236267, 0.12180951237678528, 0.4853554368019104, 0.3984631299972534,
                                      0.36617356538772583, 0.23536327481269836, 0.5599673390388489, 0.21057280898094177,
                                      0.22945988178253174});
  // A key padding mask that hides every key leaves NaN, as PyTorch's softmax of -inf does.
  std::vector<std::uint8_t> all{1, 1, 1};
  const Tensor hide = Tensor::from_bytes(std::as_bytes(std::span<const std::uint8_t>(all)), Shape{1, 3}, DType::Bool);
  r = kind.forward(*m, kind.bind_inputs({Value(q), Value(q), Value(q)}, Dict{{{"key_padding_mask", Value(hide)}}}));
  CHECK(std::isnan(r.items()[0].tensor().item_at(0)));
}

// Large float32 attention runs on oneDNN (heads read in place from the projections, the scale
// as an output scale, oneDNN's softmax); float64 takes the loops checked against PyTorch above.
// The same module in both dtypes must agree: self-attention (one packed projection), cross
// attention, masks (a batch whose every key is hidden gives NaN, as PyTorch does) and weights.
TEST_CASE("MultiheadAttention: float32 attention on oneDNN agrees with the float64 loops") {
  const std::int64_t E = 32, H = 4, N = 2, L = 16, S = 12;
  const auto mha = [&](DType dt) {
    auto m = make_module("MultiheadAttention", {Value(E), Value(H)}, Dict{{{"batch_first", Value(true)}}});
    m->register_parameter("in_proj_weight", vals(3 * E * E, 0.5, 0.0, Shape{3 * E, E}).to(dt));
    m->register_parameter("in_proj_bias", vals(3 * E, 0.2, 0.0, Shape{3 * E}).to(dt));
    auto out = m->find_child("out_proj");
    out->register_parameter("weight", vals(E * E, 0.5, 0.01, Shape{E, E}).to(dt));
    out->register_parameter("bias", vals(E, 0.1, 0.0, Shape{E}).to(dt));
    return m;
  };
  auto m32 = mha(DType::Float32), m64 = mha(DType::Float64);
  const ModuleKind& kind = *m32->leaf_kind();
  const Tensor q = vals(N * L * E, 2.0, 0.0, Shape{N, L, E}), kv = vals(N * S * E, 2.0, 0.1, Shape{N, S, E});
  std::vector<std::uint8_t> hidden(static_cast<std::size_t>(N * S), 0);
  for (std::int64_t s = 0; s < S; ++s) hidden[static_cast<std::size_t>(S + s)] = 1;  // batch 1: every key
  hidden[3] = 1;
  const Tensor kpm = Tensor::from_bytes(std::as_bytes(std::span<const std::uint8_t>(hidden)), Shape{N, S}, DType::Bool);
  const Tensor am = vals(L * L, 1.0, 0.0, Shape{L, L});
  struct Case {
    const char* what;
    Tensor key;
    Dict kwargs;
  };
  const std::vector<Case> cases{
      {"self-attention, weights averaged", q, Dict{}},
      {"self-attention, float attn_mask, no weights", q, Dict{{{"attn_mask", Value(am)}, {"need_weights", Value(false)}}}},
      {"cross attention, key padding mask, per-head weights", kv,
       Dict{{{"key_padding_mask", Value(kpm)}, {"average_attn_weights", Value(false)}}}},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    const auto run = [&](const Module& m, DType dt) {
      Dict kw = c.kwargs;
      for (auto& [name, v] : kw.items)
        if (v.is_tensor() && name == "attn_mask") v = Value(v.tensor().to(dt));
      return kind.forward(m, kind.bind_inputs({Value(q.to(dt)), Value(c.key.to(dt)), Value(c.key.to(dt))}, kw));
    };
    const Value got = run(*m32, DType::Float32), want = run(*m64, DType::Float64);
    for (std::size_t i = 0; i < 2; ++i) {
      if (want.items()[i].is_none()) {
        CHECK(got.items()[i].is_none());
        continue;
      }
      const Tensor g = got.items()[i].tensor(), w = want.items()[i].tensor();
      REQUIRE(g.shape() == w.shape());
      std::int64_t nan = 0;
      for (std::int64_t j = 0; j < w.numel(); ++j) {
        const double a = g.item_at(j), b = w.item_at(j);
        if (std::isnan(b)) {
          CHECK(std::isnan(a));
          ++nan;
          continue;
        }
        CHECK_MESSAGE(std::abs(a - b) <= 1e-5 + 1e-4 * std::abs(b), "output " << i << " element " << j << ": " << a << " vs " << b);
      }
      // Only the cross-attention case hides every key of a batch: its rows are NaN.
      CHECK((nan > 0) == (c.key == kv));
    }
  }
}

TEST_CASE("MultiheadAttention: forward's inputs bind as Python binds them") {
  auto m = small_mha(false);
  const ModuleKind& kind = *m->leaf_kind();
  const Value q(vals(8, 1.0, 0.0, Shape{2, 1, 4}));
  CHECK(error_of([&] { kind.bind_inputs({q, q}, {}); }) ==
        "MultiheadAttention.forward() missing a required argument: 'value'");
  CHECK(error_of([&] { kind.bind_inputs({q, q, q}, Dict{{{"need_weight", Value(false)}}}); }) ==
        "MultiheadAttention.forward() got an unexpected keyword argument 'need_weight'");
  CHECK(error_of([&] { kind.bind_inputs({q, q, q}, Dict{{{"query", q}}}); }) ==
        "MultiheadAttention.forward() got multiple values for argument 'query'");
  CHECK(error_of([&] { kind.bind_inputs(std::vector<Value>(9, q), {}); }) ==
        "MultiheadAttention.forward() takes 8 inputs but 9 were given");
  // need_weights=False: (output, None); a 2-D query is unbatched.
  Value r = kind.forward(*m, kind.bind_inputs({q, q, q}, Dict{{{"need_weights", Value(false)}}}));
  CHECK(r.items()[1].is_none());
  CHECK(r.items()[0].tensor().shape() == Shape{2, 1, 4});
  const Value q2(vals(8, 1.0, 0.0, Shape{2, 4}));
  r = (*m)({q2, q2, q2});
  CHECK(r.items()[0].tensor().shape() == Shape{2, 4});
  CHECK(r.items()[1].tensor().shape() == Shape{2, 2});
  CHECK(error_of([&] { (*m)({Value(vals(8, 1.0, 0.0, Shape{2, 1, 4})), q2, q2}); }).find(
            "expected `key` and `value` to be 3-D") != std::string::npos);
}

TEST_CASE("call_module with keyword arguments: plans and make_fx bind them to the leaf kind") {
  auto root = std::make_shared<Module>("Root");
  root->register_module("attn", small_mha(false));
  auto g = std::make_shared<Graph>();
  Node* x = g->placeholder("x");
  Dict kw{{{"need_weights", Value(false)}}};
  Node* a = g->call_module("attn", {Value(x), Value(x), Value(x)}, kw);
  g->output(Value(g->call_function("operator.getitem", {Value(a), Value(std::int64_t{0})})));
  auto gm = make_graph_module(root, g);
  const Tensor q = vals(8, 1.0, 0.0, Shape{2, 1, 4});
  const Tensor got = (*gm)({Value(q)}).tensor();
  const Tensor want = (*root->find_child("attn"))({Value(q), Value(q), Value(q)}).items()[0].tensor();
  CHECK(allclose(got, want));
  auto traced = make_fx(gm)({Value(q)});
  CHECK(traced->code().find("_native_multi_head_attention") != std::string::npos);
  CHECK(allclose((*traced)({Value(q)}).tensor(), want, 1e-4, 1e-5));
  // A module of no registered kind has no declared inputs to bind keywords to.
  auto user = std::make_shared<Module>("Root");
  user->register_module("inner", std::make_shared<Module>("Inner"));
  auto g2 = std::make_shared<Graph>();
  Node* y = g2->placeholder("y");
  g2->output(Value(g2->call_module("inner", {Value(y)}, Dict{{{"flag", Value(true)}}})));
  CHECK(error_of([&] { (*make_graph_module(user, g2))({Value(q)}); }).find(
            "call_module with keyword arguments: module Inner is not of a registered kind") != std::string::npos);
}

// x = vals(60, 2.0).view(1, 3, 5, 4); qkv_w = vals(48, 1.0).view(12, 4); proj_w = vals(16, 1.0, 0.1).view(4, 4)
// bias = vals(72, 0.5).view(1, 2, 6, 6); shifted_window_attention(x, qkv_w, proj_w, bias, [2, 3], 2, shift)
TEST_CASE("shifted_window_attention: padding, shifts in one or both dims, as torchvision computes them") {
  const Value x(vals(60, 2.0, 0.0, Shape{1, 3, 5, 4}));
  const Value qkv_w(vals(48, 1.0, 0.0, Shape{12, 4}));
  const Value proj_w(vals(16, 1.0, 0.1, Shape{4, 4}));
  const Value bias(vals(72, 0.5, 0.0, Shape{1, 2, 6, 6}));
  auto run = [&](std::int64_t s0, std::int64_t s1) {
    return call_function("torchvision.models.swin_transformer.shifted_window_attention",
                         {x, qkv_w, proj_w, bias, Value(List{{Value(std::int64_t{2}), Value(std::int64_t{3})}}),
                          Value(std::int64_t{2}), Value(List{{Value(s0), Value(s1)}})})
        .tensor();
  };
  // shift [1, 1]
  check_close(run(1, 1), {-0.4565846025943756, 0.022145360708236694, 0.09949114918708801, -0.4875229001045227, 0.08802472800016403, 0.041437339037656784, -0.03676615655422211, 0.11930613219738007, 0.0639059767127037, 0.03630823642015457, -0.024017786607146263, 0.08803639560937881, -0.0355425663292408, 0.061135273426771164, 0.023786773905158043, -0.02060316503047943, -0.0571557879447937, -0.052011556923389435, 0.03202611953020096, -0.09077086299657822, -0.06446228921413422, 0.033062778413295746, 0.010438775643706322, -0.05541268736124039, 0.06098019331693649, -0.02746543474495411, 0.007368667982518673, 0.04704654961824417, 0.07103671133518219, -0.014890477061271667, 0.006527150981128216, 0.06246966868638992, 0.10066713392734528, -0.023557573556900024, -0.017662115395069122, 0.09830895066261292, 0.10926184058189392, -0.019406262785196304, -0.040908973664045334, 0.11786292493343353, -0.15002258121967316, 0.026179801672697067, 0.05903424322605133, -0.16316436231136322, 0.12056020647287369, -0.013422161340713501, -0.02619202807545662, 0.12566815316677094, 0.1095210388302803, -0.031139494851231575, -0.02789500169456005, 0.10822323709726334, 0.07600607722997665, -0.011490706354379654, 0.0014490094035863876, 0.07083019614219666, 0.09118719398975372, -0.02096591144800186, -0.03543544188141823, 0.09697501361370087});
  // shift [0, 2]: torchvision's slice (-0, None) covers the whole height, so only columns split regions
  check_close(run(0, 2), {-0.03278079256415367, 0.003537663258612156, 0.035689614713191986, -0.04564157500863075, 0.023469576612114906, 0.006756076123565435, -0.007522397208958864, 0.029180966317653656, 0.09709957242012024, -0.007408542558550835, -0.03546666353940964, 0.10832282155752182, -0.016437161713838577, -0.024581752717494965, 0.016656024381518364, -0.03293227776885033, 0.03664296120405197, -0.0064481887966394424, -0.009576156735420227, 0.037894152104854584, 0.04079137742519379, 0.002011669799685478, -0.02710881642997265, 0.05243957042694092, 0.0008394140750169754, 0.015248668380081654, -0.003966372460126877, 0.008525427430868149, 0.07762130349874496, 0.00031194183975458145, -0.03630710020661354, 0.0922689288854599, 0.13690213859081268, 0.011190351098775864, -0.06796307116746902, 0.16856351494789124, 0.1027350127696991, -0.0015108287334442139, -0.05748846381902695, 0.12512606382369995, -0.11510789394378662, 0.033944159746170044, 0.05656362324953079, -0.1241556853055954, -0.0916280597448349, 0.039440467953681946, 0.028720319271087646, -0.08734000474214554, 0.05965773016214371, -0.03609803318977356, -0.022346165031194687, 0.05415698140859604, 0.03616572916507721, -0.03056788444519043, -0.006187011953443289, 0.026413384824991226, 0.043773628771305084, -0.02922893688082695, -0.009529086761176586, 0.03589368984103203});
}

TEST_CASE("MultiheadAttention: separate q/k/v weights (kdim, vdim) and no biases run; make_fx says why it cannot") {
  auto m = make_module("MultiheadAttention", {Value(std::int64_t{4}), Value(std::int64_t{2})},
                       Dict{{{"bias", Value(false)}, {"kdim", Value(std::int64_t{3})}, {"vdim", Value(std::int64_t{2})}}});
  CHECK(m->find_parameter("in_proj_weight") == nullptr);
  CHECK(m->find_parameter("k_proj_weight")->shape() == Shape{4, 3});
  m->register_parameter("q_proj_weight", vals(16, 1.0, 0.0, Shape{4, 4}));
  m->register_parameter("k_proj_weight", vals(12, 1.0, 0.1, Shape{4, 3}));
  m->register_parameter("v_proj_weight", vals(8, 1.0, 0.2, Shape{4, 2}));
  m->find_child("out_proj")->register_parameter("weight", vals(16, 1.0, 0.05, Shape{4, 4}));
  const Value q(vals(8, 2.0, 0.0, Shape{2, 1, 4})), k(vals(9, 2.0, 0.0, Shape{3, 1, 3})), v(vals(6, 2.0, 0.0, Shape{3, 1, 2}));
  // m = nn.MultiheadAttention(4, 2, bias=False, kdim=3, vdim=2) with these values; m(q, k, v)
  Value r = (*m)({q, k, v});
  check_close(r.items()[0].tensor(), {0.09730885177850723, -0.10732604563236237, -0.04782891273498535, 0.07351000607013702,
                                      0.03674297779798508, -0.003992509096860886, 0.03720720857381821, 0.02026308886706829});
  CHECK(r.items()[1].tensor().shape() == Shape{1, 2, 3});
  check_close(r.items()[1].tensor(), {0.34567826986312866, 0.3040705621242523, 0.35025113821029663, 0.31653881072998047,
                                      0.3683245778083801, 0.3151366710662842});
  CHECK(error_of([&] { make_fx(m)({q, k, v}); }).find("no inference fast path") != std::string::npos);
}

TEST_CASE("stochastic_depth: torchvision's checks; random drops are refused") {
  const Value x(vals(6, 1.0, 0.0, Shape{2, 3}));
  const std::string f = "torchvision.ops.stochastic_depth.stochastic_depth";
  CHECK(call_function(f, {x, Value(0.5), Value("row"), Value(false)}).tensor() == x.tensor());
  CHECK(error_of([&] { call_function(f, {x, Value(1.5), Value("row"), Value(false)}); }) ==
        "stochastic_depth: drop probability has to be between 0 and 1, but got 1.5");
  CHECK(error_of([&] { call_function(f, {x, Value(0.5), Value("rows"), Value(false)}); }) ==
        "stochastic_depth: mode has to be either 'batch' or 'row', but got 'rows'");
  CHECK(error_of([&] { call_function(f, {x, Value(0.5), Value("row")}); }).find("fxpack does not do") != std::string::npos);
}

TEST_CASE("LayerNorm: no affine, multi-dim shapes, PyTorch's shape message") {
  auto ln = make_module("LayerNorm", {Value(Tuple{{Value(std::int64_t{2}), Value(std::int64_t{3})}})},
                        Dict{{{"elementwise_affine", Value(false)}}});
  CHECK(ln->repr() == "LayerNorm((2, 3), eps=1e-05, elementwise_affine=False)");
  CHECK(ln->parameters().empty());
  const Tensor x = vals(12, 2.0, 1.0, Shape{2, 2, 3});
  const Tensor y = (*ln)({Value(x)}).tensor();
  for (int r = 0; r < 2; ++r) {
    double mean = 0;
    for (int i = 0; i < 6; ++i) mean += y.item_at(r * 6 + i);
    CHECK(std::abs(mean) < 1e-5);
  }
  CHECK(error_of([&] { (*ln)({Value(vals(8, 1.0, 0.0, Shape{2, 4}))}); }).find("Given normalized_shape=[2, 3]") !=
        std::string::npos);
}

TEST_CASE("torch.package allowlist: the op table's torch.nn.functional functions by name, no other function") {
  const interop::GlobalAllowlist& l = interop::torch_package_allowlist();
  CHECK(l.allows("torch.nn.functional", "relu"));
  CHECK(l.allows("torch.nn.functional", "gelu"));
  CHECK(l.allows("torch.nn.functional", "layer_norm"));
  CHECK_FALSE(l.allows("torch.nn.functional", "no_such_function"));
  CHECK_FALSE(l.allows("torch", "_assert"));
  CHECK_FALSE(l.allows("builtins", "eval"));
  CHECK_FALSE(l.allows("torch.nn", "functional"));
}

TEST_CASE("TransformerEncoderLayer: activation held as a registered function's name") {
  auto m = make_module("TransformerEncoderLayer", {Value(std::int64_t{8}), Value(std::int64_t{2}), Value(std::int64_t{16})},
                       Dict{{{"activation", Value("gelu")}}});
  CHECK(m->attr("activation").str() == "torch.nn.functional.gelu");
  CHECK(m->attr("activation_relu_or_gelu").to_int() == 2);
  CHECK(error_of([&] {
          make_module("TransformerEncoderLayer", {Value(std::int64_t{8}), Value(std::int64_t{2})},
                      Dict{{{"activation", Value("os.system")}}});
        }) == "TransformerEncoderLayer: activation should be relu/gelu or a registered function, not 'os.system'");
  // An attribute declared Callable must name a registered function.
  m->set_attr("activation", Value("torch.nn.functional.no_such_function"));
  CHECK_FALSE(error_of([&] { m->leaf_kind()->validate(*m); }).empty());
}

TEST_CASE("scaled_dot_product_attention: scale, causal and bool/float masks as PyTorch 2.x computes them") {
  const auto sdpa = [](std::vector<Value> args, Dict kw = {}) {
    return call_function("torch._C._nn.scaled_dot_product_attention", std::move(args), std::move(kw)).tensor();
  };
  const auto f = [](std::vector<float> v, Shape s) { return Tensor::from_vector(std::span<const float>(v), s); };
  const Tensor q = f({1, 0}, Shape{1, 1, 2}), k = f({1, 0, 0, 1}, Shape{1, 2, 2}), v = f({1, 3}, Shape{1, 2, 1});
  // scores (1/sqrt(2), 0), softmax, then the weighted values.
  check_close(sdpa({q, k, v}), {1.6604769013466862});
  check_close(sdpa({q, k, v}, Dict{{{"scale", Value(0.5)}}}), {1.7550813375962906});
  // bool: True attends; floating: added to the scores.
  const auto bmask = [](bool a, bool b) {
    Tensor m = Tensor::empty(Shape{1, 2}, DType::Bool);
    m.data<std::uint8_t>()[0] = a;
    m.data<std::uint8_t>()[1] = b;
    return m;
  };
  check_close(sdpa({q, k, v, bmask(false, true)}), {3});
  check_close(sdpa({q, k, v, f({0, -1e9F}, Shape{1, 2})}), {1});
  // causal: query l attends to keys s <= l.
  const Tensor q2 = f({1, 0, 0, 1}, Shape{1, 2, 2});
  const Tensor causal = sdpa({q2, k, v}, Dict{{{"is_causal", Value(true)}}});
  const double w = std::exp(0.0) / (std::exp(0.0) + std::exp(1 / std::sqrt(2.0)));
  check_close(causal, {1, w * 1 + (1 - w) * 3});
  // the functional name binds the same op
  check_close(call_function("torch.nn.functional.scaled_dot_product_attention", {q, k, v}).tensor(), {1.6604769013466862});
  // grouped-query attention repeats each key/value head for its query heads
  const Tensor qg = vals(16, 2, 0, Shape{1, 4, 2, 2}), kg = vals(8, 2, 0.1, Shape{1, 2, 2, 2}), vg = vals(8, 3, 0, Shape{1, 2, 2, 2});
  const Tensor gqa = sdpa({qg, kg, vg}, Dict{{{"enable_gqa", Value(true)}}});
  const Tensor first_group = sdpa({ops::narrow(qg, 1, 0, 2), ops::narrow(kg, 1, 0, 1), ops::narrow(vg, 1, 0, 1)});
  check_close(ops::narrow(gqa, 1, 0, 2), first_group.to_doubles());
  CHECK(error_of([&] { sdpa({q, k, v}, Dict{{{"dropout_p", Value(0.5)}}}); }).find("dropout_p=0.5") != std::string::npos);
  CHECK(error_of([&] { sdpa({q, k, v, bmask(true, true)}, Dict{{{"is_causal", Value(true)}}}); })
            .find("Explicit attn_mask should not be set when is_causal=True") != std::string::npos);
  CHECK(error_of([&] { sdpa({q, f({1, 0, 0}, Shape{1, 1, 3}), v}); }).find("do not fit") != std::string::npos);
}
