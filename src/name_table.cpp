#include "fxpack/detail/name_table.hpp"

#include <optional>

#include "python_names.hpp"

namespace fxpack::detail {

namespace {

// The slot value of a name that is taken but names no node.
Node* taken() {
  static char tag;
  return reinterpret_cast<Node*>(&tag);
}

}  // namespace

std::optional<NameTable::Key> NameTable::key_of(std::string_view name) {
  const NameSuffix x = parse_name_suffix(name);
  switch (x.kind) {
    case NameSuffix::Kind::None:
      return Key{name, kBare};
    case NameSuffix::Kind::Number:
      if (!x.canonical) return std::nullopt;
      return Key{name.substr(0, x.base_size), x.number};
    case NameSuffix::Kind::TooLarge:
      break;
  }
  return std::nullopt;
}

Node*& NameTable::slot(std::uint32_t b, std::int64_t number) {
  Base& base = bases_[b];
  if (number == kBare) return base.bare;
  auto& dense = base.numbered;
  const auto k = static_cast<std::uint64_t>(number);
  if (k < dense.size()) return dense[k];
  // The dense array grows to a number below twice the names the base holds (and a little):
  // names come mostly in order, so it stays dense, and its length is bounded by what is held
  // (taken names are never given back, so it never exceeds the bound). Names of the new range
  // that were far move in.
  if (k >= 2 * base.numbers_taken + 64) {
    auto [it, added] = far_.try_emplace({b, number}, nullptr);
    base.far += added;
    return it->second;
  }
  const std::size_t old = dense.size();
  dense.resize(k + 1);
  for (std::size_t j = old; base.far && j <= k; ++j) {
    auto it = far_.find({b, static_cast<std::int64_t>(j)});
    if (it == far_.end()) continue;
    dense[j] = it->second;
    far_.erase(it);
    --base.far;
  }
  return dense[k];
}

Node* const* NameTable::find_slot(std::uint32_t b, std::int64_t number) const {
  const Base& base = bases_[b];
  if (number == kBare) return &base.bare;
  if (static_cast<std::uint64_t>(number) < base.numbered.size()) return &base.numbered[static_cast<std::size_t>(number)];
  if (!base.far) return nullptr;
  auto it = far_.find({b, number});
  return it == far_.end() ? nullptr : &it->second;
}

std::uint32_t NameTable::base_number(std::string_view base) {
  for (const std::uint32_t b : recent_bases_)
    if (b < bases_.size() && base_names_[b] == base) return b;
  const std::uint32_t b = base_names_.intern(base);
  if (b == bases_.size()) bases_.emplace_back();
  recent_bases_[next_recent_++ % recent_bases_.size()] = b;
  return b;
}

NameTable::Claimed NameTable::claim(std::string_view raw, Dialect dialect) {
  SplitName s = split_python_name(raw);
  const std::uint32_t b = base_number(s.base());
  Node** claimed = nullptr;
  NameSpace space{[&](std::optional<std::int64_t> k) {
                    // Only a name that does not end in a digit can be reserved: not base_<k>.
                    if (!k && is_reserved_name(s.candidate)) return false;
                    const std::int64_t number = k ? *k : s.has_num ? s.num : kBare;
                    Node*& node = slot(b, number);
                    if (node) return false;
                    node = taken();
                    if (number != kBare) ++bases_[b].numbers_taken;
                    claimed = &node;
                    return true;
                  },
                  [&]() -> const std::int64_t* { return bases_[b].has_counter ? &bases_[b].counter : nullptr; },
                  [&](std::int64_t n) {
                    bases_[b].counter = n;
                    bases_[b].has_counter = true;
                  }};
  const std::optional<std::int64_t> suffix = claim_python_name(s, dialect, space);
  if (!suffix) return {std::move(s.candidate), claimed};
  std::string name(s.base());
  name += '_';
  name += std::to_string(*suffix);
  return {std::move(name), claimed};
}

Node* NameTable::find(std::string_view name) const {
  const auto key = key_of(name);
  if (!key) return nullptr;
  const auto b = base_names_.find(key->base);
  if (!b) return nullptr;
  Node* const* s = find_slot(*b, key->number);
  return s && *s != taken() ? *s : nullptr;
}

void NameTable::release(std::string_view name, const Node* node) {
  const auto key = key_of(name);
  if (!key) return;
  const auto b = base_names_.find(key->base);
  if (!b) return;
  if (Node* const* s = find_slot(*b, key->number); s && *s == node) *const_cast<Node**>(s) = taken();
}

std::size_t NameTable::numbered_slots() const {
  std::size_t n = far_.size();
  for (const Base& base : bases_) n += base.numbered.size();
  return n;
}

}  // namespace fxpack::detail
