// Node type expressions (node.hpp): `torch.Tensor`, `typing.Union[torch.Tensor,NoneType]`,
// `typing.Tuple[int,...]`, `()` — parsed here once for Node::set_type's check, the code
// generator and the fx source parser.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fxpack::detail {

struct TypeExpr {
  std::string name;          // a dotted Python name, "..." or "()"
  bool subscripted = false;  // name[args]
  std::vector<TypeExpr> args;
};

inline constexpr std::size_t kMaxTypeDepth = 32;

// The expression, or nullopt with `error` saying what is wrong at which offset.
std::optional<TypeExpr> parse_type_expr(std::string_view text, std::string* error = nullptr);
// The canonical text (the inverse of parse_type_expr).
std::string type_expr_text(const TypeExpr& type);

}  // namespace fxpack::detail
