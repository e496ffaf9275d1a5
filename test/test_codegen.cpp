// Golden tests: fxpack traces the reference models and must print exactly what PyTorch
// printed (fixtures/reference/*/code.py and readable.txt, from torch 1.13), and compute
// what PyTorch computed (output.bin) within 1e-5 relative.
#include <algorithm>

#include <doctest/doctest.h>

#include "fxpack/fxpack.hpp"
#include "reference_models.hpp"

using namespace fxpack;
using namespace fxpack::testing;

TEST_CASE("codegen: code() is byte-identical to PyTorch's for every reference model") {
  for (const auto& c : reference_cases()) {
    CAPTURE(c.folder);
    auto gm = trace_reference(c.folder);
    CHECK(gm->code() == read_file(reference_dir(c.folder) / "code.py"));
  }
}

TEST_CASE("codegen: one liveness analysis serves the code; line_nodes only when asked for") {
  for (const auto& c : reference_cases()) {
    CAPTURE(c.folder);
    auto gm = trace_reference(c.folder);
    const Graph& g = gm->graph();
    const PythonCode full = generate_python_code(g);
    const LastUses uses = g.last_uses();
    const PythonCode lean = generate_python_code(g, uses, {.verbose = false, .dialect = std::nullopt, .line_nodes = false});
    CHECK(lean.src == full.src);
    CHECK(lean.globals == full.globals);
    CHECK(lean.line_nodes.empty());
    // One line_nodes entry per body line: the lines of the function after `def forward`.
    const auto body = full.src.substr(full.src.find(":\n", full.src.find("def forward(")) + 2);
    CHECK(full.line_nodes.size() == static_cast<std::size_t>(std::count(body.begin(), body.end(), '\n')) + 1);
    CHECK(gm->code() == full.src);
  }
}

TEST_CASE("codegen: print_readable(false) is byte-identical to PyTorch's readable.txt") {
  for (const auto& c : reference_cases()) {
    CAPTURE(c.folder);
    auto gm = trace_reference(c.folder);
    bool was_dirty = gm->needs_recompile();
    CHECK(gm->print_readable(false) == read_file(reference_dir(c.folder) / "readable.txt"));
    CHECK(gm->needs_recompile() == was_dirty);  // renders from the graph, no state change
  }
}

TEST_CASE("codegen: reference models reproduce PyTorch's outputs (1e-5 relative)") {
  for (bool lazy : {false, true}) {
    auto mode = use_lazy_graph_module(lazy);
    for (const auto& c : reference_cases()) {
      CAPTURE(c.folder);
      auto gm = trace_reference(c.folder);
      Tensor out = (*gm)(reference_input(c)).tensor();
      Tensor expected = reference_output(c);
      REQUIRE(out.shape() == expected.shape());
      CHECK(allclose(out, expected, 1e-5, 1e-6));
    }
  }
}

TEST_CASE("codegen: stream form includes the module repr and the code") {
  auto gm = trace_reference("mlp");
  std::string s = gm->to_string();
  CHECK(s ==
        "MLP(\n"
        "  (fc1): Linear(in_features=4, out_features=8, bias=True)\n"
        "  (relu): ReLU()\n"
        "  (fc2): Linear(in_features=8, out_features=3, bias=True)\n"
        ")\n" +
            read_file(reference_dir("mlp") / "code.py") +
            "\n# To see more debug info, please use `graph_module.print_readable()`");
}

TEST_CASE("codegen: fx printing rules") {
  auto g = std::make_shared<Graph>();
  Node* x = g->placeholder("x");
  Node* a = g->get_attr("layers.0.weight");
  Node* m = g->call_module("layers.0", {x});
  Node* s = g->call_function("operator.getitem", {m, Tuple{{Slice{std::nullopt, 2, std::nullopt}, 0}}});
  Node* k = g->call_function("torch.sum", {s}, Dict{{{"dim", List{{1, -1}}}, {"keepdim", true}}});
  Node* c = g->call_method("clamp", {k}, Dict{{{"min", 0.0}, {"max", std::numeric_limits<double>::infinity()}}});
  Node* e = g->call_function("torch.ops.aten.empty.memory_format", {List{{0}}},
                             Dict{{{"dtype", DType::UInt8}, {"layout", Layout::Strided},
                                   {"device", Device{}}}});
  Node* eps = g->call_function("operator.mul", {c, 1e-05});
  Node* neg = g->call_function("operator.neg", {eps});
  Node* ga = g->call_function("builtins.getattr", {neg, "shape"});
  g->output(Tuple{{neg, a, ga, e}});
  const std::string expected =
      "\n\n\ndef forward(self, x):\n"
      "    layers_0_weight = getattr(self.layers, \"0\").weight\n"
      "    layers_0 = getattr(self.layers, \"0\")(x);  x = None\n"
      "    getitem = layers_0[(slice(None, 2, None), 0)];  layers_0 = None\n"
      "    sum_1 = torch.sum(getitem, dim = [1, -1], keepdim = True);  getitem = None\n"
      "    clamp = sum_1.clamp(min = 0.0, max = inf);  sum_1 = None\n"
      "    empty = torch.ops.aten.empty.memory_format([0], dtype = torch.uint8, layout = torch.strided, device = device(type='cpu'))\n"
      "    mul = clamp * 1e-05;  clamp = None\n"
      "    neg = -mul;  mul = None\n"
      "    getattr_1 = neg.shape\n"
      "    return (neg, layers_0_weight, getattr_1, empty)\n"
      "    ";
  CHECK(python_code(*g) == expected);
}

TEST_CASE("codegen: Python float and string repr") {
  CHECK(python_float_repr(3.0) == "3.0");
  CHECK(python_float_repr(1e-05) == "1e-05");
  CHECK(python_float_repr(0.0001) == "0.0001");
  CHECK(python_float_repr(0.1) == "0.1");
  CHECK(python_float_repr(1e16) == "1e+16");
  CHECK(python_float_repr(1e15) == "1000000000000000.0");
  CHECK(python_float_repr(123456789.125) == "123456789.125");
  CHECK(python_float_repr(-2.5e-7) == "-2.5e-07");
  CHECK(python_float_repr(-0.0) == "-0.0");
  CHECK(python_float_repr(1.0 / 3.0) == "0.3333333333333333");
  CHECK(python_float_repr(std::numeric_limits<double>::infinity()) == "inf");
  CHECK(python_float_repr(-std::numeric_limits<double>::infinity()) == "-inf");
  CHECK(python_float_repr(std::nan("")) == "nan");
  CHECK(python_str_repr("a'b") == "\"a'b\"");
  CHECK(python_str_repr("a\"b'c") == "'a\"b\\'c'");
  CHECK(python_str_repr("tab\there\n") == "'tab\\there\\n'");
}

TEST_CASE("codegen: verbose form summarises stack traces from meta") {
  auto gm = symbolic_trace([](const Value& x) { return (x + 1.0).relu(); });
  Node* add = gm->graph().find_node("add");
  REQUIRE(add);
  add->meta().set("stack_trace",
                  "  File \"model.py\", line 12, in forward\n    return (x + 1.0).relu()\n");
  std::string readable = gm->print_readable(false);
  // 1.13: the outermost frame, without the function name
  CHECK(readable.find("\n        # File: model.py:12, code: return (x + 1.0).relu()\n") != std::string::npos);
  CHECK(readable.find("# No stacktrace found for following nodes \n") != std::string::npos);
  // 2.x: the innermost frame with its function, one space before '#'
  gm->graph().set_dialect(Dialect::Torch2);
  readable = gm->print_readable(false);
  CHECK(readable.find("\n         # File: model.py:12 in forward, code: return (x + 1.0).relu()\n") != std::string::npos);
  CHECK(readable.find("# No stacktrace found for following nodes\n") != std::string::npos);
}

TEST_CASE("codegen: the head may grow once the body is begun, and every line of the body is indented") {
  // Room for the head is left before the first node that is not a placeholder; a later
  // placeholder, a wrap() line and a return annotation each make the head outgrow it. A
  // tensor constant's repr spans lines, each of which is indented.
  Graph g;
  Node* x = g.placeholder("x");
  Node* y = g.call_function("mylib.op", {x});
  y->meta().set("is_wrapped", true);
  Node* p = g.placeholder("input");
  Node* t = g.call_function("operator.mul", {y, p});
  Node* c = g.call_function("operator.add", {t, Value(Tensor::full({2, 2}, 0.5))});
  g.output(c)->set_type("List[int]");
  g.lint();
  CHECK(python_code(g) ==
        "\n"
        "torch.fx._symbolic_trace.wrap(\"mylib_op\")\n"
        "\n"
        "def forward(self, x, input) -> List[int]:\n"
        "    op = mylib_op(x);  x = None\n"
        "    input_1 = input\n"
        "    mul = op * input_1;  op = input_1 = None\n"
        "    add = mul + tensor([[0.5000, 0.5000],\n"
        "            [0.5000, 0.5000]]);  mul = None\n"
        "    return add\n"
        "    ");
  CHECK(python_code(Graph()) == "\n\n\ndef forward(self):\n    pass\n    ");
}
