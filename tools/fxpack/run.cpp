// fxpack run: load a module in this process, run it on inputs from .npy files or random
// data, and print its outputs or write them as .npy files (with outputs.json for any structure).
#include <charconv>
#include <filesystem>
#include <iostream>
#include <random>
#include <sstream>

#include "cli.hpp"
#include "npy.hpp"
#include "outputs.hpp"

namespace fxpack::cli {

namespace {

constexpr const char* kRunHelp = R"HELP(usage: fxpack run ARCHIVE [PACKAGE RESOURCE] --input INPUT ... [--output FILE.npy | --output-dir DIR] [--threads N]

Loads the module in this process (as PackageImporter::load_pickle does: ops checked
against this build, weights memory-mapped), runs it once and prints each output's dtype,
shape and values, or writes them to files.

An INPUT is, one per placeholder of the graph, in order:
  FILE.npy                     a NumPy array (format 1.0-3.0, C order, little-endian
                               float32, float64, float16, int64, int32, int16, int8,
                               uint8 or bool; the dtypes this build supports)
  random:SHAPE[:DTYPE]         random data: SHAPE like 2x3x16x16 (or 2,3,16,16; "scalar"
                               for a 0-d tensor); DTYPE float32 (default), float64,
                               float16, bfloat16 (normal distribution), int64, int32,
                               int16, int8 (0..9), uint8 (0..255), bool

options:
  --input INPUT      an input (repeat for several, in placeholder order)
  --output FILE.npy  write the output tensor there instead of printing its values; a
                     module with several tensor outputs writes FILE_0.npy, FILE_1.npy, ...
  --output-dir DIR   write any output (nested tuples, lists and dicts of tensors of any
                     dtype, ints, floats, bools, None, strings) as DIR/outputs.json
                     describing the structure plus DIR/output_N.npy per tensor
  --seed N           seed of the random inputs (default 0)
  --threads N        threads each kernel may use (default: FXPACK_NUM_THREADS, else the
                     CPUs this process may run on)
  -h, --help
Exit status: 0 ran, 1 could not load or run, 2 usage error.
)HELP";

Shape parse_shape(const std::string& text, const std::string& spec) {
  Shape s;
  if (text == "scalar" || text == "()") return s;
  std::size_t start = 0;
  while (true) {
    auto sep = text.find_first_of("x,", start);
    std::string part = text.substr(start, sep == std::string::npos ? std::string::npos : sep - start);
    std::int64_t v = -1;
    auto [ptr, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
    if (part.empty() || ec != std::errc() || ptr != part.data() + part.size() || v < 0 || v > (1ll << 31))
      throw UsageError("bad shape '" + text + "' in input '" + spec + "' (expected e.g. 2x3x16x16)");
    if (s.size() == Shape::kMaxDims)
      throw UsageError("shape '" + text + "' has more than " + std::to_string(Shape::kMaxDims) + " dimensions");
    s.push_back(v);
    if (sep == std::string::npos) break;
    start = sep + 1;
  }
  if (static_cast<std::uint64_t>(s.numel()) > (std::uint64_t{1} << 30))
    throw UsageError("shape '" + text + "' has more than 2^30 elements");
  return s;
}

Tensor random_input(const std::string& spec, std::mt19937_64& gen) {
  std::string rest = spec.substr(7);
  std::string shape_text = rest, dtype_text = "float32";
  if (auto colon = rest.find(':'); colon != std::string::npos) {
    shape_text = rest.substr(0, colon);
    dtype_text = rest.substr(colon + 1);
  }
  Shape shape = parse_shape(shape_text, spec);
  DType dtype;
  try {
    dtype = parse_dtype(dtype_text);
  } catch (const Error&) {
    throw UsageError("unknown dtype '" + dtype_text + "' in input '" + spec +
                     "' (float32, float64, float16, bfloat16, int64, int32, int16, int8, uint8, bool; as this "
                     "build supports them)");
  }
  const std::int64_t n = shape.numel();
  if (is_floating(dtype) || dtype_text == "float16" || dtype_text == "bfloat16") {
    std::normal_distribution<double> dist;
    std::vector<double> v(static_cast<std::size_t>(n));
    for (double& x : v) x = dist(gen);
    return Tensor::from_vector(std::span<const double>(v), shape).to(dtype);
  }
  std::vector<std::int64_t> v(static_cast<std::size_t>(n));
  std::uniform_int_distribution<std::int64_t> dist(0, dtype_text == "uint8" ? 255 : dtype_text == "bool" ? 1 : 9);
  for (auto& x : v) x = dist(gen);
  return Tensor::from_vector(std::span<const std::int64_t>(v), shape).to(dtype);
}

void collect_outputs(const Value& v, const std::string& name, std::vector<std::pair<std::string, Value>>& out) {
  if (v.kind() == Value::Kind::Tuple || v.kind() == Value::Kind::List) {
    const auto& items = v.items();
    for (std::size_t i = 0; i < items.size(); ++i) collect_outputs(items[i], name + "[" + std::to_string(i) + "]", out);
    return;
  }
  if (v.kind() == Value::Kind::Dict) {
    for (const auto& [k, x] : v.dict().items) collect_outputs(x, name + "[" + python_str_repr(k) + "]", out);
    return;
  }
  out.emplace_back(name, v);
}

// --seed: the seed of the random inputs (0 when not given).
std::uint64_t seed_option(const Args& args) {
  std::uint64_t seed = 0;
  if (auto s = args.value("--seed")) {
    auto [ptr, ec] = std::from_chars(s->data(), s->data() + s->size(), seed);
    if (s->empty() || ec != std::errc() || ptr != s->data() + s->size())
      throw UsageError("--seed needs a non-negative integer, got '" + *s + "'");
  }
  return seed;
}

// --threads: the intra-op thread count, set before anything runs.
void apply_threads_option(const Args& args) {
  if (auto t = args.value("--threads")) {
    int n = 0;
    auto [ptr, ec] = std::from_chars(t->data(), t->data() + t->size(), n);
    if (t->empty() || ec != std::errc() || ptr != t->data() + t->size() || n < 1 || n > 1024)
      throw UsageError("--threads needs a thread count from 1 to 1024, got '" + *t + "'");
    set_num_threads(n);
  }
}

// The --input values, in order: random tensors drawn from one generator, or .npy files.
std::vector<Value> read_inputs(const Args& args, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::vector<Value> inputs;
  for (const auto& spec : args.all("--input")) {
    if (spec.starts_with("random:")) {
      inputs.emplace_back(random_input(spec, gen));
    } else {
      std::string bytes = read_whole_file(spec);
      inputs.emplace_back(parse_npy(bytes, spec));
    }
  }
  return inputs;
}

// One input per placeholder, or a usage error that names the placeholders.
void check_input_count(const GraphModule& gm, std::size_t given) {
  std::vector<std::string> names;
  for (const Node* n : gm.graph())
    if (n->op() == Op::Placeholder) names.push_back(n->name());
  if (names.size() != given) {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    throw UsageError("the module takes " + std::to_string(names.size()) + " input(s) (" + list + "), " +
                     std::to_string(given) + " given with --input");
  }
}

// A line per output (name, dtype and shape, the values too when `printing`), then the
// tensors written where --output or --output-dir says; the text to print.
std::string report_outputs(const Value& result, const Args& args, bool printing) {
  std::vector<std::pair<std::string, Value>> outputs;
  collect_outputs(result, "output", outputs);
  std::ostringstream o;
  std::vector<std::pair<std::string, Tensor>> to_save;
  for (const auto& [name, v] : outputs) {
    if (v.is_tensor()) {
      const Tensor& t = v.tensor();
      o << name << ": " << dtype_name(t.dtype()) << " " << t.shape().to_string() << "\n";
      if (printing) o << t << "\n";
      to_save.emplace_back(name, t);
    } else {
      o << name << ": " << python_repr(v) << "\n";
    }
  }
  if (auto out = args.value("--output")) {
    if (to_save.empty()) throw ValueError("the module returned no tensor to write to " + *out);
    for (std::size_t i = 0; i < to_save.size(); ++i) {
      std::string path = *out;
      if (to_save.size() > 1) {
        std::filesystem::path p(*out);
        std::string ext = p.extension().string();
        path = (p.parent_path() / (p.stem().string() + "_" + std::to_string(i) + ext)).string();
      }
      write_file_atomic(path, to_npy(to_save[i].second.clone()));
      o << "wrote " << to_save[i].first << " to " << path << "\n";
    }
  }
  if (auto dir = args.value("--output-dir")) {
    auto written = write_outputs(result, *dir);
    o << "wrote " << written.size() - 1 << " tensor(s) and outputs.json to " << *dir << "\n";
  }
  return o.str();
}

}  // namespace

int cmd_run(const std::vector<std::string>& argv) {
  Args args = parse_args(argv, {{"--input", true, true}, {"--output", true}, {"--output-dir", true}, {"--seed", true},
                                {"--threads", true}});
  if (args.help) {
    std::cout << kRunHelp;
    return 0;
  }
  if (args.positional.empty()) throw UsageError("missing ARCHIVE");
  if (args.has("--output") && args.has("--output-dir")) throw UsageError("give --output or --output-dir, not both");
  const bool printing = !args.has("--output") && !args.has("--output-dir");
  const std::uint64_t seed = seed_option(args);
  apply_threads_option(args);
  std::vector<Value> inputs = read_inputs(args, seed);
  // As PackageImporter loads by default: requirements checked, weights mapped.
  Archive a = open_archive(args.positional[0], true, LoadMode::Map);
  LoadedPickle loaded = a.load(select_pickle(a, args.positional, 1));
  for (const auto& w : loaded.warnings) std::cerr << "fxpack run: warning: " << printable(w) << "\n";
  std::shared_ptr<GraphModule> gm = loaded.module;
  check_input_count(*gm, inputs.size());
  Value result = gm->forward(inputs);
  std::cout << report_outputs(result, args, printing);
  return 0;
}

}  // namespace fxpack::cli
