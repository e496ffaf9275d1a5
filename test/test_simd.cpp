// The run-time-dispatched SiLU and sigmoid bodies (src/ops/simd/): every instruction set's
// body this CPU has, forced one at a time, against the scalar body (PyTorch's formula in
// float) and against float64; the tails of arrays of every length below three vectors,
// in place; the special values; and the split across threads.
#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <string_view>
#include <limits>
#include <vector>

#include "ops/simd/activation_simd.hpp"
#include "skip.hpp"

using namespace fxpack::ops::simd;
using fxpack::testing::skip_unless;

namespace {

const float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::numeric_limits<float>::quiet_NaN();

double reference(Activation f, double x) {
  const double s = 1.0 / (1.0 + std::exp(-x));
  return f == Activation::Silu ? x * s : s;
}

// Every float32 step of 1/1024 over [-90, 90], and the values either side of the clamp.
std::vector<float> sweep() {
  std::vector<float> v;
  for (int i = -90 * 1024; i <= 90 * 1024; ++i) v.push_back(static_cast<float>(i) / 1024.f);
  for (float x : {87.9999f, 88.0001f, -87.9999f, -88.0001f, 1e-30f, -1e-30f, 1e-40f, -1e-40f}) v.push_back(x);
  return v;
}

void check_body(Isa isa) {
  const std::vector<float> x = sweep();
  for (Activation f : {Activation::Silu, Activation::Sigmoid}) {
    const std::string name = f == Activation::Silu ? "silu" : "sigmoid";
    CAPTURE(name);
    std::vector<float> got(x.size()), scalar(x.size());
    apply_with(isa, f, x.data(), got.data(), x.size());
    apply_with(Isa::Scalar, f, x.data(), scalar.data(), x.size());
    double max_rel = 0, max_rel_scalar = 0;
    int bad = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      // Against the scalar body, with the tolerances every comparison with PyTorch uses.
      if (!(std::abs(got[i] - scalar[i]) <= 1e-5 + 1e-4 * std::abs(scalar[i]))) ++bad;
      if (std::abs(x[i]) > 87.f || std::abs(x[i]) < 1e-20f) continue;  // relative error where the result is normal
      const double want = reference(f, x[i]);
      max_rel = std::max(max_rel, std::abs(got[i] - want) / std::abs(want));
      max_rel_scalar = std::max(max_rel_scalar, std::abs(scalar[i] - want) / std::abs(want));
    }
    CHECK(bad == 0);
    // Measured on AMD EPYC (AVX-512): 1.4e-7 for every body, the scalar one included.
    const std::string body = isa_name(isa);
    MESSAGE(body << " max relative error vs float64 (|x| <= 87): " << max_rel << " (scalar body: " << max_rel_scalar << ")");
    CHECK(max_rel < 1e-6);
  }
}

// The limits PyTorch's float formula gives, body by body: the scalar body is that formula.
void check_specials(Isa isa) {
  const std::vector<float> x{0.f, -0.f, kInf, -kInf, kNaN, 100.f, -100.f, 88.f, -88.f};
  std::vector<float> silu(x.size()), sig(x.size()), silu_scalar(x.size()), sig_scalar(x.size());
  apply_with(isa, Activation::Silu, x.data(), silu.data(), x.size());
  apply_with(isa, Activation::Sigmoid, x.data(), sig.data(), x.size());
  apply_with(Isa::Scalar, Activation::Silu, x.data(), silu_scalar.data(), x.size());
  apply_with(Isa::Scalar, Activation::Sigmoid, x.data(), sig_scalar.data(), x.size());
  CHECK(silu[0] == 0.f);  // exactly: a blocked layout's zero padding stays zero
  CHECK(silu[1] == 0.f);
  CHECK(silu[2] == kInf);
  CHECK(std::isnan(silu[3]));  // -inf / (1 + inf)
  CHECK(std::isnan(silu[4]));
  CHECK(silu[5] == 100.f);
  CHECK(silu[6] == 0.f);  // -100 / inf
  CHECK(sig[0] == 0.5f);
  CHECK(sig[2] == 1.f);
  CHECK(sig[3] == 0.f);
  CHECK(std::isnan(sig[4]));
  CHECK(sig[6] == 0.f);
  for (std::size_t i = 0; i < x.size(); ++i) {
    CAPTURE(x[i]);
    CHECK(std::isnan(silu[i]) == std::isnan(silu_scalar[i]));
    CHECK(std::isnan(sig[i]) == std::isnan(sig_scalar[i]));
    if (std::isnan(silu[i])) continue;
    CHECK((silu[i] == silu_scalar[i] || std::abs(silu[i] - silu_scalar[i]) <= 1e-5 + 1e-4 * std::abs(silu_scalar[i])));
    CHECK(std::abs(sig[i] - sig_scalar[i]) <= 1e-5 + 1e-4 * std::abs(sig_scalar[i]));
  }
}

// Lengths 0 to 47 (tails of every size below three AVX-512 vectors), in place and not;
// nothing past the end is written.
void check_tails(Isa isa) {
  for (std::size_t n = 0; n < 48; ++n) {
    CAPTURE(n);
    std::vector<float> x(n + 16, 7.f), y(n + 16, -1.f);
    for (std::size_t i = 0; i < n; ++i) x[i] = static_cast<float>(i) * 0.37f - 6.f;
    std::vector<float> want(n);
    apply_with(Isa::Scalar, Activation::Silu, x.data(), want.data(), n);
    apply_with(isa, Activation::Silu, x.data(), y.data(), n);
    for (std::size_t i = 0; i < n; ++i) CHECK(std::abs(y[i] - want[i]) <= 1e-5 + 1e-4 * std::abs(want[i]));
    for (std::size_t i = n; i < y.size(); ++i) CHECK(y[i] == -1.f);
    apply_with(isa, Activation::Silu, x.data(), x.data(), n);
    for (std::size_t i = 0; i < n; ++i) CHECK(x[i] == y[i]);
    for (std::size_t i = n; i < x.size(); ++i) CHECK(x[i] == 7.f);
  }
}

void check_isa(Isa isa) {
  REQUIRE(isa_supported(isa));
  check_body(isa);
  check_specials(isa);
  check_tails(isa);
}

}  // namespace

TEST_CASE("simd: the scalar body") { check_isa(Isa::Scalar); }

TEST_CASE("simd: the AVX2 body" * skip_unless(isa_supported(Isa::Avx2), "this CPU has no AVX2 and FMA")) {
  check_isa(Isa::Avx2);
}

TEST_CASE("simd: the AVX-512 body" * skip_unless(isa_supported(Isa::Avx512), "this CPU has no AVX-512F")) {
  check_isa(Isa::Avx512);
}

TEST_CASE("simd: apply() takes the widest body this CPU has, as oneDNN's cap allows") {
  // oneDNN 2.6's reading of the cap: exact names, an unknown one (e.g. "avx2") caps nothing.
  const char* env = std::getenv("ONEDNN_MAX_CPU_ISA");
  const std::string_view cap = env ? env : "";
  const bool below_avx2 = cap == "SSE41" || cap == "AVX", at_avx2 = cap.starts_with("AVX2");
  const Isa want = !below_avx2 && !at_avx2 && isa_supported(Isa::Avx512) ? Isa::Avx512
                   : !below_avx2 && isa_supported(Isa::Avx2)             ? Isa::Avx2
                                                                         : Isa::Scalar;
  CHECK(best_isa() == want);
  const std::string body = isa_name(best_isa());
  MESSAGE("this CPU runs the " << body << " body");
}

TEST_CASE("simd: apply() split across threads writes what one thread does, bit for bit") {
  const int saved = omp_get_max_threads();
  // Lengths that split unevenly, and one too short to split.
  for (std::size_t n : {std::size_t{1} << 20, std::size_t{1000003}, std::size_t{5000}}) {
    CAPTURE(n);
    std::vector<float> x(n), one(n), split(n, kNaN);
    for (std::size_t i = 0; i < n; ++i) x[i] = static_cast<float>(static_cast<int>(i % 4001) - 2000) / 100.f;
    apply_with(best_isa(), Activation::Silu, x.data(), one.data(), n);
    for (int threads : {2, 3}) {
      omp_set_num_threads(threads);
      apply(Activation::Silu, x.data(), split.data(), n);
      CHECK(std::equal(one.begin(), one.end(), split.begin()));
    }
  }
  omp_set_num_threads(saved);
}
