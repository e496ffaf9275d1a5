// Inference benchmark: real models loaded from torch.package archives, next to PyTorch eager
// and ONNX Runtime measured in the same run on the same input.
//
//   bench_inference [--models DIR] [--package FILE] [--threads 1,2] [--iters N] [--rounds R]
//                   [--ort DIR] [--python PATH] [--omp-wait-policy POLICY] [--no-anchors] [MODEL ...]
//
// DIR holds one folder per model with package.pt (fx GraphModule saved by torch.package),
// model.onnx, input.npy and output.npy, as pytorch-anchors/inference/make_models.py writes
// them (default MODELs: every folder in DIR). Each fxpack measurement runs in a fresh
// process (this program with --child): load time (PackageImporter + load_pickle), first
// call (which specialises the inference plan; wall and CPU time), steady-state median
// latency, CPU time per steady call (user + system of every thread: steadier than wall time
// on a shared machine), operator-new calls per steady call, peak RSS, and the output checked
// against PyTorch's (rtol 1e-4, atol 1e-5); a second table breaks the memory down (see "How
// memory is measured" below). PyTorch eager runs torch_eager.py with PATH (default
// /usr/bin/python3); ONNX Runtime runs onnxruntime.js with node, finding onnxruntime-node in
// DIR/node_modules (--ort, or the environment variable FXPACK_ORT_DIR); a missing anchor is
// reported as such.
// A model only a newer PyTorch can load (vit_b_16: only PyTorch 2.x traces it) carries
// torch_eager.txt, torch_eager.py's lines as run where the model was made ("median_ms M threads
// T torch V"): its PyTorch column shows that recorded time with the version, e.g.
// "412.30 (2.6, recorded)", and is not measured again (nor with this machine's PyTorch, which
// is not the one the model was made for: a thread count the file lacks shows "—").
// The three take turns, R rounds (default 3), and each keeps its best median: on a shared
// machine another process's burst then slows one round, not one engine. fxpack and PyTorch
// both run on libgomp, whose spinning workers stall when other processes take the cores:
// --omp-wait-policy passive sets OMP_WAIT_POLICY for both (ONNX Runtime has its own pool).
#include <malloc.h>
#include <sys/resource.h>
#include <dlfcn.h>
#include <execinfo.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <new>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "../fxpack/npy.hpp"
#include "fxpack/fxpack.hpp"

using namespace fxpack;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// ---- allocation counting ---------------------------------------------------------------
//
// malloc and friends are interposed for the whole process (operator new, oneDNN, libgomp and
// fxpack's tensors all end in them). During a counted call each allocation is attributed by
// its call stack: to oneDNN when a frame lies in libdnnl, else to the rest (fxpack). At all
// times the bytes of the blocks alive (malloc_usable_size) are summed: the heap a phase left
// allocated, apart from what the allocator keeps free.

// Sanitizer runtimes define malloc themselves: under them nothing is counted (the table
// shows 0).
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define FXPACK_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define FXPACK_SANITIZED 1
#endif

#ifndef FXPACK_SANITIZED
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);
}
#endif

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0}, g_dnnl_allocations{0};
std::atomic<long> g_live_bytes{0};  // usable bytes of the heap blocks alive now
}  // namespace

#ifndef FXPACK_SANITIZED
namespace {
thread_local bool t_inside = false;

void note_live(void* p) {
  if (p) g_live_bytes.fetch_add(static_cast<long>(malloc_usable_size(p)), std::memory_order_relaxed);
}
void note_dead(void* p) {
  if (p) g_live_bytes.fetch_sub(static_cast<long>(malloc_usable_size(p)), std::memory_order_relaxed);
}

void count_allocation() {
  if (!g_counting.load(std::memory_order_relaxed) || t_inside) return;
  t_inside = true;
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  void* frames[24];
  const int n = backtrace(frames, 24);
  for (int i = 1; i < n; ++i) {
    Dl_info info;
    if (dladdr(frames[i], &info) && info.dli_fname && std::strstr(info.dli_fname, "libdnnl")) {
      g_dnnl_allocations.fetch_add(1, std::memory_order_relaxed);
      break;
    }
  }
  t_inside = false;
}
}  // namespace

extern "C" {
void* malloc(std::size_t n) {
  count_allocation();
  void* p = __libc_malloc(n);
  note_live(p);
  return p;
}
void* calloc(std::size_t n, std::size_t m) {
  count_allocation();
  void* p = __libc_calloc(n, m);
  note_live(p);
  return p;
}
void* realloc(void* p, std::size_t n) {
  count_allocation();
  note_dead(p);
  void* q = __libc_realloc(p, n);
  note_live(q != nullptr || n == 0 ? q : p);  // a failed realloc keeps p
  return q;
}
void free(void* p) {
  note_dead(p);
  __libc_free(p);
}
void* aligned_alloc(std::size_t a, std::size_t n) {
  count_allocation();
  void* p = __libc_memalign(a, n);
  note_live(p);
  return p;
}
void* memalign(std::size_t a, std::size_t n) {
  count_allocation();
  void* p = __libc_memalign(a, n);
  note_live(p);
  return p;
}
int posix_memalign(void** p, std::size_t a, std::size_t n) {
  count_allocation();
  *p = __libc_memalign(a, n);
  note_live(*p);
  return *p ? 0 : ENOMEM;
}
}
#endif

namespace {

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw IoError("cannot read " + p.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

double ms_since(Clock::time_point a) { return std::chrono::duration<double, std::milli>(Clock::now() - a).count(); }

// The resident set now (VmRSS), in KiB.
long rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return 0;
}

long peak_rss_kib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

// ---- how memory is measured ------------------------------------------------------------
//
// Each measurement is a fresh process. "peak" is the kernel's high-water mark of its resident
// set (getrusage's ru_maxrss, VmHWM) when the child ends; "before load" is its resident set
// (VmRSS) after the input and expected output are read and the op table is built (the
// library's one-time state), just before the package is opened.
// The model's peak is their difference: what loading, the first call and 23 more calls
// added at most. It is compared without "code" — the resident pages of the program's and
// shared libraries' mappings added since "before load" (oneDNN's code and tables, paged in by
// the first call): the libraries', not the model's — with issue 13's target: the weights plus
// twice the largest set of activations alive at once (the arena, planned from their
// lifetimes). The model's peak is split into parts that add up to it:
//   - packed weights, scratchpad, arena: the plan's own (InferenceStats' byte counts);
//   - other heap: the rest of the heap alive at the end, less what was alive before (the
//     module tree, graph, code and plan, oneDNN's primitives, the result);
//   - code: as above;
//   - JIT code: resident anonymous executable mappings at the end (oneDNN's generated kernels);
//   - kept anonymous: resident anonymous memory (heap, mmapped blocks, thread stacks) beyond the
//     live heap, less before: free heap the C library keeps resident, stacks, block headers;
//   - first-call excess: peak RSS less the RSS at the end (what was resident only during
//     the first call: its own buffers, a weight being packed);
//   - rest: what none of these is — mapped pages of the package file (weights not given back).
// "load heap" (not a part of the sum) is the heap alive when the loaded module is ready, less
// before: the module, its graph, code and plan, and what the loader keeps (its caches, given
// back when the first call starts; kept_memory.hpp). The heap counts come from the interposed
// malloc (not measured under a sanitizer: —).

// Resident KiB (/proc/self/smaps) of the mappings of the program and its shared libraries
// (`code`), of anonymous executable mappings (`jit`: code generated at run time), and of the
// other anonymous ones (`anon`: the heap, mmapped heap blocks, thread stacks).
struct MappedKib {
  long code = 0, jit = 0, anon = 0;
};
MappedKib mapped_rss_kib() {
  std::ifstream in("/proc/self/smaps");
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  MappedKib kib;
  long* into = nullptr;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) && line.find('-') < line.find(' ')) {
      // A mapping's header: "start-end perms offset dev inode [path]".
      std::istringstream words(line);
      std::string range, perms, offset, dev, inode, path;
      words >> range >> perms >> offset >> dev >> inode >> path;
      const bool anonymous = path.empty() || path == "[heap]" || path.starts_with("[stack");
      into = path == self || path.find(".so") != std::string::npos ? &kib.code
             : anonymous && perms.find('x') != std::string::npos    ? &kib.jit
             : anonymous                                            ? &kib.anon
                                                                    : nullptr;
    } else if (into && line.rfind("Rss:", 0) == 0) {
      *into += std::atol(line.c_str() + 4);
    }
  }
  return kib;
}

long live_heap_kib() { return g_live_bytes.load() / 1024; }

// The process's CPU time (user + system, every thread) so far, in ms: on a shared machine
// it moves less than wall time when other processes take the cores.
double cpu_ms() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  const auto ms = [](const timeval& t) { return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_usec) / 1e3; };
  return ms(u.ru_utime) + ms(u.ru_stime);
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Runs a command; returns its stdout (empty and `ok` false when it failed).
std::string run(const std::string& cmd, bool& ok) {
  std::string out;
  FILE* f = popen((cmd + " 2>/dev/null").c_str(), "r");
  if (!f) {
    ok = false;
    return out;
  }
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, f)) out.append(buf, n);
  ok = pclose(f) == 0;
  return out;
}

double field(const std::string& text, const std::string& key) {
  const auto at = text.find(key + " ");
  if (at == std::string::npos) return -1;
  return std::atof(text.c_str() + at + key.size() + 1);
}

// PyTorch's time for `threads` recorded where the model was made (torch_eager.txt).
struct RecordedTorch {
  bool recorded = false;  // the model has torch_eager.txt: PyTorch is not run here
  double ms = -1;         // its time for these threads, if it has one
  std::string version;
};
RecordedTorch recorded_torch(const fs::path& dir, int threads) {
  RecordedTorch r;
  std::ifstream in(dir / "torch_eager.txt");
  r.recorded = static_cast<bool>(in);
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::string key, version;
    double ms = -1;
    int th = 0;
    if (words >> key >> ms >> key >> th >> key >> version && th == threads && ms > 0) {
      r.ms = ms;
      r.version = version.substr(0, version.find('.', version.find('.') + 1));  // 2.6.0 -> 2.6
    }
  }
  return r;
}

// ---- one model, one thread count, in this (fresh) process ---------------------------------

int child(const fs::path& dir, const std::string& package, int threads, int iters) {
  set_num_threads(threads);
  const Tensor x = cli::parse_npy(read_file(dir / "input.npy"), "input.npy");
  const Tensor expected = cli::parse_npy(read_file(dir / "output.npy"), "output.npy");
  // The op table, built once per process at its first use (a load's), is the library's, not
  // the model's: built before "before load" (about 0.5 MiB of heap).
  (void)OpRegistry::global();
  const MappedKib mapped_before = mapped_rss_kib();
  const long rss_before = rss_kib();
  const long live_before = live_heap_kib();
  auto t0 = Clock::now();
  PackageImporter importer(dir / package);
  auto gm = importer.load_pickle("model", "model.pkl");
  auto plan = gm->plan();
  const double load_ms = ms_since(t0);
  const long load_rss = peak_rss_kib(), load_heap = live_heap_kib() - live_before;
  std::size_t weight_bytes = 0;
  for (const auto& [name, t] : gm->named_parameters()) weight_bytes += t.nbytes();
  for (const auto& [name, t] : gm->named_buffers()) weight_bytes += t.nbytes();
  const std::vector<Value> in{Value(x)};
  t0 = Clock::now();
  const double first_cpu_before = cpu_ms();
  Value y = gm->forward(in);
  const double first_ms = ms_since(t0), first_cpu = cpu_ms() - first_cpu_before;
  const long first_rss = peak_rss_kib();
  const Tensor& out = y.tensor();
  const double diff = max_abs_diff(out, expected);
  const bool ok = allclose(out, expected, 1e-4, 1e-5);
  for (int i = 0; i < 3; ++i) y = gm->forward(in);
  std::vector<double> ts;
  ts.reserve(static_cast<std::size_t>(iters));
  const double cpu_before = cpu_ms();
  for (int i = 0; i < iters; ++i) {
    const auto a = Clock::now();
    y = gm->forward(in);
    ts.push_back(ms_since(a));
  }
  const double cpu_per_call = (cpu_ms() - cpu_before) / iters;
  // Allocations of one more steady call (counted apart: attributing them takes time).
  y = Value();
  g_allocations.store(0);
  g_dnnl_allocations.store(0);
  g_counting.store(true);
  y = gm->forward(in);
  g_counting.store(false);
  const long allocations = g_allocations.load(), dnnl_allocations = g_dnnl_allocations.load();
  std::sort(ts.begin(), ts.end());
  const double median = ts.size() % 2 ? ts[ts.size() / 2] : (ts[ts.size() / 2 - 1] + ts[ts.size() / 2]) / 2;
  const auto st = plan->inference_stats();
  const MappedKib mapped = mapped_rss_kib();
#ifdef FXPACK_SANITIZED
  const long load_heap_kib = -1, live_kib = -1;
#else
  const long load_heap_kib = load_heap, live_kib = live_heap_kib() - live_before;
#endif
  std::printf("cpu_ms %.3f first_cpu_ms %.2f load_ms %.2f first_ms %.2f median_ms %.3f allocations %ld dnnl_allocations %ld peak_rss_kib %ld "
              "steady_rss_kib %ld before_rss_kib %ld load_rss_kib %ld first_rss_kib %ld code_kib %ld jit_kib %ld anon_kib %ld "
              "load_heap_kib %ld live_heap_kib %ld weights %zu arena %zu scratchpad %zu packed %zu primitives %zu calling_thread_primitives %zu maxdiff %.3g ok %d\n",
              cpu_per_call, first_cpu, load_ms, first_ms, median, allocations, dnnl_allocations, peak_rss_kib(), rss_kib(), rss_before, load_rss,
              first_rss, mapped.code - mapped_before.code, mapped.jit - mapped_before.jit, mapped.anon - mapped_before.anon, load_heap_kib, live_kib, weight_bytes, st.arena_bytes,
              st.scratchpad_bytes, st.packed_weight_bytes, st.primitives, st.calling_thread_primitives, diff, ok ? 1 : 0);
  return 0;
}

struct Options {
  fs::path models = ".";
  std::string package = "package.pt";
  std::vector<int> threads{1, 2};
  int iters = 20;
  int rounds = 3;
  std::string ort_dir;
  std::string python = "/usr/bin/python3";
  std::string omp_wait_policy;  // empty: the environment's
  bool anchors = true;
  std::vector<std::string> names;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "bench_inference: %s\nusage: bench_inference [--models DIR] [--package FILE] [--threads 1,2] "
               "[--iters N] [--rounds R] [--ort DIR] [--python PATH] [--omp-wait-policy POLICY] [--no-anchors] [MODEL ...]\n", why.c_str());
  std::exit(2);
}

Options parse_options(int argc, char** argv) {
  Options o;
  if (const char* e = std::getenv("FXPACK_ORT_DIR")) o.ort_dir = e;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage(a + " needs a value");
      return argv[++i];
    };
    if (a == "--models") o.models = next();
    else if (a == "--package") o.package = next();
    else if (a == "--iters") o.iters = std::max(1, std::atoi(next().c_str()));
    else if (a == "--rounds") o.rounds = std::max(1, std::atoi(next().c_str()));
    else if (a == "--ort") o.ort_dir = next();
    else if (a == "--python") o.python = next();
    else if (a == "--omp-wait-policy") o.omp_wait_policy = next();
    else if (a == "--no-anchors") o.anchors = false;
    else if (a == "--threads") {
      o.threads.clear();
      std::stringstream ss(next());
      for (std::string t; std::getline(ss, t, ',');) o.threads.push_back(std::max(1, std::atoi(t.c_str())));
    } else if (a.starts_with("-")) usage("unknown option " + a);
    else o.names.push_back(a);
  }
  if (o.names.empty()) {
    for (const auto& e : fs::directory_iterator(o.models))
      if (fs::exists(e.path() / o.package)) o.names.push_back(e.path().filename().string());
    std::sort(o.names.begin(), o.names.end());
  }
  return o;
}

// Why ONNX Runtime cannot be measured, or empty.
std::string ort_unavailable(const Options& o) {
  if (o.anchors && o.ort_dir.empty())
    return "ONNX Runtime: not measured (give --ort DIR or FXPACK_ORT_DIR: a folder with node_modules/onnxruntime-node)";
  if (o.anchors && !fs::exists(fs::path(o.ort_dir) / "node_modules" / "onnxruntime-node"))
    return "ONNX Runtime: not measured (no node_modules/onnxruntime-node in " + o.ort_dir + ")";
  return "";
}

// One model at one thread count: fxpack's child report (its best round) and the anchors' best
// medians (-1: not measured).
struct Measured {
  bool ok = false;
  std::string child;
  double torch_ms = -1, ort_ms = -1;
  RecordedTorch recorded;
};

Measured measure(const Options& o, const fs::path& dir, int th, bool with_ort) {
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  const fs::path scripts = fs::path(FXPACK_BENCH_SCRIPTS);  // torch_eager.py, onnxruntime.js
  Measured m;
  m.recorded = recorded_torch(dir, th);
  double best = -1;
  const auto keep_min = [](double& best_so_far, double v) {
    if (v > 0 && (best_so_far < 0 || v < best_so_far)) best_so_far = v;
  };
  const std::string omp_env = o.omp_wait_policy.empty() ? "" : "OMP_WAIT_POLICY=" + quote(o.omp_wait_policy) + " ";
  for (int round = 0; round < o.rounds; ++round) {
    bool rok = false;
    const std::string r = run(omp_env + quote(self) + " --child " + quote(dir.string()) + " " + quote(o.package) + " " +
                                  std::to_string(th) + " " + std::to_string(o.iters), rok);
    if (rok && (best < 0 || field(r, "median_ms") < best)) {
      best = field(r, "median_ms");
      m.child = r;
      m.ok = true;
    }
    if (!o.anchors) continue;
    if (!m.recorded.recorded) {
      bool tok = false;
      const std::string t = run(omp_env + quote(o.python) + " " + quote((scripts / "torch_eager.py").string()) + " " +
                                    quote((dir / "package.pt").string()) + " " + quote((dir / "input.npy").string()) +
                                    " " + std::to_string(th) + " " + std::to_string(o.iters), tok);
      if (tok) keep_min(m.torch_ms, field(t, "median_ms"));
    }
    if (with_ort && fs::exists(dir / "model.onnx")) {
      bool ook = false;
      const std::string r2 = run("NODE_PATH=" + quote((fs::path(o.ort_dir) / "node_modules").string()) + " node " +
                                     quote((scripts / "onnxruntime.js").string()) + " " + quote((dir / "model.onnx").string()) +
                                     " " + quote((dir / "input.npy").string()) + " " + std::to_string(th) + " " +
                                     std::to_string(o.iters), ook);
      if (ook) keep_min(m.ort_ms, field(r2, "median_ms"));
    }
  }
  if (o.anchors && m.recorded.recorded) m.torch_ms = m.recorded.ms;
  return m;
}

std::string cell(double v, const char* fmt) {
  if (v < 0) return "—";
  char b[64];
  std::snprintf(b, sizeof b, fmt, v);
  return b;
}

void print_row(const std::string& name, int th, const Measured& m) {
  const std::string torch_cell =
      cell(m.torch_ms, "%.2f") + (m.recorded.ms >= 0 && m.torch_ms >= 0 ? " (" + m.recorded.version + ", recorded)" : "");
  if (!m.ok) {
    std::printf("| %s | %d | failed to load or run | | %s | %s | | | | | | | | | | |\n", name.c_str(), th,
                torch_cell.c_str(), cell(m.ort_ms, "%.2f").c_str());
    return;
  }
  const std::string& out = m.child;
  const double f = field(out, "median_ms");
  const double mib = 1024.0 * 1024.0;
  std::printf("| %s | %d | %.2f | %.2f | %s | %s | %s | %s | %.1f | %.1f | %.1f | %.0f (%.0f) | %.0f | %.1f | %.1f | %.2g%s |\n", name.c_str(), th,
              f, field(out, "cpu_ms"), torch_cell.c_str(), cell(m.ort_ms, "%.2f").c_str(),
              cell(m.ort_ms > 0 ? f / m.ort_ms : -1, "%.2f").c_str(), cell(m.torch_ms > 0 ? f / m.torch_ms : -1, "%.2f").c_str(),
              field(out, "load_ms"), field(out, "first_ms"), field(out, "first_cpu_ms"), field(out, "allocations"), field(out, "dnnl_allocations"),
              field(out, "peak_rss_kib") / 1024.0, field(out, "weights") / mib, field(out, "arena") / mib,
              field(out, "maxdiff"), field(out, "ok") == 1 ? "" : " (MISMATCH)");
}

// The memory table's row (MiB; see "How memory is measured").
void print_memory_row(const std::string& name, int th, const Measured& m) {
  if (!m.ok) return;
  const std::string& out = m.child;
  const double mib = 1024.0 * 1024.0, kib = 1024.0;
  const double peak = field(out, "peak_rss_kib") / kib, before = field(out, "before_rss_kib") / kib;
  const double model = peak - before, weights = field(out, "weights") / mib, arena = field(out, "arena") / mib;
  const double packed = field(out, "packed") / mib, scratch = field(out, "scratchpad") / mib;
  const double code = field(out, "code_kib") / kib, jit = field(out, "jit_kib") / kib;
  const double excess = peak - field(out, "steady_rss_kib") / kib;
  const bool heap_counted = field(out, "live_heap_kib") >= 0;
  const double live = field(out, "live_heap_kib") / kib, anon = field(out, "anon_kib") / kib;
  // Shown with their sign: parts measured at different moments may differ by a little.
  const auto heap_cell = [&](double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.1f", v);
    return heap_counted ? std::string(b) : std::string("—");
  };
  const double target = weights + 2 * arena;
  std::printf("| %s | %d | %.1f | %.1f | %.1f | **%.1f** | %.1f | %+.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %s | %.1f | %.1f | %s | %.1f | %.1f | %s |\n",
              name.c_str(), th, peak, before, model, model - code, target, model - code - target,
              field(out, "load_rss_kib") / kib - before, field(out, "first_rss_kib") / kib - before, weights, packed, scratch,
              arena, heap_cell(live - packed - scratch - arena).c_str(), code, jit, heap_cell(anon - live).c_str(), excess,
              model - excess - code - jit - anon, heap_cell(field(out, "load_heap_kib") / kib).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc == 6 && std::string(argv[1]) == "--child") return child(argv[2], argv[3], std::atoi(argv[4]), std::atoi(argv[5]));
    const Options o = parse_options(argc, argv);
    const std::string ort_status = ort_unavailable(o);
    if (!ort_status.empty()) std::printf("%s\n", ort_status.c_str());
    std::printf("| model | threads | fxpack ms | fxpack CPU ms | PyTorch ms | ORT ms | fxpack/ORT | fxpack/PyTorch | load ms | first call ms | first call CPU ms | allocs/call (in oneDNN) | peak RSS MiB | weights MiB | arena MiB | max |diff| |\n");
    std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    std::vector<std::tuple<std::string, int, Measured>> rows;
    for (const std::string& name : o.names) {
      for (int th : o.threads) {
        rows.emplace_back(name, th, measure(o, o.models / name, th, o.anchors && ort_status.empty()));
        print_row(name, th, std::get<2>(rows.back()));
        std::fflush(stdout);
      }
    }
    std::printf("\nMemory (MiB) of fxpack's best round. model peak = peak RSS - RSS before load, compared without "
                "code (library pages resident since before load) with the target, weights + 2x arena; \"after load\" and "
                "\"after first call\": the model's peak by then. The model's peak is the sum of packed weights, scratchpad, "
                "arena, other heap (alive at the end: module, graph, plan, oneDNN's primitives), code, JIT code (oneDNN's "
                "generated kernels), kept anonymous (resident beyond the live heap: free heap the C library keeps, stacks), "
                "first-call excess (peak RSS - RSS at the end) and rest (mapped package pages); load heap: heap alive after "
                "the load (see bench_inference.cpp).\n");
    std::printf("| model | threads | peak RSS | before load | model peak | model peak - code | target | over target | "
                "after load | after first call | weights | packed weights | scratchpad | arena | other heap | code | JIT code | "
                "kept anonymous | first-call excess | rest | load heap |\n");
    std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (const auto& [name, th, m] : rows) print_memory_row(name, th, m);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_inference: %s\n", e.what());
    return 1;
  }
}
