// Registration of fxpack's built-in kernels and module kinds.
//
// OpRegistry::global() calls register_builtin_ops once, on first use. (No static
// registration objects: they are dropped when the library is linked statically.)
#pragma once

#include "fxpack/ops.hpp"

namespace fxpack::ops {

void register_builtin_ops(OpRegistry& registry);

// The parts, one per source file (called by register_builtin_ops).
void register_elementwise_ops(OpRegistry& registry);
void register_reduce_ops(OpRegistry& registry);
void register_shape_ops(OpRegistry& registry);
void register_linalg_ops(OpRegistry& registry);
void register_nn_ops(OpRegistry& registry);
void register_module_kinds(OpRegistry& registry);

}  // namespace fxpack::ops
