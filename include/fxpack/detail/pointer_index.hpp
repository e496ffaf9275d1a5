// PointerIndex: a map from object addresses to numbers, built once for a known count (a
// node's position in its graph, a storage's index in a pickle).
//
// Why not std::unordered_map<const T*, std::uint32_t>: that allocates a hash node per entry
// and chases a pointer per lookup, a cache miss or two per node at 10^5..10^6 nodes. This is
// one flat array of {key, value} (open addressing, linear probing, at most half full), sized
// by reserve() so that it never grows during a build. No erase.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

namespace fxpack::detail {

template <class T, class V = std::uint32_t>
class PointerIndex {
 public:
  void reserve(std::size_t n) {
    if (2 * n > slots_.size()) rehash(std::bit_ceil(std::max<std::size_t>(16, 2 * n)));
  }
  // Adds key → value unless key is present; returns the value stored for key and whether
  // it was added.
  std::pair<V, bool> try_emplace(const T* key, V value) {
    if (2 * (size_ + 1) > slots_.size()) rehash(std::max<std::size_t>(16, 2 * slots_.size()));
    for (std::size_t i = slot_of(key);; i = (i + 1) & (slots_.size() - 1)) {
      Slot& s = slots_[i];
      if (s.key == key) return {s.value, false};
      if (!s.key) {
        s = {key, value};
        ++size_;
        return {value, true};
      }
    }
  }
  std::optional<V> find(const T* key) const {
    if (slots_.empty()) return std::nullopt;
    for (std::size_t i = slot_of(key);; i = (i + 1) & (slots_.size() - 1)) {
      const Slot& s = slots_[i];
      if (s.key == key) return s.value;
      if (!s.key) return std::nullopt;
    }
  }
  // The value of a key that must be present (std::out_of_range otherwise, as map::at).
  V at(const T* key) const {
    if (auto v = find(key)) return *v;
    throw std::out_of_range("PointerIndex::at: unknown key");
  }
  std::size_t size() const { return size_; }

 private:
  struct Slot {
    const T* key = nullptr;
    V value{};
  };
  std::size_t slot_of(const T* key) const {
    // The objects of one 4 KiB page go to one window of 256 slots, in address order; pages
    // are spread by Fibonacci hashing. Objects laid out in order (a graph's nodes, in their
    // chunks) are then looked up in table order too, which the CPU prefetches: a walk over
    // 10^6 nodes no longer takes a main-memory miss per node, as a hash of the whole
    // address did.
    const auto a = reinterpret_cast<std::uintptr_t>(key);
    const auto page = static_cast<std::size_t>(((a >> 12) * 0x9E3779B97F4A7C15ull) >> shift_);
    return (page + ((a >> 4) & 255)) & (slots_.size() - 1);
  }
  void rehash(std::size_t capacity) {
    std::vector<Slot> old = std::exchange(slots_, std::vector<Slot>(capacity));
    shift_ = 64 - std::countr_zero(capacity);
    for (const Slot& s : old) {
      if (!s.key) continue;
      std::size_t i = slot_of(s.key);
      while (slots_[i].key) i = (i + 1) & (capacity - 1);
      slots_[i] = s;
    }
  }

  std::vector<Slot> slots_;  // power-of-two size (or empty)
  int shift_ = 64;
  std::size_t size_ = 0;
};

}  // namespace fxpack::detail
