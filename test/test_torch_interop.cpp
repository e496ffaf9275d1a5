// Interop with real PyTorch: loading torch.package archives of fx GraphModules (made by torch
// 1.13, fixtures/torch/<folder>/package.pt), the restricted unpickler's refusals, and the
// parser for fx-generated Python.
#include <doctest/doctest.h>

#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "fxpack/fxpack.hpp"
#include "block_cache.hpp"
#include "kept_memory.hpp"
#include "interop/fx_code_parser.hpp"
#include "interop/torch_package.hpp"
#include "interop/unpickler.hpp"
#include "zip/zip_reader.hpp"
#include "zip/zip_writer.hpp"
#include "reference_models.hpp"

using namespace fxpack;
using namespace fxpack::interop;
using fxpack::testing::read_file;
using fxpack::testing::reference_cases;
using fxpack::testing::reference_dir;
using fxpack::testing::fixtures_dir;
using Bytes = std::vector<std::byte>;

namespace {

std::filesystem::path torch_fixture(const std::string& folder) {
  return fixtures_dir() / "torch" / folder / "package.pt";
}

Bytes to_bytes(std::string_view s) {
  Bytes b(s.size());
  if (!s.empty()) std::memcpy(b.data(), s.data(), s.size());
  return b;
}

std::string as_string(const Bytes& b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

// The message of the FormatError `f` throws ("" if it throws nothing; other exceptions fail).
template <class F>
std::string format_error(F&& f) {
  try {
    f();
  } catch (const FormatError& e) {
    return e.what();
  }
  return "";
}

std::string unpickle_error(std::string_view pickle, const UnpicklerLimits& limits = {}) {
  Bytes b = to_bytes(pickle);
  return format_error([&] { (void)unpickle(b, torch_package_allowlist(), limits, "test.pkl"); });
}

// The archive of `folder` rebuilt in memory, with records replaced or removed.
zip::ZipReader repack(const std::string& folder, const std::map<std::string, Bytes>& replace,
                      const std::set<std::string>& drop = {}, bool deflate_storages = false) {
  auto src = zip::ZipReader::open(torch_fixture(folder));
  auto w = zip::ZipWriter::to_memory();
  for (const auto& e : src.entries()) {
    if (drop.count(e.name)) continue;
    auto it = replace.find(e.name);
    Bytes data = it != replace.end() ? it->second : src.read(e.name);
    if (deflate_storages && e.name.ends_with(".storage")) w.add_deflated(e.name, data);
    else w.add_stored(e.name, data);
  }
  auto bytes = std::make_shared<const Bytes>(w.finish());
  return zip::ZipReader::from_memory(bytes);
}

const char* class_name_of(const std::string& folder) {
  if (folder == "seed_sin") return "<lambda>";
  if (folder == "seed_relu_add") return "ReluAdd";
  if (folder == "mlp") return "MLP";
  return "SmallConvNet";
}

Tensor run(GraphModule& gm, const Tensor& x) { return gm.forward(std::vector<Value>{Value(x)}).tensor(); }

}  // namespace

// ---- reference packages ---------------------------------------------------------------

TEST_CASE("torch.package: every reference archive loads, with PyTorch's code and outputs") {
  for (const auto& c : reference_cases()) {
    CAPTURE(c.folder);
    auto zr = zip::ZipReader::open(torch_fixture(c.folder));
    REQUIRE(is_torch_package(zr));
    CHECK(torch_package_root(zr) == "package");
    auto gm = load_torch_package(zr, "model", "model.pkl");
    REQUIRE(gm);
    CHECK(gm->is_lazy());
    CHECK(dynamic_cast<LazyGraphModule*>(gm.get()) != nullptr);
    CHECK(gm->needs_recompile());
    CHECK(gm->class_name() == class_name_of(c.folder));
    CHECK(gm->code() == read_file(reference_dir(c.folder) / "code.py"));
    CHECK_FALSE(gm->needs_recompile());
    gm->lint();
    Tensor out = run(*gm, fxpack::testing::reference_input(c));
    Tensor expected = fxpack::testing::reference_output(c);
    CHECK(out.shape() == expected.shape());
    CHECK(allclose(out, expected, 1e-5, 1e-6));
    // Same graph and module tree as tracing fxpack's twin of the model.
    auto traced = fxpack::testing::trace_reference(c.folder);
    CHECK(gm->graph().to_string() == traced->graph().to_string());
    if (c.folder != "seed_sin") CHECK(gm->repr() == traced->repr());
    // Same weights as the state_dict PyTorch wrote.
    auto loaded = gm->named_parameters();
    auto want = traced->named_parameters();
    REQUIRE(loaded.size() == want.size());
    for (std::size_t i = 0; i < loaded.size(); ++i) {
      CHECK(loaded[i].first == want[i].first);
      CHECK(allclose(loaded[i].second, want[i].second, 0, 0));
    }
    auto lb = gm->named_buffers();
    auto wb = traced->named_buffers();
    REQUIRE(lb.size() == wb.size());
    for (std::size_t i = 0; i < lb.size(); ++i) {
      CHECK(lb[i].first == wb[i].first);
      CHECK(lb[i].second.dtype() == wb[i].second.dtype());
      CHECK(allclose(lb[i].second, wb[i].second, 0, 0));
    }
  }
}

TEST_CASE("torch.package: aligned stored storages are aliased, copies on request, from memory too") {
  auto zr = zip::ZipReader::open(torch_fixture("small_convnet"));
  auto gm = load_torch_package(zr, "model", "model.pkl");
  for (const auto& entry : gm->named_parameters()) {
    CAPTURE(entry.first);
    CHECK(entry.second.storage()->borrowed());
  }
  CHECK(gm->get_tensor("bn1.num_batches_tracked").dtype() == DType::Int64);
  CHECK(gm->get_tensor("bn1.num_batches_tracked").dim() == 0);

  TorchPackageOptions copy;
  copy.copy_tensors = true;
  auto gm2 = load_torch_package(zr, "model", "model.pkl", copy);
  for (const auto& [name, t] : gm2->named_parameters()) CHECK_FALSE(t.storage()->borrowed());

  // Deflated storage records are copied.
  auto deflated = repack("mlp", {}, {}, true);
  auto gm3 = load_torch_package(deflated, "model", "model.pkl");
  CHECK_FALSE(gm3->get_tensor("fc1.weight").storage()->borrowed());
  auto c = reference_cases()[2];
  CHECK(allclose(run(*gm3, fxpack::testing::reference_input(c)), fxpack::testing::reference_output(c), 1e-5, 1e-6));

  // The tensors outlive the reader.
  std::shared_ptr<GraphModule> kept;
  {
    auto bytes = std::make_shared<const Bytes>(to_bytes(read_file(torch_fixture("mlp"))));
    auto mem = zip::ZipReader::from_memory(bytes);
    kept = load_torch_package(mem, "model", "model.pkl");
  }
  CHECK(allclose(run(*kept, fxpack::testing::reference_input(c)), fxpack::testing::reference_output(c), 1e-5, 1e-6));
}

TEST_CASE("torch.package: detection and missing records") {
  auto zr = zip::ZipReader::open(torch_fixture("mlp"));
  CHECK(format_error([&] { load_torch_package(zr, "model", "other.pkl"); }).find("no record package/model/other.pkl") !=
        std::string::npos);
  auto w = zip::ZipWriter::to_memory();
  w.add_stored("a/b.txt", to_bytes("x"));
  auto mem = zip::ZipReader::from_memory(std::make_shared<const Bytes>(w.finish()));
  CHECK_FALSE(is_torch_package(mem));
  CHECK(format_error([&] { load_torch_package(mem, "model", "model.pkl"); }).find("not a torch.package") != std::string::npos);
  auto no_code = repack("mlp", {}, {"package/fx-generated/_0.py"});
  CHECK(format_error([&] { load_torch_package(no_code, "model", "model.pkl"); }).find("package/fx-generated/_0.py is missing") !=
        std::string::npos);
  auto no_storage = repack("mlp", {}, {"package/.data/2.storage"});
  CHECK(format_error([&] { load_torch_package(no_storage, "model", "model.pkl"); }).find("package/.data/2.storage is missing") !=
        std::string::npos);
  auto short_storage = repack("mlp", {{"package/.data/1.storage", Bytes(28)}});
  CHECK(format_error([&] { load_torch_package(short_storage, "model", "model.pkl"); }).find("has 28 bytes") != std::string::npos);
}

namespace {
// model.pkl of `folder` with the first occurrence of `from` replaced by `to` (same length
// keeps every offset valid).
Bytes patched_pickle(const std::string& folder, std::string_view from, std::string_view to) {
  auto zr = zip::ZipReader::open(torch_fixture(folder));
  std::string p = as_string(zr.read("package/model/model.pkl"));
  auto pos = p.find(from);
  REQUIRE(pos != std::string::npos);
  p.replace(pos, from.size(), to);
  return to_bytes(p);
}
}  // namespace

TEST_CASE("torch.package: hostile or unsupported archive contents are refused") {
  struct Case {
    std::string name;
    std::string folder;
    std::map<std::string, Bytes> replace;
    const char* fragment;
  };
  using namespace std::string_view_literals;
  const std::string code0 = "package/fx-generated/_0.py";
  const std::string pkl = "package/model/model.pkl";
  std::vector<Case> cases = {
      {"cuda storage", "mlp", {{pkl, patched_pickle("mlp", "X\x03\x00\x00\x00" "cpu"sv, "X\x03\x00\x00\x00" "cud"sv)}},
       "storage location 'cud' is not supported"},
      {"strided view past its storage", "mlp",
       {{pkl, patched_pickle("mlp", "K\x04K\x01\x86", "K\x04K\x08\x86")}}, "reaches element 52 of a storage of 32"},
      {"a class outside torch.nn", "mlp",
       {{pkl, patched_pickle("mlp", "torch.nn.modules.activation\nReLU", "os\nsystem")}},
       "global 'os.system' is not allowed"},
      {"module config fails validate", "mlp",
       {{pkl, patched_pickle("mlp", "in_features\x71\x46K\x04", "in_features\x71\x46K\x05")}},
       "module 'fc1': Linear: parameter 'weight' has shape [8, 4], expected [8, 5]"},
      {"bad generated code", "mlp",
       {{code0, to_bytes("def forward(self, x):\n    y = __import__('os').system('ls')\n    return y\n")}},
       "package/fx-generated/_0.py line 2, column"},
      {"code names a missing submodule", "mlp",
       {{code0, to_bytes("\n\n\ndef forward(self, x):\n    fc3 = self.fc3(x);  x = None\n    return fc3\n    ")}},
       "the graph does not match the modules"},
      {"generated module name escapes", "seed_sin",
       {{pkl, patched_pickle("seed_sin", "fx-generated._0", "..-generated._0")}}, "generated module name"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    auto zr = repack(c.folder, c.replace);
    std::string msg = format_error([&] { load_torch_package(zr, "model", "model.pkl"); });
    CAPTURE(msg);
    CHECK(msg.find(c.fragment) != std::string::npos);
  }
}

TEST_CASE("torch.package: every corruption of a real model.pkl is a FormatError") {
  auto zr = zip::ZipReader::open(torch_fixture("mlp"));
  const Bytes pkl = zr.read("package/model/model.pkl");
  // Every truncation, at the unpickler.
  for (std::size_t n = 0; n < pkl.size(); ++n) {
    CAPTURE(n);
    std::span<const std::byte> prefix(pkl.data(), n);
    std::string msg = format_error([&] { (void)unpickle(prefix, torch_package_allowlist(), {}, "model.pkl"); });
    if (msg.find("truncated") == std::string::npos) MESSAGE(msg);
    CHECK(msg.find("truncated") != std::string::npos);
  }
  // Every truncation and a few byte values at every offset, through the whole loader: a
  // FormatError or a successful load, nothing else (no crash, no other exception type).
  std::size_t refused = 0, loaded = 0;
  auto attempt = [&](const Bytes& p) {
    auto bad = repack("mlp", {{"package/model/model.pkl", p}});
    try {
      auto gm = load_torch_package(bad, "model", "model.pkl");
      (void)gm->code();
      ++loaded;
    } catch (const FormatError&) {
      ++refused;
    }
  };
  for (std::size_t n = 0; n < pkl.size(); ++n) attempt(Bytes(pkl.begin(), pkl.begin() + static_cast<std::ptrdiff_t>(n)));
  for (std::size_t i = 0; i < pkl.size(); ++i) {
    for (unsigned char v : {0x00, 0xff, 0x7f}) {
      Bytes p = pkl;
      if (p[i] == std::byte{v}) continue;
      p[i] = std::byte{v};
      attempt(p);
    }
  }
  CHECK(refused > 0);
  MESSAGE("corrupted model.pkl: " << refused << " refused, " << loaded << " still loaded");
}

// ---- the unpickler --------------------------------------------------------------------

TEST_CASE("unpickler: decodes the data kinds and shares memoized objects") {
  // {'a': [1, -2, 3.5, True, None, 'é', b'xy'], 'b': (h0, h0)} with memo sharing.
  using namespace std::string_literals;
  std::string p = "\x80\x02}q\x00(X\x01\x00\x00\x00" "a]q\x01(K\x01J\xfe\xff\xff\xff" "G\x40\x0c\x00\x00\x00\x00\x00\x00"
                  "\x88NX\x02\x00\x00\x00\xc3\xa9" "C\x02xye" "X\x01\x00\x00\x00" "bh\x01h\x01\x86u."s;
  Bytes b = to_bytes(p);
  auto tree = unpickle(b, torch_package_allowlist());
  const PyObject& root = tree->root();
  REQUIRE(root.kind == PyKind::Dict);
  const PyObject* a = root.find("a");
  REQUIRE(a);
  REQUIRE(a->kind == PyKind::List);
  REQUIRE(a->items.size() == 7);
  CHECK(a->items[0]->integer == 1);
  CHECK(a->items[1]->integer == -2);
  CHECK(a->items[2]->real == 3.5);
  CHECK(a->items[3]->boolean);
  CHECK(a->items[4]->kind == PyKind::None);
  CHECK(a->items[5]->str == "\xc3\xa9");
  CHECK(a->items[6]->kind == PyKind::Bytes);
  const PyObject* t = root.find("b");
  REQUIRE(t->kind == PyKind::Tuple);
  CHECK(t->items[0] == a);
  CHECK(t->items[1] == a);
  CHECK(tree->protocol() == 2);
  // Memo indexes out of order (hand-made): BINPUT 7, BINPUT 0, MEMOIZE (index 2, the memo's
  // size), each read back — (1, 2, 1, 2, 3, 3), as Python's pickle.loads gives.
  const Bytes memo = to_bytes("\x80\x04(K\x01q\x07K\x02q\x00h\x07h\x00K\x03\x94h\x02t."s);
  const auto memo_tree = unpickle(memo, {});
  const PyObject& five = memo_tree->root();
  REQUIRE(five.items.size() == 6);
  std::vector<std::int64_t> got;
  for (const PyObject* item : five.items) got.push_back(item->integer);
  CHECK(got == std::vector<std::int64_t>{1, 2, 1, 2, 3, 3});
  // LONG1 sign handling.
  Bytes l = to_bytes(std::string("\x80\x02\x8a\x01\xff.", 6));
  CHECK(unpickle(l, {})->root().integer == -1);
  Bytes l9 = to_bytes(std::string("\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\xff.", 14));
  CHECK(unpickle(l9, {})->root().integer == std::numeric_limits<std::int64_t>::min());
}

TEST_CASE("unpickler: the real model.pkl decodes to the reduce_package persistent id") {
  auto zr = zip::ZipReader::open(torch_fixture("small_convnet"));
  auto tree = unpickle(zr.read("package/model/model.pkl"), torch_package_allowlist());
  const PyObject& root = tree->root();
  REQUIRE(root.kind == PyKind::PersistentId);
  REQUIRE(root.args->items.size() == 4);
  CHECK(root.args->items[0]->str == "reduce_package");
  CHECK(root.args->items[2]->is_global("torch.fx.graph_module.reduce_package_graph_module"));
  const PyObject* body = root.args->items[3]->items[0];
  CHECK(body->find("_graphmodule_cls_name")->str == "SmallConvNet");
  const PyObject* modules = body->find("_modules");
  REQUIRE(modules->is_call_of("collections.OrderedDict"));
  CHECK(modules->entries.size() == 8);
}

TEST_CASE("unpickler: block cache hands a given-back block out again, within its limit") {
  using fxpack::detail::BlockCache;
  BlockCache cache(64 << 10);
  void* a = cache.allocate(5000, 16);  // size class 8 KiB
  std::memset(a, 1, 5000);
  cache.deallocate(a, 5000, 16);
  CHECK(cache.cached_bytes() == 8192);
  CHECK(cache.allocate(8000, 16) == a);  // the same class: the same block
  CHECK(cache.cached_bytes() == 0);
  void* other_align = cache.allocate(8000, 64);
  CHECK(reinterpret_cast<std::uintptr_t>(other_align) % 64 == 0);
  cache.deallocate(other_align, 8000, 64);
  void* bigger = cache.allocate(9000, 16);  // class 16 KiB: not the 8 KiB block kept for alignment 64
  CHECK(bigger != other_align);
  cache.deallocate(a, 8000, 16);
  cache.deallocate(bigger, 9000, 16);
  CHECK(cache.cached_bytes() == 8192 + 8192 + 16384);
  // Over the limit, the oldest blocks are freed first; a block larger than the limit is not kept.
  void* big = cache.allocate(40 << 10, 16);  // class 64 KiB: the whole limit
  cache.deallocate(big, 40 << 10, 16);
  CHECK(cache.cached_bytes() == 64 << 10);
  CHECK(cache.allocate(40 << 10, 16) == big);
  void* huge = cache.allocate(100 << 10, 16);
  cache.deallocate(huge, 100 << 10, 16);
  CHECK(cache.cached_bytes() == 0);
  cache.deallocate(big, 40 << 10, 16);
  // At most kMaxBlocks blocks are kept, whatever their size.
  BlockCache roomy(1 << 20);
  std::vector<void*> small;
  for (std::size_t i = 0; i < BlockCache::kMaxBlocks + 3; ++i) small.push_back(roomy.allocate(100, 16));
  for (void* p : small) roomy.deallocate(p, 100, 16);
  CHECK(roomy.cached_bytes() == BlockCache::kMaxBlocks * 4096);
  // release_all frees what is kept; blocks in use stay their holder's.
  void* in_use = roomy.allocate(100, 16);
  roomy.release_all();
  CHECK(roomy.cached_bytes() == 0);
  roomy.deallocate(in_use, 100, 16);
  CHECK(roomy.cached_bytes() == 4096);
}

TEST_CASE("unpickler: a tree's arena blocks are kept for the next load of the pickle") {
  using fxpack::detail::BlockCache;
  auto zr = zip::ZipReader::open(torch_fixture("small_convnet"));
  const auto pickle = zr.read("package/model/model.pkl");
  BlockCache& cache = BlockCache::for_pickle_trees();
  unpickle(pickle, torch_package_allowlist()).reset();
  const std::size_t kept = cache.cached_bytes();
  CHECK(kept > 0);
  CHECK(kept <= BlockCache::kPickleTreeCacheBytes);
  {
    auto tree = unpickle(pickle, torch_package_allowlist());
    CHECK(cache.cached_bytes() < kept);  // its arena took the kept blocks
    CHECK(tree->root().kind == PyKind::PersistentId);
  }
  CHECK(cache.cached_bytes() == kept);  // and gave them back
  // Until the process needs the memory (an inference plan's first call asks).
  fxpack::detail::release_kept_memory();
  CHECK(cache.cached_bytes() == 0);
}

TEST_CASE("unpickler: an inference plan's first call takes back the blocks kept for the next load") {
  using fxpack::detail::BlockCache;
  auto zr = zip::ZipReader::open(torch_fixture("small_convnet"));
  auto gm = load_torch_package(zr, "model", "model.pkl");
  REQUIRE(BlockCache::for_pickle_trees().cached_bytes() > 0);
  (void)run(*gm, fxpack::testing::random_tensor(Shape{2, 3, 16, 16}));
  CHECK(gm->plan()->inference_stats().signatures == 1);  // the first call specialised the plan
  CHECK(BlockCache::for_pickle_trees().cached_bytes() == 0);
}

TEST_CASE("unpickler: hostile pickles are refused with a precise message") {
  struct Case {
    std::string name;
    std::string pickle;
    const char* fragment;
  };
  using namespace std::string_literals;
  std::vector<Case> cases = {
      {"GLOBAL os.system", "\x80\x02" "cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85R."s, "global 'os.system' is not allowed (byte offset 2)"},
      {"GLOBAL posix.system", "cposix\nsystem\n(S'ls'\ntR."s, "global 'posix.system' is not allowed"},
      {"STACK_GLOBAL builtins.eval", "\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00\x8c\x08" "builtins\x8c\x04" "eval\x93."s,
       "global 'builtins.eval' is not allowed"},
      {"STACK_GLOBAL builtins.exec", "\x80\x04\x8c\x08" "builtins\x8c\x04" "exec\x93."s, "global 'builtins.exec' is not allowed"},
      {"subprocess.Popen", "\x80\x03" "csubprocess\nPopen\n]\x85R."s, "global 'subprocess.Popen' is not allowed"},
      {"builtins.getattr", "\x80\x02" "cbuiltins\ngetattr\n."s, "global 'builtins.getattr' is not allowed"},
      {"__builtin__.eval", "c__builtin__\neval\n."s, "global '__builtin__.eval' is not allowed"},
      {"torch.load", "ctorch\nload\n."s, "global 'torch.load' is not allowed"},
      {"old tensor rebuild", "ctorch._utils\n_rebuild_tensor\n."s, "global 'torch._utils._rebuild_tensor' is not allowed"},
      {"STACK_GLOBAL non-str", "\x80\x04K\x01K\x02\x93."s, "STACK_GLOBAL: module and name must be str"},
      {"oversized BINUNICODE", "\x80\x02X\xff\xff\xff\x7f" "abc."s, "BINUNICODE: length 2147483647 exceeds the 4 byte(s) left"},
      {"oversized BINBYTES8", "\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\xff."s, "BINBYTES8: length 18446744073709551615 exceeds"},
      {"oversized FRAME", "\x80\x04\x95\x00\x00\x00\x00\x01\x00\x00\x00N."s, "FRAME: length 4294967296 exceeds"},
      {"negative BINSTRING", "\x80\x02T\xff\xff\xff\xff" "ab."s, "BINSTRING: negative length -1"},
      {"negative LONG4", "\x80\x02\x8b\xfe\xff\xff\xff."s, "LONG4: negative length -2"},
      {"huge LONG1", "\x80\x02\x8a\x09\x01\x02\x03\x04\x05\x06\x07\x08\x09."s, "integer of 9 bytes does not fit in 64 bits"},
      {"memo get never set", "\x80\x02K\x01q\x00h\x05."s, "memo index 5 was never set (memo has 1 entries) (byte offset 6)"},
      {"memo long get", "\x80\x02j\x00\x00\x00\x10."s, "memo index 268435456 was never set"},
      {"memo put out of range", "\x80\x02Nr\xff\xff\xff\xff."s, "memo index 4294967295 is out of range"},
      {"text GET negative", "\x80\x02Ng-1\n."s, "GET: negative memo index -1"},
      {"deep MARK nesting", "\x80\x02"s + std::string(1000, '('), "MARKs nested deeper than 256 levels"},
      {"deep TUPLE1 nesting", "\x80\x02)"s + std::string(1000, '\x85'), "nesting deeper than 256 levels"},
      {"deep list nesting", "\x80\x02"s + std::string(1000, ']') + std::string(999, 'a'), "nesting deeper than 256 levels"},
      {"truncated string", "\x80\x02X\x05\x00\x00\x00" "ab"s, "BINUNICODE: length 5 exceeds the 2 byte(s) left"},
      {"truncated argument", "\x80\x02K"s, "truncated pickle: BININT1 needs 1 byte(s) at byte offset 3, only 0 left"},
      {"truncated BINFLOAT", "\x80\x02G\x40\x09"s, "truncated pickle: BINFLOAT needs 8 byte(s) at byte offset 3"},
      {"truncated GLOBAL line", "\x80\x02" "cos\nsys"s, "truncated pickle: GLOBAL has no end of line"},
      {"no STOP", "\x80\x02N"s, "truncated pickle: no STOP opcode before the end of the data at byte offset 3"},
      {"empty", ""s, "truncated pickle: no STOP opcode before the end of the data at byte offset 0"},
      {"unknown opcode", "\x80\x02\xff."s, "unknown opcode 0xff (byte offset 2)"},
      {"protocol 6", "\x80\x06N."s, "unsupported pickle protocol 6"},
      {"INST", "(ios\nsystem\n."s, "opcode INST is not supported"},
      {"OBJ", "(o."s, "opcode OBJ is not supported"},
      {"EXT1", "\x80\x02\x82\x01."s, "EXT1/EXT2/EXT4"},
      {"NEXT_BUFFER", "\x80\x05\x97."s, "NEXT_BUFFER"},
      {"text PERSID", "P1\n."s, "PERSID"},
      {"stack underflow", "\x80\x02R."s, "REDUCE: stack underflow"},
      {"underflow below MARK", "\x80\x02N(a."s, "APPEND: stack underflow"},
      {"TUPLE without MARK", "\x80\x02Nt."s, "TUPLE: no MARK on the stack"},
      {"REDUCE of a non-global", "\x80\x02N)R."s, "REDUCE: callable must be a global, got None"},
      {"REDUCE with non-tuple args", "\x80\x02" "ccollections\nOrderedDict\nNR."s, "REDUCE: arguments must be a tuple"},
      {"BUILD on a list", "\x80\x02]}b."s, "BUILD on a list"},
      {"SETITEMS on a list", "\x80\x02](NNu."s, "SETITEMS on a list"},
      {"odd SETITEMS", "\x80\x02}(Nu."s, "SETITEMS: odd number of items"},
      {"trailing data", "\x80\x02N.N"s, "1 byte(s) of trailing data after STOP"},
      {"two results", "\x80\x02NN."s, "STOP with 2 objects on the stack"},
      {"open MARK at STOP", "\x80\x02N(."s, "STOP with an open MARK"},
      {"bad text INT", "\x80\x02I12x\n."s, "INT: bad decimal integer '12x'"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    std::string msg = unpickle_error(c.pickle);
    CAPTURE(msg);
    CHECK(msg.rfind("test.pkl: ", 0) == 0);
    CHECK(msg.find(c.fragment) != std::string::npos);
  }
  UnpicklerLimits small;
  small.max_objects = 10;
  CHECK(unpickle_error("\x80\x02(" + std::string(20, 'N') + "t.", small).find("more than 10 objects") != std::string::npos);
}

TEST_CASE("unpickler: CPython's own pickles, protocols 2 to 5") {
  // pickle.dumps(obj, protocol=p) by CPython 3.11 for
  //   x = [7]
  //   obj = {'a': [1, -2, 3.5, True, None, 'é', b'xy', 2**62, -2**40, 1e-05, inf], 'b': (1, 2, 3, 4),
  //          's': {1}, 'od': OrderedDict([('k', (None,))]), 'shared': x, 'shared2': x, 'big': 'y' * 300}
  //   plus 'f': frozenset({2}) from protocol 4 and 'ba': bytearray(b'z') at protocol 5.
  struct Vector {
    int protocol;
    const char* hex;
  };
  const Vector vectors[] = {
      {2, "80027d71002858010000006171015d7102284b014afeffffff47400c000000000000884e5802000000c3a97103635f636f646563730a656e636f64650a710458020000007879710558060000006c6174696e3171068671075271088a0800000000000000408a060000000000ff473ee4f8b588e368f1477ff0000000000000655801000000627109284b014b024b034b0474710a580100000073710b635f5f6275696c74696e5f5f0a7365740a710c5d710d4b016185710e52710f58020000006f64711063636f6c6c656374696f6e730a4f726465726564446963740a71112952711258010000006b71134e85711473580600000073686172656471155d71164b07615807000000736861726564327117681658030000006269677118582c0100007979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797119752e"},
      {3, "80037d71002858010000006171015d7102284b014afeffffff47400c000000000000884e5802000000c3a971034302787971048a0800000000000000408a060000000000ff473ee4f8b588e368f1477ff0000000000000655801000000627105284b014b024b034b047471065801000000737107636275696c74696e730a7365740a71085d71094b016185710a52710b58020000006f64710c63636f6c6c656374696f6e730a4f726465726564446963740a710d2952710e58010000006b710f4e85711073580600000073686172656471115d71124b07615807000000736861726564327113681258030000006269677114582c0100007979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797115752e"},
      {4, "800495ef010000000000007d94288c0161945d94284b014afeffffff47400c000000000000884e8c02c3a99443027879948a0800000000000000408a060000000000ff473ee4f8b588e368f1477ff0000000000000658c016294284b014b024b034b0474948c0173948f94284b01908c026f64948c0b636f6c6c656374696f6e73948c0b4f726465726564446963749493942952948c016b944e8594738c06736861726564945d944b07618c07736861726564329468118c0362696794582c010000797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979948c016694284b029194752e"},
      {5, "800595ff010000000000007d94288c0161945d94284b014afeffffff47400c000000000000884e8c02c3a99443027879948a0800000000000000408a060000000000ff473ee4f8b588e368f1477ff0000000000000658c016294284b014b024b034b0474948c0173948f94284b01908c026f64948c0b636f6c6c656374696f6e73948c0b4f726465726564446963749493942952948c016b944e8594738c06736861726564945d944b07618c07736861726564329468118c0362696794582c010000797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979948c016694284b0291948c026261949601000000000000007a94752e"},
  };
  const GlobalAllowlist allow = {"collections.OrderedDict", "builtins.set", "__builtin__.set", "_codecs.encode"};
  for (const auto& v : vectors) {
    CAPTURE(v.protocol);
    Bytes b;
    std::string hex = v.hex;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) b.push_back(static_cast<std::byte>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    auto tree = unpickle(b, allow);
    CHECK(tree->protocol() == v.protocol);
    const PyObject& root = tree->root();
    REQUIRE(root.kind == PyKind::Dict);
    const PyObject* a = root.find("a");
    REQUIRE(a);
    REQUIRE(a->items.size() == 11);
    CHECK(a->items[0]->integer == 1);
    CHECK(a->items[1]->integer == -2);
    CHECK(a->items[2]->real == 3.5);
    CHECK(a->items[3]->boolean);
    CHECK(a->items[4]->kind == PyKind::None);
    CHECK(a->items[5]->str == "\xc3\xa9");
    if (v.protocol >= 3) {
      CHECK(a->items[6]->kind == PyKind::Bytes);
      CHECK(a->items[6]->str == "xy");
    } else {
      CHECK(a->items[6]->is_call_of("_codecs.encode"));
    }
    CHECK(a->items[7]->integer == (std::int64_t{1} << 62));
    CHECK(a->items[8]->integer == -(std::int64_t{1} << 40));
    CHECK(a->items[9]->real == 1e-05);
    CHECK(std::isinf(a->items[10]->real));
    const PyObject* t = root.find("b");
    REQUIRE(t->kind == PyKind::Tuple);
    CHECK(t->items.size() == 4);
    CHECK(t->items[3]->integer == 4);
    const PyObject* s = root.find("s");
    if (v.protocol >= 4) {
      REQUIRE(s->kind == PyKind::Set);
      CHECK(s->items.size() == 1);
    } else {
      CHECK(s->kind == PyKind::Reduce);
    }
    const PyObject* od = root.find("od");
    REQUIRE(od->is_call_of("collections.OrderedDict"));
    REQUIRE(od->find("k"));
    CHECK(od->find("k")->kind == PyKind::Tuple);
    CHECK(root.find("shared") == root.find("shared2"));
    CHECK(root.find("shared")->items[0]->integer == 7);
    CHECK(root.find("big")->str == std::string(300, 'y'));
    if (v.protocol >= 4) {
      REQUIRE(root.find("f"));
      CHECK(root.find("f")->kind == PyKind::FrozenSet);
    }
    if (v.protocol >= 5) {
      REQUIRE(root.find("ba"));
      CHECK(root.find("ba")->str == "z");
    }
    // The same bytes under the torch.package allowlist: set/OrderedDict pass, the rest is refused.
    if (v.protocol == 2) {
      CHECK(format_error([&] { (void)unpickle(b, torch_package_allowlist()); }).find("global '_codecs.encode' is not allowed") !=
            std::string::npos);
    }
  }
}

// ---- the fx code parser ---------------------------------------------------------------

TEST_CASE("fx code parser: the reference sources round-trip byte for byte") {
  for (const auto& c : reference_cases()) {
    CAPTURE(c.folder);
    std::string code = read_file(reference_dir(c.folder) / "code.py");
    auto g = parse_fx_code(code);
    g->lint();
    CHECK(python_code(*g) == code);
    // The fx-generated module (import header included) gives the same graph.
    auto zr = zip::ZipReader::open(torch_fixture(c.folder));
    auto g2 = parse_fx_code(as_string(zr.read("package/fx-generated/_0.py")));
    CHECK(g2->to_string() == g->to_string());
  }
}

TEST_CASE("fx code parser: ops, targets, literals and names") {
  const std::string code =
      "\n\n\ndef forward(self, x, y):\n"
      "    _0 = getattr(self.layers, \"0\")(x)\n"
      "    a_b = self.a.b\n"
      "    c = getattr(self, \"1\")\n"
      "    sin = x.sin()\n"
      "    sum_1 = sin.sum(dim = (0, 1), keepdim = True);  sin = None\n"
      "    relu = torch.relu(_0);  _0 = None\n"
      "    add = x + 3.0\n"
      "    sub = add - -1;  add = None\n"
      "    mul = sub * inf;  sub = None\n"
      "    truediv = mul / -inf;  mul = None\n"
      "    floordiv = truediv // 2;  truediv = None\n"
      "    mod = floordiv % 7;  floordiv = None\n"
      "    pow_1 = mod ** 2;  mod = None\n"
      "    matmul = pow_1 @ y;  pow_1 = None\n"
      "    neg = -matmul;  matmul = None\n"
      "    getitem = neg[0];  neg = None\n"
      "    getitem_1 = getitem[(slice(None, 2, None), 0)];  getitem = None\n"
      "    getitem_2 = getitem_1[slice(1, None, -1)];  getitem_1 = None\n"
      "    to = getitem_2.to(torch.float64, device = device(type='cpu'), layout = torch.strided);  getitem_2 = None\n"
      "    view = to.view([2, 3]);  to = None\n"
      "    full = torch.full((2,), nan, dtype = torch.float32)\n"
      "    x_1 = torch.stack([x, y], 0);  x = y = None\n"
      "    size = x_1.size;  x_1 = None\n"
      "    eq = size == 'it\\'s \"q\"\\n';  size = None\n"
      "    getattr_1 = getattr(relu, '0');  relu = None\n"
      "    flatten = torch.flatten(c, start_dim = 1, end_dim = -1);  c = None\n"
      "    return {'a': view, 'b': (full, [eq, None, True, False]), 'c': (a_b,), 'd': getattr_1, 'e': flatten, 'f': sum_1}\n"
      "    ";
  auto g = parse_fx_code(code);
  g->lint();
  CHECK(python_code(*g) == code);
  auto node = [&](const char* n) {
    Node* p = g->find_node(n);
    REQUIRE(p);
    return p;
  };
  CHECK(node("_0")->op() == Op::CallModule);
  CHECK(node("_0")->target() == "layers.0");
  CHECK(node("a_b")->op() == Op::GetAttr);
  CHECK(node("a_b")->target() == "a.b");
  CHECK(node("c")->target() == "1");
  CHECK(node("sin")->op() == Op::CallMethod);
  CHECK(node("sin")->target() == "sin");
  CHECK(node("sum_1")->kwargs().items[0].second == Value(Tuple{{Value(0), Value(1)}}));
  CHECK(node("relu")->op() == Op::CallFunction);
  CHECK(node("relu")->target() == "torch.relu");
  CHECK(node("add")->target() == "operator.add");
  CHECK(node("add")->args()[1] == Value(3.0));
  CHECK(node("sub")->args()[1] == Value(std::int64_t{-1}));
  CHECK(node("truediv")->target() == "operator.truediv");
  CHECK(std::isinf(node("truediv")->args()[1].to_double()));
  CHECK(node("floordiv")->target() == "operator.floordiv");
  CHECK(node("pow_1")->target() == "operator.pow");
  CHECK(node("matmul")->target() == "operator.matmul");
  CHECK(node("neg")->target() == "operator.neg");
  CHECK(node("getitem_1")->args()[1] == Value(Tuple{{Value(Slice{std::nullopt, 2, std::nullopt}), Value(0)}}));
  CHECK(node("to")->args()[1] == Value(DType::Float64));
  CHECK(node("to")->kwargs().items[0].second == Value(Device{}));
  CHECK(node("to")->kwargs().items[1].second == Value(Layout::Strided));
  CHECK(node("view")->args()[1].kind() == Value::Kind::List);
  CHECK(std::isnan(node("full")->args()[1].to_double()));
  CHECK(node("size")->target() == "builtins.getattr");
  CHECK(node("size")->args()[1] == Value("size"));
  CHECK(node("eq")->args()[1] == Value("it's \"q\"\n"));
  CHECK(node("getattr_1")->target() == "builtins.getattr");
  CHECK(g->output_node()->args()[0].kind() == Value::Kind::Dict);

  // Python spellings fx does not print still mean the same thing.
  auto g2 = parse_fx_code("def forward(self, x):\n    getitem = x[1:2, ::2, 0]\n    add = getitem+x\n    return (add, )\n");
  CHECK(g2->find_node("getitem")->args()[1] ==
        Value(Tuple{{Value(Slice{1, 2, std::nullopt}), Value(Slice{std::nullopt, std::nullopt, 2}), Value(0)}}));
  CHECK(g2->output_node()->args()[0].kind() == Value::Kind::Tuple);

  // A placeholder whose node name differs from the parameter.
  std::string aliased = "\n\n\ndef forward(self, x):\n    x_1 = x\n    sin = x_1.sin();  x_1 = None\n    return sin\n    ";
  auto g3 = parse_fx_code(aliased);
  CHECK(g3->find_node("x_1")->op() == Op::Placeholder);
  CHECK(g3->find_node("x_1")->target() == "x");
  CHECK(python_code(*g3) == aliased);
}

TEST_CASE("fx code parser: lines outside the subset are refused with line and column") {
  struct Case {
    std::string line;   // one body line inserted before `return x`
    const char* where;  // "line L, column C"
    const char* fragment;
  };
  std::vector<Case> cases = {
      {"    y = foo(x)", "line 2, column 9", "unknown function 'foo'"},
      {"    y = __import__('os')", "line 2, column 9", "'__import__' is refused"},
      {"    y = exec('1')", "line 2, column 9", "'exec' is refused"},
      {"    y = x.view(eval)", "line 2, column 16", "'eval' is refused"},
      {"    exec('import os')", "line 2, column 5", "'exec' is refused"},
      {"    __import__('os').system('ls')", "line 2, column 5", "'__import__' is refused"},
      {"    class A: pass", "line 2, column 5", "class statements are not supported"},
      {"    y = math_sqrt(x)", "line 2, column 9", "unknown function 'math_sqrt' (not a global of the import block)"},
      {"    y = x + 1 + 2", "line 2, column 11", "nested operation '+'"},
      {"    y = torch.relu(torch.sin(x))", "line 2, column 20", "nested call"},
      {"    y = x.a.b()", "line 2, column 9", "nested attribute access"},
      {"    y = (x + 1) * 2", "line 2, column 12", "nested operation '+'"},
      {"    y = -x[0]", "line 2, column 10", "nested subscript"},
      {"    if x:", "line 2, column 5", "'if' statements are not supported"},
      {"    for i in x:", "line 2, column 5", "'for' statements are not supported"},
      {"    del x", "line 2, column 5", "'del' statements are not supported"},
      {"    import os", "line 2, column 5", "'import' statements are not supported"},
      {"    y += x", "line 2, column 7", "augmented assignment '+=' must be followed by ';  <name> = <target>'"},
      {"    x += x;  y = x;  x = None\n    w = x.sin()", "line 3, column 9", "'x' is used after it was freed"},
      {"    x += x;  y = z", "line 2, column 18", "undefined name 'z'"},
      {"    x += x;  y = x.sin()", "line 2, column 18", "the in-place result must be named after its first operand"},
      {"    y: int = x", "line 2, column 14", "assignment of a plain value"},
      {"    y : Foo = x.sin()", "line 2, column 9", "unknown global 'Foo' in a type annotation"},
      {"    y : int[int = x.sin()", "line 2, column 17", "expected ',' or ']' in a type annotation"},
      {"    y = z", "line 2, column 9", "undefined name 'z'"},
      {"    w = x.sin()\n    y = w", "line 3, column 9", "assignment of a plain value"},
      {"    y = 3", "line 2, column 9", "assignment of a plain value"},
      {"    y = -3", "line 2, column 9", "assignment of a constant"},
      {"    y = None", "line 2, column 9", "assignment of a constant"},
      {"    y = torch.float16", "line 2, column 9", "assignment of a constant"},
      {"    y = x.to(torch.complex64)", "line 2, column 14", "unsupported constant 'torch.complex64'"},
      {"    y = self", "line 2, column 9", "'self' is not a value"},
      {"    x = x.sin()", "line 2, column 5", "'x' is assigned twice"},
      {"    y = x.sin(*x)", "line 2, column 15", "argument unpacking is not supported"},
      {"    y = x.sin(a = 1, a = 2)", "line 2, column 22", "keyword argument 'a' repeated"},
      {"    y = x.sin(a = 1, x)", "line 2, column 22", "positional argument after keyword argument"},
      {"    y = f'{x}'", "line 2, column 9", "string prefix 'f' is not supported"},
      {"    y = x.view('abc)", "line 2, column 16", "unterminated string literal"},
      {"    y = x.view('\\q')", "line 2, column 17", "unsupported escape \\q"},
      {"    y = x $ 2", "line 2, column 11", "unexpected character '$'"},
      {"    y = x.view((x", "line 2, column 18", "expected ',' or ')', found end of line"},
      {"    y = x.view(1 2)", "line 2, column 18", "expected ',' or ')', found '2'"},
      {"    y = x.view(99999999999999999999)", "line 2, column 16", "does not fit in 64 bits"},
      {"    y = x.view(012)", "line 2, column 16", "leading zero"},
      {"    y = x.view(1.2.3)", "line 2, column 19", "malformed number literal"},
      {"    y = x if x else x", "line 2, column 11", "'if' expressions are not supported"},
      {"    y = x < x < x", "line 2, column 15", "chained comparisons are not supported"},
      {"    y = x.view({1: 2})", "line 2, column 17", "dict keys must be strings"},
      {"    y = x.view(x[0:1])", "line 2, column 16", "nested subscript"},
      {"    y = x.view(0:1)", "line 2, column 17", "expected ',' or ')', found ':'"},
      {"    y = x.view(slice(1.5))", "line 2, column 22", "slice stop must be an int or None"},
      {"    y = x.to(device(type=1))", "line 2, column 14", "device() needs a type string"},
      {"    y = z = x.sin()", "line 2, column 11", "chained assignment"},
      {"    y, z = x", "line 2, column 5", "unsupported statement"},
      {"    y = x.sin();  z = None", "line 2, column 19", "freeing undefined name 'z'"},
      {"    y = x.sin();  x = x = None", "line 2, column 23", "'x' is freed twice"},
      {"    y = x.sin();  x = None\n    w = x.cos()", "line 3, column 9", "'x' is used after it was freed"},
      {"    y = x.sin(); x.cos()", "line 2, column 19", "expected '=' in the free list"},
      {"    y = x.sin() + 1", "line 2, column 9", "nested call"},
      {"    y = lambda: x", "line 2, column 9", "'lambda' is not supported here"},
      {"    y = 'a' 'b'", "line 2, column 13", "implicit string concatenation"},
      {"    y = x.sin()\n    return x\n    z = x.cos()", "line 4, column 5", "statement after 'return'"},
      {"    y = x.sin()\ny = x", "line 3, column 1", "unexpected unindented line"},
  };
  for (const auto& c : cases) {
    std::string src = "def forward(self, x):\n" + c.line + "\n    return x\n";
    CAPTURE(src);
    std::string msg = format_error([&] { (void)parse_fx_code(src, "gen.py"); });
    CAPTURE(msg);
    CHECK(msg.find(std::string("gen.py ") + c.where + ": ") != std::string::npos);
    CHECK(msg.find(c.fragment) != std::string::npos);
  }

  struct Whole {
    std::string src;
    const char* fragment;
  };
  using namespace std::string_literals;
  std::vector<Whole> whole = {
      {"def forward(x):\n    return x\n", "line 1, column 13: expected 'self' as the first parameter"},
      {"def forward(self, x=y):\n    return x\n", "line 1, column 21: undefined name 'y'"},
      {"def forward(self, x: Foo):\n    return x\n", "line 1, column 22: unknown global 'Foo' in a type annotation"},
      {"def forward(self, x=1, y):\n    return x\n", "line 1, column 24: parameter without a default after one with a default"},
      {"def forward(self, *args=1):\n    return args\n", "line 1, column 24: a variadic parameter cannot have a default"},
      {"def forward(self, *args):\n    return x\n", "line 2, column 12: undefined name 'x'"},
      {"def forward(self, x, x):\n    return x\n", "line 1, column 22: parameter 'x' repeated"},
      {"def forward(self, x) -> 3:\n    return x\n", "line 1, column 25: expected a type"},
      {"import builtins.exec as e\ndef forward(self, x):\n    return x\n", "line 1, column 8: 'exec' is refused"},
      {"from builtins import exec as run\ndef forward(self, x):\n    return x\n", "line 1, column 22: 'exec' is refused"},
      {"class Foo:\n    pass\ndef forward(self, x):\n    return x\n", "line 1, column 1: class statements are not supported"},
      {"__import__('os')\ndef forward(self, x):\n    return x\n", "line 1, column 1: '__import__' is refused"},
      {"torch.fx._symbolic_trace.wrap(\"f\")\ndef forward(self, x):\n    return x\n", "line 1, column 1: wrap(\"f\") names a function no node calls"},
      {"def backward(self, x):\n    return x\n", "line 1, column 5: expected 'forward'"},
      {"import os; os.system('ls')\ndef forward(self, x):\n    return x\n", "line 1, column 10: unexpected text after the import"},
      {"os.system('ls')\ndef forward(self, x):\n    return x\n", "line 1, column 1: only imports and wrap() lines may come before"},
      {"x = 1\n", "line 1, column 1: only imports"},
      {"import torch\n", "line 2, column 1: no 'def forward(self, ...):' line"},
      {"def forward(self, x):\n    y = x.sin()\n", "line 3, column 1: no 'return' statement"},
      {"def forward(self, torch):\n    return torch\n", "the placeholder name 'torch' cannot be kept"},
      {"def forward(self, x):\n    inf = x.sin()\n    return inf\n", "line 2, column 5: the name 'inf' cannot be kept"},
      // Names the graph refuses (found by fuzz_fx_code_parser): the refusal is placed.
      {"def forward(self, x_99999999999999999999):\n    return x_99999999999999999999\n",
       "line 1, column 1: name 'x_99999999999999999999': the number after its last '_' is above"},
      {"def forward(self, x):\n    add_99999999999999999999 = x + 1\n    return add_99999999999999999999\n",
       "line 2, column 5: name 'add_99999999999999999999': the number after its last '_' is above"},
      {"def forward(self, x):\n    y = x.sin()\n    return y, x\n", "line 3, column 13: returning a bare tuple"},
      {"def forward(self, x):\n    return x\0\n"s, "line 2, column 13: NUL character"},
  };
  for (const auto& w : whole) {
    CAPTURE(w.src);
    std::string msg = format_error([&] { (void)parse_fx_code(w.src, "gen.py"); });
    CAPTURE(msg);
    CHECK(msg.find(w.fragment) != std::string::npos);
  }
  // Deep nesting is bounded, not a stack overflow.
  std::string deep = "def forward(self, x):\n    y = x.view(" + std::string(100000, '(') + "\n    return y\n";
  CHECK(format_error([&] { (void)parse_fx_code(deep); }).find("expression nested deeper than 64 levels") != std::string::npos);
}

TEST_CASE("fx code parser: every prefix of a real source parses or fails with a FormatError") {
  std::string code = read_file(reference_dir("small_convnet") / "code.py");
  std::size_t ok = 0;
  for (std::size_t n = 0; n <= code.size(); ++n) {
    try {
      (void)parse_fx_code(std::string_view(code).substr(0, n));
      ++ok;
    } catch (const FormatError&) {
    }
  }
  CHECK(ok >= 1);
}

// ---- hand-built packages --------------------------------------------------------------

namespace {

// Writes pickle opcodes by hand, for packages PyTorch would never write.
struct PickleBuilder {
  std::string s = std::string("\x80\x03", 2);
  PickleBuilder& op(char c) {
    s += c;
    return *this;
  }
  PickleBuilder& u32(std::uint32_t n) {
    for (int i = 0; i < 4; ++i) s += static_cast<char>((n >> (8 * i)) & 0xff);
    return *this;
  }
  PickleBuilder& str(std::string_view v) {
    s += 'X';
    u32(static_cast<std::uint32_t>(v.size()));
    s += v;
    return *this;
  }
  PickleBuilder& integer(std::int32_t v) {
    s += 'J';
    return u32(static_cast<std::uint32_t>(v));
  }
  PickleBuilder& global(std::string_view m, std::string_view n) {
    s += 'c';
    s += m;
    s += '\n';
    s += n;
    s += '\n';
    return *this;
  }
  PickleBuilder& put(std::uint32_t i) {
    s += 'r';
    return u32(i);
  }
  PickleBuilder& get(std::uint32_t i) {
    s += 'j';
    return u32(i);
  }
  PickleBuilder& empty_od() { return global("collections", "OrderedDict").op(')').op('R'); }
  // NEWOBJ of a torch.nn class, then BUILD with {_parameters, _buffers, _modules: <modules>, extra}.
  template <class Modules, class Extra>
  PickleBuilder& module(std::string_view m, std::string_view cls, std::int64_t memo, Modules modules, Extra extra) {
    global(m, cls).op(')').op('\x81');
    if (memo >= 0) put(static_cast<std::uint32_t>(memo));
    op('}').op('(').str("_parameters").empty_od().str("_buffers").empty_od().str("_modules");
    modules(*this);
    extra(*this);
    return op('u').op('b');
  }
};

zip::ZipReader crafted_package(const std::function<void(PickleBuilder&)>& modules, const std::string& code) {
  PickleBuilder p;
  p.op('(').str("reduce_package").integer(0).global("torch.fx.graph_module", "reduce_package_graph_module");
  p.op('}').op('(').str("_parameters").empty_od().str("_buffers").empty_od().str("_modules");
  modules(p);
  p.str("_graphmodule_cls_name").str("Crafted").op('u').str("fx-generated._0").op('\x86').op('t').op('Q').op('.');
  auto w = zip::ZipWriter::to_memory();
  w.add_stored("pkg/.data/version", to_bytes("6\n"));
  w.add_stored("pkg/.data/extern_modules", to_bytes("torch\n"));
  w.add_stored("pkg/model/model.pkl", to_bytes(p.s));
  w.add_stored("pkg/fx-generated/_0.py", to_bytes(code));
  return zip::ZipReader::from_memory(std::make_shared<const Bytes>(w.finish()));
}

auto relu_extra(PickleBuilder& b) { b.str("inplace").op('\x89'); }
auto no_extra(PickleBuilder&) {}

}  // namespace

TEST_CASE("torch.package: hand-built packages (sharing, cycles, expansion)") {
  const std::string two = "\n\n\ndef forward(self, x):\n    a = self.a(x);  x = None\n    b = self.b(a);  a = None\n    return b\n    ";
  // One ReLU object under two names stays one module.
  auto shared = crafted_package(
      [](PickleBuilder& p) {
        p.empty_od().op('(').str("a");
        p.module("torch.nn.modules.activation", "ReLU", 200, [](PickleBuilder& b) { b.empty_od(); }, relu_extra);
        p.str("b").get(200).op('u');
      },
      two);
  auto gm = load_torch_package(shared, "model", "model.pkl");
  CHECK(gm->class_name() == "Crafted");
  CHECK(gm->code() == two);
  CHECK(gm->find_child("a") == gm->find_child("b"));
  Tensor x = Tensor::from_vector(std::vector<float>{-1.f, 2.f}, Shape{2});
  CHECK(run(*gm, x).to_doubles() == std::vector<double>{0.0, 2.0});

  // A module inside itself.
  auto cyclic = crafted_package(
      [](PickleBuilder& p) {
        p.empty_od().op('(').str("a");
        p.module("torch.nn.modules.module", "Module", 300,
                 [](PickleBuilder& b) { b.empty_od().op('(').str("inner").get(300).op('u'); }, no_extra);
        p.op('u');
      },
      two);
  CHECK(format_error([&] { load_torch_package(cyclic, "model", "model.pkl"); }).find("module 'a.inner': a module contains itself") !=
        std::string::npos);

  // An attribute value made of a tuple holding the same tuple twice, 60 levels deep.
  auto expanding = crafted_package(
      [](PickleBuilder& p) {
        p.op(')').put(1000).op('0');
        for (std::uint32_t i = 1; i <= 60; ++i) p.get(1000 + i - 1).get(1000 + i - 1).op('\x86').put(1000 + i).op('0');
        p.empty_od().op('(').str("a");
        p.module("torch.nn.modules.activation", "ReLU", -1, [](PickleBuilder& b) { b.empty_od(); },
                 [](PickleBuilder& b) { b.str("inplace").get(1060); });
        p.op('u');
      },
      two);
  std::string msg = format_error([&] { load_torch_package(expanding, "model", "model.pkl"); });
  CAPTURE(msg);
  CHECK(msg.find("expand to more than 1048576 objects") != std::string::npos);

  // An unsupported configuration attribute and a missing one.
  auto extra_attr = crafted_package(
      [](PickleBuilder& p) {
        p.empty_od().op('(').str("a");
        p.module("torch.nn.modules.activation", "ReLU", -1, [](PickleBuilder& b) { b.empty_od(); },
                 [](PickleBuilder& b) { b.str("inplace").op('\x89').str("negative_slope").integer(1); });
        p.op('u');
      },
      two);
  CHECK(format_error([&] { load_torch_package(extra_attr, "model", "model.pkl"); })
            .find("module 'a' (ReLU): unsupported attribute 'negative_slope'") != std::string::npos);
  auto missing_attr = crafted_package(
      [](PickleBuilder& p) {
        p.empty_od().op('(').str("a");
        p.module("torch.nn.modules.activation", "ReLU", -1, [](PickleBuilder& b) { b.empty_od(); }, no_extra);
        p.op('u');
      },
      two);
  CHECK(format_error([&] { load_torch_package(missing_attr, "model", "model.pkl"); })
            .find("module 'a' (ReLU): attribute 'inplace' is missing") != std::string::npos);
}

TEST_CASE("fx code parser: byte changes anywhere in a real source parse or fail with a FormatError") {
  const std::string code = read_file(reference_dir("small_convnet") / "code.py");
  std::size_t refused = 0;
  for (std::size_t i = 0; i < code.size(); ++i) {
    for (char c : {'(', ')', '"', '\'', '\\', ' ', 'x', '.', ',', '=', ';', '-', '[', '\n', '\0', '\xff', '0'}) {
      std::string s = code;
      if (s[i] == c) continue;
      s[i] = c;
      try {
        auto g = parse_fx_code(s);
        g->lint();
      } catch (const FormatError&) {
        ++refused;
      }
    }
  }
  CHECK(refused > 0);
}

// ---- export ---------------------------------------------------------------------------

namespace {
// The object id PyTorch recorded (LONG1 after 'reduce_package') masked out.
std::string mask_id(std::string pkl) {
  REQUIRE(pkl.size() > 32);
  REQUIRE(pkl[24] == '\x8a');
  std::size_t n = static_cast<unsigned char>(pkl[25]);
  for (std::size_t i = 0; i < n; ++i) pkl[26 + i] = '?';
  return pkl;
}
}  // namespace

TEST_CASE("torch.package export: the records PyTorch wrote, byte for byte (id masked)") {
  for (const auto& c : reference_cases()) {
    CAPTURE(c.folder);
    auto ref = zip::ZipReader::open(torch_fixture(c.folder));
    auto gm = load_torch_package(ref, "model", "model.pkl");
    auto w = zip::ZipWriter::to_memory();
    TorchExportOptions opts;
    opts.root = "package";
    save_torch_package(w, *gm, "model", "model.pkl", opts);
    auto out = zip::ZipReader::from_memory(std::make_shared<const Bytes>(w.finish()));
    REQUIRE(out.entries().size() == ref.entries().size());
    for (std::size_t i = 0; i < ref.entries().size(); ++i) {
      const std::string& name = ref.entries()[i].name;
      CAPTURE(name);
      CHECK(out.entries()[i].name == name);
      std::string mine = as_string(out.read(name));
      std::string theirs = as_string(ref.read(name));
      if (name.ends_with("model.pkl")) {
        CHECK(mask_id(mine) == mask_id(theirs));
      } else {
        CHECK(mine == theirs);
      }
    }
    // And it loads back.
    auto back = load_torch_package(out, "model", "model.pkl");
    CHECK(back->code() == gm->code());
    CHECK(back->class_name() == gm->class_name());
    CHECK(allclose(run(*back, fxpack::testing::reference_input(c)), fxpack::testing::reference_output(c), 1e-5, 1e-6));
  }
}

TEST_CASE("torch.package export: fxpack's own traced models give PyTorch's pickle") {
  for (const auto& c : reference_cases()) {
    if (c.folder == "seed_sin") continue;  // a traced C++ lambda has no Python class name
    CAPTURE(c.folder);
    auto traced = fxpack::testing::trace_reference(c.folder);
    auto w = zip::ZipWriter::to_memory();
    TorchExportOptions opts;
    opts.root = "package";
    save_torch_package(w, *traced, "model", "model.pkl", opts);
    auto out = zip::ZipReader::from_memory(std::make_shared<const Bytes>(w.finish()));
    auto ref = zip::ZipReader::open(torch_fixture(c.folder));
    CHECK(mask_id(as_string(out.read("package/model/model.pkl"))) == mask_id(as_string(ref.read("package/model/model.pkl"))));
    auto back = load_torch_package(out, "model", "model.pkl");
    CHECK(allclose(run(*back, fxpack::testing::reference_input(c)), fxpack::testing::reference_output(c), 1e-5, 1e-6));
  }
  // Deterministic, and refusals name the problem.
  auto gm = fxpack::testing::trace_reference("mlp");
  auto bytes = [&] {
    auto w = zip::ZipWriter::to_memory();
    save_torch_package(w, *gm, "model", "model.pkl");
    return w.finish();
  };
  CHECK(bytes() == bytes());
  {
    // Root-level tensors (get_attr), a Sequential, a plain Module parent and a bias-less Conv2d.
    auto root = std::make_shared<Module>("Net");
    root->register_parameter("w", Tensor::from_vector(std::vector<float>{1.f, 2.f, 3.f}, Shape{3}));
    root->register_buffer("b", Tensor::from_vector(std::vector<std::int64_t>{4}, Shape{1}));
    root->register_module("seq", nn::Sequential({nn::ReLU(), nn::ReLU(true)}));
    auto g = std::make_shared<Graph>();
    Node* x = g->placeholder("x");
    Node* w = g->get_attr("w");
    Node* add = g->call_function("operator.add", {Value(x), Value(w)});
    Node* seq = g->call_module("seq", {Value(add)});
    Node* b = g->get_attr("b");
    g->output(Value(Tuple{{Value(seq), Value(b)}}));
    auto net = make_graph_module(root, g, {.class_name = "Net", .graph_module_cls = GraphModuleClass::Lazy});
    auto w2 = zip::ZipWriter::to_memory();
    save_torch_package(w2, *net, "pkg.sub", "net.pkl");
    auto zr = zip::ZipReader::from_memory(std::make_shared<const Bytes>(w2.finish()));
    CHECK(zr.find("archive/pkg/sub/net.pkl"));
    auto back = load_torch_package(zr, "pkg.sub", "net.pkl");
    CHECK(back->code() == net->code());
    CHECK(back->repr() == net->repr());
    Tensor in = Tensor::from_vector(std::vector<float>{-5.f, 0.f, 5.f}, Shape{3});
    Value r = back->forward(std::vector<Value>{Value(in)});
    CHECK(r.items()[0].tensor().to_doubles() == std::vector<double>{0.0, 2.0, 8.0});
    CHECK(r.items()[1].tensor().dtype() == DType::Int64);
    CHECK(back->get_tensor("w").storage()->borrowed());
  }
  auto custom = std::make_shared<Module>("MyBlock");
  auto root = std::make_shared<Module>("Root");
  root->register_module("blk", custom);
  auto g = std::make_shared<Graph>();
  Node* x = g->placeholder("x");
  g->output(Value(g->call_module("blk", {Value(x)})));
  auto unsupported = make_graph_module(root, g, {.class_name = "Root", .graph_module_cls = GraphModuleClass::Lazy});
  auto w = zip::ZipWriter::to_memory();
  try {
    save_torch_package(w, *unsupported, "model", "model.pkl");
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("module 'blk' of kind MyBlock has no torch.nn class") != std::string::npos);
  }
}

// ---- PyTorch 2.x archives, versions, data-only modules, dtypes ---------------------------

namespace {
std::filesystem::path torch26_fixture(const std::string& folder) {
  return fixtures_dir() / "torch" / folder / "package-2.6.pt";
}

// A 2.x archive's id fields masked: the pickle's object id and the serialization id.
std::string mask_record(const std::string& name, std::string bytes) {
  if (name.ends_with("model.pkl")) return mask_id(std::move(bytes));
  if (name.ends_with(".data/serialization_id")) return std::string(bytes.size(), '?');
  return bytes;
}
}  // namespace

TEST_CASE("torch.package 2.6: every reference archive loads in the 2.x dialect, with PyTorch's code and outputs") {
  for (const auto& c : reference_cases()) {
    CAPTURE(c.folder);
    auto zr = zip::ZipReader::open(torch26_fixture(c.folder));
    CHECK(torch_package_root(zr) == "package-2.6");
    CHECK(torch_package_version(zr) == 6);
    CHECK(torch_package_dialect(zr) == Dialect::Torch2);
    auto gm = load_torch_package(zr, "model", "model.pkl");
    CHECK(gm->graph().dialect() == Dialect::Torch2);
    CHECK(gm->class_name() == class_name_of(c.folder));
    CHECK(gm->code() == read_file(fixtures_dir() / "torch" / c.folder / "code-2.6.py"));
    CHECK(gm->print_readable(false) == read_file(fixtures_dir() / "torch" / c.folder / "readable-2.6.txt"));
    CHECK(allclose(run(*gm, fxpack::testing::reference_input(c)), fxpack::testing::reference_output(c), 1e-5, 1e-6));
    // The same modules and tensors as the 1.13 archive of the same model.
    auto old = load_torch_package(zip::ZipReader::open(torch_fixture(c.folder)), "model", "model.pkl");
    CHECK(old->graph().dialect() == Dialect::Torch1_13);
    CHECK(gm->repr() == old->repr());
    const auto a = gm->named_parameters(), b = old->named_parameters();
    REQUIRE(a.size() == b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      CHECK(a[i].first == b[i].first);
      CHECK(allclose(a[i].second, b[i].second, 0, 0));
    }
    CHECK(gm->named_buffers().size() == old->named_buffers().size());
  }
}

TEST_CASE("torch.package export for 2.6: the records PyTorch 2.6 wrote, byte for byte (ids masked)") {
  for (const auto& c : reference_cases()) {
    CAPTURE(c.folder);
    auto ref = zip::ZipReader::open(torch26_fixture(c.folder));
    auto gm = load_torch_package(ref, "model", "model.pkl");
    for (bool from_13 : {false, true}) {
      // From the 2.6 archive, and from the 1.13 archive of the same model: the target decides.
      auto src = from_13 ? load_torch_package(zip::ZipReader::open(torch_fixture(c.folder)), "model", "model.pkl") : gm;
      auto w = zip::ZipWriter::to_memory();
      TorchExportOptions opts;
      opts.version = Dialect::Torch2;
      opts.root = "package-2.6";
      save_torch_package(w, *src, "model", "model.pkl", opts);
      auto out = zip::ZipReader::from_memory(std::make_shared<const Bytes>(w.finish()));
      REQUIRE(out.entries().size() == ref.entries().size());
      for (std::size_t i = 0; i < ref.entries().size(); ++i) {
        const std::string& name = ref.entries()[i].name;
        CAPTURE(name);
        CHECK(out.entries()[i].name == name);
        CHECK(mask_record(name, as_string(out.read(name))) == mask_record(name, as_string(ref.read(name))));
      }
      auto back = load_torch_package(out, "model", "model.pkl");
      CHECK(back->graph().dialect() == Dialect::Torch2);
      CHECK(allclose(run(*back, fxpack::testing::reference_input(c)), fxpack::testing::reference_output(c), 1e-5, 1e-6));
    }
  }
  // The serialization id is derived from the contents: the same module gives the same bytes.
  auto gm = fxpack::testing::trace_reference("mlp");
  auto bytes = [&] {
    auto w = zip::ZipWriter::to_memory();
    TorchExportOptions opts;
    opts.version = Dialect::Torch2;
    save_torch_package(w, *gm, "model", "model.pkl", opts);
    return w.finish();
  };
  CHECK(bytes() == bytes());
}

TEST_CASE("torch.package: .data/version is read as PyTorch reads it, 1 to 10") {
  struct Case {
    std::string text;
    std::uint64_t version;  // 0: refused
    const char* fragment;
  };
  const std::vector<Case> cases = {
      {"6\n", 6, ""},   {"1", 1, ""},     {"10\n", 10, ""}, {" 6", 6, ""}, {"\t\n6", 6, ""}, {"6abc", 6, ""},
      {"+6", 6, ""},
      {"0\n", 0, "torch.package version 0 is not supported; PyTorch reads versions 1 to 10"},
      {"11\n", 0, "torch.package version 11 is not supported; PyTorch reads versions 1 to 10"},
      {"999\n", 0, "package/.data/version: torch.package version 999 is not supported; PyTorch reads versions 1 to 10"},
      {"-1", 0, "torch.package version 18446744073709551615 is not supported"},
      {"abc", 0, "cannot parse the version 'abc' as a number"},
      {"", 0, "cannot parse the version '' as a number"},
      {"99999999999999999999999", 0, "cannot parse the version '99999999999999999999999'"},
      {"\x1b[31m", 0, "cannot parse the version '\\x1b[31m'"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto zr = repack("mlp", {{"package/.data/version", to_bytes(c.text)}});
    if (c.version) {
      CHECK(torch_package_version(zr) == c.version);
      CHECK(load_torch_package(zr, "model", "model.pkl")->class_name() == "MLP");
    } else {
      std::string msg = format_error([&] { (void)load_torch_package(zr, "model", "model.pkl"); });
      CAPTURE(msg);
      CHECK(msg.find(c.fragment) != std::string::npos);
    }
  }
  // Without .data/version: the legacy `version` record, as PyTorch falls back to it; neither
  // is an error that says so.
  auto legacy = [] {
    auto src = zip::ZipReader::open(torch_fixture("mlp"));
    auto w = zip::ZipWriter::to_memory();
    for (const auto& e : src.entries()) {
      w.add_stored(e.name == "package/.data/version" ? std::string("package/version") : e.name, src.read(e.name));
    }
    return zip::ZipReader::from_memory(std::make_shared<const Bytes>(w.finish()));
  }();
  CHECK(torch_package_version(legacy) == 6);
  auto none = repack("mlp", {}, {"package/.data/version"});
  CHECK(is_torch_package(none));
  CHECK(format_error([&] { (void)load_torch_package(none, "model", "model.pkl"); }) ==
        "torch.package archive has no .data/version record (package/.data/version)");
  PackageImporter pi(zip::ZipReader::open(torch_fixture("mlp")).entries().empty() ? Bytes{} : [&] {
    auto w = zip::ZipWriter::to_memory();
    auto src = zip::ZipReader::open(torch_fixture("mlp"));
    for (const auto& e : src.entries())
      if (e.name != "package/.data/version") w.add_stored(e.name, src.read(e.name));
    return w.finish();
  }());
  CHECK_THROWS_WITH_AS(pi.load_pickle("model", "model.pkl"), doctest::Contains("has no .data/version record"), FormatError);
}

TEST_CASE("torch.package: a torch.nn class without an fxpack kind is kept as data, and written back") {
  // mlp's ReLU renamed to a class fxpack has no kind for (Softsign).
  auto zr = repack("mlp", {{"package/model/model.pkl", patched_pickle("mlp", "torch.nn.modules.activation\nReLU",
                                                                      "torch.nn.modules.activation\nSoftsign")}});
  auto gm = load_torch_package(zr, "model", "model.pkl");
  auto relu = gm->get_submodule("relu");
  CHECK(relu->kind() == "torch.nn.modules.activation.Softsign");
  CHECK(relu->attrs() == Dict{{{"inplace", false}}});
  CHECK(gm->code() == read_file(reference_dir("mlp") / "code.py"));
  CHECK_THROWS_WITH_AS((*gm)(fxpack::testing::reference_input(reference_cases()[2])),
                       doctest::Contains("torch.nn.modules.activation.Softsign"), Error);
  // It pickles, and exports as its own class.
  auto back = pickle::loads(pickle::dumps(*gm), {.on_warning = [](const std::string&) {}});
  CHECK(back->get_submodule("relu")->kind() == "torch.nn.modules.activation.Softsign");
  for (Dialect version : {Dialect::Torch1_13, Dialect::Torch2}) {
    auto w = zip::ZipWriter::to_memory();
    TorchExportOptions opts;
    opts.version = version;
    save_torch_package(w, *gm, "model", "model.pkl", opts);
    auto out = zip::ZipReader::from_memory(std::make_shared<const Bytes>(w.finish()));
    CHECK(as_string(out.read("archive/model/model.pkl")).find("torch.nn.modules.activation\nSoftsign\n") != std::string::npos);
    CHECK(load_torch_package(out, "model", "model.pkl")->get_submodule("relu")->attrs() == relu->attrs());
  }
  // A member PyTorch keeps as None comes back as an undefined tensor, and is written as None.
  PickleBuilder p;
  p.op('(').str("reduce_package").integer(0).global("torch.fx.graph_module", "reduce_package_graph_module");
  p.op('}').op('(').str("_parameters").empty_od().str("_buffers").empty_od().str("_modules");
  p.global("collections", "OrderedDict").op(')').op('R').op('(').str("m");
  p.module("torch.nn.modules.activation", "RReLU", -1, [](PickleBuilder& b) { b.empty_od(); }, [](PickleBuilder& b) {
    b.str("num_parameters").integer(1).str("_private").op('N');
  });
  p.op('u').str("_graphmodule_cls_name").str("Crafted").op('u').str("fx-generated._0").op('\x86').op('t').op('Q').op('.');
  // (PickleBuilder::module writes _parameters as an empty OrderedDict; add a None slot.)
  std::string pkl = p.s;
  auto at = pkl.find("RReLU");
  REQUIRE(at != std::string::npos);
  const std::string od = "ccollections\nOrderedDict\n)R";
  auto params = pkl.find(od, at);
  pkl.insert(params + od.size(), std::string("X\x06\x00\x00\x00weightNs", 13));
  auto w = zip::ZipWriter::to_memory();
  w.add_stored("pkg/.data/version", to_bytes("6\n"));
  w.add_stored("pkg/.data/extern_modules", to_bytes("torch\n"));
  w.add_stored("pkg/model/model.pkl", to_bytes(pkl));
  w.add_stored("pkg/fx-generated/_0.py", to_bytes("\n\n\ndef forward(self, x):\n    m = self.m(x);  x = None\n    return m\n    "));
  auto crafted = zip::ZipReader::from_memory(std::make_shared<const Bytes>(w.finish()));
  auto rrelu = load_torch_package(crafted, "model", "model.pkl")->get_submodule("m");
  CHECK(rrelu->kind() == "torch.nn.modules.activation.RReLU");
  REQUIRE(rrelu->find_parameter("weight"));
  CHECK_FALSE(rrelu->find_parameter("weight")->defined());
  CHECK(rrelu->attrs() == Dict{{{"num_parameters", 1}, {"_private", None{}}}});
}

TEST_CASE("torch.package: half, bfloat16 and integer storages load, convert and export") {
  // One buffer per storage type added for 2.x archives, two elements each.
  struct Storage16 {
    const char* storage;
    DType dtype;
    std::vector<std::uint8_t> bytes;
    std::vector<double> values;
  };
  const std::vector<Storage16> kinds = {
      {"HalfStorage", DType::Float16, {0x00, 0x3c, 0x00, 0xc0}, {1.0, -2.0}},
      {"BFloat16Storage", DType::BFloat16, {0x80, 0x3f, 0x40, 0xc0}, {1.0, -3.0}},
      {"IntStorage", DType::Int32, {0x07, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, {7.0, -1.0}},
      {"CharStorage", DType::Int8, {0x05, 0xfe}, {5.0, -2.0}},
      {"ShortStorage", DType::Int16, {0x00, 0x01, 0xff, 0xff}, {256.0, -1.0}},
  };
  for (const auto& k : kinds) {
    CAPTURE(k.storage);
    PickleBuilder p;
    p.op('(').str("reduce_package").integer(0).global("torch.fx.graph_module", "reduce_package_graph_module");
    p.op('}').op('(').str("_parameters").empty_od().str("_buffers");
    p.global("collections", "OrderedDict").op(')').op('R').op('(').str("b");
    p.global("torch._utils", "_rebuild_tensor_v2").op('(');
    p.op('(').str("storage").global("torch", k.storage).str("0").str("cpu").integer(2).op('t').op('Q');
    p.integer(0).integer(2).op('\x85').integer(1).op('\x85').op('\x89').empty_od().op('t').op('R');
    p.op('u').str("_modules").empty_od();
    p.str("_graphmodule_cls_name").str("Crafted").op('u').str("fx-generated._0").op('\x86').op('t').op('Q').op('.');
    auto w = zip::ZipWriter::to_memory();
    w.add_stored("pkg/.data/0.storage", Bytes(reinterpret_cast<const std::byte*>(k.bytes.data()),
                                              reinterpret_cast<const std::byte*>(k.bytes.data()) + k.bytes.size()));
    w.add_stored("pkg/.data/version", to_bytes("6\n"));
    w.add_stored("pkg/.data/extern_modules", to_bytes("torch\n"));
    w.add_stored("pkg/model/model.pkl", to_bytes(p.s));
    w.add_stored("pkg/fx-generated/_0.py", to_bytes("\n\n\ndef forward(self, x):\n    b = self.b\n    return b\n    "));
    auto zr = zip::ZipReader::from_memory(std::make_shared<const Bytes>(w.finish()));
    auto gm = load_torch_package(zr, "model", "model.pkl");
    const Tensor& b = gm->get_tensor("b");
    CHECK(b.dtype() == k.dtype);
    CHECK(b.to_doubles() == k.values);
    CHECK(b.to(DType::Float32).to(k.dtype).to_doubles() == k.values);
    auto out = zip::ZipWriter::to_memory();
    save_torch_package(out, *gm, "model", "model.pkl");
    auto back = load_torch_package(zip::ZipReader::from_memory(std::make_shared<const Bytes>(out.finish())), "model", "model.pkl");
    CHECK(back->get_tensor("b").dtype() == k.dtype);
    CHECK(back->get_tensor("b").to_doubles() == k.values);
  }
}

TEST_CASE("torch.package: a strided view is gathered into a storage of its own") {
  // mlp's fc1.weight [8, 4] read with stride (1, 8): a view of the storage's first 32
  // elements in another order.
  auto zr = repack("mlp", {{"package/model/model.pkl", patched_pickle("mlp", "K\x04K\x01\x86", "K\x01K\x08\x86")}});
  auto gm = load_torch_package(zr, "model", "model.pkl");
  const Tensor& w = gm->get_tensor("fc1.weight");
  auto raw = zip::ZipReader::open(torch_fixture("mlp")).read("package/.data/0.storage");
  const float* f = reinterpret_cast<const float*>(raw.data());
  REQUIRE(w.shape() == Shape{8, 4});
  for (std::int64_t i = 0; i < 8; ++i)
    for (std::int64_t j = 0; j < 4; ++j) CHECK(w.data<float>()[i * 4 + j] == f[i * 1 + j * 8]);
  CHECK_FALSE(w.storage()->borrowed());
}

TEST_CASE("fx code parser: long chains are bounded by the depth limit, not the stack") {
  auto refused = [](const std::string& expr) {
    std::string src = "def forward(self, x):\n    y = " + expr + "\n    return y\n";
    return format_error([&] { (void)parse_fx_code(src, "gen.py"); });
  };
  std::string chain = "x";
  for (int i = 0; i < 50000; ++i) chain += ".a";  // 100 KB
  CHECK(refused(chain).find("expression nested deeper than 64 levels") != std::string::npos);
  std::string sum = "x";
  for (int i = 0; i < 300000; ++i) sum += "+x";  // 600 KB
  CHECK(refused(sum).find("line 2, column ") != std::string::npos);
  CHECK(refused(sum).find("expression nested deeper than 64 levels") != std::string::npos);
  std::string index = "x";
  for (int i = 0; i < 300000; ++i) index += "[0]";
  CHECK(refused(index).find("expression nested deeper than 64 levels") != std::string::npos);
  std::string calls = "x.f";
  for (int i = 0; i < 300000; ++i) calls += "()";
  CHECK(refused(calls).find("expression nested deeper than 64 levels") != std::string::npos);
  std::string mixed = "x";
  for (int i = 0; i < 100000; ++i) mixed += (i % 3 == 0 ? "*x" : i % 3 == 1 ? ".b" : "[1]");
  CHECK(refused(mixed).find("expression nested deeper than 64 levels") != std::string::npos);
  // The height, not the size, is bounded: a long flat list is fine.
  std::string list = "x.view([";
  for (int i = 0; i < 20000; ++i) list += (i ? ", " : "") + std::to_string(i);
  CHECK(refused(list + "])") == "");
  // fx's own deep getattr chains stay far below the limit.
  std::string path = "getattr(self, \"0\")";
  for (int i = 0; i < 30; ++i) path = "getattr(" + path + ", \"" + std::to_string(i) + "\")";
  CHECK(refused(path + "(x)").find("the graph") == std::string::npos);

  // Lines and identifiers have limits of their own.
  FxParseLimits small;
  small.max_line_bytes = 100;
  small.max_identifier_bytes = 16;
  std::string long_line = "def forward(self, x):\n    y = x.view(" + std::string(200, '1') + ")\n    return y\n";
  CHECK(format_error([&] { (void)parse_fx_code(long_line, "gen.py", small); }) ==
        "gen.py line 2, column 1: line of 216 bytes exceeds the limit of 100");
  std::string long_name = "def forward(self, x):\n    abcdefghijklmnopq = x.sin()\n    return abcdefghijklmnopq\n";
  CHECK(format_error([&] { (void)parse_fx_code(long_name, "gen.py", small); }) ==
        "gen.py line 2, column 5: identifier of 17 characters exceeds the limit of 16");
}

TEST_CASE("fx code parser: slices whose parts are values of the graph") {
  const std::string code =
      "\n\n\ndef forward(self, x, n):\n"
      "    getitem = x[slice(None, n, None)];  x = None\n"
      "    getitem_1 = getitem[(slice(1, n, 1), 0)];  getitem = n = None\n"
      "    return getitem_1\n    ";
  auto g = parse_fx_code(code);
  g->lint();
  CHECK(python_code(*g) == code);
  Node* n = g->find_node("n");
  Node* item = g->find_node("getitem");
  CHECK(item->args()[1].slice().nodes[1] == n);
  CHECK(std::vector<Node*>(item->input_nodes().begin(), item->input_nodes().end()) ==
        std::vector<Node*>{g->find_node("x"), n});
  CHECK(n->users().size() == 2);
  // Copies, pickles and node replacement keep the references.
  CHECK(python_code(*g->clone()) == code);
  auto gm = make_graph_module(std::make_shared<Module>(), g, {.class_name = "Slicer", .graph_module_cls = GraphModuleClass::Lazy});
  for (auto f : {pickle::PickleFormat::PortableBinary, pickle::PickleFormat::Json, pickle::PickleFormat::BoostXml}) {
    CHECK(pickle::loads(pickle::dumps(*gm, f))->code() == code);
  }
  // Run: the plan resolves each slice to plain ints before the kernel sees it.
  Tensor x = Tensor::from_vector(std::vector<float>{0, 1, 2, 3, 4, 5}, Shape{3, 2});
  Value y = gm->forward(std::vector<Value>{Value(x), Value(std::int64_t{3})});
  CHECK(y.tensor().shape() == Shape{2});
  CHECK(y.tensor().to_doubles() == std::vector<double>{2, 4});
  // A part that is not an int when the graph runs is refused by name.
  CHECK_THROWS_WITH_AS(gm->forward(std::vector<Value>{Value(x), Value(1.5)}),
                       doctest::Contains("slice stop must be an int or None, got float"), OpError);
  Node* m = g->placeholder("m");
  n->replace_all_uses_with(m);
  CHECK(item->args()[1].slice().nodes[1] == m);
}
