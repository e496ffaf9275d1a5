// GraphChunk: a block of raw storage for a graph's nodes (Graph) or its nodes' argument lists
// (detail::ValueArena), which a large graph takes from, and gives back to, memory the process
// keeps for the next graph.
//
// Why: a large graph's chunks are large blocks (a Chain(10^6) graph loaded from a package: 120
// MB of nodes, a first reserved chunk of 7.5 MB and then chunks of 480 KB, and 32 MB of
// arguments in 1 MB chunks), and glibc gives blocks that
// large back to the kernel when they are freed (munmap, or a heap trim), so every later graph
// of that size — the next load of the same package, the next trace — faulted all its pages in
// again: package load took 0.34-0.45 CPU µs/node at 10^5 and 10^6 nodes against 0.27-0.29 at
// 10^3 and 10^4. Kept, the next graph reuses pages that are already resident (the kept blocks
// are a few; with them at the heap top glibc keeps the rest of a dead graph's chunks in its
// heap too: src/block_cache.hpp says what was measured).
//
// Contract:
//   - allocate_graph_chunk(use, bytes) gives a chunk of at least `bytes` (> 0) bytes, aligned
//     for any fundamental type; its deleter's bytes() says how many it holds, all usable:
//     exactly `bytes` under kKeptChunkBytes, else `bytes` rounded up to a power of two (the
//     size classes of the cache: a request is served by a kept block of its class);
//   - a chunk of kKeptChunkBytes or more goes back, when freed, to the process-wide cache of
//     its use (one for nodes, one for arguments: src/block_cache.hpp), which keeps it for a
//     later chunk of its size class, the oldest kept ones freed beyond the cache's bound
//     (nodes 8 MiB, arguments 4 MiB); a smaller one goes back to the C library at once
//     (glibc keeps blocks that small in its heap for the next malloc anyway);
//   - thread-safe: chunks may be allocated and freed on any thread;
//   - memory cost: up to 12 MiB stays allocated (and resident) after graphs die, until an
//     inference plan's first call gives it back (release_kept_memory, src/kept_memory.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace fxpack::detail {

// Which cache a chunk comes from and goes back to.
enum class GraphChunkUse : std::uint8_t { Nodes, Arguments };

// A chunk knows its size and cache, which freeing it needs: a deleter with state.
class GraphChunkDeleter {
 public:
  GraphChunkDeleter() = default;
  GraphChunkDeleter(GraphChunkUse use, std::size_t bytes) : bytes_(bytes), use_(use) {}
  std::size_t bytes() const { return bytes_; }
  void operator()(std::byte* chunk) const noexcept;

 private:
  std::size_t bytes_ = 0;
  GraphChunkUse use_ = GraphChunkUse::Nodes;
};

using GraphChunk = std::unique_ptr<std::byte[], GraphChunkDeleter>;

// Chunks this large and larger are kept for the next graph when freed.
inline constexpr std::size_t kKeptChunkBytes = std::size_t{64} << 10;

GraphChunk allocate_graph_chunk(GraphChunkUse use, std::size_t bytes);

}  // namespace fxpack::detail
