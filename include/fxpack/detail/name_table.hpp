// NameTable: every name a Graph has handed out, each interned once, mapped to the live node
// it names (null once the node is erased, or when it never named a node: fx never reuses a
// name).
//
// Why not std::unordered_map<std::string, Node*>: that allocates a hash node per name and
// chases two pointers per lookup, which at 10^5..10^6 nodes is a cache miss or two per
// lookup and dominated building a graph. Here the slots are one flat array (open
// addressing, linear probing, at most half full, so a lookup reads one or two adjacent
// slots), each holding the name's hash, so a probe touches the name only when the hashes
// agree and growing never reads a name. The names live in a std::deque (stable addresses, no per-name node), and a Node
// keeps a pointer to its interned name. Nothing is ever removed, so there are no tombstones.
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
  struct Slot {
    std::uint64_t hash = 0;
    const std::string* name = nullptr;  // null: the slot is empty
    Node* node = nullptr;
  };

  // The slot of `name`, or null.
  Slot* find(std::string_view name);
  const Slot* find(std::string_view name) const;
  // Interns `name` and returns its slot, whose node is null; null when the name is taken.
  // The slot stays valid until the next insert.
  Slot* insert(std::string_view name);
  // Room for `more` names beyond the current ones without growing.
  void reserve(std::size_t more);
  std::size_t size() const { return names_.size(); }

 private:
  static std::uint64_t hash_of(std::string_view s);
  void grow(std::size_t capacity);

  std::vector<Slot> slots_;  // power-of-two size (or empty)
  std::deque<std::string> names_;
};

}  // namespace fxpack::detail
