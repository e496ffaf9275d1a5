// A memory resource that keeps the blocks given back to it, up to a byte limit, and hands
// them out again instead of returning them to the C library. The process has three, for the
// large blocks that a load of a package allocates and frees as a whole: the unpickler's arena
// (for_pickle_trees) and a graph's node and argument chunks (for_graph_nodes,
// for_graph_arguments: detail/graph_chunk.hpp).
//
// Why: a PickleTree's arena is a few large blocks (a model's pickle makes tens of thousands
// of objects: efficientnet_b0's 125 KB pickle about 2.5 MB of them). Blocks that large come
// from mmap or from the top of the heap, and glibc gives them back to the kernel when the
// tree is freed (munmap, or a heap trim, depending on where the heap top falls in that
// process) — so every later load faulted the same ~650 pages in again, and load times split
// into a fast and a slow mode between processes of the same program. Kept here, a repeated
// load reuses pages that are already resident. A graph's chunks are the same story at a
// larger scale (detail/graph_chunk.hpp says what a 10^6-node graph's load paid).
//
// Contract:
//   - a request is rounded up to a power of two of at least 4 KiB (its size class); a block
//     kept in the cache serves only a request of the same class and alignment (the blocks an
//     arena asks for are the same from one load of a pickle to the next);
//   - a block given back is kept, and the oldest kept blocks are freed until the cache holds
//     at most `max_cached_bytes` (counting size classes) and kMaxBlocks blocks; a block larger
//     than the limit is freed at once; the cache frees what it holds when destroyed;
//   - thread-safe: blocks may be taken on one thread and given back on another.
//   - release_all() frees every kept block (blocks in use are not the cache's); the process's
//     caches register it with release_kept_memory() (kept_memory.hpp), so an inference plan's
//     first call takes the blocks back before it packs the model's weights.
// Memory cost: at most `max_cached_bytes` stay allocated (and resident) between loads, until
// the next release_kept_memory(): for the three caches of the process together, at most
// kPickleTreeCacheBytes + kGraphNodeCacheBytes + kGraphArgumentCacheBytes (28 MiB), reached
// once graphs of tens of thousands of nodes have died (a graph that reserves 35,000 nodes
// or more has a first chunk of the 8 MiB class).
// Internal (not a public header): the lowest layer, beside kept_memory.hpp, so that any layer
// may keep blocks in a cache of its own.
#pragma once

#include <cstddef>
#include <memory_resource>
#include <mutex>
#include <vector>

namespace fxpack::detail {

class BlockCache final : public std::pmr::memory_resource {
 public:
  static constexpr std::size_t kMaxBlocks = 64;

  explicit BlockCache(std::size_t max_cached_bytes);
  BlockCache(const BlockCache&) = delete;
  BlockCache& operator=(const BlockCache&) = delete;
  ~BlockCache() override;

  // The size class of a request of `bytes`: the bytes a block given for it holds.
  static std::size_t size_class(std::size_t bytes);
  // Bytes (by size class) held for reuse now.
  std::size_t cached_bytes() const;
  // Frees every block held for reuse.
  void release_all() noexcept;

  // The process-wide cache PickleTree arenas draw from: it keeps at most
  // kPickleTreeCacheBytes (a 16 MiB cache holds the arenas of every zoo model's pickle).
  static constexpr std::size_t kPickleTreeCacheBytes = std::size_t{16} << 20;
  static BlockCache& for_pickle_trees();
  // The process-wide caches of graph chunks (graph_chunk.hpp): nodes and argument lists. Two
  // caches, so that each use has a bound of its own: ~Graph frees the argument chunks and
  // then the node chunks, so one shared cache's oldest-first eviction would keep whichever
  // came last, and the two rarely share a size class (node chunks of 512 KiB and a first one
  // up to 8 MiB, argument chunks up to 1 MiB). ~Graph gives its chunks back newest first, so
  // the node cache keeps a loaded graph's large first chunk, which the next load asks for.
  // The bounds are small on purpose. Measured at 10^5 and 10^6 nodes, package load was the
  // same with a node bound of 8, 32, 64 or 128 MiB and an argument bound of 0 to 32 (0.22-0.24
  // CPU µs/node against 0.27-0.30 without the caches; bench_package at 10^6: 102,000 page
  // faults against 323,000; peak RSS 361 MiB against 357): once one kept block sits above
  // them, glibc keeps the freed blocks beyond the bound in its heap too (an allocator's
  // behaviour, measured, not promised), and the next load reuses them. Larger bounds only
  // withhold memory from other large allocations, which then fault in fresh pages: dumps of
  // a 10^6-node module (a 19 MB string) took 0.050 CPU µs/node with bounds of 64 and 32 MiB,
  // 0.031 with 8 and 4, 0.028 without caches.
  static constexpr std::size_t kGraphNodeCacheBytes = std::size_t{8} << 20;
  static BlockCache& for_graph_nodes();
  static constexpr std::size_t kGraphArgumentCacheBytes = std::size_t{4} << 20;
  static BlockCache& for_graph_arguments();

 private:
  struct Block {
    void* p;
    std::size_t size;   // size class
    std::size_t align;  // alignment it was allocated with
  };
  void* do_allocate(std::size_t bytes, std::size_t align) override;
  void do_deallocate(void* p, std::size_t bytes, std::size_t align) override;
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }

  const std::size_t max_cached_bytes_;
  mutable std::mutex mutex_;
  std::vector<Block> blocks_;  // oldest first; capacity kMaxBlocks, reserved (giving back never allocates)
  std::size_t cached_bytes_ = 0;
};

}  // namespace fxpack::detail
