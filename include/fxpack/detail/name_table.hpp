// NameTable: every name a Graph has handed out, each interned once, mapped to the live node
// it names (null once the node is erased, or when it never named a node: fx never reuses a
// name).
//
// Why not std::unordered_map<std::string, Node*>: that allocates a hash node per name and
// chases two pointers per lookup, which at 10^5..10^6 nodes is a cache miss or two per
// lookup and dominated building a graph. Here the hash index is one flat array of 8-byte
// slots (open addressing, linear probing, at most half full), each holding 32 bits of the
// name's hash and the number of its entry, so a probe touches the entry and the name only
// when those bits agree, growing never reads a name, and at 10^6 names the index is 16 MB
// (it had 24-byte slots holding pointers: 48 MB, a cache and TLB miss per insert that was
// a fifth of a load's time). The entries (name, node) are a vector in insertion order; the
// names live in a std::deque (stable addresses, no per-name node), and a Node keeps a pointer
// to its interned name. Nothing is ever removed, so there are no tombstones.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace fxpack {
class Node;
}

namespace fxpack::detail {

class NameTable {
 public:
  // A name's entry.
  struct Slot {
    const std::string* name = nullptr;
    Node* node = nullptr;
  };

  // The entry of `name`, or null.
  Slot* find(std::string_view name);
  const Slot* find(std::string_view name) const;
  // Interns `name` and returns its entry, whose node is null; null when the name is taken.
  // The entry stays valid until the next insert.
  Slot* insert(std::string_view name);
  // The interned copy of `name`, inserting it when new (a string pool: node stays null).
  const std::string* intern(std::string_view name);
  // Room for `more` names beyond the current ones without growing.
  void reserve(std::size_t more);
  std::size_t size() const { return names_.size(); }

 private:
  static std::uint64_t hash_of(std::string_view s);
  // Index slot: 0 empty, else (hash's high 32 bits << 32) | (entry number + 1).
  static std::uint64_t tag_of(std::uint64_t hash) { return hash & 0xFFFFFFFF00000000ull; }
  void grow(std::size_t capacity);

  std::vector<std::uint64_t> index_;  // power-of-two size (or empty)
  std::vector<Slot> entries_;
  std::deque<std::string> names_;
};

}  // namespace fxpack::detail
