// fxpack: inspect, print, draw, run, verify and convert fxpack packages, torch.package
// archives of fx GraphModules, and bare fxpack pickles.
#include <cstring>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "cli.hpp"

namespace {

constexpr const char* kUsage = R"HELP(usage: fxpack <command> [options] ARCHIVE ...

ARCHIVE is an fxpack package (.fxpkg), a torch.package archive of an fx GraphModule
(.pt, written by PyTorch or by fxpack), or a bare fxpack pickle (.pkl); the kind is
recognised from the content. Nothing from an archive is ever executed.

commands:
  inspect ARCHIVE [--json]                  format, records, modules, sizes, required ops
  code    ARCHIVE [PACKAGE RESOURCE]        the generated Python-style source
  graph   ARCHIVE [PACKAGE RESOURCE]        a node table (fx's print_tabular)
  dot     ARCHIVE [PACKAGE RESOURCE]        Graphviz DOT: fxpack dot m.fxpkg | dot -Tsvg > m.svg
  run     ARCHIVE --input FILE|random:SHAPE[:DTYPE] ... [--output FILE.npy]
                                            load in this process, run, print or save outputs
  verify  ARCHIVE [--json]                  CRCs, manifest, graph lint, source hash
  convert IN OUT [--format FORMAT]          between pickle formats, packages and torch.package

`fxpack <command> --help` describes each command. Exit status: 0 success, 1 a problem
was found or the command failed, 2 a usage error.
)HELP";

}  // namespace

int main(int argc, char** argv) {
  using namespace fxpack::cli;
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string cmd = args.front();
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    std::cout << kUsage;
    return 0;
  }
  if (cmd == "--version") {
    std::cout << "fxpack " << fxpack::version() << " (package format 1, pickle format " << fxpack::pickle::kFormatVersion
              << ", codegen " << fxpack::kCodegenVersion << ")\n";
    return 0;
  }
  args.erase(args.begin());
  int (*fn)(const std::vector<std::string>&) = nullptr;
  if (cmd == "inspect") fn = cmd_inspect;
  else if (cmd == "code") fn = cmd_code;
  else if (cmd == "graph") fn = cmd_graph;
  else if (cmd == "dot") fn = cmd_dot;
  else if (cmd == "run") fn = cmd_run;
  else if (cmd == "verify") fn = cmd_verify;
  else if (cmd == "convert") fn = cmd_convert;
  if (!fn) {
    std::cerr << "fxpack: unknown command " << fxpack::quote(cmd) << "\nTry 'fxpack --help'.\n";
    return 2;
  }
  try {
    int rc = fn(args);
    std::cout.flush();
    if (!std::cout) {
      std::cerr << "fxpack " << cmd << ": error writing to standard output\n";
      return 1;
    }
    return rc;
  } catch (const UsageError& e) {
    std::cerr << "fxpack " << cmd << ": " << fxpack::printable(e.what()) << "\nTry 'fxpack " << cmd << " --help'.\n";
    return 2;
  } catch (const std::bad_alloc&) {
    std::cerr << "fxpack " << cmd << ": error: out of memory\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "fxpack " << cmd << ": error: " << fxpack::printable(e.what()) << "\n";
    return 1;
  } catch (...) {
    std::cerr << "fxpack " << cmd << ": error: unknown failure\n";
    return 1;
  }
}
