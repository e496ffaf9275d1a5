// Elementwise and activation kernels on one large float32 tensor (and int32 / bool operands
// for the ops that take them), each timed as the median of repeated calls and printed as a
// ratio to torch.relu on the same tensor measured in the same run: a kernel near 1x runs at
// memory speed, one far above it is the bottleneck of a model that uses it.
//   bench_elementwise [elements=4194304] [reps=15]
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench_timing.hpp"
#include "fxpack/ops.hpp"
#include "fxpack/tensor.hpp"
#include "fxpack/value.hpp"

using namespace fxpack;

int main(int argc, char** argv) {
  const std::int64_t n = argc > 1 ? std::atoll(argv[1]) : 4194304;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 15;
  std::vector<float> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = static_cast<float>((i * 7919) % 2001 - 1000) / 125.0f;
  const Tensor x = Tensor::from_vector(std::span<const float>(v), Shape{n});
  const Tensor y = Tensor::from_vector(std::span<const float>(v), Shape{n});
  const Tensor mask = call_function("operator.gt", {x, Value(0.0)}).tensor();
  const Tensor xi = x.to(DType::Int32);

  struct Case {
    std::string name;
    std::string target;
    std::vector<Value> args;
  };
  const std::vector<Case> cases = {
      {"relu", "torch.relu", {x}},
      {"relu6", "torch.nn.functional.relu6", {x}},
      {"hardtanh(-2, 2)", "torch.nn.functional.hardtanh", {x, Value(-2.0), Value(2.0)}},
      {"silu", "torch.nn.functional.silu", {x}},
      {"hardswish", "torch.nn.functional.hardswish", {x}},
      {"hardsigmoid", "torch.nn.functional.hardsigmoid", {x}},
      {"leaky_relu", "torch.nn.functional.leaky_relu", {x}},
      {"elu", "torch.nn.functional.elu", {x}},
      {"mish", "torch.nn.functional.mish", {x}},
      {"softplus", "torch._C._nn.softplus", {x}},
      {"sigmoid", "torch.sigmoid", {x}},
      {"floor", "torch.floor", {x}},
      {"round", "torch.round", {x}},
      {"sqrt(|x|)", "torch.sqrt", {call_function("torch.abs", {x})}},
      {"x > 0", "operator.gt", {x, Value(0.0)}},
      {"x == y", "operator.eq", {x, y}},
      {"x ** 2", "operator.pow", {x, Value(std::int64_t{2})}},
      {"x % 3", "operator.mod", {x, Value(3.0)}},
      {"where(m, x, 0)", "torch.where", {mask, x, Value(0.0)}},
      {"masked_fill(m, 0)", "torch.masked_fill", {x, mask, Value(0.0)}},
      {"minimum(x, y)", "torch.minimum", {x, y}},
      {"int32 relu", "torch.relu", {xi}},
      {"int32 x & 7", "operator.and_", {xi, Value(std::int64_t{7})}},
      {"~mask", "operator.invert", {mask}},
  };
  std::vector<double> ms;
  for (const Case& c : cases) ms.push_back(bench::median_ms(reps, [&] { call_function(c.target, c.args); }));
  std::printf("%lld float32 elements, median of %d calls; ratio to relu (%.3f ms)\n", static_cast<long long>(n), reps, ms[0]);
  std::printf("%-20s %10s %8s\n", "op", "ms", "ratio");
  for (std::size_t i = 0; i < cases.size(); ++i) {
    std::printf("%-20s %10.3f %7.2fx\n", cases[i].name.c_str(), ms[i], ms[i] / ms[0]);
  }
  return 0;
}
