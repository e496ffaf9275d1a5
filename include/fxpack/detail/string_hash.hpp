// A transparent string hash, so unordered containers keyed by std::string can be searched
// with a std::string_view without building a string.
#pragma once

#include <functional>
#include <string_view>

namespace fxpack::detail {

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

}  // namespace fxpack::detail
