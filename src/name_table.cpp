#include "fxpack/detail/name_table.hpp"

#include <algorithm>
#include <bit>
#include <functional>
#include <utility>

namespace fxpack::detail {

std::uint64_t NameTable::hash_of(std::string_view s) { return std::hash<std::string_view>{}(s); }

const NameTable::Slot* NameTable::find(std::string_view name) const {
  if (slots_.empty()) return nullptr;
  const std::uint64_t h = hash_of(name);
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t i = h & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (!s.name) return nullptr;
    if (s.hash == h && *s.name == name) return &s;
  }
}

NameTable::Slot* NameTable::find(std::string_view name) {
  return const_cast<Slot*>(std::as_const(*this).find(name));
}

NameTable::Slot* NameTable::insert(std::string_view name) {
  if (2 * (names_.size() + 1) > slots_.size()) grow(std::max<std::size_t>(16, 2 * slots_.size()));
  const std::uint64_t h = hash_of(name);
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t i = h & mask;; i = (i + 1) & mask) {
    Slot& s = slots_[i];
    if (!s.name) {
      s.hash = h;
      s.name = &names_.emplace_back(name);
      return &s;
    }
    if (s.hash == h && *s.name == name) return nullptr;
  }
}

void NameTable::reserve(std::size_t more) {
  const std::size_t want = 2 * (names_.size() + more);
  if (want > slots_.size()) grow(std::bit_ceil(want));
}

void NameTable::grow(std::size_t capacity) {
  std::vector<Slot> old = std::exchange(slots_, std::vector<Slot>(capacity));
  const std::size_t mask = capacity - 1;
  for (const Slot& s : old) {
    if (!s.name) continue;
    std::size_t i = s.hash & mask;
    while (slots_[i].name) i = (i + 1) & mask;
    slots_[i] = s;
  }
}

}  // namespace fxpack::detail
