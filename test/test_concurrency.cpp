// Concurrency: lazy recompiles under many threads, concurrent loads from one PackageImporter,
// concurrent calls of one module, graphs built and dropped on many threads. CI runs this
// suite under ThreadSanitizer too (.ci/run).
#include <doctest/doctest.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <random>
#include <thread>

#include "fxpack/fxpack.hpp"
#include "child_process.hpp"
#include "kept_memory.hpp"
#include "reference_models.hpp"

using namespace fxpack;
using fxpack::testing::in_child;
using fxpack::testing::random_tensor;
using fxpack::testing::reference_cases;
using fxpack::testing::reference_input;
using fxpack::testing::trace_reference;

namespace {

// A long chain whose rebuild takes a while, with `first` as its first op.
std::shared_ptr<GraphModule> long_chain(const std::string& first, int n) {
  auto g = std::make_shared<Graph>();
  Node* x = g->placeholder("x");
  Node* y = g->call_function(first, {x});
  for (int i = 0; i < n; ++i) y = g->call_method(i % 2 ? "sin" : "cos", {y});
  g->output(y);
  return make_graph_module(std::make_shared<Module>(), g, {.graph_module_cls = GraphModuleClass::Lazy});
}

}  // namespace

TEST_CASE("lazy recompile: N threads calling a dirty module cause exactly one real recompile") {
  auto lazy = use_lazy_graph_module(true);
  constexpr int kThreads = 8;
  for (int round = 0; round < 20; ++round) {
    auto gm = symbolic_trace([](const Value& x) { return (x.sin() + 1.0).relu(); });
    Tensor x = random_tensor({2, 3}, static_cast<unsigned>(round));
    Tensor expected = (Value(x).sin() + 1.0).relu().tensor();
    std::barrier start(kThreads);
    std::atomic<int> correct{0};
    std::vector<std::thread> threads;
    auto fwd = gm->forward_fn();
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&] {
        start.arrive_and_wait();
        if (allclose(fwd(x).tensor(), expected)) correct.fetch_add(1);
      });
    for (auto& t : threads) t.join();
    CHECK(gm->recompile_count() == 1);
    CHECK(correct.load() == kThreads);
  }
}

TEST_CASE("lazy recompile: a recompile() that arrives during a rebuild is not lost") {
  // Thread A rebuilds a module whose first op has no kernel yet (the plan is built with that
  // error). While it does, thread B registers the kernel and asks for a recompile. The module
  // must stay dirty, so that the next call rebuilds and runs. When the request lands before
  // the rebuild looks the op up, the first rebuild already sees the kernel: also fine. Only a
  // lost request leaves the module clean with a plan that lacks the kernel.
  constexpr int kNodes = 8000;
  auto probe = long_chain("torch.relu", kNodes);
  const auto t0 = std::chrono::steady_clock::now();
  (void)probe->code();
  const auto rebuild_us = static_cast<int>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count());
  std::mt19937 gen(7);
  int mid_rebuild = 0;
  for (int round = 0; round < 12; ++round) {
    const std::string target = "test.registered_late_" + std::to_string(round);
    auto gm = long_chain(target, kNodes);
    std::atomic<bool> started{false};
    std::thread a([&] {
      started.store(true);
      (void)gm->code();  // the rebuild
    });
    while (!started.load()) std::this_thread::yield();
    // Busy-wait rather than sleep: sleeping overshoots by more than a rebuild takes.
    const auto at = std::chrono::steady_clock::now() +
                    std::chrono::microseconds(std::uniform_int_distribution<int>(0, rebuild_us)(gen));
    while (std::chrono::steady_clock::now() < at) {
    }
    OpRegistry::global().add_function(target + "(Tensor input) -> Tensor",
                                      [](std::span<const Value> args) -> Value { return args[0]; });
    const auto before = gm->recompile_count();
    gm->recompile();
    a.join();
    if (gm->recompile_count() == before + 1) ++mid_rebuild;  // the rebuild ended after the request
    INFO("round ", round);
    CHECK_NOTHROW((*gm)(Tensor::full({2}, 0.5)));
  }
  MESSAGE(mid_rebuild << " of 12 requests arrived while the rebuild (" << rebuild_us << " us) was running");
}

TEST_CASE("lazy recompile: the hook runs outside the module's lock, so it may force_recompile()") {
  // Before, the hook ran under the lock and this deadlocked; run it in a child with a timeout.
  const std::string outcome = in_child(
      [] {
        auto lazy = use_lazy_graph_module(true);
        auto gm = symbolic_trace([](const Value& x) { return x.sin(); });
        std::atomic<int> calls{0};
        GraphModule::set_recompile_hook([&](const GraphModule& m) {
          if (calls.fetch_add(1) == 0) const_cast<GraphModule&>(m).force_recompile();
        });
        (void)(*gm)(Tensor::full({2}, 1.0));
        GraphModule::set_recompile_hook(nullptr);
        return calls.load() == 2 && gm->recompile_count() == 2 && !gm->needs_recompile() ? 0 : 1;
      },
      20);
  CHECK(outcome == "exit 0");
}

TEST_CASE("package: concurrent loads from one PackageImporter share storages and agree") {
  auto gm = trace_reference("small_convnet");
  std::vector<std::byte> bytes;
  {
    PackageExporter pe;
    pe.save_pickle("model", "model.pkl", *gm);
    pe.save_pickle("copy", "model.pkl", *gm);
    bytes = pe.close();
  }
  PackageImporter importer(bytes);
  const Tensor x = reference_input(reference_cases()[3]);
  const Tensor expected = (*gm)(x).tensor();
  constexpr int kThreads = 8;
  std::vector<std::shared_ptr<GraphModule>> loaded(kThreads);
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      loaded[t] = importer.load_pickle(t % 2 ? "copy" : "model", "model.pkl");
    });
  for (auto& t : threads) t.join();
  for (int t = 0; t < kThreads; ++t) {
    REQUIRE(loaded[t]);
    // One Storage per record, however many threads asked for it at once.
    CHECK(loaded[t]->get_tensor("conv1.weight").storage() == loaded[0]->get_tensor("conv1.weight").storage());
    CHECK(allclose((*loaded[t])(x).tensor(), expected, 0, 0));
  }
}

TEST_CASE("graph: threads building and dropping large graphs share the kept chunks safely") {
  // Each graph takes its chunks from the process's caches and gives them back when it dies
  // (detail/graph_chunk.hpp) while another thread empties the caches: a block handed to two
  // graphs at once would show as another graph's arguments, a lost one as a crash or a leak.
  constexpr int kThreads = 4, kRounds = 20, kNodes = 3000;
  std::atomic<int> intact{0};
  std::atomic<bool> building{true};
  std::barrier start(kThreads + 1);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int round = 0; round < kRounds; ++round) {
        Graph g;
        g.reserve(kNodes);
        Node* y = g.placeholder("x");
        for (int i = 0; i < kNodes; ++i) y = g.call_function("torch.add", {Value(y), Value(t * kNodes + i)});
        g.output(y);
        bool same = true;
        int i = 0;
        for (const Node* n : g)
          if (n->op() == Op::CallFunction) same &= n->args()[1].to_int() == t * kNodes + i++;
        if (same && i == kNodes) intact.fetch_add(1);
      }
    });
  start.arrive_and_wait();
  std::thread releaser([&] {
    while (building.load()) detail::release_kept_memory();
  });
  for (auto& t : threads) t.join();
  building.store(false);
  releaser.join();
  CHECK(intact.load() == kThreads * kRounds);
}

TEST_CASE("module: concurrent calls of one loaded module give the single-threaded result") {
  auto gm = trace_reference("small_convnet");
  PackageExporter pe;
  pe.save_pickle("model", "model.pkl", *gm);
  PackageImporter importer(pe.close());
  auto loaded = importer.load_pickle("model", "model.pkl");  // dirty: the first calls race to rebuild
  constexpr int kThreads = 8;
  std::vector<Tensor> inputs, expected;
  for (int t = 0; t < kThreads; ++t) {
    inputs.push_back(random_tensor({2, 3, 16, 16}, static_cast<unsigned>(100 + t)));
    expected.push_back((*gm)(inputs.back()).tensor());
  }
  std::barrier start(kThreads);
  std::atomic<int> correct{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      bool ok = true;
      for (int i = 0; i < 5; ++i) ok = ok && allclose((*loaded)(inputs[t]).tensor(), expected[t], 0, 0);
      if (ok) correct.fetch_add(1);
    });
  for (auto& t : threads) t.join();
  CHECK(correct.load() == kThreads);
  CHECK(loaded->recompile_count() == 1);
}

TEST_CASE("module: calls, plan runs and code() during repeated recompiles read whole snapshots") {
  // Each recompile replaces the snapshot, and the module reuses the replaced one's memory
  // when nothing else holds it (graph_module.hpp). A call, a plan or a code() in flight holds
  // its snapshot, so its plan and source must not be reused under it: ordered before the
  // reuse, as TSan checks here; a reuse too early is a use after free under ASan and a wrong
  // result here (this case crashes with the sole-owner checks removed).
  auto eager = use_lazy_graph_module(false);
  auto g = std::make_shared<Graph>();
  Node* x = g->placeholder("x");
  Node* cat = g->call_function("torch.cat", {List{{Value(g->call_method("sin", {x})), Value(g->call_method("cos", {x}))}}});
  g->output(g->call_function("torch.relu", {g->call_function("operator.mul", {cat, 2.0})}));
  auto nested = make_graph_module(std::make_shared<Module>(), g);  // a cat of a list: a nested operand
  auto loaded = [] {
    PackageExporter pe;
    pe.save_pickle("model", "model.pkl", *trace_reference("small_convnet"));
    return PackageImporter(pe.close()).load_pickle("model", "model.pkl");
  }();
  const Tensor row = random_tensor({2, 3}, 5), image = random_tensor({2, 3, 16, 16}, 6);
  const Tensor row_out = (*nested)(row).tensor(), image_out = (*loaded)(image).tensor();
  const std::string code = nested->code();
  std::atomic<bool> stop{false};
  std::atomic<int> wrong{0}, calls{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&, t] {
      while (!stop.load()) {
        bool ok = true;
        if (t == 0) ok = allclose((*nested)(row).tensor(), row_out, 0, 0);
        if (t == 1) ok = allclose(nested->plan()->run(std::vector<Value>{row}).tensor(), row_out, 0, 0) && nested->code() == code;
        if (t == 2) ok = allclose((*loaded)(image).tensor(), image_out, 0, 0);
        if (!ok) wrong.fetch_add(1);
        calls.fetch_add(1);
      }
    });
  for (int r = 0; r < 300 || calls.load() < 100; ++r) {
    nested->force_recompile();
    if (r % 10 == 0) loaded->force_recompile();
  }
  stop.store(true);
  for (auto& t : threads) t.join();
  CHECK(wrong.load() == 0);
}
