// The reduce, creation and dtype-conversion ops: semantics the table's examples do not pin
// (NaN, ties, empty inputs, corrections, legacy rules) and PyTorch's error messages.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "fxpack/make_fx.hpp"
#include "fxpack/module.hpp"
#include "fxpack/ops.hpp"
#include "fxpack/tensor.hpp"
#include "fxpack/value.hpp"
#include "tensor_helpers.hpp"

using namespace fxpack;
using namespace fxpack::test;

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();



Value fn(const std::string& target, std::vector<Value> args, Dict kwargs = {}) {
  return call_function(target, std::move(args), std::move(kwargs));
}
Value meth(const std::string& name, std::vector<Value> args, Dict kwargs = {}) {
  return call_method(name, std::move(args), std::move(kwargs));
}
Dict kw(std::string name, Value v) { return Dict{{{std::move(name), std::move(v)}}}; }

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("reduce: max, amax, argmax propagate NaN and pick the first of equal values") {
  const Tensor x = F({1, kNaN, 3, 5, 5, 2}, {2, 3});
  check_values(T(fn("torch.amax", {Value(x), Value(1)})), {kNaN, 5});
  check_values(T(fn("torch.amin", {Value(x), Value(1)})), {kNaN, 2});
  check_values(T(fn("torch.max", {Value(x)})), {kNaN});
  check_values(T(fn("torch.argmax", {Value(x), Value(1)})), {1, 0});
  const Value mx = fn("torch.max", {Value(x), Value(1)});
  check_values(mx.items()[0].tensor(), {kNaN, 5});
  check_values(mx.items()[1].tensor(), {1, 0});
  // Ties: the first index, also over the flattened tensor.
  check_values(T(fn("torch.argmin", {Value(I({3, 1, 1, 1}, {2, 2}))})), {1});
  check_values(T(fn("torch.argmax", {Value(I({3, 1, 3, 1}, {2, 2}))}, kw("keepdim", Value(true)))), {0});
  CHECK(T(fn("torch.argmax", {Value(I({3, 1, 3, 1}, {2, 2}))}, kw("keepdim", Value(true)))).shape() == Shape{1, 1});
  // min.dim over an int32 tensor keeps int32 values and gives int64 indices.
  const Value mn = fn("torch.min", {Value(I({4, 2, 2, 9}, {2, 2}).to(DType::Int32)), Value(0)});
  CHECK(mn.items()[0].tensor().dtype() == DType::Int32);
  check_values(mn.items()[0].tensor(), {2, 2});
  check_values(mn.items()[1].tensor(), {1, 0});
}

TEST_CASE("reduce: empty inputs and errors as PyTorch's") {
  const Tensor empty = Tensor::zeros(Shape{0, 3});
  check_values(T(fn("torch.sum", {Value(empty), Value(0)})), {0, 0, 0});
  check_values(T(fn("torch.mean", {Value(empty), Value(0)})), {kNaN, kNaN, kNaN});
  check_values(T(fn("torch.prod", {Value(empty)})), {1});
  CHECK(contains(error_of([&] { (void)fn("torch.amax", {Value(empty), Value(0)}); }),
                 "amax(): Expected reduction dim 0 to have non-zero size."));
  CHECK(contains(error_of([&] { (void)fn("torch.max", {Value(empty)}); }), "Expected reduction dim to be specified"));
  CHECK(contains(error_of([&] { (void)fn("torch.argmax", {Value(empty), Value(0)}); }), "non-zero size"));
  const Tensor x = F({1, 2, 3, 4}, {2, 2});
  CHECK(contains(error_of([&] { (void)fn("torch.amax", {Value(x), Value(2)}); }),
                 "Dimension out of range (expected to be in range of [-2, 1], but got 2)"));
  CHECK(contains(error_of([&] { (void)fn("torch.std", {Value(I({1, 2}, {2}))}); }),
                 "std and var only support floating point"));
  CHECK(contains(error_of([&] { (void)fn("torch.softmax", {Value(I({1, 2}, {2})), Value(0)}); }),
                 "not implemented for 'Long'"));
  CHECK(contains(error_of([&] { (void)fn("torch.topk", {Value(x), Value(3)}); }), "selected index k out of range"));
  CHECK(contains(error_of([&] { (void)fn("torch.functional.norm", {Value(I({1, 2}, {2}))}); }),
                 "Expected a floating point"));
  // 16-bit floats compute in float32 and keep their dtype.
  const Tensor h = T(fn("torch.sum", {Value(x.to(DType::Float16))}));
  CHECK(h.dtype() == DType::Float16);
  check_values(h, {10});
}

TEST_CASE("reduce: std and var with unbiased, correction and too few elements") {
  const Tensor x = F({1, 2, 3, 4, 6, 8}, {2, 3});
  check_values(T(fn("torch.var", {Value(x), Value(1)})), {1, 4});
  check_values(T(fn("torch.var", {Value(x), Value(1)}, kw("unbiased", Value(false)))), {2.0 / 3, 8.0 / 3});
  Dict c = kw("dim", Value(1));
  c.items.emplace_back("correction", Value(std::int64_t{0}));
  check_values(T(fn("torch.std", {Value(x)}, c)), {std::sqrt(2.0 / 3), std::sqrt(8.0 / 3)});
  // One element, correction 1: 0 / 0.
  check_values(T(fn("torch.std", {Value(F({5}, {1}))})), {kNaN});
  CHECK(T(fn("torch.std", {Value(x.to(DType::Float64)), Value(-1)}, kw("keepdim", Value(true)))).shape() ==
        Shape{2, 1});
}

TEST_CASE("reduce: result dtypes of sum, prod, cumsum, all, any, count_nonzero") {
  const Tensor i32 = I({1, 2, 3}, {3}).to(DType::Int32);
  CHECK(T(meth("sum", {Value(i32)})).dtype() == DType::Int64);
  CHECK(T(fn("torch.prod", {Value(i32)})).dtype() == DType::Int64);
  check_values(T(fn("torch.prod", {Value(i32)})), {6});
  const Tensor c = T(fn("torch.cumsum", {Value(i32), Value(0)}));
  CHECK(c.dtype() == DType::Int64);
  check_values(c, {1, 3, 6});
  CHECK(T(fn("torch.cumsum", {Value(i32), Value(0)}, kw("dtype", Value(DType::Float32)))).dtype() == DType::Float32);
  // all/any: bool, but uint8 stays uint8 (PyTorch 1.13).
  CHECK(T(fn("torch.all", {Value(F({1, 0}, {2}))})).dtype() == DType::Bool);
  CHECK(T(fn("torch.any", {Value(I({0, 3}, {2}).to(DType::UInt8))})).dtype() == DType::UInt8);
  check_values(T(fn("torch.any", {Value(F({0, kNaN}, {2}))})), {1});
  const Value n = fn("torch.count_nonzero", {Value(F({0, 1, 2, 0}, {2, 2}))}, kw("dim", Value(1)));
  CHECK(T(n).dtype() == DType::Int64);
  check_values(T(n), {1, 1});
}

TEST_CASE("reduce: norms") {
  const Tensor x = F({3, -4, 0, 1}, {2, 2});
  check_values(T(fn("torch.functional.norm", {Value(x)})), {std::sqrt(26.0)});
  Dict k = kw("p", Value(1));
  k.items.emplace_back("dim", Value(-1));
  check_values(T(fn("torch.functional.norm", {Value(x)}, k)), {7, 1});
  check_values(T(meth("norm", {Value(x)}, kw("dim", Value(1)))), {5, 1});
  check_values(T(fn("torch.linalg.vector_norm", {Value(x), Value(std::numeric_limits<double>::infinity())})), {4});
  check_values(T(fn("torch.linalg.vector_norm", {Value(x), Value(0)})), {3});
  check_values(T(fn("torch.linalg.vector_norm", {Value(x), Value(3.0), Value(0)})),
               {std::cbrt(27.0), std::cbrt(65.0)});
  CHECK(contains(error_of([&] { (void)fn("torch.functional.norm", {Value(x), Value("nuc")}); }), "'nuc'"));
  CHECK(contains(error_of([&] { (void)fn("torch.functional.norm", {Value(x)}, kw("dtype", Value(DType::Float64))); }),
                 "dtype argument is not supported in frobenius norm"));
}

TEST_CASE("reduce: softmax, log_softmax, logsumexp") {
  const Tensor x = F({1, 2, 3, 1000, 1000, 1000}, {2, 3});
  const double e = std::exp(1.0);
  const double s = 1 + e + e * e;
  check_values(T(fn("torch.softmax", {Value(x), Value(-1)})), {1 / s, e / s, e * e / s, 1.0 / 3, 1.0 / 3, 1.0 / 3});
  check_values(T(meth("log_softmax", {Value(x), Value(1)})),
               {-std::log(s), 1 - std::log(s), 2 - std::log(s), -std::log(3.0), -std::log(3.0), -std::log(3.0)});
  // Over dim 0 (inner elements): columns sum to one.
  const Tensor c = T(fn("torch.softmax", {Value(F({0, 0, 1000, std::log(3.0f)}, {2, 2})), Value(0)}));
  check_values(c, {0, 0.25, 1, 0.75}, 1e-5);
  // F.softmax's dim=None: 0 for 1-D and 3-D inputs, 1 otherwise.
  check_values(T(fn("torch.nn.functional.softmax", {Value(F({0, 0}, {2}))})), {0.5, 0.5});
  const Tensor d = T(fn("torch.nn.functional.softmax", {Value(F({0, 0, 0, 0}, {2, 2}))}, kw("dtype", Value(DType::Float64))));
  CHECK(d.dtype() == DType::Float64);
  check_values(d, {0.5, 0.5, 0.5, 0.5});
  check_values(T(fn("torch.logsumexp", {Value(x), Value(1)})), {1 + std::log(s), 1000 + std::log(3.0)});
  // An all -inf slice: -inf, not the NaN of subtracting its maximum.
  const double lse = T(fn("torch.logsumexp", {Value(F({-std::numeric_limits<float>::infinity()}, {1})), Value(0)})).item();
  CHECK((std::isinf(lse) && lse < 0));
  auto m = make_module("Softmax2d", {});
  CHECK(contains(error_of([&] { (void)(*m)(Value(F({1, 2}, {1, 2}))); }), "expected input to be 3D or 4D, got 2D"));
  CHECK(make_module("LogSoftmax", {Value(1)})->extra_repr() == "dim=1");
}

TEST_CASE("reduce: topk, sort, argsort") {
  const Tensor x = F({3, 1, kNaN, 2}, {4});
  const Value t = fn("torch.topk", {Value(x), Value(2)});
  check_values(t.items()[0].tensor(), {kNaN, 3});
  check_values(t.items()[1].tensor(), {2, 0});
  const Value s = fn("torch.sort", {Value(I({2, 1, 2, 0}, {4}))}, kw("descending", Value(true)));
  check_values(s.items()[0].tensor(), {2, 2, 1, 0});
  check_values(s.items()[1].tensor(), {0, 2, 1, 3});  // stable
  check_values(T(fn("torch.argsort", {Value(F({1, 3, 2, 0}, {2, 2})), Value(0)})), {0, 1, 1, 0});
}

TEST_CASE("creation: *_like, new_*, fill_ and their dtypes") {
  const Tensor x = F({1.5f, -2.5f}, {2});
  const Tensor f = T(fn("torch.full_like", {Value(I({1, 2}, {2})), Value(-2.7)}));
  CHECK(f.dtype() == DType::Int64);
  check_values(f, {-2, -2});
  CHECK(T(fn("torch.ones_like", {Value(x)}, kw("dtype", Value(DType::Int64)))).dtype() == DType::Int64);
  CHECK(T(meth("new_zeros", {Value(x), Value(2), Value(3)})).shape() == Shape{2, 3});
  check_values(T(meth("fill_", {Value(Tensor::zeros(Shape{2}, DType::Bool)), Value(2)})), {1, 1});
  CHECK(contains(error_of([&] { (void)fn("torch.zeros_like", {Value(x)}, kw("device", Value("cuda:0"))); }),
                 "device 'cuda' is not available"));
  CHECK(contains(error_of([&] { (void)meth("new_ones", {Value(x), Value(List{{Value(-1)}})}); }),
                 "negative dimension -1"));
}

TEST_CASE("dtypes: conversions truncate, alias when unchanged, and name legacy types") {
  const Tensor x = F({2.7f, -2.7f, 0.0f}, {3});
  const Tensor l = T(meth("long", {Value(x)}));
  CHECK(l.dtype() == DType::Int64);
  check_values(l, {2, -2, 0});
  check_values(T(meth("bool", {Value(x)})), {1, 1, 0});
  CHECK(T(meth("to", {Value(x), Value(DType::Float32)})) == x);  // PyTorch returns self
  CHECK(!(T(meth("to", {Value(x), Value(DType::Float32)}, kw("copy", Value(true)))) == x));
  CHECK(T(meth("to", {Value(x), Value("cpu")})) == x);
  CHECK(T(meth("to", {Value(x), Value(I({1}, {1}))})).dtype() == DType::Int64);
  CHECK(T(meth("type_as", {Value(I({1}, {1})), Value(x)})).dtype() == DType::Float32);
  CHECK(meth("type", {Value(x)}).str() == "torch.FloatTensor");
  CHECK(T(meth("type", {Value(x), Value("torch.DoubleTensor")})).dtype() == DType::Float64);
  CHECK(contains(error_of([&] { (void)meth("type", {Value(x), Value("torch.cuda.FloatTensor")}); }), "invalid type"));
  CHECK(contains(error_of([&] { (void)meth("to", {Value(x), Value(Device{"cuda", 0})}); }),
                 "device 'cuda' is not available"));
  const Tensor h = T(meth("half", {Value(F({1.0f / 3}, {1}))}));
  CHECK(h.dtype() == DType::Float16);
  check_values(T(meth("float", {Value(h)})), {0.333251953125});
}

TEST_CASE("creation: factories infer PyTorch's dtypes") {
  CHECK(T(fn("torch.arange", {Value(5)})).dtype() == DType::Int64);
  check_values(T(fn("torch.arange", {Value(5)})), {0, 1, 2, 3, 4});
  const Tensor a = T(fn("torch.arange", {Value(1.0), Value(0.0), Value(-0.25)}));
  CHECK(a.dtype() == DType::Float32);
  check_values(a, {1, 0.75, 0.5, 0.25});
  CHECK(contains(error_of([] { (void)fn("torch.arange", {Value(0), Value(3), Value(0)}); }), "step must be nonzero"));
  CHECK(contains(error_of([] { (void)fn("torch.arange", {Value(3), Value(0)}); }), "inconsistent with step sign"));
  CHECK(T(fn("torch.full", {Value(List{{Value(2)}}), Value(true)})).dtype() == DType::Bool);
  CHECK(T(fn("torch.full", {Value(List{{Value(2)}}), Value(3)})).dtype() == DType::Int64);
  CHECK(T(fn("torch.full", {Value(List{{Value(2)}}), Value(3.5)})).dtype() == DType::Float32);
  check_values(T(fn("torch.eye", {Value(2), Value(3)})), {1, 0, 0, 0, 1, 0});
  check_values(T(fn("torch.linspace", {Value(0), Value(1), Value(5)})), {0, 0.25, 0.5, 0.75, 1});
  CHECK(T(fn("torch.zeros", {Value(List{})})).dim() == 0);
}

// What PyTorch 1.13's make_fx records for the same calls (its output, x_1 being the input).
TEST_CASE("reduce and creation: make_fx records what PyTorch 1.13 records") {
  const Tensor x = F({1, 2, 3, 4, 5, 6}, {2, 3});
  auto recorded = [&](std::function<Value(const Value&)> f) { return make_fx(std::move(f))(x)->code(); };
  auto expect = [](const std::string& code, const std::string& line) {
    INFO(code);
    CHECK(contains(code, line));
  };
  expect(recorded([](const Value& v) { return fn("torch.std", {v}, Dict{{{"dim", Value(1)}, {"unbiased", Value(false)}}}); }),
         "std = torch.ops.aten.std.correction(x_1, [1], correction = 0);");
  expect(recorded([](const Value& v) { return meth("var", {v}); }),
         "var = torch.ops.aten.var.correction(x_1, None, correction = 1);");
  const std::string sm = recorded([](const Value& v) {
    return fn("torch.nn.functional.softmax", {v, Value(-1)}, kw("dtype", Value(DType::Float64)));
  });
  expect(sm, "_to_copy = torch.ops.aten._to_copy.default(x_1, dtype = torch.float64, layout = torch.strided, "
             "device = device(type='cpu'));");
  expect(sm, "_softmax = torch.ops.aten._softmax.default(_to_copy, -1, False);");
  expect(recorded([](const Value& v) { return meth("log_softmax", {v, Value(1)}); }),
         "_log_softmax = torch.ops.aten._log_softmax.default(x_1, 1, False);");
  expect(recorded([](const Value& v) {
           return fn("torch.functional.norm", {v}, Dict{{{"p", Value(1)}, {"dim", Value(-1)}, {"keepdim", Value(true)}}});
         }),
         "norm = torch.ops.aten.norm.ScalarOpt_dim(x_1, 1, [-1], True);");
  expect(recorded([](const Value& v) { return fn("torch.functional.norm", {v}); }),
         "norm = torch.ops.aten.norm.ScalarOpt_dim(x_1, 2, []);");
  expect(recorded([](const Value& v) { return meth("norm", {v, Value(3)}); }),
         "norm = torch.ops.aten.norm.ScalarOpt_dim(x_1, 3, [0, 1]);");
  expect(recorded([](const Value& v) {
           return meth("norm", {v}, Dict{{{"p", Value(2)}, {"dim", Value(1)}, {"dtype", Value(DType::Float64)}}});
         }),
         "norm = torch.ops.aten.norm.ScalarOpt_dim_dtype(x_1, 2, [1], False, dtype = torch.float64);");
  const std::string as = recorded([](const Value& v) {
    return fn("torch.argsort", {v}, Dict{{{"dim", Value(1)}, {"descending", Value(true)}}});
  });
  expect(as, "sort = torch.ops.aten.sort.default(x_1, 1, True);");
  expect(as, "return getitem_1");
  expect(recorded([](const Value& v) { return fn("torch.zeros_like", {v}); }),
         "zeros_like = torch.ops.aten.zeros_like.default(x_1, dtype = torch.float32, layout = torch.strided, "
         "device = device(type='cpu'), pin_memory = False);");
  expect(recorded([](const Value& v) { return meth("new_full", {v, Value(Tuple{{Value(2), Value(2)}}), Value(4.0)}); }),
         "new_full = torch.ops.aten.new_full.default(x_1, [2, 2], 4.0, dtype = torch.float32, layout = torch.strided, "
         "device = device(type='cpu'), pin_memory = False);");
  expect(recorded([](const Value& v) { return meth("double", {v}); }),
         "_to_copy = torch.ops.aten._to_copy.default(x_1, dtype = torch.float64);");
  expect(recorded([](const Value& v) { return meth("type", {v, Value(DType::Int64)}); }),
         "_to_copy = torch.ops.aten._to_copy.default(x_1, dtype = torch.int64, device = device(type='cpu'));");
  expect(recorded([](const Value& v) { return meth("float", {v}); }), "return x_1");
  expect(recorded([](const Value& v) { return meth("to", {v, Value("cpu")}); }), "return x_1");
}
