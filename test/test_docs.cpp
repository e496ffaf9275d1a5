// Every C++ example of README.md and docs/*.md is compiled and run here, so it cannot rot.
//
// How: each ```cpp block of the documentation must appear in this file, line for line
// (leading and trailing spaces ignored), inside the test that runs it; the test "docs:
// every C++ example is compiled by this file" extracts the blocks and checks that. When
// you add or change an example in the docs, paste it here into a test that gives it the
// variables it uses. Shell examples of docs/cli.md are run by test_cli.cpp's cases.
#include <doctest/doctest.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include "fxpack/fxpack.hpp"
#include "ops/elementwise.hpp"
#include "ops/kernels.hpp"
#include "reference_models.hpp"

// The source tree (README.md, docs/): the folder above fixtures/ unless given.
#ifndef FXPACK_SOURCE_DIR
#define FXPACK_SOURCE_DIR (std::filesystem::path(FXPACK_FIXTURES_DIR).parent_path().string())
#endif

using namespace fxpack;

namespace {

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  INFO("cannot read ", p.string());
  REQUIRE(in.good());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::string t = trim(line);
    if (!t.empty()) out.push_back(t);
  }
  return out;
}

struct Block {
  std::string file;
  int line;
  std::string text;
};

std::vector<Block> cpp_blocks(const std::filesystem::path& md) {
  std::vector<Block> out;
  std::istringstream in(slurp(md));
  std::string line, body;
  int n = 0, start = 0;
  bool inside = false;
  while (std::getline(in, line)) {
    ++n;
    if (!inside && trim(line) == "```cpp") {
      inside = true;
      start = n;
      body.clear();
    } else if (inside && trim(line) == "```") {
      inside = false;
      out.push_back({md.filename().string(), start, body});
    } else if (inside) {
      body += line + "\n";
    }
  }
  return out;
}

// --- docs/design.md: the op table's C++ ---------------------------------------------------

namespace design_examples {
using namespace fxpack;

// doc:design-functor begin
// src/ops/elementwise.cpp: the scalar function, written once. The generic driver runs it
// over contiguous data (broadcasting and PyTorch's type promotion for binary functors),
// and compile's fused kernel runs it inside a fused chain.
struct Erf {
  static constexpr const char* name = "erf";  // for messages
  template <class T>
  T operator()(T x) const {
    return std::erf(x);
  }
};
// doc:design-functor end

// doc:design-kernel begin
// max.dim(Tensor self, int dim, bool keepdim=False) -> (Tensor values, Tensor indices)
Value max_dim(std::span<const Value> args) {
  const Tensor& x = args[0].tensor();  // the schema says Tensor: binding checked it
  auto [values, indices] = ops::max_along(x, args[1].to_int(), args[2].to_bool());
  return Value(Tuple{{Value(std::move(values)), Value(std::move(indices))}});
}
// doc:design-kernel end

// doc:design-binary-functor begin
struct Maximum {
  static constexpr const char* name = "maximum";
  template <class T>
  T operator()(T a, T b) const {
    if constexpr (std::is_floating_point_v<T>) {
      if (std::isnan(a)) return a;  // NaN wins
      if (std::isnan(b)) return b;
    }
    return a < b ? b : a;
  }
};
// doc:design-binary-functor end

// doc:design-decomposition begin
// at::linear: a 2-D input with a bias is addmm(b, x, w.t()); otherwise a product (+ add).
Value linear_decomposition(OpRecorder& rec, const OpCall& call) {
  const TracedValue& x = call.args[0];
  const TracedValue& w = call.args[1];
  const TracedValue& b = call.args[2];
  const bool bias = !b.real.is_none();
  Value t = rec.record("t.default", {w.sym});
  if (x.real.tensor().dim() == 2) {
    if (bias) return rec.record("addmm.default", {b.sym, x.sym, t});
    return rec.record("mm.default", {x.sym, t});
  }
  Value mm = rec.record("matmul.default", {x.sym, t});
  if (!bias) return mm;
  return rec.record("add.Tensor", {mm, b.sym});
}
// doc:design-decomposition end

// Records what a decomposition asks for, as "target(args)" lines.
class ListingRecorder final : public OpRecorder {
 public:
  Value record(std::string_view aten, std::vector<Value> args, Dict) override {
    lines.push_back(std::string(aten) + python_repr(Value(Tuple{std::move(args)})));
    return Value("r" + std::to_string(lines.size()));
  }
  TracedValue call(const std::string&, std::vector<TracedValue>, std::vector<std::pair<std::string, TracedValue>>) override {
    return {};
  }
  std::vector<std::string> lines;
};

}  // namespace design_examples

TEST_CASE("docs: design.md functors, kernels and decompositions") {
  using namespace design_examples;
  Tensor x = Tensor::from_vector(std::vector<float>{-1.0f, 0.0f, 2.0f}, {3});
  Value erf = ops::elementwise_kernel<Erf, Promotion::PromoteFloat>(std::vector<Value>{Value(x)});
  CHECK(erf.tensor().item_at(2) == doctest::Approx(std::erf(2.0)));
  Value mx = ops::elementwise_kernel<Maximum, Promotion::Promote>(std::vector<Value>{Value(x), Value(0.5)});
  CHECK(mx.tensor().item_at(0) == 0.5);
  Value md = max_dim(std::vector<Value>{Value(x.view(Shape{1, 3})), Value(1), Value(false)});
  CHECK(md.items()[1].tensor().item_at(0) == 2.0);

  ListingRecorder rec;
  std::vector<TracedValue> args{{Value(Tensor::zeros(Shape{2, 3})), Value("x")},
                                {Value(Tensor::zeros(Shape{4, 3})), Value("w")},
                                {Value(Tensor::zeros(Shape{4})), Value("b")}};
  Value result;
  (void)linear_decomposition(rec, OpCall{args, result});
  CHECK(rec.lines == std::vector<std::string>{"t.default('w',)", "addmm.default('b', 'x', 'r1')"});
}

// --- docs/design.md: adding an op and a leaf module kind -------------------------------

// doc:design-op begin
fxpack::Value square_kernel(std::span<const fxpack::Value> args) {
  fxpack::Tensor x = args[0].tensor().to(fxpack::DType::Float32);
  fxpack::Tensor y = fxpack::Tensor::empty(x.shape());
  for (std::int64_t i = 0; i < x.numel(); ++i) y.data<float>()[i] = x.data<float>()[i] * x.data<float>()[i];
  return y;
}

void register_square_op() {
  fxpack::OpRegistry::global().add_function("mylib.square(Tensor input) -> Tensor", &square_kernel);
}

fxpack::Value square(const fxpack::Value& x) { return fxpack::call_function("mylib.square", {x}); }
// doc:design-op end

// doc:design-kind begin
void register_scale_kind() {
  fxpack::ModuleKind kind;
  kind.name = "Scale";
  kind.constructor = fxpack::parse_params("(float factor)");
  kind.attributes = kind.constructor;  // make_module stores each constructor argument
  kind.forward_fn = [](const fxpack::Module& m, std::span<const fxpack::Value> args) -> fxpack::Value {
    return args[0] * m.attr("factor");
  };
  kind.extra_repr_format = "factor={factor}";
  fxpack::OpRegistry::global().add_module_kind(std::move(kind));
}

std::shared_ptr<fxpack::Module> Scale(double factor) { return fxpack::make_module("Scale", {factor}); }
// doc:design-kind end

void register_examples_once() {
  static const bool done = [] {
    register_square_op();
    register_scale_kind();
    return true;
  }();
  (void)done;
}

}  // namespace

TEST_CASE("docs: design.md adding an op and a leaf module kind") {
  register_examples_once();
  // doc:design-use begin
  class Net : public fxpack::Module {
   public:
    Net() : Module("Net") { register_module("scale", scale = Scale(0.5)); }
    fxpack::Value forward(std::span<const fxpack::Value> in) override { return (*scale)(square(in[0])); }
    std::shared_ptr<fxpack::Module> scale;
  };
  auto gm = fxpack::symbolic_trace(std::make_shared<Net>());
  std::cout << gm->code();
  // torch.fx._symbolic_trace.wrap("mylib_square")
  //
  // def forward(self, x):
  //     square = mylib_square(x);  x = None
  //     scale = self.scale(square);  square = None
  //     return scale
  fxpack::Tensor y = (*gm)(fxpack::Tensor::full({2}, 3.0)).tensor();  // [4.5, 4.5]
  // doc:design-use end
  CHECK(gm->code() ==
        "\ntorch.fx._symbolic_trace.wrap(\"mylib_square\")\n\ndef forward(self, x):\n"
        "    square = mylib_square(x);  x = None\n    scale = self.scale(square);  square = None\n    return scale\n    ");
  CHECK(y.item_at(0) == 4.5);
  // and it survives a package round trip, the manifest naming both
  PackageExporter pe;
  pe.save_pickle("model", "model.pkl", *gm);
  PackageImporter pi(pe.close());
  auto loaded = pi.load_pickle("model", "model.pkl");
  CHECK((*loaded)(fxpack::Tensor::full({2}, 3.0)).tensor().item_at(1) == 4.5);
  CHECK(loaded->get_submodule("scale")->repr() == "Scale(factor=0.5)");
}

TEST_CASE("docs: design.md the lazy state machine") {
  auto model = std::make_shared<fxpack::examples::MLP>();
  fxpack::Tensor x = fxpack::Tensor::full({2, 4}, 1.0);
  // doc:design-lazy begin
  auto lazy = fxpack::use_lazy_graph_module(true);
  auto gm = fxpack::symbolic_trace(model);  // a LazyGraphModule: dirty, nothing generated yet
  bool dirty = gm->needs_recompile();       // true
  gm->print_readable(false);                // renders from the graph: no recompile, still dirty
  (*gm)(x);                                 // the one real recompile, then runs
  auto after_call = gm->recompile_count();  // 1
  gm->recompile();                          // lazy: only marks it dirty again
  gm->code();                               // real recompile number two
  auto after_code = gm->recompile_count();  // 2
  // doc:design-lazy end
  CHECK(dirty);
  CHECK(after_call == 1);
  CHECK(after_code == 2);
}

TEST_CASE("docs: design.md save, load and run elsewhere") {
  auto gm = fxpack::testing::trace_reference("mlp");
  const auto path = std::filesystem::temp_directory_path() / ("fxpack_docs_" + std::to_string(::getpid()) + ".fxpkg");
  fxpack::Tensor x = fxpack::Tensor::full({2, 4}, 1.0);
  // doc:design-package begin
  {
    fxpack::PackageExporter exporter(path);
    exporter.save_pickle("model", "model.pkl", *gm);
    exporter.close();                       // the archive appears atomically here
  }
  fxpack::PackageImporter importer(path);   // checks the manifest against this build
  auto loaded = importer.load_pickle("model", "model.pkl");  // a dirty LazyGraphModule
  fxpack::Tensor y = (*loaded)(x).tensor();
  // doc:design-package end
  CHECK(fxpack::allclose(y, (*gm)(x).tensor(), 0, 0));
  std::filesystem::remove(path);
}

// --- README.md's tour ----------------------------------------------------------------------

TEST_CASE("docs: README forward bodies, modules, editing, lazy modules") {
  using namespace fxpack;
  {
    class ReluAdd : public fxpack::Module {
     public:
      ReluAdd() : Module("ReluAdd") {}
      Value forward(std::span<const Value> in) override { return torch::relu(in[0] + 3.0); }
    };

    auto gm = symbolic_trace(std::make_shared<ReluAdd>());
    std::cout << gm->code();
    // def forward(self, x):
    //     add = x + 3.0;  x = None
    //     relu = torch.relu(add);  add = None
    //     return relu
    Tensor y = (*gm)(Tensor::full({2, 3}, -1.0)).tensor();
    CHECK(y.item_at(0) == 2.0);
  }
  {
    class MLP : public Module {
     public:
      MLP() : Module("MLP") {
        register_module("fc1", fc1 = nn::Linear(4, 8));
        register_module("relu", relu = nn::ReLU());
        register_module("fc2", fc2 = nn::Linear(8, 3));
      }
      Value forward(std::span<const Value> in) override { return (*fc2)((*relu)((*fc1)(in[0]))); }
      std::shared_ptr<Module> fc1, relu, fc2;
    };
    CHECK(symbolic_trace(std::make_shared<MLP>())->graph().size() == 5);
  }
  {
    auto gm = symbolic_trace([](const Value& x) { return x.sin(); });
    Node* node = gm->graph().find_node("sin");
    REQUIRE(node != nullptr);
    node->set_target("sin");
    for (Node* n : gm->graph())
      if (n->target() == "sin") n->set_target("cos");     // users/args stay consistent
    {
      auto at = gm->graph().inserting_after(node);          // insertion point guard
      Node* r = gm->graph().call_function("torch.relu", {node});
      node->replace_all_uses_with(r);
      r->set_arg(0, node);
    }
    gm->graph().eliminate_dead_code();
    gm->graph().lint();                                     // throws GraphError naming the node
    gm->recompile();                                        // editing never marks a module dirty
    CHECK(gm->code().find("relu = torch.relu(sin)") != std::string::npos);
  }
  {
    auto model = std::make_shared<fxpack::examples::MLP>();
    Tensor x = Tensor::full({2, 4}, 1.0);
    auto lazy = use_lazy_graph_module(true);     // RAII: restores the previous mode
    auto gm = symbolic_trace(model);             // a LazyGraphModule, dirty
    gm->needs_recompile();                       // true
    auto fwd = gm->forward_fn();                 // a saved forward, bound to gm
    fwd(x);                                      // one real recompile, then runs
    gm->recompile_count();                       // 1 (also: GraphModule::set_recompile_hook)
    auto eager = make_graph_module(gm, gm->graph_ptr(),
        {.class_name = "MyGraphModule", .graph_module_cls = GraphModuleClass::Eager});
    auto again = LazyGraphModule::from_graphmodule(eager);
    CHECK(gm->recompile_count() == 1);
    CHECK(again->is_lazy());
  }
}

TEST_CASE("docs: README codegen dialects") {
  const Dialect before = default_dialect();
  {
    auto gm = symbolic_trace([](const Value& x) { (void)(x * 3.0); return x.sin(); });
    gm->graph().set_dialect(Dialect::Torch2);   // new graphs take default_dialect(), 1.13
    gm->recompile();
    std::cout << gm->code();
    // def forward(self, x):
    //     mul = x * 3.0;  mul = None              (1.13: `mul = x * 3.0`)
    //     sin = x.sin();  x = None
    //     return sin
    set_default_dialect(Dialect::Torch2);       // for graphs made from now on
    CHECK(gm->code() == "\n\n\ndef forward(self, x):\n    mul = x * 3.0;  mul = None\n    sin = x.sin();  x = None\n"
                        "    return sin\n    ");
    gm->graph().set_dialect(Dialect::Torch1_13);
    gm->recompile();
    CHECK(gm->code().find("    mul = x * 3.0\n") != std::string::npos);
    CHECK(symbolic_trace([](const Value& x) { return x.sin(); })->graph().dialect() == Dialect::Torch2);
  }
  set_default_dialect(before);
}

TEST_CASE("docs: README pickles, packages, make_fx and compile") {
  using namespace fxpack;
  auto gm = fxpack::testing::trace_reference("mlp");
  Tensor x = Tensor::full({2, 4}, 0.5);
  const auto dir = std::filesystem::temp_directory_path() / ("fxpack_docs_readme_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir);
  {
    std::string bytes = pickle::dumps(*gm);                          // cereal portable binary
    std::string text = pickle::dumps(*gm, pickle::PickleFormat::Json);
    auto back = pickle::loads(bytes);         // a LazyGraphModule, dirty; Boost formats too

    PackageExporter exporter("model.fxpkg");  // written atomically on close()
    exporter.save_pickle("model", "model.pkl", *gm);
    exporter.save_text("model", "README.txt", "an MLP");
    exporter.close();

    PackageImporter importer("model.fxpkg");  // checks the manifest: every op this build lacks
    auto loaded = importer.load_pickle("model", "model.pkl");  // weights alias the mapped file
    std::cout << importer.file_structure();
    PackageImporter copied("model.fxpkg", {.mode = LoadMode::Copy});  // maps nothing
    CHECK(back->needs_recompile());
    CHECK_FALSE(copied.load_pickle("model", "model.pkl")->get_tensor("fc1.weight").storage()->borrowed());
    CHECK(text.starts_with("fxpack.pickle json 3 "));
    CHECK(allclose((*loaded)(x).tensor(), (*gm)(x).tensor(), 0, 0));
  }
  {
    auto aten = make_fx(gm)(x);          // op-level graph: torch.ops.aten.addmm.default, ...
    auto fast = compile(gm);             // guards on dtypes and shapes, DCE, CSE, folding, fusion
    Tensor y2 = fast(x).tensor();
    auto inner = innermost_fn(disable(gm->forward_fn()));  // inner.self() is gm
    CHECK(aten->code().find("torch.ops.aten.addmm.default") != std::string::npos);
    CHECK(allclose(y2, (*gm)(x).tensor(), 1e-5, 1e-6));
    CHECK(inner.self() == gm);
  }
  std::filesystem::current_path(cwd);
  std::filesystem::remove_all(dir);
}

TEST_CASE("docs: every C++ example is compiled by this file") {
  const std::filesystem::path root = FXPACK_SOURCE_DIR;
  const std::vector<std::string> self = lines_of(slurp(root / "test" / "test_docs.cpp"));
  std::vector<std::filesystem::path> docs = {root / "README.md"};
  for (const auto& e : std::filesystem::directory_iterator(root / "docs"))
    if (e.path().extension() == ".md") docs.push_back(e.path());
  std::size_t blocks = 0;
  for (const auto& md : docs) {
    for (const auto& b : cpp_blocks(md)) {
      ++blocks;
      std::vector<std::string> want = lines_of(b.text);
      bool found = want.empty();
      for (std::size_t i = 0; !found && i + want.size() <= self.size(); ++i)
        found = std::equal(want.begin(), want.end(), self.begin() + static_cast<std::ptrdiff_t>(i));
      INFO(b.file, ":", b.line, ": this ```cpp block is not in test/test_docs.cpp:\n", b.text);
      CHECK(found);
    }
  }
  CHECK(blocks >= 5);
}
