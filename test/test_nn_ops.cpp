// The nn family's kernels (conv.yaml, pooling.yaml, layers.yaml) and leaf kinds: what the
// table walk's examples do not pin — PyTorch's index and weight rules (values taken from
// PyTorch 1.13), the oneDNN and loop paths agreeing, padding modes, and the messages.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "fxpack/make_fx.hpp"
#include "fxpack/module.hpp"
#include "fxpack/ops.hpp"
#include "fxpack/tensor.hpp"
#include "fxpack/value.hpp"
#include "ops/kernels.hpp"
#include "tensor_helpers.hpp"

using namespace fxpack;
using namespace fxpack::test;

namespace {



void check_close(const std::vector<double>& got, const std::vector<double>& want, double tol = 1e-5) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(tol));
}


Tensor arange(std::int64_t n, Shape s, DType dtype = DType::Float32) {
  std::vector<double> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = static_cast<double>(i);
  return Tensor::from_vector(std::span<const double>(v), s).to(dtype);
}

}  // namespace

TEST_CASE("interpolate follows PyTorch's nearest, nearest-exact and bilinear index rules") {
  const Tensor x = arange(5, Shape{1, 1, 5});
  const auto interp = [](const Tensor& t, Dict kw) { return call_function("torch.nn.functional.interpolate", {t}, std::move(kw)); };
  // A scale factor given is used as 1 / scale, not in / out (PyTorch's compute_scales_value).
  check_close(values(interp(x, Dict{{{"scale_factor", Value(1.5)}}})), {0, 0, 1, 2, 2, 3, 4});
  check_close(values(interp(x, Dict{{{"scale_factor", Value(1.5)}, {"mode", Value(std::string("nearest-exact"))}}})),
              {0, 1, 1, 2, 3, 3, 4});
  check_close(values(interp(x, Dict{{{"size", Value(std::int64_t{3})}}})), {0, 1, 3});
  const Tensor y = F({1, 2, 3, 5}, Shape{1, 1, 2, 2});
  const Value size33(Tuple{{Value(std::int64_t{3}), Value(std::int64_t{3})}});
  check_close(values(interp(y, Dict{{{"size", size33}, {"mode", Value(std::string("bilinear"))}}})),
              {1.0, 1.5, 2.0, 2.0, 2.75, 3.5, 3.0, 4.0, 5.0});
  check_close(values(interp(y, Dict{{{"size", size33}, {"mode", Value(std::string("bilinear"))}, {"align_corners", Value(true)}}})),
              {1.0, 1.5, 2.0, 2.0, 2.75, 3.5, 3.0, 4.0, 5.0});
  check_close(values(interp(y, Dict{{{"scale_factor", Value(1.7)}, {"mode", Value(std::string("bilinear"))}}})),
              {1.0, 1.3823530673980713, 1.9705883264541626, 1.764706015586853, 2.293252944946289, 3.1064016819000244,
               2.941176652908325, 3.6946370601654053, 4.853806495666504});
  // Nearest copies any dtype.
  CHECK(values(interp(arange(3, Shape{1, 1, 3}, DType::Int64), Dict{{{"scale_factor", Value(std::int64_t{2})}}})) ==
        std::vector<double>{0, 0, 1, 1, 2, 2});
  CHECK(error_of([&] { interp(x, Dict{{{"scale_factor", Value(2.0)}, {"align_corners", Value(true)}}}); })
            .find("align_corners option can only be set with the interpolating modes") != std::string::npos);
  CHECK(error_of([&] { interp(x, Dict{}); }).find("either size or scale_factor should be defined") != std::string::npos);
  CHECK(error_of([&] { interp(x, Dict{{{"scale_factor", Value(2.0)}, {"mode", Value(std::string("bicubic"))}}}); })
            .find("'bicubic' is not supported") != std::string::npos);
}

TEST_CASE("avg_pool1d with ceil_mode: the last window's divisor with and without the padding") {
  const Tensor z = F({1, 2, 3, 4, 5}, Shape{1, 1, 5});
  const Value k(std::int64_t{2}), p(std::int64_t{1});
  check_close(values(call_function("torch.avg_pool1d", {z, k, k, p, Value(true), Value(true)})), {0.5, 2.5, 4.5});
  check_close(values(call_function("torch.avg_pool1d", {z, k, k, p, Value(true), Value(false)})), {1.0, 2.5, 4.5});
}

TEST_CASE("conv_transpose2d: oneDNN's deconvolution, the scatter loop and PyTorch agree") {
  // stride 2, output_padding 1 (beyond the padding: the loop), dilation 2; PyTorch's values.
  const Tensor x = arange(4, Shape{1, 1, 2, 2});
  const Tensor w = F({1, 2, 3, 4}, Shape{1, 1, 2, 2});
  ops::ConvTranspose2dOptions o;
  o.stride = {2, 2};
  o.output_padding = {1, 1};
  o.dilation = {2, 2};
  const Tensor y = ops::conv_transpose2d(x, w, nullptr, o);
  CHECK(y.shape() == Shape{1, 1, 6, 6});
  check_close(y.to_doubles(), {0, 0, 1, 0, 2, 0, 0, 0, 0,  0, 0, 0, 2, 0, 10, 0, 10, 0,
                               0, 0, 0, 0, 0, 0, 6, 0, 17, 0, 12, 0, 0, 0, 0,  0, 0, 0});
  // Grouped, strided, padded, with bias: float32 (oneDNN) against float64 (the loop).
  std::vector<float> xs(2 * 6 * 5 * 4), ws(6 * 2 * 3 * 3), bs{0.5f, -1.f, 2.f, 0.25f, 1.f, -0.5f};
  for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = std::sin(0.37f * static_cast<float>(i));
  for (std::size_t i = 0; i < ws.size(); ++i) ws[i] = std::cos(0.11f * static_cast<float>(i));
  const Tensor x32 = F(xs, Shape{2, 6, 5, 4}), w32 = F(ws, Shape{6, 2, 3, 3}), b32 = F(bs, Shape{6});
  ops::ConvTranspose2dOptions g;
  g.stride = {2, 1};
  g.padding = {1, 1};
  g.output_padding = {1, 0};
  g.groups = 3;
  const Tensor y32 = ops::conv_transpose2d(x32, w32, &b32, g);
  const Tensor b64 = b32.to(DType::Float64);
  const Tensor y64 = ops::conv_transpose2d(x32.to(DType::Float64), w32.to(DType::Float64), &b64, g);
  CHECK(y32.shape() == Shape{2, 6, 10, 4});
  CHECK(max_abs_diff(y32.to(DType::Float64), y64) < 1e-5);
  o.output_padding = {2, 2};
  CHECK(error_of([&] { ops::conv_transpose2d(x, w, nullptr, o); })
            .find("output padding must be smaller than either stride or dilation") != std::string::npos);
}

TEST_CASE("Conv2d's padding modes pad as F.pad does, then convolve without padding") {
  CHECK(ops::mode_pad(F({1, 2, 3}, Shape{1, 1, 3}), std::vector<std::int64_t>{2, 1}, "reflect").to_doubles() ==
        std::vector<double>{3, 2, 1, 2, 3, 2});
  CHECK(ops::mode_pad(F({1, 2, 3}, Shape{1, 1, 3}), std::vector<std::int64_t>{2, 0}, "replicate").to_doubles() ==
        std::vector<double>{1, 1, 1, 2, 3});
  CHECK(ops::mode_pad(F({1, 2, 3}, Shape{1, 1, 3}), std::vector<std::int64_t>{1, 1}, "circular").to_doubles() ==
        std::vector<double>{3, 1, 2, 3, 1});
  CHECK(error_of([] { ops::mode_pad(F({1, 2}, Shape{1, 2}), std::vector<std::int64_t>{2, 0}, "reflect"); })
            .find("Padding size should be less than the corresponding input dimension") != std::string::npos);
  for (const char* mode : {"reflect", "replicate", "circular"}) {
    auto conv = make_module("Conv2d", {std::int64_t{1}, std::int64_t{1}, std::int64_t{3}},
                            Dict{{{"padding", Value(std::int64_t{1})}, {"padding_mode", Value(std::string(mode))}}});
    Tensor& w = const_cast<Tensor&>(conv->parameter("weight"));
    for (std::int64_t i = 0; i < 9; ++i) w.data<float>()[i] = static_cast<float>(i + 1);
    const Tensor x = arange(12, Shape{1, 1, 3, 4});
    const Tensor padded = ops::mode_pad(x, std::vector<std::int64_t>{1, 1, 1, 1}, mode);
    const Tensor want = ops::conv2d(padded, w, conv->find_parameter("bias"), ops::Conv2dOptions{});
    const Tensor got = (*conv)(std::vector<Value>{Value(x)}).tensor();
    CHECK(got.shape() == Shape{1, 1, 3, 4});
    CHECK(max_abs_diff(got, want) == 0.0);
    CHECK(conv->extra_repr().find(std::string("padding_mode=") + mode) != std::string::npos);
  }
  CHECK(error_of([] {
          make_module("Conv2d", {std::int64_t{1}, std::int64_t{1}, std::int64_t{3}},
                      Dict{{{"padding_mode", Value(std::string("mirror"))}}});
        }).find("padding_mode must be one of") != std::string::npos);
}

TEST_CASE("adaptive max pooling: uneven windows, flat indices, NaN wins") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // 3 x 4 -> 2 x 3: windows rows [0, 2) and [1, 3), columns [0, 2), [1, 3), [2, 4) (PyTorch's values).
  const Tensor x = F({1, 5, 2, 7, 4, nan, 0, 1, 3, 9, 8, 2}, Shape{1, 1, 3, 4});
  auto [v, idx] = ops::adaptive_max_pool2d(x, {2, 3});
  const std::vector<double> got = v.to_doubles();
  for (std::size_t i : {0, 1, 3, 4}) CHECK(std::isnan(got[i]));
  CHECK(got[2] == 7);
  CHECK(got[5] == 8);
  CHECK(idx.to_doubles() == std::vector<double>{5, 5, 3, 5, 5, 10});
}

TEST_CASE("layer functionals refuse what PyTorch refuses, in its words") {
  const Tensor x = arange(6, Shape{2, 3});
  CHECK(error_of([&] { call_function("torch.nn.functional.dropout", {x, Value(0.5), Value(true)}); })
            .find("training=True draws a random mask") != std::string::npos);
  CHECK(error_of([&] { call_function("torch.nn.functional.dropout", {x, Value(1.5), Value(false)}); })
            .find("dropout probability has to be between 0 and 1, but got 1.5") != std::string::npos);
  // p = 0 in training keeps every element: the identity, as in PyTorch.
  CHECK(values(call_function("torch.nn.functional.dropout", {x, Value(0.0), Value(true)})) == x.to_doubles());
  CHECK(error_of([&] { call_function("torch.nn.functional.embedding", {I({0, 3}, Shape{2}), x}); })
            .find("index out of range in self") != std::string::npos);
  CHECK(error_of([&] { call_function("torch.nn.functional.one_hot", {I({0, -1}, Shape{2})}); })
            .find("Class values must be non-negative.") != std::string::npos);
  CHECK(error_of([&] { call_function("torch.nn.functional.one_hot", {I({0, 4}, Shape{2}), Value(std::int64_t{3})}); })
            .find("Class values must be smaller than num_classes.") != std::string::npos);
  CHECK(error_of([&] { call_function("torch.pixel_shuffle", {arange(6, Shape{1, 6, 1, 1}), Value(std::int64_t{2})}); })
            .find("is not divisible by 4") != std::string::npos);
  CHECK(error_of([&] { call_function("torch.nn.functional.group_norm", {arange(6, Shape{1, 3, 2}), Value(std::int64_t{2})}); })
            .find("divisible by num_groups") != std::string::npos);
  CHECK(error_of([&] { call_function("torch.constant_pad_nd", {x, Value(List{{Value(std::int64_t{1})}})}); })
            .find("Length of pad must be even") != std::string::npos);
}

TEST_CASE("normalize, cosine_similarity and group_norm keep PyTorch's eps rules") {
  // A zero row divides by eps: zeros, not NaN.
  check_close(values(call_function("torch.nn.functional.normalize", {F({0, 0, 3, 4}, Shape{2, 2})})), {0, 0, 0.6, 0.8});
  check_close(values(call_function("torch.cosine_similarity", {F({1, 0, 0, 0}, Shape{2, 2}), F({1, 1, 1, 0}, Shape{2, 2})})),
              {0.7071067690849304, 0.0});
  // group_norm over 2 groups of 2 channels: each group normalised to mean 0, variance 1.
  const Tensor g = ops::group_norm(F({1, 3, 5, 7, 2, 2, 4, 8}, Shape{1, 4, 2}), 2, nullptr, nullptr, 0.0);
  const std::vector<double> v = g.to_doubles();
  CHECK(v[0] + v[1] + v[2] + v[3] == doctest::Approx(0.0));
  CHECK(v[0] * v[0] + v[1] * v[1] + v[2] * v[2] + v[3] * v[3] == doctest::Approx(4.0));
}

TEST_CASE("leaf kinds keep PyTorch's attributes and repr") {
  CHECK(make_module("AvgPool2d", {std::int64_t{2}})->extra_repr() == "kernel_size=2, stride=2, padding=0");
  CHECK(make_module("AvgPool1d", {std::int64_t{2}})->extra_repr() == "kernel_size=(2,), stride=(2,), padding=(0,)");
  CHECK(make_module("Dropout", {0.3})->extra_repr() == "p=0.3, inplace=False");
  CHECK(make_module("Embedding", {std::int64_t{5}, std::int64_t{3}}, Dict{{{"padding_idx", Value(std::int64_t{-1})}}})
            ->extra_repr() == "5, 3, padding_idx=4");
  CHECK(make_module("Upsample", {Value(), std::int64_t{2}})->extra_repr() == "scale_factor=2.0, mode=nearest");
  CHECK(make_module("ZeroPad2d", {Value(Tuple{{Value(std::int64_t{1}), Value(std::int64_t{2}), Value(std::int64_t{0}),
                                               Value(std::int64_t{1})}})})
            ->extra_repr() == "(1, 2, 0, 1)");
  CHECK(make_module("ConstantPad2d", {std::int64_t{1}, 0.5})->extra_repr() == "padding=(1, 1, 1, 1), value=0.5");
  CHECK(make_module("ConvTranspose2d", {std::int64_t{2}, std::int64_t{3}, std::int64_t{3}},
                    Dict{{{"stride", Value(std::int64_t{2})}, {"output_padding", Value(std::int64_t{1})}}})
            ->extra_repr() == "2, 3, kernel_size=(3, 3), stride=(2, 2), output_padding=(1, 1)");
  CHECK(make_module("Conv1d", {std::int64_t{2}, std::int64_t{3}, std::int64_t{3}})->extra_repr() ==
        "2, 3, kernel_size=(3,), stride=(1,)");
  // BatchNorm1d takes [N, C] and [N, C, L], not 4-D.
  auto bn = make_module("BatchNorm1d", {std::int64_t{3}});
  CHECK((*bn)(std::vector<Value>{Value(arange(6, Shape{2, 3}))}).tensor().shape() == Shape{2, 3});
  CHECK(error_of([&] { (*bn)(std::vector<Value>{Value(arange(12, Shape{1, 3, 2, 2}))}); })
            .find("expected 2D or 3D input (got 4D input)") != std::string::npos);
}

TEST_CASE("make_fx records F.interpolate as PyTorch 1.13 does: one aten upsample overload per mode and rank") {
  const auto code = [](Dict kw, Tensor x) {
    return make_fx([kw](const Value& v) { return call_function("torch.nn.functional.interpolate", {v}, kw); })(x)->code();
  };
  const Tensor x = arange(12, Shape{1, 1, 3, 4});
  CHECK(code(Dict{{{"scale_factor", Value(std::int64_t{2})}}}, x).find("torch.ops.aten.upsample_nearest2d.vec(x_1, None, [2.0, 2.0])") !=
        std::string::npos);
  const Value size(Tuple{{Value(std::int64_t{5}), Value(std::int64_t{7})}});
  CHECK(code(Dict{{{"size", size}, {"mode", Value(std::string("bilinear"))}}}, x)
            .find("torch.ops.aten.upsample_bilinear2d.vec(x_1, [5, 7], False, None)") != std::string::npos);
  CHECK(code(Dict{{{"scale_factor", Value(1.5)}, {"mode", Value(std::string("nearest-exact"))}}}, x)
            .find("torch.ops.aten._upsample_nearest_exact2d.vec(x_1, None, [1.5, 1.5])") != std::string::npos);
  CHECK(code(Dict{{{"scale_factor", Value(std::int64_t{2})}}}, arange(3, Shape{1, 1, 3}))
            .find("torch.ops.aten.upsample_nearest1d.vec(x_1, None, [2.0])") != std::string::npos);
}

TEST_CASE("einsum: diagonals, sums, broadcasting and pairwise products, as PyTorch computes them") {
  const auto einsum = [](std::vector<Value> args) { return call_function("torch.functional.einsum", std::move(args)); };
  const Tensor a = arange(6, Shape{2, 3}), b = arange(12, Shape{3, 4}), sq = arange(9, Shape{3, 3});
  const Value eq_mm("ij,jk->ik");
  // *operands, one list of them, the implicit output (labels used once, in order).
  check_close(values(einsum({eq_mm, a, b})), values(ops::matmul(a, b)));
  check_close(values(einsum({eq_mm, Value(List{{Value(a), Value(b)}})})), values(ops::matmul(a, b)));
  check_close(values(einsum({Value("ij,jk"), a, b})), values(ops::matmul(a, b)));
  check_close(values(einsum({Value("ii"), sq})), {12});
  check_close(values(einsum({Value("ii->i"), sq})), {0, 4, 8});
  check_close(values(einsum({Value("ij->ji"), a})), {0, 3, 1, 4, 2, 5});
  check_close(values(einsum({Value("ba"), a})), {0, 3, 1, 4, 2, 5});
  check_close(values(einsum({Value("i,j->ij"), F({1, 2}, Shape{2}), F({3, 4, 5}, Shape{3})})), {3, 4, 5, 6, 8, 10});
  check_close(values(einsum({Value("i,i->"), F({1, 2, 3}, Shape{3}), F({4, 5, 6}, Shape{3})})), {32});
  check_close(values(einsum({Value("ij->"), a})), {15});
  // The ellipsis broadcasts right-aligned; a size-1 dimension broadcasts against any size.
  const Tensor batched = arange(12, Shape{2, 2, 3});
  check_close(values(einsum({Value("...ij,...jk->...ik"), batched, b})), values(ops::matmul(batched, b)));
  check_close(values(einsum({Value("bij,bjk->bik"), arange(6, Shape{1, 2, 3}), arange(24, Shape{2, 3, 4})})),
              values(ops::matmul(arange(6, Shape{1, 2, 3}), arange(24, Shape{2, 3, 4}))));
  // Three operands: y[b, a] = sum_nm x[b, n] w[a, n, m] z[b, m].
  const Tensor x = arange(6, Shape{2, 3}), w = arange(24, Shape{2, 3, 4}), z = arange(8, Shape{2, 4});
  std::vector<double> want;
  for (int bi = 0; bi < 2; ++bi)
    for (int ai = 0; ai < 2; ++ai) {
      double s = 0;
      for (int n = 0; n < 3; ++n)
        for (int m = 0; m < 4; ++m) s += (bi * 3 + n) * ((ai * 3 + n) * 4 + m) * (bi * 4 + m);
      want.push_back(s);
    }
  check_close(values(einsum({Value("bn,anm,bm->ba"), x, w, z})), want);
  CHECK(T(einsum({eq_mm, a.to(DType::Float64), b.to(DType::Float64)})).dtype() == DType::Float64);
  CHECK(error_of([&] { einsum({eq_mm, a}); }).find("fewer operands were provided than specified in the equation") !=
        std::string::npos);
  CHECK(error_of([&] { einsum({Value("i$"), a}); }).find("subscripts must be in [a-zA-Z]") != std::string::npos);
  CHECK(error_of([&] { einsum({Value("ij,jk"), a, a}); }).find("do not broadcast") != std::string::npos);
  CHECK(error_of([&] { einsum({Value("ij->k"), a}); }).find("does not appear in the equation for any input") !=
        std::string::npos);
  CHECK(error_of([&] { einsum({Value("i"), a}); }).find("does not match the number of dimensions (2)") != std::string::npos);
}

TEST_CASE("bilinear and nn.Bilinear: x1ᵀ W x2 + b per output feature") {
  const Tensor x1 = F({1, 2}, Shape{1, 2}), x2 = F({1, 0, -1}, Shape{1, 3});
  const Tensor w = arange(6, Shape{1, 2, 3}), bias = F({0.5F}, Shape{1});
  // W x2 = (-2, -2), x1 . (-2, -2) = -6.
  check_close(values(call_function("torch.bilinear", {x1, x2, w, bias})), {-5.5});
  check_close(values(call_function("torch.nn.functional.bilinear", {x1, x2, w})), {-6});
  auto m = make_module("Bilinear", {Value(std::int64_t{2}), Value(std::int64_t{3}), Value(std::int64_t{1})});
  CHECK(m->repr() == "Bilinear(in1_features=2, in2_features=3, out_features=1, bias=True)");
  CHECK(error_of([&] { call_function("torch.bilinear", {x1, F({1, 0}, Shape{1, 2}), w}); }).find("do not fit weight") !=
        std::string::npos);
}

TEST_CASE("torch.where(condition) gives the nonzero indices, one tensor per dimension") {
  const Value r = call_function("torch.where", {F({0, 1.5, 2, 0}, Shape{2, 2})});
  REQUIRE(r.items().size() == 2);
  CHECK(values(r.items()[0]) == std::vector<double>{0, 1});
  CHECK(values(r.items()[1]) == std::vector<double>{1, 0});
  CHECK(T(r.items()[0]).dtype() == DType::Int64);
  const Value s = call_function("torch.where", {Tensor::scalar(3.0)});
  REQUIRE(s.items().size() == 1);
  CHECK(values(s.items()[0]) == std::vector<double>{0});
  CHECK(call_function("torch.where", {Tensor::scalar(0.0)}).items()[0].tensor().numel() == 0);
}
