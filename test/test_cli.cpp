// The fxpack command, run as a real process (the binary named by FXPACK_CLI) on packages
// this test makes from the reference models and on real PyTorch archives
// (fixtures/torch/*/package.pt). Stable outputs are compared with golden files under
// fixtures/cli/; run with FXPACK_UPDATE_GOLDEN=1 to rewrite them after a deliberate change.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>

#include <rapidjson/document.h>

#include "fxpack/fxpack.hpp"
#include "zip/zip_reader.hpp"
#include "zip/zip_writer.hpp"
#include "reference_models.hpp"
#include "skip.hpp"

#ifndef FXPACK_CLI
#error "FXPACK_CLI must name the fxpack binary"
#endif
// The source tree (README.md, docs/): the folder above fixtures/ unless given.
#ifndef FXPACK_SOURCE_DIR
#define FXPACK_SOURCE_DIR (std::filesystem::path(FXPACK_FIXTURES_DIR).parent_path().string())
#endif

extern char** environ;

using namespace fxpack;
using namespace fxpack::testing;
namespace fs = std::filesystem;

namespace {

struct Result {
  int status = -1;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void spit(const fs::path& p, std::string_view bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A scratch folder for this process, removed at exit (unless FXPACK_KEEP_SCRATCH is set).
struct Scratch {
  fs::path path;
  Scratch() : path(fs::temp_directory_path() / ("fxpack_test_cli_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~Scratch() {
    std::error_code ec;
    if (!std::getenv("FXPACK_KEEP_SCRATCH")) fs::remove_all(path, ec);
  }
};

fs::path scratch() {
  static const Scratch d;
  return d.path;
}

// Runs `program args...` with stdout and stderr captured (through files, so neither can
// block the other), in `cwd` when given.
Result run_process(const std::string& program, const std::vector<std::string>& args, const fs::path& cwd = {},
                   const std::string& stdin_path = "/dev/null") {
  static int counter = 0;
  const fs::path out = scratch() / ("stdout_" + std::to_string(++counter));
  const fs::path err = scratch() / ("stderr_" + std::to_string(counter));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, stdin_path.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, cwd.c_str());
  std::vector<std::string> all = {program};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, program.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  Result r;
  if (rc != 0) {
    r.err = "spawn failed: " + std::string(std::strerror(rc));
    return r;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(out);
  r.err = slurp(err);
  fs::remove(out);
  fs::remove(err);
  return r;
}

Result fxpack_cli(const std::vector<std::string>& args, const fs::path& cwd = {}) {
  return run_process(FXPACK_CLI, args, cwd);
}

// Compares with fixtures/cli/<name>, or writes it when FXPACK_UPDATE_GOLDEN is set.
void check_golden(const std::string& name, const std::string& actual) {
  const fs::path golden = fixtures_dir() / "cli" / name;
  if (std::getenv("FXPACK_UPDATE_GOLDEN")) {
    fs::create_directories(golden.parent_path());
    spit(golden, actual);
    return;
  }
  INFO("golden file ", golden.string(), " (FXPACK_UPDATE_GOLDEN=1 rewrites it)");
  REQUIRE(fs::exists(golden));
  CHECK(slurp(golden) == actual);
}

// The test's own packages: every reference model traced with its real weights.
fs::path package_dir() {
  static const fs::path d = [] {
    fs::path p = scratch() / "packages";
    fs::create_directories(p);
    for (const auto& c : reference_cases()) {
      auto gm = trace_reference(c.folder);
      PackageExporter pe(p / (c.folder + ".fxpkg"));
      pe.save_pickle("model", "model.pkl", *gm);
      pe.close();
    }
    return p;
  }();
  return d;
}

fs::path torch_package(const std::string& folder) { return fixtures_dir() / "torch" / folder / "package.pt"; }

// An independent .npy writer/reader (float32, format 1.0) for the test's side.
std::string npy_f32(const Tensor& t) {
  std::string shape = "(";
  for (std::size_t i = 0; i < t.dim(); ++i) shape += (i ? ", " : "") + std::to_string(t.shape()[i]);
  shape += t.dim() == 1 ? ",)" : ")";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
  header += std::string(63 - (10 + header.size()) % 64, ' ') + "\n";
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  auto b = t.bytes();
  return out + std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

Tensor read_npy_f32(const fs::path& p, Shape shape) {
  std::string bytes = slurp(p);
  REQUIRE(bytes.size() > 10);
  REQUIRE(bytes.substr(0, 8) == std::string("\x93NUMPY\x01\x00", 8));
  std::size_t hlen = static_cast<unsigned char>(bytes[8]) | (static_cast<std::size_t>(static_cast<unsigned char>(bytes[9])) << 8);
  CHECK((10 + hlen) % 64 == 0);
  std::string header = bytes.substr(10, hlen);
  CHECK(header.find("'descr': '<f4'") != std::string::npos);
  CHECK(header.find("'fortran_order': False") != std::string::npos);
  std::string data = bytes.substr(10 + hlen);
  return Tensor::from_bytes(std::as_bytes(std::span(data.data(), data.size())), shape, DType::Float32);
}

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

// A JSON document, which must be valid JSON in valid UTF-8 (checked, not assumed).
rapidjson::Document parse_json(const std::string& text) {
  INFO("JSON:\n", text);
  CHECK(is_valid_utf8(text));
  rapidjson::Document d;
  d.Parse<rapidjson::kParseValidateEncodingFlag>(text.c_str(), text.size());
  CHECK_FALSE(d.HasParseError());
  return d;
}

const std::vector<std::string> kCommands = {"inspect", "code", "graph", "dot", "run", "verify", "convert"};

}  // namespace

TEST_CASE("cli: --help of the command and of every subcommand exits 0") {
  for (const char* flag : {"--help", "-h", "help"}) {
    auto r = fxpack_cli({flag});
    CHECK(r.status == 0);
    CHECK(r.out.starts_with("usage: fxpack <command>"));
    for (const auto& c : kCommands) CHECK(contains(r.out, "  " + c + " "));
  }
  for (const auto& c : kCommands) {
    INFO(c);
    auto r = fxpack_cli({c, "--help"});
    CHECK(r.status == 0);
    CHECK(r.out.starts_with("usage: fxpack " + c));
    CHECK(r.err.empty());
    CHECK(fxpack_cli({c, "-h"}).out == r.out);
  }
  auto v = fxpack_cli({"--version"});
  CHECK(v.status == 0);
  CHECK(v.out.starts_with(std::string("fxpack ") + fxpack::version() + " ("));
}

TEST_CASE("cli: usage errors exit 2 with a message on stderr") {
  const std::string mlp = (package_dir() / "mlp.fxpkg").string();
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{}, "usage: fxpack <command>"},
      {{"frobnicate"}, "fxpack: unknown command 'frobnicate'"},
      {{"inspect"}, "fxpack inspect: missing ARCHIVE"},
      {{"inspect", mlp, "--bogus"}, "fxpack inspect: unknown option '--bogus'"},
      {{"inspect", mlp, "--json=yes"}, "fxpack inspect: option '--json' takes no value"},
      {{"code", mlp, "--bogus"}, "fxpack code: unknown option '--bogus'"},
      {{"code", mlp, "model"}, "fxpack code: give both PACKAGE and RESOURCE, or neither"},
      {{"graph", mlp, "-x"}, "fxpack graph: unknown option '-x'"},
      {{"dot", "--bogus", mlp}, "fxpack dot: unknown option '--bogus'"},
      {{"verify", mlp, "--fast"}, "fxpack verify: unknown option '--fast'"},
      {{"verify", mlp, "extra"}, "fxpack verify: unexpected argument 'extra'"},
      {{"run", mlp, "--input"}, "fxpack run: option '--input' needs a value"},
      {{"run", mlp, "--input", "random:2x4", "--seed", "x"}, "fxpack run: --seed needs a non-negative integer"},
      {{"run", mlp}, "fxpack run: the module takes 1 input(s) (x), 0 given with --input"},
      {{"run", mlp, "--input", "random:2xq"}, "fxpack run: bad shape '2xq'"},
      {{"run", mlp, "--input", "random:2x4:complex64"}, "fxpack run: unknown dtype 'complex64'"},
      {{"run", mlp, "--input", "random:2x4", "--threads", "0"},
       "fxpack run: --threads needs a thread count from 1 to 1024, got '0'"},
      {{"run", mlp, "--input", "random:2x4", "--threads", "two"},
       "fxpack run: --threads needs a thread count from 1 to 1024, got 'two'"},
      {{"convert", mlp}, "fxpack convert: missing OUT"},
      {{"convert", mlp, "out.bin"}, "fxpack convert: cannot tell the output format from 'out.bin': give --format"},
      {{"convert", mlp, "o.pkl", "--format", "pickle5"}, "fxpack convert: unknown format 'pickle5'"},
      {{"convert", mlp, "o.pkl", "--format", "json", "--format", "json"}, "fxpack convert: option '--format' given twice"},
  };
  for (const auto& c : cases) {
    std::string shown;
    for (const auto& a : c.args) shown += a + " ";
    INFO("fxpack ", shown);
    auto r = fxpack_cli(c.args, scratch());
    CHECK(r.status == 2);
    CHECK(contains(r.err, c.message));
    CHECK(r.out.empty());
  }
}

TEST_CASE("cli: run --threads and FXPACK_NUM_THREADS give the same result as one thread") {
  const std::string convnet = (package_dir() / "small_convnet.fxpkg").string();
  const std::vector<std::string> base = {"run", convnet, "--input", "random:2x3x16x16", "--seed", "3"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return fxpack_cli(args, scratch());
  };
  const Result one = with({"--threads", "1"});
  REQUIRE(one.status == 0);
  const Result two = with({"--threads", "2"});
  REQUIRE(two.status == 0);
  // The printed values (4 significant digits) agree whatever the thread count.
  CHECK(two.out == one.out);
  ::setenv("FXPACK_NUM_THREADS", "2", 1);
  const Result env = with({});
  ::setenv("FXPACK_NUM_THREADS", "lots", 1);
  const Result bad = with({});
  const Result flag_wins = with({"--threads", "1"});
  ::unsetenv("FXPACK_NUM_THREADS");
  CHECK(env.status == 0);
  CHECK(env.out == one.out);
  CHECK(bad.status == 1);
  CHECK(contains(bad.err, "FXPACK_NUM_THREADS='lots' is not a thread count"));
  CHECK(flag_wins.status == 0);
}

TEST_CASE("cli: run with FXPACK_WINOGRAD gives the same result; a value it does not know is an error naming it") {
  const std::string convnet = (package_dir() / "small_convnet.fxpkg").string();
  const std::vector<std::string> args = {"run", convnet, "--input", "random:2x3x16x16", "--seed", "3"};
  const Result plain = fxpack_cli(args, scratch());
  REQUIRE(plain.status == 0);
  ::setenv("FXPACK_WINOGRAD", "always", 1);
  const Result always = fxpack_cli(args, scratch());
  ::setenv("FXPACK_WINOGRAD", "sometimes", 1);
  const Result bad = fxpack_cli(args, scratch());
  ::unsetenv("FXPACK_WINOGRAD");
  CHECK(always.status == 0);
  CHECK(always.out == plain.out);
  CHECK(bad.status == 1);
  CHECK(contains(bad.err, "FXPACK_WINOGRAD='sometimes' is not auto, always or off"));
}

TEST_CASE("cli: errors exit 1 with one message on stderr and no stack dump") {
  spit(scratch() / "not_an_archive.txt", "hello\n");
  spit(scratch() / "empty.fxpkg", "");
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"inspect", "no_such_file.fxpkg"}, "fxpack inspect: error: no_such_file.fxpkg: cannot open"},
      {{"code", "not_an_archive.txt"},
       "fxpack code: error: not_an_archive.txt: not an fxpack package, torch.package archive or fxpack pickle"},
      {{"graph", "empty.fxpkg"}, "fxpack graph: error: empty.fxpkg: the file is empty"},
      {{"code", (package_dir() / "mlp.fxpkg").string(), "model", "other.pkl"}, "no record 'model/other.pkl'"},
      {{"run", (package_dir() / "mlp.fxpkg").string(), "--input", "missing.npy"}, "missing.npy: cannot open"},
      {{"run", (package_dir() / "mlp.fxpkg").string(), "--input", "random:5x5"}, "fxpack run: error: "},
  };
  for (const auto& c : cases) {
    INFO(c.args[0], " ", c.args[1]);
    auto r = fxpack_cli(c.args, scratch());
    CHECK(r.status == 1);
    CHECK(contains(r.err, c.message));
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  }
}

TEST_CASE("cli: inspect describes fxpack packages, torch.package archives and pickles") {
  // Golden text, run from the archive's folder so that the path shown is stable.
  for (const std::string m : {"mlp", "small_convnet"}) {
    auto r = fxpack_cli({"inspect", m + ".fxpkg"}, package_dir());
    CHECK(r.status == 0);
    CHECK(r.err.empty());
    check_golden("inspect_" + m + ".fxpkg.txt", r.out);
    auto t = fxpack_cli({"inspect", "package.pt"}, torch_package(m).parent_path());
    CHECK(t.status == 0);
    check_golden("inspect_" + m + ".torch.txt", t.out);
    CHECK(contains(t.out, "format: torch.package"));
    CHECK(contains(t.out, "loadable by this build: yes"));
  }
  auto r = fxpack_cli({"inspect", "small_convnet.fxpkg"}, package_dir());
  CHECK(contains(r.out, "format: fxpack package v1"));
  CHECK(contains(r.out, "class: SmallConvNet"));
  CHECK(contains(r.out, "nodes: 13 (placeholder 1, call_function 2, call_module 9, output 1)"));
  CHECK(contains(r.out, "parameters: 8 tensors, 914 elements, 3656 bytes"));
  CHECK(contains(r.out, "    module BatchNorm2d\n"));
  CHECK(contains(r.out, "├── .data"));

  // JSON is valid (checked with Python's json module when there is one).
  auto j = fxpack_cli({"inspect", "--json", "small_convnet.fxpkg"}, package_dir());
  CHECK(j.status == 0);
  CHECK(contains(j.out, "\"kind\": \"fxpack-package\""));
  CHECK(contains(j.out, "\"loadable\": true"));
  check_golden("inspect_small_convnet.fxpkg.json", j.out);
  {
    const rapidjson::Document d = parse_json(j.out);
    REQUIRE(d.IsObject());
    CHECK(d["pickles"][0]["nodes"].GetUint64() == 13);
  }

  // A bare pickle.
  auto gm = trace_reference("mlp");
  spit(scratch() / "mlp.json.pkl", pickle::dumps(*gm, pickle::PickleFormat::Json));
  auto p = fxpack_cli({"inspect", "mlp.json.pkl"}, scratch());
  CHECK(p.status == 0);
  CHECK(contains(p.out, "format: fxpack pickle, json v3"));
  CHECK(contains(p.out, "class: MLP"));
}

TEST_CASE("cli: code prints fx's generated source byte for byte") {
  for (const auto& c : reference_cases()) {
    INFO(c.folder);
    const std::string expected = slurp(reference_dir(c.folder) / "code.py");
    auto r = fxpack_cli({"code", (package_dir() / (c.folder + ".fxpkg")).string()});
    CHECK(r.status == 0);
    CHECK(r.out == expected);
    auto explicit_record = fxpack_cli({"code", (package_dir() / (c.folder + ".fxpkg")).string(), "model", "model.pkl"});
    CHECK(explicit_record.out == expected);
    auto t = fxpack_cli({"code", torch_package(c.folder).string()});
    CHECK(t.status == 0);
    CHECK(t.out == expected);
  }
}

TEST_CASE("cli: graph prints a print_tabular table") {
  for (const std::string m : {"mlp", "small_convnet"}) {
    auto r = fxpack_cli({"graph", (package_dir() / (m + ".fxpkg")).string()});
    CHECK(r.status == 0);
    check_golden("graph_" + m + ".txt", r.out);
    // the PyTorch archive has the same graph
    CHECK(fxpack_cli({"graph", torch_package(m).string()}).out == r.out);
  }
  auto r = fxpack_cli({"graph", (package_dir() / "seed_relu_add.fxpkg").string()});
  CHECK(r.out.starts_with("opcode         name    target        args      kwargs\n"));
  CHECK(contains(r.out, "call_function  add     operator.add  (x, 3.0)  {}"));
}

TEST_CASE("cli: dot draws the graph") {
  auto r = fxpack_cli({"dot", (package_dir() / "small_convnet.fxpkg").string()});
  CHECK(r.status == 0);
  CHECK(r.out.starts_with("digraph \"SmallConvNet\" {"));
  CHECK(contains(r.out, "\"conv1\" -> \"bn1\";"));
  CHECK(contains(r.out, "fillcolor=\"#fb9a99\""));  // call_module
  check_golden("dot_small_convnet.dot", r.out);
}

TEST_CASE("cli: Graphviz reads what dot prints" * skip_unless(have_program("dot"), "graphviz's dot is not installed")) {
  for (const auto& c : reference_cases()) {
    INFO(c.folder);
    for (const fs::path& archive : {package_dir() / (c.folder + ".fxpkg"), torch_package(c.folder)}) {
      auto d = fxpack_cli({"dot", archive.string()});
      REQUIRE(d.status == 0);
      spit(scratch() / "g.dot", d.out);
      auto svg = run_process("dot", {"-Tsvg", (scratch() / "g.dot").string()});
      CHECK(svg.status == 0);
      CHECK(svg.err.empty());
      CHECK(contains(svg.out, "<svg"));
    }
  }
}

TEST_CASE("cli: dot groups submodules in clusters") {
  // a module with nested submodules: layer.0 and layer.1 in a Sequential
  class Nested : public Module {
   public:
    Nested() : Module("Nested") {
      register_module("layer", layer = nn::Sequential({nn::Linear(4, 4), nn::ReLU()}));
    }
    Value forward(std::span<const Value> in) override { return (*layer)(in[0]); }
    std::shared_ptr<Module> layer;
  };
  auto gm = symbolic_trace(std::make_shared<Nested>());
  {
    PackageExporter pe(scratch() / "nested.fxpkg");
    pe.save_pickle("model", "model.pkl", *gm);
    pe.close();
  }
  auto r = fxpack_cli({"dot", (scratch() / "nested.fxpkg").string()});
  CHECK(r.status == 0);
  CHECK(contains(r.out, "subgraph cluster_0 {"));
  CHECK(contains(r.out, "label=\"layer ("));
  CHECK(contains(r.out, "\"layer_0\" [label=\"layer_0\\ncall_module\\nlayer.0\\nLinear("));
}

TEST_CASE("cli: run reproduces PyTorch's outputs from .npy inputs") {
  for (const auto& c : reference_cases()) {
    INFO(c.folder);
    const fs::path in = scratch() / (c.folder + "_input.npy");
    spit(in, npy_f32(reference_input(c)));
    for (const fs::path& archive : {package_dir() / (c.folder + ".fxpkg"), torch_package(c.folder)}) {
      INFO(archive.string());
      const fs::path out = scratch() / (c.folder + "_output.npy");
      fs::remove(out);
      auto r = fxpack_cli({"run", archive.string(), "--input", in.string(), "--output", out.string()});
      CHECK(r.status == 0);
      CHECK(r.err.empty());
      CHECK(contains(r.out, "output: float32 " + c.output_shape.to_string() + "\n"));
      REQUIRE(fs::exists(out));
      Tensor got = read_npy_f32(out, c.output_shape);
      CHECK(allclose(got, reference_output(c), 1e-5, 1e-6));
      // printed values instead of a file
      auto p = fxpack_cli({"run", archive.string(), "--input", in.string()});
      CHECK(p.status == 0);
      CHECK(contains(p.out, "tensor("));
    }
  }
  // random inputs, deterministic by seed
  const std::string mlp = (package_dir() / "mlp.fxpkg").string();
  auto a = fxpack_cli({"run", mlp, "--input", "random:2x4", "--seed", "7"});
  auto b = fxpack_cli({"run", mlp, "--input", "random:2,4:float32", "--seed", "7"});
  CHECK(a.status == 0);
  CHECK(a.out.starts_with("output: float32 [2, 3]\ntensor([["));
  CHECK(a.out == b.out);
  auto bare = fxpack_cli({"run", mlp, "--input", "random:2x4:float64"});
  CHECK(bare.status == 1);  // Linear's weights are float32
}

TEST_CASE("cli: run refuses .npy files it cannot read, saying why") {
  const std::string mlp = (package_dir() / "mlp.fxpkg").string();
  auto npy = [](std::string descr, std::string fortran, std::string shape, std::size_t data_bytes) {
    std::string header = "{'descr': '" + descr + "', 'fortran_order': " + fortran + ", 'shape': " + shape + ", }";
    header += std::string(63 - (10 + header.size()) % 64, ' ') + "\n";
    std::string out("\x93NUMPY\x01\x00", 8);
    out += static_cast<char>(header.size() & 0xff);
    out += static_cast<char>(header.size() >> 8);
    return out + header + std::string(data_bytes, '\0');
  };
  struct Case {
    std::string name, bytes, message;
  };
  std::string huge("\x93NUMPY\x02\x00\xff\xff\xff\x7f", 12);
  const std::vector<Case> cases = {
      {"fortran.npy", npy("<f4", "True", "(2, 4)", 32), "Fortran order"},
      {"bigendian.npy", npy(">f4", "False", "(2, 4)", 32), "dtype '>f4' is not supported"},
      {"complex.npy", npy("<c8", "False", "(2, 4)", 64), "dtype '<c8' is not supported"},
      {"short.npy", npy("<f4", "False", "(2, 4)", 31), "need 32 (truncated)"},
      {"long.npy", npy("<f4", "False", "(2, 4)", 33), ".npy data is 33 bytes"},
      {"huge_header.npy", huge, "larger than the limit of 65535"},
      {"magic.npy", "NUMPY\x01\x00", "not a .npy file"},
      {"v9.npy", std::string("\x93NUMPY\x09\x00\x00\x00", 10), "format version 9.0 is not supported"},
      {"garbage.npy", npy("<f4", "False", "(2, four)", 32), "expected a non-negative dimension"},
      {"extra_key.npy", npy("<f4", "False", "(2, 4), 'x': 1", 32), "unexpected or repeated key 'x'"},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    spit(scratch() / c.name, c.bytes);
    auto r = fxpack_cli({"run", mlp, "--input", c.name}, scratch());
    CHECK(r.status == 1);
    CHECK(contains(r.err, c.message));
  }
  // int64, bool and float64 .npy files load (the module refuses them, which is a run error)
  spit(scratch() / "i64.npy", npy("<i8", "False", "(2, 4)", 64));
  auto r = fxpack_cli({"run", mlp, "--input", "i64.npy"}, scratch());
  CHECK(r.status == 1);
  CHECK(!contains(r.err, ".npy"));
}

TEST_CASE("cli: run --output-dir writes any output: nested containers, every dtype, scalars") {
  // relu(x) and the bool input m inside a tuple with a dict, a list and every kind of scalar
  const fs::path p = scratch() / "structured.fxpkg";
  {
    auto g = std::make_shared<Graph>();
    Node* x = g->placeholder("x");
    Node* positive = g->placeholder("m");
    Node* relu = g->call_function("torch.relu", {x});
    Dict d;
    d.items.emplace_back("relu", relu);
    d.items.emplace_back("nothing", None{});
    g->output(Tuple{{relu, d, List{{positive, std::int64_t{3}}}, 1.5, std::numeric_limits<double>::infinity(),
                     true, "tag"}});
    PackageExporter pe(p);
    pe.save_pickle("model", "model.pkl", *std::make_shared<LazyGraphModule>(Module("Structured"), g, "Structured"));
    pe.close();
  }
  const fs::path out = scratch() / "structured_out";
  fs::remove_all(out);
  auto r = fxpack_cli({"run", p.string(), "--input", "random:2x3", "--input", "random:2x3:bool", "--output-dir",
                       out.string()});
  INFO("stderr: ", r.err);
  REQUIRE(r.status == 0);
  CHECK(contains(r.out, "wrote 3 tensor(s) and outputs.json to "));
  CHECK(slurp(out / "outputs.json") ==
        R"({"format": "fxpack-outputs", "version": 1, "output": {"tuple":[)"
        R"({"tensor":"output_0.npy","dtype":"float32","shape":[2,3]},)"
        R"({"dict":[["relu",{"tensor":"output_1.npy","dtype":"float32","shape":[2,3]}],["nothing",{"none":null}]]},)"
        R"({"list":[{"tensor":"output_2.npy","dtype":"bool","shape":[2,3]},{"int":3}]},)"
        R"({"float":1.5},{"float":"inf"},{"bool":true},{"str":"tag"}]}})"
        "\n");
  CHECK(slurp(out / "output_0.npy") == slurp(out / "output_1.npy"));
  CHECK(contains(slurp(out / "output_2.npy"), "'descr': '|b1'"));
  // printing the same output names every leaf
  auto printed = fxpack_cli({"run", p.string(), "--input", "random:2x3", "--input", "random:2x3:bool"});
  CHECK(contains(printed.out, "output[1]['nothing']: None\n"));
  CHECK(contains(printed.out, "output[2][0]: bool [2, 3]\n"));
  CHECK(contains(printed.out, "output[6]: 'tag'\n"));
  // --output and --output-dir together are a usage error
  CHECK(fxpack_cli({"run", p.string(), "--input", "random:2x3", "--input", "random:2x3:bool", "--output", "y.npy",
                    "--output-dir", "d"}).status == 2);
}

TEST_CASE("cli: run reads .npy inputs of every dtype this build has, and says which it lacks") {
  const fs::path p = scratch() / "identity.fxpkg";  // returns its input: no kernel involved
  {
    auto g = std::make_shared<Graph>();
    g->output(g->placeholder("x"));
    PackageExporter pe(p);
    pe.save_pickle("model", "model.pkl", *std::make_shared<LazyGraphModule>(Module("Identity"), g, "Identity"));
    pe.close();
  }
  struct Kind {
    std::string descr, dtype;
    std::size_t itemsize;
  };
  for (const Kind& k : std::vector<Kind>{{"<f4", "float32", 4}, {"<f8", "float64", 8}, {"<f2", "float16", 2},
                                         {"<i8", "int64", 8}, {"<i4", "int32", 4}, {"<i2", "int16", 2},
                                         {"|i1", "int8", 1}, {"|u1", "uint8", 1}, {"|b1", "bool", 1}}) {
    INFO(k.descr);
    std::string header = "{'descr': '" + k.descr + "', 'fortran_order': False, 'shape': (2, 3), }";
    header += std::string(63 - (10 + header.size()) % 64, ' ') + "\n";
    std::string bytes("\x93NUMPY\x01\x00", 8);
    bytes += static_cast<char>(header.size() & 0xff);
    bytes += static_cast<char>(header.size() >> 8);
    bytes += header + std::string(6 * k.itemsize, '\0');
    spit(scratch() / "in.npy", bytes);
    const fs::path out = scratch() / ("dtype_" + k.dtype);
    auto r = fxpack_cli({"run", p.string(), "--input", "in.npy", "--output-dir", out.string()}, scratch());
    INFO("stderr: ", r.err);
    bool supported = true;
    try {
      parse_dtype(k.dtype);
    } catch (const Error&) {
      supported = false;
    }
    if (supported) {
      CHECK(r.status == 0);
      CHECK(contains(slurp(out / "outputs.json"), "\"dtype\":\"" + k.dtype + "\",\"shape\":[2,3]"));
      CHECK(slurp(out / "output_0.npy") == bytes);  // the same header and data back
    } else {
      CHECK(r.status == 1);
      CHECK(contains(r.err, "(" + k.dtype + ") is not supported by this build of fxpack"));
    }
  }
}

TEST_CASE("cli: verify passes good archives and flags each corrupt one with its line") {
  for (const auto& c : reference_cases()) {
    INFO(c.folder);
    auto r = fxpack_cli({"verify", (package_dir() / (c.folder + ".fxpkg")).string()});
    CHECK(r.status == 0);
    CHECK(contains(r.out, ": ok (fxpack package v1; "));
    auto t = fxpack_cli({"verify", torch_package(c.folder).string()});
    CHECK(t.status == 0);
    CHECK(contains(t.out, ": ok (torch.package"));
  }
  CHECK(fxpack_cli({"verify", (fixtures_dir() / "package" / "v1" / "small_convnet.fxpkg").string()}).status == 0);
  for (const auto& f : fs::directory_iterator(fixtures_dir() / "pickle" / "v1")) {
    INFO(f.path().string());
    CHECK(fxpack_cli({"verify", f.path().string()}).status == 0);
  }

  const std::string good = slurp(package_dir() / "mlp.fxpkg");
  auto reader = zip::ZipReader::from_memory(
      std::make_shared<const std::vector<std::byte>>(reinterpret_cast<const std::byte*>(good.data()),
                                                     reinterpret_cast<const std::byte*>(good.data()) + good.size()));
  // A flipped bit in a storage record (the weights of fc1).
  {
    const zip::EntryInfo& e = reader.at("mlp/.data/storages/0");
    std::string bad = good;
    bad[e.data_offset + 5] = static_cast<char>(bad[e.data_offset + 5] ^ 0x10);
    fs::create_directories(scratch() / "flip");
    spit(scratch() / "flip" / "mlp.fxpkg", bad);
    auto r = fxpack_cli({"verify", "mlp.fxpkg"}, scratch() / "flip");
    CHECK(r.status == 1);
    CHECK(r.out.starts_with("mlp.fxpkg: .data/storages/0: entry 'mlp/.data/storages/0' is corrupt: CRC "));
    check_golden("verify_flipped_storage.txt", r.out);
    auto j = fxpack_cli({"verify", "--json", "mlp.fxpkg"}, scratch() / "flip");
    CHECK(j.status == 1);
    CHECK(contains(j.out, "\"ok\": false"));
    CHECK(contains(j.out, "\"where\": \".data/storages/0\""));
    {
      const rapidjson::Document d = parse_json(j.out);
      REQUIRE(d.IsObject());
      CHECK_FALSE(d["ok"].GetBool());
      CHECK(d["problems"].Size() > 0);
    }
    // and the other commands refuse to use it
    auto run = fxpack_cli({"run", "mlp.fxpkg", "--input", "random:2x4"}, scratch() / "flip");
    CHECK(run.status == 1);
    CHECK(contains(run.err, "CRC"));
  }
  // A flipped byte in the pickle.
  {
    const zip::EntryInfo& e = reader.at("mlp/model/model.pkl");
    std::string bad = good;
    bad[e.data_offset + 40] = static_cast<char>(bad[e.data_offset + 40] ^ 0x01);
    spit(scratch() / "flip_pickle.fxpkg", bad);
    auto r = fxpack_cli({"verify", "flip_pickle.fxpkg"}, scratch());
    CHECK(r.status == 1);
    CHECK(r.out.starts_with("flip_pickle.fxpkg: model/model.pkl: entry 'mlp/model/model.pkl' is corrupt: CRC "));
  }
  // Truncated.
  {
    spit(scratch() / "truncated.fxpkg", good.substr(0, good.size() / 2));
    auto r = fxpack_cli({"verify", "truncated.fxpkg"}, scratch());
    CHECK(r.status == 1);
    CHECK(r.out.starts_with("truncated.fxpkg: archive: archive is truncated or not a zip file"));
    CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
  }
  // A graph using an op this build does not have.
  {
    auto g = std::make_shared<Graph>();
    Node* x = g->placeholder("x");
    Node* y = g->call_function("mylib.frobnicate", {x});
    g->output(y);
    auto gm = std::make_shared<LazyGraphModule>(Module("Custom"), g, "Custom");
    {
      PackageExporter pe(scratch() / "custom.fxpkg");
      pe.save_pickle("model", "model.pkl", *gm);
      pe.close();
    }
    auto r = fxpack_cli({"verify", "custom.fxpkg"}, scratch());
    CHECK(r.status == 1);
    CHECK(r.out == "custom.fxpkg: .data/manifest: needs 'function mylib.frobnicate' (for 'model/model.pkl'), which this "
                   "build does not provide\n");
    auto i = fxpack_cli({"inspect", "custom.fxpkg"}, scratch());
    CHECK(i.status == 0);
    CHECK(contains(i.out, "    function mylib.frobnicate    MISSING\n"));
    CHECK(contains(i.out, "loadable by this build: no (missing function mylib.frobnicate)"));
    // it can still be printed
    auto c = fxpack_cli({"code", "custom.fxpkg"}, scratch());
    CHECK(c.status == 0);
    CHECK(contains(c.out, "frobnicate = mylib_frobnicate(x)"));
    auto run = fxpack_cli({"run", "custom.fxpkg", "--input", "random:2"}, scratch());
    CHECK(run.status == 1);
    CHECK(contains(run.err, "mylib.frobnicate"));
  }
}

TEST_CASE("cli: convert between pickle formats, packages and torch.package archives") {
  const fs::path dir = scratch() / "convert";
  fs::create_directories(dir / "back");
  const fs::path src = package_dir() / "small_convnet.fxpkg";
  const std::string expected_code = slurp(reference_dir("small_convnet") / "code.py");
  const fs::path in = scratch() / "sc_input.npy";
  spit(in, npy_f32(reference_input(reference_cases()[3])));
  auto check_runs = [&](const fs::path& archive) {
    INFO(archive.string());
    auto v = fxpack_cli({"verify", archive.string()});
    CHECK(v.status == 0);
    CHECK(fxpack_cli({"code", archive.string()}).out == expected_code);
    const fs::path out = dir / "out.npy";
    fs::remove(out);
    auto r = fxpack_cli({"run", archive.string(), "--input", in.string(), "--output", out.string()});
    REQUIRE(r.status == 0);
    CHECK(allclose(read_npy_f32(out, {2, 10}), reference_output(reference_cases()[3]), 1e-5, 1e-6));
  };
  // package -> every pickle format -> package: the same bytes as the original
  for (const char* fmt : {"portable-binary", "json", "boost-text", "boost-binary", "boost-xml"}) {
    INFO(fmt);
    const fs::path pkl = dir / (std::string("sc.") + fmt + ".pkl");
    auto r = fxpack_cli({"convert", src.string(), pkl.string(), "--format", fmt});
    CHECK(r.status == 0);
    CHECK(slurp(pkl).starts_with(std::string("fxpack.pickle ") + fmt + " 3 "));
    check_runs(pkl);
    const fs::path back = dir / "back" / "small_convnet.fxpkg";
    CHECK(fxpack_cli({"convert", pkl.string(), back.string()}).status == 0);
    CHECK(slurp(back) == slurp(src));
  }
  // fxpack -> torch.package -> fxpack
  const fs::path pt = dir / "small_convnet.pt";
  auto r = fxpack_cli({"convert", src.string(), pt.string()});
  CHECK(r.status == 0);
  CHECK(r.out == "wrote " + pt.string() + " (torch.package, 1 pickle, 0 other records)\n");
  check_runs(pt);
  CHECK(contains(fxpack_cli({"inspect", pt.string()}).out, "format: torch.package"));
  const fs::path back = dir / "back" / "small_convnet.fxpkg";
  CHECK(fxpack_cli({"convert", pt.string(), back.string(), "--format", "fxpack"}).status == 0);
  CHECK(slurp(back) == slurp(src));
  // ... and for PyTorch 2.x: its records, its code
  const fs::path pt2 = dir / "small_convnet2.pt";
  r = fxpack_cli({"convert", src.string(), pt2.string(), "--format", "torch-2"});
  CHECK(r.status == 0);
  CHECK(r.out == "wrote " + pt2.string() + " (torch.package for PyTorch 2.x, 1 pickle, 0 other records)\n");
  check_runs(pt2);
  CHECK(contains(fxpack_cli({"inspect", pt2.string()}).out, "    └── byteorder\n"));
  CHECK(fxpack_cli({"code", pt2.string()}).out == slurp(fixtures_dir() / "torch" / "small_convnet" / "code-2.6.py"));
  // PyTorch's own archive -> fxpack package and bare pickle
  for (const auto& c : reference_cases()) {
    INFO(c.folder);
    const fs::path p = dir / (c.folder + ".fxpkg");
    CHECK(fxpack_cli({"convert", torch_package(c.folder).string(), p.string()}).status == 0);
    CHECK(fxpack_cli({"verify", p.string()}).status == 0);
    CHECK(fxpack_cli({"code", p.string()}).out == slurp(reference_dir(c.folder) / "code.py"));
  }
  // other resources travel along
  {
    auto gm = trace_reference("mlp");
    PackageExporter pe(dir / "res.fxpkg");
    pe.save_pickle("model", "model.pkl", *gm);
    pe.save_text("notes", "readme.txt", "hello\n");
    pe.close();
    CHECK(fxpack_cli({"convert", (dir / "res.fxpkg").string(), (dir / "res.pt").string()}).status == 0);
    CHECK(fxpack_cli({"convert", (dir / "res.pt").string(), (dir / "back" / "res.fxpkg").string()}).status == 0);
    PackageImporter pi(dir / "back" / "res.fxpkg");
    CHECK(pi.load_text("notes", "readme.txt") == "hello\n");
  }
  // a failed conversion writes nothing
  fs::remove(dir / "none.fxpkg");
  const std::string good = slurp(src);
  spit(dir / "cut.fxpkg", good.substr(0, good.size() - 100));
  auto bad = fxpack_cli({"convert", (dir / "cut.fxpkg").string(), (dir / "none.fxpkg").string()});
  CHECK(bad.status == 1);
  CHECK(!fs::exists(dir / "none.fxpkg"));
}

namespace {

// "..." in an expected output matches any text.
bool matches_with_ellipsis(std::string expected, std::string actual) {
  // trailing white space aside (fx's code ends with a line of four spaces and no newline)
  while (!expected.empty() && std::isspace(static_cast<unsigned char>(expected.back()))) expected.pop_back();
  while (!actual.empty() && std::isspace(static_cast<unsigned char>(actual.back()))) actual.pop_back();
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    auto e = expected.find("...", start);
    parts.push_back(expected.substr(start, e == std::string::npos ? std::string::npos : e - start));
    if (e == std::string::npos) break;
    start = e + 3;
  }
  if (parts.size() == 1) return expected == actual;
  if (!actual.starts_with(parts.front()) || !actual.ends_with(parts.back())) return false;
  std::size_t pos = parts.front().size();
  for (std::size_t i = 1; i + 1 < parts.size(); ++i) {
    pos = actual.find(parts[i], pos);
    if (pos == std::string::npos) return false;
    pos += parts[i].size();
  }
  return pos <= actual.size() - parts.back().size();
}

struct DocBlock {
  std::string lang;
  int line;
  std::string text;
};

std::vector<DocBlock> doc_blocks(const fs::path& md) {
  std::vector<DocBlock> out;
  std::istringstream in(slurp(md));
  std::string line;
  int n = 0;
  std::optional<DocBlock> cur;
  while (std::getline(in, line)) {
    ++n;
    if (!cur && line.starts_with("```") && line.size() > 3) {
      cur = DocBlock{line.substr(3), n, ""};
    } else if (cur && line == "```") {
      out.push_back(*cur);
      cur.reset();
    } else if (cur) {
      cur->text += line + "\n";
    }
  }
  return out;
}

}  // namespace

// Runs the examples of docs/cli.md and README.md: "$ command" lines of console blocks
// (whose output must match) and cli.md's sh blocks; those that draw with Graphviz only when
// `graphviz` is set, the others only when it is not. Returns how many ran.
static std::size_t run_doc_examples(bool graphviz) {
  // The folder the examples run in: PyTorch's MLP archive, this test's packages, an input.
  const fs::path dir = scratch() / "docs";
  fs::create_directories(dir);
  fs::copy_file(torch_package("mlp"), dir / "package.pt", fs::copy_options::overwrite_existing);
  fs::copy_file(package_dir() / "mlp.fxpkg", dir / "mlp.fxpkg", fs::copy_options::overwrite_existing);
  fs::copy_file(package_dir() / "mlp.fxpkg", dir / "model.fxpkg", fs::copy_options::overwrite_existing);
  spit(dir / "x.npy", npy_f32(reference_input(reference_cases()[2])));
  if (!fs::exists(fs::symlink_status(dir / "fixtures"))) fs::create_directory_symlink(fixtures_dir(), dir / "fixtures");
  {
    std::string bad = slurp(dir / "mlp.fxpkg");
    auto reader = zip::ZipReader::open(dir / "mlp.fxpkg");
    const auto& e = reader.at("mlp/.data/storages/0");
    bad[e.data_offset] = static_cast<char>(bad[e.data_offset] ^ 1);
    fs::create_directories(dir / "corrupt");
    spit(dir / "corrupt" / "mlp.fxpkg", bad);
    auto g = std::make_shared<Graph>();
    g->output(g->call_function("mylib.frobnicate", {g->placeholder("x")}));
    PackageExporter pe(dir / "custom.fxpkg");
    pe.save_pickle("model", "model.pkl", *std::make_shared<LazyGraphModule>(Module("Custom"), g, "Custom"));
    pe.close();
  }
  const std::string path_env = "PATH=" + fs::path(FXPACK_CLI).parent_path().string() + ":" +
                               (std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin:/bin");
  auto shell = [&](const std::string& script) {
    return run_process("/usr/bin/env", {path_env, "/bin/sh", "-e", "-c", script}, dir);
  };
  std::size_t commands = 0;
  for (const fs::path& md : {fs::path(FXPACK_SOURCE_DIR) / "docs" / "cli.md", fs::path(FXPACK_SOURCE_DIR) / "README.md"}) {
    for (const auto& b : doc_blocks(md)) {
      INFO(md.filename().string(), ":", b.line);
      if (b.lang == "console") {
        // "$ command" lines, each followed by its expected output
        std::istringstream in(b.text);
        std::string line, cmd, expected;
        auto finish = [&] {
          if (cmd.empty() || graphviz) return;
          ++commands;
          INFO("$ ", cmd);
          auto r = shell(cmd);
          CHECK(r.err.empty());
          INFO("output:\n", r.out);
          CHECK(matches_with_ellipsis(expected, r.out));
        };
        while (std::getline(in, line)) {
          if (line.starts_with("$ ")) {
            finish();
            cmd = line.substr(2);
            expected.clear();
          } else {
            expected += line + "\n";
          }
        }
        finish();
      } else if (b.lang == "sh" && md.filename() == "cli.md") {
        if (contains(b.text, "dot -T") != graphviz) continue;
        ++commands;
        INFO(b.text);
        auto r = shell(b.text);
        CHECK(r.status == 0);
        CHECK(r.err.empty());
      }
    }
  }
  return commands;
}

TEST_CASE("cli: the examples of docs/cli.md and README.md run as shown") { CHECK(run_doc_examples(false) >= 8); }

TEST_CASE("cli: the Graphviz examples of docs/cli.md run" *
          skip_unless(have_program("dot"), "graphviz's dot is not installed")) {
  CHECK(run_doc_examples(true) >= 1);
}

TEST_CASE("cli: packages with several pickles and other resources") {
  const fs::path p = scratch() / "several.fxpkg";
  {
    PackageExporter pe(p);
    pe.save_pickle("models", "sin.pkl", *trace_reference("seed_sin"));
    pe.save_pickle("models.deep", "mlp.pkl", *trace_reference("mlp"));
    pe.save_text("notes", "readme.txt", "two models\n");
    pe.close();
  }
  auto i = fxpack_cli({"inspect", p.string()});
  CHECK(i.status == 0);
  CHECK(contains(i.out, "\npickle models/deep/mlp.pkl\n  class: MLP\n"));
  CHECK(contains(i.out, "\npickle models/sin.pkl\n  class: <lambda>\n"));
  CHECK(contains(i.out, "│   └── readme.txt\n") == false);  // notes/ is the last folder
  CHECK(contains(i.out, "    └── readme.txt\n"));
  auto ambiguous = fxpack_cli({"code", p.string()});
  CHECK(ambiguous.status == 1);
  CHECK(contains(ambiguous.err, "several pickles ('models/deep/mlp.pkl', 'models/sin.pkl'); name one as PACKAGE RESOURCE"));
  auto one = fxpack_cli({"code", p.string(), "models.deep", "mlp.pkl"});
  CHECK(one.status == 0);
  CHECK(one.out == slurp(reference_dir("mlp") / "code.py"));
  auto run = fxpack_cli({"run", p.string(), "models", "sin.pkl", "--input", "random:2x3"});
  CHECK(run.status == 0);
  CHECK(run.out.starts_with("output: float32 [2, 3]\n"));
  CHECK(fxpack_cli({"verify", p.string()}).status == 0);
  // fxpack -> fxpack keeps both pickles and the text
  const fs::path copy = scratch() / "copy" / "several.fxpkg";
  fs::create_directories(copy.parent_path());
  CHECK(fxpack_cli({"convert", p.string(), copy.string()}).status == 0);
  CHECK(slurp(copy) == slurp(p));
  // a torch.package holds one: the selected pickle
  auto t = fxpack_cli({"convert", p.string(), (scratch() / "one.pt").string(), "models", "sin.pkl"});
  CHECK(t.status == 0);
  CHECK(fxpack_cli({"code", (scratch() / "one.pt").string(), "models", "sin.pkl"}).out ==
        slurp(reference_dir("seed_sin") / "code.py"));
}

namespace {

// Checks that nothing from a hostile archive reached the terminal raw: no control
// characters but newlines (so no ANSI escape, no carriage return), valid UTF-8, and no line
// that claims the archive is ok.
void check_unforged(const Result& r, const std::string& path) {
  for (const std::string* stream : {&r.out, &r.err}) {
    INFO("output:\n", *stream);
    CHECK(is_valid_utf8(*stream));
    bool control = false;
    for (char c : *stream) control = control || ((static_cast<unsigned char>(c) < 0x20 && c != '\n') || c == 0x7f);
    CHECK_FALSE(control);
    std::istringstream lines(*stream);
    for (std::string line; std::getline(lines, line);) CHECK_FALSE(line.starts_with(path + ": ok"));
  }
}

}  // namespace

TEST_CASE("cli: strings from an archive cannot forge output lines or break JSON") {
  // Issue 11 item 5: a storage key with "\n<file>: ok (...)" and an ANSI escape forged an
  // "ok" line of verify; a 0xFF byte in generated code made --json output invalid UTF-8.
  const fs::path dir = scratch() / "forgery";
  fs::create_directories(dir);
  const std::string forged = "\n" + std::string("evil.pkl") + ": ok (fxpack package v1)\x1b[2K\r";
  auto g = std::make_shared<Graph>();
  Node* x = g->placeholder("x");
  Node* y = g->call_function("torch.\xff" "relu" + forged, {x});
  Node* z = g->call_module("leaf", {y});
  g->output(z);
  auto root = std::make_shared<Module>("Root");
  root->register_module("leaf", std::make_shared<Module>("Kind" + forged));
  auto gm = make_graph_module(root, g, {.class_name = "Class" + forged, .graph_module_cls = GraphModuleClass::Lazy});
  spit(dir / "evil.pkl", pickle::dumps(*gm, pickle::PickleFormat::Json));

  // A package whose storage key is the forged line (written record by record: the exporter
  // would never make such a key).
  auto traced = trace_reference("mlp");
  pickle::DumpOptions dump;
  dump.storage_sink = [&](const std::shared_ptr<Storage>&) { return ".data/storages/0" + forged; };
  const std::string evil_pickle = pickle::dumps(*traced, dump);
  auto w = zip::ZipWriter::to_file(dir / "evil.fxpkg");
  const auto add = [&](const std::string& name, std::string_view text) {
    w.add_stored("evil/" + name, std::as_bytes(std::span(text.data(), text.size())));
  };
  add(".data/version", "fxpack.package 1\n");
  add(".data/manifest", "fxpack.manifest 1\npickle model/model.pkl 1\nmodule Linear\n");
  add("model/model.pkl", evil_pickle);
  w.finish();

  for (const char* archive : {"evil.pkl", "evil.fxpkg"}) {
    CAPTURE(archive);
    for (const std::vector<std::string>& cmd : std::vector<std::vector<std::string>>{
             {"verify", archive}, {"inspect", archive}, {"graph", archive}, {"dot", archive}}) {
      CAPTURE(cmd[0]);
      check_unforged(fxpack_cli(cmd, dir), archive);
    }
    for (const char* json_cmd : {"verify", "inspect"}) {
      CAPTURE(json_cmd);
      const Result r = fxpack_cli({json_cmd, "--json", archive}, dir);
      check_unforged(r, archive);
      const rapidjson::Document d = parse_json(r.out);
      CHECK(d.IsObject());
    }
  }
  // The verdict itself is not fooled either.
  CHECK(fxpack_cli({"verify", "evil.fxpkg"}, dir).status == 1);
}
