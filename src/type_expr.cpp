// Node type expressions: parsing and printing the canonical form.
#include "type_expr.hpp"

namespace fxpack::detail {

namespace {

bool ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool ident_char(char c) { return ident_start(c) || (c >= '0' && c <= '9'); }

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  std::optional<TypeExpr> whole(std::string* error) {
    std::optional<TypeExpr> t = type(0);
    if (t && i_ != s_.size()) t = fail("unexpected '" + std::string(1, s_[i_]) + "'");
    if (!t && error) *error = error_;
    return t;
  }

 private:
  std::nullopt_t fail(const std::string& what) {
    if (error_.empty()) error_ = what + " at offset " + std::to_string(i_);
    return std::nullopt;
  }

  std::optional<TypeExpr> type(std::size_t depth) {
    if (depth > kMaxTypeDepth) return fail("type nested deeper than " + std::to_string(kMaxTypeDepth) + " levels");
    TypeExpr t;
    if (s_.substr(i_, 3) == "...") {
      i_ += 3;
      t.name = "...";
      return t;
    }
    if (s_.substr(i_, 2) == "()") {
      i_ += 2;
      t.name = "()";
      return t;
    }
    while (true) {
      if (i_ >= s_.size() || !ident_start(s_[i_])) return fail("expected a name");
      std::size_t b = i_;
      while (i_ < s_.size() && ident_char(s_[i_])) ++i_;
      t.name.append(s_.substr(b, i_ - b));
      if (i_ < s_.size() && s_[i_] == '.') {
        t.name += '.';
        ++i_;
        continue;
      }
      break;
    }
    if (i_ < s_.size() && s_[i_] == '[') {
      ++i_;
      t.subscripted = true;
      while (true) {
        auto arg = type(depth + 1);
        if (!arg) return std::nullopt;
        t.args.push_back(std::move(*arg));
        if (i_ < s_.size() && s_[i_] == ',') {
          ++i_;
          continue;
        }
        if (i_ < s_.size() && s_[i_] == ']') {
          ++i_;
          break;
        }
        return fail("expected ',' or ']'");
      }
    }
    return t;
  }

  std::string_view s_;
  std::size_t i_ = 0;
  std::string error_;
};

void append(std::string& out, const TypeExpr& t) {
  out += t.name;
  if (!t.subscripted) return;
  out += '[';
  for (std::size_t i = 0; i < t.args.size(); ++i) {
    if (i) out += ',';
    append(out, t.args[i]);
  }
  out += ']';
}

}  // namespace

std::optional<TypeExpr> parse_type_expr(std::string_view text, std::string* error) {
  return Parser(text).whole(error);
}

std::string type_expr_text(const TypeExpr& type) {
  std::string out;
  append(out, type);
  return out;
}

}  // namespace fxpack::detail
