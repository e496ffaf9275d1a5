// Timing for the benchmark programs: the median of repeated runs after one warm-up, in wall
// time (median_ms) or in the process's CPU time, user + system (median_cpu_ms: steadier on
// a shared, loaded machine for single-threaded work).
#pragma once

#include <ctime>

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

namespace fxpack::bench {

inline double median_ms(int reps, const std::function<void()>& fn) {
  fn();  // warm-up
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    auto a = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// The process's CPU time so far (user + system), in milliseconds.
inline double cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
}

inline double median_cpu_ms(int reps, const std::function<void()>& fn) {
  fn();  // warm-up
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const double a = cpu_ms();
    fn();
    t.push_back(cpu_ms() - a);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace fxpack::bench
