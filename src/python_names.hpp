// fx's _Namespace: how torch.fx makes a name unique, shared by Graph (node names, through
// NameTable::claim) and the code generator (the names of one generated source, where globals
// and nodes meet, through create_python_name).
//
// Both run the same rules, claim_python_name, over their own storage (a NameSpace). A raw
// name is first normalized by split_python_name — runs of characters that are not
// [0-9a-zA-Z_] become one '_', an empty one becomes "_unnamed", a leading digit gets a '_' —
// and its trailing `_<digits>` suffix split off ("relu_2" is base "relu", number 2). Then the
// first free name is taken, as the dialect does it:
//   Torch1_13  the candidate itself, else base_<n> for the smallest free n above the
//              candidate's number (counted from 1);
//   Torch2     counts from the highest number the base was last given (fx 2.x's _base_count).
// Both cost O(1) amortized per name: for 1.13 a base's counter is a number below which every
// suffix is known to be taken, so the search never starts from 1 again.
//
// A suffix is read in one place, parse_name_suffix: names being made, names being looked up
// (NameTable) and the code generator's counters key a name the same way. Python's ints have
// no bound, fxpack's numbers are int64: a name whose suffix is larger, or a clash whose next
// number would be, is a GraphError quoting the name (names fx makes itself never come near:
// only a requested name, such as one read from an archive, can).
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "fxpack/detail/string_hash.hpp"
#include "fxpack/dialect.hpp"

namespace fxpack::detail {

using NameCounters = std::unordered_map<std::string, std::int64_t, detail::StringHash, std::equal_to<>>;

// Python 3 keywords (keyword.kwlist).
bool is_python_keyword(std::string_view name);
// Names in Python 3.11's builtins module (dir(builtins)).
bool is_python_builtin(std::string_view name);
// fx's custom builtins, names every generated source defines: inf, nan, NoneType, torch,
// device, fx_pytree, pytree; `object` is the qualified name of what each stands for
// ("math.inf", ..., "torch.device"), or empty when the name is not one.
std::string_view custom_builtin_object(std::string_view name);

// Any of the three: what no object but the one it stands for may be named.
bool is_reserved_name(std::string_view name);

// `claim(candidate)` tries to take a name and says whether it did (false: taken or illegal for
// the object being named). Returns the name claimed.
template <class Claim>
std::string create_python_name(std::string_view raw, Dialect dialect, NameCounters& counters, Claim&& claim);

// The largest number a name can carry.
inline constexpr std::int64_t kMaxNameNumber = std::numeric_limits<std::int64_t>::max();

// A name's trailing `_<digits>`, read as fx reads it: "relu_2" is base "relu", number 2;
// "relu", "relu_" and "relu_2a" have none (the name is its base).
struct NameSuffix {
  enum class Kind : std::uint8_t {
    None,      // no suffix
    Number,    // base_size and number say what it is
    TooLarge,  // digits whose value is above kMaxNameNumber
  };
  Kind kind = Kind::None;
  std::size_t base_size = 0;  // the base is the name's first base_size characters
  std::int64_t number = 0;
  bool canonical = true;  // spelled as fx spells the number: no leading zeros
};
NameSuffix parse_name_suffix(std::string_view name);

// ---- implementation -------------------------------------------------------------------

// A normalized candidate split into base and suffix: "relu_2" is base "relu", number 2.
struct SplitName {
  std::string candidate;  // normalized, with the suffix rewritten without leading zeros
  std::size_t base_size = 0;  // the base is candidate's first base_size characters
  std::int64_t num = 0;
  bool has_num = false;
  std::string_view base() const { return std::string_view(candidate).substr(0, base_size); }
};
// Throws GraphError for a suffix above kMaxNameNumber.
SplitName split_python_name(std::string_view raw);

// The GraphError of a clash whose next number for the base would be above kMaxNameNumber.
[[noreturn]] void throw_name_numbers_exhausted(const SplitName& s);

// The name rules themselves, over any namespace: `space` claims the candidate as it is
// (`claim(std::nullopt)`) or base_<k> (`claim(k)`), and holds the base's counter
// (`counter()`: a pointer to it, null when the base has none yet; `set_counter(n)`). Returns
// the suffix claimed, nullopt for the candidate itself.
template <class Space>
std::optional<std::int64_t> claim_python_name(const SplitName& s, Dialect dialect, Space& space) {
  if (dialect == Dialect::Torch2) {
    std::int64_t num = s.num;
    if (num == 0) {
      const std::int64_t* c = space.counter();
      num = c ? *c : 0;
    }
    std::optional<std::int64_t> suffix;  // the candidate itself first
    while (!space.claim(suffix)) {
      if (num == kMaxNameNumber) throw_name_numbers_exhausted(s);
      suffix = ++num;
    }
    space.set_counter(num);
    return suffix;
  }
  if (space.claim(std::nullopt)) return std::nullopt;
  // Every base_<k> with 1 <= k < low is taken; 1.13 searches upwards from num + 1.
  const std::int64_t* c = space.counter();
  const std::int64_t low = c ? *c : 1;
  if (!c) space.set_counter(1);
  const bool from_low = s.num < low;
  if (!from_low && s.num == kMaxNameNumber) throw_name_numbers_exhausted(s);
  for (std::int64_t k = from_low ? low : s.num + 1;; ++k) {
    if (space.claim(k)) {
      // (at the last number, low stays one short: it only says what is known to be taken)
      if (from_low) space.set_counter(k == kMaxNameNumber ? k : k + 1);
      return k;
    }
    if (k == kMaxNameNumber) throw_name_numbers_exhausted(s);
  }
}

// A `space` for claim_python_name made of three callables.
template <class Claim, class Counter, class SetCounter>
struct NameSpace {
  Claim claim;
  Counter counter;
  SetCounter set_counter;
};
template <class Claim, class Counter, class SetCounter>
NameSpace(Claim, Counter, SetCounter) -> NameSpace<Claim, Counter, SetCounter>;

template <class Claim>
std::string create_python_name(std::string_view raw, Dialect dialect, NameCounters& counters, Claim&& claim) {
  const SplitName s = split_python_name(raw);
  const std::string base(s.base());
  auto spelled = [&](std::optional<std::int64_t> k) { return k ? base + "_" + std::to_string(*k) : s.candidate; };
  NameSpace space{[&](std::optional<std::int64_t> k) { return claim(spelled(k)); },
                  [&]() -> const std::int64_t* {
                    auto it = counters.find(base);
                    return it == counters.end() ? nullptr : &it->second;
                  },
                  [&](std::int64_t n) { counters.insert_or_assign(base, n); }};
  return spelled(claim_python_name(s, dialect, space));
}

}  // namespace fxpack::detail
