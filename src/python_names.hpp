// fx's _Namespace: how torch.fx makes a name unique, shared by Graph (node names) and the
// code generator (the names of one generated source, where globals and nodes meet).
//
// create_name(raw) normalizes the candidate — runs of characters that are not [0-9a-zA-Z_]
// become one '_', an empty one becomes "_unnamed", a leading digit gets a '_' — and splits a
// trailing `_<digits>` suffix off ("relu_2" is base "relu", number 2). Then it takes the
// first free name, as the dialect does it:
//   Torch1_13  the candidate itself, else base_<n> for the smallest free n above the
//              candidate's number (counted from 1);
//   Torch2     counts from the highest number the base was last given (fx 2.x's _base_count).
// Both cost O(1) amortized per name: for 1.13 `counters` keeps, per base, a number below
// which every suffix is known to be taken, so the search never starts from 1 again.
#pragma once

#include <cstdint>
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

// ---- implementation -------------------------------------------------------------------

struct SplitName {
  std::string candidate;  // normalized, with the suffix rewritten without leading zeros
  std::string base;
  std::int64_t num = 0;
  bool has_num = false;
};
SplitName split_python_name(std::string_view raw);

template <class Claim>
std::string create_python_name(std::string_view raw, Dialect dialect, NameCounters& counters, Claim&& claim) {
  SplitName s = split_python_name(raw);
  auto suffixed = [&](std::int64_t n) { return s.base + "_" + std::to_string(n); };
  if (dialect == Dialect::Torch2) {
    std::int64_t num = s.num;
    if (num == 0) {
      auto it = counters.find(s.base);
      num = it == counters.end() ? 0 : it->second;
    }
    std::string candidate = std::move(s.candidate);
    while (!claim(candidate)) candidate = suffixed(++num);
    counters[s.base] = num;
    return candidate;
  }
  if (claim(s.candidate)) return std::move(s.candidate);
  // Every base_<k> with 1 <= k < low is taken; 1.13 searches upwards from num + 1.
  auto it = counters.try_emplace(s.base, 1).first;
  const std::int64_t low = it->second;
  const bool from_low = s.num + 1 <= low;
  for (std::int64_t k = from_low ? low : s.num + 1;; ++k) {
    std::string candidate = suffixed(k);
    if (claim(candidate)) {
      if (from_low) counters[s.base] = k + 1;
      return candidate;
    }
  }
}

}  // namespace fxpack::detail
