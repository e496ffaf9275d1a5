// The shape family (src/ops/shape.yaml): semantics the table's examples do not pin —
// PyTorch's values at the edges (negative shifts and indices, uneven chunks, NaN and -0.0,
// legacy empty tensors in cat), its error messages, and what make_fx records for indexing.
// Expected values are PyTorch 1.13's.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "fxpack/make_fx.hpp"
#include "fxpack/ops.hpp"
#include "fxpack/tensor.hpp"
#include "fxpack/trace.hpp"
#include "fxpack/value.hpp"
#include "ops/kernels.hpp"
#include "tensor_helpers.hpp"

using namespace fxpack;
using namespace fxpack::test;

namespace {

// 0, 1, ..., 11 as a [3, 4] float tensor.
Tensor arange12() {
  std::vector<float> v(12);
  for (int i = 0; i < 12; ++i) v[static_cast<std::size_t>(i)] = static_cast<float>(i);
  return F(v, Shape{3, 4});
}


Value fn(const char* name, std::vector<Value> args, Dict kwargs = {}) {
  return call_function(name, std::move(args), std::move(kwargs));
}

}  // namespace

TEST_CASE("shape: cat promotes over every tensor, skips legacy empty [0] tensors, and names the mismatch") {
  const Tensor a = Tensor::zeros(Shape{2, 3}, DType::Int64);
  const Tensor b = Tensor::full(Shape{1, 3}, 1.0, DType::Int32);
  const Tensor r = ops::cat(std::vector<Tensor>{a, Tensor::zeros(Shape{0}), b}, 0);
  CHECK(r.dtype() == DType::Float32);  // the skipped float32 [0] still takes part in promotion
  CHECK(r.shape() == Shape{3, 3});
  CHECK(values(r) == std::vector<double>{0, 0, 0, 0, 0, 0, 1, 1, 1});
  CHECK(ops::cat(std::vector<Tensor>{a, b}, 0).dtype() == DType::Int64);
  CHECK(error_of([&] { ops::cat(std::vector<Tensor>{arange12(), Tensor::zeros(Shape{2, 3})}, 0); }) ==
        "cat: Sizes of tensors must match except in dimension 0. Expected size 4 but got size 3 for tensor number 1 "
        "in the list.");
  CHECK(error_of([&] { ops::cat(std::vector<Tensor>{}, 0); }) == "cat: expected a non-empty list of Tensors");
  CHECK(error_of([&] { ops::cat(std::vector<Tensor>{Tensor::scalar(1)}, 0); }) ==
        "cat: zero-dimensional tensor (at position 0) cannot be concatenated");
  CHECK(error_of([&] { ops::stack(std::vector<Tensor>{arange12(), Tensor::zeros(Shape{4})}, 0); }) ==
        "stack: stack expects each tensor to be equal size, but got [3, 4] at entry 0 and [4] at entry 1");
  // Along a middle dim, blocks interleave.
  const Tensor x = arange12();
  CHECK(values(ops::cat(std::vector<Tensor>{x, x}, 1)) ==
        std::vector<double>{0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7, 8, 9, 10, 11, 8, 9, 10, 11});
}

TEST_CASE("shape: split, chunk and unbind give PyTorch's pieces") {
  // chunk(6 rows, 4) gives three chunks of 2: fewer than asked for, as PyTorch.
  const Value chunks = fn("torch.chunk", {Tensor::zeros(Shape{6, 2}), 4});
  REQUIRE(chunks.items().size() == 3);
  for (const Value& c : chunks.items()) CHECK(c.tensor().shape() == Shape{2, 2});
  const Value uneven = fn("torch.chunk", {Tensor::zeros(Shape{5, 2}), 3});
  REQUIRE(uneven.items().size() == 3);
  CHECK(uneven.items()[2].tensor().shape() == Shape{1, 2});
  CHECK(error_of([] { fn("torch.chunk", {Tensor::zeros(Shape{2}), 0}); }) ==
        "chunk: chunk expects `chunks` to be greater than 0, got: 0");
  const Value parts = call_method("split", {arange12(), List{{Value(1), Value(3)}}}, Dict{{{"dim", Value(1)}}});
  REQUIRE(parts.items().size() == 2);
  CHECK(values(parts.items()[1]) == std::vector<double>{1, 2, 3, 5, 6, 7, 9, 10, 11});
  CHECK(error_of([] { call_method("split", {arange12(), List{{Value(1), Value(1)}}}); }) ==
        "split_with_sizes: split_with_sizes expects split_sizes to sum exactly to 3 (input tensor's size at dimension "
        "0), but got split_sizes=[1, 1]");
  const Value rows = fn("torch.unbind", {arange12()});
  REQUIRE(rows.items().size() == 3);
  CHECK(values(rows.items()[2]) == std::vector<double>{8, 9, 10, 11});
}

TEST_CASE("shape: expand, repeat, roll, flip, tril/triu at the edges") {
  CHECK(error_of([] { call_method("expand", {Tensor::zeros(Shape{1, 3}), -1, 2, 3}); }) ==
        "expand: The expanded size of the tensor (-1) isn't allowed in a leading, non-existing dimension 0");
  CHECK(error_of([] { call_method("expand", {Tensor::zeros(Shape{2, 3}), 2, 4}); }) ==
        "expand: The expanded size of the tensor (4) must match the existing size (3) at non-singleton dimension 1.  "
        "Target sizes: [2, 4].  Tensor sizes: [2, 3]");
  CHECK(values(call_method("expand", {F({1, 2}, Shape{2, 1}), 2, 3})) == std::vector<double>{1, 1, 1, 2, 2, 2});
  CHECK(values(call_method("repeat", {I({1, 2}, Shape{2}), 2, 2})) == std::vector<double>{1, 2, 1, 2, 1, 2, 1, 2});
  CHECK(call_method("repeat", {arange12(), 2, 1, 2}).tensor().shape() == Shape{2, 3, 8});
  const Tensor x = arange12();
  CHECK(values(fn("torch.roll", {x, -1})) == std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0});
  CHECK(values(fn("torch.roll", {x, Tuple{{Value(1), Value(-1)}}, Tuple{{Value(0), Value(1)}}})) ==
        std::vector<double>{9, 10, 11, 8, 1, 2, 3, 0, 5, 6, 7, 4});
  CHECK(error_of([&] { fn("torch.roll", {x, Tuple{{Value(1), Value(1)}}, 0}); }) ==
        "roll: shifts and dimensions must align. shifts: 2, dims:1");
  CHECK(values(fn("torch.flip", {x, List{{Value(0), Value(-1)}}})) ==
        std::vector<double>{11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0});
  CHECK(values(fn("torch.tril", {x, -1})) == std::vector<double>{0, 0, 0, 0, 4, 0, 0, 0, 8, 9, 0, 0});
  CHECK(values(fn("torch.triu", {x, 2})) == std::vector<double>{0, 0, 2, 3, 0, 0, 0, 7, 0, 0, 0, 0});
}

TEST_CASE("shape: F.pad in every mode, and PyTorch's refusals") {
  const Tensor x = F({0, 1, 2}, Shape{1, 1, 3});
  const std::vector<std::int64_t> p12{1, 2};
  CHECK(values(ops::pad(x, p12, "circular")) == std::vector<double>{2, 0, 1, 2, 0, 1});
  CHECK(values(ops::pad(x, p12, "reflect")) == std::vector<double>{1, 0, 1, 2, 1, 0});
  CHECK(values(ops::pad(x, p12, "replicate")) == std::vector<double>{0, 0, 1, 2, 2, 2});
  CHECK(values(ops::pad(x, p12, "constant", -1.5)) == std::vector<double>{-1.5, 0, 1, 2, -1.5, -1.5});
  const std::vector<std::int64_t> crop{-1, 0};
  CHECK(values(ops::pad(x, crop)) == std::vector<double>{1, 2});
  const std::vector<std::int64_t> p30{3, 0};
  CHECK(error_of([&] { ops::pad(x, p30, "reflect"); }) ==
        "pad: Argument #4: Padding size should be less than the corresponding input dimension, but got: padding (3, 0) "
        "at dimension 2 of input [1, 1, 3]");
  const std::vector<std::int64_t> six{1, 1, 1, 1, 1, 1, 1, 1};
  CHECK(error_of([&] { ops::pad(x, six); }) == "pad: Padding length too large");
  CHECK(error_of([] { fn("torch.nn.functional.pad", {Tensor::zeros(Shape{1, 2, 3}), Tuple{{Value(1), Value(1)}}, "reflect", 2.0}); }) ==
        "pad: Padding mode 'reflect' doesn't take in value argument");
}

TEST_CASE("shape: nonzero counts NaN and not -0.0; gather and index_select check their indices") {
  const Tensor nz = ops::nonzero(F({0.0f, -0.0f, std::nanf(""), 2.0f}, Shape{4}));
  CHECK(nz.shape() == Shape{2, 1});
  CHECK(values(nz) == std::vector<double>{2, 3});
  CHECK(error_of([] { ops::gather(arange12(), 1, I({4}, Shape{1, 1})); }) ==
        "gather: index 4 is out of bounds for dimension 1 with size 4");
  CHECK(error_of([] { ops::gather(arange12(), 1, Tensor::zeros(Shape{1, 1}, DType::Int32)); }) ==
        "gather: gather(): Expected dtype int64 for index");
  CHECK(values(ops::gather(arange12(), 1, I({3, 0, 1, 1}, Shape{2, 2}))) == std::vector<double>{3, 0, 5, 5});
  CHECK(error_of([] { ops::index_select(arange12(), 0, I({-1}, Shape{1})); }).starts_with(
      "index_select: index out of range in self"));
  CHECK(values(ops::masked_select(arange12(), B({1, 0, 0, 1}, Shape{4}))) == std::vector<double>{0, 3, 4, 7, 8, 11});
  // A uint8 mask is PyTorch's deprecated form, still accepted.
  const std::vector<std::uint8_t> m{1, 0, 1};
  const Tensor u8 = Tensor::from_bytes(std::as_bytes(std::span<const std::uint8_t>(m)), Shape{3}, DType::UInt8);
  CHECK(values(ops::masked_select(F({0, 1, 2, 3, 4, 5}, Shape{2, 3}), u8)) == std::vector<double>{0, 2, 3, 5});
}

TEST_CASE("shape: indexing with ..., negative integer tensors and bool masks") {
  const Tensor x = arange12();
  const Tensor cols = ops::index(x, Tuple{{Value(Ellipsis{}), Value(I({-1, 0}, Shape{2}))}});
  CHECK(cols.shape() == Shape{3, 2});
  CHECK(values(cols) == std::vector<double>{3, 0, 7, 4, 11, 8});
  const Tensor rows = ops::index(x, Value(B({1, 0, 1}, Shape{3})));
  CHECK(values(rows) == std::vector<double>{0, 1, 2, 3, 8, 9, 10, 11});
  CHECK(ops::index(x, Tuple{{Value(None{}), Value(Ellipsis{}), Value(None{})}}).shape() == Shape{1, 3, 4, 1});
  CHECK(ops::index(x, Tuple{{Value(Ellipsis{}), Value(Slice{-2, std::nullopt, std::nullopt})}}).shape() == Shape{3, 2});
  CHECK(error_of([&] { ops::index(x, Value(B({1, 0}, Shape{2}))); }) ==
        "getitem: The shape of the mask [2] at index 0 does not match the shape of the indexed tensor [3, 4] at index 0");
  CHECK(error_of([&] { ops::index(x, Tuple{{Value(I({0}, Shape{1})), Value(I({0}, Shape{1}))}}); }) ==
        "getitem: indexing with more than one Tensor is not supported");
  CHECK(error_of([&] { ops::index(x, Tuple{{Value(Ellipsis{}), Value(Ellipsis{})}}); }) ==
        "getitem: an index can only have a single ellipsis ('...')");
}

TEST_CASE("shape: sizes as Python values — getattr, dim, numel, math") {
  const Tensor x = Tensor::zeros(Shape{2, 3});
  CHECK(fn("builtins.getattr", {x, "shape"}) == Value(Tuple{{Value(2), Value(3)}}));
  CHECK(fn("builtins.getattr", {x, "ndim"}) == Value(2));
  CHECK(call_method("numel", {x}) == Value(6));
  CHECK(call_method("dim", {x}) == Value(2));
  CHECK(error_of([&] { fn("builtins.getattr", {x, "grad_fn"}); }).starts_with(
      "getattr: 'Tensor' object has no attribute 'grad_fn'"));
  // torch.return_types fields, as torch.max(x, 1).values reads them.
  const Value max = fn("torch.max", {F({1, 5, 3, 2}, Shape{2, 2}), 1});
  CHECK(values(fn("builtins.getattr", {max, "values"})) == std::vector<double>{5, 3});
  CHECK(values(fn("builtins.getattr", {max, "indices"})) == std::vector<double>{1, 0});
  CHECK(fn("math.sqrt", {16}) == Value(4.0));
  CHECK(error_of([] { fn("math.sqrt", {-1.0}); }).starts_with("math.sqrt: math domain error"));
  CHECK(fn("math.floor", {-2.5}) == Value(-3));
  CHECK(error_of([] { fn("math.ceil", {std::numeric_limits<double>::infinity()}); }) ==
        "math.ceil: cannot convert float infinity to integer");
}

TEST_CASE("shape: make_fx records indexing, chunk and split as PyTorch 1.13 does") {
  auto f = [](std::span<const Value> in) -> Value {
    const Value& x = in[0];
    const Value& i = in[1];
    const Value a = x[Tuple{{Value(Slice{}), Value(Slice{1, std::nullopt, std::nullopt})}}];
    const Value b = x[Tuple{{Value(None{}), Value(Ellipsis{}), Value(0)}}];
    const Value c = x[Tuple{{Value(Slice{}), i}}];
    const Value d = call_function("torch.chunk", {x, 2, 1});
    const Value e = call_function("torch.functional.split", {x, List{{Value(1), Value(2)}}});
    return Tuple{{a, b, c, d[Value(0)], e[Value(1)]}};
  };
  auto gm = make_fx(f, {"x", "i"})(Tensor::zeros(Shape{3, 4, 5}), I({0, 1}, Shape{2}));
  const std::string code = gm->code();
  CAPTURE(code);
  CHECK(code.find("slice_1 = torch.ops.aten.slice.Tensor(x_1, 0, 0, 9223372036854775807)\n") != std::string::npos);
  CHECK(code.find("slice_2 = torch.ops.aten.slice.Tensor(slice_1, 1, 1, 9223372036854775807)") != std::string::npos);
  CHECK(code.find("unsqueeze = torch.ops.aten.unsqueeze.default(x_1, 0)\n") != std::string::npos);
  CHECK(code.find("select = torch.ops.aten.select.int(unsqueeze, 3, 0)") != std::string::npos);
  CHECK(code.find("index = torch.ops.aten.index.Tensor(slice_3, [None, i_1])") != std::string::npos);
  CHECK(code.find("split = torch.ops.aten.split.Tensor(x_1, 2, 1)\n") != std::string::npos);
  CHECK(code.find("split_with_sizes = torch.ops.aten.split_with_sizes.default(x_1, [1, 2])") != std::string::npos);
}
