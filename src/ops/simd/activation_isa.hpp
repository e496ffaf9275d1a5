// The per-instruction-set bodies behind activation_simd.hpp, one translation unit per
// instruction set, each compiled with its own -m flags (src/meson.build). Internal to
// src/ops/simd.
//
// Why plain functions and nothing else: a translation unit built with -mavx512f that
// instantiates a template or an inline function (std::min, a helper in a shared header)
// emits an AVX-512 copy of it, and the linker keeps one copy of each such function for the
// whole program — possibly that one, which then faults on a CPU without AVX-512. So these
// units include only <immintrin.h> (whose intrinsics are always inlined, never emitted on
// their own) and this header, define their helpers in anonymous namespaces, and export only
// the functions below, whose names carry the instruction set.
#pragma once

#include <cstddef>

namespace fxpack::ops::simd::isa {

// y[i] = x[i] * sigmoid(x[i]) and y[i] = sigmoid(x[i]) for i < n; y may equal x.
void silu_avx2(const float* x, float* y, std::size_t n);
void sigmoid_avx2(const float* x, float* y, std::size_t n);
void silu_avx512(const float* x, float* y, std::size_t n);
void sigmoid_avx512(const float* x, float* y, std::size_t n);

}  // namespace fxpack::ops::simd::isa
