// The oneDNN side of the kernels: one CPU engine, a stream per calling thread, the thread
// count applied to the calling thread, argument passing without per-call maps, and errors
// turned into OpError. Internal to src/ops and src/inference.
//
// oneDNN (Debian's libdnnl 2.6, OpenMP runtime) picks its kernels for the CPU it runs on
// (AVX-512, AVX2, SSE4.1) when a primitive is created, so one binary is fast on every x86-64.
// The OpenMP thread count is a per-thread setting: `use_threads()` sets the calling thread's
// to fxpack::num_threads() before a primitive is created or run, and a primitive is only ever
// run with the thread count it was created with (oneDNN sizes its work split and scratchpad
// for it).
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <initializer_list>
#include <span>
#include <string>

#include "fxpack/tensor.hpp"

namespace fxpack::ops::dnnl_backend {

using dnnl::memory;
using Dims = memory::dims;

const dnnl::engine& engine();
// A CPU stream for the calling thread (streams are not shared between threads).
dnnl::stream& stream();

// Sets the calling thread's OpenMP thread count to fxpack::num_threads(); returns it.
int use_threads();

// Runs a primitive through the C API with a caller-owned argument array.
void execute(const dnnl::primitive& p, std::span<const dnnl_exec_arg_t> args, const char* op);
void execute(const dnnl::primitive& p, std::initializer_list<dnnl_exec_arg_t> args, const char* op);

// Throws OpError "<op>: oneDNN: <what>".
[[noreturn]] void fail(const char* op, const dnnl::error& e);

Dims dims_of(const Shape& s);
// Dense row-major float32 memory descriptor.
memory::desc plain_md(const Dims& dims);
// A memory object over existing bytes (oneDNN takes a non-const handle; inputs are only read).
memory wrap(const memory::desc& md, const void* data);
memory wrap(const Tensor& t);  // a float32 tensor

// True when oneDNN should run a float32 op of this many elements (below it, the call
// overhead of a primitive outweighs its speed).
bool worth_it(std::int64_t elements);

}  // namespace fxpack::ops::dnnl_backend
