// Code generation: the Python source torch.fx would generate for a Graph, byte for byte, in
// the graph's dialect (dialect.hpp: PyTorch 1.13 or 2.x).
//
// The form (fx's CodeGen._gen_python_code): a newline, the wrap lines of wrapped functions
// (`torch.fx._symbolic_trace.wrap("torchvision_ops_stochastic_depth_stochastic_depth")`, one
// per function whose call_function nodes carry meta `is_wrapped` True), a blank line,
// `def forward(self, <placeholders>) -> <output type>:`, one line per node indented by four
// spaces, `;  a = b = None` after the last use of each value, `return <value>`, then a last
// line of four spaces. Placeholders print with their type and default (`x : torch.Tensor`,
// `n : int = 3`, `*args`); a node with a type prints it (`add : torch.Tensor = x + 1`).
// operator.* targets print infix (`add = x + 3.0`), in-place ones as statements
// (`x += y;  iadd = x`); other call_function targets through the name the source gives
// them: torch functions as they are (`torch.relu`), builtins bare (`getattr`), anything
// else as a global named after its qualified name (`math_sqrt`, `_operator_not_`), which
// the module that runs the code imports (`from math import sqrt as math_sqrt`: globals
// below). Paths that are not identifiers print as `getattr(self, "0")`, kwargs as `k = v`.
// Names are made unique in one namespace shared by nodes and globals, as fx does (a node
// named `math_sqrt` makes the global `math_sqrt_1`).
//
// The verbose form (print_readable) adds, per run of nodes with the same meta `stack_trace`,
// a comment summarising it, or `# No stacktrace found for following nodes` (see dialect.hpp
// for how 1.13 and 2.x differ).
//
// The source is for people and for interop with PyTorch; fxpack never executes it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "fxpack/dialect.hpp"
#include "fxpack/graph.hpp"

namespace fxpack {

// Bumped whenever the generated text for some graph changes; stored in archives beside
// the source hash so a loader can tell a generator change from corruption.
// 2: node types, placeholder defaults, wrap lines, globals for non-torch functions, dialects.
inline constexpr int kCodegenVersion = 2;

struct CodegenOptions {
  bool verbose = false;            // print_readable's form, with stack-trace comments
  std::optional<Dialect> dialect;  // the graph's when unset
  bool line_nodes = true;          // fill PythonCode::line_nodes (else left empty)
};

struct PythonCode {
  std::string src;  // fx's gm.code (verbose: the text print_readable indents)
  // The globals the source refers to, first registration first: fx's custom builtins (inf,
  // nan, NoneType, torch, device, fx_pytree, pytree), then the names it gave to functions and
  // types (`math_sqrt` for "math.sqrt", `getattr` for "builtins.getattr"). Pairs of (name,
  // qualified name of the object); torch.-qualified names are not globals.
  std::vector<std::pair<std::string, std::string>> globals;
  // The node index (program order) each line of the function body comes from, line 1 first
  // (-1: none): fx 2.x's _lineno_map, keyed by body line number.
  std::vector<std::int64_t> line_nodes;
};

PythonCode generate_python_code(const Graph& graph, const CodegenOptions& options = {});
// The same, with `uses`: graph.last_uses() as the caller already made it for `graph` as it
// is now (a GraphModule's recompile makes one analysis for its code and its plan); a stale
// one is a GraphError (LastUses::check_current). The source is written in `buffer`'s memory
// (its text is dropped): given a previous source's, regenerating a large one writes pages
// already mapped (a GraphModule's recompile; ~54 MB at 10^6 nodes) rather than faulting in
// fresh ones.
PythonCode generate_python_code(const Graph& graph, const LastUses& uses, const CodegenOptions& options = {},
                                std::string buffer = {});
// The `code` of a GraphModule over `graph`, in the graph's dialect.
std::string python_code(const Graph& graph, bool verbose = false);
// print_readable's text for a module of class `class_name`, in the graph's dialect.
std::string readable_code(const Graph& graph, const std::string& class_name);
// 64-bit FNV-1a of the source, as stored in archives.
std::uint64_t source_hash(const std::string& source);

}  // namespace fxpack
