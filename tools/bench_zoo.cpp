// fxpack's side of the zoo benchmark (tools/bench_zoo.py drives it and prints the table next to
// PyTorch measured in the same run). For one torch.package archive of an fx GraphModule and
// one input:
//   load    PackageImporter + load_pickle (median of --loads fresh importers, after a warm-up;
//           each module is freed after its load is timed, untimed — as on PyTorch's side,
//           where a GraphModule is in a reference cycle and the collector frees it)
//   load_cpu the same loads' median process CPU time (user + sys; robust on a shared machine)
//   load_faults the same loads' median count of minor page faults (memory the allocator gave
//           back to the kernel and a load touched again, or fresh mappings it first touched)
//   first   the first call of a freshly loaded module (real recompile + plan + run)
//   first_cpu its process CPU time (user + sys)
//   steady  the median of --calls further calls
// Prints one JSON object: {"load_ms": ..., "load_cpu_ms": ..., "load_faults": ..., "first_ms": ...,
// "first_cpu_ms": ..., "steady_ms": ...}; with --calls 0 only the load figures (no call is made:
// for measuring many processes' loads without paying each one's first call).
//
//   bench_zoo PACKAGE INPUT.npy [--loads N] [--calls N]      (defaults 5 and 10)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <cstdlib>
#include <sys/resource.h>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "bench_timing.hpp"
#include "fxpack/fxpack.hpp"
#include "./fxpack/npy.hpp"

using namespace fxpack;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point a) { return std::chrono::duration<double, std::milli>(Clock::now() - a).count(); }

double cpu_ms() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
}

double minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_minflt);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::shared_ptr<GraphModule> load(const std::string& path) {
  PackageImporter importer(path);
  return importer.load_pickle("model", "model.pkl");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_zoo PACKAGE INPUT.npy [--loads N] [--calls N]\n");
    return 2;
  }
  int loads = 5, calls = 10;
  for (int i = 3; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--loads") loads = std::atoi(argv[i + 1]);
    else if (std::string(argv[i]) == "--calls") calls = std::atoi(argv[i + 1]);
  }
  try {
    std::ifstream f(argv[2], std::ios::binary);
    std::ostringstream bytes;
    bytes << f.rdbuf();
    const Value x = cli::parse_npy(bytes.str(), argv[2]);
    (void)load(argv[1]);  // warm-up
    std::vector<double> wall, cpu, faults;
    for (int i = 0; i < std::max(loads, 1); ++i) {
      const double c = cpu_ms(), f = minor_faults();
      const auto a = Clock::now();
      auto loaded = load(argv[1]);
      wall.push_back(ms_since(a));
      cpu.push_back(cpu_ms() - c);
      faults.push_back(minor_faults() - f);
    }
    const double load_ms = median(wall), load_cpu_ms = median(cpu), load_faults = median(faults);
    if (calls <= 0) {
      std::printf("{\"load_ms\": %.3f, \"load_cpu_ms\": %.3f, \"load_faults\": %.0f}\n", load_ms, load_cpu_ms,
                  load_faults);
      return 0;
    }
    auto gm = load(argv[1]);
    const double c = cpu_ms();
    auto a = Clock::now();
    (*gm)(x);
    const double first_ms = ms_since(a), first_cpu_ms = cpu_ms() - c;
    const double steady_ms = bench::median_ms(calls, [&] { (*gm)(x); });
    std::printf("{\"load_ms\": %.3f, \"load_cpu_ms\": %.3f, \"load_faults\": %.0f, \"first_ms\": %.3f, "
                "\"first_cpu_ms\": %.3f, \"steady_ms\": %.3f}\n",
                load_ms, load_cpu_ms, load_faults, first_ms, first_cpu_ms, steady_ms);
  } catch (const std::exception& e) {
    std::string message;
    for (char c : std::string(e.what()).substr(0, 200))
      message += c == '"' || c == '\\' ? '\'' : static_cast<unsigned char>(c) < 0x20 ? ' ' : c;
    std::printf("{\"error\": \"%s\"}\n", message.c_str());
    return 1;
  }
  return 0;
}
