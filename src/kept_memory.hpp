// Memory kept for speed, given back when the process's need changes.
//
// Some parts of the library keep memory they no longer use so that a later request of the same
// kind finds it ready (the BlockCaches of block_cache.hpp keep the unpickler's arena blocks and
// a dead graph's large chunks, whose pages stay resident, so that the next load does not fault
// them in again), and so does the C library (freed heap). Such memory is worth keeping only
// until the process needs more of its own: an inference plan's first call, which allocates a
// model's packed weights, calls release_kept_memory() before it packs, so that the kept blocks
// go back to the C library (and the weights can reuse them) instead of adding to the call's
// peak (efficientnet_b0: 2.8 MiB of its 37 MiB), and again after it, when its own buffers are
// freed.
//
// Contract:
//   - register_kept_memory(f): `f` gives back what its owner keeps; called by every later
//     release_kept_memory(), on the thread that calls it. `f` must not throw, must be safe to
//     call at any time from any thread, and must live as long as the process (a function of a
//     cache with static storage duration). Registering the same `f` twice calls it twice.
//   - release_kept_memory(): calls each registered function once, then gives the C library's
//     free heap pages back to the operating system (glibc's malloc_trim); what they give back
//     may be kept again by later use (a later load fills the cache again). Costs a walk over
//     the heap's free chunks: for moments like a first call, not for every call.
// Internal (not a public header): the lowest layer, so that any layer may register.
#pragma once

namespace fxpack::detail {

using ReleaseKeptMemory = void (*)() noexcept;

void register_kept_memory(ReleaseKeptMemory release);
void release_kept_memory() noexcept;

}  // namespace fxpack::detail
