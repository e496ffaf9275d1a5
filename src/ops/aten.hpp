// The aten-level ops that make_fx graphs call (`torch.ops.aten.<op>.<overload>`), as
// call_function kernels, plus fxpack's own op-level helpers (`fxpack.fused_elementwise`,
// made by compile's fusion pass).
//
// register_builtin_ops calls register_aten_ops, so every process that loads a make_fx or
// compiled graph (from a package, say) can run it without having traced anything.
#pragma once

#include "fxpack/ops.hpp"

namespace fxpack::ops {

void register_aten_ops(OpRegistry& registry);

}  // namespace fxpack::ops
