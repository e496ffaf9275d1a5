// Pickling: round trips in all five formats, laziness after load, golden fixtures, and
// corrupt/hostile input.
#include <cereal/archives/portable_binary.hpp>
#include <doctest/doctest.h>
#include <boost/archive/binary_iarchive.hpp>
#include <boost/archive/binary_oarchive.hpp>

#include <bit>
#include <cmath>
#include <iostream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include <zlib.h>

#include "fxpack/detail/serialize.hpp"
#include "fxpack/fxpack.hpp"
#include "fxpack/pickle.hpp"
#include "pickle/checked_record.hpp"
#include "reference_models.hpp"

using namespace fxpack;
namespace pk = fxpack::pickle;
using fxpack::testing::random_tensor;

namespace {

constexpr pk::PickleFormat kFormats[] = {pk::PickleFormat::PortableBinary, pk::PickleFormat::Json,
                                         pk::PickleFormat::BoostText, pk::PickleFormat::BoostBinary,
                                         pk::PickleFormat::BoostXml};

bool is_lazy(const std::shared_ptr<GraphModule>& gm) {
  return gm && gm->is_lazy() && dynamic_cast<LazyGraphModule*>(gm.get()) != nullptr;
}

pk::LoadOptions quiet() {
  pk::LoadOptions o;
  o.on_warning = [](const std::string&) {};
  return o;
}

// quiet(), comparing the source hash during the load so the report holds the verdict.
pk::LoadOptions quiet_checked() {
  pk::LoadOptions o = quiet();
  o.source_hash_check = pk::SourceHashCheck::AtLoad;
  return o;
}

bool same_tensor_value(const Tensor& a, const Tensor& b) {
  if (a.defined() != b.defined()) return false;
  if (!a.defined()) return true;
  if (a.dtype() != b.dtype() || !(a.shape() == b.shape())) return false;
  auto x = a.bytes(), y = b.bytes();
  return std::equal(x.begin(), x.end(), y.begin(), y.end());
}

// Structural equality; node references compare by name, doubles bit for bit.
bool same_value(const Value& a, const Value& b) {
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::Node: return a.node()->name() == b.node()->name();
    case Value::Kind::Double:
      return std::bit_cast<std::uint64_t>(a.to_double()) == std::bit_cast<std::uint64_t>(b.to_double());
    case Value::Kind::List:
    case Value::Kind::Tuple: {
      const auto& x = a.items();
      const auto& y = b.items();
      if (x.size() != y.size()) return false;
      for (std::size_t i = 0; i < x.size(); ++i)
        if (!same_value(x[i], y[i])) return false;
      return true;
    }
    case Value::Kind::Dict: {
      const auto& x = a.dict().items;
      const auto& y = b.dict().items;
      if (x.size() != y.size()) return false;
      for (std::size_t i = 0; i < x.size(); ++i)
        if (x[i].first != y[i].first || !same_value(x[i].second, y[i].second)) return false;
      return true;
    }
    case Value::Kind::Tensor: return same_tensor_value(a.tensor(), b.tensor());
    default: return a == b;
  }
}

void check_same_graph(const Graph& a, const Graph& b) {
  REQUIRE(a.size() == b.size());
  auto i = a.begin();
  auto j = b.begin();
  for (; i != a.end(); ++i, ++j) {
    const Node* x = *i;
    const Node* y = *j;
    INFO("node " << x->name());
    CHECK(x->op() == y->op());
    CHECK(x->name() == y->name());
    CHECK(x->target() == y->target());
    CHECK(x->type() == y->type());
    REQUIRE(x->args().size() == y->args().size());
    for (std::size_t k = 0; k < x->args().size(); ++k) CHECK(same_value(x->args()[k], y->args()[k]));
    CHECK(same_value(x->kwargs(), y->kwargs()));
    CHECK(same_value(x->meta().entries(), y->meta().entries()));
  }
  CHECK(a.to_string() == b.to_string());
  CHECK(a.dialect() == b.dialect());
}

void check_same_module(const Module& a, const Module& b, const std::string& path = "") {
  INFO("module " << path);
  CHECK(a.kind() == b.kind());
  CHECK(same_value(a.attrs(), b.attrs()));
  REQUIRE(a.parameters().size() == b.parameters().size());
  for (std::size_t i = 0; i < a.parameters().size(); ++i) {
    CHECK(a.parameters()[i].first == b.parameters()[i].first);
    CHECK(same_tensor_value(a.parameters()[i].second, b.parameters()[i].second));
  }
  REQUIRE(a.buffers().size() == b.buffers().size());
  for (std::size_t i = 0; i < a.buffers().size(); ++i) {
    CHECK(a.buffers()[i].first == b.buffers()[i].first);
    CHECK(same_tensor_value(a.buffers()[i].second, b.buffers()[i].second));
  }
  REQUIRE(a.children().size() == b.children().size());
  for (std::size_t i = 0; i < a.children().size(); ++i) {
    CHECK(a.children()[i].first == b.children()[i].first);
    check_same_module(*a.children()[i].second, *b.children()[i].second, path + "." + a.children()[i].first);
  }
}

// Dumps and loads in `format`, checking everything that must survive.
std::shared_ptr<GraphModule> round_trip(GraphModule& gm, pk::PickleFormat format) {
  std::string bytes = pk::dumps(gm, format);
  CHECK(pk::detect_format(bytes) == format);
  pk::Loaded l = pk::loads_with_report(bytes, quiet_checked());
  REQUIRE(is_lazy(l.module));
  CHECK(l.module->needs_recompile());
  CHECK(l.module->recompile_count() == 0);
  CHECK(l.module->class_name() == gm.class_name());
  CHECK(l.report.source_hash_matches == std::optional<bool>(true));
  CHECK(l.report.warnings.empty());
  check_same_graph(gm.graph(), l.module->graph());
  check_same_module(gm, *l.module);
  return l.module;
}

// A graph that exercises every Value kind and the exact-value cases.
std::shared_ptr<GraphModule> exotic_module() {
  auto g = std::make_shared<Graph>();
  Node* x = g->placeholder("x");
  x->meta().set("stack_trace", "  File \"model.py\", line 3, in forward\n    return x.clamp(min=-inf)\n");
  x->meta().set("tensor_meta", Dict{{{"shape", Tuple{{2, 3}}}, {"dtype", DType::Float32}}});
  double inf = std::numeric_limits<double>::infinity();
  double nan = std::numeric_limits<double>::quiet_NaN();
  Node* c = g->call_function("torch.clamp", {x}, Dict{{{"min", -inf}, {"max", inf}}});
  Node* a = g->call_function("operator.add", {c, nan});
  Node* m = g->call_function("operator.mul", {a, -0.0});
  Node* v = g->call_method("view", {m, List{{2, 3}}});
  Node* r = g->call_method("reshape", {v, Tuple{{Value(3), Value(2)}}});
  Node* s = g->call_function("operator.getitem", {r, Tuple{{Slice{1, std::nullopt, 2}, Slice{}}}});
  Node* t = g->call_function("torch.ops.aten.to.dtype_layout",
                             {s}, Dict{{{"dtype", DType::Float64}, {"layout", Layout::Strided},
                                        {"device", Device{"cpu", -1}}, {"pin_memory", false},
                                        {"memory_format", MemoryFormat::ChannelsLast}}});
  Node* u = g->call_function("custom.op", {t, "quote ' \" \\ \n tab\t \xc3\xa9 \x01", None{}, true,
                                           std::int64_t{-9007199254740993}, 1e-300, 5e-324},
                             Dict{{{"z", 1}, {"a", 2}, {"m", Dict{{{"k", List{{Tuple{}, List{}}}}}}}}});
  u->meta().set("nn_module_stack", Dict{{{"L__self__", Tuple{{"", "Module"}}}}});
  g->output(Tuple{{u, List{{x, c}}}});
  auto root = std::make_shared<Module>("Module");
  return make_graph_module(root, g, {.class_name = "Exotic", .graph_module_cls = GraphModuleClass::Lazy});
}

// Two parameters viewing one storage.
class SharedParams : public Module {
 public:
  SharedParams() : Module("SharedParams") {
    Tensor base = random_tensor({2, 6});
    register_parameter("a", Tensor(base.storage(), 0, DType::Float32, Shape{2, 3}));
    register_parameter("b", Tensor(base.storage(), 24, DType::Float32, Shape{2, 3}));
  }
  Value forward(std::span<const Value> in) override { return in[0] * get("a") + get("b"); }
};

// A leaf module whose kind nothing registers.
class CustomLeaf : public Module {
 public:
  CustomLeaf() : Module("CustomLeaf") { set_attr("scale", 2.0); }
  bool is_leaf() const override { return true; }
  Value forward(std::span<const Value> in) override { return in[0] * 2.0; }
};
class UsesCustomLeaf : public Module {
 public:
  UsesCustomLeaf() : Module("UsesCustomLeaf") { register_module("leaf", std::make_shared<CustomLeaf>()); }
  Value forward(std::span<const Value> in) override { return (*find_child("leaf"))(in[0]).relu(); }
};

// A user's own record holding a GraphModule.
struct Checkpoint {
  std::shared_ptr<GraphModule> model;
  std::int64_t step = 0;
  template <class Ar>
  void serialize(Ar& ar, unsigned /*version*/) {
    auto m = pk::member(model);
    ar & FXPACK_PICKLE_NVP(ar, "model", m) & FXPACK_PICKLE_NVP(ar, "step", step);
  }
};

std::string crc_hex(std::string_view body) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08lx",
                crc32_z(crc32_z(0, nullptr, 0), reinterpret_cast<const Bytef*>(body.data()), body.size()));
  return buf;
}

// A pickle of `body` in the current format version, with the body's checksum in the header.
std::string with_header(pk::PickleFormat f, const std::string& body) {
  return "fxpack.pickle " + std::string(pk::format_name(f)) + " " + std::to_string(pk::kFormatVersion) + " " +
         crc_hex(body) + "\n" + body;
}

// The same pickle with its header's checksum recomputed: damage made to test the checks
// behind the checksum (a format 1 header, or none, is left as it is).
std::string resealed(std::string p) {
  auto nl = p.find('\n');
  if (nl == std::string::npos || nl > 64 || std::count(p.begin(), p.begin() + static_cast<std::ptrdiff_t>(nl), ' ') != 3)
    return p;
  auto sp = p.rfind(' ', nl);
  return p.substr(0, sp + 1) + crc_hex(std::string_view(p).substr(nl + 1)) + p.substr(nl);
}

// Pickle bytes for a hand-made record (hostile cases).
std::string pickle_of(const pk::detail::PickleRecord& rec, pk::PickleFormat f = pk::PickleFormat::PortableBinary) {
  std::ostringstream out;
  if (f == pk::PickleFormat::PortableBinary || f == pk::PickleFormat::Json) pk::detail::write_cereal(out, rec, f);
  else pk::detail::write_boost(out, rec, f);
  return with_header(f, out.str());
}

std::string load_error(std::string_view bytes, const pk::LoadOptions& opt = quiet()) {
  try {
    pk::loads(bytes, opt);
  } catch (const FormatError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("NOT A FormatError: ") + e.what();
  }
  return "no error";
}

}  // namespace

TEST_SUITE("TestLazyGraphModule") {

// Twin of test_lazy_graph_module.py's test_pickle.
TEST_CASE("pickle") {
  auto lazy = use_lazy_graph_module(true);
  auto gm = symbolic_trace([](const Value& x) { return x.sin(); });
  CHECK(is_lazy(gm));
  std::string serialized = pk::dumps(*gm);
  auto gm2 = pk::loads(serialized);
  CHECK(is_lazy(gm2));
  CHECK(gm2->code().find("sin") != std::string::npos);
}

}  // TEST_SUITE

TEST_CASE("pickle: reference models round-trip in every format") {
  for (bool lazy : {false, true})
  for (const auto& c : fxpack::testing::reference_cases()) {
    CAPTURE(lazy);
    auto mode = use_lazy_graph_module(lazy);
    auto gm = fxpack::testing::trace_reference(c.folder);  // eager or lazy: loads are lazy either way
    CHECK(gm->is_lazy() == lazy);
    Tensor in = fxpack::testing::reference_input(c);
    Tensor before = (*gm)(in).tensor();
    for (auto f : kFormats) {
      CAPTURE(c.folder);
      CAPTURE(std::string(pk::format_name(f)));
      auto loaded = round_trip(*gm, f);
      Tensor after = (*loaded)(in).tensor();
      CHECK(same_tensor_value(before, after));
      CHECK(allclose(after, fxpack::testing::reference_output(c), 1e-4, 1e-5));
      CHECK(loaded->recompile_count() == 1);
      CHECK(loaded->code() == gm->code());
    }
  }
}

TEST_CASE("pickle: exact values, meta, list vs tuple, kwargs order, custom class name") {
  auto lazy_mode = use_lazy_graph_module(true);  // eager construction of traced modules is not what is tested here
  auto gm = exotic_module();
  for (auto f : kFormats) {
    CAPTURE(std::string(pk::format_name(f)));
    auto loaded = round_trip(*gm, f);
    CHECK(loaded->class_name() == "Exotic");
    const Node* c = loaded->graph().find_node("clamp");
    REQUIRE(c);
    CHECK(std::isinf(c->kwargs().items[0].second.to_double()));
    CHECK(c->kwargs().items[0].second.to_double() < 0);
    const Node* a = loaded->graph().find_node("add");
    CHECK(std::isnan(a->args()[1].to_double()));
    const Node* m = loaded->graph().find_node("mul");
    CHECK(std::signbit(m->args()[1].to_double()));
    CHECK(loaded->graph().find_node("view")->args()[1].kind() == Value::Kind::List);
    CHECK(loaded->graph().find_node("reshape")->args()[1].kind() == Value::Kind::Tuple);
    CHECK(loaded->graph().find_node("x")->meta().find("stack_trace")->str() ==
          gm->graph().find_node("x")->meta().find("stack_trace")->str());
    CHECK(loaded->code() == gm->code());
  }
}

TEST_CASE("pickle: shared storage stays shared, submodule named 0, custom class name") {
  auto lazy_mode = use_lazy_graph_module(true);  // eager construction of traced modules is not what is tested here
  auto gm = symbolic_trace(std::make_shared<SharedParams>());
  REQUIRE(gm->get_tensor("a").same_storage(gm->get_tensor("b")));
  auto seq = symbolic_trace(nn::Sequential({nn::Linear(3, 4), nn::ReLU()}));
  auto named = make_graph_module(seq, seq->graph_ptr(), {.class_name = "MyNet", .graph_module_cls = GraphModuleClass::Lazy});
  Tensor x = random_tensor({2, 3});
  for (auto f : kFormats) {
    CAPTURE(std::string(pk::format_name(f)));
    auto l = round_trip(*gm, f);
    CHECK(l->get_tensor("a").same_storage(l->get_tensor("b")));
    CHECK(l->get_tensor("b").byte_offset() == 24);
    CHECK(same_tensor_value((*l)(x).tensor(), (*gm)(x).tensor()));

    auto s = round_trip(*named, f);
    CHECK(s->class_name() == "MyNet");
    CHECK(s->find_child("0"));
    CHECK(s->code().find("getattr(self, \"0\")") != std::string::npos);
    CHECK(same_tensor_value((*s)(x).tensor(), (*named)(x).tensor()));
  }
}

TEST_CASE("pickle: dirty after load, exactly one rebuild on first use") {
  auto lazy_mode = use_lazy_graph_module(true);  // eager construction of traced modules is not what is tested here
  auto gm = fxpack::testing::trace_reference("mlp");
  auto l = pk::loads(pk::dumps(*gm));
  CHECK(l->needs_recompile());
  CHECK(l->recompile_count() == 0);
  auto before = GraphModule::total_recompile_count();
  auto fwd = l->forward_fn();
  for (int i = 0; i < 3; ++i) fwd(random_tensor({2, 4}));
  CHECK_FALSE(l->needs_recompile());
  CHECK(l->recompile_count() == 1);
  (void)l->code();
  (void)l->to_string();
  CHECK(l->recompile_count() == 1);
  CHECK(GraphModule::total_recompile_count() == before + 1);
}

// `json` with its stored hash (the field `field`) replaced by 12345, resealed.
std::string with_wrong_hash(std::string json, const std::string& field) {
  auto pos = json.find("\"" + field + "\": ");
  REQUIRE(pos != std::string::npos);
  pos += field.size() + 4;
  json.replace(pos, json.find_first_not_of("0123456789", pos) - pos, "12345");
  return resealed(json);
}

TEST_CASE("pickle: a wrong stored hash is reported, never silent (format 3: content hash; 2: source hash)") {
  auto lazy_mode = use_lazy_graph_module(true);  // eager construction of traced modules is not what is tested here
  auto gm = fxpack::testing::trace_reference("seed_sin");
  struct Case {
    std::string json;
    std::uint32_t version;
    std::string kind;  // what the stored hash is of
  };
  const auto v2 = fxpack::testing::fixtures_dir() / "pickle" / "v2" / "seed_sin.json.pkl";
  for (const Case& c : {Case{with_wrong_hash(pk::dumps(*gm, pk::PickleFormat::Json), "content_hash"), 3, "content"},
                        Case{with_wrong_hash(fxpack::testing::read_file(v2), "source_hash"), 2, "source"}}) {
    CAPTURE(c.version);
    std::vector<std::string> warnings;
    pk::LoadOptions o;
    o.on_warning = [&](const std::string& w) { warnings.push_back(w); };
    o.source_hash_check = pk::SourceHashCheck::AtLoad;
    auto l = pk::loads_with_report(c.json, o);
    CHECK(l.report.format_version == c.version);
    CHECK(l.report.source_hash_matches == std::optional<bool>(false));
    CHECK(l.report.stored_source_hash == 12345);
    REQUIRE(warnings.size() == 1);
    CHECK(warnings[0].find("differs from the stored " + c.kind + " hash 3039 (codegen version") != std::string::npos);
    o.strict_source_hash = true;
    CHECK(load_error(c.json, o).find("differs from the stored " + c.kind + " hash") != std::string::npos);
  }
  // Without a stored hash there is nothing to compare, and the report says so.
  pk::LoadOptions o = quiet_checked();
  auto nohash = pk::loads_with_report(pk::dumps(*gm, pk::DumpOptions{.store_source_hash = false}), o);
  CHECK_FALSE(nohash.report.has_source_hash);
  CHECK_FALSE(nohash.report.source_hash_matches.has_value());
}

TEST_CASE("pickle: by default the stored hash is compared by the first recompile, before its code is used") {
  auto lazy_mode = use_lazy_graph_module(true);
  auto gm = fxpack::testing::trace_reference("seed_sin");
  const std::string good = pk::dumps(*gm, pk::PickleFormat::Json);
  const std::string json = with_wrong_hash(good, "content_hash");
  // Strict: the load succeeds without generating code; every use fails and nothing is installed.
  pk::LoadOptions strict = quiet();
  strict.strict_source_hash = true;
  std::uint64_t before = GraphModule::total_recompile_count();
  auto l = pk::loads_with_report(json, strict);
  CHECK(GraphModule::total_recompile_count() == before);
  CHECK_FALSE(l.report.source_hash_matches.has_value());
  for (int attempt = 0; attempt < 2; ++attempt) {
    CHECK_THROWS_WITH_AS(l.module->code(), doctest::Contains("differs from the stored content hash 3039"), FormatError);
    CHECK(l.module->needs_recompile());
    CHECK(l.module->recompile_count() == 0);
  }
  CHECK_THROWS_AS(l.module->plan(), FormatError);
  // An intact pickle passes the same check on first use.
  auto ok = pk::loads(good, strict);
  CHECK(ok->code() == gm->code());
  CHECK(ok->recompile_count() == 1);
  // Not strict: the code runs, and the loader's warning hook hears of it when the code is
  // first generated — not at load.
  auto warnings = std::make_shared<std::vector<std::string>>();
  pk::LoadOptions hooked;
  hooked.on_warning = [warnings](const std::string& w) { warnings->push_back(w); };
  auto warned = pk::loads(json, hooked);
  CHECK(warnings->empty());
  CHECK(warned->code() == gm->code());
  REQUIRE(warnings->size() == 1);
  CHECK(warnings->front().find("differs from the stored content hash 3039") != std::string::npos);
  (void)warned->code();
  CHECK(warnings->size() == 1);
  // Without a hook: one line on stderr.
  auto printed = pk::loads(json, pk::LoadOptions{});
  std::ostringstream err;
  auto* saved = std::cerr.rdbuf(err.rdbuf());
  std::string code = printed->code();
  std::cerr.rdbuf(saved);
  CHECK(code == gm->code());
  CHECK(err.str().starts_with("fxpack: warning: pickle: the content hash of the loaded graph"));
  CHECK(err.str().find("differs from the stored content hash 3039") != std::string::npos);
  // Off: nothing compared.
  pk::LoadOptions off = strict;
  off.source_hash_check = pk::SourceHashCheck::Off;
  CHECK(pk::loads(json, off)->code() == gm->code());
}

TEST_CASE("pickle: stream forms") {
  auto lazy_mode = use_lazy_graph_module(true);  // eager construction of traced modules is not what is tested here
  auto gm = fxpack::testing::trace_reference("mlp");
  for (auto f : kFormats) {
    std::stringstream ss;
    pk::dump(*gm, ss, f);
    auto l = pk::load(ss);
    REQUIRE(is_lazy(l));
    check_same_graph(gm->graph(), l->graph());
  }
}

TEST_CASE("pickle: unregistered module kinds load as data, or are refused") {
  auto lazy_mode = use_lazy_graph_module(true);  // eager construction of traced modules is not what is tested here
  auto gm = symbolic_trace(std::make_shared<UsesCustomLeaf>());
  REQUIRE(gm->graph().find_node("leaf"));
  std::string bytes = pk::dumps(*gm);
  std::vector<std::string> warnings;
  pk::LoadOptions o;
  o.on_warning = [&](const std::string& w) { warnings.push_back(w); };
  auto l = pk::loads_with_report(bytes, o);
  CHECK(l.report.unregistered_module_kinds == std::vector<std::string>{"CustomLeaf"});
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find("CustomLeaf") != std::string::npos);
  CHECK(l.module->find_child("leaf")->attr("scale").to_double() == 2.0);
  CHECK(l.module->code().find("leaf") != std::string::npos);
  try {
    (*l.module)(random_tensor({2, 2}));
    FAIL("an unregistered kind must not run");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("CustomLeaf") != std::string::npos);
  }
  o.refuse_unregistered_module_kinds = true;
  CHECK(load_error(bytes, o).find("unregistered module kinds: 'CustomLeaf'") != std::string::npos);
}

TEST_CASE("pickle: golden fixtures of every format version load forever") {
  auto lazy_mode = use_lazy_graph_module(true);  // eager construction of traced modules is not what is tested here
  int loaded = 0;
  for (std::uint32_t version = 1; version <= pk::kFormatVersion; ++version) {
    auto dir = fxpack::testing::fixtures_dir() / "pickle" / ("v" + std::to_string(version));
    for (const auto& c : fxpack::testing::reference_cases()) {
      for (auto f : kFormats) {
        auto path = dir / (c.folder + "." + std::string(pk::format_name(f)) + ".pkl");
        if (!std::filesystem::exists(path)) continue;
        CAPTURE(path.string());
        auto l = pk::loads_with_report(fxpack::testing::read_file(path), quiet_checked());
        REQUIRE(is_lazy(l.module));
        CHECK(l.report.format == f);
        CHECK(l.report.format_version == version);
        CHECK(l.module->graph().dialect() == Dialect::Torch1_13);
        // Format 1 was written by codegen version 1, whose text for these graphs is the same.
        CHECK(l.report.source_hash_matches == std::optional<bool>(true));
        Tensor out = (*l.module)(fxpack::testing::reference_input(c)).tensor();
        CHECK(allclose(out, fxpack::testing::reference_output(c), 1e-4, 1e-5));
        check_same_graph(fxpack::testing::trace_reference(c.folder)->graph(), l.module->graph());
        ++loaded;
      }
    }
  }
  CHECK(loaded >= 33);  // mlp and small_convnet in five formats, and the seed sin module, per version
  // What format 2 added: the typed example in every format.
  auto typed = fxpack::testing::typed_example();
  const std::string code =
      "\ntorch.fx._symbolic_trace.wrap(\"torchvision_ops_stochastic_depth_stochastic_depth\")\n\n"
      "def forward(self, x : torch.Tensor, n : int = 3) -> typing_Tuple[torch.Tensor,int,typing_Tuple[torch.Tensor,_]]:\n"
      "    mul : torch.Tensor = x * n;  x = None\n"
      "    getitem = mul[(Ellipsis, 0)];  mul = None\n"
      "    stochastic_depth = torchvision_ops_stochastic_depth_stochastic_depth(getitem, 0.0, 'row', False);  getitem = None\n"
      "    half = self.half\n    bf16 = self.bf16\n    i32 = self.i32\n    i8 = self.i8\n    i16 = self.i16\n"
      "    float_1 = half.float();  float_1 = None\n"
      "    return (stochastic_depth, n, (half, bf16, i32, i8, i16))\n    ";
  CHECK(python_code(typed->graph()) == code);
  for (std::uint32_t version = 2; version <= pk::kFormatVersion; ++version) {
    for (auto f : kFormats) {
      auto path = fxpack::testing::fixtures_dir() / "pickle" / ("v" + std::to_string(version)) /
                  ("typed." + std::string(pk::format_name(f)) + ".pkl");
      CAPTURE(path.string());
      auto l = pk::loads_with_report(fxpack::testing::read_file(path), quiet_checked());
      CHECK(l.report.format_version == version);
      CHECK(l.report.source_hash_matches == std::optional<bool>(true));
      CHECK(l.module->graph().dialect() == Dialect::Torch2);
      check_same_graph(typed->graph(), l.module->graph());
      check_same_module(*typed, *l.module);
      CHECK(l.module->code() == code);
      CHECK(l.module->get_tensor("i16").to_doubles() == std::vector<double>{300, 300});
    }
  }
}

TEST_CASE("pickle: corrupt and hostile input is a FormatError saying what and where") {
  auto lazy_mode = use_lazy_graph_module(true);  // eager construction of traced modules is not what is tested here
  using pk::detail::NodeRecord;
  using pk::detail::PickleRecord;
  using pk::detail::ValueRecord;
  auto base = [] { return pk::detail::to_record(*fxpack::testing::trace_reference("seed_sin"), true); };
  auto mlp = [] { return pk::detail::to_record(*fxpack::testing::trace_reference("mlp"), true); };
  auto lazy = use_lazy_graph_module(true);
  std::string good = pk::dumps(*fxpack::testing::trace_reference("seed_sin"));

  struct Case {
    std::string name;
    std::string bytes;
    std::string expect;
    pk::LoadOptions opt = quiet();
  };
  std::vector<Case> cases;
  cases.push_back({"empty", "", "does not start with 'fxpack.pickle '"});
  cases.push_back({"python pickle", "\x80\x04\x95", "does not start with 'fxpack.pickle '"});
  cases.push_back({"no newline", "fxpack.pickle json 1", "header line not terminated"});
  cases.push_back({"unknown format", "fxpack.pickle zip 1\n", "unknown pickle format 'zip'"});
  cases.push_back({"newer version", "fxpack.pickle portable-binary 7\n" + good.substr(good.find('\n') + 1),
                   "pickle format version 7 is newer than this build supports (3)"});
  {
    auto r = base();
    r.format_version = 7;
    cases.push_back({"newer version inside", pickle_of(r), "pickle format version 7 is newer than this build supports (3)"});
  }
  cases.push_back({"truncated", good.substr(0, good.size() - 1), "truncated portable-binary archive"});
  cases.push_back({"truncated in a string", good.substr(0, good.size() - 5), "name: count 6 exceeds the remaining input (5 bytes) (at nodes[2]"});
  cases.push_back({"trailing bytes", good + "xyz", "3 trailing bytes after the archive"});
  cases.push_back({"trailing text", pk::dumps(*fxpack::testing::trace_reference("seed_sin"), pk::PickleFormat::BoostText) + " 1 2",
                   "trailing bytes after the archive"});
  cases.push_back({"trailing json", pk::dumps(*fxpack::testing::trace_reference("seed_sin"), pk::PickleFormat::Json) + "{}",
                   "corrupt or truncated json archive"});
  {
    std::string x = pk::dumps(*fxpack::testing::trace_reference("seed_sin"), pk::PickleFormat::BoostXml);
    auto p = x.find("<class_name");
    x.insert(p + 1, std::string(200, 'a'));
    cases.push_back({"long xml tag", x, "xml element name longer than 64 characters"});
  }
  {
    // header, endianness byte, format_version 1, class_name length 2^40
    std::string b = with_header(pk::PickleFormat::PortableBinary, std::string("\x01\x01\x80\x80\x80\x80\x80\x20", 8));
    cases.push_back({"huge string length", b, "class_name: count 1099511627776 exceeds the limit"});
    pk::LoadOptions big = quiet();
    big.limits.max_string_length = ~0ull;
    cases.push_back({"string longer than the input", b, "exceeds the remaining input", big});
  }
  {
    // storages count 2^50 right after the header fields
    auto r = base();
    r.storages.clear();
    r.tensors.clear();
    r.nodes.clear();
    r.targets.clear();
    r.root = {};
    std::string b = pickle_of(r);
    // the record ends with: storages 0, tensors 0, root (kind "", 4 empty tables),
    // targets 0, nodes 0
    std::string tail(9, '\0');
    REQUIRE(b.substr(b.size() - 9) == tail);
    b.replace(b.size() - 9, 1, std::string("\x80\x80\x80\x80\x80\x80\x80\x02", 8));
    cases.push_back({"huge count", b, "storages: count 1125899906842624 exceeds the limit"});
  }
  {
    auto r = base();
    r.nodes[1].args[0].i = 50;
    cases.push_back({"node ref out of range", pickle_of(r), "nodes[1] 'sin' args: node reference 50 back from node 1 is not an earlier node"});
    r.nodes[1].args[0].i = 0;
    cases.push_back({"node ref to itself", pickle_of(r), "nodes[1] 'sin' args: node reference 0 back from node 1 is not an earlier node"});
    r.nodes[1].args[0].i = std::numeric_limits<std::int64_t>::min();
    cases.push_back({"node ref overflow", pickle_of(r), "is not an earlier node"});
  }
  {
    auto r = base();
    r.nodes[1].args.push_back(ValueRecord{});
    r.nodes[1].args.back().kind = 10;
    r.nodes[1].args.back().i = -1;
    cases.push_back({"forward node ref", pickle_of(r), "node reference -1 back from node 1 is not an earlier node"});
    r.nodes[1].args.back().i = 1;
    r.nodes[1].target_index = 42;
    cases.push_back({"target index", pickle_of(r), "nodes[1] 'sin': target index 42 out of range (3 targets)"});
  }
  {
    auto r = base();
    r.nodes[1].op = 9;
    cases.push_back({"unknown op", pickle_of(r), "unknown op 9 (at nodes[1]"});
  }
  {
    auto r = base();
    r.nodes[1].name = "x";
    cases.push_back({"duplicate node name", pickle_of(r), "nodes[1] 'x': node name is not valid or not unique"});
  }
  {
    auto r = base();
    r.nodes.pop_back();
    cases.push_back({"no output", pickle_of(r), "last node is not an output node"});
  }
  {
    // lint's checks of a node by itself run as each node is added; the first failure is
    // raised where the whole graph was linted before: after the output check.
    auto r = base();
    r.nodes[1].op = static_cast<std::uint8_t>(Op::CallMethod);
    r.nodes[1].args.clear();
    cases.push_back({"call_method without receiver", pickle_of(r),
                     "pickle: invalid graph: lint: call_method node 'sin' has no receiver argument"});
    r.nodes.pop_back();
    cases.push_back({"lint failure and no output", pickle_of(r), "last node is not an output node"});
    r = base();
    r.nodes[0].args.resize(2);
    cases.push_back({"placeholder with two arguments", pickle_of(r),
                     "pickle: invalid graph: lint: placeholder node 'x' has arguments other than a default value"});
  }
  {
    // read from memory in place: the same message and byte offset as a byte at a time
    const std::string body = std::string("\x01") + std::string(9, '\x80') + "\x02" + std::string(16, '\0');
    const std::string b = with_header(pk::PickleFormat::PortableBinary, body);
    cases.push_back({"varint overflow", b,
                     "varint overflow in format_version (at byte offset " + std::to_string(b.size() - body.size() + 11) + ")"});
  }
  {
    auto r = base();
    r.nodes[0].name = "x_9223372036854775808";  // 2^63: beyond the numbers names carry
    cases.push_back({"node name number beyond int64", pickle_of(r),
                     "nodes[0] 'x_9223372036854775808': name 'x_9223372036854775808': the number after its last '_' is above 9223372036854775807"});
  }
  {
    auto r = base();
    ValueRecord v;
    v.kind = 11;
    ValueRecord* cur = &v;
    for (int i = 0; i < 100; ++i) {
      cur->items.emplace_back();
      cur = &cur->items.back();
      cur->kind = 11;
    }
    r.nodes[1].args.push_back(v);
    cases.push_back({"nesting depth bomb", pickle_of(r), "value nesting depth exceeds the limit 64 (at nodes[1].args[1]"});
    cases.push_back({"nesting depth bomb (xml)", pickle_of(r, pk::PickleFormat::BoostXml), "value nesting depth exceeds the limit 64"});
    cases.push_back({"nesting depth bomb (text)", pickle_of(r, pk::PickleFormat::BoostText), "value nesting depth exceeds the limit 64"});
  }
  cases.push_back({"json nesting bomb", with_header(pk::PickleFormat::Json, std::string(100000, '[')), "JSON nesting depth exceeds"});
  {
    auto r = mlp();
    r.tensors[0].dtype = 10;
    cases.push_back({"unknown dtype", pickle_of(r), "unknown dtype 10 (at tensors[0]"});
  }
  {
    auto r = mlp();
    r.tensors[0].shape = {100, 100};
    cases.push_back({"shape larger than storage", pickle_of(r), "tensors[0]: dtype float32 shape [100, 100] at byte offset 0 needs 40000 bytes but storage 0 has"});
    r.tensors[0].shape = {8, -4};
    cases.push_back({"negative dim", pickle_of(r), "tensors[0]: negative dimension -4"});
    r = mlp();
    r.tensors[0].storage = 99;
    cases.push_back({"storage index", pickle_of(r), "tensors[0]: storage index 99 out of range"});
    r = mlp();
    r.tensors[0].offset = 2;
    cases.push_back({"misaligned offset", pickle_of(r), "byte offset 2 is not a multiple of the element size"});
  }
  {
    auto r = mlp();
    r.root.children[0].module.parameters.pop_back();  // fc1 loses its bias
    r.root.children[0].module.parameters.pop_back();  // and its weight
    cases.push_back({"invalid leaf", pickle_of(r), "module 'fc1' ('Linear') is not a valid Linear"});
  }
  {
    auto r = mlp();
    r.root.children.erase(r.root.children.begin());
    cases.push_back({"missing call_module target", pickle_of(r), "the graph does not match the module tree"});
  }
  {
    std::string json = pk::dumps(*fxpack::testing::trace_reference("mlp"), pk::PickleFormat::Json);
    auto p = json.find("\"call_module\"");
    REQUIRE(p != std::string::npos);
    json.replace(p, 13, "\"call_python\"");
    cases.push_back({"unknown op name (json)", json, "unknown op 'call_python'"});
    std::string j2 = pk::dumps(*fxpack::testing::trace_reference("mlp"), pk::PickleFormat::Json);
    p = j2.find("\"float32\"");
    j2.replace(p, 9, "\"float8\"");
    cases.push_back({"unknown dtype name (json)", j2, "unknown dtype 'float8'"});
  }
  {
    std::string b = pk::dumps(*fxpack::testing::trace_reference("seed_sin"), pk::PickleFormat::BoostText);
    auto p = b.find("serialization::archive");
    b.replace(p, 5, "XXXXX");
    cases.push_back({"boost header", b, "archive header does not match"});
  }

  for (const auto& c : cases) {
    CAPTURE(c.name);
    std::string msg = load_error(resealed(c.bytes), c.opt);
    CAPTURE(msg);
    CHECK(msg.find(c.expect) != std::string::npos);
  }
}

TEST_CASE("pickle: the header's CRC-32 refuses a flipped weight byte") {
  auto lazy_mode = use_lazy_graph_module(true);
  auto gm = fxpack::testing::trace_reference("mlp");
  for (auto f : kFormats) {
    CAPTURE(std::string(pk::format_name(f)));
    std::string good = pk::dumps(*gm, f);
    CHECK(good.starts_with("fxpack.pickle " + std::string(pk::format_name(f)) + " 3 "));
    // The first weight of fc1, as the archive holds it (raw, base64 or bit patterns): flip
    // one bit of the last byte before the end instead, which lies in a storage or node.
    std::string bad = good;
    bad[bad.size() / 2] = static_cast<char>(bad[bad.size() / 2] ^ 0x04);
    std::string msg = load_error(bad);
    CAPTURE(msg);
    CHECK(msg.find("the pickle is corrupt") != std::string::npos);
    CHECK(msg.find("CRC-32") != std::string::npos);
  }
  // A weight byte of a portable-binary pickle: loads silently without the checksum (it is
  // a valid float), refused with it.
  std::string good = pk::dumps(*gm);
  auto l = pk::loads_with_report(good, quiet());
  const Tensor w = l.module->get_submodule("fc1")->parameter("weight");
  std::string needle(reinterpret_cast<const char*>(w.data<float>()), 16);
  auto at = good.find(needle);
  REQUIRE(at != std::string::npos);
  std::string flipped = good;
  flipped[at + 1] = static_cast<char>(flipped[at + 1] ^ 0x01);
  CHECK(load_error(resealed(flipped)) == "no error");
  CHECK(load_error(flipped).find("the pickle is corrupt") != std::string::npos);
  // The header must carry the checksum from format 2 on, and format 1 must not.
  std::string body = good.substr(good.find('\n') + 1);
  CHECK(load_error("fxpack.pickle portable-binary 2\n" + body).find("must end with the body's CRC-32") != std::string::npos);
  CHECK(load_error("fxpack.pickle portable-binary 2 XYZ\n" + body).find("must end with the body's CRC-32") != std::string::npos);
  CHECK(load_error("fxpack.pickle portable-binary 1 00000000\n" + body).find("unexpected text after the version") !=
        std::string::npos);
}

TEST_CASE("pickle: every truncation and every flipped byte gives FormatError or a module") {
  auto lazy_mode = use_lazy_graph_module(true);  // eager construction of traced modules is not what is tested here
  auto gm = fxpack::testing::trace_reference("seed_sin");
  for (auto f : kFormats) {
    CAPTURE(std::string(pk::format_name(f)));
    std::string good = pk::dumps(*gm, f);
    int wrong = 0;
    for (std::size_t n = 0; n < good.size(); ++n) {
      std::string msg = load_error(resealed(good.substr(0, n)));
      // Text archives may end in whitespace that is not needed to read them.
      if (msg.find("NOT A FormatError") != std::string::npos || (msg == "no error" && n + 2 < good.size())) {
        ++wrong;
        MESSAGE("truncated at " << n << ": " << msg);
      }
    }
    CHECK(wrong == 0);
    int other = 0;
    for (std::size_t i = 0; i < good.size(); ++i) {
      for (unsigned char x : {0x01, 0x80, 0xff}) {
        std::string bad = good;
        bad[i] = static_cast<char>(bad[i] ^ x);
        // resealed: past the checksum, into the archive parsers' own checks
        std::string msg = load_error(resealed(bad));
        if (msg.find("NOT A FormatError") != std::string::npos) {
          ++other;
          MESSAGE("flipped byte " << i << ": " << msg);
        }
      }
    }
    CHECK(other == 0);
  }
}

TEST_CASE("pickle: random multi-byte damage to mlp pickles gives FormatError or a module") {
  auto lazy_mode = use_lazy_graph_module(true);
  auto gm = fxpack::testing::trace_reference("mlp");
  std::mt19937 rng(20261126);
  for (auto f : kFormats) {
    CAPTURE(std::string(pk::format_name(f)));
    std::string good = pk::dumps(*gm, f);
    int other = 0;
    for (int iter = 0; iter < 400; ++iter) {
      std::string bad = good;
      int k = 1 + static_cast<int>(rng() % 8);
      for (int j = 0; j < k; ++j) {
        std::size_t at = 32 + rng() % (bad.size() - 32);  // keep the header line
        switch (rng() % 4) {
          case 0: bad[at] = static_cast<char>(rng()); break;
          case 1: bad.erase(at, 1 + rng() % 16); break;
          case 2: bad.insert(at, std::string(1 + rng() % 16, static_cast<char>(rng()))); break;
          default: bad[at] = static_cast<char>(bad[at] ^ (1 << (rng() % 8))); break;
        }
        if (bad.size() <= 33) break;
      }
      std::string msg = load_error(resealed(bad));
      if (msg.find("NOT A FormatError") != std::string::npos) {
        ++other;
        MESSAGE("iteration " << iter << ": " << msg);
      }
    }
    CHECK(other == 0);
    // and every truncation
    int wrong = 0;
    for (std::size_t n = 0; n + 2 < good.size(); ++n) {
      std::string msg = load_error(std::string_view(good).substr(0, n));
      if (msg.find("FormatError") != std::string::npos || msg == "no error") ++wrong;
    }
    CHECK(wrong == 0);
  }
}

TEST_CASE("pickle: a module embedded in the user's own cereal and Boost archives") {
  auto lazy_mode = use_lazy_graph_module(true);
  auto gm = fxpack::testing::trace_reference("mlp");
  Tensor x = random_tensor({2, 4});
  Tensor expected = (*gm)(x).tensor();
  {
    std::stringstream ss;
    {
      cereal::PortableBinaryOutputArchive ar(ss);
      Checkpoint c{gm, 42};
      ar(c);
    }
    Checkpoint back;
    cereal::PortableBinaryInputArchive ar(ss);
    ar(back);
    CHECK(back.step == 42);
    REQUIRE(is_lazy(back.model));
    CHECK(back.model->needs_recompile());
    check_same_graph(gm->graph(), back.model->graph());
    CHECK(same_tensor_value((*back.model)(x).tensor(), expected));
  }
  {
    std::stringstream ss;
    {
      boost::archive::binary_oarchive ar(ss);
      const Checkpoint c{gm, 7};
      ar << c;
    }
    Checkpoint back;
    boost::archive::binary_iarchive ar(ss);
    ar >> back;
    CHECK(back.step == 7);
    REQUIRE(is_lazy(back.model));
    CHECK(same_tensor_value((*back.model)(x).tensor(), expected));
  }
}

TEST_CASE("pickle: storages kept outside the pickle (storage_sink / storage_source)") {
  auto lazy_mode = use_lazy_graph_module(true);
  auto gm = symbolic_trace(std::make_shared<SharedParams>());
  std::map<std::string, std::shared_ptr<Storage>> kept;
  pk::DumpOptions d;
  d.storage_sink = [&](const std::shared_ptr<Storage>& s) {
    std::string key = "storage/" + std::to_string(kept.size());
    kept.emplace(key, s);
    return key;
  };
  Tensor x = random_tensor({2, 3});
  for (auto f : kFormats) {
    CAPTURE(std::string(pk::format_name(f)));
    kept.clear();
    d.format = f;
    std::string bytes = pk::dumps(*gm, d);
    CHECK(kept.size() == 1);  // two parameters, one storage
    pk::LoadOptions o = quiet();
    o.storage_source = [&](const std::string& key, std::uint64_t nbytes) {
      auto s = kept.at(key);
      CHECK(s->nbytes() == nbytes);
      return s;
    };
    auto l = pk::loads(bytes, o);
    CHECK(l->get_tensor("a").storage() == gm->get_tensor("a").storage());
    CHECK(l->get_tensor("b").same_storage(l->get_tensor("a")));
    CHECK(same_tensor_value((*l)(x).tensor(), (*gm)(x).tensor()));
    CHECK(load_error(bytes).find("storages[0] (external 'storage/0'): the pickle keeps this storage outside and no storage source was given") != std::string::npos);
    o.storage_source = [](const std::string&, std::uint64_t) { return Storage::allocate(4); };
    CHECK(load_error(bytes, o).find("the storage source returned 4 bytes, the pickle expects 48") != std::string::npos);
    o.storage_source = [](const std::string& key, std::uint64_t) -> std::shared_ptr<Storage> {
      throw FormatError("storage record '" + key + "' is missing");
    };
    CHECK(load_error(bytes, o).find("storage record 'storage/0' is missing") != std::string::npos);
  }
}

TEST_CASE("pickle: JSON numbers that rapidjson 1.1 cannot parse safely are refused, not parsed (fuzz findings)") {
  // rapidjson 1.1's full-precision parser calls __builtin_clzll(0) on "0.000...0" and on
  // 18446744073709551615 followed by a digit of 5 or more (its 64-bit rounding wraps) (UBSan:
  // passing zero to clz()), and reads past its table of powers of ten when digits and exponent
  // add up beyond a double's range; fxpack writes none of these. tools/fuzz/regressions/pickle_loads/.
  const std::string header = "fxpack.pickle json 1\n";
  CHECK_THROWS_WITH_AS(pickle::loads(header + "{\"fxpack_pickle\": [0.0000000000000000000000000000000]}"),
                       doctest::Contains("JSON number at byte offset 19 is a zero of 32 digits"), FormatError);
  CHECK_THROWS_WITH_AS(pickle::loads(header + "{\"a\": -0.000000000000000000}"), doctest::Contains("a zero of 19 digits"),
                       FormatError);
  // rapidjson reads a number up to a second '.': this is the zero "0.000...0" of 40 digits.
  CHECK_THROWS_WITH_AS(pickle::loads(header + "{\"a\": [1, 0." + std::string(39, '0') + ".579]}"),
                       doctest::Contains("JSON number at byte offset 10 is a zero of 40 digits"), FormatError);
  for (const char* zero : {"0e64", "-0.0E+30", "0e5"}) {
    CAPTURE(zero);
    CHECK_THROWS_WITH_AS(pickle::loads(header + "{\"a\": " + zero + "}"),
                         doctest::Contains("JSON number at byte offset 6 is a zero with an exponent"), FormatError);
  }
  for (const char* wraps : {"184467440737095516155", "-1844674407.37095516159e3", "0.000184467440737095516157"}) {
    CAPTURE(wraps);
    CHECK_THROWS_WITH_AS(pickle::loads(header + "{\"a\": " + wraps + "}"),
                         doctest::Contains("JSON number at byte offset 6 has the significant digits "
                                           "18446744073709551615 followed by a digit of 5 or more"),
                         FormatError);
  }
  const std::string hundred_fifty_zeros(150, '0'), four_hundred_zeros(400, '0');
  for (const auto& [number_text, what] : std::vector<std::pair<std::string, std::string>>{
           {"1" + hundred_fifty_zeros + "1e290", "is about 10^441, outside the range of a double"},
           {"-0." + four_hundred_zeros + "1", "is about 10^-401, outside the range of a double"},
           {"1e309", "is about 10^309, outside the range of a double"},
           {"5e-325", "is about 10^-325, outside the range of a double"},
           {"1e-99999999999999999999", "has an exponent beyond 10^1000000000"}}) {
    const std::string number = number_text;  // CAPTURE's lambda cannot name a structured binding (clang 14)
    CAPTURE(number);
    const std::string expected = "JSON number at byte offset 6 " + what;
    CHECK_THROWS_WITH_AS(pickle::loads(header + "{\"a\": " + number + "}"), doctest::Contains(expected.c_str()),
                         FormatError);
  }
  // Digits inside strings are not numbers; ordinary zeros, long non-zero numbers, 2^64 - 1
  // itself and its neighbours that round without wrapping pass this check (and fail later,
  // as the record is incomplete).
  for (const char* body : {"{\"s\": \"0.000000000000000000000000000000\"}", "{\"z\": [0.0, -0.0, 0, 1e-300]}",
                           "{\"n\": 0.00000000000000000000000000000001}",
                           "{\"u\": [18446744073709551615, 184467440737095516154, 18446744073709551616, "
                           "1844674407370955161.6, 0.000184467440737095516150001, 100000000000000000000.0]}",
                           "{\"r\": [1.7976931348623157e308, -4.9e-324, 2.2250738585072014e-308, 1e-0000000000000000000000]}"}) {
    CAPTURE(body);
    std::string message;
    try {
      (void)pickle::loads(header + body);
    } catch (const FormatError& e) {
      message = e.what();
    }
    CHECK(message.find("is a zero of") == std::string::npos);
    CHECK(message.find("has the significant digits") == std::string::npos);
    CHECK(message.find("outside the range of a double") == std::string::npos);
    CHECK_FALSE(message.empty());
  }
}

namespace {

// One graph holding every field code generation reads, each value kind among the args of
// node `zoo`; an edit changes one thing of it.
struct HashGraph {
  Dialect dialect = Dialect::Torch1_13;
  Op w_op = Op::GetAttr;
  std::string f_name = "f", f_target = "torch.add", f_type;
  bool wrapped = false;
  Dict kwargs{{{"alpha", Value(2)}}};
  bool swap_order = false;  // h made before f
  // Changes the zoo's args (x, y: the placeholders).
  std::function<void(std::vector<Value>&, Node* x, Node* y)> zoo_edit{};
  // Changes the meta of the finished graph.
  std::function<void(Graph&)> meta_edit{};

  std::shared_ptr<Graph> build() const {
    auto g = std::make_shared<Graph>(dialect);
    Node* x = g->placeholder("x");
    Node* y = g->placeholder("y");
    Node* w = g->create_node(w_op, "w", {}, {}, "w");
    Node* h = nullptr;
    if (swap_order) h = g->call_function("torch.relu", {y});
    Node* f = g->create_node(Op::CallFunction, f_target, {x, w}, kwargs, f_name);
    if (!swap_order) h = g->call_function("torch.relu", {y});
    if (!f_type.empty()) f->set_type(f_type);
    if (wrapped) f->meta().set("is_wrapped", true);
    Slice s;
    s.start = 1;
    s.nodes[1] = y;
    std::vector<Value> zoo = {x, None{}, true, 3, 1.5, 0.0, "s", DType::Float32, Device{"cpu", 0}, Layout::Strided,
                              MemoryFormat::Contiguous, s, List{{x, 1}}, Tuple{{x}}, Dict{{{"k", Value(1)}}},
                              Tensor::from_vector(std::vector<float>{1, 2}, Shape{2}), Ellipsis{}};
    if (zoo_edit) zoo_edit(zoo, x, y);
    Node* z = g->call_function("foo.bar", std::move(zoo));
    g->output(Tuple{{f, h, z}});
    if (meta_edit) meta_edit(*g);
    return g;
  }
};

}  // namespace

TEST_CASE("content hash: every field code generation reads changes it; nothing else does") {
  const auto g0 = HashGraph{}.build();
  const std::string code0 = python_code(*g0);
  const std::uint64_t h0 = content_hash(*g0);
  CHECK(content_hash(*HashGraph{}.build()) == h0);  // a function of the graph alone
  std::vector<std::pair<std::string, HashGraph>> edits;
  const auto edit = [&](const std::string& what, const std::function<void(HashGraph&)>& change) {
    HashGraph g;
    change(g);
    edits.emplace_back(what, std::move(g));
  };
  edit("dialect", [](HashGraph& g) { g.dialect = Dialect::Torch2; });
  edit("op", [](HashGraph& g) { g.w_op = Op::CallModule; });
  edit("name", [](HashGraph& g) { g.f_name = "f2"; });
  edit("target", [](HashGraph& g) { g.f_target = "torch.sub"; });
  edit("type", [](HashGraph& g) { g.f_type = "torch.Tensor"; });
  edit("is_wrapped", [](HashGraph& g) { g.wrapped = true; });
  edit("node order", [](HashGraph& g) { g.swap_order = true; });
  edit("kwarg key", [](HashGraph& g) { g.kwargs = Dict{{{"beta", Value(2)}}}; });
  edit("kwarg value", [](HashGraph& g) { g.kwargs = Dict{{{"alpha", Value(3)}}}; });
  edit("kwarg count", [](HashGraph& g) { g.kwargs = Dict{{{"alpha", Value(2)}, {"beta", Value(2)}}}; });
  // Each zoo value changed in what repr() prints of it (i: its place in the zoo).
  const auto zoo = [&](const std::string& what, std::size_t i, std::function<Value(Node*, Node*)> v) {
    edit("zoo " + what, [i, v](HashGraph& g) {
      g.zoo_edit = [i, v](std::vector<Value>& z, Node* x, Node* y) { z[i] = v(x, y); };
    });
  };
  const auto same = [](Value v) { return [v](Node*, Node*) { return v; }; };
  zoo("node reference", 0, [](Node*, Node* y) { return Value(y); });
  zoo("none", 1, same(0));
  zoo("bool", 2, same(false));
  zoo("int", 3, same(4));
  zoo("double", 4, same(2.5));
  zoo("double -0.0", 5, same(-0.0));
  zoo("string", 6, same("t"));
  zoo("dtype", 7, same(DType::Float64));
  zoo("device type", 8, same(Device{"meta", 0}));
  zoo("device index", 8, same(Device{"cpu", 1}));
  zoo("layout", 9, same(None{}));
  zoo("memory format", 10, same(MemoryFormat::ChannelsLast));
  zoo("slice int part", 11, [](Node*, Node* y) {
    Slice s;
    s.start = 2;
    s.nodes[1] = y;
    return Value(s);
  });
  zoo("slice node part", 11, [](Node* x, Node*) {
    Slice s;
    s.start = 1;
    s.nodes[1] = x;
    return Value(s);
  });
  zoo("slice none part", 11, [](Node*, Node* y) {
    Slice s;
    s.nodes[1] = y;
    return Value(s);
  });
  zoo("list -> tuple", 12, [](Node* x, Node*) { return Value(Tuple{{x, 1}}); });
  zoo("list item", 12, [](Node* x, Node*) { return Value(List{{x, 2}}); });
  zoo("tuple length", 13, [](Node* x, Node*) { return Value(Tuple{{x, x}}); });
  zoo("dict key", 14, same(Dict{{{"j", Value(1)}}}));
  zoo("dict value", 14, same(Dict{{{"k", Value(2)}}}));
  zoo("tensor data", 15, same(Tensor::from_vector(std::vector<float>{1, 3}, Shape{2})));
  zoo("tensor dtype", 15, same(Tensor::from_vector(std::vector<double>{1, 2}, Shape{2})));
  zoo("tensor shape", 15, same(Tensor::from_vector(std::vector<float>{1, 2}, Shape{1, 2})));
  zoo("ellipsis", 16, same(None{}));
  edit("arg count", [](HashGraph& g) { g.zoo_edit = [](std::vector<Value>& z, Node*, Node*) { z.push_back(1); }; });
  for (const auto& e : edits) {
    CAPTURE(e.first);
    const auto g = e.second.build();
    REQUIRE(python_code(*g) != code0);  // the edit shows in the generated code...
    CHECK(content_hash(*g) != h0);      // ...so the hash sees it
  }
  // Meta that codegen does not read (is_wrapped only counts on call_function nodes).
  for (const std::string key : {"stack_trace", "val", "is_wrapped"}) {
    CAPTURE(key);
    HashGraph g;
    g.meta_edit = [key](Graph& graph) {
      for (Node* n : graph)
        if (key != "is_wrapped" || n->op() != Op::CallFunction) n->meta().set(key, true);
    };
    const auto edited = g.build();
    CHECK(python_code(*edited) == code0);
    CHECK(content_hash(*edited) == h0);
  }
}

TEST_CASE("content hash: GraphModule::content_hash follows the graph's edits") {
  auto lazy_mode = use_lazy_graph_module(true);
  auto gm = fxpack::testing::trace_reference("seed_sin");
  const std::uint64_t before = gm->content_hash();
  CHECK(before == content_hash(gm->graph()));
  for (Node* n : gm->graph())
    if (n->op() == Op::CallMethod) n->set_target("cos");
  CHECK(gm->content_hash() != before);
  CHECK(gm->content_hash() == content_hash(gm->graph()));
  // What a pickle stores, and what loading it finds again.
  auto l = pk::loads_with_report(pk::dumps(*gm), quiet_checked());
  CHECK(l.report.stored_source_hash == gm->content_hash());
  CHECK(l.report.source_hash_matches == std::optional<bool>(true));
}

TEST_CASE("pickle: node references far back, and in meta to later nodes") {
  // The saver finds recent nodes without a map of all of them; references further back and
  // meta references to later nodes take the other path. A meta reference is stored as the
  // distance back from the node holding the meta, as args are.
  auto lazy_mode = use_lazy_graph_module(true);
  auto g = std::make_shared<Graph>();
  Node* x = g->placeholder("x");
  Node* y = x;
  std::vector<Node*> chain;
  for (int i = 0; i < 40; ++i) chain.push_back(y = g->call_method("sin", {y}));
  Node* far = g->call_function("operator.add", {y, x});          // 41 back
  Node* mid = g->call_function("operator.add", {far, chain[3]});  // 38 back
  chain[1]->meta().set("later", mid);                            // forward, in meta
  g->output(Tuple{{mid, x}});
  auto gm = make_graph_module(std::make_shared<Module>(), g, {.graph_module_cls = GraphModuleClass::Lazy});
  for (auto f : kFormats) {
    CAPTURE(pk::format_name(f));
    auto back = pk::loads(pk::dumps(*gm, f), quiet_checked());
    check_same_graph(*g, back->graph());
  }
}

TEST_CASE("pickle: hostile node numbers (x_64, x_194, x_454, ...) and 19-digit ones load with their names") {
  // Names whose numbers each pass twice the last (2k + 66, up to the largest a name carries)
  // once made the name table open one array up to the largest: 2.2 GB by the 22nd name, 70 GB
  // by the 27th (test_graph.cpp checks the table's bound). The names are kept as they are, and
  // 19-digit ones key as they are spelled.
  auto lazy_mode = use_lazy_graph_module(true);
  auto g = std::make_shared<Graph>();
  std::vector<std::int64_t> numbers{64};
  while (numbers.back() <= (std::numeric_limits<std::int64_t>::max() - 66) / 2) numbers.push_back(2 * numbers.back() + 66);
  std::vector<Node*> inputs;
  for (std::int64_t n : numbers) inputs.push_back(g->placeholder("x_" + std::to_string(n)));
  Node* y = g->placeholder("y_999999999999999999");
  Node* y2 = g->create_node(Op::Placeholder, "y2", {}, {}, std::string("y_999999999999999999"));
  REQUIRE(y2->name() == "y_1000000000000000000");
  g->output(Tuple{{inputs.front(), inputs.back(), y, y2}});
  auto gm = make_graph_module(std::make_shared<Module>(), g, {.graph_module_cls = GraphModuleClass::Lazy});
  for (auto f : kFormats) {
    CAPTURE(pk::format_name(f));
    auto back = pk::loads(pk::dumps(*gm, f), quiet());
    check_same_graph(*g, back->graph());
    for (const Node* n : *g) {
      const Node* found = back->graph().find_node(n->name());
      REQUIRE(found != nullptr);
      CHECK(found->name() == n->name());
    }
    // The loaded graph names on by the same rules.
    CHECK(back->graph().unique_name("x_64") == "x_65");
    CHECK(back->graph().unique_name("y_1000000000000000000") == "y_1000000000000000001");
  }
}

namespace {

// Everything the binary writer writes without records: typed nodes, tensors in args, kwargs
// and meta (defined, undefined, sharing a storage with a parameter), slices with node parts,
// Ellipsis, meta naming a later node, references beyond the last 16 nodes, more distinct
// targets than the writer's recent ones, long strings (two-byte lengths), a module tree
// with attributes, parameters, buffers and children.
std::shared_ptr<GraphModule> every_kind_module() {
  auto g = std::make_shared<Graph>(Dialect::Torch2);
  Node* x = g->placeholder("x");
  x->set_type("torch.Tensor");
  Node* n = g->placeholder("n_" + std::string(150, 'a'));
  n->set_args({3});
  n->set_type("int");
  Tensor weight = random_tensor({2, 3});
  Tensor view(weight.storage(), 12, DType::Float32, Shape{3});
  Node* y = g->call_function("torch.add", {x, view}, Dict{{{"alpha", random_tensor({1})}}});
  y->meta().set("val", Tensor());
  y->meta().set("example", weight);
  Slice s;
  s.nodes[1] = n;
  s.step = 2;
  y = g->call_function("operator.getitem", {y, Tuple{{Ellipsis{}, s, Slice{std::nullopt, -1, std::nullopt}}}});
  Node* first = y;
  for (int i = 0; i < 24; ++i) y = g->call_function("custom.op" + std::to_string(i % 12), {y, std::string(200, 'q')});
  y = g->call_function("operator.add", {y, first});  // 25 back
  y->set_type("typing.Union[torch.Tensor,NoneType]");
  first->meta().set("later", y);
  g->output(Tuple{{y, List{{x, n}}}});
  auto root = std::make_shared<Module>("Module");
  root->register_parameter("weight", weight);
  root->register_buffer("empty", Tensor());
  auto child = std::make_shared<Module>("Linear");
  child->set_attr("in_features", 3);
  child->set_attr("table", Dict{{{"scale", random_tensor({2})}, {"dims", List{{1, 2}}}}});
  child->register_parameter("bias", Tensor(weight.storage(), 0, DType::Float32, Shape{2}));
  root->register_module("fc", child);
  return make_graph_module(root, g, {.class_name = "EveryKind", .graph_module_cls = GraphModuleClass::Lazy});
}

}  // namespace

TEST_CASE("pickle: the binary formats written straight from the graph are the records' bytes") {
  // dumps() writes portable-binary and boost-binary without records (binary_writer.hpp);
  // the records through cereal and Boost are the reference, for every value kind.
  auto lazy_mode = use_lazy_graph_module(true);
  std::vector<std::shared_ptr<GraphModule>> modules = {every_kind_module(), exotic_module(),
                                                       fxpack::testing::typed_example()};
  for (const auto& c : fxpack::testing::reference_cases()) modules.push_back(fxpack::testing::trace_reference(c.folder));
  for (const auto& gm : modules) {
    for (auto f : kFormats) {
      CAPTURE(gm->class_name());
      CAPTURE(pk::format_name(f));
      CHECK(pk::dumps(*gm, f) == pickle_of(pk::detail::to_record(*gm, true), f));
      pk::DumpOptions without_hash{.format = f, .store_source_hash = false};
      CHECK(pk::dumps(*gm, without_hash) == pickle_of(pk::detail::to_record(*gm, false), f));
      // storages kept outside: the sink is called once per storage, in the same order
      std::vector<const Storage*> seen_dumps, seen_record;
      const auto sink_into = [](std::vector<const Storage*>& seen) {
        return [&seen](const std::shared_ptr<Storage>& s) {
          seen.push_back(s.get());
          return "storage/" + std::to_string(seen.size() - 1);
        };
      };
      pk::DumpOptions external{.format = f, .storage_sink = sink_into(seen_dumps)};
      CHECK(pk::dumps(*gm, external) == pickle_of(pk::detail::to_record(*gm, true, sink_into(seen_record)), f));
      CHECK(seen_dumps == seen_record);
    }
  }
  // A dumps inside another's storage sink.
  {
    auto gm = every_kind_module();
    auto inner = exotic_module();
    std::vector<std::string> inner_bytes;
    const auto sink = [&](const std::shared_ptr<Storage>& s) {
      inner_bytes.push_back(pk::dumps(*inner));
      return "storage/" + std::to_string(reinterpret_cast<std::uintptr_t>(s.get()) % 1000);
    };
    pk::DumpOptions o{.storage_sink = sink};
    const std::string outer = pk::dumps(*gm, o);
    CHECK(outer == pickle_of(pk::detail::to_record(*gm, true, sink)));
    REQUIRE(!inner_bytes.empty());
    for (const auto& b : inner_bytes) CHECK(b == pk::dumps(*inner));
  }
  // A module attribute may not hold a node, and a node's meta may not name another graph's
  // node (its args cannot: the graph refuses them).
  auto other = every_kind_module();
  Node* foreign = const_cast<Node*>(*other->graph().begin());
  auto bad_attr = every_kind_module();
  bad_attr->set_attr("node", foreign);
  auto bad_arg = every_kind_module();
  const_cast<Node*>(bad_arg->graph().output_node())->meta().set("other", foreign);
  for (auto f : kFormats) {
    CAPTURE(pk::format_name(f));
    CHECK_THROWS_WITH_AS(pk::dumps(*bad_attr, f), doctest::Contains("a module attribute holds a reference to node 'x'"),
                         GraphError);
    CHECK_THROWS_WITH_AS(pk::dumps(*bad_arg, f),
                         doctest::Contains("node 'output' references node 'x', which is not in the graph being saved"),
                         GraphError);
  }
}

namespace {
std::string joined(const pk::detail::PicklePieces& p) {
  std::string out;
  for (std::string_view piece : p.pieces) {
    CHECK(!piece.empty());
    out += piece;
  }
  return out;
}

// A chain of `n` additions of a weight: nodes enough for a large graph's archive (their
// bytes are summed 64 KiB at a time as they are written).
std::shared_ptr<GraphModule> long_chain(int n) {
  auto g = std::make_shared<Graph>();
  Node* x = g->placeholder("x");
  Node* w = g->get_attr("w");
  for (int i = 0; i < n; ++i) x = i % 2 ? g->call_function("torch.sin", {x}) : g->call_function("operator.add", {x, w});
  g->output(x);
  auto root = std::make_shared<Module>("Module");
  root->register_buffer("w", Tensor::full({3}, 0.25));
  return make_graph_module(root, g, {.class_name = "Chain", .graph_module_cls = GraphModuleClass::Lazy});
}
}  // namespace

TEST_CASE("pickle: dumps is the records' bytes whatever targets and tensors the graph held before") {
  // dumps writes the tables first, keeping the target table's place at the size of every
  // target the graph has used, and the nodes behind it: a large graph's straight into the
  // string (unless its tables are larger still), a small one's by way of a buffer. A graph
  // whose nodes no longer use all of those targets has its target table put in place after
  // them; one whose nodes hold a tensor, or dumped with a storage sink, has its whole front.
  // Either way the bytes are the records', the sink is called as for them, and the archive
  // loads back (the header's CRC-32 joins the nodes' sum, taken 64 KiB at a time, to the
  // rest's).
  auto lazy_mode = use_lazy_graph_module(true);
  constexpr int kInPlace = 50000;  // nodes enough to be written in place (over 1 MiB expected)
  // 200 targets of 130 characters (two-byte lengths and count), and a last node with a
  // target of its own (node n + 1).
  const auto many_targets = [](int n) {
    auto g = std::make_shared<Graph>();
    Node* x = g->placeholder("x");
    for (int i = 0; i < n; ++i)
      x = g->call_function("custom." + std::string(120, 't') + std::to_string(1000 + i % 200), {x, i});
    x = g->call_function("custom.once", {x});
    g->output(x);
    return make_graph_module(std::make_shared<Module>("Module"), g,
                             {.class_name = "ManyTargets", .graph_module_cls = GraphModuleClass::Lazy});
  };
  const auto nth = [](GraphModule& gm, int i) {
    auto it = gm.graph().begin();
    std::advance(it, i);
    return const_cast<Node*>(*it);
  };
  std::vector<std::pair<std::string, std::shared_ptr<GraphModule>>> cases;
  cases.emplace_back("a long chain, in place", long_chain(kInPlace));
  cases.emplace_back("a chain by way of the buffer", long_chain(20000));
  {
    auto gm = long_chain(kInPlace);  // 8 MB of weights in front of 1 MB of nodes
    gm->register_buffer("weight", Tensor::full({2 * 1000 * 1000}, 0.5));
    cases.emplace_back("a long chain behind a larger weight", gm);
  }
  cases.emplace_back("many targets", many_targets(5000));
  for (int n : {5000, kInPlace}) {
    auto gm = many_targets(n);  // an erased node took the only use of its target with it
    Node* gone = nth(*gm, n + 1);
    gm->graph().output_node()->replace_input_with(gone, gone->prev());
    gm->graph().erase_node(gone);
    cases.emplace_back("a target no node uses any more, " + std::to_string(n) + " nodes", gm);
  }
  {
    auto gm = many_targets(5000);  // the last use of a target retargeted
    nth(*gm, 5001)->set_target("custom.renamed");
    cases.emplace_back("a retargeted node", gm);
  }
  {
    auto gm = many_targets(5000);  // a retargeted node whose old target others still use
    nth(*gm, 1)->set_target(nth(*gm, 2)->target());
    cases.emplace_back("a node retargeted to another's target", gm);
  }
  for (int n : {100, kInPlace}) {
    auto gm = long_chain(n);  // a node argument holding a tensor
    nth(*gm, 50)->set_args({nth(*gm, 49), random_tensor({2})});
    cases.emplace_back("a node tensor, " + std::to_string(n) + " nodes", gm);
  }
  {
    auto gm = long_chain(100);  // a module attribute holding a tensor
    gm->set_attr("scale", random_tensor({2}, 7));
    cases.emplace_back("a module attribute tensor", gm);
  }
  cases.emplace_back("no nodes", make_graph_module(std::make_shared<Module>("Module"), std::make_shared<Graph>(),
                                                   {.class_name = "Empty", .graph_module_cls = GraphModuleClass::Lazy}));
  for (const auto& [what_case, gm] : cases) {
    const std::string& what = what_case;  // clang 14 cannot capture a structured binding
    CAPTURE(what);
    for (auto f : {pk::PickleFormat::PortableBinary, pk::PickleFormat::BoostBinary}) {
      CAPTURE(pk::format_name(f));
      const std::string bytes = pk::dumps(*gm, f);
      CHECK(bytes == pickle_of(pk::detail::to_record(*gm, true), f));
      std::vector<const Storage*> seen_dumps, seen_record;
      const auto sink_into = [](std::vector<const Storage*>& seen) {
        return [&seen](const std::shared_ptr<Storage>& s) {
          seen.push_back(s.get());
          return "storage/" + std::to_string(seen.size() - 1);
        };
      };
      CHECK(pk::dumps(*gm, {.format = f, .storage_sink = sink_into(seen_dumps)}) ==
            pickle_of(pk::detail::to_record(*gm, true, sink_into(seen_record)), f));
      CHECK(seen_dumps == seen_record);
      if (gm->graph().size() == 0) continue;  // loads wants an output
      const auto back = pk::loads(bytes);
      CHECK(back->code() == gm->code());
      for (const auto& [name, value] : gm->attrs().items) {
        const Value* loaded = back->find_attr(name);
        REQUIRE(loaded);
        CHECK(allclose(loaded->tensor(), value.tensor()));
      }
    }
  }
}

TEST_CASE("pickle: dumps in pieces (a package's record) is dumps, joined") {
  auto lazy_mode = use_lazy_graph_module(true);
  // With them: a graph with no nodes (no nodes' piece), and a zero-byte storage inline (no
  // piece for its bytes).
  auto empty = make_graph_module(std::make_shared<Module>("Module"), std::make_shared<Graph>(),
                                 {.class_name = "Empty", .graph_module_cls = GraphModuleClass::Lazy});
  auto zero_bytes = long_chain(3);
  zero_bytes->register_buffer("nothing", Tensor::full({0}, 1.0));
  std::vector<std::shared_ptr<GraphModule>> modules = {every_kind_module(), exotic_module(), long_chain(20000),
                                                       fxpack::testing::typed_example(), empty, zero_bytes};
  for (const auto& c : fxpack::testing::reference_cases()) modules.push_back(fxpack::testing::trace_reference(c.folder));
  for (const auto& gm : modules) {
    if (gm != empty) CHECK(pk::loads(pk::dumps(*gm))->graph().size() == gm->graph().size());  // loads wants an output
    for (auto f : kFormats) {
      CAPTURE(gm->class_name());
      CAPTURE(pk::format_name(f));
      const pk::DumpOptions inline_storages{.format = f};
      const pk::detail::PicklePieces in_pieces = pk::detail::dumps_pieces(*gm, inline_storages);
      const std::string bytes = pk::dumps(*gm, inline_storages);
      CHECK(joined(in_pieces) == bytes);
      const pk::DumpOptions external{.format = f, .storage_sink = [](const std::shared_ptr<Storage>& s) {
                                       return "storage/" + std::to_string(s->nbytes());
                                     }};
      CHECK(joined(pk::detail::dumps_pieces(*gm, external)) == pk::dumps(*gm, external));
    }
  }
  // The pieces hold what they view: the module, its graph and its storages may go first.
  {
    auto chain = long_chain(100);
    const std::string bytes = pk::dumps(*chain);
    const pk::detail::PicklePieces in_pieces = pk::detail::dumps_pieces(*chain, {});
    chain.reset();
    CHECK(joined(in_pieces) == bytes);
  }
  // The header's CRC-32 covers every piece: a large graph's dumps loads back, and refuses a
  // flipped byte of its last node.
  auto chain = long_chain(20000);
  std::string bytes = joined(pk::detail::dumps_pieces(*chain, {}));
  REQUIRE(bytes.size() > 4 * 64 * 1024);
  CHECK(pk::loads(bytes)->graph().size() == chain->graph().size());
  bytes[bytes.size() - 3] ^= 0x01;
  CHECK_THROWS_WITH_AS(pk::loads(bytes), doctest::Contains("CRC-32"), FormatError);
}

TEST_CASE("pickle: on_call_target reports each distinct call target once, in every format") {
  auto lazy_mode = use_lazy_graph_module(true);
  std::vector<std::shared_ptr<GraphModule>> modules = {every_kind_module(), exotic_module()};
  for (const auto& c : fxpack::testing::reference_cases()) modules.push_back(fxpack::testing::trace_reference(c.folder));
  for (const auto& gm : modules) {
    std::set<std::pair<Op, std::string>> expect;
    for (const Node* n : gm->graph())
      if (n->op() == Op::CallFunction || n->op() == Op::CallMethod || n->op() == Op::CallModule)
        expect.emplace(n->op(), n->target());
    for (auto f : kFormats) {
      CAPTURE(gm->class_name());
      CAPTURE(pk::format_name(f));
      std::vector<std::pair<Op, std::string_view>> called;
      pk::DumpOptions o{.format = f};
      o.on_call_target = [&](Op op, std::string_view target) { called.emplace_back(op, target); };
      const std::string bytes = pk::dumps(*gm, o);
      CHECK(bytes == pk::dumps(*gm, f));  // the hook changes nothing written
      CHECK(called.size() == expect.size());
      CHECK(std::set<std::pair<Op, std::string>>(called.begin(), called.end()) == expect);
      CHECK(required_items(*gm, called) == required_items(*gm));
    }
  }
}

TEST_CASE("pickle: this build writes the current format version's golden files byte for byte") {
  // make_pickle_fixtures wrote them; any change to what dumps writes for them is a format
  // change (a version bump with new goldens), never a silent one.
  auto lazy_mode = use_lazy_graph_module(true);
  const auto dir = fxpack::testing::fixtures_dir() / "pickle" / ("v" + std::to_string(pk::kFormatVersion));
  int compared = 0;
  for (const std::string model : {"seed_sin", "mlp", "small_convnet", "typed"}) {
    auto gm = model == "typed" ? fxpack::testing::typed_example() : fxpack::testing::trace_reference(model);
    for (auto f : kFormats) {
      const auto path = dir / (model + "." + std::string(pk::format_name(f)) + ".pkl");
      CAPTURE(path.string());
      REQUIRE(std::filesystem::exists(path));
      CHECK(pk::dumps(*gm, f) == fxpack::testing::read_file(path));
      ++compared;
    }
  }
  CHECK(compared == 20);
}
