// The content hash of a Graph: a 64-bit hash of exactly what code generation reads, taken in
// one pass over the nodes without generating any source. Pickle format 3 stores it where
// formats 1 and 2 stored the hash of the generated source (codegen.hpp's source_hash), so
// saving a module never generates its code, and a loader can tell whether the graph it
// rebuilt is the one that was saved, and whether it was saved by another code generator.
//
// == What is hashed ==
//
// kCodegenVersion (so that a code generator whose text may differ gives another hash), the
// graph's dialect, the node count, then per node in program order: op, name, target, type
// expression, whether a call_function node's meta `is_wrapped` is True (the wrap lines),
// args and kwargs. Nothing else of a graph reaches the generated code (python_code): other
// meta, users (they follow from the args) and insertion points do not change the hash.
//
// == The bytes (a promise: golden pickles store this hash and load forever) ==
//
// 64-bit FNV-1a (the function source_hash uses) over: integers as 8 little-endian bytes,
// one-byte enums and flags as one byte, strings as their length (8 bytes) and bytes, a
// double as its IEEE-754 bit pattern (8 bytes). The sequence:
//
//   codegen version, dialect (byte), node count
//   per node: op (byte), name, target, type, is_wrapped (byte 0/1), arg count, each arg
//             value, kwarg count, each kwarg as key then value
//   value:    kind (Value::Kind, byte) then: bool a byte; int 8 bytes; double its bits;
//             string, device type (then index), the string; dtype, layout, memory format a
//             byte; node reference the node's name; list and tuple the count then the items;
//             dict the count then key, value pairs; slice per part a tag (0 none, 1 int then
//             the int, 2 node then its name); tensor a defined byte, then dtype (byte), rank
//             and dims, the byte count and the data bytes; none and Ellipsis nothing more.
//
// Changing any of this (or what codegen reads) is a pickle format change: bump
// kCodegenVersion or the pickle format version as docs/format.md says.
#pragma once

#include <cstdint>

#include "fxpack/graph.hpp"

namespace fxpack {

std::uint64_t content_hash(const Graph& graph);

}  // namespace fxpack
