// NodeList: a Node's input or user list — a vector of Node* that holds one entry inline.
//
// Why: nearly every node of a real graph has one or two inputs and one user; as
// std::vector each list was 24 bytes plus a heap block, two allocations per node that at
// 10^6 nodes cost ~64 MB and a cache miss each when walked. Here a list is 16 bytes and
// needs the heap only past one entry (then it grows by doubling like a vector).
#pragma once

#include <algorithm>
#include <cstdint>
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
  NodeList(NodeList&& other) noexcept { take(other); }
  NodeList& operator=(NodeList&& other) noexcept {
    if (this != &other) {
      free();
      take(other);
    }
    return *this;
  }
  ~NodeList() { free(); }

  Node* const* begin() const { return data(); }
  Node* const* end() const { return data() + size_; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  Node* operator[](std::size_t i) const { return data()[i]; }
  bool contains(const Node* n) const { return std::find(begin(), end(), n) != end(); }
  std::span<Node* const> span() const { return {data(), size_}; }

  void push_back(Node* n) {
    if (size_ == capacity_) grow();
    data()[size_++] = n;
  }
  // Removes the first occurrence of `n`, if any, keeping the order of the rest.
  void erase_one(const Node* n) {
    Node** d = data();
    Node** it = std::find(d, d + size_, n);
    if (it == d + size_) return;
    std::move(it + 1, d + size_, it);
    --size_;
  }
  void clear() { size_ = 0; }

 private:
  Node* const* data() const { return capacity_ == 1 ? &one_ : heap_; }
  Node** data() { return capacity_ == 1 ? &one_ : heap_; }
  void grow() {
    const std::uint32_t cap = capacity_ * 2;
    Node** fresh = new Node*[cap];
    std::copy(data(), data() + size_, fresh);
    free();
    heap_ = fresh;
    capacity_ = cap;
  }
  void free() {
    if (capacity_ != 1) delete[] heap_;
    capacity_ = 1;
  }
  void take(NodeList& other) {
    if (other.capacity_ == 1) one_ = other.one_;
    else heap_ = other.heap_;
    size_ = other.size_;
    capacity_ = other.capacity_;
    other.capacity_ = 1;
    other.size_ = 0;
  }

  union {
    Node* one_ = nullptr;
    Node** heap_;
  };
  std::uint32_t size_ = 0;
  std::uint32_t capacity_ = 1;
};

}  // namespace fxpack::detail
