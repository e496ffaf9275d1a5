// Tensor runtime, kernels and leaf module kinds.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "fxpack/module.hpp"
#include "fxpack/ops.hpp"
#include "fxpack/tensor.hpp"
#include "fxpack/value.hpp"
#include "ops/kernels.hpp"
#include "tensor_helpers.hpp"

using namespace fxpack;
using namespace fxpack::test;

namespace {




Value fn(const std::string& target, std::vector<Value> args, Dict kwargs = {}) {
  return call_function(target, std::move(args), std::move(kwargs));
}
Value meth(const std::string& name, std::vector<Value> args, Dict kwargs = {}) {
  return call_method(name, std::move(args), std::move(kwargs));
}

std::filesystem::path ref_dir(const std::string& model) {
  return std::filesystem::path(FXPACK_FIXTURES_DIR) / "reference" / model;
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE_MESSAGE(static_cast<bool>(in), "cannot open " << p.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

Tensor load_bin(const std::filesystem::path& p, Shape s, DType dt = DType::Float32) {
  std::string bytes = slurp(p);
  return Tensor::from_bytes(std::as_bytes(std::span<const char>(bytes.data(), bytes.size())), s, dt);
}

// Loads params/<prefix>.<name>.bin into every parameter and buffer of a leaf module.
void load_leaf(Module& m, const std::string& model, const std::string& prefix) {
  std::vector<std::pair<std::string, Tensor>> ps(m.parameters().begin(), m.parameters().end());
  std::vector<std::pair<std::string, Tensor>> bs(m.buffers().begin(), m.buffers().end());
  for (auto& [name, t] : ps) {
    m.register_parameter(name, load_bin(ref_dir(model) / "params" / (prefix + "." + name + ".bin"), t.shape(), t.dtype()));
  }
  for (auto& [name, t] : bs) {
    m.register_buffer(name, load_bin(ref_dir(model) / "params" / (prefix + "." + name + ".bin"), t.shape(), t.dtype()));
  }
}

void check_reference(const Tensor& got, const Tensor& want) {
  REQUIRE(got.shape() == want.shape());
  for (std::int64_t i = 0; i < want.numel(); ++i) {
    const double g = got.item_at(i), w = want.item_at(i);
    INFO("element " << i << ": got " << g << ", want " << w);
    CHECK(std::fabs(g - w) <= 1e-6 + 1e-5 * std::fabs(w));
  }
}

}  // namespace

TEST_CASE("runtime: storage is 64-byte aligned, zeroed (or uninitialised on request), and tensors view it") {
  for (std::size_t n : {0u, 1u, 7u, 64u, 1000u}) {
    auto s = Storage::allocate(n);
    CHECK(reinterpret_cast<std::uintptr_t>(s->data()) % 64 == 0);
    CHECK(s->nbytes() == n);
    CHECK_FALSE(s->borrowed());
    for (std::size_t i = 0; i < n; ++i) REQUIRE(s->data()[i] == std::byte{0});
  }
  // Uninitialised bytes are aligned and writable; allocate() zeroes bytes the allocator hands
  // back from a freed block (filled with 0xab here, the same size: most likely the same block).
  for (std::size_t n : {0u, 1u, 7u, 64u, 1000u, 1u << 20}) {
    auto u = Storage::allocate_uninitialized(n);
    CHECK(reinterpret_cast<std::uintptr_t>(u->data()) % 64 == 0);
    CHECK(u->nbytes() == n);
    CHECK_FALSE(u->borrowed());
    std::memset(u->data(), 0xab, n);
    u.reset();
    auto z = Storage::allocate(n);
    for (std::size_t i = 0; i < n; ++i) REQUIRE(z->data()[i] == std::byte{0});
  }
  CHECK(error_of([] { (void)Storage::allocate_uninitialized(std::size_t{1} << 41); })
            .find("Storage::allocate_uninitialized: 2199023255552 bytes is more than the") != std::string::npos);
  CHECK(error_of([] { (void)Storage::allocate(std::size_t{1} << 41); })
            .find("Storage::allocate: 2199023255552 bytes is more than the") != std::string::npos);
  auto owner = std::make_shared<std::vector<float>>(std::vector<float>{1, 2, 3, 4});
  auto b = Storage::borrow(owner->data(), 16, owner);
  CHECK(b->borrowed());
  Tensor t(b, 4, DType::Float32, Shape{3});
  check_values(t, {2, 3, 4});
  CHECK(error_of([&] { Tensor(b, 8, DType::Float32, Shape{3}); }).find("needs 12 bytes") != std::string::npos);

  Tensor x = F({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor v = x.view(Shape{3, 2});
  CHECK(v.same_storage(x));
  CHECK(v.shape() == Shape{3, 2});
  CHECK(error_of([&] { (void)x.view(Shape{4}); }) != "");
  Tensor c = x.clone();
  CHECK_FALSE(c.same_storage(x));
  check_values(c, {1, 2, 3, 4, 5, 6});
  CHECK(x.size(-1) == 3);
  CHECK(error_of([&] { (void)x.size(2); }) != "");
  CHECK(error_of([&] { (void)x.item_at(6); }).find("out of range") != std::string::npos);
  CHECK(error_of([&] { (void)x.item(); }) != "");
}

namespace {
std::vector<std::span<const std::byte>> g_released;  // what release_recorder was given
void release_recorder(std::span<const std::byte> bytes) noexcept { g_released.push_back(bytes); }
}  // namespace

TEST_CASE("runtime: release_pages hands a borrowed storage's bytes to its release hook, and nothing else") {
  g_released.clear();
  auto owner = std::make_shared<std::vector<float>>(std::vector<float>{1, 2, 3, 4});
  auto with_hook = Storage::borrow(owner->data(), 16, owner, {}, release_recorder);
  with_hook->release_pages();
  REQUIRE(g_released.size() == 1);
  CHECK(g_released[0].data() == reinterpret_cast<const std::byte*>(owner->data()));
  CHECK(g_released[0].size() == 16);
  // Without a hook (heap bytes, a memory archive's buffer) there is nothing to give back.
  Storage::borrow(owner->data(), 16, owner)->release_pages();
  Storage::allocate(64)->release_pages();
  CHECK(g_released.size() == 1);
  check_values(Tensor(with_hook, 0, DType::Float32, Shape{4}), {1, 2, 3, 4});
  // A range: cut at the storage's end; nothing past it.
  with_hook->release_pages(4, 8);
  with_hook->release_pages(12, 100);
  with_hook->release_pages(16, 4);
  Storage::allocate(64)->release_pages(0, 64);
  REQUIRE(g_released.size() == 3);
  CHECK(g_released[1].data() == reinterpret_cast<const std::byte*>(owner->data()) + 4);
  CHECK(g_released[1].size() == 8);
  CHECK(g_released[2].data() == reinterpret_cast<const std::byte*>(owner->data()) + 12);
  CHECK(g_released[2].size() == 4);
}

TEST_CASE("runtime: a Value is small and keeps tensors, slices and devices by value") {
  static_assert(sizeof(Value) <= 40, "the large alternatives are boxed (detail/boxed.hpp)");
  Tensor t = Tensor::full({2, 3}, 1.5);
  Value v = t;
  REQUIRE(v.if_tensor());
  CHECK(v.tensor() == t);  // the same view of the same storage
  Value copy = v;
  CHECK(copy == v);
  CHECK(copy.if_tensor() != v.if_tensor());  // a copy, not a shared box
  *copy.if_tensor() = Tensor::full({1}, 2.0);
  CHECK(v.tensor() == t);
  CHECK(copy.tensor().shape() == Shape{1});
  Value moved = std::move(copy);
  CHECK(moved.tensor().item() == 2.0);
  CHECK(Value(1).if_tensor() == nullptr);
  CHECK_THROWS_WITH(Value(1).tensor(), "expected Tensor, got int");
  Slice s;
  s.stop = 3;
  Value sv = s;
  CHECK(sv.slice() == s);
  CHECK(python_repr(sv) == "slice(None, 3, None)");
  Value dv = Device{"cpu", 0};
  CHECK(dv.device().index == 0);
  CHECK(python_repr(dv) == "device(type='cpu', index=0)");
  CHECK_THROWS_WITH(dv.slice(), "expected slice, got device");
  // Many tensors made and dropped in a row (a plan's steps) reuse boxes; none leak.
  for (int i = 0; i < 1000; ++i) {
    std::vector<Value> vs(300, Value(t));
    CHECK(vs.back().tensor() == t);
  }
}

TEST_CASE("runtime: dtype names, conversion, printing and comparison") {
  CHECK(dtype_name(DType::Float32) == "float32");
  CHECK(parse_dtype("int64") == DType::Int64);
  CHECK(error_of([] { (void)parse_dtype("complex64"); }).find("complex64") != std::string::npos);
  CHECK(element_size(DType::Float64) == 8);
  CHECK(element_size(DType::Bool) == 1);

  Tensor f = F({1.5f, -2.7f, NAN, 1e30f}, {4});
  Tensor i = f.to(DType::Int64);
  CHECK(i.item_at(0) == 1);
  CHECK(i.item_at(1) == -2);
  Tensor bb = f.to(DType::Bool);
  check_values(bb, {1, 1, 1, 1});
  CHECK(Tensor::full(Shape{2}, 3.0, DType::UInt8).item_at(1) == 3);
  CHECK(Tensor::scalar(2.5).dim() == 0);
  CHECK(Tensor::scalar(2.5).item() == 2.5);

  std::ostringstream os;
  os << F({1, 2, 3, 4}, {2, 2});
  CHECK(os.str() == "tensor([[1., 2.],\n        [3., 4.]])");
  os.str("");
  os << F({1.5f, 2.25f}, {2});
  CHECK(os.str() == "tensor([1.5000, 2.2500])");
  os.str("");
  os << I({1, -2}, {2});
  CHECK(os.str() == "tensor([ 1, -2])");
  os.str("");
  os << B({1, 0}, {2});
  CHECK(os.str() == "tensor([ True, False])");

  CHECK(allclose(F({1, 2}, {2}), F({1, 2.000001f}, {2})));
  CHECK_FALSE(allclose(F({1, 2}, {2}), F({1, 2.1f}, {2})));
  CHECK(max_abs_diff(F({1, 2}, {2}), F({1, 2.5f}, {2})) == doctest::Approx(0.5));
  CHECK(error_of([] { (void)allclose(F({1, 2}, {2}), F({1}, {1})); }) != "");
}

TEST_CASE("runtime: broadcasting") {
  Tensor a = F({1, 2, 3, 4, 5, 6}, {2, 3});
  Value r = ops::binary(ops::BinaryOp::Add, Value(a), Value(F({10, 20, 30}, {3})));
  CHECK(T(r).shape() == Shape{2, 3});
  check_values(T(r), {11, 22, 33, 14, 25, 36});

  r = ops::binary(ops::BinaryOp::Mul, Value(F({1, 2}, {2, 1})), Value(F({1, 10, 100}, {1, 3})));
  CHECK(T(r).shape() == Shape{2, 3});
  check_values(T(r), {1, 10, 100, 2, 20, 200});

  r = Value(a) + Value(3.0);
  check_values(T(r), {4, 5, 6, 7, 8, 9});
  r = Value(2) * Value(a);
  check_values(T(r), {2, 4, 6, 8, 10, 12});
  r = Value(1.0) - Value(a);
  check_values(T(r), {0, -1, -2, -3, -4, -5});
  r = fn("operator.truediv", {Value(a), Value(2)});
  CHECK(T(r).dtype() == DType::Float32);
  check_values(T(r), {0.5, 1, 1.5, 2, 2.5, 3});

  // 0-d tensors broadcast too; a [3, 1, 2] against [4, 2].
  r = Value(a) * Value(Tensor::scalar(2.0));
  check_values(T(r), {2, 4, 6, 8, 10, 12});
  Tensor big = Tensor::full(Shape{3, 1, 2}, 1.0);
  r = ops::binary(ops::BinaryOp::Sub, Value(big), Value(F({0, 1, 2, 3, 4, 5, 6, 7}, {4, 2})));
  CHECK(T(r).shape() == Shape{3, 4, 2});
  CHECK(T(r).item_at(23) == -6);

  std::string msg = error_of([&] { (void)(Value(a) + Value(F({1, 2, 3, 4}, {4}))); });
  CHECK(msg.find("add: shapes [2, 3] and [4] cannot be broadcast") != std::string::npos);
  msg = error_of([&] { (void)fn("torch.mul", {Value(a), Value(F({1, 2}, {2, 1, 1, 1}) )}); });
  CHECK(msg == "");  // [2,1,1,1] * [2,3] is fine: [2,1,2,3]
  msg = error_of([&] { (void)fn("operator.add", {Value(a), Value("s")}); });
  CHECK(msg.find("add: unsupported operand types") != std::string::npos);
}

TEST_CASE("runtime: type promotion follows PyTorch") {
  Tensor i = I({1, 2, 3}, {3});
  Tensor f = F({0.5f, 1.5f, 2.5f}, {3});
  Tensor b = B({1, 0, 1}, {3});
  CHECK(ops::result_type(Value(i), Value(f)) == DType::Float32);
  CHECK(ops::result_type(Value(i), Value(2.5)) == DType::Float32);
  CHECK(ops::result_type(Value(i), Value(2)) == DType::Int64);
  CHECK(ops::result_type(Value(b), Value(true)) == DType::Bool);
  CHECK(ops::result_type(Value(b), Value(1)) == DType::Int64);
  CHECK(ops::result_type(Value(f), Value(Tensor::scalar(1.0, DType::Float64))) == DType::Float32);
  CHECK(ops::result_type(Value(f), Value(Tensor::full(Shape{1}, 1.0, DType::Float64))) == DType::Float64);
  CHECK(ops::result_type(Value(i), Value(Tensor::scalar(1.0, DType::Float64))) == DType::Float64);

  Value r = Value(i) + Value(f);
  CHECK(T(r).dtype() == DType::Float32);
  check_values(T(r), {1.5, 3.5, 5.5});
  r = Value(i) + Value(1);
  CHECK(T(r).dtype() == DType::Int64);
  check_values(T(r), {2, 3, 4});
  r = Value(i) / Value(2);
  CHECK(T(r).dtype() == DType::Float32);
  check_values(T(r), {0.5, 1, 1.5});
  r = fn("torch.div", {Value(I({7, -7}, {2})), Value(2)}, Dict{{{"rounding_mode", Value("floor")}}});
  CHECK(T(r).dtype() == DType::Int64);
  check_values(T(r), {3, -4});
  r = Value(b) + Value(b);
  CHECK(T(r).dtype() == DType::Bool);
  check_values(T(r), {1, 0, 1});
  r = Value(b) * Value(2);
  CHECK(T(r).dtype() == DType::Int64);

  // Float-only math promotes ints and bools to float32, as torch.sin does.
  r = fn("torch.sin", {Value(i)});
  CHECK(T(r).dtype() == DType::Float32);
  CHECK(T(r).item_at(1) == doctest::Approx(std::sin(2.0)));
  r = meth("exp", {Value(b)});
  CHECK(T(r).dtype() == DType::Float32);
  r = fn("torch.abs", {Value(I({-3, 4}, {2}))});
  CHECK(T(r).dtype() == DType::Int64);
  check_values(T(r), {3, 4});

  CHECK(error_of([&] { (void)(Value(b) - Value(b)); }).find("Subtraction") != std::string::npos);
  CHECK(error_of([&] { (void)(-Value(b)); }).find("Negation") != std::string::npos);
  CHECK(error_of([&] { (void)fn("torch.relu", {Value(b)}); }).find("relu") != std::string::npos);
  CHECK(error_of([&] { (void)fn("torch.sin", {Value(3.0)}); }).find("sin: argument 'input' must be a Tensor") !=
        std::string::npos);

  // Two Python numbers: Python arithmetic.
  CHECK(std::get<std::int64_t>((Value(2) + Value(3)).variant()) == 5);
  CHECK(std::get<double>((Value(3) / Value(2)).variant()) == 1.5);
  CHECK(error_of([] { (void)(Value(1) / Value(0)); }).find("ZeroDivisionError") != std::string::npos);
  Value cat = fn("operator.add", {Value(Tuple{{Value(1)}}), Value(Tuple{{Value(2)}})});
  CHECK(cat == Value(Tuple{{Value(1), Value(2)}}));
}

TEST_CASE("runtime: unary ops and clamp") {
  Tensor x = F({-1.0f, 0.0f, 2.0f}, {3});
  check_values(T(fn("torch.relu", {Value(x)})), {0, 0, 2});
  check_values(T(fn("torch.nn.functional.relu", {Value(x)}, Dict{{{"inplace", Value(true)}}})), {0, 0, 2});
  check_values(T(meth("neg", {Value(x)})), {1, 0, -2});
  check_values(T(fn("torch.sigmoid", {Value(x)})), {1 / (1 + std::exp(1.0)), 0.5, 1 / (1 + std::exp(-2.0))});
  check_values(T(fn("torch.tanh", {Value(x)})), {std::tanh(-1.0), 0, std::tanh(2.0)});
  check_values(T(fn("torch.cos", {Value(x)})), {std::cos(-1.0), 1, std::cos(2.0)});
  check_values(T(fn("torch.clamp", {Value(x), Value(-0.5), Value(1.0)})), {-0.5, 0, 1});
  check_values(T(meth("clamp", {Value(x)}, Dict{{{"max", Value(0.5)}}})), {-1, 0, 0.5});
  CHECK(error_of([&] { (void)fn("torch.clamp", {Value(x)}); }).find("At least one") != std::string::npos);
  Value ci = fn("torch.clamp", {Value(I({-5, 5}, {2})), Value(0.5)});
  CHECK(T(ci).dtype() == DType::Float32);
  // Large tensors take the vectorised path: same values.
  std::vector<float> v(1000);
  for (std::size_t k = 0; k < v.size(); ++k) v[k] = static_cast<float>(k) * 0.01f - 5.0f;
  Tensor big = F(v, {1000});
  Tensor s = T(fn("torch.sin", {Value(big)}));
  for (std::int64_t k = 0; k < 1000; k += 37) CHECK(s.item_at(k) == doctest::Approx(std::sin(big.item_at(k))).epsilon(1e-5));
  Tensor e = T(fn("torch.exp", {Value(big)}));
  for (std::int64_t k = 0; k < 1000; k += 37) CHECK(e.item_at(k) == doctest::Approx(std::exp(big.item_at(k))).epsilon(1e-5));
  // NaN propagates through relu and max.
  Tensor n = T(fn("torch.relu", {Value(F({NAN}, {1}))}));
  CHECK(std::isnan(n.item_at(0)));
}

TEST_CASE("runtime: reductions") {
  Tensor x = F({1, 2, 3, 4, 5, 6}, {2, 3});
  Value r = fn("torch.sum", {Value(x)});
  CHECK(T(r).dim() == 0);
  CHECK(T(r).item() == 21);
  r = fn("torch.sum", {Value(x), Value(1)});
  CHECK(T(r).shape() == Shape{2});
  check_values(T(r), {6, 15});
  r = meth("sum", {Value(x), Value(-2)}, Dict{{{"keepdim", Value(true)}}});
  CHECK(T(r).shape() == Shape{1, 3});
  check_values(T(r), {5, 7, 9});
  r = fn("torch.mean", {Value(x), Value(List{{Value(0), Value(1)}})});
  CHECK(T(r).item() == doctest::Approx(3.5));
  r = meth("mean", {Value(x), Value(Tuple{{Value(-1)}}), Value(true)});
  CHECK(T(r).shape() == Shape{2, 1});
  check_values(T(r), {2, 5});
  Tensor x3 = T(meth("view", {Value(F({1, 2, 3, 4, 5, 6, 7, 8}, {8})), Value(2), Value(2), Value(2)}));
  r = fn("torch.sum", {Value(x3), Value(List{{Value(0), Value(2)}})});
  check_values(T(r), {1 + 2 + 5 + 6, 3 + 4 + 7 + 8});

  r = fn("torch.sum", {Value(I({1, 2, 3}, {3}))});
  CHECK(T(r).dtype() == DType::Int64);
  r = fn("torch.sum", {Value(B({1, 1, 0}, {3}))});
  CHECK(T(r).dtype() == DType::Int64);
  CHECK(T(r).item() == 2);
  r = fn("torch.sum", {Value(I({1, 2, 3}, {3}))}, Dict{{{"dtype", Value(DType::Float64)}}});
  CHECK(T(r).dtype() == DType::Float64);
  CHECK(error_of([] { (void)fn("torch.mean", {Value(I({1, 2}, {2}))}); }).find("mean(): could not infer output dtype") !=
        std::string::npos);
  CHECK(error_of([&] { (void)fn("torch.sum", {Value(x), Value(2)}); }).find("Dimension out of range") != std::string::npos);
  CHECK(error_of([&] { (void)fn("torch.sum", {Value(x), Value(List{{Value(1), Value(-1)}})}); })
            .find("multiple times") != std::string::npos);
}

TEST_CASE("runtime: reshape, view, flatten, permute, transpose, t") {
  Tensor x = F({1, 2, 3, 4, 5, 6}, {2, 3});
  Value r = fn("torch.reshape", {Value(x), Value(Tuple{{Value(-1), Value(2)}})});
  CHECK(T(r).shape() == Shape{3, 2});
  CHECK(T(r).same_storage(x));
  r = meth("view", {Value(x), Value(-1)});
  CHECK(T(r).shape() == Shape{6});
  r = meth("reshape", {Value(x), Value(Tuple{{Value(3), Value(-1)}})});
  CHECK(T(r).shape() == Shape{3, 2});
  CHECK(error_of([&] { (void)meth("view", {Value(x), Value(4), Value(-1)}); })
            .find("view: shape '[4, -1]' is invalid for input of size 6") != std::string::npos);
  CHECK(error_of([&] { (void)meth("view", {Value(x), Value(-1), Value(-1)}); }).find("only one dimension") !=
        std::string::npos);

  Tensor x4 = Tensor::zeros(Shape{2, 3, 4, 5});
  CHECK(T(fn("torch.flatten", {Value(x4), Value(1)})).shape() == Shape{2, 60});
  CHECK(T(meth("flatten", {Value(x4)})).shape() == Shape{120});
  CHECK(T(meth("flatten", {Value(x4), Value(1), Value(2)})).shape() == Shape{2, 12, 5});
  CHECK(T(fn("torch.flatten", {Value(Tensor::scalar(1.0))})).shape() == Shape{1});
  CHECK(error_of([&] { (void)meth("flatten", {Value(x4), Value(2), Value(1)}); }) != "");

  r = fn("torch.transpose", {Value(x), Value(0), Value(1)});
  CHECK(T(r).shape() == Shape{3, 2});
  check_values(T(r), {1, 4, 2, 5, 3, 6});
  check_values(T(meth("t", {Value(x)})), {1, 4, 2, 5, 3, 6});
  CHECK(error_of([&] { (void)fn("torch.t", {Value(x4)}); }).find("t() expects a tensor with <= 2 dimensions") !=
        std::string::npos);
  Tensor y = T(meth("view", {Value(F({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23}, {24})),
                             Value(2), Value(3), Value(4)}));
  r = meth("permute", {Value(y), Value(2), Value(0), Value(1)});
  CHECK(T(r).shape() == Shape{4, 2, 3});
  // out[k][i][j] = y[i][j][k] = 12 i + 4 j + k
  CHECK(T(r).item_at(((1 * 2 + 1) * 3 + 2)) == 12 + 8 + 1);
  r = fn("torch.permute", {Value(y), Value(List{{Value(-1), Value(0), Value(1)}})});
  CHECK(T(r).shape() == Shape{4, 2, 3});
  CHECK(error_of([&] { (void)meth("permute", {Value(y), Value(0), Value(0), Value(1)}); }).find("repeated dim") !=
        std::string::npos);
  CHECK(error_of([&] { (void)meth("permute", {Value(y), Value(0), Value(1)}); }).find("number of dims") !=
        std::string::npos);
  CHECK(T(meth("contiguous", {Value(y)})).same_storage(y));
  CHECK(meth("size", {Value(y)}) == Value(Tuple{{Value(2), Value(3), Value(4)}}));
  CHECK(meth("size", {Value(y), Value(-1)}) == Value(4));
}

TEST_CASE("runtime: getitem on tensors and sequences") {
  Tensor y = T(meth("view", {Value(F({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, {12})), Value(3), Value(4)}));
  Value r = fn("operator.getitem", {Value(y), Value(1)});
  CHECK(T(r).shape() == Shape{4});
  CHECK(T(r).same_storage(y));
  check_values(T(r), {4, 5, 6, 7});
  r = fn("operator.getitem", {Value(y), Value(-1)});
  check_values(T(r), {8, 9, 10, 11});
  r = fn("operator.getitem", {Value(y), Value(Slice{1, std::nullopt, std::nullopt})});
  CHECK(T(r).shape() == Shape{2, 4});
  r = fn("operator.getitem", {Value(y), Value(Tuple{{Value(Slice{}), Value(Slice{std::nullopt, std::nullopt, 2})}})});
  CHECK(T(r).shape() == Shape{3, 2});
  check_values(T(r), {0, 2, 4, 6, 8, 10});
  r = fn("operator.getitem", {Value(y), Value(Tuple{{Value(2), Value(Slice{1, 3, std::nullopt})}})});
  check_values(T(r), {9, 10});
  r = fn("operator.getitem", {Value(y), Value(Tuple{{Value(None{}), Value(0)}})});
  CHECK(T(r).shape() == Shape{1, 4});
  CHECK(error_of([&] { (void)fn("operator.getitem", {Value(y), Value(3)}); })
            .find("index 3 is out of bounds for dimension 0 with size 3") != std::string::npos);
  CHECK(error_of([&] { (void)fn("operator.getitem", {Value(y), Value(Tuple{{Value(0), Value(0), Value(0)}})}); })
            .find("too many indices") != std::string::npos);

  const std::int64_t big = std::numeric_limits<std::int64_t>::max();
  r = fn("operator.getitem", {Value(y), Value(Slice{1, big, big})});
  CHECK(T(r).shape() == Shape{1, 4});
  r = fn("operator.getitem", {Value(y), Value(Slice{-big, -big, std::nullopt})});
  CHECK(T(r).shape() == Shape{0, 4});
  Value tup = Value(Tuple{{Value(y), Value(7), Value("s")}});
  CHECK(fn("operator.getitem", {tup, Value(1)}) == Value(7));
  CHECK(fn("operator.getitem", {tup, Value(-1)}) == Value("s"));
  CHECK(fn("operator.getitem", {tup, Value(Slice{1, std::nullopt, std::nullopt})}) == Value(Tuple{{Value(7), Value("s")}}));
  CHECK(fn("operator.getitem", {Value(List{{Value(1), Value(2), Value(3)}}), Value(Slice{std::nullopt, std::nullopt, -1})}) ==
        Value(List{{Value(3), Value(2), Value(1)}}));
  CHECK(fn("operator.getitem", {tup, Value(Slice{-big, big, -big})}) == Value(Tuple{}));
  CHECK(fn("operator.getitem", {tup, Value(Slice{big, -big, -big})}) == Value(Tuple{{Value("s")}}));
  CHECK(error_of([&] { (void)fn("operator.getitem", {tup, Value(3)}); }).find("tuple index 3 out of range") !=
        std::string::npos);
  CHECK(error_of([&] { (void)fn("operator.getitem", {Value(3), Value(0)}); }).find("not subscriptable") !=
        std::string::npos);
}

TEST_CASE("runtime: matmul, linear, addmm") {
  Tensor a = F({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = F({7, 8, 9, 10, 11, 12}, {3, 2});
  Value r = fn("operator.matmul", {Value(a), Value(b)});
  CHECK(T(r).shape() == Shape{2, 2});
  check_values(T(r), {58, 64, 139, 154});
  Tensor v3 = F({1, 1, 1}, {3});
  CHECK(T(fn("torch.matmul", {Value(a), Value(v3)})).shape() == Shape{2});
  check_values(T(fn("torch.matmul", {Value(a), Value(v3)})), {6, 15});
  check_values(T(meth("matmul", {Value(F({1, 1}, {2})), Value(a)})), {5, 7, 9});
  CHECK(T(fn("torch.matmul", {Value(v3), Value(v3)})).dim() == 0);
  CHECK(T(fn("torch.matmul", {Value(v3), Value(v3)})).item() == 3);
  // Batched with broadcasting: [2, 1, 2, 3] @ [4, 3, 2] -> [2, 4, 2, 2].
  Tensor ba = T(meth("view", {Value(F({1, 2, 3, 4, 5, 6, -1, -2, -3, -4, -5, -6}, {12})), Value(2), Value(1), Value(2), Value(3)}));
  std::vector<float> bv(24);
  for (std::size_t k = 0; k < bv.size(); ++k) bv[k] = static_cast<float>(k);
  Tensor bb = F(bv, {4, 3, 2});
  Tensor rb = T(fn("torch.matmul", {Value(ba), Value(bb)}));
  CHECK(rb.shape() == Shape{2, 4, 2, 2});
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j)
      for (int p = 0; p < 2; ++p)
        for (int q = 0; q < 2; ++q) {
          double s = 0;
          for (int k = 0; k < 3; ++k) s += ba.item_at(i * 6 + p * 3 + k) * bb.item_at(j * 6 + k * 2 + q);
          CHECK(rb.item_at(((i * 4 + j) * 2 + p) * 2 + q) == doctest::Approx(s));
        }
  // [3] @ [4, 3, 2] -> [4, 2]
  CHECK(T(fn("torch.matmul", {Value(v3), Value(bb)})).shape() == Shape{4, 2});
  CHECK(error_of([&] { (void)fn("torch.matmul", {Value(a), Value(a)}); })
            .find("matmul: shapes [2, 3] and [2, 3] cannot be multiplied") != std::string::npos);
  CHECK(error_of([&] { (void)fn("torch.matmul", {Value(a), Value(I({1, 2, 3}, {3}))}); }).find("same dtype") !=
        std::string::npos);
  CHECK(error_of([&] { (void)fn("torch.matmul", {Value(Tensor::scalar(1.0)), Value(a)}); }).find("at least 1D") !=
        std::string::npos);

  Tensor w = F({1, 0, 0, 0, 1, 0, 1, 1, 1, 2, 0, 0}, {4, 3});
  Tensor bias = F({0.5f, 0, 0, -1}, {4});
  r = fn("torch.nn.functional.linear", {Value(a), Value(w), Value(bias)});
  CHECK(T(r).shape() == Shape{2, 4});
  check_values(T(r), {1.5, 2, 6, 1, 4.5, 5, 15, 7});
  r = fn("torch.nn.functional.linear", {Value(F({1, 2, 3}, {3})), Value(w)});
  CHECK(T(r).shape() == Shape{4});
  CHECK(error_of([&] { (void)fn("torch.nn.functional.linear", {Value(b), Value(w)}); }).find("linear: input shape [3, 2]") !=
        std::string::npos);
  Tensor am = ops::addmm(F({1, 2}, {2}), a, b);
  check_values(am, {59, 66, 140, 156});
}

TEST_CASE("runtime: conv2d against a hand-computed case") {
  // 1x1x3x3 input, 1x1x2x2 kernel of ones: each output is the sum of a 2x2 window.
  Tensor x = F({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3});
  Tensor w = Tensor::full(Shape{1, 1, 2, 2}, 1.0);
  Tensor bias = F({0.5f}, {1});
  ops::Conv2dOptions o;
  Tensor y = ops::conv2d(x, w, &bias, o);
  CHECK(y.shape() == Shape{1, 1, 2, 2});
  check_values(y, {12.5, 16.5, 24.5, 28.5});
  // padding 1, stride 2: windows over the zero-padded 5x5 at (0,0), (0,2), (2,0), (2,2).
  o = ops::conv2d_options(Value(2), Value(1), Value(1), 1, 2, 2);
  y = ops::conv2d(x, w, nullptr, o);
  CHECK(y.shape() == Shape{1, 1, 2, 2});
  check_values(y, {1, 5, 11, 28});
  // dilation 2: corners of the 3x3.
  o = ops::conv2d_options(Value(1), Value(0), Value(2), 1, 2, 2);
  y = ops::conv2d(x, w, nullptr, o);
  CHECK(y.shape() == Shape{1, 1, 1, 1});
  check_values(y, {1 + 3 + 7 + 9});
  // groups=2 with two channels: each channel convolved by its own kernel.
  Tensor x2 = F({1, 2, 3, 4, 10, 20, 30, 40}, {1, 2, 2, 2});
  Tensor w2 = F({1, 0, 0, 0, 0, 0, 0, 1}, {2, 1, 2, 2});
  o = ops::conv2d_options(Value(1), Value(0), Value(1), 2, 2, 2);
  y = ops::conv2d(x2, w2, nullptr, o);
  check_values(y, {1, 40});
  // padding='same' keeps the size.
  o = ops::conv2d_options(Value(1), Value("same"), Value(1), 1, 2, 2);
  y = ops::conv2d(x, w, nullptr, o);
  CHECK(y.shape() == Shape{1, 1, 3, 3});
  check_values(y, {12, 16, 9, 24, 28, 15, 15, 17, 9});
  // Unbatched input.
  y = ops::conv2d(x.view(Shape{1, 3, 3}), w, nullptr, ops::Conv2dOptions{});
  CHECK(y.shape() == Shape{1, 2, 2});

  CHECK(error_of([&] { (void)ops::conv2d(F({1, 2, 3, 4, 5, 6}, {2, 3}), w, nullptr, ops::Conv2dOptions{}); }) ==
        "conv2d: expected a 4-D input [N, C, H, W], got shape [2, 3]");
  CHECK(error_of([&] { (void)ops::conv2d(x2, w, nullptr, ops::Conv2dOptions{}); }).find("channels") != std::string::npos);
  ops::Conv2dOptions huge;
  huge.padding_begin = huge.padding_end = {std::numeric_limits<std::int64_t>::max(), 0};
  CHECK(error_of([&] { (void)ops::conv2d(x, w, nullptr, huge); }).find("out of range") != std::string::npos);
  CHECK(error_of([&] { (void)ops::adaptive_avg_pool2d(x, {std::int64_t{1} << 40, 1}); }) != "");
  CHECK(error_of([&] { (void)Tensor::empty(Shape{std::int64_t{1} << 40, std::int64_t{1} << 40}); }).find("too large") !=
        std::string::npos);
  CHECK(error_of([&] { (void)ops::conv2d(x, Tensor::zeros(Shape{1, 1, 4, 4}), nullptr, ops::Conv2dOptions{}); })
            .find("smaller than the kernel") != std::string::npos);
}

TEST_CASE("runtime: batch norm (eval mode)") {
  Tensor x = F({1, 2, 3, 4, 5, 6, 7, 8}, {1, 2, 2, 2});
  Tensor w = F({2, 1}, {2}), b = F({0, 1}, {2});
  Tensor rm = F({1, 5}, {2}), rv = F({4, 1}, {2});
  Tensor y = ops::batch_norm(x, &w, &b, &rm, &rv, false, 0.0);
  check_values(y, {0, 1, 2, 3, 1, 2, 3, 4});
  auto bn = nn::BatchNorm2d(2, 0.0);
  bn->register_parameter("weight", w);
  bn->register_parameter("bias", b);
  bn->register_buffer("running_mean", rm);
  bn->register_buffer("running_var", rv);
  check_values(T((*bn)(x)), {0, 1, 2, 3, 1, 2, 3, 4});
  CHECK(error_of([&] { (void)(*bn)(F({1, 2}, {1, 2})); }) == "BatchNorm2d: expected 4D input (got 2D input)");
  CHECK(error_of([&] { (void)(*bn)(Tensor::zeros(Shape{1, 3, 2, 2})); }).find("num_features=2") != std::string::npos);
  // Without running stats: batch statistics.
  auto bn2 = nn::BatchNorm2d(2, 0.0, 0.1, false, false);
  Tensor z = T((*bn2)(x));
  check_values(z, {-1.3416407, -0.4472136, 0.4472136, 1.3416407, -1.3416407, -0.4472136, 0.4472136, 1.3416407}, 1e-5);
}

TEST_CASE("runtime: max pool with padding and ceil_mode") {
  std::vector<float> v(25);
  for (std::size_t k = 0; k < v.size(); ++k) v[k] = static_cast<float>(k);
  Tensor x = F(v, {1, 1, 5, 5});
  auto o = ops::pool2d_options(Value(2), Value(None{}), Value(0), Value(1), false, "max_pool2d");
  Tensor y = ops::max_pool2d(x, o);
  CHECK(y.shape() == Shape{1, 1, 2, 2});
  check_values(y, {6, 8, 16, 18});
  o.ceil_mode = true;
  y = ops::max_pool2d(x, o);
  CHECK(y.shape() == Shape{1, 1, 3, 3});
  check_values(y, {6, 8, 9, 16, 18, 19, 21, 23, 24});
  o = ops::pool2d_options(Value(3), Value(2), Value(1), Value(1), false, "max_pool2d");
  auto [vals, idx] = ops::max_pool2d_with_indices(x, o);
  CHECK(vals.shape() == Shape{1, 1, 3, 3});
  check_values(vals, {6, 8, 9, 16, 18, 19, 21, 23, 24});
  check_values(idx, {6, 8, 9, 16, 18, 19, 21, 23, 24});
  CHECK(idx.dtype() == DType::Int64);
  // Negative values with padding: padding never wins.
  Tensor neg = F({-5, -4, -3, -2}, {1, 1, 2, 2});
  o = ops::pool2d_options(Value(2), Value(1), Value(1), Value(1), false, "max_pool2d");
  check_values(ops::max_pool2d(neg, o), {-5, -4, -4, -3, -2, -2, -3, -2, -2});
  // ceil_mode drops a window that would start in the right padding.
  o = ops::pool2d_options(Value(2), Value(2), Value(1), Value(1), true, "max_pool2d");
  CHECK(ops::max_pool2d(Tensor::zeros(Shape{1, 1, 4, 4}), o).shape() == Shape{1, 1, 3, 3});
  o = ops::pool2d_options(Value(3), Value(3), Value(0), Value(1), true, "max_pool2d");
  CHECK(ops::max_pool2d(Tensor::zeros(Shape{1, 1, 7, 7}), o).shape() == Shape{1, 1, 3, 3});

  o = ops::pool2d_options(Value(2), Value(2), Value(2), Value(1), false, "max_pool2d");
  CHECK(error_of([&] { (void)ops::max_pool2d(x, o); }).find("pad should be at most half") != std::string::npos);
  o = ops::pool2d_options(Value(3), Value(1), Value(0), Value(1), false, "max_pool2d");
  CHECK(error_of([&] { (void)ops::max_pool2d(Tensor::zeros(Shape{1, 1, 2, 2}), o); }).find("Output size is too small") !=
        std::string::npos);

  auto mp = nn::MaxPool2d(3, 2, 1);
  check_values(T((*mp)(x)), {6, 8, 9, 16, 18, 19, 21, 23, 24});
}

TEST_CASE("runtime: adaptive average pool with non-divisible sizes") {
  std::vector<float> v(35);
  for (std::size_t k = 0; k < v.size(); ++k) v[k] = static_cast<float>(k);
  Tensor x = F(v, {1, 1, 5, 7});
  Tensor y = ops::adaptive_avg_pool2d(x, {3, 3});
  CHECK(y.shape() == Shape{1, 1, 3, 3});
  // rows [0,2) [1,4) [3,5); cols [0,3) [2,5) [4,7)
  auto avg = [&](int h0, int h1, int w0, int w1) {
    double s = 0;
    for (int h = h0; h < h1; ++h)
      for (int w = w0; w < w1; ++w) s += h * 7 + w;
    return s / ((h1 - h0) * (w1 - w0));
  };
  const int hr[3][2] = {{0, 2}, {1, 4}, {3, 5}};
  const int wr[3][2] = {{0, 3}, {2, 5}, {4, 7}};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) CHECK(y.item_at(i * 3 + j) == doctest::Approx(avg(hr[i][0], hr[i][1], wr[j][0], wr[j][1])));
  y = ops::adaptive_avg_pool2d(x, {1, std::nullopt});
  CHECK(y.shape() == Shape{1, 1, 1, 7});
  auto ap = nn::AdaptiveAvgPool2d(Tuple{{Value(1), Value(1)}});
  CHECK(T((*ap)(x)).item() == doctest::Approx(17));
  auto ap2 = nn::AdaptiveAvgPool2d(2);
  CHECK(T((*ap2)(x)).shape() == Shape{1, 1, 2, 2});
  CHECK(error_of([&] { (void)ops::adaptive_avg_pool2d(F({1, 2}, {2}), {1, 1}); }).find("adaptive_avg_pool2d") !=
        std::string::npos);
}

TEST_CASE("runtime: Linear, ReLU, Sequential modules") {
  auto lin = nn::Linear(3, 2);
  CHECK(lin->find_attr("in_features")->to_int() == 3);
  CHECK(lin->parameter("weight").shape() == Shape{2, 3});
  lin->register_parameter("weight", F({1, 0, 0, 0, 1, 1}, {2, 3}));
  lin->register_parameter("bias", F({1, -1}, {2}));
  Tensor x = F({1, 2, 3}, {1, 3});
  check_values(T((*lin)(x)), {2, 4});
  CHECK(error_of([&] { (void)lin->forward(std::vector<Value>{Value(x), Value(x)}); }).find("expects 1 input") !=
        std::string::npos);
  auto seq = nn::Sequential({lin, nn::ReLU(), nn::Linear(2, 1, false)});
  CHECK_FALSE(seq->is_leaf());
  CHECK(lin->is_leaf());
  seq->find_child("2")->register_parameter("weight", F({1, -1}, {1, 2}));
  check_values(T((*seq)(x)), {-2});
  CHECK(seq->find_child("1")->kind() == "ReLU");
  CHECK(OpRegistry::global().module_kind("Sequential")->container);
}

TEST_CASE("runtime: extra_repr strings match PyTorch") {
  CHECK(nn::Linear(4, 8)->extra_repr() == "in_features=4, out_features=8, bias=True");
  CHECK(nn::Linear(4, 8, false)->extra_repr() == "in_features=4, out_features=8, bias=False");
  CHECK(nn::ReLU(true)->extra_repr() == "inplace=True");
  CHECK(nn::ReLU()->extra_repr() == "");
  CHECK(nn::Conv2d(3, 8, 3, 1, 1, 1, 1, false)->extra_repr() ==
        "3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False");
  CHECK(nn::Conv2d(3, 8, 3)->extra_repr() == "3, 8, kernel_size=(3, 3), stride=(1, 1)");
  CHECK(nn::Conv2d(4, 8, Tuple{{Value(3), Value(5)}}, 2, 0, 2, 2)->extra_repr() ==
        "4, 8, kernel_size=(3, 5), stride=(2, 2), dilation=(2, 2), groups=2");
  CHECK(nn::Conv2d(3, 8, 3, 1, "same")->extra_repr() == "3, 8, kernel_size=(3, 3), stride=(1, 1), padding=same");
  CHECK(nn::BatchNorm2d(8)->extra_repr() == "8, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True");
  CHECK(nn::MaxPool2d(3, 2, 1)->extra_repr() == "kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=False");
  CHECK(nn::MaxPool2d(2)->extra_repr() == "kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False");
  CHECK(nn::AdaptiveAvgPool2d(Tuple{{Value(1), Value(1)}})->extra_repr() == "output_size=(1, 1)");
  CHECK(nn::AdaptiveAvgPool2d(Tuple{{Value(None{}), Value(7)}})->extra_repr() == "output_size=(None, 7)");
  CHECK(nn::Sequential({})->extra_repr() == "");

  auto conv = nn::Conv2d(3, 8, 3, 1, 1, 1, 1, false);
  CHECK(conv->find_attr("padding_mode")->str() == "zeros");
  CHECK(*conv->find_attr("kernel_size") == Value(Tuple{{Value(3), Value(3)}}));
  CHECK(conv->parameter("weight").shape() == Shape{8, 3, 3, 3});
  auto bn = nn::BatchNorm2d(8);
  CHECK(bn->buffer("num_batches_tracked").dtype() == DType::Int64);
  CHECK(bn->buffer("num_batches_tracked").dim() == 0);
  CHECK(bn->buffer("running_var").item_at(0) == 1.0);
  CHECK(nn::MaxPool2d(3)->find_attr("return_indices")->to_bool() == false);
}

TEST_CASE("runtime: validate checks attributes and parameter shapes") {
  const OpRegistry& reg = OpRegistry::global();
  for (auto m : {nn::Linear(4, 8), nn::ReLU(), nn::Conv2d(3, 8, 3), nn::BatchNorm2d(8), nn::MaxPool2d(3, 2, 1),
                 nn::AdaptiveAvgPool2d(1), nn::Sequential({nn::ReLU()})}) {
    const ModuleKind* k = reg.module_kind(m->kind());
    REQUIRE(k != nullptr);
    CHECK_NOTHROW(k->validate(*m));
  }
  auto lin = nn::Linear(4, 8);
  lin->register_parameter("weight", Tensor::zeros(Shape{8, 5}));
  std::string msg;
  try {
    reg.module_kind("Linear")->validate(*lin);
  } catch (const FormatError& e) {
    msg = e.what();
  }
  CHECK(msg.find("Linear") != std::string::npos);
  CHECK(msg.find("weight") != std::string::npos);
  auto conv = nn::Conv2d(3, 8, 3);
  conv->set_attr("stride", Value("x"));
  CHECK_THROWS_AS(reg.module_kind("Conv2d")->validate(*conv), FormatError);
  auto bn = nn::BatchNorm2d(8);
  bn->register_buffer("num_batches_tracked", Tensor::scalar(0.0));
  CHECK_THROWS_AS(reg.module_kind("BatchNorm2d")->validate(*bn), FormatError);
  auto relu = nn::ReLU();
  relu->set_attr("inplace", Value(3));
  CHECK_THROWS_AS(reg.module_kind("ReLU")->validate(*relu), FormatError);
  CHECK_THROWS_AS(nn::Conv2d(3, 8, 3, 1, 0, 1, 2), Error);
  CHECK_THROWS_AS(nn::Conv2d(3, 8, 3, 2, "same"), Error);
}

TEST_CASE("runtime: every listed target is registered") {
  const OpRegistry& reg = OpRegistry::global();
  for (const char* f : {"torch.sin", "torch.cos", "torch.exp", "torch.tanh", "torch.sigmoid", "torch.relu", "torch.neg",
                        "torch.abs", "torch.clamp", "torch.flatten", "torch.matmul", "torch.sum", "torch.mean",
                        "torch.reshape", "torch.permute", "torch.transpose", "torch.add", "torch.sub", "torch.mul",
                        "torch.div", "torch.t", "torch.nn.functional.relu", "torch.nn.functional.linear", "operator.add",
                        "operator.sub", "operator.mul", "operator.truediv", "operator.neg", "operator.getitem",
                        "operator.matmul"}) {
    INFO(f);
    CHECK(reg.function(f) != nullptr);
  }
  for (const char* m : {"sin", "cos", "exp", "tanh", "sigmoid", "relu", "neg", "abs", "clamp", "flatten", "matmul", "sum",
                        "mean", "reshape", "view", "permute", "transpose", "add", "sub", "mul", "div", "t", "contiguous",
                        "size"}) {
    INFO(m);
    CHECK(reg.method(m) != nullptr);
  }
  for (const char* k : {"Linear", "ReLU", "Conv2d", "BatchNorm2d", "MaxPool2d", "AdaptiveAvgPool2d", "Sequential"}) {
    INFO(k);
    CHECK(reg.module_kind(k) != nullptr);
  }
  Tensor x = F({1, 2}, {2});
  check_values(T(fn("torch.add", {Value(x), Value(x)}, Dict{{{"alpha", Value(2)}}})), {3, 6});
  check_values(T(meth("sub", {Value(x), Value(1)})), {0, 1});
  check_values(T(fn("operator.neg", {Value(x)})), {-1, -2});
  CHECK(fn("operator.neg", {Value(2)}) == Value(-2));
}

TEST_CASE("runtime: reference mlp matches PyTorch") {
  // code.py: fc1 -> relu -> fc2
  auto fc1 = nn::Linear(4, 8), relu = nn::ReLU(), fc2 = nn::Linear(8, 3);
  load_leaf(*fc1, "mlp", "fc1");
  load_leaf(*fc2, "mlp", "fc2");
  Tensor x = load_bin(ref_dir("mlp") / "input.bin", Shape{2, 4});
  Tensor want = load_bin(ref_dir("mlp") / "output.bin", Shape{2, 3});
  const OpRegistry& reg = OpRegistry::global();
  auto run = [&](const Module& m, Value v) {
    std::vector<Value> args{std::move(v)};
    return reg.module_kind(m.kind())->forward(m, std::span<const Value>(args));
  };
  Value h = run(*fc1, Value(x));
  h = run(*relu, h);
  h = run(*fc2, h);
  check_reference(T(h), want);
}

TEST_CASE("runtime: reference small_convnet matches PyTorch") {
  auto conv1 = nn::Conv2d(3, 8, 3, 1, 1, 1, 1, false);
  auto bn1 = nn::BatchNorm2d(8);
  auto relu = nn::ReLU(true);
  auto maxpool = nn::MaxPool2d(3, 2, 1);
  auto conv2 = nn::Conv2d(8, 8, 3, 1, 1, 1, 1, false);
  auto bn2 = nn::BatchNorm2d(8);
  auto avgpool = nn::AdaptiveAvgPool2d(Tuple{{Value(1), Value(1)}});
  auto fc = nn::Linear(8, 10);
  load_leaf(*conv1, "small_convnet", "conv1");
  load_leaf(*bn1, "small_convnet", "bn1");
  load_leaf(*conv2, "small_convnet", "conv2");
  load_leaf(*bn2, "small_convnet", "bn2");
  load_leaf(*fc, "small_convnet", "fc");
  for (auto* m : {&conv1, &bn1, &relu, &maxpool, &conv2, &bn2, &avgpool, &fc}) {
    CHECK_NOTHROW(OpRegistry::global().module_kind((*m)->kind())->validate(**m));
  }
  Tensor x = load_bin(ref_dir("small_convnet") / "input.bin", Shape{2, 3, 16, 16});
  Tensor want = load_bin(ref_dir("small_convnet") / "output.bin", Shape{2, 10});

  // The order of code.py.
  Value c1 = (*conv1)(x);
  Value b1 = (*bn1)(c1);
  Value r = (*relu)(b1);
  Value mp = (*maxpool)(r);
  CHECK(T(mp).shape() == Shape{2, 8, 8, 8});
  Value c2 = (*conv2)(mp);
  Value b2 = (*bn2)(c2);
  Value add = fn("operator.add", {b2, mp});
  Value r1 = (*relu)(add);
  Value ap = (*avgpool)(r1);
  Value fl = fn("torch.flatten", {ap, Value(1)});
  Value out = (*fc)(fl);
  check_reference(T(out), want);

  // The make_fx form computes the same thing with aten-level pieces: mean over [-1, -2]
  // with keepdim, then addmm with the transposed weight.
  Value mean = fn("torch.mean", {r1, Value(List{{Value(-1), Value(-2)}}), Value(true)});
  Tensor flat = ops::reshape(T(mean), std::vector<std::int64_t>{2, 8});
  Tensor out2 = ops::addmm(fc->parameter("bias"), flat, ops::t(fc->parameter("weight")));
  check_reference(out2, want);
}

TEST_CASE("runtime: reference seed models") {
  Tensor x = load_bin(ref_dir("seed_sin") / "input.bin", Shape{2, 3});
  Tensor y = T(meth("sin", {Value(x)}));
  check_reference(y, load_bin(ref_dir("seed_sin") / "output.bin", Shape{2, 3}));
  Tensor x2 = load_bin(ref_dir("seed_relu_add") / "input.bin", Shape{2, 3});
  Tensor y2 = T(fn("torch.relu", {fn("operator.add", {Value(x2), Value(3.0)})}));
  check_reference(y2, load_bin(ref_dir("seed_relu_add") / "output.bin", Shape{2, 3}));
}

TEST_CASE("runtime: functional nn forms") {
  Tensor x = F({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3});
  Tensor w = Tensor::full(Shape{1, 1, 2, 2}, 1.0);
  check_values(T(fn("torch.nn.functional.conv2d", {Value(x), Value(w)})), {12, 16, 24, 28});
  check_values(T(fn("torch.nn.functional.conv2d", {Value(x), Value(w)}, Dict{{{"padding", Value(1)}, {"stride", Value(2)}}})),
               {1, 5, 11, 28});
  check_values(T(fn("torch.nn.functional.max_pool2d", {Value(x), Value(2)})), {5});
  Value mp = fn("torch.nn.functional.max_pool2d", {Value(x), Value(2), Value(1)}, Dict{{{"return_indices", Value(true)}}});
  check_values(T(fn("operator.getitem", {mp, Value(1)})), {4, 5, 7, 8});
  check_values(T(fn("torch.nn.functional.adaptive_avg_pool2d", {Value(x), Value(1)})), {5});
  Tensor rm = F({1}, {1}), rv = F({4}, {1});
  check_values(T(fn("torch.nn.functional.batch_norm", {Value(x), Value(rm), Value(rv)}, Dict{{{"eps", Value(0.0)}}})),
               {0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4});
}
