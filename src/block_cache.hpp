// A memory resource for the unpickler's arena that keeps the blocks given back to it, up to a
// byte limit, and hands them out again instead of returning them to the C library.
//
// Why: a PickleTree's arena is a few large blocks (a model's pickle makes tens of thousands
// of objects: efficientnet_b0's 125 KB pickle about 2.5 MB of them). Blocks that large come
// from mmap or from the top of the heap, and glibc gives them back to the kernel when the
// tree is freed (munmap, or a heap trim, depending on where the heap top falls in that
// process) — so every later load faulted the same ~650 pages in again, and load times split
// into a fast and a slow mode between processes of the same program. Kept here, a repeated
// load reuses pages that are already resident.
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
//     cache registers it with release_kept_memory() (kept_memory.hpp), so an inference plan's
//     first call takes the blocks back before it packs the model's weights.
// Memory cost: at most `max_cached_bytes` stay allocated (and resident) between loads, until
// the next release_kept_memory().
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

  // Bytes (by size class) held for reuse now.
  std::size_t cached_bytes() const;
  // Frees every block held for reuse.
  void release_all() noexcept;

  // The process-wide cache PickleTree arenas draw from: it keeps at most
  // kPickleTreeCacheBytes (a 16 MiB cache holds the arenas of every zoo model's pickle).
  static constexpr std::size_t kPickleTreeCacheBytes = std::size_t{16} << 20;
  static BlockCache& for_pickle_trees();

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
