// Codegen dialects and everything fx prints, against real PyTorch 1.13 and 2.6 output:
// fixtures/fx_code/<version>/<case>.py are fx-generated modules (import block + gm.code) of
// graphs that show the differences (test/python/make_fx_code_fixtures.py); fixtures/torch/*
// carry the reference models' code and print_readable text from both versions.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "fxpack/fxpack.hpp"
#include "interop/fx_code_parser.hpp"
#include "reference_models.hpp"

using namespace fxpack;
using fxpack::interop::parse_fx_code;
using fxpack::testing::fixtures_dir;
using fxpack::testing::read_file;
using fxpack::testing::reference_cases;
using fxpack::testing::reference_dir;

namespace {

Dialect dialect_of(const std::string& version) { return version == "1.13" ? Dialect::Torch1_13 : Dialect::Torch2; }

std::vector<std::filesystem::path> fx_code_cases(const std::string& version) {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::directory_iterator(fixtures_dir() / "fx_code" / version)) {
    if (e.path().extension() == ".py") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// gm.code inside an fx-generated module: what follows its import block.
std::string code_part(const std::string& module, std::size_t code_size) {
  REQUIRE(module.size() >= code_size);
  std::string imports = module.substr(0, module.size() - code_size);
  // Only import statements come before it (the code itself starts with a newline).
  std::size_t start = 0;
  while (start < imports.size()) {
    auto nl = imports.find('\n', start);
    std::string line = imports.substr(start, nl == std::string::npos ? nl : nl - start);
    CAPTURE(line);
    CHECK((line.starts_with("import ") || line.starts_with("from ") || line == "NoneType = type(None)"));
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return module.substr(module.size() - code_size);
}

}  // namespace

TEST_CASE("dialects: every fx-generated module of both versions parses and prints byte for byte") {
  int checked = 0;
  for (const std::string version : {"1.13", "2.6"}) {
    for (const auto& path : fx_code_cases(version)) {
      CAPTURE(path.string());
      const std::string module = read_file(path);
      auto g = parse_fx_code(module, path.string(), {}, dialect_of(version));
      g->lint();
      CHECK(g->dialect() == dialect_of(version));
      const std::string code = python_code(*g);
      CHECK(module.ends_with(code));
      (void)code_part(module, code.size());
      ++checked;
    }
  }
  CHECK(checked == 20);  // 9 cases traced by 1.13 (not varargs, vit_b_16), 11 by 2.6
}

TEST_CASE("dialects: the same graph prints as each version prints it") {
  // Graphs both versions trace alike: parse one version's module, print it in the other's
  // dialect, and get that version's code.
  for (const char* name : {"unused", "manual", "naming", "resnet18", "googlenet", "efficientnet_b0"}) {
    CAPTURE(name);
    for (const std::string from : {"1.13", "2.6"}) {
      const std::string to = from == "1.13" ? "2.6" : "1.13";
      auto g = parse_fx_code(read_file(fixtures_dir() / "fx_code" / from / (std::string(name) + ".py")), name, {},
                             dialect_of(from));
      g->set_dialect(dialect_of(to));
      const std::string other = read_file(fixtures_dir() / "fx_code" / to / (std::string(name) + ".py"));
      const std::string code = python_code(*g);
      if (std::string(name) == "naming") {
        // The names differ: 1.13 named the nodes relu, relu_1, relu_2; 2.x relu, relu_6, relu_7.
        CHECK_FALSE(other.ends_with(code));
        continue;
      }
      CHECK(other.ends_with(code));
    }
  }
  // ...and a graph built in C++ is named as the dialect names it.
  for (Dialect d : {Dialect::Torch1_13, Dialect::Torch2}) {
    Graph g(d);
    Node* x = g.placeholder("x");
    Value r = g.create_node(Op::CallFunction, "torch.relu", {x}, {}, std::string("relu_5"));
    for (int i = 0; i < 3; ++i) r = g.call_function("torch.relu", {r});
    g.output(r);
    const std::string version = d == Dialect::Torch1_13 ? "1.13" : "2.6";
    CHECK(read_file(fixtures_dir() / "fx_code" / version / "naming.py").ends_with(python_code(g)));
  }
}

TEST_CASE("dialects: print_readable's stack-trace summaries, as each version writes them") {
  for (const std::string version : {"1.13", "2.6"}) {
    CAPTURE(version);
    auto g = parse_fx_code(read_file(fixtures_dir() / "fx_code" / version / "stack_traces.py"), "stack_traces.py",
                           {}, dialect_of(version));
    // The meta the fixture script set (the generated module does not carry it).
    std::vector<Node*> nodes(g->begin(), g->end());
    REQUIRE(nodes.size() == 7);
    nodes[1]->meta().set("stack_trace", "  File \"model.py\", line 12, in forward\n    y = x * 3.0\n");
    const std::string two_frames =
        "context line one\n  File \"a.py\", line 3, in outer\n    inner()\n"
        "  File \"b.py\", line 7, in inner\n    x.dim()\n";
    nodes[2]->meta().set("stack_trace", two_frames);
    nodes[3]->meta().set("stack_trace", two_frames);
    nodes[5]->meta().set("stack_trace", "no file line here");
    CHECK(readable_code(*g, "Unused") == read_file(fixtures_dir() / "fx_code" / version / "stack_traces.readable.txt"));
  }
}

TEST_CASE("dialects: the reference models' code and print_readable from PyTorch 2.6") {
  for (const auto& c : reference_cases()) {
    CAPTURE(c.folder);
    auto gm = fxpack::testing::trace_reference(c.folder);
    gm->graph().set_dialect(Dialect::Torch2);
    gm->recompile();
    CHECK(gm->code() == read_file(fixtures_dir() / "torch" / c.folder / "code-2.6.py"));
    CHECK(gm->print_readable(false) == read_file(fixtures_dir() / "torch" / c.folder / "readable-2.6.txt"));
    gm->graph().set_dialect(Dialect::Torch1_13);
    gm->recompile();
    CHECK(gm->code() == read_file(reference_dir(c.folder) / "code.py"));
    CHECK(gm->print_readable(false) == read_file(reference_dir(c.folder) / "readable.txt"));
  }
}

TEST_CASE("dialects: what the parser reads from annotations, globals and wrap lines") {
  auto g = parse_fx_code(read_file(fixtures_dir() / "fx_code" / "2.6" / "annotated.py"), "annotated.py", {},
                         Dialect::Torch2);
  auto node = [&](const char* n) {
    Node* p = g->find_node(n);
    REQUIRE(p);
    return p;
  };
  CHECK(node("x")->type() == "torch.Tensor");
  CHECK(node("b_1")->type().empty());
  CHECK(std::ranges::equal(node("b_1")->args(), std::vector<Value>{Value(None{})}));
  CHECK(node("n")->type() == "int");
  CHECK(std::ranges::equal(node("n")->args(), std::vector<Value>{Value(3)}));
  CHECK(node("t")->type() == "typing.Tuple[int,...]");
  CHECK(node("l")->type() == "typing.List[float]");
  CHECK(node("d")->type() == "torch.device");
  CHECK(std::ranges::equal(node("d")->args(), std::vector<Value>{Value(Device{})}));
  CHECK(g->output_node()->type() == "typing.Tuple[torch.Tensor,int]");
  CHECK(node("_assert_is_none")->target() == "torch.fx._symbolic_trace._assert_is_none");

  auto m = parse_fx_code(read_file(fixtures_dir() / "fx_code" / "1.13" / "manual.py"), "manual.py", {},
                         Dialect::Torch1_13);
  CHECK(m->find_node("not_")->target() == "operator.not_");
  CHECK(m->find_node("sqrt")->target() == "math.sqrt");
  CHECK(*m->find_node("sqrt")->meta().find("is_wrapped") == Value(true));
  CHECK(m->find_node("iadd")->target() == "operator.iadd");
  CHECK(m->find_node("add")->type() == "torch.Tensor");
  CHECK(m->find_node("getitem")->args()[1] == Value(Tuple{{Value(Ellipsis{}), Value(Slice{std::nullopt, 2, std::nullopt}), Value(None{})}}));
  CHECK(m->find_node("to")->kwargs().items[0].second == Value(DType::Float16));
  CHECK(m->output_node()->type() == "typing.Tuple[torch.Tensor,typing.Dict[str,torch.Tensor]]");

  auto s = parse_fx_code(read_file(fixtures_dir() / "fx_code" / "2.6" / "swin_t.py"), "swin_t.py", {}, Dialect::Torch2);
  CHECK(s->find_node("stochastic_depth")->target() == "torchvision.ops.stochastic_depth.stochastic_depth");
  CHECK(*s->find_node("stochastic_depth")->meta().find("is_wrapped") == Value(true));
  auto v = parse_fx_code(read_file(fixtures_dir() / "fx_code" / "2.6" / "varargs.py"), "varargs.py", {}, Dialect::Torch2);
  CHECK(v->find_node("_args")->target() == "*args");
}

TEST_CASE("dialects: node types, defaults and the dialect survive every pickle format") {
  auto g = parse_fx_code(read_file(fixtures_dir() / "fx_code" / "2.6" / "annotated.py"), "annotated.py", {},
                         Dialect::Torch2);
  auto gm = make_graph_module(std::make_shared<Module>(), g, {.class_name = "Annotated", .graph_module_cls = GraphModuleClass::Lazy});
  const std::string code = gm->code();
  for (int f = 0; f < pickle::kPickleFormatCount; ++f) {
    auto format = static_cast<pickle::PickleFormat>(f);
    CAPTURE(pickle::format_name(format));
    auto back = pickle::loads(pickle::dumps(*gm, format));
    CHECK(back->graph().dialect() == Dialect::Torch2);
    CHECK(back->graph().find_node("t")->type() == "typing.Tuple[int,...]");
    CHECK(back->code() == code);
  }
}

TEST_CASE("dialects: names, defaults and types through the public API") {
  CHECK(dialect_name(Dialect::Torch2) == "torch-2");
  CHECK(parse_dialect("torch-1.13") == Dialect::Torch1_13);
  CHECK_THROWS_WITH_AS(parse_dialect("torch-3"), doctest::Contains("unknown codegen dialect 'torch-3'"), Error);
  const Dialect before = default_dialect();
  set_default_dialect(Dialect::Torch2);
  auto gm = symbolic_trace([](const Value& x) { return x * 3.0; });
  CHECK(gm->graph().dialect() == Dialect::Torch2);
  set_default_dialect(before);
  Graph g;
  Node* x = g.placeholder("x");
  CHECK_THROWS_WITH_AS(x->set_type("List[int"), doctest::Contains("'List[int' is not a type expression"), GraphError);
  CHECK_THROWS_WITH_AS(x->set_type("a b"), doctest::Contains("is not a type expression"), GraphError);
  x->set_type("typing.Optional[torch.Tensor]");
  x->set_args({None{}});
  Node* y = g.call_function("mylib.op", {x});
  y->meta().set("is_wrapped", true);
  g.output(y);
  g.lint();
  CHECK(python_code(g) ==
        "\ntorch.fx._symbolic_trace.wrap(\"mylib_op\")\n\ndef forward(self, x : typing_Optional[torch.Tensor] = None):\n"
        "    op = mylib_op(x);  x = None\n    return op\n    ");
  Graph h;
  Node* a = h.placeholder("a");
  Node* b = h.placeholder("b");
  b->set_args({Value(a)});
  h.output(b);
  CHECK_THROWS_WITH_AS(h.lint(), doctest::Contains("placeholder node 'b' has arguments other than a default value"), GraphError);
}
