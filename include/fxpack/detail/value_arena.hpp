// ValueArena: where a graph keeps its nodes' argument lists — runs of Values, back to back
// in chunks the graph owns, handed out and taken back by length.
//
// Why: as a std::vector<Value> per node, an argument list cost a 24-byte header in the node
// and a heap block of its own (a 32- to 96-byte malloc chunk for the one or two arguments
// most nodes have): at 10^6 nodes about 90 MB, over a third of the graph. Here a node keeps
// a pointer and a count, its Values sit right after the previous node's in the chunk being
// filled, building a graph calls malloc once per chunk rather than once per node, and a walk
// over the nodes reads their arguments in order.
//
// A run given back (an edited or erased node's list) is kept for the next run of the same
// length, on a free list per length threaded through the runs' own memory, so editing a
// graph reuses its memory instead of growing the arena without bound. Memory goes back to
// the system when the arena is destroyed. The arena constructs and destroys no Value: its
// user does (Node::store_args, Node::release_args).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "fxpack/value.hpp"

namespace fxpack::detail {

class ValueArena {
 public:
  ValueArena() = default;
  ValueArena(const ValueArena&) = delete;
  ValueArena& operator=(const ValueArena&) = delete;

  // Storage for `n` (> 0) Values, not constructed.
  Value* allocate(std::uint32_t n);
  // Takes back a run that allocate(n) gave, its Values already destroyed.
  void release(Value* run, std::uint32_t n) noexcept;
  // Room for `values` more Values in one chunk (up to kMaxChunkValues), for a graph about
  // to grow by a known number of nodes (a load).
  void reserve(std::size_t values);

 private:
  // Chunks double from 64 Values up to 1 MiB: small graphs stay small, a large one takes
  // one allocation per 65536 Values, and a run that does not fit wastes at most the tail
  // of one chunk.
  static constexpr std::size_t kFirstChunkValues = 64;
  static constexpr std::size_t kMaxChunkValues = std::size_t{1} << 16;
  struct FreeRun {
    FreeRun* next;
  };
  static_assert(sizeof(FreeRun) <= sizeof(Value) && alignof(FreeRun) <= alignof(Value));

  std::vector<std::unique_ptr<std::byte[]>> chunks_;
  Value* next_ = nullptr;   // the unused tail of the last chunk
  std::size_t left_ = 0;    // Values that still fit there
  std::size_t next_chunk_values_ = kFirstChunkValues;
  std::vector<FreeRun*> free_;  // by run length; sized past every length handed out
};

}  // namespace fxpack::detail
