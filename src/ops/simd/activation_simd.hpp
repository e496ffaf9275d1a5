// SiLU and sigmoid over float32 arrays, with the widest instruction set this CPU has, chosen
// at run time: the build has no target flags (one binary runs on any x86-64), and each
// instruction set's body lives in a translation unit of its own (activation_isa.hpp).
//
// Why fxpack has these at all: oneDNN 2.6's swish and logistic (primitives and convolution
// post-ops alike) run one vector per loop step through a ~35-instruction chain that spills
// the source to the stack and divides: on 1.2M floats, one thread (AVX-512), swish 0.72 ms,
// logistic 0.46, relu 0.10; these bodies 0.30 for either (docs/design.md, "SiLU and sigmoid").
//
// Accuracy: relative error at most 1.6e-7 against float64 for |x| <= 87 (test_simd measures
// it for every body, the scalar one included). Limits as PyTorch's float formula
// x / (1 + exp(-x)) gives them: exp(-x) overflows to inf below x = -88.72, so silu(-100) = -0,
// silu(-inf) = nan, sigmoid(-inf) = 0; silu(+inf) = +inf, sigmoid(+inf) = 1; NaN stays NaN.
// silu(0) = 0 exactly, so the zero padding of a blocked layout stays zero (sigmoid(0) = 0.5
// would not). Internal to src/.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fxpack::ops::simd {

enum class Isa : std::uint8_t { Scalar, Avx2, Avx512 };
enum class Activation : std::uint8_t { Silu, Sigmoid };

const char* isa_name(Isa isa);
// Whether this CPU (and its operating system) runs `isa`'s body: AVX2 needs AVX2 and FMA,
// AVX-512 needs AVX-512F. Scalar always.
bool isa_supported(Isa isa);
// The one apply() uses: the widest supported, decided once per process, no wider than
// oneDNN's cap ONEDNN_MAX_CPU_ISA says (AVX2: AVX2; SSE41 and other older ones: scalar).
Isa best_isa();

// y[i] = f(x[i]) for i < n (y may equal x), on the calling thread's OpenMP thread count
// (fxpack::num_threads() inside inference plans) when n is large enough to share.
void apply(Activation f, const float* x, float* y, std::size_t n);
// One thread, body `isa` (which must be supported: the tests force each path this way).
void apply_with(Isa isa, Activation f, const float* x, float* y, std::size_t n);

}  // namespace fxpack::ops::simd
