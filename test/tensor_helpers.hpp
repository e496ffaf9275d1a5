// Small tensors and checks shared by the op test suites: literal tensors (F, I, B), a Value's
// tensor (T), its elements as doubles (values), an element-wise comparison that treats NaN as
// equal to NaN (check_values), and the message of the fxpack::Error a call throws (error_of).
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "fxpack/errors.hpp"
#include "fxpack/tensor.hpp"
#include "fxpack/value.hpp"

namespace fxpack::test {

inline Tensor F(std::vector<float> v, Shape s) { return Tensor::from_vector(std::span<const float>(v), s); }
inline Tensor I(std::vector<std::int64_t> v, Shape s) {
  return Tensor::from_vector(std::span<const std::int64_t>(v), s);
}
inline Tensor B(std::vector<std::uint8_t> v, Shape s) {
  return Tensor::from_bytes(std::as_bytes(std::span<const std::uint8_t>(v)), s, DType::Bool);
}
inline const Tensor& T(const Value& v) { return v.tensor(); }

inline std::vector<double> values(const Tensor& t) { return t.to_doubles(); }
inline std::vector<double> values(const Value& v) { return v.tensor().to_doubles(); }

// Every element within a relative tol of expect's; a NaN or infinity expected must be met exactly.
inline void check_values(const Tensor& t, const std::vector<double>& expect, double tol = 1e-6) {
  REQUIRE(t.numel() == static_cast<std::int64_t>(expect.size()));
  for (std::size_t i = 0; i < expect.size(); ++i) {
    INFO("element " << i);
    const double got = t.item_at(static_cast<std::int64_t>(i));
    if (std::isnan(expect[i]) || std::isinf(expect[i]))
      CHECK((std::isnan(expect[i]) ? std::isnan(got) : got == expect[i]));
    else
      CHECK(got == doctest::Approx(expect[i]).epsilon(tol));
  }
}

// Runs f and returns the message of the fxpack::Error it throws ("" if none).
template <class Fn>
std::string error_of(Fn&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace fxpack::test
