// SiLU and sigmoid with AVX-512F (compiled with -mavx512f; see activation_isa.hpp for why
// this unit includes nothing else). exp(-x) as 2^n * e^r: n = round(-x / ln 2), r = -x - n ln 2
// in two parts (Cody-Waite), e^r by Cephes' expf polynomial on |r| <= ln 2 / 2, 2^n by
// vscalefps; then x / (1 + exp(-x)) and 1 / (1 + exp(-x)).
#include <immintrin.h>

#include "activation_isa.hpp"

namespace fxpack::ops::simd::isa {
namespace {

// 1 + exp(-x), overflowing to +inf as PyTorch's float exp does (x < -88.72: vscalefps gives
// inf), so silu(-inf) = nan, silu(-100) = -0, sigmoid(-100) = 0, as there. x is clamped to 88
// from above: exp(-inf) would make r inf - inf; e^-88 already leaves 1 + e at 1.
// The clamp keeps a NaN (vminps returns its second operand when one is NaN).
__m512 one_plus_exp_neg(__m512 x) {
  x = _mm512_min_ps(_mm512_set1_ps(88.f), x);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(-1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmsub_ps(n, _mm512_set1_ps(0.693359375f), x);  // -x - n ln2_hi
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);    // - n ln2_lo
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
  const __m512 e = _mm512_scalef_ps(_mm512_add_ps(p, _mm512_set1_ps(1.f)), n);
  return _mm512_add_ps(e, _mm512_set1_ps(1.f));
}

__m512 silu16(__m512 x) { return _mm512_div_ps(x, one_plus_exp_neg(x)); }
__m512 sigmoid16(__m512 x) { return _mm512_div_ps(_mm512_set1_ps(1.f), one_plus_exp_neg(x)); }

// Two vectors per iteration (their chains overlap), then one, then a masked tail.
template <__m512 (*F)(__m512)>
void apply(const float* x, float* y, std::size_t n) {
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 a = F(_mm512_loadu_ps(x + i)), b = F(_mm512_loadu_ps(x + i + 16));
    _mm512_storeu_ps(y + i, a);
    _mm512_storeu_ps(y + i + 16, b);
  }
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, F(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, F(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

}  // namespace

void silu_avx512(const float* x, float* y, std::size_t n) { apply<silu16>(x, y, n); }
void sigmoid_avx512(const float* x, float* y, std::size_t n) { apply<sigmoid16>(x, y, n); }

}  // namespace fxpack::ops::simd::isa
