// compile benchmark. A chain of 100 elementwise ops on a float32 tensor of 1M elements, run
// by the traced module's plan (one pass over memory per op) and by the compiled module
// (make_fx + passes: the chain becomes one fxpack.fused_elementwise node, one pass over
// memory). Two chains: the anchor model (examples/chain.hpp: x.sin(), x.cos(),
// torch.relu(x), x + 1.0, x * 2.0, as in bench_core and PyTorch's anchor script) and a
// memory-bound arithmetic chain. Then make_fx and compile time per node on a 2x3 input.
//
//   bench_compile [chain_length] [elements] [reps]    (defaults 100, 1048576, 15)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <vector>

#include "fxpack/compile.hpp"
#include "fxpack/fxpack.hpp"
#include "bench_timing.hpp"
#include "fxpack/make_fx.hpp"
#include "../examples/chain.hpp"

using namespace fxpack;
using bench::median_ms;
using Clock = std::chrono::steady_clock;

namespace {

// The memory-bound companion of examples::Chain (bench_core's model, 40% sin/cos and so
// compute-bound): relu, + 1.0, * 0.5, - 0.25, abs, neg — one load and one store per op and
// element when unfused, almost no arithmetic.
class ArithChain : public Module {
 public:
  explicit ArithChain(int n) : Module("ArithChain"), n_(n) {}
  Value forward(std::span<const Value> in) override {
    Value x = in[0];
    for (int i = 0; i < n_; ++i) {
      switch (i % 6) {
        case 0: x = torch::relu(x); break;
        case 1: x = x + 1.0; break;
        case 2: x = x * 0.5; break;
        case 3: x = x - 0.25; break;
        case 4: x = x.abs(); break;
        case 5: x = x.neg(); break;
      }
    }
    return x;
  }

 private:
  int n_;
};

std::shared_ptr<Module> chain(int n, bool arith) {
  if (arith) return std::make_shared<ArithChain>(n);
  return std::make_shared<examples::Chain>(n);
}

Tensor randn(Shape shape) {
  std::mt19937 gen(1234);
  std::normal_distribution<float> dist;
  std::vector<float> v(static_cast<std::size_t>(shape.numel()));
  for (float& x : v) x = dist(gen);
  return Tensor::from_vector(v, shape);
}

void bench_chain(int n, bool arith, const Tensor& x, int reps) {
  auto gm = symbolic_trace(chain(n, arith));

  CompileOptions unfused;
  unfused.fuse_elementwise = false;
  auto c_fused = compile(gm);
  auto c_unfused = compile(gm, unfused);

  auto t0 = Clock::now();
  Tensor y_fused = c_fused(x).tensor();  // first call: capture + passes + plan
  const double first_call_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  Tensor y_plan = (*gm)(x).tensor();
  Tensor y_unfused = c_unfused(x).tensor();

  const double plan_ms = median_ms(reps, [&] { (void)(*gm)(x); });
  const double unfused_ms = median_ms(reps, [&] { (void)c_unfused(x); });
  const double fused_ms = median_ms(reps, [&] { (void)c_fused(x); });
  const PassReport rep = c_fused.report({x});

  const auto elems = x.numel();
  std::printf("## Elementwise chain (%s): %d ops on %lld float32 elements (median of %d)\n\n",
              arith ? "arith: relu, +, *, -, abs, neg" : "mixed: sin, cos, relu, +, *", n,
              static_cast<long long>(elems), reps);
  std::printf("| execution | ms/call | ns/element/op | vs plan |\n|---|---:|---:|---:|\n");
  auto row = [&](const char* what, double ms) {
    std::printf("| %-34s | %9.2f | %8.3f | %6.2fx |\n", what, ms,
                ms * 1e6 / (static_cast<double>(elems) * n), plan_ms / ms);
  };
  row("plan (traced GraphModule)", plan_ms);
  row("compiled, fusion off (aten plan)", unfused_ms);
  row("compiled, fused (1 kernel)", fused_ms);
  std::printf("\ncompiled graph: %zu nodes -> %zu nodes (%zu fused into %zu chain(s)); first call "
              "(capture + passes + plan + run) %.1f ms\n",
              rep.nodes_before, rep.nodes_after, rep.fused_nodes, rep.fused_chains, first_call_ms);
  std::printf("max |fused - plan| = %g, max |unfused - plan| = %g\n", max_abs_diff(y_fused, y_plan),
              max_abs_diff(y_unfused, y_plan));
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 100;
  const std::int64_t elems = argc > 2 ? std::atoll(argv[2]) : (1 << 20);
  const int reps = argc > 3 ? std::atoi(argv[3]) : 15;
  if (n <= 0 || elems <= 0 || reps <= 0) {
    std::fprintf(stderr, "usage: bench_compile [chain_length>0] [elements>0] [reps>0]\n");
    return 2;
  }

  Tensor x = randn({elems});
  bench_chain(n, false, x, reps);
  bench_chain(n, true, x, reps);

  std::printf("## make_fx and compile time per node (2x3 input, median)\n\n");
  std::printf("| N | make_fx ms | make_fx us/node | compile ms | compile us/node |\n|---:|---:|---:|---:|---:|\n");
  Tensor small = randn({2, 3});
  for (int len : {100, 1000, 10000}) {
    auto g = symbolic_trace(chain(len, false));
    const int r = len >= 10000 ? 3 : 7;
    const double mfx = median_ms(r, [&] { (void)make_fx(g)(small); });
    const double cmp = median_ms(r, [&] {
      auto c = compile(g);
      (void)c(small);
    });
    std::printf("| %6d | %9.3f | %7.3f | %9.3f | %7.3f |\n", len, mfx, mfx * 1000.0 / len, cmp,
                cmp * 1000.0 / len);
  }
  return 0;
}
