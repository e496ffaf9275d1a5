// Pickle benchmark: dumps/loads time per node and bytes per node for chain graphs of N ops
// cycling x.sin(), x.cos(), torch.relu(x), x + 1.0, x * 2.0 (as pytorch-anchors/bench.py),
// N = 100 ... 1,000,000, next to PyTorch 1.13's pickle numbers from pytorch-anchors/RESULTS.md.
//
//   bench_pickle [max_n] [--min N] [--format NAME]       (build with -O2)
//
// N runs from --min (default 100) up to max_n (default 1,000,000) in steps of 10; --format
// measures one format only (tools/bench_serialize.py uses both). Times are CPU time
// (bench_timing.hpp), medians of repeated runs.
//
// "dumps" stores the source hash: repeated dumps of an unchanged module reuse the hash
// (GraphModule::source_hash), so this is the cost of saving a module whose source is known;
// "first dumps" is one dumps of a fresh, never compiled module, which generates the source
// once; "dumps -hash" stores no hash (DumpOptions::store_source_hash = false). "loads" uses the default LoadOptions (the source
// hash is checked by the first recompile, not here); "loads -verify" turns the check off
// (SourceHashCheck::Off).
// "graph floor" re-creates the same nodes with Graph::create_node under their names: the
// part of every load that is Graph construction, not pickle decoding.
#include <algorithm>
#include <chrono>
#include <functional>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unordered_map>
#include <vector>

#include "fxpack/fxpack.hpp"
#include "bench_timing.hpp"
#include "fxpack/pickle.hpp"

using namespace fxpack;
namespace pk = fxpack::pickle;

namespace {

std::shared_ptr<GraphModule> chain(std::int64_t n) {
  auto g = std::make_shared<Graph>();
  Node* x = g->placeholder("x");
  for (std::int64_t i = 0; i < n; ++i) {
    switch (i % 5) {
      case 0: x = g->call_method("sin", {x}); break;
      case 1: x = g->call_method("cos", {x}); break;
      case 2: x = g->call_function("torch.relu", {x}); break;
      case 3: x = g->call_function("operator.add", {x, 1.0}); break;
      default: x = g->call_function("operator.mul", {x, 2.0}); break;
    }
  }
  g->output(x);
  return make_graph_module(std::make_shared<Module>(), g,
                           {.class_name = "Chain", .graph_module_cls = GraphModuleClass::Lazy});
}

double median_us(int reps, const std::function<void()>& f) { return bench::median_cpu_ms(reps, f) * 1000.0; }

}  // namespace

int main(int argc, char** argv) {
  std::int64_t max_n = 1000000, min_n = 100;
  int only_format = -1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--min" && i + 1 < argc) {
      min_n = std::atoll(argv[++i]);
    } else if (a == "--format" && i + 1 < argc) {
      const std::string name = argv[++i];
      for (int f = 0; f < pk::kPickleFormatCount; ++f)
        if (pk::format_name(static_cast<pk::PickleFormat>(f)) == name) only_format = f;
      if (only_format < 0) {
        std::fprintf(stderr, "bench_pickle: unknown format '%s'\n", name.c_str());
        return 2;
      }
    } else {
      max_n = std::atoll(argv[i]);
    }
  }
  std::printf("PyTorch 1.13 (pytorch-anchors/RESULTS.md): pickle.dumps 15.01 us/node, pickle.loads 46.59 us/node, "
              "45.8 bytes/node (N=1000)\n\n");
  std::printf("| format | N | dumps us/node | first dumps us/node | dumps -hash us/node | loads us/node | loads -verify us/node | bytes/node | graph floor us/node |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  pk::LoadOptions verify, fast;
  fast.source_hash_check = pk::SourceHashCheck::Off;
  for (std::int64_t n = min_n; n <= max_n; n *= 10) {
    auto gm = chain(n);
    int reps = n <= 10000 ? 7 : n <= 100000 ? 3 : 1;
    // What any loader pays whatever the format: re-creating the nodes under their stored
    // names in a fresh Graph (and freeing it).
    double floor_us = median_us(reps, [&] {
      auto g = std::make_shared<Graph>();
      std::unordered_map<const Node*, Node*> map;
      map.reserve(static_cast<std::size_t>(n + 2));
      for (const Node* src : gm->graph()) {
        std::vector<Value> args;
        for (const Value& a : src->args()) args.push_back(a.is_node() ? Value(map.at(a.node())) : a);
        map.emplace(src, g->create_node(src->op(), src->target(), std::move(args), src->kwargs(), src->name()));
      }
    });
    for (int f = 0; f < pk::kPickleFormatCount; ++f) {
      if (only_format >= 0 && f != only_format) continue;
      auto format = static_cast<pk::PickleFormat>(f);
      if (n >= 1000000 && (format == pk::PickleFormat::BoostXml || format == pk::PickleFormat::BoostText)) continue;
      std::string bytes;
      double d = median_us(reps, [&] { bytes = pk::dumps(*gm, format); });
      std::string nohash;
      double first = 0;
      {
        auto fresh = chain(n);
        const double a = bench::cpu_ms();
        volatile auto size = pk::dumps(*fresh, format).size();
        (void)size;
        first = (bench::cpu_ms() - a) * 1000.0;
      }
      double dn = median_us(reps, [&] { nohash = pk::dumps(*gm, pk::DumpOptions{.format = format, .store_source_hash = false}); });
      double l = median_us(reps, [&] {
        auto m = pk::loads(bytes, verify);
        if (m->graph().size() != static_cast<std::size_t>(n + 2)) std::abort();
      });
      double ln = median_us(reps, [&] { auto m = pk::loads(nohash, fast); });
      double dn_node = static_cast<double>(n);
      std::printf("| %s | %lld | %.4f | %.4f | %.4f | %.4f | %.4f | %.1f | %.4f |\n", std::string(pk::format_name(format)).c_str(),
                  static_cast<long long>(n), d / dn_node, first / dn_node, dn / dn_node, l / dn_node, ln / dn_node,
                  static_cast<double>(bytes.size()) / dn_node, floor_us / dn_node);
      std::fflush(stdout);
    }
  }
  return 0;
}
