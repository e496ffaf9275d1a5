#include "fxpack/detail/string_pool.hpp"

#include <algorithm>
#include <functional>
#include <limits>
#include <stdexcept>
#include <utility>

namespace fxpack::detail {

std::uint64_t StringPool::hash_of(std::string_view s) { return std::hash<std::string_view>{}(s); }

std::optional<std::uint32_t> StringPool::find(std::string_view s) const {
  if (index_.empty()) return std::nullopt;
  const std::uint64_t tag = tag_of(hash_of(s));
  const std::size_t mask = index_.size() - 1;
  for (std::size_t i = (tag >> 32) & mask;; i = (i + 1) & mask) {
    const std::uint64_t slot = index_[i];
    if (!slot) return std::nullopt;
    const auto number = static_cast<std::uint32_t>((slot & 0xFFFFFFFFu) - 1);
    if (tag_of(slot) == tag && strings_[number] == s) return number;
  }
}

std::uint32_t StringPool::intern(std::string_view s) {
  if (2 * (strings_.size() + 1) > index_.size()) grow(std::max<std::size_t>(16, 2 * index_.size()));
  if (strings_.size() >= std::numeric_limits<std::uint32_t>::max() - 1)
    throw std::length_error("StringPool: more than 2^32 - 2 strings");
  const std::uint64_t tag = tag_of(hash_of(s));
  const std::size_t mask = index_.size() - 1;
  for (std::size_t i = (tag >> 32) & mask;; i = (i + 1) & mask) {
    std::uint64_t& slot = index_[i];
    if (!slot) {
      strings_.emplace_back(s);
      slot = tag | strings_.size();
      return static_cast<std::uint32_t>(strings_.size() - 1);
    }
    const auto number = static_cast<std::uint32_t>((slot & 0xFFFFFFFFu) - 1);
    if (tag_of(slot) == tag && strings_[number] == s) return number;
  }
}

void StringPool::grow(std::size_t capacity) {
  // A slot's place comes from the hash's high half, which the slot keeps: no string is read.
  std::vector<std::uint64_t> old = std::exchange(index_, std::vector<std::uint64_t>(capacity));
  const std::size_t mask = capacity - 1;
  for (std::uint64_t slot : old) {
    if (!slot) continue;
    std::size_t i = (slot >> 32) & mask;
    while (index_[i]) i = (i + 1) & mask;
    index_[i] = slot;
  }
}

}  // namespace fxpack::detail
