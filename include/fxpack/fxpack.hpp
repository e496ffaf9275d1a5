// fxpack: computation graphs that are traced, transformed, saved to archives, and loaded
// and run in another process. Include this for the whole public API.
#pragma once

#include "fxpack/codegen.hpp"
#include "fxpack/compile.hpp"
#include "fxpack/disable.hpp"
#include "fxpack/dtype.hpp"
#include "fxpack/errors.hpp"
#include "fxpack/functional.hpp"
#include "fxpack/graph.hpp"
#include "fxpack/graph_module.hpp"
#include "fxpack/make_fx.hpp"
#include "fxpack/module.hpp"
#include "fxpack/node.hpp"
#include "fxpack/ops.hpp"
#include "fxpack/package.hpp"
#include "fxpack/pickle.hpp"
#include "fxpack/plan.hpp"
#include "fxpack/tensor.hpp"
#include "fxpack/threads.hpp"
#include "fxpack/trace.hpp"
#include "fxpack/value.hpp"
#include "fxpack/version.hpp"
