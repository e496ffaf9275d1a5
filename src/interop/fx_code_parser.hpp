// A parser for the Python that torch.fx generates, rebuilding the exact Graph.
//
// Accepted input: optionally the import header of an `fx-generated/_N.py` module (`import
// a.b [as c]`, `from a import b [as c]`, `NoneType = type(None)`, blank and comment
// lines), then
//
//     def forward(self, x, y):
//         name = <operation>;  a = b = None      (the free list is optional)
//         ...
//         return <value>
//
// where <operation> is one of
//     self.a.b(args)  getattr(self.layers, "0")(args)      call_module  target "a.b" / "layers.0"
//     self.a.b        getattr(self, "0")                   get_attr
//     v.method(args)                                       call_method  (v a node or a value)
//     torch.relu(args)  getattr(v, 'x')  len(v)            call_function "torch.relu",
//                                                          "builtins.getattr", "builtins.len"
//     v.attr                                               call_function builtins.getattr(v, 'attr')
//     a + b  a - b  a * b  a / b  a // b  a % b  a ** b  a @ b  (and << >> & | ^ == != < > <= >=)
//     -a  +a  ~a                                           call_function operator.add, ... operator.neg
//     v[i]  v[(slice(None, 2, None), 0)]  v[1:2, 0]        call_function operator.getitem
// and args are values: node names, ints, floats (incl. inf, nan, -inf), strings, True,
// False, None, tuples, lists, dicts with str keys, `torch.float32`-style dtypes,
// `device(type='cpu')`, `torch.strided`, `torch.contiguous_format`, `slice(a, b, c)`, and
// `k = v` keyword arguments. Leading `n = x` lines name placeholders whose node name differs
// from the parameter. Names are kept exactly, so python_code(graph) gives the source back.
//
// Anything outside this subset (nested operations, unknown names, a name assigned twice or
// used after it was freed, statements other than the above, ...) is a FormatError saying
// "<where> line L, column C: ...". Nothing is ever executed.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "fxpack/graph.hpp"

namespace fxpack::interop {

struct FxParseLimits {
  std::size_t max_expression_depth = 64;  // nesting of brackets/operators in one expression
  std::size_t max_source_bytes = std::size_t{1} << 30;
};

std::shared_ptr<Graph> parse_fx_code(std::string_view source, std::string_view where = "fx code",
                                     const FxParseLimits& limits = {});

}  // namespace fxpack::interop
