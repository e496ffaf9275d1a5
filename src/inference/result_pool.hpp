// Results of inference calls lent from reusable blocks, so a steady call allocates no
// result. Internal to src/inference.
//
// A block holds the bytes, the Storage object and room for the result's shared_ptr control
// block (made with an allocator that places it there). When the last reference to the
// result goes, the control block's deallocation frees the block (a release store), and the
// next call may take it (an acquire): the user's reads of a result happen before the block
// is written again. A result still held while the next call runs keeps its block; the pool
// then lends another, and past its limit copies into a fresh tensor. A result may outlive
// its pool and its module: each block is reference counted.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include "fxpack/tensor.hpp"

namespace fxpack::inference {

struct ResultBlock {
  std::atomic<bool> busy{false};
  std::shared_ptr<Storage> bytes;
  alignas(std::max_align_t) std::byte storage_object[sizeof(Storage)];
  alignas(std::max_align_t) std::byte control_block[128];
};

class ResultPool {
 public:
  // A copy of `t` in a lent block, or a fresh tensor when every block is held.
  Tensor lend(const Tensor& t);

 private:
  static constexpr std::size_t kMaxBlocks = 8;
  std::mutex mu_;
  std::vector<std::shared_ptr<ResultBlock>> blocks_;
};

}  // namespace fxpack::inference
