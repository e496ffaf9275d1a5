// NodeList: a Node's input or user list — a vector of Node* in one word.
//
// Why: nearly every node of a real graph has one or two inputs and one user; as
// std::vector each list was 24 bytes plus a heap block, two allocations per node that at
// 10^6 nodes cost ~64 MB and a cache miss each when walked. Here a list is 8 bytes: empty,
// the one entry itself, or (tagged in its low bit, which no Node* has) a heap block holding
// the size, the capacity and the entries, which grows by doubling like a vector.
#pragma once

#include <algorithm>
#include <cstdint>
#include <new>
#include <span>
#include <utility>

namespace fxpack {
class Node;
}

namespace fxpack::detail {

class NodeList {
 public:
  NodeList() = default;
  NodeList(const NodeList&) = delete;
  NodeList& operator=(const NodeList&) = delete;
  NodeList(NodeList&& other) noexcept : word_(std::exchange(other.word_, nullptr)) {}
  NodeList& operator=(NodeList&& other) noexcept {
    if (this != &other) {
      free();
      word_ = std::exchange(other.word_, nullptr);
    }
    return *this;
  }
  ~NodeList() { free(); }

  Node* const* begin() const { return data(); }
  Node* const* end() const { return data() + size(); }
  std::size_t size() const {
    if (Block* b = block()) return b->size;
    return word_ ? 1 : 0;
  }
  bool empty() const { return size() == 0; }
  Node* operator[](std::size_t i) const { return data()[i]; }
  bool contains(const Node* n) const { return std::find(begin(), end(), n) != end(); }
  std::span<Node* const> span() const { return {data(), size()}; }

  void push_back(Node* n) {
    if (!word_) {
      word_ = n;
      return;
    }
    Block* b = block();
    if (!b || b->size == b->capacity) b = grow();
    b->entries()[b->size++] = n;
  }
  // Removes the first occurrence of `n`, if any, keeping the order of the rest.
  void erase_one(const Node* n) {
    Block* b = block();
    if (!b) {
      if (word_ == n) word_ = nullptr;
      return;
    }
    Node** d = b->entries();
    Node** it = std::find(d, d + b->size, n);
    if (it == d + b->size) return;
    std::move(it + 1, d + b->size, it);
    --b->size;
  }
  void clear() {
    if (Block* b = block()) b->size = 0;
    else word_ = nullptr;
  }

 private:
  struct Block {
    std::uint32_t size;
    std::uint32_t capacity;
    Node** entries() { return reinterpret_cast<Node**>(this + 1); }
  };
  static_assert(sizeof(Block) == sizeof(Node*));
  static constexpr std::uintptr_t kBlock = 1;

  Block* block() const {
    const auto bits = reinterpret_cast<std::uintptr_t>(word_);
    return bits & kBlock ? reinterpret_cast<Block*>(bits & ~kBlock) : nullptr;
  }
  Node* const* data() const {
    if (Block* b = block()) return b->entries();
    return &word_;
  }
  // A block with room for one more entry, holding the current ones.
  Block* grow() {
    Block* old = block();
    const std::uint32_t size = old ? old->size : 1;
    const std::uint32_t capacity = old ? 2 * old->capacity : 4;
    auto* b = static_cast<Block*>(::operator new(sizeof(Block) + capacity * sizeof(Node*)));
    b->size = size;
    b->capacity = capacity;
    std::copy(data(), data() + size, b->entries());
    free();
    word_ = reinterpret_cast<Node*>(reinterpret_cast<std::uintptr_t>(b) | kBlock);
    return b;
  }
  void free() {
    if (Block* b = block()) ::operator delete(b);
    word_ = nullptr;
  }

  // nullptr: empty; a Node*: that one entry; a Block* | kBlock: the block. A Node* rather
  // than an integer so that data() can hand out its address as the one-entry list.
  Node* word_ = nullptr;
};

}  // namespace fxpack::detail
