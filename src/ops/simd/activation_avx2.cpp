// SiLU and sigmoid with AVX2 and FMA (compiled with -mavx2 -mfma; see activation_isa.hpp for
// why this unit includes nothing else). The same method as activation_avx512.cpp; 2^n is
// built in the exponent bits, so x is clamped to [-88, 88] (n + 127 in [0, 254]; n = -127
// gives 0, not 2^-127, which changes 1 + exp(-88) not at all), and where PyTorch's float exp
// overflows (x < -88.72) 1 + exp(-x) is made +inf, as there.
#include <immintrin.h>

#include "activation_isa.hpp"

namespace fxpack::ops::simd::isa {
namespace {

// 1 + exp(-x) (a NaN kept: vminps/vmaxps return their second operand when one is NaN).
__m256 one_plus_exp_neg(__m256 x) {
  const __m256 overflows = _mm256_cmp_ps(x, _mm256_set1_ps(-88.7228394f), _CMP_LT_OQ);
  x = _mm256_max_ps(_mm256_set1_ps(-88.f), x);
  x = _mm256_min_ps(_mm256_set1_ps(88.f), x);
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(-1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmsub_ps(n, _mm256_set1_ps(0.693359375f), x);  // -x - n ln2_hi
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);    // - n ln2_lo
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  const __m256 e = _mm256_mul_ps(_mm256_add_ps(p, _mm256_set1_ps(1.f)), _mm256_castsi256_ps(bits));
  return _mm256_blendv_ps(_mm256_add_ps(e, _mm256_set1_ps(1.f)), _mm256_set1_ps(__builtin_inff()), overflows);
}

__m256 silu8(__m256 x) { return _mm256_div_ps(x, one_plus_exp_neg(x)); }
__m256 sigmoid8(__m256 x) { return _mm256_div_ps(_mm256_set1_ps(1.f), one_plus_exp_neg(x)); }

// Two vectors per iteration (their chains overlap), then one, then a masked tail.
template <__m256 (*F)(__m256)>
void apply(const float* x, float* y, std::size_t n) {
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 a = F(_mm256_loadu_ps(x + i)), b = F(_mm256_loadu_ps(x + i + 8));
    _mm256_storeu_ps(y + i, a);
    _mm256_storeu_ps(y + i + 8, b);
  }
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, F(_mm256_loadu_ps(x + i)));
  if (i < n) {
    // Lanes below n - i load and store; the others read as 0 and are not written.
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n - i)), lane);
    _mm256_maskstore_ps(y + i, m, F(_mm256_maskload_ps(x + i, m)));
  }
}

}  // namespace

void silu_avx2(const float* x, float* y, std::size_t n) { apply<silu8>(x, y, n); }
void sigmoid_avx2(const float* x, float* y, std::size_t n) { apply<sigmoid8>(x, y, n); }

}  // namespace fxpack::ops::simd::isa
