#include "result_pool.hpp"

#include <algorithm>
#include <cstring>
#include <new>

namespace fxpack::inference {

namespace {

template <class T>
struct BlockAllocator {
  using value_type = T;
  explicit BlockAllocator(std::shared_ptr<ResultBlock> b) : block(std::move(b)) {}
  template <class U>
  BlockAllocator(const BlockAllocator<U>& o) : block(o.block) {}  // NOLINT: rebinding
  T* allocate(std::size_t n) {
    if (n * sizeof(T) > sizeof(block->control_block)) throw std::bad_alloc();
    return reinterpret_cast<T*>(block->control_block);
  }
  void deallocate(T*, std::size_t) { block->busy.store(false, std::memory_order_release); }
  template <class U>
  bool operator==(const BlockAllocator<U>& o) const { return block == o.block; }
  std::shared_ptr<ResultBlock> block;
};

struct DestroyStorage {
  void operator()(Storage* s) const { s->~Storage(); }
};

}  // namespace

Tensor ResultPool::lend(const Tensor& t) {
  const std::size_t n = t.nbytes();
  std::shared_ptr<ResultBlock> block;
  {
    std::lock_guard lock(mu_);
    for (const auto& b : blocks_) {
      bool expected = false;
      if (b->bytes->nbytes() >= n && b->busy.compare_exchange_strong(expected, true, std::memory_order_acquire)) {
        block = b;
        break;
      }
    }
    if (!block && blocks_.size() < kMaxBlocks) {
      block = std::make_shared<ResultBlock>();
      block->bytes = Storage::allocate(std::max<std::size_t>(n, 1));
      block->busy.store(true, std::memory_order_relaxed);
      blocks_.push_back(block);
    }
  }
  if (!block) return t.clone();
  std::byte* data = block->bytes->data();
  std::memcpy(data, t.data<std::byte>(), n);
  auto* st = new (block->storage_object) Storage(data, n, std::shared_ptr<const void>(block, data));
  try {
    return Tensor(std::shared_ptr<Storage>(st, DestroyStorage{}, BlockAllocator<Storage>(block)), 0, t.dtype(),
                  t.shape());
  } catch (const std::bad_alloc&) {  // the control block does not fit (another library)
    block->busy.store(false, std::memory_order_release);
    return t.clone();
  }
}

}  // namespace fxpack::inference
