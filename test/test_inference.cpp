// Inference: oneDNN kernels against the float64 reference loops, inference plans (folding,
// fused post-ops, blocked layouts, buffer reuse) against plain plans, several input
// signatures and thread counts, concurrent calls, and the thread-count and Winograd settings.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <random>
#include <thread>

#include "fxpack/fxpack.hpp"
#include "ops/dnnl/primitives.hpp"
#include "ops/kernels.hpp"

using namespace fxpack;

namespace {

Tensor random_tensor(Shape shape, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<float> v(static_cast<std::size_t>(shape.numel()));
  for (float& x : v) x = static_cast<float>(dist(gen));
  return Tensor::from_vector(std::span<const float>(v), shape);
}

// float32 (oneDNN) against float64 (reference loops, Eigen) on the same values.
void check_close(const Tensor& f32, const Tensor& f64, double rtol = 1e-4, double atol = 1e-5) {
  REQUIRE(f32.dtype() == DType::Float32);
  REQUIRE(f64.dtype() == DType::Float64);
  CHECK(f32.shape() == f64.shape());
  INFO("max |diff| ", max_abs_diff(f32.to(DType::Float64), f64));
  CHECK(allclose(f32.to(DType::Float64), f64, rtol, atol));
}

Tensor d(const Tensor& t) { return t.to(DType::Float64); }

// The graph run by a plan without the inference program: the reference an optimised run of
// the same graph must match.
Tensor plain_plan_output(const Graph& graph, const Module& root, const Tensor& x) {
  const auto plan = Plan::build(graph, root, PlanOptions{.optimize_for_inference = false});
  return plan->run(std::vector<Value>{x}).tensor();
}

void randomize(Module& m, std::uint64_t seed) {
  for (const auto& [path, sub] : m.named_modules()) {
    for (const auto& [name, t] : std::vector(sub->parameters().begin(), sub->parameters().end()))
      sub->register_parameter(name, random_tensor(t.shape(), seed++, -0.5, 0.5));
    for (const auto& [name, t] : std::vector(sub->buffers().begin(), sub->buffers().end())) {
      if (name == "running_var") sub->register_buffer(name, random_tensor(t.shape(), seed++, 0.5, 2.0));
      else if (name == "running_mean") sub->register_buffer(name, random_tensor(t.shape(), seed++, -0.3, 0.3));
    }
  }
}

// A ResNet/MobileNet-style network: conv+bn+relu, max pool, a residual block, a depthwise
// convolution with bias, a downsampling block whose two branches meet in an addition, a
// functional convolution on a get_attr weight, a gate (sigmoid * x), global pooling,
// flatten and a linear head.
class Net : public Module {
 public:
  Net() : Module("Net") {
    register_module("conv1", nn::Conv2d(3, 16, 3, 2, 1, 1, 1, false));
    register_module("bn1", nn::BatchNorm2d(16));
    register_module("relu", nn::ReLU(true));
    register_module("pool", nn::MaxPool2d(3, 2, 1));
    register_module("conv2", nn::Conv2d(16, 16, 3, 1, 1, 1, 1, false));
    register_module("bn2", nn::BatchNorm2d(16));
    register_module("dw", nn::Conv2d(16, 16, 3, 1, 1, 1, 16, true));
    register_module("conv3", nn::Conv2d(16, 32, 3, 2, 1, 1, 1, false));
    register_module("bn3", nn::BatchNorm2d(32));
    register_module("down", nn::Conv2d(16, 32, 1, 2, 0, 1, 1, false));
    register_module("bn_down", nn::BatchNorm2d(32));
    register_parameter("gate_w", Tensor::zeros(Shape{32, 32, 1, 1}));
    register_module("avgpool", nn::AdaptiveAvgPool2d(Tuple{{1, 1}}));
    register_module("fc", nn::Linear(32, 10));
  }
  Value forward(std::span<const Value> in) override {
    auto m = [&](const char* name) { return find_child(name); };
    Value x = (*m("pool"))((*m("relu"))((*m("bn1"))((*m("conv1"))(in[0]))));
    Value y = (*m("relu"))((*m("bn2"))((*m("conv2"))(x)) + x);
    Value z = torch::relu((*m("dw"))(y));
    Value a = (*m("bn3"))((*m("conv3"))(z));
    Value b = (*m("bn_down"))((*m("down"))(z));
    Value out = (*m("relu"))(a + b);
    Value g = torch::sigmoid(call_function("torch.nn.functional.conv2d", {out, get("gate_w")}));
    out = out * g;
    out = torch::flatten((*m("avgpool"))(out), 1);
    return torch::relu((*m("fc"))(out));
  }
};

struct Models {
  std::shared_ptr<GraphModule> fast, plain;
};

// `m` traced once, run by an optimised inference plan and by the plain kernels.
Models fast_and_plain(const std::shared_ptr<Module>& m, const std::string& class_name) {
  auto traced = symbolic_trace(m);
  return {std::make_shared<GraphModule>(*traced, traced->graph_ptr(), class_name),
          std::make_shared<GraphModule>(*traced, traced->graph_ptr(), class_name,
                                        PlanOptions{.optimize_for_inference = false})};
}

Models net_models() {
  auto net = std::make_shared<Net>();
  randomize(*net, 7);
  return fast_and_plain(net, "Net");
}

// Linear, then a functional batch norm on its features, then ReLU.
class LinearBn : public Module {
 public:
  LinearBn(std::int64_t in, std::int64_t out) : Module("LinearBn") {
    register_module("fc", nn::Linear(in, out));
    register_buffer("rm", Tensor::zeros(Shape{out}));
    register_buffer("rv", Tensor::zeros(Shape{out}));
    register_parameter("gamma", Tensor::zeros(Shape{out}));
    register_parameter("beta", Tensor::zeros(Shape{out}));
  }
  Value forward(std::span<const Value> in) override {
    Value y = (*find_child("fc"))(in[0]);
    y = call_function("torch.nn.functional.batch_norm",
                      {y, get("rm"), get("rv"), get("gamma"), get("beta"), Value(false), Value(0.1), Value(1e-5)});
    return torch::relu(y);
  }
};

// An EfficientNet block: an expanding convolution on a blocked layout, a squeeze-excitation
// (global pooling, two small convolutions, x * scale with scale [N, C, 1, 1]), a projection,
// stochastic depth (the identity at inference) and the residual addition. 24 channels: the
// blocked layouts pad them to 32.
class SeBlock : public Module {
 public:
  SeBlock() : Module("SeBlock") {
    register_module("expand", nn::Conv2d(24, 72, 1, 1, 0, 1, 1, false));
    register_module("bn1", nn::BatchNorm2d(72));
    register_module("pool", nn::AdaptiveAvgPool2d(1));
    register_module("fc1", nn::Conv2d(72, 6, 1));
    register_module("fc2", nn::Conv2d(6, 72, 1));
    register_module("project", nn::Conv2d(72, 24, 1, 1, 0, 1, 1, false));
    register_module("bn2", nn::BatchNorm2d(24));
  }
  Value forward(std::span<const Value> in) override {
    auto m = [&](const char* name) { return find_child(name); };
    const auto silu = [](const Value& v) { return call_function("torch.nn.functional.silu", {v}); };
    Value x = silu((*m("bn1"))((*m("expand"))(in[0])));
    Value s = silu((*m("fc1"))((*m("pool"))(x)));
    s = torch::sigmoid((*m("fc2"))(s));
    Value y = (*m("bn2"))((*m("project"))(x * s));
    y = call_function("torchvision.ops.stochastic_depth.stochastic_depth",
                      {y, Value(0.2), Value(std::string("row")), Value(false)});
    return y + in[0];
  }
};

// A MobileNetV2/EfficientNet block: a 1x1 expansion with batch norm and an activation, a
// depthwise convolution (k x k, stride s, "same" padding) with batch norm and the activation,
// a 1x1 projection. `shared`: the expansion's result is also an output (read twice).
class ExpandDepthwise : public Module {
 public:
  ExpandDepthwise(std::int64_t in, std::int64_t hidden, std::int64_t k, std::int64_t stride, bool silu, bool shared)
      : Module("ExpandDepthwise"), silu_(silu), shared_(shared) {
    register_module("expand", nn::Conv2d(in, hidden, 1, 1, 0, 1, 1, false));
    register_module("bn1", nn::BatchNorm2d(hidden));
    register_module("dw", nn::Conv2d(hidden, hidden, k, stride, (k - 1) / 2, 1, hidden, true));
    register_module("bn2", nn::BatchNorm2d(hidden));
    register_module("act", make_module("ReLU6"));
    register_module("project", nn::Conv2d(hidden, in, 1, 1, 0, 1, 1, false));
  }
  Value forward(std::span<const Value> in) override {
    auto m = [&](const char* name) { return find_child(name); };
    const auto act = [&](const Value& v) {
      return silu_ ? call_function("torch.nn.functional.silu", {v}) : (*m("act"))(v);
    };
    Value x = act((*m("bn1"))((*m("expand"))(in[0])));
    Value y = (*m("project"))(act((*m("bn2"))((*m("dw"))(x))));
    return shared_ ? Value(Tuple{{y, x}}) : y;
  }

 private:
  bool silu_, shared_;
};

struct ThreadsGuard {
  int saved = num_threads();
  ~ThreadsGuard() { set_num_threads(saved); }
};

struct WinogradGuard {
  Winograd saved = winograd();
  ~WinogradGuard() { set_winograd(saved); }
};

}  // namespace

TEST_CASE("inference: the thread count setting") {
  ThreadsGuard guard;
  CHECK(available_cpus() >= 1);
  CHECK(num_threads() >= 1);
  set_num_threads(3);
  CHECK(num_threads() == 3);
  CHECK_THROWS_WITH_AS(set_num_threads(0), doctest::Contains("0 is not a thread count"), Error);
  CHECK_THROWS_AS(set_num_threads(100000), Error);
  CHECK(num_threads() == 3);
}

TEST_CASE("inference: oneDNN convolutions agree with the float64 loops") {
  struct Case {
    Shape x, w;
    Value stride, padding, dilation;
    std::int64_t groups;
    bool bias;
  };
  const std::vector<Case> cases = {
      {{2, 3, 9, 11}, {8, 3, 3, 3}, Value(1), Value(1), Value(1), 1, true},
      {{1, 8, 10, 10}, {8, 1, 3, 3}, Value(2), Value(1), Value(1), 8, true},            // depthwise
      {{1, 6, 12, 12}, {9, 2, 3, 3}, Value(1), Value(2), Value(2), 3, false},          // groups, dilation
      {{1, 4, 7, 8}, {5, 4, 2, 4}, Value(1), Value(std::string("same")), Value(1), 1, true},  // asymmetric padding
      {{2, 4, 1, 20}, {6, 4, 1, 5}, Value(3), Value(Tuple{{Value(0), Value(2)}}), Value(1), 1, true},  // 1-D as 2-D
      {{1, 16, 14, 14}, {16, 16, 3, 3}, Value(1), Value(1), Value(1), 1, false},
  };
  std::uint64_t seed = 1;
  for (const Case& c : cases) {
    INFO("x ", c.x.to_string(), " w ", c.w.to_string());
    const Tensor x = random_tensor(c.x, seed++), w = random_tensor(c.w, seed++);
    const Tensor b = random_tensor(Shape{c.w[0]}, seed++);
    const auto o = ops::conv2d_options(c.stride, c.padding, c.dilation, c.groups, c.w[2], c.w[3]);
    const Tensor bd = d(b);
    check_close(ops::conv2d(x, w, c.bias ? &b : nullptr, o), ops::conv2d(d(x), d(w), c.bias ? &bd : nullptr, o));
  }
}

TEST_CASE("inference: oneDNN pooling, normalisation and products agree with the float64 loops") {
  const Tensor x = random_tensor(Shape{2, 5, 9, 10}, 11);
  for (bool ceil : {false, true}) {
    ops::Pool2dOptions o;
    o.kernel = {3, 2};
    o.stride = {2, 2};
    o.padding = {1, 1};
    o.ceil_mode = ceil;
    check_close(ops::max_pool2d(x, o), ops::max_pool2d(d(x), o), 0, 0);
    for (bool include : {false, true}) check_close(ops::avg_pool2d(x, o, include), ops::avg_pool2d(d(x), o, include));
    o.dilation = {2, 1};
    o.padding = {1, 0};
    check_close(ops::max_pool2d(x, o), ops::max_pool2d(d(x), o), 0, 0);
  }
  check_close(ops::adaptive_avg_pool2d(x, {3, 5}), ops::adaptive_avg_pool2d(d(x), {3, 5}));
  check_close(ops::adaptive_avg_pool2d(x, {1, 1}), ops::adaptive_avg_pool2d(d(x), {1, 1}));
  check_close(ops::adaptive_avg_pool2d(x, {4, 3}), ops::adaptive_avg_pool2d(d(x), {4, 3}));  // uneven windows

  const Tensor mean = random_tensor(Shape{5}, 12), var = random_tensor(Shape{5}, 13, 0.5, 2.0);
  const Tensor gamma = random_tensor(Shape{5}, 14), beta = random_tensor(Shape{5}, 15);
  const Tensor dm = d(mean), dv = d(var), dg = d(gamma), db = d(beta);
  check_close(ops::batch_norm(x, &gamma, &beta, &mean, &var, false, 1e-5),
              ops::batch_norm(d(x), &dg, &db, &dm, &dv, false, 1e-5));
  check_close(ops::batch_norm(x, nullptr, nullptr, &mean, &var, false, 1e-3),
              ops::batch_norm(d(x), nullptr, nullptr, &dm, &dv, false, 1e-3));

  const Tensor t = random_tensor(Shape{3, 4, 10}, 16), lw = random_tensor(Shape{10}, 17), lb = random_tensor(Shape{10}, 18);
  const Tensor dlw = d(lw), dlb = d(lb);
  const std::int64_t last[] = {10};
  check_close(ops::layer_norm(t, last, &lw, &lb, 1e-5), ops::layer_norm(d(t), last, &dlw, &dlb, 1e-5));
  const std::int64_t two[] = {4, 10};
  check_close(ops::layer_norm(t, two, nullptr, nullptr, 1e-5), ops::layer_norm(d(t), two, nullptr, nullptr, 1e-5));
  CHECK_THROWS_WITH_AS(ops::layer_norm(t, two, &lw, nullptr, 1e-5), doctest::Contains("expected weight of shape [4, 10]"),
                       OpError);

  const Tensor a = random_tensor(Shape{2, 1, 30, 40}, 19), bm = random_tensor(Shape{3, 40, 50}, 20);
  check_close(ops::matmul(a, bm), ops::matmul(d(a), d(bm)));  // broadcast batch dims
  const Tensor w = random_tensor(Shape{64, 40}, 21), bias = random_tensor(Shape{64}, 22);
  const Tensor dbias = d(bias);
  check_close(ops::linear(a, w, &bias), ops::linear(d(a), d(w), &dbias));
}

TEST_CASE("inference: avg_pool2d counts padding as PyTorch does") {
  std::vector<float> v(25);
  for (int i = 0; i < 25; ++i) v[static_cast<std::size_t>(i)] = static_cast<float>(i);
  const Tensor x = Tensor::from_vector(std::span<const float>(v), Shape{1, 1, 5, 5});
  ops::Pool2dOptions o;
  o.kernel = {3, 3};
  o.stride = {2, 2};
  o.padding = {1, 1};
  // torch.nn.functional.avg_pool2d(x, 3, 2, 1, count_include_pad=...), PyTorch 1.13.
  const std::vector<double> include = {1.3333334, 3.0, 2.6666667, 7.0, 12.0, 9.0, 8.0, 13.0, 9.333333};
  const std::vector<double> exclude = {3.0, 4.5, 6.0, 10.5, 12.0, 13.5, 18.0, 19.5, 21.0};
  for (bool ceil : {false, true}) {
    o.ceil_mode = ceil;
    const auto a = ops::avg_pool2d(x, o, true).to_doubles(), b = ops::avg_pool2d(x, o, false).to_doubles();
    REQUIRE(a.size() == 9);
    for (std::size_t i = 0; i < 9; ++i) {
      CHECK(a[i] == doctest::Approx(include[i]).epsilon(1e-6));
      CHECK(b[i] == doctest::Approx(exclude[i]).epsilon(1e-6));
    }
  }
  // ceil_mode windows past the padding: the divisor stops at the declared padding.
  o.kernel = o.stride = {2, 2};
  o.padding = {0, 0};
  o.ceil_mode = true;
  const std::vector<double> ceil_include = {3.0, 5.0, 6.5, 13.0, 15.0, 16.5, 20.5, 22.5, 24.0};
  const auto c = ops::avg_pool2d(x, o, true).to_doubles();
  REQUIRE(c.size() == 9);
  for (std::size_t i = 0; i < 9; ++i) CHECK(c[i] == doctest::Approx(ceil_include[i]).epsilon(1e-6));
  o.padding = {2, 2};
  CHECK_THROWS_WITH_AS(ops::avg_pool2d(x, o, true), doctest::Contains("pad should be at most half of kernel size"),
                       OpError);
}

TEST_CASE("inference: an inference plan folds, fuses and agrees with the plain plan") {
  ThreadsGuard guard;
  set_num_threads(1);
  const Models models = net_models();
  std::shared_ptr<GraphModule> fast = models.fast, plain = models.plain;
  CHECK(fast->plan()->optimized_for_inference());
  CHECK_FALSE(plain->plan()->optimized_for_inference());
  const std::string summary = fast->plan()->inference_summary();
  INFO(summary);
  CHECK(summary.find("conv2d [conv1 bn1 relu] batch_norm folded, post-ops: relu") != std::string::npos);
  CHECK(summary.find("conv2d [conv2 bn2 add relu_1] batch_norm folded, post-ops: add relu") != std::string::npos);
  CHECK(summary.find("conv2d [dw relu_2], post-ops: relu") != std::string::npos);
  CHECK(summary.find("[conv3 bn3 add_1 relu_3] batch_norm folded, post-ops: add relu") != std::string::npos);
  CHECK(summary.find("conv2d [conv2d sigmoid], post-ops: sigmoid") != std::string::npos);
  CHECK(summary.find("mul [mul]") != std::string::npos);
  CHECK(summary.find("linear [fc relu_4], post-ops: relu") != std::string::npos);
  CHECK(summary.find("kernel") == std::string::npos);  // every node runs on oneDNN
  const std::string before = fast->code();
  for (int call = 0; call < 3; ++call) {
    const Tensor x = random_tensor(Shape{2, 3, 32, 32}, 100 + static_cast<std::uint64_t>(call));
    const Tensor want = (*plain)(x).tensor();
    const Tensor got = (*fast)(x).tensor();
    INFO("call ", call, " max |diff| ", max_abs_diff(got, want));
    CHECK(allclose(got, want, 1e-4, 1e-5));
  }
  CHECK(fast->code() == before);  // the graph and its code are untouched
  const auto st = fast->plan()->inference_stats();
  CHECK(st.signatures == 1);
  CHECK(st.primitives >= 8);
  CHECK(st.arena_bytes > 0);
  CHECK(st.packed_weight_bytes > 0);
}

TEST_CASE("inference: the Winograd setting is part of a plan's signature") {
  ThreadsGuard guard;
  WinogradGuard winograd_guard;
  set_num_threads(1);
  const Models models = net_models();
  const Tensor x = random_tensor(Shape{2, 3, 32, 32}, 300);
  const Tensor want = (*models.plain)(x).tensor();
  std::vector<std::size_t> packed;  // weight bytes each setting's specialisation added
  std::size_t total = 0;
  for (Winograd w : {Winograd::Off, Winograd::Auto, Winograd::Always}) {
    set_winograd(w);
    CHECK(winograd() == w);
    const Tensor got = (*models.fast)(x).tensor();
    INFO("setting ", static_cast<int>(w), " max |diff| ", max_abs_diff(got, want));
    CHECK(allclose(got, want, 1e-4, 1e-5));
    const auto st = models.fast->plan()->inference_stats();
    packed.push_back(st.packed_weight_bytes - total);
    total = st.packed_weight_bytes;
  }
  CHECK(models.fast->plan()->inference_stats().signatures == 3);
  // Net's only 3x3 stride-1 convolution has 8x8 outputs: Auto leaves it direct, as Off does;
  // Always gives it Winograd weights where the CPU has the kernel (AVX-512), which are larger.
  CHECK(packed[1] == packed[0]);
  CHECK(packed[2] >= packed[0]);
}

namespace {
// Convolution, batch norm, ReLU.
class ConvBnRelu : public Module {
 public:
  ConvBnRelu(std::int64_t in, std::int64_t out, std::int64_t kernel) : Module("ConvBnRelu") {
    register_module("conv", nn::Conv2d(in, out, kernel, 1, kernel / 2, 1, 1, false));
    register_module("bn", nn::BatchNorm2d(out));
    register_module("relu", nn::ReLU(false));
  }
  Value forward(std::span<const Value> in) override {
    return (*find_child("relu"))((*find_child("bn"))((*find_child("conv"))(in[0])));
  }
};

// What a call of a `channels` -> `channels` 3x3 convolution on [1, channels, size, size] needs
// beyond its originals under one Winograd setting: its packed weights and its scratchpad.
struct ConvBytes {
  std::size_t packed = 0, scratchpad = 0;
};

// ConvBytes under each Winograd setting (Off, Auto, Always), each run checked against the
// plain plan.
std::vector<ConvBytes> bytes_per_setting(std::int64_t channels, std::int64_t size) {
  auto m = std::make_shared<ConvBnRelu>(channels, channels, 3);
  randomize(*m, 40);
  const Models models = fast_and_plain(m, "ConvBnRelu");
  const Tensor x = random_tensor(Shape{1, channels, size, size}, 41);
  const Tensor want = (*models.plain)(x).tensor();
  std::vector<ConvBytes> bytes;
  std::size_t total = 0;
  for (Winograd w : {Winograd::Off, Winograd::Auto, Winograd::Always}) {
    set_winograd(w);
    const Tensor got = (*models.fast)(x).tensor();
    INFO(channels, " channels at ", size, "x", size, ", setting ", static_cast<int>(w), " max |diff| ", max_abs_diff(got, want));
    CHECK(allclose(got, want, 1e-4, 1e-5));
    const Plan::InferenceStats stats = models.fast->plan()->inference_stats();
    bytes.push_back({stats.packed_weight_bytes - total, stats.scratchpad_bytes});  // each setting is a signature
    total = stats.packed_weight_bytes;
  }
  return bytes;
}

// Auto's choice by its rule (plan.hpp): Winograd (Always's bytes) where what it needs beyond
// the direct convolution (Off's bytes) is at most the activations it reads and writes, else
// the direct one. The convolution is the model's only step, so no earlier step's scratchpad
// is held. Returns the bytes of the three settings.
std::vector<ConvBytes> check_auto_follows_its_rule(std::int64_t channels, std::int64_t size) {
  const std::vector<ConvBytes> b = bytes_per_setting(channels, size);
  const auto beyond = [](std::size_t x, std::size_t y) { return x > y ? x - y : 0; };
  const std::size_t added = beyond(b[2].packed, b[0].packed) + beyond(b[2].scratchpad, b[0].scratchpad);
  const std::size_t activations = 2 * static_cast<std::size_t>(channels * size * size) * sizeof(float);
  INFO(channels, " channels at ", size, "x", size, ": Winograd adds ", added, " bytes to ", activations, " of activations");
  const ConvBytes& want = added <= activations ? b[2] : b[0];
  CHECK(b[1].packed == want.packed);
  CHECK(b[1].scratchpad == want.scratchpad);
  return b;
}
}  // namespace

TEST_CASE("inference: Auto takes Winograd where the bytes it adds are at most the convolution's activations") {
  ThreadsGuard guard;
  WinogradGuard winograd_guard;
  set_num_threads(1);
  // 64 channels at 56x56 (resnet18's first stage): F(2,3) adds 0.3–0.9 MiB by CPU (its
  // scratchpad is 0.2 MiB on an AMD EPYC, 0.7 MiB on a Xeon with 4 MiB of L2) to 1.5 MiB of
  // activations, so the rule is checked against what this CPU's kernels need.
  check_auto_follows_its_rule(64, 56);
  // 128 channels at 7x7: 448 KiB or more added to 49 KiB of activations — left direct
  // wherever oneDNN has Winograd (elsewhere all three settings pack alike).
  const std::vector<ConvBytes> deep = check_auto_follows_its_rule(128, 7);
  CHECK(deep[1].packed == deep[0].packed);
}

TEST_CASE("inference: weights packed a chunk at a time — blocks, a part block at the end, padding") {
  ThreadsGuard guard;
  set_num_threads(1);
  // 56 output channels of 200x3x3 (7 KiB each): chunks of 32, 16 and 8 rows into a layout
  // blocked by 16 that pads them to 64 (where oneDNN blocks them: AVX-512 and AVX2).
  auto m = std::make_shared<ConvBnRelu>(200, 56, 3);
  randomize(*m, 50);
  const Models models = fast_and_plain(m, "ConvBnRelu");
  const Tensor x = random_tensor(Shape{2, 200, 9, 9}, 51);
  const Tensor got = (*models.fast)(x).tensor(), want = (*models.plain)(x).tensor();
  INFO("max |diff| ", max_abs_diff(got, want));
  CHECK(allclose(got, want, 1e-4, 1e-5));
  CHECK(models.fast->plan()->inference_stats().packed_weight_bytes >= 56 * 200 * 9 * sizeof(float));
  const Tensor again = (*models.fast)(x).tensor();
  CHECK(max_abs_diff(again, got) == 0.0);
}

TEST_CASE("inference: a squeeze-excitation block stays on oneDNN, stochastic depth included") {
  ThreadsGuard guard;
  set_num_threads(1);
  auto m = std::make_shared<SeBlock>();
  randomize(*m, 11);
  const Models models = fast_and_plain(m, "SeBlock");
  const auto& fast = models.fast;
  const auto& plain = models.plain;
  const std::string summary = fast->plan()->inference_summary();
  INFO(summary);
  CHECK(summary.find("conv2d [project bn2 stochastic_depth add] batch_norm folded, post-ops: add") != std::string::npos);
  CHECK(summary.find("kernel") == std::string::npos);
  for (int call = 0; call < 2; ++call) {
    const Tensor x = random_tensor(Shape{1, 24, 20, 20}, 30 + static_cast<std::uint64_t>(call));
    const Tensor want = (*plain)(x).tensor();
    const Tensor got = (*fast)(x).tensor();
    INFO("call ", call, " max |diff| ", max_abs_diff(got, want));
    CHECK(allclose(got, want, 1e-4, 1e-5));
  }
  CHECK(fast->plan()->inference_stats().calling_thread_primitives == 0);  // one thread: nothing to tell
  // With two threads the squeeze-excitation's convolutions on [1, C, 1, 1] (a few hundred
  // multiply-adds) run on the calling thread alone; the block's large steps use both.
  set_num_threads(2);
  const Tensor x2 = random_tensor(Shape{1, 24, 20, 20}, 35);
  CHECK(allclose((*fast)(x2).tensor(), (*plain)(x2).tensor(), 1e-4, 1e-5));
  const auto st = fast->plan()->inference_stats();
  CHECK(st.calling_thread_primitives >= 2);
  CHECK(st.calling_thread_primitives < st.primitives);
  // In training mode stochastic depth is not the identity: its kernel says so.
  auto training = symbolic_trace(m);
  for (Node* n : training->graph())
    if (n->name() == "stochastic_depth") n->set_arg(3, Value(true));
  training->recompile();
  std::string message;
  try {
    (void)(*training)(random_tensor(Shape{1, 24, 20, 20}, 40));
  } catch (const OpError& e) {
    message = e.what();
  }
  CHECK(message.find("stochastic_depth: training=True with p=0.2") != std::string::npos);
}

TEST_CASE("inference: batch norm folds into a linear layer on 2-D features") {
  auto m = std::make_shared<LinearBn>(8, 6);
  randomize(*m, 3);
  m->register_buffer("rv", random_tensor(Shape{6}, 9, 0.5, 2.0));
  const Models models = fast_and_plain(m, "LinearBn");
  const auto& fast = models.fast;
  const auto& plain = models.plain;
  INFO(fast->plan()->inference_summary());
  CHECK(fast->plan()->inference_summary() == "linear [fc batch_norm relu] batch_norm folded, post-ops: relu\n");
  const Tensor x = random_tensor(Shape{5, 8}, 4);
  CHECK(allclose((*fast)(x).tensor(), (*plain)(x).tensor(), 1e-4, 1e-5));
  // On [N, L, features] batch norm normalises L: not foldable, the kernels run instead.
  const Tensor x3 = random_tensor(Shape{2, 6, 8}, 5);
  CHECK(allclose((*fast)(x3).tensor(), (*plain)(x3).tensor(), 1e-4, 1e-5));
}

TEST_CASE("inference: a linear layer's weights folded and packed a chunk of outputs at a time") {
  ThreadsGuard guard;
  set_num_threads(1);
  // 200 outputs of 600 inputs (2400 bytes each): the matmul's [in, out] layouts are cut
  // along the outputs (dim 1) — where oneDNN blocks them, in whole blocks and a part block
  // at the end.
  auto m = std::make_shared<LinearBn>(600, 200);
  randomize(*m, 60);
  m->register_buffer("rv", random_tensor(Shape{200}, 61, 0.5, 2.0));
  const Models models = fast_and_plain(m, "LinearBn");
  CHECK(models.fast->plan()->inference_summary() == "linear [fc batch_norm relu] batch_norm folded, post-ops: relu\n");
  const Tensor x = random_tensor(Shape{5, 600}, 62);
  const Tensor got = (*models.fast)(x).tensor(), want = (*models.plain)(x).tensor();
  INFO("max |diff| ", max_abs_diff(got, want));
  CHECK(allclose(got, want, 1e-4, 1e-5));
  CHECK(models.fast->plan()->inference_stats().packed_weight_bytes >= 600 * 200 * sizeof(float));
  CHECK(max_abs_diff((*models.fast)(x).tensor(), got) == 0.0);
}

TEST_CASE("inference: one plan serves several input signatures and thread counts") {
  ThreadsGuard guard;
  const Models models = net_models();
  std::shared_ptr<GraphModule> fast = models.fast, plain = models.plain;
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (std::int64_t n : {1, 3}) {
      for (std::int64_t hw : {32, 20}) {
        const Tensor x = random_tensor(Shape{n, 3, hw, hw}, static_cast<std::uint64_t>(n * hw + threads));
        const Tensor want = (*plain)(x).tensor();
        for (int repeat = 0; repeat < 2; ++repeat) {
          const Tensor got = (*fast)(x).tensor();
          INFO("threads ", threads, " n ", n, " hw ", hw, " repeat ", repeat, " max |diff| ", max_abs_diff(got, want));
          CHECK(allclose(got, want, 1e-4, 1e-5));
        }
      }
    }
  }
  CHECK(fast->plan()->inference_stats().signatures == 8);
  // Past the limit on signatures, calls run the plain plan.
  set_num_threads(1);
  for (std::int64_t hw = 21; hw < 30; ++hw) {
    const Tensor x = random_tensor(Shape{1, 3, hw, hw}, static_cast<std::uint64_t>(hw));
    CHECK(allclose((*fast)(x).tensor(), (*plain)(x).tensor(), 1e-4, 1e-5));
  }
}

TEST_CASE("inference: concurrent calls of one module") {
  ThreadsGuard guard;
  set_num_threads(2);
  const Models models = net_models();
  std::shared_ptr<GraphModule> fast = models.fast, plain = models.plain;
  std::vector<Tensor> inputs, expected;
  for (std::uint64_t i = 0; i < 6; ++i) {
    inputs.push_back(random_tensor(Shape{i % 2 ? 2 : 1, 3, 24, 24}, 500 + i));
    expected.push_back((*plain)(inputs.back()).tensor());
  }
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < 8; ++r) {
        const std::size_t i = static_cast<std::size_t>(t + r) % inputs.size();
        const Tensor y = (*fast)(inputs[i]).tensor();
        if (!allclose(y, expected[i], 1e-4, 1e-5)) bad.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(bad.load() == 0);
}

TEST_CASE("inference: a recompile builds the instructions; concurrent first calls build the program once") {
  ThreadsGuard guard;
  set_num_threads(1);
  auto net = std::make_shared<Net>();
  randomize(*net, 7);
  auto traced = symbolic_trace(net);
  const Tensor x = random_tensor(Shape{1, 3, 24, 24}, 11);
  const Tensor want = plain_plan_output(traced->graph(), *traced, x);

  // The plan alone: plain until prepared, then the one program every thread runs.
  auto plan = Plan::build_instructions(traced->graph(), *traced);
  CHECK_FALSE(plan->optimized_for_inference());
  CHECK(plan->inference_summary().empty());
  CHECK(allclose(plan->run(std::vector<Value>{x}).tensor(), want, 1e-4, 1e-5));
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      plan->prepare_inference(traced->graph());
      if (!allclose(plan->run(std::vector<Value>{x}).tensor(), want, 1e-4, 1e-5)) bad.fetch_add(1);
    });
  }
  for (auto& th : threads) th.join();
  CHECK(bad.load() == 0);
  CHECK(plan->optimized_for_inference());
  CHECK(plan->inference_stats().signatures == 1);

  // A dirty lazy module called by several threads at once: one recompile, one program.
  auto lazy = std::make_shared<LazyGraphModule>(*traced, traced->graph_ptr(), "Net");
  threads.clear();
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      if (!allclose((*lazy)(x).tensor(), want, 1e-4, 1e-5)) bad.fetch_add(1);
    });
  }
  for (auto& th : threads) th.join();
  CHECK(bad.load() == 0);
  CHECK(lazy->recompile_count() == 1);
  CHECK(lazy->plan()->optimized_for_inference());
  CHECK(lazy->plan()->inference_stats().signatures == 1);
}

TEST_CASE("inference: a graph edited between the recompile and the first call runs the stale plan, plain") {
  ThreadsGuard guard;
  set_num_threads(1);
  auto net = std::make_shared<Net>();
  randomize(*net, 7);
  auto traced = symbolic_trace(net);
  const Tensor x = random_tensor(Shape{1, 3, 24, 24}, 12);
  auto gm = std::make_shared<GraphModule>(*traced, traced->graph_ptr(), "Net");  // recompiled now
  const Tensor relu_out = plain_plan_output(gm->graph(), *gm, x);
  Node* last = gm->graph().find_node("relu_4");
  REQUIRE(last != nullptr);
  last->set_target("torch.sigmoid");  // not recompiled: the old plan keeps running
  CHECK(allclose((*gm)(x).tensor(), relu_out, 1e-4, 1e-5));
  CHECK_FALSE(gm->plan()->optimized_for_inference());  // a program from the edited graph would differ
  gm->recompile();
  const Tensor sigmoid_out = plain_plan_output(gm->graph(), *gm, x);
  CHECK_FALSE(allclose(sigmoid_out, relu_out, 1e-4, 1e-5));
  CHECK(allclose((*gm)(x).tensor(), sigmoid_out, 1e-4, 1e-5));
  CHECK(gm->plan()->optimized_for_inference());
}

TEST_CASE("inference: a meta change between the recompile and the first call keeps the program") {
  ThreadsGuard guard;
  set_num_threads(1);
  auto net = std::make_shared<Net>();
  randomize(*net, 7);
  auto traced = symbolic_trace(net);
  const Tensor x = random_tensor(Shape{1, 3, 24, 24}, 14);
  auto gm = std::make_shared<GraphModule>(*traced, traced->graph_ptr(), "Net");  // recompiled now
  const Tensor want = plain_plan_output(gm->graph(), *gm, x);
  Node* conv = gm->graph().find_node("conv1");
  REQUIRE(conv != nullptr);
  const std::uint64_t generation = gm->graph().generation();
  conv->meta().set("stack_trace", "File \"net.py\", line 3, in forward");  // what codegen reads, plans never
  CHECK(gm->graph().generation() != generation);
  CHECK(allclose((*gm)(x).tensor(), want, 1e-4, 1e-5));
  CHECK(gm->plan()->optimized_for_inference());
  CHECK(gm->plan()->inference_stats().signatures == 1);
  CHECK(gm->plan()->inference_summary().find("conv2d [conv1 bn1 relu]") != std::string::npos);
}

// A call computes with the objects the recompile captured, whichever path it takes: a
// submodule replaced or a tensor registered before the first call reaches neither the
// program that call builds nor a call that runs plain, until the next recompile.
TEST_CASE("inference: the first call's program uses what the recompile captured, as a plain call does") {
  ThreadsGuard guard;
  set_num_threads(1);
  auto net = std::make_shared<Net>();
  randomize(*net, 7);
  auto traced = symbolic_trace(net);
  auto gm = std::make_shared<GraphModule>(*traced, traced->graph_ptr(), "Net");  // recompiled now
  const PlanOptions plain{.optimize_for_inference = false};
  const auto captured = Plan::build(gm->graph(), *net, plain);  // the objects as recompiled
  auto other = std::make_shared<Net>();
  randomize(*other, 99);
  gm->set_submodule("conv1", other->find_child("conv1"));  // a call_module's module
  gm->set_submodule("fc", other->find_child("fc"));
  gm->register_parameter("gate_w", other->get_tensor("gate_w"));  // a get_attr's tensor
  const auto replaced = Plan::build(gm->graph(), *gm, plain);
  auto run = [](const Plan& p, const Tensor& x) { return p.run(std::vector<Value>{x}).tensor(); };
  const Tensor x = random_tensor(Shape{1, 3, 24, 24}, 15);
  const Tensor want = run(*captured, x);
  REQUIRE_FALSE(allclose(run(*replaced, x), want, 1e-4, 1e-5));  // the replacements matter

  CHECK(allclose((*gm)(x).tensor(), want, 1e-4, 1e-5));
  const auto plan = gm->plan();
  REQUIRE(plan->optimized_for_inference());
  CHECK(allclose(plan->run_plain(std::vector<Value>{x}).tensor(), want, 1e-4, 1e-5));
  // Past the program's 8 signatures calls run plain: the same objects still.
  for (std::int64_t hw = 25; hw < 35; ++hw) {
    const Tensor xi = random_tensor(Shape{1, 3, hw, hw}, static_cast<std::uint64_t>(hw));
    INFO("hw ", hw);
    CHECK(allclose((*gm)(xi).tensor(), run(*captured, xi), 1e-4, 1e-5));
  }
  CHECK(plan->inference_stats().signatures == 8);

  // The next recompile captures the replacements, for both paths.
  gm->recompile();
  const Tensor now = run(*replaced, x);
  CHECK(allclose((*gm)(x).tensor(), now, 1e-4, 1e-5));
  REQUIRE(gm->plan()->optimized_for_inference());
  CHECK(allclose(gm->plan()->run_plain(std::vector<Value>{x}).tensor(), now, 1e-4, 1e-5));
}

// Graph::lint refuses a node after the output, but such a graph runs (the plan stops at the
// output); its program cannot be built, which the first call decides once for the plan.
TEST_CASE("inference: a program that cannot be built is decided once: the plan runs plain") {
  auto root = std::make_shared<Module>("Root");
  root->register_module("conv", nn::Conv2d(3, 8, 3, 1, 1, 1, 1, true));
  randomize(*root, 5);
  auto g = std::make_shared<Graph>();
  Node* x = g->placeholder("x");
  Node* y = g->call_function("torch.relu", {Value(g->call_module("conv", {Value(x)}))});
  Node* unread = g->call_module("conv", {Value(x)});  // read only after the output
  Node* out = g->output(Value(y));
  {
    auto at = g->inserting_after(out);
    g->call_method("sigmoid", {Value(unread)});
  }
  CHECK_THROWS_WITH_AS(g->lint(), doctest::Contains("is not the last node"), GraphError);
  auto gm = std::make_shared<GraphModule>(*root, g, "Root");
  const Tensor input = random_tensor(Shape{1, 3, 8, 8}, 16);
  const Tensor want = plain_plan_output(*g, *root, input);

  CHECK(max_abs_diff((*gm)(input).tensor(), want) == 0.0);
  const auto plan = gm->plan();
  CHECK_FALSE(plan->optimized_for_inference());
  const std::exception_ptr error = plan->inference_error();
  REQUIRE(error != nullptr);
  CHECK_THROWS_WITH_AS(std::rethrow_exception(error),
                       doctest::Contains("no inference program: node 'sigmoid' comes after the output node"),
                       GraphError);
  // Decided: later calls run plain and keep that error (a second build would throw anew).
  CHECK(max_abs_diff((*gm)(input).tensor(), want) == 0.0);
  CHECK(gm->plan()->inference_error() == error);
  // A plan whose program was built has no error.
  const Models models = net_models();
  (void)(*models.fast)(random_tensor(Shape{1, 3, 16, 16}, 17));
  CHECK(models.fast->plan()->optimized_for_inference());
  CHECK(models.fast->plan()->inference_error() == nullptr);
}

TEST_CASE("inference: results outlive the next call, and bad inputs get the kernel's message") {
  const Models models = net_models();
  std::shared_ptr<GraphModule> fast = models.fast, plain = models.plain;
  const Tensor x1 = random_tensor(Shape{1, 3, 16, 16}, 1), x2 = random_tensor(Shape{1, 3, 16, 16}, 2);
  const Tensor y1 = (*fast)(x1).tensor();
  const Tensor y1_copy = y1.clone();
  const Tensor y2 = (*fast)(x2).tensor();
  const Tensor y1_again = (*fast)(x1).tensor();
  CHECK(max_abs_diff(y1, y1_copy) == 0.0);  // not overwritten by later calls
  CHECK(allclose(y1_again, y1, 1e-6, 1e-7));
  CHECK_FALSE(allclose(y2, y1, 1e-6, 1e-7));
  // Results are lent from reusable blocks: more held at once than there are blocks, and
  // results kept after their module is gone, stay what they were.
  std::vector<Tensor> held, want;
  for (std::uint64_t i = 0; i < 12; ++i) {
    const Tensor x = random_tensor(Shape{1, 3, 16, 16}, 40 + i);
    held.push_back((*fast)(x).tensor());
    want.push_back((*plain)(x).tensor());
  }
  fast.reset();
  for (std::size_t i = 0; i < held.size(); ++i) CHECK(allclose(held[i], want[i], 1e-4, 1e-5));
  fast = net_models().fast;
  // Four channels where conv1 takes three: the convolution kernel reports it, naming the node.
  CHECK_THROWS_WITH_AS((*fast)(random_tensor(Shape{1, 4, 16, 16}, 3)), doctest::Contains("node 'conv1'"), OpError);
  CHECK_THROWS_WITH_AS((*fast)(random_tensor(Shape{1, 4, 16, 16}, 3)), doctest::Contains("has 4 channels"), OpError);
  // Non-float inputs and other arities take the plain plan and its messages.
  CHECK_THROWS_AS((*fast)(Tensor::zeros(Shape{1, 3, 16, 16}, DType::Int64)), OpError);
  CHECK_THROWS_WITH_AS(fast->forward(std::vector<Value>{}), doctest::Contains("forward takes 1 input(s), got 0"), OpError);
}

TEST_CASE("inference: large elementwise ops on oneDNN agree with the loops, NaN included") {
  Tensor x = random_tensor(Shape{3, 4096}, 31, -4.0, 4.0);
  Tensor y = random_tensor(Shape{3, 4096}, 32, 0.5, 2.0);
  x.data<float>()[5] = std::numeric_limits<float>::quiet_NaN();
  for (ops::UnaryOp op : {ops::UnaryOp::Exp, ops::UnaryOp::Tanh, ops::UnaryOp::Sigmoid, ops::UnaryOp::Abs,
                          ops::UnaryOp::Neg, ops::UnaryOp::Relu, ops::UnaryOp::Sin}) {
    INFO(std::string(ops::op_name(op)));
    Tensor f = ops::unary(op, x), g = ops::unary(op, d(x));
    CHECK(std::isnan(f.item_at(5)));
    f.data<float>()[5] = 0.f;
    g.data<double>()[5] = 0.0;
    check_close(f, g, 1e-5, 1e-6);
  }
  for (ops::BinaryOp op : {ops::BinaryOp::Add, ops::BinaryOp::Sub, ops::BinaryOp::Mul, ops::BinaryOp::Div}) {
    INFO(std::string(ops::op_name(op)));
    Tensor f = ops::binary(op, x, y);
    CHECK(std::isnan(f.item_at(5)));
    f.data<float>()[5] = 0.f;
    Tensor g = ops::binary(op, d(x), d(y));
    g.data<double>()[5] = 0.0;
    check_close(f, g, 1e-6, 1e-7);
    for (bool number_first : {false, true}) {
      const Value a = number_first ? Value(1.5) : Value(x), b = number_first ? Value(x) : Value(1.5);
      Tensor fs = ops::binary(op, a, b).tensor();
      const Value da = number_first ? Value(1.5) : Value(d(x)), db = number_first ? Value(d(x)) : Value(1.5);
      Tensor gs = ops::binary(op, da, db).tensor();
      CHECK(std::isnan(fs.item_at(5)));
      fs.data<float>()[5] = 0.f;
      gs.data<double>()[5] = 0.0;
      check_close(fs, gs, 1e-6, 1e-7);
    }
  }
}

namespace {

// nn.MultiheadAttention(32, 4) with random weights; x [.., 32] as the graph reads it.
std::shared_ptr<Module> attention_module(bool batch_first, bool bias) {
  auto m = make_module("MultiheadAttention", {Value(std::int64_t{32}), Value(std::int64_t{4})},
                       Dict{{{"batch_first", Value(batch_first)}, {"bias", Value(bias)}}});
  randomize(*m, batch_first ? 11 : 23);
  return m;
}

// A graph as torchvision's ViT writes it: ln, then `y, _ = attn(h, h, h, need_weights=False)`
// (the kwargs and the getitem of the unread weights included), then y + x. `kwargs` replace
// need_weights=False when given; `separate_key` makes key and value a second input.
Models attention_models(bool batch_first, bool bias = true, std::optional<Dict> kwargs = std::nullopt,
                        bool separate_key = false, DType dtype = DType::Float32) {
  auto root = std::make_shared<Module>("Block");
  root->register_module("ln", make_module("LayerNorm", {Value(std::int64_t{32})}));
  root->register_module("attn", attention_module(batch_first, bias));
  for (const auto& [path, sub] : root->named_modules())
    for (const auto& [name, t] : std::vector(sub->parameters().begin(), sub->parameters().end()))
      sub->register_parameter(name, t.to(dtype));
  auto g = std::make_shared<Graph>();
  Node* x = g->placeholder("x");
  Node* key = separate_key ? g->placeholder("key") : nullptr;
  Node* h = g->call_module("ln", {Value(x)});
  Dict kw = kwargs ? *kwargs : Dict{{{"need_weights", Value(false)}}};
  Node* a = g->call_module("attn", {Value(h), Value(key ? key : h), Value(key ? key : h)}, kw);
  Node* y = g->call_function("operator.getitem", {Value(a), Value(std::int64_t{0})});
  (void)g->call_function("operator.getitem", {Value(a), Value(std::int64_t{1})});
  g->output(Value(g->call_function("operator.add", {Value(y), Value(x)})));
  return {std::make_shared<GraphModule>(*root, g, "Block"),
          std::make_shared<GraphModule>(*root, g, "Block", PlanOptions{.optimize_for_inference = false})};
}

}  // namespace

// Self-attention without masks or weights runs as one plan step (packed projections, plan
// buffers); it must agree with the module's kernel for every input layout and thread count.
TEST_CASE("inference: a MultiheadAttention step agrees with the module's kernel") {
  ThreadsGuard guard;
  struct Case {
    bool batch_first, bias;
    Shape x;
  };
  // (20, 1, 32): one sequence, sequence-major, laid out as batch-first.
  for (const Case& c : {Case{true, true, Shape{2, 20, 32}}, Case{false, true, Shape{20, 2, 32}},
                        Case{true, false, Shape{3, 17, 32}}, Case{false, true, Shape{24, 32}},
                        Case{false, true, Shape{20, 1, 32}}}) {
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      INFO("batch_first ", c.batch_first, ", bias ", c.bias, ", x ", c.x.to_string(), ", ", threads, " thread(s)");
      const Models models = attention_models(c.batch_first, c.bias);
      const std::string summary = models.fast->plan()->inference_summary();
      INFO(summary);
      CHECK(summary.find("multi_head_attention [attn getitem getitem_1]") != std::string::npos);
      CHECK(summary.find("kernel") == std::string::npos);
      for (std::uint64_t call = 0; call < 3; ++call) {  // the first call specialises, the others replay
        const Tensor x = random_tensor(c.x, 300 + call);
        const Tensor want = (*models.plain)(x).tensor(), got = (*models.fast)(x).tensor();
        INFO("call ", call, " max |diff| ", max_abs_diff(got, want));
        CHECK(allclose(got, want, 1e-4, 1e-5));
      }
      const auto st = models.fast->plan()->inference_stats();
      // The packed projections: [3E, E] and [E, E] at least.
      CHECK(st.packed_weight_bytes >= 4 * 32 * 32 * sizeof(float));
    }
  }
}

// Masks, returned weights, cross attention and float64 keep the module's kernel, with its
// results (a key padding mask hiding every key of a batch gives NaN rows, as in PyTorch).
TEST_CASE("inference: MultiheadAttention with masks, weights or other keys keeps its kernel") {
  const Tensor x = random_tensor(Shape{2, 20, 32}, 5);
  const auto same = [](const Tensor& got, const Tensor& want) {
    REQUIRE(got.shape() == want.shape());
    for (std::int64_t i = 0; i < want.numel(); ++i) {
      const double a = got.item_at(i), b = want.item_at(i);
      if (std::isnan(b)) {
        CHECK(std::isnan(a));
      } else {
        CHECK(std::abs(a - b) <= 1e-5 + 1e-4 * std::abs(b));
      }
    }
  };
  std::vector<std::uint8_t> hidden(40, 0);
  for (std::size_t s = 20; s < 40; ++s) hidden[s] = 1;  // batch 1: every key
  const Tensor kpm = Tensor::from_bytes(std::as_bytes(std::span<const std::uint8_t>(hidden)), Shape{2, 20}, DType::Bool);
  const std::vector<std::pair<const char*, Dict>> cases{
      {"need_weights", Dict{}},
      {"key padding mask", Dict{{{"need_weights", Value(false)}, {"key_padding_mask", Value(kpm)}}}},
      {"attn_mask", Dict{{{"need_weights", Value(false)}, {"attn_mask", Value(random_tensor(Shape{20, 20}, 9))}}}},
  };
  for (const auto& c : cases) {
    const char* what = c.first;  // not a structured binding: clang 14's lambdas (INFO) cannot capture one
    const Dict& kwargs = c.second;
    INFO(what);
    const Models models = attention_models(true, true, kwargs);
    CHECK(models.fast->plan()->inference_summary().find("multi_head_attention") == std::string::npos);
    same((*models.fast)(x).tensor(), (*models.plain)(x).tensor());
  }
  const Tensor out = (*attention_models(true, true, cases[1].second).fast)(x).tensor();
  CHECK(std::isnan(out.item_at(20 * 32)));  // batch 1
  CHECK_FALSE(std::isnan(out.item_at(0)));
  {
    INFO("cross attention");
    const Models models = attention_models(true, true, std::nullopt, true);
    CHECK(models.fast->plan()->inference_summary().find("multi_head_attention") == std::string::npos);
    const Tensor key = random_tensor(Shape{2, 12, 32}, 6);
    const std::vector<Value> in{Value(x), Value(key)};
    same(models.fast->forward(in).tensor(), models.plain->forward(in).tensor());
  }
  {
    INFO("float64");
    const Models models = attention_models(true, true, std::nullopt, false, DType::Float64);
    CHECK(models.fast->plan()->inference_summary().find("multi_head_attention") == std::string::npos);
    same((*models.fast)(d(x)).tensor(), (*models.plain)(d(x)).tensor());
  }
}

// Shape checks as models write them (x.shape, getitem, ==, torch._assert) are decided by the
// input signature: the first call records them and later calls do not run them again. A shape
// query of a tensor whose shape the data decides (nonzero) is checked on every call: when the
// shape differs, the call takes the plain plan and gets the new answer.
TEST_CASE("inference: shape checks are recorded once; a data-dependent shape is checked per call") {
  auto root = std::make_shared<Module>("Checks");
  auto g = std::make_shared<Graph>();
  Node* x = g->placeholder("x");
  Node* shape = g->call_function("builtins.getattr", {Value(x), Value(std::string("shape"))});
  Node* batch = g->call_function("operator.getitem", {Value(shape), Value(std::int64_t{0})});
  Node* ok = g->call_function("operator.eq", {Value(batch), Value(std::int64_t{2})});
  (void)g->call_function("torch._assert", {Value(ok), Value(std::string("batch must be 2"))});
  Node* y = g->call_function("torch.relu", {Value(x)});
  Node* flat = g->call_method("reshape", {Value(y), Value(batch), Value(std::int64_t{-1})});
  Node* positive = g->call_function("operator.gt", {Value(x), Value(0.0)});
  Node* where = g->call_function("torch.nonzero", {Value(positive)});
  Node* count = g->call_function("operator.getitem",
                                 {Value(g->call_function("builtins.getattr", {Value(where), Value(std::string("shape"))})),
                                  Value(std::int64_t{0})});
  g->output(Value(Tuple{{Value(flat), Value(count)}}));
  GraphModule fast(*root, g, "Checks"), plain(*root, g, "Checks", PlanOptions{.optimize_for_inference = false});
  for (std::uint64_t call = 0; call < 4; ++call) {
    INFO("call ", call);
    const Tensor x_in = random_tensor(Shape{2, 64, 64}, 70 + call);
    const Value got = fast(x_in), want = plain(x_in);
    CHECK(allclose(got.items()[0].tensor(), want.items()[0].tensor(), 1e-6, 0.0));
    CHECK(got.items()[1].to_int() == want.items()[1].to_int());  // differs between calls
  }
  // The assertion still holds the plan to its message for another signature.
  CHECK_THROWS_WITH_AS(fast(random_tensor(Shape{3, 64, 64}, 9)), doctest::Contains("batch must be 2"), Error);
}

namespace {
// Whether oneDNN runs a 1x1 convolution on x (in -> hidden channels) and its depthwise
// successor as one fast primitive at the current thread count (the plan asks the same).
bool onednn_fuses(const Shape& x, std::int64_t hidden, std::int64_t k, std::int64_t stride) {
  namespace dnb = ops::dnnl_backend;
  dnb::use_threads();
  const Shape mid{x[0], hidden, x[2], x[3]};
  const dnb::ConvGeometry g = dnb::conv_geometry(x, Shape{hidden, x[1], 1, 1}, true, ops::Conv2dOptions{}, mid);
  dnb::PostOp fused;
  fused.kind = dnb::PostOp::Kind::Depthwise;
  fused.depthwise = {k, stride, (k - 1) / 2};
  try {
    return !dnb::is_reference(dnb::conv_pd(g, true, dnb::make_attr({&fused, 1}, true)).impl_info_str());
  } catch (const dnnl::error&) {
    return false;
  }
}
}  // namespace

TEST_CASE("inference: a 1x1 convolution and its depthwise successor run as one step") {
  ThreadsGuard guard;
  struct Case {
    std::int64_t n, in, hidden, k, stride, hw;
    bool silu;
  };
  // Channels a multiple of oneDNN's blocks and not (36), strides 1 and 2, kernels 3 and 5,
  // batches 1 to 3, maps large enough for oneDNN's fused kernel (its 1x1 result must
  // outgrow the cores' L2 caches) and small ones (the two convolutions run apart).
  const Case cases[] = {{1, 16, 96, 3, 2, 112, false}, {2, 24, 144, 3, 1, 56, true}, {3, 12, 36, 3, 1, 20, false},
                        {1, 24, 144, 5, 2, 56, true},  {2, 8, 32, 3, 2, 15, true}};
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (const Case& c : cases) {
      auto m = std::make_shared<ExpandDepthwise>(c.in, c.hidden, c.k, c.stride, c.silu, false);
      randomize(*m, static_cast<std::uint64_t>(c.hidden + c.k));
      const Models models = fast_and_plain(m, "ExpandDepthwise");
      const std::string summary = models.fast->plan()->inference_summary();
      INFO(summary);
      const char* act = c.silu ? "silu" : "clip";
      CHECK(summary.find("conv2d [expand bn1 " + std::string(c.silu ? "silu" : "act") + " dw bn2 " +
                         (c.silu ? "silu_1" : "act_1") + "] batch_norm folded, post-ops: " + act +
                         "; then depthwise conv2d batch_norm folded, post-ops: " + act) != std::string::npos);
      const Tensor x = random_tensor(Shape{c.n, c.in, c.hw, c.hw}, static_cast<std::uint64_t>(c.hw * threads));
      const Tensor want = (*models.plain)(x).tensor();
      for (int call = 0; call < 2; ++call) {  // the first call specialises, the second replays
        const Tensor got = (*models.fast)(x).tensor();
        INFO("threads ", threads, " hidden ", c.hidden, " k ", c.k, " stride ", c.stride, " call ", call,
             " max |diff| ", max_abs_diff(got, want));
        CHECK(allclose(got, want, 1e-4, 1e-5));
      }
      // A SiLU runs as fxpack's own kernel between the two, so they run apart.
      const bool fuses = !c.silu && onednn_fuses(Shape{c.n, c.in, c.hw, c.hw}, c.hidden, c.k, c.stride);
      CHECK(models.fast->plan()->inference_stats().fused_depthwise == (fuses ? 1u : 0u));
    }
  }
}

TEST_CASE("inference: a 1x1 convolution whose result is read twice keeps its depthwise successor apart") {
  ThreadsGuard guard;
  set_num_threads(1);
  auto m = std::make_shared<ExpandDepthwise>(16, 96, 3, 2, false, true);
  randomize(*m, 5);
  const Models models = fast_and_plain(m, "ExpandDepthwise");
  const std::string summary = models.fast->plan()->inference_summary();
  INFO(summary);
  CHECK(summary.find("depthwise") == std::string::npos);
  CHECK(summary.find("conv2d [expand bn1 act] batch_norm folded, post-ops: clip") != std::string::npos);
  CHECK(summary.find("conv2d [dw bn2 act_1] batch_norm folded, post-ops: clip") != std::string::npos);
  const Tensor x = random_tensor(Shape{1, 16, 112, 112}, 6);
  const Value want = (*models.plain)(x);
  for (int call = 0; call < 2; ++call) {
    const Value got = (*models.fast)(x);
    REQUIRE(got.kind() == Value::Kind::Tuple);
    for (std::size_t i = 0; i < 2; ++i)
      CHECK(allclose(got.items()[i].tensor(), want.items()[i].tensor(), 1e-4, 1e-5));
  }
  CHECK(models.fast->plan()->inference_stats().fused_depthwise == 0);
}

namespace {
// ViT's patch embedding, class token and head on a small scale: a strided convolution,
// reshape to (N, C, -1) with the batch read from the input's shape, permute to (N, L, C), an
// expanded class token concatenated before the patches, a layer norm, x[:, 0] into a linear
// head, and every other token viewed flat (a strided slice).
Models patch_embedding_models() {
  auto root = std::make_shared<Module>("Patches");
  root->register_module("proj", nn::Conv2d(3, 64, 4, 4));
  root->register_module("ln", make_module("LayerNorm", {Value(std::int64_t{64})}));
  root->register_module("head", nn::Linear(64, 100));
  root->register_parameter("cls", Tensor::zeros(Shape{1, 1, 64}));
  randomize(*root, 40);
  auto g = std::make_shared<Graph>();
  Node* x = g->placeholder("x");
  Node* shape = g->call_function("builtins.getattr", {Value(x), Value(std::string("shape"))});
  Node* n = g->call_function("operator.getitem", {Value(shape), Value(std::int64_t{0})});
  Node* conv = g->call_module("proj", {Value(x)});
  Node* r = g->call_method("reshape", {Value(conv), Value(n), Value(std::int64_t{64}), Value(std::int64_t{-1})});
  Node* p = g->call_method("permute", {Value(r), Value(std::int64_t{0}), Value(std::int64_t{2}), Value(std::int64_t{1})});
  Node* cls = g->call_method("expand", {Value(g->get_attr("cls")), Value(n), Value(std::int64_t{-1}), Value(std::int64_t{-1})});
  Node* c = g->call_function("torch.cat", {Value(List{{Value(cls), Value(p)}})}, Dict{{{"dim", Value(std::int64_t{1})}}});
  Node* ln = g->call_module("ln", {Value(c)});
  const Slice all{};
  Node* first = g->call_function("operator.getitem", {Value(ln), Value(Tuple{{Value(all), Value(std::int64_t{0})}})});
  Slice odd;
  odd.start = 1;
  odd.step = 2;
  Node* tokens = g->call_function("operator.getitem", {Value(ln), Value(Tuple{{Value(all), Value(odd)}})});
  Node* flat = g->call_method("view", {Value(tokens), Value(n), Value(std::int64_t{-1})});
  g->output(Value(Tuple{{Value(g->call_module("head", {Value(first)})), Value(flat)}}));
  return {std::make_shared<GraphModule>(*root, g, "Patches"),
          std::make_shared<GraphModule>(*root, g, "Patches", PlanOptions{.optimize_for_inference = false})};
}
}  // namespace

// The shape ops around ViT's encoder run on plan buffers: after the first call no kernel
// runs (the class token's expand is folded into the concatenation as a constant), and the
// results are the kernels' for batch sizes 1 and 2, at 1 and 2 threads.
TEST_CASE("inference: patch embedding, class token and x[:, 0] run as plan steps") {
  ThreadsGuard guard;
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    const Models models = patch_embedding_models();
    for (std::int64_t batch : {1, 2}) {
      for (std::uint64_t call = 0; call < 3; ++call) {  // the first call specialises, the others replay
        INFO(threads, " thread(s), batch ", batch, ", call ", call);
        const Tensor x = random_tensor(Shape{batch, 3, 32, 32}, 500 + call);
        const Value got = (*models.fast)(x), want = (*models.plain)(x);
        for (std::size_t i = 0; i < 2; ++i) {
          const Tensor& a = got.items()[i].tensor();
          const Tensor& b = want.items()[i].tensor();
          REQUIRE(a.shape() == b.shape());
          INFO("output ", i, " max |diff| ", max_abs_diff(a, b));
          CHECK(allclose(a, b, 1e-4, 1e-5));
        }
      }
      CHECK(models.fast->plan()->inference_stats().kernel_steps == 0);
    }
  }
}

// A concatenation of the input itself (a caller's tensor, not a plan buffer) and a reshape
// whose size the data decides stay correct: the first on oneDNN, the second as the kernel.
TEST_CASE("inference: cat of the input, and a reshape sized by the data, agree with the kernels") {
  auto root = std::make_shared<Module>("Mixed");
  auto g = std::make_shared<Graph>();
  Node* x = g->placeholder("x");
  Node* y = g->call_function("torch.relu", {Value(x)});
  Node* c = g->call_function("torch.cat", {Value(List{{Value(y), Value(x)}}), Value(std::int64_t{-1})});
  Node* count = g->call_function(
      "operator.getitem",
      {Value(g->call_function("builtins.getattr",
                              {Value(g->call_function("torch.nonzero", {Value(g->call_function("operator.gt", {Value(x), Value(0.0)}))})),
                               Value(std::string("shape"))})),
       Value(std::int64_t{0})});
  Node* odd = g->call_function("operator.mod", {Value(count), Value(std::int64_t{2})});
  Node* r = g->call_method("reshape", {Value(c), Value(std::int64_t{-1}), Value(g->call_function("operator.add", {Value(odd), Value(std::int64_t{1})}))});
  g->output(Value(r));
  GraphModule fast(*root, g, "Mixed"), plain(*root, g, "Mixed", PlanOptions{.optimize_for_inference = false});
  for (std::uint64_t call = 0; call < 4; ++call) {
    INFO("call ", call);
    const Tensor x_in = random_tensor(Shape{4, 64, 32}, 80 + call);
    const Tensor got = fast(x_in).tensor(), want = plain(x_in).tensor();
    REQUIRE(got.shape() == want.shape());  // (-1, 1) or (-1, 2) as the count of positives says
    CHECK(allclose(got, want, 0.0, 0.0));
  }
}

// An archive's reshape whose sizes multiply past int64 — to the input's size, modulo 2^64 —
// is the kernel's to refuse, with its message, not a view of the plan's buffer as a huge
// tensor; under the inference plan as under the plain one, on every call.
TEST_CASE("inference: a reshape or view whose sizes overflow int64 gets the kernel's message") {
  const auto i = [](std::int64_t v) { return Value(v); };
  // (2^32 + 1) * (2^32 - 1) = 2^64 - 1: the four big sizes multiply to 1 modulo 2^64.
  for (const auto& call_and_first : {std::pair{"reshape", std::int64_t{8192}}, std::pair{"view", std::int64_t{-1}}}) {
    // No structured binding: clang 14 refuses one captured by doctest's lambdas.
    const std::string method = call_and_first.first;
    const std::int64_t first = call_and_first.second;
    auto root = std::make_shared<Module>("Overflow");
    auto g = std::make_shared<Graph>();
    Node* x = g->placeholder("x");
    Node* y = g->call_function("torch.relu", {Value(x)});  // a plan buffer of 8192 floats
    g->output(Value(g->call_method(method, {Value(y), i(first), i(4294967297), i(4294967295), i(4294967297),
                                            i(4294967295)})));
    GraphModule fast(*root, g, "Overflow"), plain(*root, g, "Overflow", PlanOptions{.optimize_for_inference = false});
    CHECK(fast.plan()->optimized_for_inference());
    const std::string message = method + ": shape '[" + std::to_string(first) +
                                ", 4294967297, 4294967295, 4294967297, 4294967295]' is too large";
    const Tensor x_in = random_tensor(Shape{4, 64, 32}, 70);
    for (GraphModule* m : {&fast, &plain}) {
      for (int call = 0; call < 2; ++call) {
        INFO(method, m == &fast ? ", inference plan" : ", plain plan", ", call ", call);
        CHECK_THROWS_WITH_AS((*m)(x_in), doctest::Contains(("node '" + method + "'").c_str()), OpError);
        CHECK_THROWS_WITH_AS((*m)(x_in), doctest::Contains(message.c_str()), OpError);
      }
    }
  }
}

// The shape checks models write — x.shape, x.dim(), x.size(d), x.size(), x.numel(), then
// getitem, ==, //, * and torch._assert of them — are recorded by the first call because the
// op table flags the queries `metadata` and the rest pure or an assertion: a later call runs
// none of them. An op that lost its flag would run on every call (and allocate), failing here.
TEST_CASE("inference: the op table's flags let every shape check be recorded") {
  auto root = std::make_shared<Module>("Checks");
  auto g = std::make_shared<Graph>();
  Node* x = g->placeholder("x");
  const auto i = [](std::int64_t v) { return Value(v); };
  Node* shape = g->call_function("builtins.getattr", {Value(x), Value(std::string("shape"))});
  Node* h = g->call_function("operator.getitem", {Value(shape), i(2)});
  Node* sizes = g->call_method("size", {Value(x)});
  Node* w = g->call_function("operator.getitem", {Value(sizes), i(3)});
  Node* c = g->call_method("size", {Value(x), i(1)});
  Node* nd = g->call_method("dim", {Value(x)});
  Node* numel = g->call_method("numel", {Value(x)});
  Node* n = g->call_function("operator.getitem", {Value(shape), i(0)});
  Node* area = g->call_function("operator.mul", {Value(g->call_function("operator.mul", {Value(h), Value(w)})), Value(n)});
  Node* per_channel = g->call_function("operator.floordiv", {Value(numel), Value(c)});
  const auto check = [&](Node* a, Node* b, const char* message) {
    (void)g->call_function("torch._assert", {Value(g->call_function("operator.eq", {Value(a), Value(b)})),
                                             Value(std::string(message))});
  };
  check(per_channel, area, "numel is batch * channels * area");
  check(nd, g->call_function("operator.add", {Value(c), i(1)}), "4 dims");
  g->output(Value(g->call_function("torch.relu", {Value(x)})));
  GraphModule fast(*root, g, "Checks");
  for (std::uint64_t call = 0; call < 2; ++call) {
    const Tensor x_in = random_tensor(Shape{2, 3, 32, 32}, 90 + call);
    CHECK(allclose(fast(x_in).tensor(), torch::relu(Value(x_in)).tensor(), 0.0, 0.0));
  }
  CHECK(fast.plan()->inference_stats().kernel_steps == 0);
  CHECK_THROWS_WITH_AS(fast(random_tensor(Shape{2, 5, 32, 32}, 9)), doctest::Contains("4 dims"), Error);
}
