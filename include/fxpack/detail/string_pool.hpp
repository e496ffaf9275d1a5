// StringPool: strings interned once, each numbered in the order it was first seen.
//
// A Graph keeps its targets and types here (a few distinct strings shared by many nodes: a
// node points at the pool's copy) and its name table keeps the bases of its names here
// (`add` for `add`, `add_1`, ..., `add_123`).
//
// Why not std::unordered_map<std::string, ...>: that allocates a hash node per string and
// chases two pointers per lookup. Here the hash index is one flat array of 8-byte slots (open
// addressing, linear probing, at most half full), each holding 32 bits of the string's hash
// and its number, so a probe reads the string only when those bits agree and growing never
// reads a string. The strings live in a std::deque: stable addresses, no node per string.
// Nothing is ever removed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fxpack::detail {

class StringPool {
 public:
  // The number of `s`, adding it when new.
  std::uint32_t intern(std::string_view s);
  // The number of `s`, or nullopt when it is not in the pool.
  std::optional<std::uint32_t> find(std::string_view s) const;
  // The pool's copy of string number `i` (stays at its address while the pool lives).
  const std::string& operator[](std::uint32_t i) const { return strings_[i]; }
  std::size_t size() const { return strings_.size(); }

 private:
  static std::uint64_t hash_of(std::string_view s);
  // Index slot: 0 empty, else (hash's high 32 bits << 32) | (string number + 1).
  static std::uint64_t tag_of(std::uint64_t hash) { return hash & 0xFFFFFFFF00000000ull; }
  void grow(std::size_t capacity);

  std::vector<std::uint64_t> index_;  // power-of-two size (or empty)
  std::deque<std::string> strings_;
};

}  // namespace fxpack::detail
