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
// A run is carved at the size of its length's class: 1, 2, 3 and 4 Values exactly (nearly
// every node has one to four arguments, so these waste nothing), then the powers of two up
// to kLargeRunValues. A run given back (an edited or erased node's list) goes on its class's
// free list, threaded through the runs' own memory, and serves the next run of any length
// in that class; so editing a graph reuses its memory instead of growing the arena without
// bound: a run is carved only when its class has none free, so whatever lengths the lists go
// through, the chunks hold no more runs of a class than were ever live at once (plus the
// unused tails of chunks). A run longer than kLargeRunValues (rare: a cat of
// thousands of tensors) is a heap block of its own, freed when it is given back, so a long
// list that shrinks returns its memory at once. Chunks go back when the arena is destroyed:
// to the system, or the large ones to memory the process keeps for the next graph's
// arguments (graph_chunk.hpp). The arena constructs and destroys no Value: its user does
// (Node::store_args, Node::release_args), and gives every run back before the arena goes.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

#include "fxpack/detail/graph_chunk.hpp"
#include "fxpack/value.hpp"

namespace fxpack::detail {

class ValueArena {
 public:
  // Runs longer than this are heap blocks of their own, not carved from chunks.
  static constexpr std::uint32_t kLargeRunValues = 1024;

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

  // Memory accounting (tests, benchmarks): bytes taken from the system and still held
  // (chunks and live large runs), and bytes of the runs handed out and not given back
  // (each at its class's size).
  std::size_t reserved_bytes() const { return chunk_bytes_ + large_bytes_; }
  std::size_t used_bytes() const { return used_bytes_; }

 private:
  // Chunks double from 64 Values up to 1 MiB: small graphs stay small, a large one takes
  // one allocation per 65536 Values, and a run that does not fit wastes at most the tail
  // of one chunk.
  static constexpr std::size_t kFirstChunkValues = 64;
  static constexpr std::size_t kMaxChunkValues = std::size_t{1} << 16;
  // Classes 0-3 hold 1-4 Values; class c >= 4 holds 2^(c-1) (8, 16, ..., kLargeRunValues).
  static constexpr std::size_t kClasses = 12;
  static_assert(std::size_t{1} << (kClasses - 2) == kLargeRunValues);
  static std::size_t size_class(std::uint32_t n) {
    return n <= 4 ? std::size_t{n} - 1 : static_cast<std::size_t>(std::bit_width(n - 1)) + 1;
  }
  static std::uint32_t class_values(std::size_t c) {
    return c < 4 ? static_cast<std::uint32_t>(c + 1) : std::uint32_t{1} << (c - 1);
  }
  struct FreeRun {
    FreeRun* next;
  };
  static_assert(sizeof(FreeRun) <= sizeof(Value) && alignof(FreeRun) <= alignof(Value));
  static_assert(alignof(Value) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__, "large runs use plain operator new");

  Value* carve(std::uint32_t values);

  std::vector<GraphChunk> chunks_;
  Value* next_ = nullptr;   // the unused tail of the last chunk
  std::size_t left_ = 0;    // Values that still fit there
  std::size_t next_chunk_values_ = kFirstChunkValues;
  std::array<FreeRun*, kClasses> free_{};  // per class, its runs given back
  std::size_t chunk_bytes_ = 0;
  std::size_t large_bytes_ = 0;
  std::size_t used_bytes_ = 0;
};

}  // namespace fxpack::detail
