#include "block_cache.hpp"

#include <algorithm>
#include <bit>
#include <new>

#include "kept_memory.hpp"

namespace fxpack::detail {

namespace {

std::size_t block_alignment(std::size_t align) {
  return std::max<std::size_t>(align, __STDCPP_DEFAULT_NEW_ALIGNMENT__);
}

void free_block(void* p, std::size_t align) { ::operator delete(p, std::align_val_t(align)); }

}  // namespace

std::size_t BlockCache::size_class(std::size_t bytes) { return std::bit_ceil(std::max<std::size_t>(bytes, 4096)); }

BlockCache::BlockCache(std::size_t max_cached_bytes) : max_cached_bytes_(max_cached_bytes) {
  blocks_.reserve(kMaxBlocks);
}

BlockCache::~BlockCache() {
  for (const Block& b : blocks_) free_block(b.p, b.align);
}

std::size_t BlockCache::cached_bytes() const {
  std::lock_guard lock(mutex_);
  return cached_bytes_;
}

void BlockCache::release_all() noexcept {
  std::lock_guard lock(mutex_);
  for (const Block& b : blocks_) free_block(b.p, b.align);
  blocks_.clear();
  cached_bytes_ = 0;
}

namespace {

// One process-wide cache per `Use`, of `Bytes` at most. Never destroyed: the kept-memory
// registry holds a call into it, and a thread still loading or running at exit may use
// either after static destructors have run.
template <int Use, std::size_t Bytes>
BlockCache& process_cache() {
  static BlockCache* cache = new BlockCache(Bytes);
  static const bool registered = (register_kept_memory([]() noexcept { cache->release_all(); }), true);
  (void)registered;
  return *cache;
}

}  // namespace

BlockCache& BlockCache::for_pickle_trees() { return process_cache<0, kPickleTreeCacheBytes>(); }
BlockCache& BlockCache::for_graph_nodes() { return process_cache<1, kGraphNodeCacheBytes>(); }
BlockCache& BlockCache::for_graph_arguments() { return process_cache<2, kGraphArgumentCacheBytes>(); }

void* BlockCache::do_allocate(std::size_t bytes, std::size_t align) {
  const std::size_t size = size_class(bytes), alignment = block_alignment(align);
  {
    std::lock_guard lock(mutex_);
    for (auto it = blocks_.begin(); it != blocks_.end(); ++it) {
      if (it->size != size || it->align != alignment) continue;
      void* p = it->p;
      cached_bytes_ -= size;
      blocks_.erase(it);
      return p;
    }
  }
  return ::operator new(size, std::align_val_t(alignment));
}

void BlockCache::do_deallocate(void* p, std::size_t bytes, std::size_t align) {
  const std::size_t size = size_class(bytes), alignment = block_alignment(align);
  if (size > max_cached_bytes_) {
    free_block(p, alignment);
    return;
  }
  std::lock_guard lock(mutex_);
  while (!blocks_.empty() && (cached_bytes_ + size > max_cached_bytes_ || blocks_.size() == kMaxBlocks)) {
    free_block(blocks_.front().p, blocks_.front().align);
    cached_bytes_ -= blocks_.front().size;
    blocks_.erase(blocks_.begin());
  }
  blocks_.push_back({p, size, alignment});
  cached_bytes_ += size;
}

}  // namespace fxpack::detail
