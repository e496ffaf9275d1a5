// Code generation: the Python source torch.fx would generate for a Graph, byte for byte.
//
// Format (torch 1.13): three newlines, `def forward(self, <placeholders>):`, one line per
// node indented by four spaces, `;  a = b = None` after the last use of each value,
// operator.* targets printed infix (`add = x + 3.0`), `getattr(self, "0")` for path parts
// that are not identifiers, kwargs as `k = v`, `return <value>`, then a last line of four
// spaces. The verbose form (print_readable) adds stack-trace summaries from node meta
// `stack_trace`, or `# No stacktrace found for following nodes`.
//
// The source is for people and for interop with PyTorch; fxpack never executes it.
#pragma once

#include <string>

#include "fxpack/graph.hpp"

namespace fxpack {

// Bumped whenever the generated text for some graph changes; stored in archives beside
// the source hash so a loader can tell a generator change from corruption.
inline constexpr int kCodegenVersion = 1;

// The `code` of a GraphModule over `graph`.
std::string python_code(const Graph& graph, bool verbose = false);
// torch 1.13's print_readable text for a module of class `class_name`.
std::string readable_code(const Graph& graph, const std::string& class_name);
// 64-bit FNV-1a of the source, as stored in archives.
std::uint64_t source_hash(const std::string& source);

}  // namespace fxpack
