// Real PyTorch's output as the yardstick: every case under fixtures/torch_models/<dialect>/
// <family>/<case>/ (made by test/python/make_fixtures.py from PyTorch 1.13 and 2.6) is opened
// with fxpack's PackageImporter; its code() must be byte-identical to PyTorch's gm.code
// (code.py), and running it on the recorded inputs must give PyTorch's outputs: the same
// structure and dtypes exactly, values within rtol 1e-4 / atol 1e-5 (nan equal to nan).
//
// fixtures/torch_models/not_yet_supported.txt lists, one line per case, the cases fxpack does
// not pass yet with the first error. The list is enforced both ways: a case that fails and is
// not listed is a failure, and so is a listed case that passes ("remove it from the list"),
// or a listed case that does not exist. Run with FXPACK_REWRITE_NOT_YET_SUPPORTED=1 (or
// `meson compile -C build rewrite-not-yet-supported`) to rewrite the list from the current
// results.
#include <doctest/doctest.h>
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "fxpack/fxpack.hpp"
#include "npy.hpp"

namespace fs = std::filesystem;
using namespace fxpack;

namespace {

constexpr double kRtol = 1e-4, kAtol = 1e-5;
constexpr std::size_t kMaxReason = 240;

fs::path models_dir() { return fs::path(FXPACK_FIXTURES_DIR) / "torch_models"; }
fs::path list_path() { return models_dir() / "not_yet_supported.txt"; }

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw IoError("cannot read " + p.string());
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// One line, at most kMaxReason characters: what the list and messages show.
std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  std::replace(s.begin(), s.end(), '\r', ' ');
  if (s.size() > kMaxReason) s = s.substr(0, kMaxReason - 3) + "...";
  return s;
}

rapidjson::Document read_json(const fs::path& p) {
  std::string text = read_file(p);
  rapidjson::Document d;
  d.Parse(text.c_str(), text.size());
  if (d.HasParseError())
    throw FormatError(p.string() + ": " + rapidjson::GetParseError_En(d.GetParseError()) + " at byte " +
                      std::to_string(d.GetErrorOffset()));
  return d;
}

// A failed expectation: the first difference found, naming where it is.
struct Mismatch {
  std::string what;
};

std::string at(const std::vector<std::int64_t>& index) {
  std::string s = "[";
  for (std::size_t i = 0; i < index.size(); ++i) s += (i ? ", " : "") + std::to_string(index[i]);
  return s + "]";
}

std::vector<std::int64_t> unravel(std::int64_t flat, const Shape& shape) {
  std::vector<std::int64_t> index(shape.size());
  for (std::size_t d = shape.size(); d-- > 0;) {
    index[d] = shape[d] ? flat % shape[d] : 0;
    flat = shape[d] ? flat / shape[d] : 0;
  }
  return index;
}

bool close(double expected, double actual, bool floating) {
  if (!floating) return expected == actual;
  if (std::isnan(expected) || std::isnan(actual)) return std::isnan(expected) && std::isnan(actual);
  if (std::isinf(expected) || std::isinf(actual)) return expected == actual;
  return std::fabs(actual - expected) <= kAtol + kRtol * std::fabs(expected);
}

std::string kind_of(const rapidjson::Value& node) {
  for (const char* k : {"tensor", "tuple", "list", "dict", "int", "float", "bool", "none", "str"})
    if (node.HasMember(k)) return k;
  throw FormatError("outputs.json: a node with none of the known keys");
}

std::string value_kind(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Tensor: return "tensor";
    case Value::Kind::Tuple: return "tuple";
    case Value::Kind::List: return "list";
    case Value::Kind::Dict: return "dict";
    case Value::Kind::Int: return "int";
    case Value::Kind::Double: return "float";
    case Value::Kind::Bool: return "bool";
    case Value::Kind::None: return "none";
    case Value::Kind::String: return "str";
    default: return kind_name(v.kind());
  }
}

void compare_tensor(const rapidjson::Value& node, const Tensor& t, const fs::path& dir, const std::string& where) {
  const std::string dtype = node["dtype"].GetString();
  if (std::string(dtype_name(t.dtype())) != dtype)
    throw Mismatch{where + ": expected dtype " + dtype + ", got " + std::string(dtype_name(t.dtype()))};
  Shape shape;
  for (const auto& d : node["shape"].GetArray()) shape.push_back(d.GetInt64());
  if (!(t.shape() == shape))
    throw Mismatch{where + ": expected shape " + shape.to_string() + ", got " + t.shape().to_string()};
  const std::string file = node["tensor"].GetString();
  Tensor expected = cli::parse_npy(read_file(dir / file), file);
  const std::vector<double> e = expected.to_doubles(), a = t.to_doubles();
  const bool floating = is_floating(expected.dtype());
  std::int64_t bad = 0, first = -1;
  for (std::size_t i = 0; i < e.size(); ++i)
    if (!close(e[i], a[i], floating)) {
      if (first < 0) first = static_cast<std::int64_t>(i);
      ++bad;
    }
  if (bad) {
    std::ostringstream m;
    m.precision(9);
    m << where << ": " << bad << " of " << e.size() << " values differ; first at " << at(unravel(first, shape))
      << ": expected " << e[first] << ", got " << a[first];
    throw Mismatch{m.str()};
  }
}

void compare(const rapidjson::Value& node, const Value& v, const fs::path& dir, const std::string& where) {
  const std::string kind = kind_of(node);
  auto a = [](const std::string& k) { return (k == "int" ? "an " : "a ") + k; };
  if (value_kind(v) != kind) throw Mismatch{where + ": expected " + a(kind) + ", got " + a(value_kind(v))};
  if (kind == "tensor") return compare_tensor(node, v.tensor(), dir, where);
  if (kind == "tuple" || kind == "list") {
    const auto& items = node[kind.c_str()].GetArray();
    if (items.Size() != v.items().size())
      throw Mismatch{where + ": expected a " + kind + " of " + std::to_string(items.Size()) + " items, got " +
                     std::to_string(v.items().size())};
    for (rapidjson::SizeType i = 0; i < items.Size(); ++i)
      compare(items[i], v.items()[i], dir, where + "[" + std::to_string(i) + "]");
    return;
  }
  if (kind == "dict") {
    const auto& items = node["dict"].GetArray();
    const auto& actual = v.dict().items;
    std::string ek, ak;
    for (const auto& kv : items) ek += (ek.empty() ? "" : ", ") + python_str_repr(kv[0].GetString());
    for (const auto& [k, _] : actual) ak += (ak.empty() ? "" : ", ") + python_str_repr(k);
    if (ek != ak) throw Mismatch{where + ": expected keys [" + ek + "], got [" + ak + "]"};
    for (rapidjson::SizeType i = 0; i < items.Size(); ++i)
      compare(items[i][1], actual[i].second, dir, where + "[" + python_str_repr(actual[i].first) + "]");
    return;
  }
  if (kind == "int" && node["int"].GetInt64() != v.to_int())
    throw Mismatch{where + ": expected " + std::to_string(node["int"].GetInt64()) + ", got " + python_repr(v)};
  if (kind == "bool" && node["bool"].GetBool() != v.to_bool())
    throw Mismatch{where + ": expected " + python_repr(Value(node["bool"].GetBool())) + ", got " + python_repr(v)};
  if (kind == "str" && node["str"].GetString() != v.str())
    throw Mismatch{where + ": expected " + python_str_repr(node["str"].GetString()) + ", got " + python_repr(v)};
  if (kind == "float") {
    const auto& f = node["float"];
    double e = f.IsString() ? std::strtod(f.GetString(), nullptr) : f.GetDouble();
    if (!close(e, v.to_double(), true))
      throw Mismatch{where + ": expected " + python_float_repr(e) + ", got " + python_repr(v)};
  }
}

// The first line at which two texts differ, for a readable message.
std::string first_difference(const std::string& expected, const std::string& actual) {
  std::istringstream e(expected), a(actual);
  std::string el, al;
  for (int line = 1;; ++line) {
    bool he = static_cast<bool>(std::getline(e, el)), ha = static_cast<bool>(std::getline(a, al));
    if (!he && !ha) return "they differ only in the final newline";
    if (el != al || he != ha)
      return "line " + std::to_string(line) + ": expected '" + (he ? el : "<end>") + "', got '" + (ha ? al : "<end>") + "'";
  }
}

struct Case {
  std::string id;  // "<dialect>/<family>/<case>"
  fs::path dir;
  bool traced = true;
  std::string trace_error;  // PyTorch could not trace or run it
};

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  if (!fs::is_directory(models_dir())) return cases;
  for (const auto& d : fs::recursive_directory_iterator(models_dir())) {
    if (d.path().filename() != "case.json") continue;
    Case c;
    c.dir = d.path().parent_path();
    c.id = fs::relative(c.dir, models_dir()).generic_string();
    auto info = read_json(d.path());
    const bool ran = !info.HasMember("ran") || info["ran"].GetBool();
    c.traced = info["traced"].GetBool() && ran;
    if (!c.traced) c.trace_error = info["error"].GetString();
    cases.push_back(std::move(c));
  }
  std::sort(cases.begin(), cases.end(), [](const Case& a, const Case& b) { return a.id < b.id; });
  return cases;
}

// Loads, prints and runs one case; the empty string when everything matches, otherwise the
// first error, prefixed by the step that failed.
std::string run_case(const Case& c) {
  std::string step = "load";
  try {
    PackageImporter importer(c.dir / "package.pt");
    auto gm = importer.load_pickle("model", "model.pkl");
    step = "code";
    const std::string expected_code = read_file(c.dir / "code.py"), code = gm->code();
    if (code != expected_code) return "code: differs from code.py at " + first_difference(expected_code, code);
    step = "inputs";
    auto info = read_json(c.dir / "case.json");
    std::vector<Value> inputs;
    for (const auto& in : info["inputs"].GetArray()) {
      const std::string file = in["file"].GetString();
      inputs.emplace_back(cli::parse_npy(read_file(c.dir / file), file));
    }
    step = "run";
    Value out = gm->forward(inputs);
    step = "outputs";
    auto expected = read_json(c.dir / "outputs.json");
    compare(expected["output"], out, c.dir, "output");
    return "";
  } catch (const Mismatch& m) {
    return "outputs: " + m.what;
  } catch (const std::exception& e) {
    return step + ": " + e.what();
  }
}

// "<case id>: <reason>" lines; '#' comments and blank lines are ignored.
std::map<std::string, std::string> read_list() {
  std::map<std::string, std::string> list;
  if (!fs::exists(list_path())) return list;
  std::istringstream in(read_file(list_path()));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto colon = line.find(": ");
    list[line.substr(0, colon)] = colon == std::string::npos ? "" : line.substr(colon + 2);
  }
  return list;
}

void write_list(const std::map<std::string, std::string>& failing) {
  std::ofstream out(list_path(), std::ios::binary | std::ios::trunc);
  out << "# Cases of fixtures/torch_models/ that fxpack does not pass yet: \"<dialect>/<family>/<case>: first error\".\n"
         "# test_torch_models enforces this list both ways (an unlisted failure fails, and so does a\n"
         "# listed case that passes). Rewrite it from the current results with\n"
         "#   meson compile -C build rewrite-not-yet-supported\n";
  for (const auto& [id, reason] : failing) out << id << ": " << reason << "\n";
}

// Every case run once per process (the test case below re-enters once per subcase).
const std::vector<Case>& cases() {
  static const std::vector<Case> all = all_cases();
  return all;
}

const std::map<std::string, std::string>& results() {  // id -> "" or the first error
  static const std::map<std::string, std::string> r = [] {
    std::map<std::string, std::string> out;
    for (const Case& c : cases())
      if (c.traced) out[c.id] = one_line(run_case(c));
    return out;
  }();
  return r;
}

}  // namespace

TEST_CASE("torch_models: every case loads, prints PyTorch's code and computes PyTorch's outputs") {
  REQUIRE_MESSAGE(!cases().empty(), "no cases under " << models_dir().string());
  static const auto listed = read_list();
  if (std::getenv("FXPACK_REWRITE_NOT_YET_SUPPORTED")) return;  // the next test case rewrites the list
  for (const Case& c : cases()) {
    SUBCASE(c.id.c_str()) {
      INFO("case ", c.id, " (", c.dir.string(), ")");
      const bool is_listed = listed.count(c.id) != 0;
      if (!c.traced) {
        CHECK_MESSAGE(!is_listed, c.id << " is listed in not_yet_supported.txt, but PyTorch could not trace it ("
                                       << c.trace_error << "): remove it from the list");
        continue;
      }
      const std::string& reason = results().at(c.id);
      if (reason.empty())
        CHECK_MESSAGE(!is_listed, c.id << " passes now: remove it from fixtures/torch_models/not_yet_supported.txt");
      else
        CHECK_MESSAGE(is_listed, c.id << " fails: " << reason
                                      << " (fix it, or list it in fixtures/torch_models/not_yet_supported.txt)");
    }
  }
}

TEST_CASE("torch_models: the comparison catches every kind of difference") {
  // A description of (tensor, {'n': 3, 'f': 0.5, 'b': True, 's': 'x', 'z': None}, [nan, inf]).
  const fs::path dir = fs::temp_directory_path() / ("fxpack_torch_models_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const Tensor t = Tensor::from_vector(std::span<const float>(std::vector<float>{1.0f, -2.5f, 3.0f}), Shape{3});
  const Tensor special = Tensor::from_vector(
      std::span<const double>(std::vector<double>{std::nan(""), std::numeric_limits<double>::infinity()}), Shape{2});
  {
    std::ofstream(dir / "output_0.npy", std::ios::binary) << cli::to_npy(t);
    std::ofstream(dir / "output_1.npy", std::ios::binary) << cli::to_npy(special);
  }
  rapidjson::Document doc;
  doc.Parse(R"({"tuple": [{"tensor": "output_0.npy", "dtype": "float32", "shape": [3]},
      {"dict": [["n", {"int": 3}], ["f", {"float": 0.5}], ["b", {"bool": true}], ["s", {"str": "x"}], ["z", {"none": null}]]},
      {"list": [{"tensor": "output_1.npy", "dtype": "float64", "shape": [2]}, {"float": "-inf"}]}]})");
  REQUIRE(!doc.HasParseError());
  auto make = [&](Tensor a, Value n, Value f, Value b, Value str, Value z, Tensor sp, Value last, bool tuple = true) {
    Dict d;
    d.items = {{"n", n}, {"f", f}, {"b", b}, {"s", str}, {"z", z}};
    std::vector<Value> items{a, d, List{{sp, last}}};
    return tuple ? Value(Tuple{items}) : Value(List{items});
  };
  const double inf = std::numeric_limits<double>::infinity();
  const Tensor close_enough = Tensor::from_vector(std::span<const float>(std::vector<float>{1.00005f, -2.5f, 3.0f}), Shape{3});
  const Tensor too_far = Tensor::from_vector(std::span<const float>(std::vector<float>{1.0f, -2.5f, 3.001f}), Shape{3});
  auto mismatch = [&](const Value& v) -> std::string {
    try {
      compare(doc, v, dir, "output");
      return "";
    } catch (const Mismatch& m) {
      return m.what;
    }
  };
  CHECK(mismatch(make(t, 3, 0.5, true, "x", None{}, special, -inf)) == "");
  CHECK(mismatch(make(close_enough, 3, 0.50001, true, "x", None{}, special, -inf)) == "");
  CHECK(mismatch(make(too_far, 3, 0.5, true, "x", None{}, special, -inf)) ==
        "output[0]: 1 of 3 values differ; first at [2]: expected 3, got 3.00099993");
  CHECK(mismatch(make(t.to(DType::Float64), 3, 0.5, true, "x", None{}, special, -inf)) ==
        "output[0]: expected dtype float32, got float64");
  CHECK(mismatch(make(t.view(Shape{1, 3}), 3, 0.5, true, "x", None{}, special, -inf)) ==
        "output[0]: expected shape [3], got [1, 3]");
  CHECK(mismatch(make(t, 4, 0.5, true, "x", None{}, special, -inf)) == "output[1]['n']: expected 3, got 4");
  CHECK(mismatch(make(t, 3.0, 0.5, true, "x", None{}, special, -inf)) == "output[1]['n']: expected an int, got a float");
  CHECK(mismatch(make(t, 3, 0.6, true, "x", None{}, special, -inf)) == "output[1]['f']: expected 0.5, got 0.6");
  CHECK(mismatch(make(t, 3, 0.5, false, "x", None{}, special, -inf)) == "output[1]['b']: expected True, got False");
  CHECK(mismatch(make(t, 3, 0.5, true, "y", None{}, special, -inf)) == "output[1]['s']: expected 'x', got 'y'");
  CHECK(mismatch(make(t, 3, 0.5, true, "x", 0, special, -inf)) == "output[1]['z']: expected a none, got an int");
  CHECK(mismatch(make(t, 3, 0.5, true, "x", None{}, special.to(DType::Float32), -inf)) ==
        "output[2][0]: expected dtype float64, got float32");
  CHECK(mismatch(make(t, 3, 0.5, true, "x", None{}, special, inf)) == "output[2][1]: expected -inf, got inf");
  CHECK(mismatch(make(t, 3, 0.5, true, "x", None{}, special, -inf, false)) == "output: expected a tuple, got a list");
  fs::remove_all(dir);
}

TEST_CASE("torch_models: not_yet_supported.txt names only existing cases; summary") {
  struct Counts {
    int pass = 0, fail = 0, untraced = 0;
  };
  std::map<std::string, Counts> counts;  // by dialect
  for (const Case& c : cases()) {
    Counts& n = counts[c.id.substr(0, c.id.find('/'))];
    if (!c.traced) ++n.untraced;
    else if (results().at(c.id).empty()) ++n.pass;
    else ++n.fail;
  }
  for (const auto& [dialect, n] : counts)
    MESSAGE("PyTorch " << dialect << ": " << n.pass + n.fail << " cases, " << n.pass << " pass, " << n.fail
                       << " not yet supported; " << n.untraced << " more that PyTorch itself could not trace or run");
  if (std::getenv("FXPACK_REWRITE_NOT_YET_SUPPORTED")) {
    std::map<std::string, std::string> failing;
    for (const auto& [id, reason] : results())
      if (!reason.empty()) failing[id] = reason;
    write_list(failing);
    MESSAGE("rewrote " << list_path().string() << " with " << failing.size() << " cases");
    return;
  }
  for (const auto& entry : read_list()) {  // no structured binding: clang 14 cannot capture one in a lambda
    const std::string& id = entry.first;
    CHECK_MESSAGE(std::any_of(cases().begin(), cases().end(), [&](const Case& c) { return c.id == id; }),
                  id << " is listed in not_yet_supported.txt but there is no such case: remove it from the list");
  }
}
