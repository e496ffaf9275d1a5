#include "fxpack/detail/value_arena.hpp"

#include <algorithm>

namespace fxpack::detail {

// A run of `values` from the last chunk, or from a new one when the tail is too short.
// Inline (only allocate() calls it): a load carves every run, and as a call of its own it
// cost ~8 instructions per run, +0.3% of a 10k-node load's (callgrind; inline, the load is
// within 0.1% of the per-length lists the size classes replaced).
inline Value* ValueArena::carve(std::uint32_t values) {
  if (values > left_) {
    const std::size_t chunk = std::max<std::size_t>(values, next_chunk_values_);
    chunks_.push_back(allocate_graph_chunk(GraphChunkUse::Arguments, chunk * sizeof(Value)));
    chunk_bytes_ += chunks_.back().get_deleter().bytes();
    next_ = reinterpret_cast<Value*>(chunks_.back().get());
    left_ = chunks_.back().get_deleter().bytes() / sizeof(Value);
    next_chunk_values_ = std::min(2 * next_chunk_values_, kMaxChunkValues);
  }
  Value* run = next_;
  next_ += values;
  left_ -= values;
  return run;
}

Value* ValueArena::allocate(std::uint32_t n) {
  if (n > kLargeRunValues) {
    const std::size_t bytes = std::size_t{n} * sizeof(Value);
    auto* run = static_cast<Value*>(::operator new(bytes));
    large_bytes_ += bytes;
    used_bytes_ += bytes;
    return run;
  }
  const std::size_t c = size_class(n);
  const std::uint32_t values = class_values(c);
  used_bytes_ += values * sizeof(Value);
  if (FreeRun* run = free_[c]) {
    free_[c] = run->next;
    return reinterpret_cast<Value*>(run);
  }
  return carve(values);
}

void ValueArena::release(Value* run, std::uint32_t n) noexcept {
  if (n > kLargeRunValues) {
    const std::size_t bytes = std::size_t{n} * sizeof(Value);
    ::operator delete(run);
    large_bytes_ -= bytes;
    used_bytes_ -= bytes;
    return;
  }
  const std::size_t c = size_class(n);
  used_bytes_ -= class_values(c) * sizeof(Value);
  free_[c] = new (run) FreeRun{free_[c]};
}

void ValueArena::reserve(std::size_t values) {
  if (values > left_) next_chunk_values_ = std::max(next_chunk_values_, std::min(values, kMaxChunkValues));
}

}  // namespace fxpack::detail
