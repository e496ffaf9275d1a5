// The table walk: every op entry and leaf module kind of the op table (src/ops/*.yaml,
// src/compile/fused.yaml) runs its examples through every form it has — eagerly, traced,
// printed, pickled in every format, packaged (fxpack and torch.package) in process, through
// make_fx and compile — and the results must agree with the eager ones. A new entry is
// covered without writing a test. Also: leaf-ness is the registered kind, not the name
// (Module("ReLU")), and Value's methods and the torch:: functions are ops of the table.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <map>
#include <set>

#include "fxpack/compile.hpp"
#include "fxpack/fxpack.hpp"
#include "fxpack/make_fx.hpp"
#include "op_examples.hpp"

using namespace fxpack;
using fxpack::testing::ExampleArgs;
using fxpack::testing::parse_example;

namespace {

// ---- comparing results ----------------------------------------------------------------------

// Same structure, kinds and dtypes; tensor values within rtol/atol (both NaN counts as equal)
// unless `values` is false (nondeterministic ops: only shapes and dtypes).
void check_same(const Value& got, const Value& want, bool values, double rtol, double atol, const std::string& where) {
  INFO(where);
  REQUIRE(got.kind() == want.kind());
  switch (want.kind()) {
    case Value::Kind::Tensor: {
      const Tensor& g = got.tensor();
      const Tensor& w = want.tensor();
      REQUIRE(g.dtype() == w.dtype());
      REQUIRE(g.shape() == w.shape());
      if (!values) return;
      for (std::int64_t i = 0; i < w.numel(); ++i) {
        const double a = g.item_at(i), b = w.item_at(i);
        if (std::isnan(a) && std::isnan(b)) continue;
        if (!(std::fabs(a - b) <= atol + rtol * std::fabs(b))) {
          FAIL("element " << i << ": got " << a << ", want " << b);
        }
      }
      return;
    }
    case Value::Kind::List:
    case Value::Kind::Tuple:
      REQUIRE(got.items().size() == want.items().size());
      for (std::size_t i = 0; i < want.items().size(); ++i)
        check_same(got.items()[i], want.items()[i], values, rtol, atol, where + " [" + std::to_string(i) + "]");
      return;
    default: CHECK(got == want);
  }
}

// ---- promotion rules ------------------------------------------------------------------------

// PyTorch's result_type over the Tensor and number arguments (docs/design.md §5.5).
int category(DType d) { return d == DType::Bool ? 0 : is_floating(d) ? 2 : 1; }
// PyTorch's promoteTypes: a chain bool < uint8 < int8 < int16 < int32 < int64 < float16 <
// bfloat16 < float32 < float64, except the two pairs neither side of which holds the other.
int rank(DType d) {
  switch (d) {
    case DType::Bool: return 0;
    case DType::UInt8: return 1;
    case DType::Int8: return 2;
    case DType::Int16: return 3;
    case DType::Int32: return 4;
    case DType::Int64: return 5;
    case DType::Float16: return 6;
    case DType::BFloat16: return 7;
    case DType::Float32: return 8;
    case DType::Float64: return 9;
  }
  return 0;
}
DType higher(DType a, DType b) {
  auto pair = [&](DType x, DType y) { return (a == x && b == y) || (a == y && b == x); };
  if (pair(DType::UInt8, DType::Int8)) return DType::Int16;
  if (pair(DType::Float16, DType::BFloat16)) return DType::Float32;
  return rank(a) >= rank(b) ? a : b;
}

std::optional<DType> result_type(const ExampleArgs& ex) {
  std::optional<DType> dim, zero, number;
  auto add = [](std::optional<DType>& slot, DType d) { slot = slot ? higher(*slot, d) : d; };
  auto visit = [&](const Value& v) {
    if (v.is_tensor()) add(v.tensor().dim() == 0 ? zero : dim, v.tensor().dtype());
    else if (v.kind() == Value::Kind::Bool) add(number, DType::Bool);
    else if (v.is_int()) add(number, DType::Int64);
    else if (v.is_double()) add(number, DType::Float32);
  };
  for (const Value& a : ex.args) visit(a);
  for (const auto& [k, v] : ex.kwargs.items)
    if (k != "alpha" && k != "rounding_mode") visit(v);
  auto combine = [](std::optional<DType> hi, std::optional<DType> lo) -> std::optional<DType> {
    if (!hi) return lo;
    if (!lo) return hi;
    if (category(*lo) > category(*hi)) return higher(*hi, *lo);
    return hi;
  };
  return combine(dim, combine(zero, number));
}

std::optional<DType> first_tensor_dtype(const ExampleArgs& ex) {
  for (const Value& a : ex.args)
    if (a.is_tensor()) return a.tensor().dtype();
  return std::nullopt;
}

void check_promotion(const OpInfo& info, const ExampleArgs& ex, const Value& result, const std::string& where) {
  std::vector<Value> results;
  if (result.kind() == Value::Kind::Tuple) results = result.items();
  else results.push_back(result);
  for (std::size_t i = 0; i < results.size(); ++i) {
    if (!results[i].is_tensor() || info.promotion.empty()) continue;
    const Promotion rule = info.promotion.size() == 1 ? info.promotion[0] : info.promotion.at(i);
    std::optional<DType> want;
    switch (rule) {
      case Promotion::Promote: want = result_type(ex); break;
      case Promotion::PromoteFloat: {
        want = result_type(ex);
        if (want && !is_floating(*want)) want = DType::Float32;
        break;
      }
      case Promotion::Bool: want = DType::Bool; break;
      case Promotion::Keep: want = first_tensor_dtype(ex); break;
      case Promotion::Index: want = DType::Int64; break;
      case Promotion::Custom: break;
    }
    if (!want) continue;
    INFO(where << ": return " << i << " under promotion rule " << promotion_name(rule));
    CHECK(dtype_name(results[i].tensor().dtype()) == dtype_name(*want));
  }
}

// ---- running one graph every way --------------------------------------------------------------

const std::vector<pickle::PickleFormat> kFormats = {pickle::PickleFormat::PortableBinary, pickle::PickleFormat::Json,
                                                    pickle::PickleFormat::BoostText, pickle::PickleFormat::BoostBinary,
                                                    pickle::PickleFormat::BoostXml};

// Runs gm and every saved-and-loaded copy of it; each must give `want`. Then make_fx and
// compile of it, within tolerance.
void run_everywhere(const std::shared_ptr<GraphModule>& gm, const std::vector<Value>& inputs, const Value& want,
                    bool values, const std::string& where) {
  check_same((*gm)(inputs), want, values, 0, 0, where + ", traced");
  for (pickle::PickleFormat f : kFormats) {
    auto loaded = pickle::loads(pickle::dumps(*gm, f));
    check_same((*loaded)(inputs), want, values, 0, 0, where + ", pickle format " + std::to_string(static_cast<int>(f)));
  }
  {
    PackageExporter pe;
    pe.save_pickle("walk", "model.pkl", *gm);
    PackageImporter pi(pe.close());
    check_same((*pi.load_pickle("walk", "model.pkl"))(inputs), want, values, 0, 0, where + ", fxpack package");
  }
  {
    PackageExporter pe(PackageFormat::TorchPackage);
    pe.save_pickle("walk", "model.pkl", *gm);
    PackageImporter pi(pe.close());
    auto loaded = pi.load_pickle("walk", "model.pkl");
    CHECK(loaded->code() == gm->code());
    check_same((*loaded)(inputs), want, values, 0, 0, where + ", torch.package");
  }
  auto op_level = make_fx(gm)(inputs);
  op_level->lint();
  check_same((*op_level)(inputs), want, values, 1e-5, 1e-6, where + ", make_fx");
  check_same(compile(gm)(inputs), want, values, 1e-5, 1e-6, where + ", compile");
}

// ---- the forms of an entry ---------------------------------------------------------------------

struct Form {
  const OpDef* def;
  std::span<const OpDef* const> overloads;  // of its name
  bool method;
};

std::vector<Form> forms_of(const OpInfo* info) {
  const OpRegistry& r = OpRegistry::global();
  std::vector<Form> out;
  for (const std::string& t : r.function_targets())
    for (const OpDef* d : r.function_overloads(t))
      if (d->info == info) out.push_back(Form{d, r.function_overloads(t), false});
  for (const std::string& m : r.method_names())
    for (const OpDef* d : r.method_overloads(m))
      if (d->info == info) out.push_back(Form{d, r.method_overloads(m), true});
  return out;
}

std::size_t positional_params(const OpDef& d) {
  std::size_t n = 0;
  for (const Param& p : d.params) n += !p.fixed && !p.keyword_only;
  return n;
}

std::uint32_t seed_of(const std::string& s) { return static_cast<std::uint32_t>(std::hash<std::string>{}(s)); }

Value call_form(const Form& f, std::vector<Value> args, Dict kwargs) {
  if (f.method) return call_method(f.def->target, std::move(args), std::move(kwargs));
  return call_function(f.def->target, std::move(args), std::move(kwargs));
}

bool holds_tensor(const Value& v) {
  if (v.is_tensor()) return true;
  if (v.kind() == Value::Kind::List || v.kind() == Value::Kind::Tuple)
    for (const Value& x : v.items())
      if (holds_tensor(x)) return true;
  return false;
}

// The call traced with placeholders for the Tensor arguments (for all arguments that hold
// no Tensor when none is one; Tensors nested in them become lifted constants): returns the
// module and the inputs to run it on.
std::pair<std::shared_ptr<GraphModule>, std::vector<Value>> trace_call(const Form& f, const ExampleArgs& ex) {
  bool any_tensor = false;
  for (const Value& a : ex.args) any_tensor = any_tensor || a.is_tensor();
  for (const auto& [k, v] : ex.kwargs.items) any_tensor = any_tensor || v.is_tensor();
  std::vector<std::string> names;
  std::vector<Value> inputs;
  auto slot = [&](const Value& v) { return v.is_tensor() || (!any_tensor && !holds_tensor(v)); };
  for (const Value& a : ex.args)
    if (slot(a)) {
      names.push_back("x" + std::to_string(names.size()));
      inputs.push_back(a);
    }
  for (const auto& [k, v] : ex.kwargs.items)
    if (slot(v)) {
      names.push_back("x" + std::to_string(names.size()));
      inputs.push_back(v);
    }
  auto fn = [&](std::span<const Value> in) -> Value {
    std::size_t next = 0;
    std::vector<Value> args;
    Dict kwargs;
    for (const Value& a : ex.args) args.push_back(slot(a) ? in[next++] : a);
    for (const auto& [k, v] : ex.kwargs.items) kwargs.items.emplace_back(k, slot(v) ? in[next++] : v);
    return call_form(f, std::move(args), std::move(kwargs));
  };
  auto gm = symbolic_trace(std::function<Value(std::span<const Value>)>(fn), TraceOptions{names, "Walk"});
  return {gm, inputs};
}

// An op the table flags `metadata` must give the same result for tensors of the same dtype
// and shape holding other values: inference plans record its result once per signature.
void check_metadata_only(const Form& f, const ExampleArgs& ex, const Value& eager, const std::string& where) {
  const auto other = [](const Value& v) {
    const Tensor* t = v.if_tensor();
    return t ? Value(Tensor::full(t->shape(), 3.0, t->dtype())) : v;
  };
  std::vector<Value> args;
  for (const Value& a : ex.args) args.push_back(other(a));
  Dict kwargs;
  for (const auto& [k, v] : ex.kwargs.items) kwargs.items.emplace_back(k, other(v));
  CHECK_MESSAGE(call_form(f, std::move(args), std::move(kwargs)) == eager,
                where << ": flagged metadata, but its result depends on its tensors' values");
}

}  // namespace

TEST_CASE("op table: every entry's examples, through every form, every way") {
  const auto entries = OpRegistry::global().op_entries();
  REQUIRE(entries.size() > 50);
  std::size_t runs = 0;
  for (const OpInfo* info : entries) {
    const std::vector<Form> forms = forms_of(info);
    REQUIRE(!forms.empty());
    std::set<const OpDef*> exercised;
    for (std::size_t e = 0; e < info->examples.size(); ++e) {
      const std::string example = info->source + " (" + info->text + ") example " + std::to_string(e + 1) + " " +
                                  info->examples[e];
      ExampleArgs ex = parse_example(info->examples[e], seed_of(example));
      bool ran = false;
      for (const Form& f : forms) {
        const std::string where = example + " as " + f.def->target;
        CAPTURE(where);
        if (f.method && (ex.args.empty() || !ex.args[0].is_tensor())) continue;
        if (f.def->form == OpForm::Operator && (!ex.kwargs.items.empty() || ex.args.size() != positional_params(*f.def)))
          continue;
        BoundCall bound;
        try {
          bound = bind_overload(f.overloads, ex.args, ex.kwargs);
        } catch (const OpError&) {
          continue;  // this form does not take these arguments (a keyword-only one, say)
        }
        // The example must reach its own entry through every name that takes it.
        CHECK_MESSAGE(bound.op->info == info, where << " binds to " << bound.op->info->text << " instead");
        if (bound.op->info != info) continue;
        exercised.insert(f.def);
        ran = true;
        ++runs;
        const bool values = info->purity != Purity::Nondeterministic;
        Value eager = call_form(f, ex.args, ex.kwargs);
        check_promotion(*info, ex, eager, where);
        auto [gm, inputs] = trace_call(f, ex);
        gm->lint();
        // Codegen prints the call.
        const Node* call = nullptr;
        for (const Node* n : gm->graph())
          if (n->op() == Op::CallFunction || n->op() == Op::CallMethod) call = n;
        REQUIRE(call != nullptr);
        CHECK(call->target() == f.def->target);
        // "    add = x + y" or, for an in-place operator, "    x += y;  iadd = x".
        const std::string code = gm->code();
        CHECK((code.find("    " + call->name() + " = ") != std::string::npos ||
               code.find(";  " + call->name() + " = ") != std::string::npos));
        run_everywhere(gm, inputs, eager, values, where);
        if (info->metadata) check_metadata_only(f, ex, eager, where);
      }
      CHECK_MESSAGE(ran, example << " runs through none of the entry's forms");
    }
    for (const Form& f : forms)
      CHECK_MESSAGE(exercised.count(f.def), info->source << ": no example of " << info->text << " runs through "
                                                           << f.def->target);
  }
  MESSAGE("op examples run: " << runs);
}

namespace {

// A root with the leaf under test as child "m".
class WalkRoot : public Module {
 public:
  WalkRoot(std::shared_ptr<Module> m, std::size_t inputs) : Module("WalkRoot"), inputs_(inputs) {
    register_module("m", std::move(m));
  }
  Value forward(std::span<const Value> in) override {
    return (*find_child("m"))(std::vector<Value>(in.begin(), in.end()));
  }
  std::vector<std::string> input_names() const override {
    std::vector<std::string> names;
    for (std::size_t i = 0; i < inputs_; ++i) names.push_back("x" + std::to_string(i));
    return names;
  }

 private:
  std::size_t inputs_;
};

// Random weights: parameters normal, floating buffers positive (variances), others kept.
void randomize(Module& m, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd;
  std::uniform_real_distribution<double> ud(0.5, 1.5);
  auto fill = [&](const Tensor& t, bool positive) {
    std::vector<double> v(static_cast<std::size_t>(t.numel()));
    for (double& x : v) x = positive ? ud(rng) : nd(rng);
    return Tensor::from_vector(std::span<const double>(v), t.shape()).to(t.dtype());
  };
  const auto params = m.parameters();
  for (const auto& [name, t] : params) m.register_parameter(name, fill(t, false));
  const auto buffers = m.buffers();
  for (const auto& [name, t] : buffers)
    if (is_floating(t.dtype())) m.register_buffer(name, fill(t, true));
}

}  // namespace

TEST_CASE("op table: every leaf module kind's examples, every way") {
  const auto kinds = OpRegistry::global().module_kind_entries();
  REQUIRE(kinds.size() >= 8);
  for (const ModuleKind* kind : kinds) {
    REQUIRE(!kind->examples.empty());
    for (std::size_t e = 0; e < kind->examples.size(); ++e) {
      const auto& [init_text, input_text] = kind->examples[e];
      const std::string where = kind->source + " " + kind->name + " example " + std::to_string(e + 1);
      CAPTURE(where);
      ExampleArgs init = parse_example(init_text, seed_of(where + "init"));
      ExampleArgs input = parse_example(input_text, seed_of(where + "input"));
      auto m = make_module(kind->name, init.args, init.kwargs);
      randomize(*m, seed_of(where));
      CHECK(m->leaf_kind() == kind);
      CHECK(m->is_leaf() == !kind->container);
      CHECK_NOTHROW(kind->validate(*m));
      CHECK(m->repr().starts_with(kind->name + "("));
      const Value eager = (*m)(input.args);

      auto root = std::make_shared<WalkRoot>(m, input.args.size());
      auto gm = symbolic_trace(root);
      gm->lint();
      const bool recorded = gm->code().find("self.m(") != std::string::npos;
      CHECK(recorded == !kind->container);
      run_everywhere(gm, input.args, eager, true, where);

      // The loaded module is of the registered kind again, configured as before.
      for (pickle::PickleFormat f : kFormats) {
        auto loaded = pickle::loads(pickle::dumps(*gm, f));
        if (!recorded) continue;
        auto lm = loaded->get_submodule("m");
        CHECK(lm->leaf_kind() == kind);
        CHECK(lm->repr() == m->repr());
      }
      if (recorded) {
        PackageExporter pe(PackageFormat::TorchPackage);
        pe.save_pickle("walk", "model.pkl", *gm);
        PackageImporter pi(pe.close());
        auto lm = pi.load_pickle("walk", "model.pkl")->get_submodule("m");
        CHECK(lm->leaf_kind() == kind);
        CHECK(lm->repr() == m->repr());
      }
    }
  }
}

TEST_CASE("op table: a user module named like a leaf kind is traced through and runs its own forward") {
  class MyReLU : public Module {
   public:
    MyReLU() : Module("ReLU") {}
    Value forward(std::span<const Value> in) override { return in[0] * 2.0; }
  };
  class Net : public Module {
   public:
    Net() : Module("Net") {
      register_module("act", std::make_shared<MyReLU>());
      register_module("relu", nn::ReLU());
    }
    Value forward(std::span<const Value> in) override { return (*find_child("relu"))((*find_child("act"))(in[0])); }
  };
  auto net = std::make_shared<Net>();
  CHECK(net->find_child("act")->kind() == "ReLU");
  CHECK_FALSE(net->find_child("act")->is_leaf());
  CHECK(net->find_child("act")->leaf_kind() == nullptr);
  CHECK(net->find_child("relu")->is_leaf());
  auto gm = symbolic_trace(net);
  CHECK(gm->code() ==
        "\n\n\ndef forward(self, x):\n    mul = x * 2.0;  x = None\n    relu = self.relu(mul);  mul = None\n"
        "    return relu\n    ");
  Tensor x = Tensor::from_vector(std::vector<float>{-1.0f, 3.0f}, {2});
  Tensor y = (*gm)(x).tensor();
  CHECK(y.item_at(0) == 0.0);
  CHECK(y.item_at(1) == 6.0);
  // Eagerly, too, the user module runs its own forward.
  CHECK((*net)(x).tensor().item_at(1) == 6.0);
  // A plain Module("Linear") is no leaf either: it has no forward of its own.
  auto plain = std::make_shared<Module>("Linear");
  CHECK_FALSE(plain->is_leaf());
  CHECK_THROWS_WITH_AS((*plain)(x), doctest::Contains("not of a registered kind"), OpError);
}

TEST_CASE("op table: Value's methods and the torch:: functions are ops of the table") {
  auto fn = [](std::span<const Value> in) -> Value {
    const Value& x = in[0];
    const Value& y = in[1];
    std::vector<Value> outs = {
        x.sin(), x.cos(), x.exp(), x.tanh(), x.sigmoid(), x.relu(), x.neg(), x.abs(), x.clamp(Value(0.0)),
        x.clamp(Value(-1.0), Value(1.0)), x.sum(), x.sum(Value(1), true), x.mean(), x.mean(Value(0)),
        x.reshape(Value(Tuple{{Value(4)}})), x.view(Value(-1)), x.permute(Value(List{{Value(1), Value(0)}})),
        x.transpose(0, 1), x.flatten(), x.flatten(1), x.matmul(y), x[Value(0)], x + y, x - y, x * y, x / y, -x,
        torch::sin(x), torch::cos(x), torch::exp(x), torch::tanh(x), torch::sigmoid(x), torch::relu(x), torch::neg(x),
        torch::abs(x), torch::clamp(x, Value(0.0)), torch::flatten(x, 1), torch::matmul(x, y), torch::sum(x, Value(0)),
        torch::mean(x, Value(1), true), torch::reshape(x, Value(Tuple{{Value(4)}})),
        torch::permute(x, Value(List{{Value(1), Value(0)}})), torch::transpose(x, 0, 1),
        x.call_method("size")};
    return Value(Tuple{std::move(outs)});
  };
  auto gm = symbolic_trace(std::function<Value(std::span<const Value>)>(fn), TraceOptions{{"x", "y"}, ""});
  const OpRegistry& r = OpRegistry::global();
  std::size_t calls = 0;
  for (const Node* n : gm->graph()) {
    if (n->op() != Op::CallFunction && n->op() != Op::CallMethod) continue;
    ++calls;
    CAPTURE(n->format_node());
    auto overloads = n->op() == Op::CallFunction ? r.function_overloads(n->target()) : r.method_overloads(n->target());
    REQUIRE(!overloads.empty());
    CHECK_NOTHROW((void)bind_overload(overloads, n->args(), n->kwargs()));
  }
  CHECK(calls == 44);
  Tensor x = Tensor::from_vector(std::vector<float>{0.5f, -1.0f, 2.0f, 0.25f}, {2, 2});
  Value out = (*gm)(x, x);
  CHECK(out.items().size() == 44);
}

TEST_CASE("op table: overloads bind like PyTorch's argument parser, with one error listing them") {
  Tensor x = Tensor::from_vector(std::vector<float>{1, 5, 3, 2}, {2, 2});
  CHECK(call_function("torch.max", {Value(x)}).tensor().item() == 5.0);
  Value md = call_function("torch.max", {Value(x), Value(1)});
  REQUIRE(md.kind() == Value::Kind::Tuple);
  CHECK(md.items()[0].tensor().item_at(1) == 3.0);
  CHECK(md.items()[1].tensor().dtype() == DType::Int64);
  CHECK(call_method("max", {Value(x), Value(Tensor::full({2}, 4.0))}).tensor().item_at(0) == 4.0);
  CHECK_THROWS_WITH_AS(call_function("torch.max", {Value(x), Value("a")}),
                       "max: received an invalid combination of arguments - got (Tensor, str), but expected one of: "
                       "(Tensor input); (Tensor input, int dim, bool keepdim=False); (Tensor input, Tensor other)",
                       OpError);
  // A single overload says exactly what is wrong.
  CHECK_THROWS_WITH_AS(call_function("torch.sin", {Value(3.0)}), "sin: argument 'input' must be a Tensor, got float",
                       OpError);
  CHECK_THROWS_WITH_AS(call_function("torch.flatten", {Value(x), Value(true)}),
                       "flatten: argument 'start_dim' must be an int, got bool", OpError);
  // int[2] takes one int; a method's only int list takes varargs.
  CHECK(call_function("torch.nn.functional.max_pool2d", {Value(Tensor::zeros({1, 1, 4, 4})), Value(2)})
            .tensor()
            .shape() == Shape{1, 1, 2, 2});
  CHECK(call_method("view", {Value(x), Value(4)}).tensor().shape() == Shape{4});
  CHECK(call_method("permute", {Value(x), Value(1), Value(0)}).tensor().item_at(1) == 3.0);
  CHECK_THROWS_AS(call_function("torch.permute", {Value(x), Value(1), Value(0)}), OpError);
  // A plan picks the overload per call when the graph does not say which.
  auto gm = symbolic_trace([](std::span<const Value> in) { return call_function("torch.max", {in[0], in[1]}); },
                           TraceOptions{{"x", "y"}, ""});
  CHECK((*gm)(x, 1).items()[1].tensor().item_at(0) == 1.0);
  CHECK((*gm)(x, Tensor::full({2}, 4.0)).tensor().item_at(0) == 4.0);
  CHECK_THROWS_WITH_AS((*gm)(x, Value("no")), doctest::Contains("received an invalid combination"), OpError);
}

TEST_CASE("op table: Python operators, reflected forms and in-place forms") {
  Tensor x = Tensor::from_vector(std::vector<float>{-7.5f, 7.0f}, {2});
  // floordiv on ints is Python's, on tensors PyTorch's floor division.
  CHECK(call_function("operator.floordiv", {Value(-7), Value(2)}).to_int() == -4);
  CHECK(call_function("operator.floordiv", {Value(7.5), Value(2)}).to_double() == 3.0);
  CHECK_THROWS_WITH_AS(call_function("operator.floordiv", {Value(1), Value(0)}), doctest::Contains("ZeroDivisionError"),
                       OpError);
  Tensor q = call_function("operator.floordiv", {Value(x), Value(2)}).tensor();
  CHECK(q.item_at(0) == -4.0);
  CHECK(q.item_at(1) == 3.0);
  CHECK(call_function("operator.floordiv", {Value(7), Value(x)}).tensor().item_at(1) == 1.0);
  // make_fx records what PyTorch 1.13 records for each.
  auto code = [&](std::function<Value(const Value&)> f) { return make_fx(std::move(f))(x)->code(); };
  CHECK(code([](const Value& v) { return call_function("operator.floordiv", {Value(3), v}); })
            .find("torch.ops.aten.floor_divide.default(3, x_1)") != std::string::npos);
  CHECK(code([](const Value& v) { return Value(3) / v; }).find("reciprocal = torch.ops.aten.reciprocal.default(x_1)") !=
        std::string::npos);
  CHECK(code([](const Value& v) { return Value(3) - v; }).find("torch.ops.aten.rsub.Scalar(x_1, 3)") != std::string::npos);
  CHECK(code([](const Value& v) { return v.call_method("add_", {Value(2)}); })
            .find("torch.ops.aten.add_.Tensor(x_1, 2)") != std::string::npos);
  CHECK(code([](const Value& v) { return call_function("torch.max", {v, Value(0)}); })
            .find("getitem_1 = max_1[1]") != std::string::npos);
  CHECK(code([](const Value& v) { return v.call_method("unsqueeze", {Value(1)}); })
            .find("torch.ops.aten.unsqueeze.default(x_1, 1)") != std::string::npos);
  CHECK(code([](const Value& v) {
          return call_function("torch._C._nn.linear", {v.call_method("unsqueeze", {Value(0)}), Value(Tensor::zeros({3, 2}))});
        }).find("torch.ops.aten.mm.default(unsqueeze, t)") != std::string::npos);
}

TEST_CASE("op table: torch._assert is a side effect: it runs, raises, and survives dead-code elimination") {
  auto gm = symbolic_trace(
      [](std::span<const Value> in) {
        call_function("torch._assert", {in[1], Value("n must be positive")});
        return in[0];
      },
      TraceOptions{{"x", "ok"}, ""});
  CHECK(gm->code().find("_assert = torch._assert(ok, 'n must be positive');  ok = None") != std::string::npos);
  Tensor x = Tensor::full({2}, 1.0);
  CHECK((*gm)(x, true).tensor().item_at(0) == 1.0);
  CHECK_THROWS_WITH_AS((*gm)(x, false), doctest::Contains("AssertionError: 'n must be positive'"), OpError);
  CHECK(passes::dead_code_elimination(gm->graph()) == 0);
  CHECK(passes::common_subexpression_elimination(gm->graph()) == 0);
  auto c = compile(gm);
  CHECK(c(x, true).tensor().item_at(1) == 1.0);
  CHECK_THROWS_WITH_AS(c(x, false), doctest::Contains("n must be positive"), OpError);
}

namespace {
// Returns its bound arguments, to look at what binding made of a call.
Value bound_args(std::span<const Value> args) { return Value(Tuple{{args.begin(), args.end()}}); }
}  // namespace

TEST_CASE("op table: every schema type binds, checks and normalises as documented") {
  static const OpDef& op = OpRegistry::global().add_function(
      "mylib.types(Tensor[] ts, int[2] pair, int? maybe=None, float f=1, Scalar s=2, ScalarType? dtype=None, "
      "str mode=\"a\", bool flag=False, Tensor? t=None, *, MemoryFormat mf=contiguous_format, Device? dev=None, "
      "Any anything=None) -> Any",
      &bound_args);
  CHECK(op.target == "mylib.types");
  Tensor x = Tensor::full({2}, 1.0);
  Value b = call_function("mylib.types", {Value(Tuple{{Value(x), Value(x)}}), Value(3)});
  const auto& a = b.items();
  REQUIRE(a.size() == 12);
  CHECK(a[0].kind() == Value::Kind::Tuple);                   // Tensor lists stay as given
  CHECK(a[1] == Value(List{{Value(3), Value(3)}}));           // int[2] repeats one int
  CHECK(a[2].is_none());
  CHECK(a[3] == Value(1.0));                                  // float default written as an int
  CHECK(a[4] == Value(2));
  CHECK(a[6] == Value("a"));
  CHECK(a[9] == Value(MemoryFormat::Contiguous));
  b = call_function("mylib.types", {Value(List{}), Value(Tuple{{Value(1), Value(2)}}), Value(Tensor::scalar(4, DType::Int64)),
                                    Value(true), Value(Tensor::scalar(0.5))},
                    Dict{{{"dtype", Value(DType::Float64)}, {"dev", Value("cpu")}, {"anything", Value(Slice{})}}});
  CHECK(b.items()[1] == Value(List{{Value(1), Value(2)}}));  // tuples of ints become lists
  CHECK(b.items()[2] == Value(4));                            // a 0-dim integer Tensor is an int
  CHECK(b.items()[3] == Value(1.0));                          // a bool is a float
  CHECK(b.items()[4].is_tensor());                            // Scalar takes a 0-dim Tensor
  CHECK(b.items()[5] == Value(DType::Float64));
  auto error = [&](std::vector<Value> args, Dict kwargs = {}) {
    try {
      (void)call_function("mylib.types", std::move(args), std::move(kwargs));
    } catch (const OpError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(error({Value(List{{Value(x), Value(1)}}), Value(1)}) ==
        "types: argument 'ts' must be a list or tuple of Tensors, got a list holding int");
  CHECK(error({Value(List{}), Value(1.5)}) == "types: argument 'pair' must be an int or a list or tuple of ints, got float");
  CHECK(error({Value(List{}), Value(1), Value(true)}) == "types: argument 'maybe' must be an int or None, got bool");
  CHECK(error({Value(List{}), Value(1)}, Dict{{{"flag", Value(1)}}}) == "types: argument 'flag' must be a bool, got int");
  CHECK(error({Value(List{}), Value(1)}, Dict{{{"mf", Value()}}}) ==
        "types: argument 'mf' must be a memory format, got None");
  CHECK(error({Value(List{}), Value(1), Value(), Value(1), Value(2), Value(), Value("a"), Value(false), Value(), Value(1)}) ==
        "types: takes 9 positional arguments but 10 were given");
  CHECK(error({Value(List{}), Value(1)}, Dict{{{"nope", Value(1)}}}) == "types: got an unexpected keyword argument 'nope'");
  CHECK(error({Value(List{}), Value(1)}, Dict{{{"pair", Value(1)}}}) == "types: got multiple values for argument 'pair'");
  CHECK(error({Value(List{})}) == "types: missing required argument 'pair'");
  CHECK_THROWS_WITH_AS(OpRegistry::global().add_function("mylib.types(Tensor x) -> Tensor", &bound_args),
                       "function 'mylib.types' is already registered", Error);
}

TEST_CASE("op table: schemas that do not parse say where") {
  CHECK_THROWS_WITH_AS(parse_schema("add.Tensor(Tensr self) -> Tensor", true),
                       doctest::Contains("unknown type 'Tensr' at column"), Error);
  CHECK_THROWS_WITH_AS(parse_schema("add(Tensor self, int k=1, int j) -> Tensor", true),
                       doctest::Contains("parameter 'j' without a default after one with a default"), Error);
  CHECK_THROWS_WITH_AS(parse_schema("relu(Tensor input) -> Tensor", false),
                       doctest::Contains("a python schema needs a qualified name"), Error);
  CHECK_THROWS_WITH_AS(parse_schema("f(Tensor x) Tensor", true), doctest::Contains("expected '->'"), Error);
  OpSchema s = parse_schema("add_.Tensor(Tensor(a!) self, Tensor other, *, Scalar alpha=1) -> Tensor(a!)", true);
  CHECK(s.inplace);
  CHECK_FALSE(s.view);
  CHECK(s.overload == "Tensor");
  CHECK(s.params[2].keyword_only);
  s = parse_schema("max.dim(Tensor self, int dim, bool keepdim=False) -> (Tensor values, Tensor indices)", true);
  CHECK(s.returns_tuple);
  CHECK(s.returns.size() == 2);
  CHECK(OpSchema::params_str(s.params) == "(Tensor self, int dim, bool keepdim=False)");
  CHECK(parse_schema("unsqueeze(Tensor(a) self, int dim) -> Tensor(a)", true).view);
}
