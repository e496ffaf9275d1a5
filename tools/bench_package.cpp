// Package benchmark.
//
// 1. Chain graphs (examples/chain.hpp) for N = 100 ... max_n: PackageExporter save and
//    PackageImporter load per node, and archive bytes, next to torch.package's figures on the
//    same kind of machine (pytorch-anchors/RESULTS.md: save_pickle 32.31 µs/node,
//    load 45.65 µs/node and 92,312 bytes at N = 1000).
//    Load is timed as a user loads, from open to the loaded module, and both freed again:
//    "load file" opens the archive written to a file (PackageImporter(path): mapped, the
//    pickle read in place), "load buffer" an archive the caller holds in memory and hands
//    over (PackageImporter(std::move(bytes)); the copy each repetition needs to have bytes to
//    hand over is made before its timing starts, since a user holding the bytes makes none).
// 2. A model with 1 GiB of weights written to a file, then loaded in fresh processes:
//    open + load_pickle with memory-mapped tensors (with and without the CRC pass), with
//    copied tensors, and reading the whole file, with the RSS growth of each.
//
//   bench_package [max_n] [--min N] [--big DIR]     (defaults: 100000, from N = 100, no 1 GiB part)
//
// Part 1 times are CPU time (bench_timing.hpp), medians of repeated runs.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <unistd.h>

#include "fxpack/fxpack.hpp"
#include "bench_timing.hpp"
#include "fxpack/package.hpp"
#include "../examples/chain.hpp"

using namespace fxpack;
using bench::median_cpu_ms;
using Clock = std::chrono::steady_clock;

namespace {

long rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}

struct Anchor {
  int n;
  double save, load;
  long bytes;
};
constexpr Anchor kTorch[] = {{100, 39.12, 54.53, 10456}, {1000, 32.31, 45.65, 92312}, {10000, 66.10, 205.83, 964696}};

// The median CPU time of loading from a buffer handed over: each repetition's copy of
// `bytes` is made before its timing starts (as bench::median_cpu_ms, one warm-up).
double median_buffer_load_ms(int reps, const std::vector<std::byte>& bytes) {
  std::vector<double> t;
  for (int r = 0; r <= reps; ++r) {
    std::vector<std::byte> held = bytes;
    const double a = bench::cpu_ms();
    PackageImporter pi(std::move(held));
    pi.load_pickle("model", "model.pkl");
    if (r > 0) t.push_back(bench::cpu_ms() - a);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void chains(int min_n, int max_n) {
  std::printf("| N | save µs/node | load file µs/node | load buffer µs/node | bytes | B/node | torch save | torch load | torch bytes | save x | load x | bytes %% |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  const std::filesystem::path file =
      std::filesystem::temp_directory_path() / ("bench_package_" + std::to_string(::getpid()) + ".fxpkg");
  for (int n = min_n; n <= max_n; n *= 10) {
    int reps = n <= 1000 ? 11 : n <= 100000 ? 5 : 3;
    auto lazy = use_lazy_graph_module(true);
    auto gm = symbolic_trace(std::make_shared<examples::Chain>(n));
    std::vector<std::byte> bytes;
    double save = median_cpu_ms(reps, [&] {
      PackageExporter pe;
      pe.save_pickle("model", "model.pkl", *gm);
      bytes = pe.close();
    });
    std::ofstream(file, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    double load = median_cpu_ms(reps, [&] {
      PackageImporter pi(file);
      pi.load_pickle("model", "model.pkl");
    });
    std::filesystem::remove(file);
    double buffer_load = median_buffer_load_ms(reps, bytes);
    double su = save * 1000 / n, lu = load * 1000 / n, bu = buffer_load * 1000 / n;
    const Anchor* a = nullptr;
    for (const auto& k : kTorch)
      if (k.n == n) a = &k;
    if (a)
      std::printf("| %d | %.4f | %.4f | %.4f | %zu | %.1f | %.2f | %.2f | %ld | %.0fx | %.0fx | %.0f%% |\n", n, su, lu, bu,
                  bytes.size(), double(bytes.size()) / n, a->save, a->load, a->bytes, a->save / su, a->load / lu,
                  100.0 * double(bytes.size()) / double(a->bytes));
    else
      std::printf("| %d | %.4f | %.4f | %.4f | %zu | %.1f | - | - | - | - | - | - |\n", n, su, lu, bu, bytes.size(),
                  double(bytes.size()) / n);
  }
}

// A GiB of weights: 16 Linear(4096, 4096) layers (64 MiB of float32 each).
class Big : public Module {
 public:
  Big() : Module("Big") {
    for (int i = 0; i < 16; ++i) {
      auto l = nn::Linear(4096, 4096, false);
      l->register_parameter("weight", Tensor::full({4096, 4096}, 0.001 * (i + 1)));
      register_module("l" + std::to_string(i), l);
      layers.push_back(l);
    }
  }
  Value forward(std::span<const Value> in) override {
    Value x = in[0];
    for (auto& l : layers) x = (*l)(x);
    return x;
  }
  std::vector<std::shared_ptr<Module>> layers;
};

int load_big(const char* mode, const char* path) {
  long before = rss_kib();
  auto a = Clock::now();
  std::string m = mode;
  if (m == "read") {
    std::ifstream in(path, std::ios::binary);
    std::vector<char> all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - a).count();
    std::printf("| read the whole file | %.1f | %ld |\n", ms, (rss_kib() - before) / 1024);
    return all.empty();
  }
  ImporterOptions o;
  o.mode = m == "copy" ? LoadMode::Copy : LoadMode::Map;
  o.verify_storage_crc = m == "mmap+crc" || m == "copy";
  PackageImporter pi{std::filesystem::path(path), o};
  double open_ms = std::chrono::duration<double, std::milli>(Clock::now() - a).count();
  auto gm = pi.load_pickle("model", "model.pkl");
  double ms = std::chrono::duration<double, std::milli>(Clock::now() - a).count();
  long grown = (rss_kib() - before) / 1024;
  // touch one layer: only its pages come in
  Tensor x = Tensor::full({1, 4096}, 1.0);
  (*gm->get_submodule("l0"))(x);
  long touched = (rss_kib() - before) / 1024;
  std::printf("| open (%s) | %.1f | |\n| open + load_pickle (%s) | %.1f | %ld (after running one layer: %ld) |\n",
              mode, open_ms, mode, ms, grown, touched);
  return 0;
}

void big(const std::string& self, const std::string& dir) {
  std::string path = dir + "/big.fxpkg";
  {
    auto model = std::make_shared<Big>();
    auto gm = symbolic_trace(model);
    auto a = Clock::now();
    PackageExporter pe{std::filesystem::path(path)};
    pe.save_pickle("model", "model.pkl", *gm);
    pe.close();
    std::printf("\nsaved 1 GiB of weights in %.0f ms\n\n",
                std::chrono::duration<double, std::milli>(Clock::now() - a).count());
  }
  std::printf("| 1 GiB package, fresh process | ms | RSS growth MiB |\n|---|---|---|\n");
  std::fflush(stdout);
  for (const char* mode : {"mmap", "mmap+crc", "copy", "read"}) {
    std::string cmd = "'" + self + "' --load-big " + mode + " '" + path + "'";
    if (std::system(cmd.c_str()) != 0) std::printf("| %s | failed | |\n", mode);
    std::fflush(stdout);
  }
  std::remove(path.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc == 4 && std::strcmp(argv[1], "--load-big") == 0) return load_big(argv[2], argv[3]);
    int max_n = 100000, min_n = 100;
    std::string big_dir;
    for (int i = 1; i < argc; ++i) {
      if (std::strcmp(argv[i], "--big") == 0 && i + 1 < argc) big_dir = argv[++i];
      else if (std::strcmp(argv[i], "--min") == 0 && i + 1 < argc) min_n = std::atoi(argv[++i]);
      else max_n = std::atoi(argv[i]);
    }
    chains(min_n, max_n);
    if (!big_dir.empty()) big(argv[0], big_dir);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_package: %s\n", e.what());
    return 1;
  }
}
