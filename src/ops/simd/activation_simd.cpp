// Run-time choice of the SiLU/sigmoid body and its split across OpenMP threads (this unit has
// no target flags; the bodies are in activation_avx2.cpp and activation_avx512.cpp).
#include "activation_simd.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string_view>

#include "activation_isa.hpp"

namespace fxpack::ops::simd {

namespace {

// PyTorch's scalar forms (aten's silu and sigmoid kernels in float).
void silu_scalar(const float* x, float* y, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] = x[i] / (1.f + std::exp(-x[i]));
}
void sigmoid_scalar(const float* x, float* y, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] = 1.f / (1.f + std::exp(-x[i]));
}

using Body = void (*)(const float*, float*, std::size_t);

Body body(Isa isa, Activation f) {
  const bool silu = f == Activation::Silu;
  switch (isa) {
    case Isa::Avx512: return silu ? isa::silu_avx512 : isa::sigmoid_avx512;
    case Isa::Avx2: return silu ? isa::silu_avx2 : isa::sigmoid_avx2;
    case Isa::Scalar: break;
  }
  return silu ? silu_scalar : sigmoid_scalar;
}

// Below this many elements per thread a share costs more to hand out than to compute.
constexpr std::size_t kMinPerThread = 16384;
// Shares start on 64-byte boundaries of the array (16 floats), so threads write separate lines.
constexpr std::size_t kLine = 16;

// libgomp's entry for a parallel region (what gcc emits for `#pragma omp parallel`), called
// directly rather than through -fopenmp: with clang that flag targets LLVM's libomp, a second
// OpenMP runtime beside the libgomp that oneDNN and fxpack's thread counts use.
extern "C" void GOMP_parallel(void (*fn)(void*), void* data, unsigned num_threads, unsigned flags);

struct Shares {
  Body run;
  const float* x;
  float* y;
  std::size_t n, per, count;
};

// One thread's shares: its number, then every team size on (the team may be smaller than asked).
void run_shares(void* data) {
  const auto& s = *static_cast<const Shares*>(data);
  const auto team = static_cast<std::size_t>(omp_get_num_threads());
  for (auto i = static_cast<std::size_t>(omp_get_thread_num()); i < s.count; i += team) {
    const std::size_t begin = std::min(s.n, i * s.per), end = std::min(s.n, begin + s.per);
    if (begin < end) s.run(s.x + begin, s.y + begin, end - begin);
  }
}

// ThreadSanitizer cannot see libgomp's barriers (test/tsan.supp): one thread there.
#if defined(__SANITIZE_THREAD__)
constexpr bool kThreads = false;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr bool kThreads = false;
#else
constexpr bool kThreads = true;
#endif
#else
constexpr bool kThreads = true;
#endif

// oneDNN's own cap (ONEDNN_MAX_CPU_ISA, or DNNL_MAX_CPU_ISA), so that a process running
// oneDNN as on an older CPU runs these bodies as there too: AVX2* leaves AVX2, SSE41 and AVX
// the scalar one. oneDNN 2.6 reads the value case-sensitively and ignores one it does not know
// (ALL, AVX512_*, or a misspelling like "avx2" cap nothing), and so does this.
Isa isa_cap() {
  const char* v = std::getenv("ONEDNN_MAX_CPU_ISA");
  if (!v) v = std::getenv("DNNL_MAX_CPU_ISA");
  if (!v) return Isa::Avx512;
  const std::string_view cap(v);
  if (cap == "SSE41" || cap == "AVX") return Isa::Scalar;
  if (cap.starts_with("AVX2")) return Isa::Avx2;
  return Isa::Avx512;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    case Isa::Scalar: break;
  }
  return "scalar";
}

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return __builtin_cpu_supports("avx512f");
    case Isa::Avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::Scalar: break;
  }
  return true;
}

Isa best_isa() {
  static const Isa best = [] {
    const Isa cap = isa_cap();
    for (Isa isa : {Isa::Avx512, Isa::Avx2})
      if (isa <= cap && isa_supported(isa)) return isa;
    return Isa::Scalar;
  }();
  return best;
}

void apply_with(Isa isa, Activation f, const float* x, float* y, std::size_t n) { body(isa, f)(x, y, n); }

void apply(Activation f, const float* x, float* y, std::size_t n) {
  const Body run = body(best_isa(), f);
  const auto threads = static_cast<std::size_t>(kThreads ? std::max(1, omp_get_max_threads()) : 1);
  const std::size_t shares = std::min(threads, n / kMinPerThread);
  if (shares <= 1) return run(x, y, n);
  const std::size_t per = (n / shares + kLine - 1) / kLine * kLine;
  Shares s{run, x, y, n, per, shares};
  GOMP_parallel(run_shares, &s, static_cast<unsigned>(shares), 0);
}

}  // namespace fxpack::ops::simd
