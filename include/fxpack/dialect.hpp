// Codegen dialects: which PyTorch's torch.fx a graph's generated code and names follow.
//
// torch.fx's output changed between PyTorch versions, so "the code fx generates" depends on
// the PyTorch that generates it. A Graph carries its dialect; code(), print_readable() and the
// names the graph hands out follow it byte for byte:
//
//   Torch1_13  PyTorch 1.13 (Debian 12's python3-torch), the reference of fixtures/reference/.
//   Torch2     PyTorch 2.x, checked against 2.6 (Debian 13). Differences from 1.13:
//              - a node nothing uses is freed on its own line: `mul = x * 3.0;  mul = None`
//                (after the values whose last use it is: `eq = _assert = None`);
//              - names: a base remembers its highest suffix (relu_5, relu, then relu_6 where
//                1.13 gives relu_1), in the graph and in the generated code;
//              - print_readable: no blank line before the first stack-trace comment, the
//                comment is ` # File: f.py:3 in fn, code: ...` (innermost frame, with the
//                function name, one leading space) or `# No stacktrace found for following
//                nodes` (no trailing space); 1.13 writes `# context, File: f.py:3, code: ...`
//                (outermost frame, without the function name);
//              - a tensor argument prints as `torch.Tensor(size=[2, 3], dtype=float32)`;
//              - functions of torch._dynamo and torch._inductor are imported, not written
//                torch.-qualified.
//
// A torch.package archive is read in the dialect of the PyTorch that wrote it (2.x archives
// carry `.data/serialization_id` and `byteorder` records), fxpack's own archives record the
// dialect they were generated in, and every other new Graph (symbolic_trace, make_fx, a graph
// built by hand) takes the process-wide default, which set_default_dialect() changes.
#pragma once

#include <cstdint>
#include <string_view>

namespace fxpack {

enum class Dialect : std::uint8_t {
  Torch1_13 = 0,
  Torch2 = 1,
};
inline constexpr int kDialectCount = 2;

// "torch-1.13", "torch-2".
std::string_view dialect_name(Dialect dialect);
// Parses a name dialect_name() gives; throws fxpack::Error naming the unknown string.
Dialect parse_dialect(std::string_view name);

// The dialect of new graphs (initially Torch1_13). Thread-safe.
Dialect default_dialect();
void set_default_dialect(Dialect dialect);

}  // namespace fxpack
