// Intra-op threads: how many threads one kernel call may use.
//
// The convolutions, matrix products, pooling and normalisation kernels (oneDNN) split their
// work over this many threads. The setting is process-wide; it takes effect for the next
// kernel call of any thread (a plan specialised for one thread count keeps its primitives
// and builds another set for a new count, so changing it never invalidates a module).
//
// The default, read once on first use, is the environment variable FXPACK_NUM_THREADS when
// set (a positive integer; anything else is an error naming the variable and quoting its
// value), otherwise the number of CPUs this process may run on (sched_getaffinity), so a
// process confined by `taskset` or a container's cpuset does not oversubscribe its cores.
//
// Calls of one module from several threads at once are correct whatever the setting; each
// call then uses up to num_threads() threads of its own.
#pragma once

namespace fxpack {

// Sets the thread count for the following kernel calls; n must be >= 1 (throws Error).
void set_num_threads(int n);

// The thread count in effect (>= 1). Throws Error when FXPACK_NUM_THREADS is malformed and
// set_num_threads has not been called.
int num_threads();

// The number of CPUs this process may run on (sched_getaffinity; 1 if unknown).
int available_cpus();

}  // namespace fxpack
