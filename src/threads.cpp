#include "fxpack/threads.hpp"

#include <sched.h>

#include <atomic>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "fxpack/errors.hpp"

namespace fxpack {

namespace {

// 0: not yet resolved from the environment.
std::atomic<int> g_threads{0};
constexpr int kMaxThreads = 1024;

int from_environment() {
  const char* env = std::getenv("FXPACK_NUM_THREADS");
  if (!env || !*env) return available_cpus();
  int n = 0;
  const char* end = env + std::strlen(env);
  auto [p, ec] = std::from_chars(env, end, n);
  if (ec != std::errc() || p != end || n < 1 || n > kMaxThreads) {
    throw ValueError("FXPACK_NUM_THREADS='" + std::string(env, std::min<std::size_t>(std::strlen(env), 64)) +
                "' is not a thread count (an integer from 1 to " + std::to_string(kMaxThreads) + ")");
  }
  return n;
}

}  // namespace

int available_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
  const int n = CPU_COUNT(&set);
  return n > 0 ? n : 1;
}

void set_num_threads(int n) {
  if (n < 1 || n > kMaxThreads) {
    throw ValueError("set_num_threads: " + std::to_string(n) + " is not a thread count (1 to " +
                std::to_string(kMaxThreads) + ")");
  }
  g_threads.store(n, std::memory_order_relaxed);
}

int num_threads() {
  int n = g_threads.load(std::memory_order_relaxed);
  if (n > 0) return n;
  n = from_environment();
  int expected = 0;
  // A concurrent set_num_threads wins over the environment.
  if (!g_threads.compare_exchange_strong(expected, n, std::memory_order_relaxed)) return expected;
  return n;
}

}  // namespace fxpack
