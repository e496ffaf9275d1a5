// A parser for the Python that torch.fx generates, rebuilding the exact Graph.
//
// Accepted input: optionally the import block of an `fx-generated/_N.py` module (`import a.b
// [as c]`, `from a import b [as c]`, `NoneType = type(None)`, blank and comment lines) and
// the wrap lines of wrapped functions (`torch.fx._symbolic_trace.wrap("name")`), then
//
//     def forward(self, x : torch.Tensor, n : int = 3, *args) -> typing_Tuple[torch.Tensor,int]:
//         name = <operation>;  a = b = None      (the free list is optional)
//         name : <type> = <operation>
//         a += b;  name = a                      (fx's in-place form; also `a[i] = v;  name = a`)
//         ...
//         return <value>
//
// where <operation> is one of
//     self.a.b(args)  getattr(self.layers, "0")(args)      call_module  target "a.b" / "layers.0"
//     self.a.b        getattr(self, "0")                   get_attr
//     v.method(args)                                       call_method  (v a node or a value)
//     torch.relu(args)  getattr(v, 'x')  len(v)            call_function "torch.relu",
//     math_sqrt(args)                                      "builtins.getattr", "builtins.len",
//                                                          "math.sqrt" (a global of the import block)
//     v.attr                                               call_function builtins.getattr(v, 'attr')
//     a + b  a - b  a * b  a / b  a // b  a % b  a ** b  a @ b  (and << >> & | ^ == != < > <= >=)
//     -a  +a  ~a                                           call_function operator.add, ... operator.neg
//     v[i]  v[(slice(None, 2, None), 0)]  v[1:2, 0]        call_function operator.getitem
// and args are values: node names, ints, floats (incl. inf, nan, -inf), strings, True,
// False, None, Ellipsis, tuples, lists, dicts with str keys, `torch.float32`-style dtypes,
// `device(type='cpu')`, `torch.strided`, `torch.contiguous_format`, `slice(a, b, c)`, and
// `k = v` keyword arguments. Leading `n = x` lines name placeholders whose node name differs
// from the parameter. Names are kept exactly, so python_code(graph) gives the source back.
//
// Globals resolve as in the module PyTorch runs: a name of the import block stands for what
// it imports (`torchvision_ops_stochastic_depth_stochastic_depth` is
// `torchvision.ops.stochastic_depth.stochastic_depth`), fx's custom builtins (torch, device,
// inf, nan, NoneType) and Python's builtins are always there; call_function targets and node
// types (Node::type) are the qualified names. A call of a wrapped global gets meta
// `is_wrapped` True, as fx's wrap() sets it. Anything else — an unknown global, a nested
// operation, a name assigned twice or used after it was freed, a statement outside the
// subset — is a FormatError saying "<where> line L, column C: ..."; names that could run code
// (`__import__`, `exec`, `eval`, `compile`, `open`, ...) and class statements are refused by
// name. Nothing is ever executed.
//
// Bounds (FxParseLimits): the source size, each line's length, each identifier's length, and
// the height of each expression — every bracket, operator, postfix step (`.a`, `[0]`, `()`)
// and every operand of a chain (`a + b + c`) counts — so the recursive descent and every walk
// over an expression stay within max_expression_depth levels (keep it small: it bounds stack
// use).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "fxpack/dialect.hpp"
#include "fxpack/graph.hpp"

namespace fxpack::interop {

struct FxParseLimits {
  std::size_t max_expression_depth = 64;  // height of one expression (see above)
  std::size_t max_source_bytes = std::size_t{1} << 30;
  std::size_t max_line_bytes = std::size_t{1} << 20;
  std::size_t max_identifier_bytes = 4096;
};

// The graph of `source`, in `dialect` (the dialect of the PyTorch that wrote it).
std::shared_ptr<Graph> parse_fx_code(std::string_view source, std::string_view where = "fx code",
                                     const FxParseLimits& limits = {}, Dialect dialect = default_dialect());

}  // namespace fxpack::interop
