#include "fxpack/detail/value_arena.hpp"

#include <algorithm>
#include <new>

namespace fxpack::detail {

Value* ValueArena::allocate(std::uint32_t n) {
  if (n >= free_.size()) free_.resize(std::size_t{n} + 1);  // release() never allocates
  if (FreeRun* run = free_[n]) {
    free_[n] = run->next;
    return reinterpret_cast<Value*>(run);
  }
  if (n > left_) {
    const std::size_t values = std::max<std::size_t>(n, next_chunk_values_);
    chunks_.push_back(std::make_unique_for_overwrite<std::byte[]>(values * sizeof(Value)));
    next_ = reinterpret_cast<Value*>(chunks_.back().get());
    left_ = values;
    next_chunk_values_ = std::min(2 * next_chunk_values_, kMaxChunkValues);
  }
  Value* run = next_;
  next_ += n;
  left_ -= n;
  return run;
}

void ValueArena::release(Value* run, std::uint32_t n) noexcept {
  free_[n] = new (run) FreeRun{free_[n]};
}

void ValueArena::reserve(std::size_t values) {
  if (values > left_) next_chunk_values_ = std::max(next_chunk_values_, std::min(values, kMaxChunkValues));
}

}  // namespace fxpack::detail
