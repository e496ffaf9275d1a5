#include "fxpack/detail/graph_chunk.hpp"

#include "block_cache.hpp"

namespace fxpack::detail {

namespace {
BlockCache& cache_for(GraphChunkUse use) {
  return use == GraphChunkUse::Nodes ? BlockCache::for_graph_nodes() : BlockCache::for_graph_arguments();
}
}  // namespace

GraphChunk allocate_graph_chunk(GraphChunkUse use, std::size_t bytes) {
  if (bytes < kKeptChunkBytes) return GraphChunk(new std::byte[bytes], GraphChunkDeleter(use, bytes));
  const std::size_t size = BlockCache::size_class(bytes);
  return GraphChunk(static_cast<std::byte*>(cache_for(use).allocate(size)), GraphChunkDeleter(use, size));
}

void GraphChunkDeleter::operator()(std::byte* chunk) const noexcept {
  if (bytes_ < kKeptChunkBytes)
    delete[] chunk;
  else
    cache_for(use_).deallocate(chunk, bytes_);
}

}  // namespace fxpack::detail
