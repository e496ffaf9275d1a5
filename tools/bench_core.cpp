// Core benchmark: the chain graphs of PyTorch's anchor script
// (shared pytorch-anchors/bench.py: N ops cycling x.sin(), x.cos(), torch.relu(x), x + 1.0,
// x * 2.0) timed for symbolic_trace, code generation, real recompile and a steady call on
// a 2x3 tensor, per node, next to PyTorch 1.13's figures measured on the same kind of
// machine (RESULTS.md of that folder), with the ratio. "real recompile" recompiles one
// module again and again (the transform-then-recompile loop: a module reuses its previous
// snapshot's memory); "first recompile" is the first of a module that never compiled (a
// new module over the same graph each time, made and dropped outside the timing), which
// has no memory to reuse.
//
//   bench_core [max_n] [--min N]    (default 10000 from N = 100; 1000000 for the linearity check)
//
// Times are CPU time (bench_timing.hpp), medians of repeated runs.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string_view>
#include <vector>

#include "fxpack/fxpack.hpp"
#include "bench_timing.hpp"
#include "../examples/chain.hpp"

using namespace fxpack;
using bench::median_cpu_ms;

namespace {

// PyTorch 1.13 µs/node (symbolic_trace, python_code, recompile, steady call), from
// RESULTS.md; 0 where PyTorch was not measured.
struct Anchor {
  int n;
  double trace, codegen, recompile, call;
};
constexpr Anchor kPyTorch[] = {
    {100, 45.52, 9.84, 17.39, 1.57},
    {1000, 37.35, 7.03, 14.59, 1.76},
    {10000, 139.93, 7.26, 21.74, 1.67},
};

const Anchor* anchor_for(int n) {
  for (const auto& a : kPyTorch)
    if (a.n == n) return &a;
  return nullptr;
}

// The median CPU time of `reps` first recompiles (after one more as a warm-up), each of a
// new lazy module over `gm`'s graph.
double first_recompile_ms(int reps, const GraphModule& gm) {
  std::vector<double> t;
  for (int r = 0; r <= reps; ++r) {
    auto fresh = std::make_shared<LazyGraphModule>(gm, gm.graph_ptr());
    const double a = bench::cpu_ms();
    fresh->force_recompile();
    if (r > 0) t.push_back(bench::cpu_ms() - a);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void row(const char* what, int n, double ms, double torch_us) {
  double us = ms * 1000.0 / n;
  if (torch_us > 0)
    std::printf("| %-22s | %8d | %10.3f | %8.4f | %8.2f | %7.0fx |\n", what, n, ms, us, torch_us, torch_us / us);
  else
    std::printf("| %-22s | %8d | %10.3f | %8.4f | %8s | %8s |\n", what, n, ms, us, "-", "-");
}

}  // namespace

int main(int argc, char** argv) {
  int max_n = 10000, min_n = 100;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--min" && i + 1 < argc) min_n = std::atoi(argv[++i]);
    else max_n = std::atoi(argv[i]);
  }
  std::printf("| measurement            |        N |   total ms |  us/node | PyTorch us/node | speed-up |\n");
  std::printf("|---|---|---|---|---|---|\n");
  Tensor x = Tensor::full({2, 3}, 0.5);
  for (int n = min_n; n <= max_n; n *= 10) {
    int reps = n <= 100 ? 21 : n <= 1000 ? 11 : n <= 100000 ? 5 : 3;
    const Anchor* a = anchor_for(n);
    auto chain = std::make_shared<examples::Chain>(n);
    auto lazy = use_lazy_graph_module(true);

    std::shared_ptr<GraphModule> gm;
    double trace = median_cpu_ms(reps, [&] { gm = symbolic_trace(chain); });
    double codegen = median_cpu_ms(reps, [&] { volatile auto s = python_code(gm->graph()).size(); (void)s; });
    double recompile = median_cpu_ms(reps, [&] { gm->force_recompile(); });
    double first = first_recompile_ms(reps, *gm);
    Value out;
    int calls = std::max(1, 200000 / n);
    double call = median_cpu_ms(reps, [&] {
                    for (int i = 0; i < calls; ++i) out = (*gm)(x);
                  }) / calls;
    row("symbolic_trace", n, trace, a ? a->trace : 0);
    row("codegen (python_code)", n, codegen, a ? a->codegen : 0);
    row("real recompile", n, recompile, a ? a->recompile : 0);
    row("first recompile", n, first, a ? a->recompile : 0);
    row("steady call 2x3", n, call, a ? a->call : 0);
  }
  return 0;
}
