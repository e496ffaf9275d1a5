// Elementwise ops and activations: the semantics the op table's examples do not pin —
// PyTorch's dtype promotion across every dtype, NaN handling, integer edge cases, the
// in-place forms' casting rules, and the errors PyTorch raises.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "fxpack/module.hpp"
#include "fxpack/ops.hpp"
#include "fxpack/tensor.hpp"
#include "fxpack/value.hpp"
#include "tensor_helpers.hpp"

using namespace fxpack;
using namespace fxpack::test;

namespace {

Tensor fn(const std::string& name, std::vector<Value> args, Dict kwargs = {}) {
  return T(call_function(name, std::move(args), std::move(kwargs)));
}



const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

}  // namespace

TEST_CASE("the narrow dtypes run in their own dtype: int32 relu and neg, float16 exp") {
  const Tensor x = I({-3, 0, 5}, Shape{3}).to(DType::Int32);
  const Tensor r = fn("torch.relu", {x});
  CHECK(r.dtype() == DType::Int32);
  CHECK(values(r) == std::vector<double>{0, 0, 5});
  const Tensor n = fn("torch.neg", {x});
  CHECK(n.dtype() == DType::Int32);
  CHECK(values(n) == std::vector<double>{3, 0, -5});
  // int32 wraps as PyTorch's does: -(-2^31) is -2^31.
  const Tensor m = I({std::numeric_limits<std::int32_t>::min()}, Shape{1}).to(DType::Int32);
  CHECK(values(fn("torch.neg", {m}))[0] == std::numeric_limits<std::int32_t>::min());
  const Tensor h = F({0.0f, 1.0f}, Shape{2}).to(DType::Float16);
  const Tensor e = fn("torch.exp", {h});
  CHECK(e.dtype() == DType::Float16);
  CHECK(values(e)[1] == doctest::Approx(2.71875));  // e rounded to float16
  // bool is refused naming bool, as PyTorch does, and only then.
  CHECK(error_of([] { fn("torch.relu", {B({1, 0}, Shape{2})}); }).find("'Bool'") != std::string::npos);
}

TEST_CASE("promotion over every dtype follows PyTorch's promoteTypes and result_type") {
  const Tensor u8 = I({1, 2}, Shape{2}).to(DType::UInt8);
  const Tensor i8 = I({1, 2}, Shape{2}).to(DType::Int8);
  const Tensor i32 = I({1, 2}, Shape{2}).to(DType::Int32);
  const Tensor f16 = F({1, 2}, Shape{2}).to(DType::Float16);
  const Tensor bf16 = F({1, 2}, Shape{2}).to(DType::BFloat16);
  CHECK(fn("torch.add", {u8, i8}).dtype() == DType::Int16);
  CHECK(fn("torch.add", {u8, i32}).dtype() == DType::Int32);
  CHECK(fn("torch.add", {f16, bf16}).dtype() == DType::Float32);
  CHECK(fn("torch.add", {i32, f16}).dtype() == DType::Float16);
  // A Python int does not widen an int32 tensor; a float makes it the default float32.
  CHECK(fn("torch.mul", {i32, Value(std::int64_t{3})}).dtype() == DType::Int32);
  CHECK(fn("torch.mul", {i32, Value(2.5)}).dtype() == DType::Float32);
  // A 0-dim int64 tensor does not widen a dimensioned int32 one, a 0-dim float64 does.
  CHECK(fn("torch.add", {i32, I({7}, Shape{})}).dtype() == DType::Int32);
  CHECK(fn("torch.add", {i32, Tensor::scalar(1.0, DType::Float64)}).dtype() == DType::Float64);
  // bool with bool stays bool for bitwise ops; a Python bool keeps a uint8 tensor.
  CHECK(fn("torch.bitwise_or", {B({1, 0}, Shape{2}), B({0, 0}, Shape{2})}).dtype() == DType::Bool);
  CHECK(fn("torch.add", {u8, Value(true)}).dtype() == DType::UInt8);
  // Comparisons compare in the promoted dtype: int 2 < 2.5.
  CHECK(values(fn("torch.lt", {I({2, 3}, Shape{2}), Value(2.5)})) == std::vector<double>{1, 0});
}

TEST_CASE("NaN: comparisons are false except ne, logical ops treat it as true, activations keep it") {
  const Tensor x = Tensor::from_vector(std::span<const double>(std::vector<double>{kNaN, 1.0}), Shape{2});
  CHECK(values(fn("torch.eq", {x, x})) == std::vector<double>{0, 1});
  CHECK(values(fn("torch.ne", {x, x})) == std::vector<double>{1, 0});
  CHECK(values(fn("torch.logical_not", {x})) == std::vector<double>{0, 0});
  CHECK(values(fn("torch.isnan", {x})) == std::vector<double>{1, 0});
  for (const char* f : {"torch.nn.functional.relu6", "torch.nn.functional.hardswish", "torch.nn.functional.hardsigmoid",
                        "torch.nn.functional.hardtanh", "torch.nn.functional.leaky_relu"}) {
    CAPTURE(f);
    CHECK(std::isnan(values(fn(f, {x}))[0]));
  }
  CHECK(std::isnan(values(fn("torch.clamp", {x, Value(0.0), Value(0.5)}))[0]));
  // nan_to_num's defaults: 0 and the dtype's largest finite values.
  const Tensor y = F({static_cast<float>(kNaN), static_cast<float>(kInf), static_cast<float>(-kInf)}, Shape{3});
  const auto v = values(fn("torch.nan_to_num", {y}));
  CHECK(v[0] == 0.0);
  CHECK(v[1] == std::numeric_limits<float>::max());
  CHECK(v[2] == -std::numeric_limits<float>::max());
}

TEST_CASE("integer edge cases: remainder and floor semantics, shifts, powers") {
  const Tensor a = I({-7, -1, 5, 7}, Shape{4});
  CHECK(values(fn("torch.remainder", {a, Value(std::int64_t{3})})) == std::vector<double>{2, 2, 2, 1});
  CHECK(values(fn("torch.remainder", {a, Value(std::int64_t{-3})})) == std::vector<double>{-1, -1, -1, -2});
  CHECK(values(fn("torch.fmod", {a, Value(std::int64_t{3})})) == std::vector<double>{-1, -1, 2, 1});
  CHECK(error_of([&] { fn("torch.remainder", {a, Value(std::int64_t{0})}); }).find("ZeroDivisionError") != std::string::npos);
  // Float remainder takes the divisor's sign.
  CHECK(values(fn("torch.remainder", {F({-7.5f, 7.5f}, Shape{2}), Value(2.0)})) == std::vector<double>{0.5, 1.5});
  CHECK(values(call_function("operator.lshift", {I({1, 3}, Shape{2}), Value(std::int64_t{2})}).tensor()) ==
        std::vector<double>{4, 12});
  CHECK(values(call_function("operator.rshift", {I({-16, 16}, Shape{2}), Value(std::int64_t{2})}).tensor()) ==
        std::vector<double>{-4, 4});
  CHECK(values(fn("torch.pow", {I({-2, 3}, Shape{2}), Value(std::int64_t{3})})) == std::vector<double>{-8, 27});
  CHECK(fn("torch.pow", {I({2}, Shape{1}), Value(0.5)}).dtype() == DType::Float32);
  CHECK(error_of([] { fn("torch.pow", {I({2}, Shape{1}), Value(std::int64_t{-1})}); }) .find(
            "Integers to negative integer powers are not allowed") != std::string::npos);
  // Python operators on plain numbers follow Python.
  CHECK(call_function("operator.mod", {Value(std::int64_t{-7}), Value(std::int64_t{3})}).to_int() == 2);
  CHECK(call_function("operator.pow", {Value(std::int64_t{2}), Value(std::int64_t{10})}).to_int() == 1024);
  CHECK(call_function("operator.lt", {Value(std::int64_t{2}), Value(2.5)}).to_bool());
  CHECK(call_function("operator.invert", {Value(std::int64_t{5})}).to_int() == -6);
  // ~ on a bool tensor is logical, on integers bitwise.
  CHECK(values(call_function("operator.invert", {B({1, 0}, Shape{2})}).tensor()) == std::vector<double>{0, 1});
  CHECK(values(call_function("operator.invert", {I({0, 5}, Shape{2})}).tensor()) == std::vector<double>{-1, -6});
}

TEST_CASE("round: half to even, and with decimals") {
  const Tensor x = F({-2.5f, -1.5f, -0.5f, 0.5f, 1.5f, 2.5f}, Shape{6});
  CHECK(values(fn("torch.round", {x})) == std::vector<double>{-2, -2, -0, 0, 2, 2});
  const auto d = values(fn("torch.round", {F({1.2345f, 1234.5f}, Shape{2})}, Dict{{{"decimals", Value(std::int64_t{2})}}}));
  CHECK(d[0] == doctest::Approx(1.23));
  const auto n = values(fn("torch.round", {F({1234.5f, 1250.0f}, Shape{2})}, Dict{{{"decimals", Value(std::int64_t{-2})}}}));
  CHECK(n == std::vector<double>{1200, 1200});
}

TEST_CASE("where and masked_fill broadcast; their errors are PyTorch's") {
  const Tensor c = B({1, 0, 1}, Shape{3});
  const Tensor w = fn("torch.where", {c, Value(1.0), Value(-1.0)});
  CHECK(w.dtype() == DType::Float32);
  CHECK(values(w) == std::vector<double>{1, -1, 1});
  const Tensor w2 = fn("torch.where", {B({1, 0}, Shape{2, 1}), I({1, 2, 3}, Shape{3}), Value(std::int64_t{0})});
  CHECK(w2.shape() == Shape{2, 3});
  CHECK(w2.dtype() == DType::Int64);
  CHECK(values(w2) == std::vector<double>{1, 2, 3, 0, 0, 0});
  CHECK(error_of([] { fn("torch.where", {F({1}, Shape{1}), Value(1.0), Value(0.0)}); })
            .find("where expected condition to be a boolean tensor, but got a tensor with dtype Float") != std::string::npos);
  const Tensor m = T(call_method("masked_fill", {I({1, 2, 3}, Shape{3}), c, Value(7.9)}));
  CHECK(m.dtype() == DType::Int64);
  CHECK(values(m) == std::vector<double>{7, 2, 7});
  CHECK(error_of([] { call_method("masked_fill", {F({1}, Shape{1}), F({1}, Shape{1}), Value(0.0)}); })
            .find("masked_fill_ only supports boolean masks") != std::string::npos);
}

TEST_CASE("in-place methods cast to self's dtype and refuse what PyTorch refuses") {
  const Tensor x = I({1, 2}, Shape{2});
  const Tensor r = T(call_method("add_", {x, Value(std::int64_t{3})}));
  CHECK(r.dtype() == DType::Int64);
  CHECK(values(r) == std::vector<double>{4, 5});
  CHECK(error_of([&] { call_method("mul_", {x, Value(1.5)}); })
            .find("result type Float can't be cast to the desired output type Long") != std::string::npos);
  CHECK(error_of([&] { call_method("div_", {x, Value(std::int64_t{2})}); }).find("can't be cast") != std::string::npos);
  CHECK(error_of([] { call_method("sub_", {F({1}, Shape{1}), F({1, 2}, Shape{2})}); })
            .find("output with shape [1] doesn't match the broadcast shape [2]") != std::string::npos);
  // A float64 tensor takes a float32 result.
  const Tensor d = Tensor::from_vector(std::span<const double>(std::vector<double>{1.0}), Shape{1});
  CHECK(T(call_method("mul_", {d, F({2}, Shape{1})})).dtype() == DType::Float64);
}

TEST_CASE("activations: values at the kinks, prelu per channel, float-only refusals") {
  const Tensor x = F({-4.0f, -3.0f, 0.0f, 3.0f, 4.0f}, Shape{5});
  CHECK(values(fn("torch.nn.functional.hardswish", {x})) == std::vector<double>{0, 0, 0, 3, 4});
  CHECK(values(fn("torch.nn.functional.hardsigmoid", {x})) == std::vector<double>{0, 0, 0.5, 1, 1});
  CHECK(values(fn("torch.nn.functional.relu6", {F({-1.0f, 3.0f, 7.0f}, Shape{3})})) == std::vector<double>{0, 3, 6});
  const auto sp = values(fn("torch._C._nn.softplus", {F({30.0f, 0.0f}, Shape{2})}));
  CHECK(sp[0] == 30.0);  // beyond the threshold: x itself
  CHECK(sp[1] == doctest::Approx(std::log(2.0)));
  const auto elu = values(fn("torch.nn.functional.elu", {F({-1.0f, 2.0f}, Shape{2})}, Dict{{{"alpha", Value(0.5)}}}));
  CHECK(elu[0] == doctest::Approx(0.5 * std::expm1(-1.0)));
  CHECK(elu[1] == 2.0);
  const Tensor p = fn("torch.prelu", {F({-1, -1, 2, -1, -1, 2}, Shape{1, 2, 3}), F({0.1f, 0.5f}, Shape{2})});
  const auto pv = values(p);
  CHECK(pv[0] == doctest::Approx(-0.1));
  CHECK(pv[3] == doctest::Approx(-0.5));
  CHECK(pv[5] == 2.0);
  CHECK(error_of([] { fn("torch.prelu", {F({1, 2, 3}, Shape{1, 3}), F({0.1f, 0.5f}, Shape{2})}); })
            .find("Found parameter numbers = 2 and channel size = 3") != std::string::npos);
  CHECK(error_of([] { fn("torch.nn.functional.silu", {I({1}, Shape{1})}); })
            .find("\"silu_cpu\" not implemented for 'Long'") != std::string::npos);
  CHECK(error_of([] { fn("torch.bitwise_and", {F({1}, Shape{1}), F({1}, Shape{1})}); })
            .find("\"bitwise_and_cpu\" not implemented for 'Float'") != std::string::npos);
}

TEST_CASE("activation leaf modules print PyTorch's repr") {
  CHECK(make_module("Hardtanh", {})->repr() == "Hardtanh(min_val=-1.0, max_val=1.0)");
  CHECK(make_module("ReLU6", {Value(true)})->repr() == "ReLU6(inplace=True)");
  CHECK(make_module("LeakyReLU", {Value(0.2)})->repr() == "LeakyReLU(negative_slope=0.2)");
  CHECK(make_module("ELU", {Value(1.0), Value(true)})->repr() == "ELU(alpha=1.0, inplace=True)");
  CHECK(make_module("PReLU", {Value(std::int64_t{3})})->repr() == "PReLU(num_parameters=3)");
  CHECK(make_module("Sigmoid", {})->repr() == "Sigmoid()");
  const Tensor y = T((*make_module("ReLU6", {}))(F({-1.0f, 7.0f}, Shape{2})));
  CHECK(values(y) == std::vector<double>{0, 6});
}

TEST_CASE("large float32 activations (oneDNN's primitives) agree with the formulas, NaN included") {
  const std::int64_t n = 8192;
  std::vector<float> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = static_cast<float>(i - n / 2) / 256.0f;  // [-16, 16)
  v[7] = std::numeric_limits<float>::quiet_NaN();
  const Tensor x = F(v, Shape{n});
  struct Case {
    const char* target;
    double (*ref)(double);
  };
  const Case cases[] = {
      {"torch.nn.functional.silu", [](double t) { return t / (1.0 + std::exp(-t)); }},
      {"torch.nn.functional.mish", [](double t) { return t * std::tanh(std::log1p(std::exp(t))); }},
      {"torch.nn.functional.elu", [](double t) { return t > 0 ? t : std::expm1(t); }},
      {"torch._C._nn.softplus", [](double t) { return t > 20 ? t : std::log1p(std::exp(t)); }},
      {"torch.nn.functional.hardswish", [](double t) { return t * std::min(std::max(t + 3, 0.0), 6.0) / 6; }},
  };
  for (const Case& c : cases) {
    CAPTURE(c.target);
    const std::vector<double> y = values(fn(c.target, {x}));
    CHECK(std::isnan(y[7]));
    int bad = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      if (i == 7) continue;
      const double want = c.ref(static_cast<double>(v[static_cast<std::size_t>(i)]));
      if (!(std::abs(y[static_cast<std::size_t>(i)] - want) <= 1e-5 + 1e-4 * std::abs(want))) ++bad;
    }
    CHECK(bad == 0);
  }
}
