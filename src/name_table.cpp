#include "fxpack/detail/name_table.hpp"

#include <algorithm>
#include <bit>
#include <functional>
#include <limits>
#include <stdexcept>
#include <utility>

#include <sys/mman.h>

namespace fxpack::detail {

namespace {
// The index is probed at random: at 10^6 names it is 16 MB, and with 4 KiB pages each probe
// is a TLB miss as well as a cache miss. Ask for huge pages for the 2 MiB-aligned part of a
// large index before it is first touched (a hint: ignored where unsupported or refused).
void advise_huge_pages(void* p, std::size_t bytes) {
#ifdef MADV_HUGEPAGE
  constexpr std::uintptr_t kHuge = std::uintptr_t{2} << 20;
  if (bytes < 2 * kHuge) return;
  const auto begin = (reinterpret_cast<std::uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  const auto end = (reinterpret_cast<std::uintptr_t>(p) + bytes) & ~(kHuge - 1);
  if (end > begin) (void)::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)p;
  (void)bytes;
#endif
}
}  // namespace

std::uint64_t NameTable::hash_of(std::string_view s) { return std::hash<std::string_view>{}(s); }

const NameTable::Slot* NameTable::find(std::string_view name) const {
  if (index_.empty()) return nullptr;
  const std::uint64_t tag = tag_of(hash_of(name));
  const std::size_t mask = index_.size() - 1;
  for (std::size_t i = (tag >> 32) & mask;; i = (i + 1) & mask) {
    const std::uint64_t s = index_[i];
    if (!s) return nullptr;
    if (tag_of(s) == tag) {
      const Slot& e = entries_[(s & 0xFFFFFFFFu) - 1];
      if (*e.name == name) return &e;
    }
  }
}

NameTable::Slot* NameTable::find(std::string_view name) {
  return const_cast<Slot*>(std::as_const(*this).find(name));
}

NameTable::Slot* NameTable::insert(std::string_view name) {
  if (2 * (entries_.size() + 1) > index_.size()) grow(std::max<std::size_t>(16, 2 * index_.size()));
  if (entries_.size() >= std::numeric_limits<std::uint32_t>::max() - 1)
    throw std::length_error("NameTable: more than 2^32 - 2 names");
  const std::uint64_t tag = tag_of(hash_of(name));
  const std::size_t mask = index_.size() - 1;
  for (std::size_t i = (tag >> 32) & mask;; i = (i + 1) & mask) {
    std::uint64_t& s = index_[i];
    if (!s) {
      entries_.push_back({&names_.emplace_back(name), nullptr});
      s = tag | entries_.size();
      return &entries_.back();
    }
    if (tag_of(s) == tag && *entries_[(s & 0xFFFFFFFFu) - 1].name == name) return nullptr;
  }
}

const std::string* NameTable::intern(std::string_view name) {
  if (const Slot* s = find(name)) return s->name;
  return insert(name)->name;
}

void NameTable::reserve(std::size_t more) {
  const std::size_t want = 2 * (entries_.size() + more);
  if (want > index_.size()) grow(std::bit_ceil(want));
  entries_.reserve(entries_.size() + more);
}

void NameTable::grow(std::size_t capacity) {
  // A slot's place comes from the hash's high half, which the slot keeps: no name is read.
  std::vector<std::uint64_t> fresh;
  fresh.reserve(capacity);
  advise_huge_pages(fresh.data(), capacity * sizeof(std::uint64_t));
  fresh.resize(capacity);
  std::vector<std::uint64_t> old = std::exchange(index_, std::move(fresh));
  const std::size_t mask = capacity - 1;
  for (std::uint64_t s : old) {
    if (!s) continue;
    std::size_t i = (s >> 32) & mask;
    while (index_[i]) i = (i + 1) & mask;
    index_[i] = s;
  }
}

}  // namespace fxpack::detail
