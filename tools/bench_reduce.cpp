// Reduction, softmax and conversion kernels on a float32 [rows, cols] tensor, each timed as
// a call through the op registry and reported as a ratio to one memcpy of the same data
// into a preallocated buffer, measured in the same run: a ratio near 1 means the kernel
// runs at memory speed.
//
//   bench_reduce [rows cols]     (default 256 4096: 4 MiB of float32)
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "fxpack/fxpack.hpp"
#include "bench_timing.hpp"

using namespace fxpack;
using bench::median_ms;

int main(int argc, char** argv) {
  const std::int64_t rows = argc > 2 ? std::atoll(argv[1]) : 256;
  const std::int64_t cols = argc > 2 ? std::atoll(argv[2]) : 4096;
  std::vector<float> v(static_cast<std::size_t>(rows * cols));
  std::mt19937 gen(0);
  std::normal_distribution<float> normal;
  for (float& f : v) f = normal(gen);
  const Tensor x = Tensor::from_vector(std::span<const float>(v), Shape{rows, cols});
  const int reps = 21;

  std::vector<float> copy(v.size());
  const double base = median_ms(reps, [&] { std::memcpy(copy.data(), x.data<float>(), x.nbytes()); });

  struct Case {
    const char* what;
    std::function<Value()> run;
  };
  const Value xv(x);
  auto kw = [](const char* name, Value val) { return Dict{{{name, std::move(val)}}}; };
  const std::vector<Case> cases = {
      {"sum(x)", [&] { return call_function("torch.sum", {xv}); }},
      {"sum(x, -1)", [&] { return call_function("torch.sum", {xv, Value(-1)}); }},
      {"sum(x, 0)", [&] { return call_function("torch.sum", {xv, Value(0)}); }},
      {"mean(x, -1)", [&] { return call_function("torch.mean", {xv, Value(-1)}); }},
      {"amax(x, -1)", [&] { return call_function("torch.amax", {xv, Value(-1)}); }},
      {"amax(x, 0)", [&] { return call_function("torch.amax", {xv, Value(0)}); }},
      {"max(x, -1)", [&] { return call_function("torch.max", {xv, Value(-1)}); }},
      {"argmax(x, 0)", [&] { return call_function("torch.argmax", {xv, Value(0)}); }},
      {"std(x, -1)", [&] { return call_function("torch.std", {xv, Value(-1)}); }},
      {"var(x, 0)", [&] { return call_function("torch.var", {xv, Value(0)}); }},
      {"norm(x, dim=-1)", [&] { return call_method("norm", {xv}, kw("dim", Value(-1))); }},
      {"logsumexp(x, -1)", [&] { return call_function("torch.logsumexp", {xv, Value(-1)}); }},
      {"softmax(x, -1)", [&] { return call_function("torch.softmax", {xv, Value(-1)}); }},
      {"softmax(x, 0)", [&] { return call_function("torch.softmax", {xv, Value(0)}); }},
      {"log_softmax(x, -1)", [&] { return call_function("torch.log_softmax", {xv, Value(-1)}); }},
      {"cumsum(x, -1)", [&] { return call_function("torch.cumsum", {xv, Value(-1)}); }},
      {"topk(x, 5)", [&] { return call_function("torch.topk", {xv, Value(5)}); }},
      {"sort(x, -1)", [&] { return call_function("torch.sort", {xv, Value(-1)}); }},
      {"x.double()", [&] { return call_method("double", {xv}); }},
      {"x.half()", [&] { return call_method("half", {xv}); }},
  };
  std::printf("float32 [%lld, %lld]; baseline: one memcpy of the data, %.3f ms\n\n", static_cast<long long>(rows),
              static_cast<long long>(cols), base);
  std::printf("| op | ms | ratio to one memcpy |\n|---|---|---|\n");
  for (const Case& c : cases) {
    const double ms = median_ms(reps, [&] { (void)c.run(); });
    std::printf("| %s | %.3f | %.1fx |\n", c.what, ms, ms / base);
  }
  return copy[0] == v[0] ? 0 : 1;
}
