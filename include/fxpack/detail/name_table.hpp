// NameTable: every name a Graph has handed out, mapped to the live node it names (none once
// the node is erased, or when it never named a node: fx never reuses a name), with the state
// of fx's name rules (python_names.hpp: a counter per base).
//
// Keyed by base and number. fx names are a base and an optional numeric suffix — `add`,
// `add_1`, ..., `add_123` — so the table keeps one entry per base (its counter and its names
// by number in a dense array) and a name costs a lookup among the bases, which are few (tens
// to hundreds in a real graph: they stay in cache), and one slot of an array filled in order.
// A hash index over every name, as this was, missed main memory once per new name at 10^6
// nodes: a fifth of a load. The dense array only reaches numbers below twice the names its
// base holds (and a little): a number beyond (`x_1000000` among a few x's, or a hostile run
// x_64, x_194, x_454, ... each past twice the last) goes to a side hash map instead. So the
// table's memory is proportional to the names taken, never to how large their numbers are,
// and no name costs more than a slot or a map entry.
//
// A name is keyed by its base and number as parse_name_suffix (python_names.hpp) reads it,
// the one reading the naming rules use, so every name spelled keys back to where it was made.
//
// The names themselves are kept by the nodes (Node::name); a name without a node (erased, or
// handed out by Graph::unique_name) needs no text, as its base and number say it is taken.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fxpack/detail/string_pool.hpp"
#include "fxpack/dialect.hpp"

namespace fxpack {
class Node;
}

namespace fxpack::detail {

class NameTable {
 public:
  struct Claimed {
    std::string name;
    Node** node;  // where the name's node goes; valid until the next claim
  };
  // Claims the name fx's rules give `raw` in `dialect` (python_names.hpp), never a Python
  // keyword, builtin or fx reserved name. Its node starts as none.
  Claimed claim(std::string_view raw, Dialect dialect);
  // The live node named `name`, or null.
  Node* find(std::string_view name) const;
  // `node`, named `name`, is gone; the name stays taken. (A slot holding another node is
  // left as it is: a release never takes a name from a node that has it.)
  void release(std::string_view name, const Node* node);
  // The slots held for numbered names, dense and far: at most twice the numbered names taken
  // and 64 more per base, however large their numbers (the bound a test reads).
  std::size_t numbered_slots() const;

 private:
  // A name's number: its suffix, or kBare for a name that is its base.
  static constexpr std::int64_t kBare = -1;
  struct Key {
    std::string_view base;
    std::int64_t number;
  };
  // Where `name` is kept, or nullopt for a name the rules never give (`add_01`, a number
  // above kMaxNameNumber), which no node can have.
  static std::optional<Key> key_of(std::string_view name);
  struct Base {
    std::int64_t counter = 0;  // fx's counter (python_names.hpp), when has_counter
    bool has_counter = false;
    std::uint32_t far = 0;      // how many of its names are in far_
    std::uint64_t numbers_taken = 0;  // how many base_<k> names are taken, dense or far
    Node* bare = nullptr;       // the base as a name
    std::vector<Node*> numbered;  // base_<k> at [k], for k below the size
  };
  struct FarKey {
    std::uint32_t base;
    std::int64_t number;
    friend bool operator==(const FarKey&, const FarKey&) = default;
  };
  struct FarHash {
    std::size_t operator()(const FarKey& k) const {
      return static_cast<std::size_t>(k.number) * 0x9E3779B97F4A7C15ull ^ k.base;
    }
  };
  // The number of `base` among bases_, adding it when new. The last few bases are compared
  // first, before the pool's hash: a graph's names cycle through a few bases.
  std::uint32_t base_number(std::string_view base);
  // The slot of name (base, number), made free when new.
  Node*& slot(std::uint32_t base, std::int64_t number);
  // The slot of name (base, number), or null when the name was never taken.
  Node* const* find_slot(std::uint32_t base, std::int64_t number) const;

  StringPool base_names_;  // base i's text
  std::vector<Base> bases_;
  std::unordered_map<FarKey, Node*, FarHash> far_;
  std::array<std::uint32_t, 8> recent_bases_{};  // base numbers, valid below bases_.size()
  std::uint32_t next_recent_ = 0;                 // where the next one goes
};

}  // namespace fxpack::detail
