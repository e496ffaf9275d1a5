#include "interop/fx_code_parser.hpp"

#include <charconv>
#include <deque>
#include <cmath>
#include <limits>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "fxpack/errors.hpp"
#include "python_names.hpp"
#include "type_expr.hpp"

namespace fxpack::interop {

namespace {

// ---- tokens ---------------------------------------------------------------------------

enum class Tok { Name, Int, Float, Str, Op, End };

struct Token {
  Tok kind = Tok::End;
  // Name: identifier; Int: digits; Str: decoded value; Op: punctuation. A view into the
  // source, or for a string with escapes into the decoded strings tokenize() was given.
  std::string_view text;
  double number = 0;
  std::size_t col = 0;  // 1-based
};

class Located {
 public:
  Located(std::string where) : where_(std::move(where)) {}
  [[noreturn]] void fail(std::size_t line, std::size_t col, const std::string& what) const {
    throw FormatError(where_ + " line " + std::to_string(line) + ", column " + std::to_string(col) + ": " + what);
  }

 protected:
  std::string where_;
};

bool ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool ident_char(char c) { return ident_start(c) || (c >= '0' && c <= '9'); }
bool digit(char c) { return c >= '0' && c <= '9'; }

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The operator starting at s[i] ("" if none): Python's three-, two- and one-character ones.
std::string_view operator_at(std::string_view s, std::size_t i) {
  static constexpr std::string_view three[] = {"//=", "**=", ">>=", "<<="};
  static constexpr std::string_view two[] = {"**", "//", "<<", ">>", "<=", ">=", "==", "!=", "->",
                                             "+=", "-=", "*=", "/=", "%=", "@=", "&=", "|=", "^=", ":="};
  static constexpr std::string_view one = "()[]{},:.;=+-*/%@<>&|^~";
  const char c = s[i];
  const char next = i + 1 < s.size() ? s[i + 1] : '\0';
  // Most operators are one of ( ) , . [ ] : followed by a character that does not extend them.
  if (next != '=' && next != c && !(c == '-' && next == '>')) {
    return one.find(c) == std::string_view::npos ? std::string_view() : s.substr(i, 1);
  }
  for (auto op : three)
    if (s.substr(i, 3) == op) return s.substr(i, 3);
  for (auto op : two)
    if (s.substr(i, 2) == op) return s.substr(i, 2);
  return one.find(c) == std::string_view::npos ? std::string_view() : s.substr(i, 1);
}

// A number literal at s[i] (an Int or a Float) into `t`; `i` moves past it.
void number_token(const Located& loc, std::string_view s, std::size_t& i, std::size_t line, Token& t) {
  std::size_t b = i;
  bool is_float = false;
  while (i < s.size() && digit(s[i])) ++i;
  if (i < s.size() && s[i] == '.') {
    is_float = true;
    ++i;
    while (i < s.size() && digit(s[i])) ++i;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    std::size_t e = i + 1;
    if (e < s.size() && (s[e] == '+' || s[e] == '-')) ++e;
    if (e < s.size() && digit(s[e])) {
      is_float = true;
      i = e;
      while (i < s.size() && digit(s[i])) ++i;
    }
  }
  if (i < s.size() && (ident_char(s[i]) || s[i] == '.')) {
    loc.fail(line, i + 1, "malformed number literal");
  }
  t.text = s.substr(b, i - b);
  if (is_float) {
    t.kind = Tok::Float;
    std::string txt(t.text);
    if (txt.front() == '.') txt.insert(0, "0");
    auto [p, ec] = std::from_chars(txt.data(), txt.data() + txt.size(), t.number);
    if (ec == std::errc::result_out_of_range) {
      // Python gives inf for overflow and 0.0 for underflow.
      bool under = txt.find("e-") != std::string::npos || txt.find("E-") != std::string::npos;
      t.number = under ? 0.0 : std::numeric_limits<double>::infinity();
    } else if (ec != std::errc() || p != txt.data() + txt.size()) {
      loc.fail(line, t.col, "malformed number literal");
    }
  } else {
    t.kind = Tok::Int;
    if (t.text.size() > 1 && t.text[0] == '0') loc.fail(line, t.col, "integer literal with a leading zero");
  }
}

// The escape sequence at s[i] (its backslash, with at least one character after it)
// appended to `value`; `i` moves past it.
void escape(const Located& loc, std::string_view s, std::size_t& i, std::size_t line, std::string& value) {
  char e = s[i + 1];
  std::size_t ecol = i + 1;
  i += 2;
  switch (e) {
    case '\\': value += '\\'; break;
    case '\'': value += '\''; break;
    case '"': value += '"'; break;
    case 'n': value += '\n'; break;
    case 'r': value += '\r'; break;
    case 't': value += '\t'; break;
    case 'a': value += '\a'; break;
    case 'b': value += '\b'; break;
    case 'f': value += '\f'; break;
    case 'v': value += '\v'; break;
    case '0': value += '\0'; break;
    case 'x': case 'u': case 'U': {
      std::size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
      if (i + n > s.size()) loc.fail(line, ecol, "truncated \\" + std::string(1, e) + " escape");
      std::uint32_t cp = 0;
      for (std::size_t k = 0; k < n; ++k) {
        int h = hex_value(s[i + k]);
        if (h < 0) loc.fail(line, ecol, "bad \\" + std::string(1, e) + " escape");
        cp = cp * 16 + static_cast<std::uint32_t>(h);
      }
      i += n;
      if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) loc.fail(line, ecol, "escape is not a valid code point");
      if (e == 'x') value += static_cast<char>(cp);
      else append_utf8(value, cp);
      break;
    }
    default: loc.fail(line, ecol, std::string("unsupported escape \\") + e);
  }
}

// The string literal at s[i] (its quote) into `t`; `i` moves past it. `decoded` keeps the
// value of one with escapes (a deque: values never move).
void string_token(const Located& loc, std::string_view s, std::size_t& i, std::size_t line, Token& t,
                  std::deque<std::string>& decoded) {
  char q = s[i];
  ++i;
  t.kind = Tok::Str;
  // Without escapes the value is the source between the quotes.
  const std::size_t body = i;
  while (i < s.size() && s[i] != q && s[i] != '\\') ++i;
  if (i < s.size() && s[i] == q) {
    t.text = s.substr(body, i - body);
    ++i;
    return;
  }
  std::string& value = decoded.emplace_back(s.substr(body, i - body));
  bool closed = false;
  while (i < s.size()) {
    char d = s[i];
    if (d == q) {
      ++i;
      closed = true;
      break;
    }
    if (d != '\\') {
      value += d;
      ++i;
      continue;
    }
    if (i + 1 >= s.size()) break;
    escape(loc, s, i, line, value);
  }
  if (!closed) loc.fail(line, t.col, "unterminated string literal");
  t.text = value;
}

// The tokens of one line into `out` (cleared first: a parser reuses one vector for every
// line instead of growing a new one per line).
void tokenize(const Located& loc, std::string_view s, std::size_t line, std::size_t max_identifier,
              std::deque<std::string>& decoded, std::vector<Token>& out) {
  out.clear();
  std::size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (c == ' ' || c == '\t') {
      ++i;
      continue;
    }
    if (c == '#') break;  // comment to end of line
    Token t;
    t.col = i + 1;
    if (ident_start(c)) {
      std::size_t b = i;
      while (i < s.size() && ident_char(s[i])) ++i;
      if (i - b > max_identifier) {
        loc.fail(line, t.col, "identifier of " + std::to_string(i - b) + " characters exceeds the limit of " +
                                  std::to_string(max_identifier));
      }
      t.kind = Tok::Name;
      t.text = s.substr(b, i - b);
      if (i < s.size() && (s[i] == '\'' || s[i] == '"')) {
        loc.fail(line, t.col, "string prefix '" + std::string(t.text) + "' is not supported");
      }
    } else if (digit(c) || (c == '.' && i + 1 < s.size() && digit(s[i + 1]))) {
      number_token(loc, s, i, line, t);
    } else if (c == '\'' || c == '"') {
      string_token(loc, s, i, line, t, decoded);
    } else {
      t.kind = Tok::Op;
      t.text = operator_at(s, i);
      if (t.text.empty()) {
        loc.fail(line, t.col, std::string("unexpected character '") + (static_cast<unsigned char>(c) < 0x20 ? '?' : c) + "'");
      }
      i += t.text.size();
    }
    out.push_back(t);
  }
  Token end;
  end.kind = Tok::End;
  end.col = s.size() + 1;
  out.push_back(end);
}

// ---- expressions ----------------------------------------------------------------------

struct Expr {
  enum class K { Name, Int, Float, Str, Tuple, List, Dict, Attr, Call, Subscript, Bin, Unary, Slice, Absent };
  K k = K::Absent;
  std::size_t col = 0;
  std::size_t height = 1;  // levels of the tree below and including this node
  std::string_view s;  // Name id, Int digits, Str value, Attr name, Bin/Unary operator (a token's text)
  double f = 0;
  std::vector<std::unique_ptr<Expr>> a;
  std::vector<std::pair<std::string, std::unique_ptr<Expr>>> kw;

  Expr() = default;
  Expr(const Expr&) = delete;
  Expr& operator=(const Expr&) = delete;
  // Iterative: a tree is freed without recursing over its height.
  ~Expr() {
    std::vector<std::unique_ptr<Expr>> stack;
    auto take = [&stack](Expr& e) {
      for (auto& c : e.a)
        if (c) stack.push_back(std::move(c));
      for (auto& [k, v] : e.kw)
        if (v) stack.push_back(std::move(v));
    };
    take(*this);
    while (!stack.empty()) {
      std::unique_ptr<Expr> e = std::move(stack.back());
      stack.pop_back();
      take(*e);
    }
  }
};
using ExprPtr = std::unique_ptr<Expr>;

ExprPtr make_expr(Expr::K k, std::size_t col) {
  auto e = std::make_unique<Expr>();
  e->k = k;
  e->col = col;
  return e;
}

// Names whose call could run code or reach the interpreter; fx-generated code never uses
// them, so they are refused by name wherever they appear as globals.
bool refused_name(std::string_view name) {
  static const std::unordered_set<std::string_view> s = {
      "__import__", "exec", "eval", "compile", "open", "globals", "locals", "vars", "breakpoint",
      "input", "setattr", "delattr", "__builtins__", "__loader__", "__spec__", "help", "exit", "quit"};
  return s.count(name) != 0;
}

std::string refusal(std::string_view name) {
  return "'" + std::string(name) + "' is refused: fx-generated code never uses it, and it could run code";
}

class ExprParser {
 public:
  ExprParser(const Located& loc, std::size_t line, const std::vector<Token>& toks, std::size_t pos,
             std::size_t max_depth)
      : loc_(loc), line_(line), t_(toks), p_(pos), max_depth_(max_depth) {}

  std::size_t pos() const { return p_; }
  const Token& peek() const { return t_[p_]; }
  bool is_op(std::string_view op) const { return t_[p_].kind == Tok::Op && t_[p_].text == op; }
  void expect_op(std::string_view op) {
    if (!is_op(op)) fail_here("expected '" + std::string(op) + "'");
    ++p_;
  }
  [[noreturn]] void fail_here(const std::string& what) const {
    const Token& t = t_[p_];
    std::string found = t.kind == Tok::End ? "end of line"
                        : t.kind == Tok::Str ? "a string"
                                             : "'" + std::string(t.text) + "'";
    loc_.fail(line_, t.col, what + ", found " + found);
  }

  ExprPtr expr() {
    Depth d(*this);
    ExprPtr l = bitor_();
    static constexpr std::string_view cmp[] = {"<", ">", "==", "!=", "<=", ">="};
    for (auto op : cmp) {
      if (is_op(op)) {
        auto e = binary(std::move(l), [this] { return bitor_(); });
        for (auto op2 : cmp) {
          if (is_op(op2)) fail_here("chained comparisons are not supported");
        }
        return e;
      }
    }
    if (peek().kind == Tok::Name && (peek().text == "if" || peek().text == "and" || peek().text == "or" ||
                                     peek().text == "in" || peek().text == "is" || peek().text == "not" ||
                                     peek().text == "for" || peek().text == "lambda")) {
      loc_.fail(line_, peek().col, "'" + std::string(peek().text) + "' expressions are not supported");
    }
    return l;
  }

 private:
  struct Depth {
    explicit Depth(ExprParser& p) : p_(p) {
      if (++p_.depth_ > p_.max_depth_) p_.too_deep(p_.peek().col);
    }
    ~Depth() { --p_.depth_; }
    ExprParser& p_;
  };
  [[noreturn]] void too_deep(std::size_t col) const {
    loc_.fail(line_, col, "expression nested deeper than " + std::to_string(max_depth_) + " levels");
  }
  // A node with its children attached: its height counts against the depth limit, so long
  // postfix chains and operator chains are bounded like brackets.
  ExprPtr checked(ExprPtr e) {
    std::size_t h = 0;
    for (const auto& c : e->a)
      if (c) h = std::max(h, c->height);
    for (const auto& [k, v] : e->kw) h = std::max(h, v->height);
    e->height = h + 1;
    if (e->height > max_depth_) too_deep(e->col);
    return e;
  }

  template <class F>
  ExprPtr binary(ExprPtr l, F next) {
    const Token& op = peek();
    ++p_;
    auto e = make_expr(Expr::K::Bin, op.col);
    e->s = op.text;
    e->a.push_back(std::move(l));
    e->a.push_back(next());
    return checked(std::move(e));
  }
  template <class F>
  ExprPtr left_assoc(std::initializer_list<std::string_view> ops, F next) {
    ExprPtr l = next();
    while (true) {
      bool matched = false;
      for (auto op : ops) {
        if (is_op(op)) {
          l = binary(std::move(l), next);
          matched = true;
          break;
        }
      }
      if (!matched) return l;
    }
  }
  ExprPtr bitor_() { return left_assoc({"|"}, [this] { return bitxor_(); }); }
  ExprPtr bitxor_() { return left_assoc({"^"}, [this] { return bitand_(); }); }
  ExprPtr bitand_() { return left_assoc({"&"}, [this] { return shift_(); }); }
  ExprPtr shift_() { return left_assoc({"<<", ">>"}, [this] { return arith_(); }); }
  ExprPtr arith_() { return left_assoc({"+", "-"}, [this] { return term_(); }); }
  ExprPtr term_() { return left_assoc({"*", "/", "//", "%", "@"}, [this] { return factor_(); }); }
  ExprPtr factor_() {
    Depth d(*this);
    if (is_op("-") || is_op("+") || is_op("~")) {
      const Token& op = peek();
      ++p_;
      auto e = make_expr(Expr::K::Unary, op.col);
      e->s = op.text;
      e->a.push_back(factor_());
      return checked(std::move(e));
    }
    return power_();
  }
  ExprPtr power_() {
    ExprPtr base = primary_();
    if (is_op("**")) return binary(std::move(base), [this] { return factor_(); });
    return base;
  }
  ExprPtr primary_() {
    ExprPtr e = atom_();
    while (true) {
      if (is_op(".")) {
        ++p_;
        if (peek().kind != Tok::Name) fail_here("expected an attribute name");
        auto a = make_expr(Expr::K::Attr, e->col);
        a->s = peek().text;
        ++p_;
        a->a.push_back(std::move(e));
        e = checked(std::move(a));
      } else if (is_op("(")) {
        Depth d(*this);
        auto c = make_expr(Expr::K::Call, e->col);
        ++p_;
        c->a.push_back(std::move(e));
        while (!is_op(")")) {
          if (peek().kind == Tok::Name && t_[p_ + 1].kind == Tok::Op && t_[p_ + 1].text == "=") {
            std::string key(peek().text);
            for (const auto& [k, v] : c->kw) {
              if (k == key) loc_.fail(line_, peek().col, "keyword argument '" + key + "' repeated");
            }
            p_ += 2;
            c->kw.emplace_back(std::move(key), expr());
          } else {
            if (is_op("*") || is_op("**")) fail_here("argument unpacking is not supported");
            if (!c->kw.empty()) fail_here("positional argument after keyword argument");
            c->a.push_back(expr());
          }
          if (is_op(",")) {
            ++p_;
          } else if (!is_op(")")) {
            fail_here("expected ',' or ')'");
          }
        }
        ++p_;
        e = checked(std::move(c));
      } else if (is_op("[")) {
        Depth d(*this);
        auto s = make_expr(Expr::K::Subscript, e->col);
        std::size_t col = peek().col;
        ++p_;
        std::vector<ExprPtr> items;
        bool trailing_comma = false;
        while (!is_op("]")) {
          items.push_back(slice_item_());
          trailing_comma = false;
          if (is_op(",")) {
            ++p_;
            trailing_comma = true;
          } else if (!is_op("]")) {
            fail_here("expected ',' or ']'");
          }
        }
        if (items.empty()) fail_here("empty subscript");
        ++p_;
        s->a.push_back(std::move(e));
        if (items.size() == 1 && !trailing_comma) {
          s->a.push_back(std::move(items[0]));
        } else {
          auto t = make_expr(Expr::K::Tuple, col);
          t->a = std::move(items);
          s->a.push_back(checked(std::move(t)));
        }
        e = checked(std::move(s));
      } else {
        return e;
      }
    }
  }
  ExprPtr slice_item_() {
    std::size_t col = peek().col;
    ExprPtr start;
    if (!is_op(":")) {
      start = expr();
      if (!is_op(":")) return start;
    }
    auto sl = make_expr(Expr::K::Slice, col);
    ++p_;  // ':'
    ExprPtr stop, step;
    if (!is_op(":") && !is_op(",") && !is_op("]")) stop = expr();
    if (is_op(":")) {
      ++p_;
      if (!is_op(",") && !is_op("]")) step = expr();
    }
    sl->a.push_back(std::move(start));
    sl->a.push_back(std::move(stop));
    sl->a.push_back(std::move(step));
    return checked(std::move(sl));
  }
  ExprPtr atom_() {
    Depth d(*this);
    const Token& t = peek();
    switch (t.kind) {
      case Tok::Name: {
        static const std::unordered_set<std::string_view> kKeywords = {
            "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del", "elif",
            "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda",
            "nonlocal", "not", "or", "pass", "raise", "return", "try", "while", "with", "yield"};
        if (kKeywords.count(t.text)) loc_.fail(line_, t.col, "'" + std::string(t.text) + "' is not supported here");
        auto e = make_expr(Expr::K::Name, t.col);
        e->s = t.text;
        ++p_;
        return e;
      }
      case Tok::Int: {
        auto e = make_expr(Expr::K::Int, t.col);
        e->s = t.text;
        ++p_;
        return e;
      }
      case Tok::Float: {
        auto e = make_expr(Expr::K::Float, t.col);
        e->f = t.number;
        ++p_;
        return e;
      }
      case Tok::Str: {
        auto e = make_expr(Expr::K::Str, t.col);
        e->s = t.text;
        ++p_;
        if (peek().kind == Tok::Str) fail_here("implicit string concatenation is not supported");
        return e;
      }
      case Tok::Op: {
        if (t.text == "(" || t.text == "[") {
          bool list = t.text == "[";
          const char* close = list ? "]" : ")";
          auto e = make_expr(list ? Expr::K::List : Expr::K::Tuple, t.col);
          ++p_;
          bool comma = false;
          while (!is_op(close)) {
            e->a.push_back(expr());
            comma = false;
            if (is_op(",")) {
              ++p_;
              comma = true;
            } else if (!is_op(close)) {
              fail_here(std::string("expected ',' or '") + close + "'");
            }
          }
          ++p_;
          if (!list && e->a.size() == 1 && !comma) return std::move(e->a[0]);  // parentheses
          return checked(std::move(e));
        }
        if (t.text == "{") {
          auto e = make_expr(Expr::K::Dict, t.col);
          ++p_;
          while (!is_op("}")) {
            e->a.push_back(expr());
            expect_op(":");
            e->a.push_back(expr());
            if (is_op(",")) ++p_;
            else if (!is_op("}")) fail_here("expected ',' or '}'");
          }
          ++p_;
          return checked(std::move(e));
        }
        fail_here("expected a value");
      }
      case Tok::End:
        fail_here("expected a value");
    }
    fail_here("expected a value");
  }

  const Located& loc_;
  std::size_t line_;
  const std::vector<Token>& t_;
  std::size_t p_;
  std::size_t max_depth_;
  std::size_t depth_ = 0;
};

// ---- building the graph ---------------------------------------------------------------

struct Line {
  std::size_t number;
  std::string_view text;
};

// Hashes std::string and std::string_view alike, for look-ups by view.
struct TransparentHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

// Python builtins fx-generated code may call (through torch.fx.wrap, or getattr/len).
const std::unordered_set<std::string_view>& python_builtin_functions() {
  static const std::unordered_set<std::string_view> s = {
      "abs", "all", "any", "bool", "divmod", "float", "getattr", "hasattr", "int", "isinstance", "len",
      "list", "max", "min", "pow", "range", "round", "slice", "sum", "tuple", "dict", "set", "str",
      "type", "print", "iter", "next", "zip", "map", "sorted", "reversed", "hash", "id", "repr"};
  return s;
}

// The in-place statement forms fx prints for operator.i* and operator.setitem.
const std::unordered_map<std::string_view, std::string_view>& inplace_operators() {
  static const std::unordered_map<std::string_view, std::string_view> m = {
      {"+=", "iadd"},  {"&=", "iand"}, {"//=", "ifloordiv"}, {"<<=", "ilshift"}, {"%=", "imod"},
      {"*=", "imul"},  {"@=", "imatmul"}, {"|=", "ior"},    {"**=", "ipow"},    {">>=", "irshift"},
      {"-=", "isub"},  {"/=", "itruediv"}, {"^=", "ixor"}};
  return m;
}

class Builder : public Located {
 public:
  Builder(std::string where, const FxParseLimits& limits, Dialect dialect)
      : Located(std::move(where)), limits_(limits), graph_(std::make_shared<Graph>(dialect)) {
    // fx's custom builtins: every generated module defines them.
    aliases_ = {{"torch", "torch"},           {"device", "torch.device"},       {"inf", "math.inf"},
                {"nan", "math.nan"},           {"NoneType", "builtins.NoneType"}, {"fx_pytree", "torch.fx._pytree"},
                {"pytree", "torch.utils._pytree"}};
  }

  std::shared_ptr<Graph> build(std::string_view source);

 private:
  struct Param {
    std::string target;  // "x", "*args"
    std::string raw;     // without the stars
    std::string type;
    std::optional<Value> default_value;
  };

  struct Stmt {
    std::size_t line;
    std::size_t col;
    std::string target;  // assigned name; empty for return/pass
    std::string type;    // `name : type = ...`
    bool is_return = false;
    bool is_pass = false;
    ExprPtr rhs;
    // In-place forms `a += b;  name = a` and `a[i] = v;  name = a`: the operator target and
    // its operands.
    std::string inplace;
    std::vector<ExprPtr> operands;
    std::vector<std::pair<std::string, std::size_t>> frees;
  };
  // The source's lines, its size, line lengths and NUL characters checked.
  std::vector<Line> split_lines(std::string_view source) const;
  // One statement of forward's body (a non-blank line).
  Stmt statement(const Line& l, const std::vector<Token>& t);
  std::size_t assignment(const Line& l, const std::vector<Token>& t, std::size_t at, Stmt& s);
  std::size_t inplace_form(const Line& l, const std::vector<Token>& t, Stmt& s);
  std::size_t free_list(const Line& l, const std::vector<Token>& t, std::size_t p, Stmt& s);
  // The placeholders, named by the leading `n = x` statements; the index of the first
  // statement after those.
  std::size_t placeholders(const std::vector<Param>& params, const std::vector<Stmt>& stmts, std::size_t def_number);
  // The node of one statement, and the names it frees; `statements`: how many the body has.
  void emit(Stmt& s, std::size_t statements, const std::string& return_type);
  // The tokens of `l`, in a vector the next call reuses (lines are handled one at a time).
  const std::vector<Token>& tokens(const Line& l) {
    tokenize(*this, l.text, l.number, limits_.max_identifier_bytes, decoded_, line_tokens_);
    return line_tokens_;
  }
  void header_line(const Line& l, const std::vector<Token>& t);
  // header_line()'s statements and what they share.
  void import_line(const Line& l, const std::vector<Token>& t);
  void from_import_line(const Line& l, const std::vector<Token>& t);
  bool wrap_line(const Line& l, const std::vector<Token>& t);
  std::string_view name_at(const Line& l, const std::vector<Token>& t, std::size_t i, const char* what) const;
  std::string module_at(const Line& l, const std::vector<Token>& t, std::size_t& i) const;
  void expect_import_end(const Line& l, const std::vector<Token>& t, std::size_t i) const;
  // Makes the global `local` stand for `qualified` (refusing names that could run code).
  void bind(const Line& l, const std::vector<Token>& t, const std::string& local, std::size_t col,
            std::string qualified);
  std::vector<Param> def_line(const Line& l, std::string& return_type);
  std::string type_at(const Line& l, const std::vector<Token>& t, std::size_t& i, std::size_t depth) const;
  std::optional<std::string> dotted(const Expr& e) const;
  std::optional<std::string> self_path(const Expr& e) const;
  std::optional<std::string> resolve(const std::string& dotted_name) const;
  std::string function_target(const Expr& func, std::size_t line) const;
  [[noreturn]] void refuse_statement(const Line& l, const std::vector<Token>& t, const std::string& what) const;
  Value value(const Expr& e, std::size_t line);
  // value()'s cases that take more than a line.
  Value name_value(const Expr& e, std::size_t line);
  Value unary_value(const Expr& e, std::size_t line);
  Value attr_value(const Expr& e, std::size_t line);
  Value call_value(const Expr& e, std::size_t line);
  Value device_value(const Expr& call, std::size_t line);
  Value slice_value(const Expr& call, std::size_t line);
  Value index_value(const Expr& e, std::size_t line);
  std::optional<std::int64_t> optional_int(const Expr* e, std::size_t line, const char* what);
  // A slice part: None, an int, or a node (an int when the graph runs).
  void slice_part(Slice& s, int i, const Expr* e, std::size_t line);
  std::int64_t int_literal(const Expr& e, bool negate, std::size_t line) const;
  void args_of(const Expr& call, std::size_t first, std::size_t line, std::vector<Value>& args, Dict& kwargs);
  Node* operation(const Expr& rhs, const std::string& name, std::size_t line, std::size_t name_col);
  Node* make_node(Op op, std::string target, std::vector<Value> args, Dict kwargs, const std::string& name,
                  std::size_t line, std::size_t col);
  // Runs a graph edit for the statement at line:col. The graph refuses what the parser does
  // not check itself (a name whose number is past kMaxNameNumber, a type that is not a type
  // expression); its refusal becomes this parser's FormatError, placed at the statement.
  template <class Edit>
  auto at_statement(std::size_t line, std::size_t col, Edit&& edit) const -> decltype(edit()) {
    try {
      return edit();
    } catch (const Error& e) {
      fail(line, col, e.what());
    }
  }
  bool is_node_name(std::string_view n) const { return graph_->find_node(n) != nullptr; }

  FxParseLimits limits_;
  std::shared_ptr<Graph> graph_;
  std::unordered_map<std::string, std::string> aliases_;  // global name -> qualified
  std::vector<std::pair<std::string, std::size_t>> wrapped_;  // wrap("name") lines: name, line
  std::unordered_set<std::string> wrapped_called_;
  std::unordered_set<std::string, TransparentHash, std::equal_to<>> freed_;
  // String literals with escapes, decoded: tokens and expressions of every line view them.
  mutable std::deque<std::string> decoded_;
  std::vector<Token> line_tokens_;  // tokens()'s result
};

[[noreturn]] void Builder::refuse_statement(const Line& l, const std::vector<Token>& t, const std::string& what) const {
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (t[i].kind != Tok::Name) continue;
    if (refused_name(t[i].text) && !(i > 0 && t[i - 1].kind == Tok::Op && t[i - 1].text == ".")) {
      fail(l.number, t[i].col, refusal(t[i].text));
    }
  }
  if (t[0].kind == Tok::Name && t[0].text == "class") {
    fail(l.number, t[0].col, "class statements are not supported: fx-generated code defines only 'forward'");
  }
  fail(l.number, t[0].col, what);
}

void Builder::header_line(const Line& l, const std::vector<Token>& t) {
  if (t[0].kind == Tok::End) return;  // blank or comment
  if (t[0].kind == Tok::Name && t[0].text == "import") return import_line(l, t);
  if (t[0].kind == Tok::Name && t[0].text == "from") return from_import_line(l, t);
  // NoneType = type(None)
  if (t.size() == 7 && t[0].kind == Tok::Name && t[0].text == "NoneType" && t[1].text == "=" &&
      t[2].text == "type" && t[3].text == "(" && t[4].text == "None" && t[5].text == ")") {
    aliases_["NoneType"] = "builtins.NoneType";
    return;
  }
  if (wrap_line(l, t)) return;
  refuse_statement(l, t, "only imports and wrap() lines may come before 'def forward' in fx-generated code");
}

std::string_view Builder::name_at(const Line& l, const std::vector<Token>& t, std::size_t i, const char* what) const {
  if (t[i].kind != Tok::Name) fail(l.number, t[i].col, std::string("expected ") + what);
  return t[i].text;
}

std::string Builder::module_at(const Line& l, const std::vector<Token>& t, std::size_t& i) const {
  std::string s(name_at(l, t, i++, "a module name"));
  while (t[i].kind == Tok::Op && t[i].text == ".") {
    ++i;
    s.append(".").append(name_at(l, t, i++, "a module name"));
  }
  return s;
}

void Builder::expect_import_end(const Line& l, const std::vector<Token>& t, std::size_t i) const {
  if (t[i].kind != Tok::End) fail(l.number, t[i].col, "unexpected text after the import");
}

void Builder::bind(const Line& l, const std::vector<Token>& t, const std::string& local, std::size_t col,
                   std::string qualified) {
  if (refused_name(local)) fail(l.number, col, refusal(local));
  std::string_view last = std::string_view(qualified).substr(qualified.rfind('.') + 1);
  if (qualified.starts_with("builtins.") && refused_name(last)) fail(l.number, t[1].col, refusal(last));
  aliases_[local] = std::move(qualified);
}

// import a.b [as c]
void Builder::import_line(const Line& l, const std::vector<Token>& t) {
  std::size_t i = 1;
  std::string module = module_at(l, t, i);
  if (t[i].kind == Tok::Name && t[i].text == "as") {
    ++i;
    std::size_t col = t[i].col;
    bind(l, t, std::string(name_at(l, t, i, "a name after 'as'")), col, module);
    ++i;
  } else {
    std::string root = module.substr(0, module.find('.'));
    bind(l, t, root, t[1].col, root);
  }
  expect_import_end(l, t, i);
}

// from a import b [as c]
void Builder::from_import_line(const Line& l, const std::vector<Token>& t) {
  std::size_t i = 1;
  std::string module = module_at(l, t, i);
  if (t[i].kind != Tok::Name || t[i].text != "import") fail(l.number, t[i].col, "expected 'import'");
  ++i;
  std::size_t col = t[i].col;
  std::string name(name_at(l, t, i++, "a name to import"));
  if (refused_name(name)) fail(l.number, col, refusal(name));
  std::string local = name;
  if (t[i].kind == Tok::Name && t[i].text == "as") {
    ++i;
    col = t[i].col;
    local = name_at(l, t, i++, "a name after 'as'");
  }
  expect_import_end(l, t, i);
  bind(l, t, local, col, module + "." + name);
}

// torch.fx._symbolic_trace.wrap("global name"); false if the line is not one.
bool Builder::wrap_line(const Line& l, const std::vector<Token>& t) {
  std::size_t i = 0;
  std::string callee;
  while (t[i].kind == Tok::Name) {
    callee += t[i++].text;
    if (!(t[i].kind == Tok::Op && t[i].text == "." && t[i + 1].kind == Tok::Name)) break;
    callee += '.';
    ++i;
  }
  if (callee.empty() || !(t[i].kind == Tok::Op && t[i].text == "(" && t[i + 1].kind == Tok::Str &&
                          t[i + 2].kind == Tok::Op && t[i + 2].text == ")" && t[i + 3].kind == Tok::End &&
                          resolve(callee) == "torch.fx._symbolic_trace.wrap")) {
    return false;
  }
  const std::string name(t[i + 1].text);
  for (const auto& [w, line] : wrapped_) {
    if (w == name) fail(l.number, t[i + 1].col, "'" + name + "' is wrapped twice");
  }
  wrapped_.emplace_back(name, l.number);
  return true;
}

// A type annotation: a dotted global, optionally subscripted; `()`. Returns the canonical
// type expression (Node::type) with every name resolved through the globals.
std::string Builder::type_at(const Line& l, const std::vector<Token>& t, std::size_t& i, std::size_t depth) const {
  if (depth > detail::kMaxTypeDepth) fail(l.number, t[i].col, "type annotation nested too deeply");
  if (t[i].kind == Tok::Op && t[i].text == "(") {
    if (t[i + 1].kind != Tok::Op || t[i + 1].text != ")") fail(l.number, t[i + 1].col, "expected ')' in the type '()'");
    i += 2;
    return "()";
  }
  if (t[i].kind != Tok::Name) fail(l.number, t[i].col, "expected a type");
  std::size_t col = t[i].col;
  std::string name(t[i++].text);
  while (t[i].kind == Tok::Op && t[i].text == "." && t[i + 1].kind == Tok::Name) {
    name += "." + std::string(t[i + 1].text);
    i += 2;
  }
  auto q = resolve(name);
  if (!q) fail(l.number, col, "unknown global '" + name + "' in a type annotation");
  std::string out = *q;
  if (out == "builtins.Ellipsis") out = "...";
  else if (out.starts_with("builtins.")) out = out.substr(9);
  if (t[i].kind == Tok::Op && t[i].text == "[") {
    ++i;
    out += '[';
    while (true) {
      out += type_at(l, t, i, depth + 1);
      if (t[i].kind == Tok::Op && t[i].text == ",") {
        out += ',';
        ++i;
        continue;
      }
      if (t[i].kind == Tok::Op && t[i].text == "]") {
        ++i;
        break;
      }
      fail(l.number, t[i].col, "expected ',' or ']' in a type annotation");
    }
    out += ']';
  }
  return out;
}

std::vector<Builder::Param> Builder::def_line(const Line& l, std::string& return_type) {
  const std::vector<Token>& t = tokens(l);
  std::size_t i = 0;
  auto expect = [&](Tok k, std::string_view text, const char* what) {
    if (t[i].kind != k || (!text.empty() && t[i].text != text)) fail(l.number, t[i].col, std::string("expected ") + what);
    ++i;
  };
  expect(Tok::Name, "def", "'def'");
  expect(Tok::Name, "forward", "'forward'");
  expect(Tok::Op, "(", "'('");
  expect(Tok::Name, "self", "'self' as the first parameter");
  std::vector<Param> params;
  bool seen_default = false, seen_star = false;
  while (t[i].kind == Tok::Op && t[i].text == ",") {
    ++i;
    if (t[i].kind == Tok::Op && t[i].text == ")") break;
    Param p;
    if (t[i].kind == Tok::Op && (t[i].text == "*" || t[i].text == "**")) {
      p.target = t[i].text;
      if (t[i].text == "*" && seen_star) fail(l.number, t[i].col, "a second '*' parameter");
      seen_star = seen_star || t[i].text == "*";
      ++i;
    }
    if (t[i].kind != Tok::Name) fail(l.number, t[i].col, "expected a parameter name");
    for (const auto& q : params) {
      if (q.raw == t[i].text) fail(l.number, t[i].col, "parameter '" + q.raw + "' repeated");
    }
    if (t[i].text == "self") fail(l.number, t[i].col, "parameter 'self' repeated");
    p.raw = t[i].text;
    p.target += t[i].text;
    std::size_t name_col = t[i].col;
    ++i;
    if (t[i].kind == Tok::Op && t[i].text == ":") {
      ++i;
      p.type = type_at(l, t, i, 0);
    }
    if (t[i].kind == Tok::Op && t[i].text == "=") {
      if (p.target[0] == '*') fail(l.number, t[i].col, "a variadic parameter cannot have a default");
      ExprParser ep(*this, l.number, t, i + 1, limits_.max_expression_depth);
      ExprPtr e = ep.expr();
      std::size_t col = e->col;
      i = ep.pos();
      p.default_value = value(*e, l.number);
      if (p.default_value->contains_node()) fail(l.number, col, "a default value must be a constant");
      seen_default = true;
    } else if (seen_default && p.target[0] != '*') {
      fail(l.number, name_col, "parameter without a default after one with a default");
    }
    params.push_back(std::move(p));
  }
  expect(Tok::Op, ")", "')'");
  if (t[i].kind == Tok::Op && t[i].text == "->") {
    ++i;
    return_type = type_at(l, t, i, 0);
  }
  expect(Tok::Op, ":", "':'");
  if (t[i].kind != Tok::End) fail(l.number, t[i].col, "expected the end of the line after 'def forward(...):'");
  return params;
}

// A dotted name (a.b.c) or nullopt; iterative, linear in the chain's length.
std::optional<std::string> Builder::dotted(const Expr& e) const {
  std::vector<std::string_view> parts;
  const Expr* p = &e;
  while (p->k == Expr::K::Attr) {
    parts.push_back(p->s);
    p = p->a[0].get();
  }
  if (p->k != Expr::K::Name) return std::nullopt;
  std::string out(p->s);
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    out += '.';
    out += *it;
  }
  return out;
}

// self.a.b, getattr(self.a, "0"), getattr(self, "x") -> "a.b", "a.0", "x"; "" for self.
// Iterative, linear in the chain's length.
std::optional<std::string> Builder::self_path(const Expr& e) const {
  std::vector<std::string_view> parts;
  const Expr* p = &e;
  while (true) {
    if (p->k == Expr::K::Name) {
      if (p->s != "self") return std::nullopt;
      break;
    }
    if (p->k == Expr::K::Attr) {
      parts.push_back(p->s);
      p = p->a[0].get();
      continue;
    }
    if (p->k == Expr::K::Call && p->a.size() == 3 && p->kw.empty() && p->a[0]->k == Expr::K::Name &&
        p->a[0]->s == "getattr" && p->a[2]->k == Expr::K::Str) {
      const std::string_view part = p->a[2]->s;
      if (part.empty() || part.find('.') != std::string::npos) return std::nullopt;
      parts.push_back(part);
      p = p->a[1].get();
      continue;
    }
    return std::nullopt;
  }
  std::string out;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    if (!out.empty()) out += '.';
    out += *it;
  }
  return out;
}

// The qualified name a global (possibly dotted) stands for in the module PyTorch runs.
std::optional<std::string> Builder::resolve(const std::string& name) const {
  std::string root = name.substr(0, name.find('.'));
  std::string rest = name.substr(root.size());
  if (auto it = aliases_.find(root); it != aliases_.end()) return it->second + rest;
  if (detail::is_python_builtin(root)) return "builtins." + name;
  return std::nullopt;
}

std::string Builder::function_target(const Expr& func, std::size_t line) const {
  auto d = dotted(func);
  if (!d) fail(line, func.col, "unsupported callee");
  std::string root = d->substr(0, d->find('.'));
  if (refused_name(root)) fail(line, func.col, refusal(root));
  auto q = resolve(*d);
  if (!q) fail(line, func.col, "unknown function '" + *d + "' (not a global of the import block)");
  std::string target = *q;
  if (target.starts_with("_operator.")) target.erase(0, 1);  // fx's _operator is operator
  if (target.starts_with("builtins.") && !aliases_.count(root) &&
      !python_builtin_functions().count(std::string_view(target).substr(9))) {
    fail(line, func.col, "unknown function '" + *d + "'");
  }
  return target;
}

std::int64_t Builder::int_literal(const Expr& e, bool negate, std::size_t line) const {
  std::uint64_t mag = 0;
  auto [p, ec] = std::from_chars(e.s.data(), e.s.data() + e.s.size(), mag);
  const std::uint64_t limit = negate ? std::uint64_t{1} << 63 : (std::uint64_t{1} << 63) - 1;
  if (ec != std::errc() || p != e.s.data() + e.s.size() || mag > limit) {
    fail(line, e.col, "integer literal " + std::string(e.s).substr(0, 40) + " does not fit in 64 bits");
  }
  if (negate) return mag == (std::uint64_t{1} << 63) ? std::numeric_limits<std::int64_t>::min() : -static_cast<std::int64_t>(mag);
  return static_cast<std::int64_t>(mag);
}

std::optional<std::int64_t> Builder::optional_int(const Expr* e, std::size_t line, const char* what) {
  if (!e) return std::nullopt;
  Value v = value(*e, line);
  if (v.is_none()) return std::nullopt;
  if (v.is_int()) return v.to_int();
  fail(line, e->col, std::string(what) + " must be an int or None");
}

void Builder::slice_part(Slice& s, int i, const Expr* e, std::size_t line) {
  if (!e) return;
  Value v = value(*e, line);
  if (!v.is_none() && !v.is_int() && !v.is_node()) {
    fail(line, e->col, std::string("slice ") + (i == 0 ? "start" : i == 1 ? "stop" : "step") +
                           " must be an int or None (or a value that is one)");
  }
  s.set_part(i, v);
}

Value Builder::value(const Expr& e, std::size_t line) {
  switch (e.k) {
    case Expr::K::Name: return name_value(e, line);
    case Expr::K::Int: return Value(int_literal(e, false, line));
    case Expr::K::Float: return Value(e.f);
    case Expr::K::Str: return Value(std::string(e.s));
    case Expr::K::Tuple:
    case Expr::K::List: {
      std::vector<Value> items;
      items.reserve(e.a.size());
      for (const auto& x : e.a) items.push_back(value(*x, line));
      if (e.k == Expr::K::List) return Value(List{std::move(items)});
      return Value(Tuple{std::move(items)});
    }
    case Expr::K::Dict: {
      Dict d;
      std::unordered_set<std::string_view> keys;
      for (std::size_t i = 0; i < e.a.size(); i += 2) {
        if (e.a[i]->k != Expr::K::Str) fail(line, e.a[i]->col, "dict keys must be strings");
        if (!keys.insert(e.a[i]->s).second) fail(line, e.a[i]->col, "dict key '" + std::string(e.a[i]->s) + "' repeated");
        d.items.emplace_back(std::string(e.a[i]->s), value(*e.a[i + 1], line));
      }
      return Value(std::move(d));
    }
    case Expr::K::Unary: return unary_value(e, line);
    case Expr::K::Attr: return attr_value(e, line);
    case Expr::K::Call: return call_value(e, line);
    case Expr::K::Slice:
      fail(line, e.col, "a slice is only allowed inside a subscript");
    case Expr::K::Subscript:
      fail(line, e.col, "nested subscript (fx puts one operation per line)");
    case Expr::K::Bin:
      fail(line, e.col, "nested operation '" + std::string(e.s) + "' (fx puts one operation per line)");
    case Expr::K::Absent:
      break;
  }
  fail(line, e.col, "unsupported expression");
}

// True, False, None, a node, or the globals inf, nan and Ellipsis.
Value Builder::name_value(const Expr& e, std::size_t line) {
  if (e.s == "True") return Value(true);
  if (e.s == "False") return Value(false);
  if (e.s == "None") return Value(None{});
  if (Node* n = graph_->find_node(e.s)) {
    if (freed_.count(e.s)) fail(line, e.col, "'" + std::string(e.s) + "' is used after it was freed");
    return Value(n);
  }
  if (refused_name(e.s)) fail(line, e.col, refusal(e.s));
  auto q = resolve(std::string(e.s));
  if (q == "math.inf") return Value(std::numeric_limits<double>::infinity());
  if (q == "math.nan") return Value(std::numeric_limits<double>::quiet_NaN());
  if (q == "builtins.Ellipsis") return Value(Ellipsis{});
  if (e.s == "self") fail(line, e.col, "'self' can only be used for attribute access");
  if (q) fail(line, e.col, "the global '" + std::string(e.s) + "' (" + *q + ") is not a value fx prints");
  fail(line, e.col, "undefined name '" + std::string(e.s) + "'");
}

// A negative number (or +x, -inf): fx prints constants, never an operation, here.
Value Builder::unary_value(const Expr& e, std::size_t line) {
  const Expr& x = *e.a[0];
  bool neg = e.s == "-";
  if (e.s != "~") {
    if (x.k == Expr::K::Int) return Value(int_literal(x, neg, line));
    if (x.k == Expr::K::Float) return Value(neg ? -x.f : x.f);
    if (x.k == Expr::K::Name && !is_node_name(x.s)) {
      auto q = resolve(std::string(x.s));
      if (q == "math.inf" || q == "math.nan") {
        double d = q == "math.inf" ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
        return Value(neg ? -d : d);
      }
    }
  }
  fail(line, e.col, "nested operation '" + std::string(e.s) + "' (fx puts one operation per line)");
}

// torch.float32, torch.strided, torch.contiguous_format and their kin.
Value Builder::attr_value(const Expr& e, std::size_t line) {
  auto d = dotted(e);
  if (d && !is_node_name(d->substr(0, d->find('.')))) {
    auto q = resolve(*d);
    if (q && q->starts_with("torch.")) {
      static const std::unordered_map<std::string_view, DType> kDTypes = {
          {"torch.float32", DType::Float32}, {"torch.float", DType::Float32},
          {"torch.float64", DType::Float64}, {"torch.double", DType::Float64},
          {"torch.int64", DType::Int64},     {"torch.long", DType::Int64},
          {"torch.bool", DType::Bool},       {"torch.uint8", DType::UInt8},
          {"torch.float16", DType::Float16}, {"torch.half", DType::Float16},
          {"torch.bfloat16", DType::BFloat16}, {"torch.int32", DType::Int32},
          {"torch.int", DType::Int32},       {"torch.int8", DType::Int8},
          {"torch.int16", DType::Int16},     {"torch.short", DType::Int16}};
      if (auto it = kDTypes.find(*q); it != kDTypes.end()) return Value(it->second);
      if (*q == "torch.strided") return Value(Layout::Strided);
      if (*q == "torch.contiguous_format") return Value(MemoryFormat::Contiguous);
      if (*q == "torch.preserve_format") return Value(MemoryFormat::Preserve);
      if (*q == "torch.channels_last") return Value(MemoryFormat::ChannelsLast);
      fail(line, e.col, "unsupported constant '" + *d + "'");
    }
    if (!q) {
      std::string root = d->substr(0, d->find('.'));
      if (refused_name(root)) fail(line, e.col, refusal(root));
      fail(line, e.col, "unknown global '" + root + "'");
    }
  }
  fail(line, e.col, "nested attribute access (fx puts one operation per line)");
}

// device(...) and slice(...), the calls fx prints as values.
Value Builder::call_value(const Expr& e, std::size_t line) {
  auto d = dotted(*e.a[0]);
  std::optional<std::string> q;
  if (d && !is_node_name(d->substr(0, d->find('.')))) q = resolve(*d);
  if (q == "torch.device") return device_value(e, line);
  if (q == "builtins.slice") return slice_value(e, line);
  if (d) {
    std::string root = d->substr(0, d->find('.'));
    if (refused_name(root)) fail(line, e.col, refusal(root));
  }
  fail(line, e.col, "nested call (fx puts one operation per line)");
}

Value Builder::device_value(const Expr& e, std::size_t line) {
  Device dev;
  const Expr* type = nullptr;
  const Expr* index = nullptr;
  if (e.a.size() > 3) fail(line, e.col, "device() takes at most 2 arguments");
  if (e.a.size() >= 2) type = e.a[1].get();
  if (e.a.size() == 3) index = e.a[2].get();
  for (const auto& [k, v] : e.kw) {
    if (k == "type" && !type) type = v.get();
    else if (k == "index" && !index) index = v.get();
    else fail(line, v->col, "unsupported device() argument '" + k + "'");
  }
  if (!type || type->k != Expr::K::Str) fail(line, e.col, "device() needs a type string");
  dev.type = type->s;
  if (auto pos = dev.type.find(':'); pos != std::string::npos) {
    std::string idx = dev.type.substr(pos + 1);
    dev.type.resize(pos);
    std::int64_t n = -1;
    auto [p, ec] = std::from_chars(idx.data(), idx.data() + idx.size(), n);
    if (ec != std::errc() || p != idx.data() + idx.size() || n < 0 || index) fail(line, type->col, "bad device string");
    dev.index = n;
  }
  if (index) {
    auto i = optional_int(index, line, "device index");
    if (i) {
      if (*i < 0) fail(line, index->col, "device index must be >= 0");
      dev.index = *i;
    }
  }
  return Value(std::move(dev));
}

Value Builder::slice_value(const Expr& e, std::size_t line) {
  if (!e.kw.empty()) fail(line, e.col, "slice() takes no keyword arguments");
  std::size_t n = e.a.size() - 1;
  if (n < 1 || n > 3) fail(line, e.col, "slice() takes 1 to 3 arguments");
  Slice s;
  if (n == 1) {
    slice_part(s, 1, e.a[1].get(), line);
  } else {
    slice_part(s, 0, e.a[1].get(), line);
    slice_part(s, 1, e.a[2].get(), line);
    if (n == 3) slice_part(s, 2, e.a[3].get(), line);
  }
  return Value(s);
}

Value Builder::index_value(const Expr& e, std::size_t line) {
  if (e.k == Expr::K::Slice) {
    Slice s;
    for (int i = 0; i < 3; ++i) slice_part(s, i, e.a[static_cast<std::size_t>(i)].get(), line);
    return Value(s);
  }
  if (e.k == Expr::K::Tuple) {
    std::vector<Value> items;
    for (const auto& x : e.a) items.push_back(index_value(*x, line));
    return Value(Tuple{std::move(items)});
  }
  return value(e, line);
}

void Builder::args_of(const Expr& call, std::size_t first, std::size_t line, std::vector<Value>& args, Dict& kwargs) {
  for (std::size_t i = first; i < call.a.size(); ++i) args.push_back(value(*call.a[i], line));
  for (const auto& [k, v] : call.kw) kwargs.items.emplace_back(k, value(*v, line));
}

Node* Builder::make_node(Op op, std::string target, std::vector<Value> args, Dict kwargs, const std::string& name,
                         std::size_t line, std::size_t col) {
  Node* n = at_statement(line, col, [&] {
    return graph_->create_node(op, std::move(target), std::move(args), std::move(kwargs), name);
  });
  if (n->name() != name) {
    fail(line, col, "the name '" + name + "' cannot be kept (a graph names this node '" + n->name() + "')");
  }
  return n;
}

Node* Builder::operation(const Expr& rhs, const std::string& name, std::size_t line, std::size_t name_col) {
  std::vector<Value> args;
  Dict kwargs;
  if (auto path = self_path(rhs)) {
    if (path->empty()) fail(line, rhs.col, "'self' is not a value");
    return make_node(Op::GetAttr, *path, {}, {}, name, line, name_col);
  }
  switch (rhs.k) {
    case Expr::K::Call: {
      const Expr& func = *rhs.a[0];
      if (auto path = self_path(func)) {
        if (path->empty()) fail(line, func.col, "'self' is not callable");
        args_of(rhs, 1, line, args, kwargs);
        return make_node(Op::CallModule, *path, std::move(args), std::move(kwargs), name, line, name_col);
      }
      if (func.k == Expr::K::Attr) {
        auto d = dotted(func);
        std::string root = d ? d->substr(0, d->find('.')) : std::string();
        if (!d || is_node_name(root)) {
          // A method call on a value: v.method(args).
          args.push_back(value(*func.a[0], line));
          args_of(rhs, 1, line, args, kwargs);
          return make_node(Op::CallMethod, std::string(func.s), std::move(args), std::move(kwargs), name, line, name_col);
        }
      }
      if (func.k != Expr::K::Attr && func.k != Expr::K::Name) fail(line, func.col, "unsupported callee");
      if (func.k == Expr::K::Name && is_node_name(func.s)) fail(line, func.col, "'" + std::string(func.s) + "' is a value, not a function");
      std::string target = function_target(func, line);
      args_of(rhs, 1, line, args, kwargs);
      Node* n = make_node(Op::CallFunction, std::move(target), std::move(args), std::move(kwargs), name, line, name_col);
      std::string callee = *dotted(func);
      for (const auto& [w, wline] : wrapped_) {
        if (w == callee) {
          n->meta().set("is_wrapped", true);
          wrapped_called_.insert(w);
        }
      }
      return n;
    }
    case Expr::K::Bin: {
      static const std::unordered_map<std::string_view, std::string_view> kOps = {
          {"+", "add"},  {"-", "sub"},     {"*", "mul"}, {"/", "truediv"}, {"//", "floordiv"}, {"%", "mod"},
          {"**", "pow"}, {"@", "matmul"},  {"<<", "lshift"}, {">>", "rshift"}, {"&", "and_"}, {"|", "or_"},
          {"^", "xor"},  {"==", "eq"},     {"!=", "ne"}, {"<", "lt"}, {">", "gt"}, {"<=", "le"}, {">=", "ge"}};
      auto it = kOps.find(rhs.s);
      if (it == kOps.end()) fail(line, rhs.col, "unsupported operator '" + std::string(rhs.s) + "'");
      args.push_back(value(*rhs.a[0], line));
      args.push_back(value(*rhs.a[1], line));
      return make_node(Op::CallFunction, "operator." + std::string(it->second), std::move(args), {}, name, line, name_col);
    }
    case Expr::K::Unary: {
      const Expr& x = *rhs.a[0];
      if (x.k == Expr::K::Int || x.k == Expr::K::Float) {
        fail(line, rhs.col, "assignment of a constant (fx emits an operation on every line)");
      }
      std::string op = rhs.s == "-" ? "operator.neg" : rhs.s == "+" ? "operator.pos" : "operator.invert";
      args.push_back(value(x, line));
      return make_node(Op::CallFunction, std::move(op), std::move(args), {}, name, line, name_col);
    }
    case Expr::K::Subscript: {
      args.push_back(value(*rhs.a[0], line));
      args.push_back(index_value(*rhs.a[1], line));
      return make_node(Op::CallFunction, "operator.getitem", std::move(args), {}, name, line, name_col);
    }
    case Expr::K::Attr: {
      auto d = dotted(rhs);
      std::string root = d ? d->substr(0, d->find('.')) : std::string();
      if (d && !is_node_name(root)) {
        (void)value(rhs, line);  // a dtype/layout constant or an error
        fail(line, rhs.col, "assignment of a constant (fx emits an operation on every line)");
      }
      args.push_back(value(*rhs.a[0], line));
      args.push_back(Value(std::string(rhs.s)));
      return make_node(Op::CallFunction, "builtins.getattr", std::move(args), {}, name, line, name_col);
    }
    default:
      (void)value(rhs, line);
      fail(line, rhs.col, "assignment of a plain value (fx emits an operation on every line)");
  }
}

std::shared_ptr<Graph> Builder::build(std::string_view source) {
  const std::vector<Line> lines = split_lines(source);
  std::size_t i = 0;
  auto starts_def = [](std::string_view t) { return t.starts_with("def ") || t.starts_with("def\t"); };
  for (; i < lines.size() && !starts_def(lines[i].text); ++i) header_line(lines[i], tokens(lines[i]));
  if (i == lines.size()) fail(lines.back().number, 1, "no 'def forward(self, ...):' line");
  const std::size_t def_number = lines[i].number;
  std::string return_type;
  std::vector<Param> params = def_line(lines[i], return_type);
  ++i;

  std::vector<Stmt> stmts;
  bool returned = false;
  for (; i < lines.size(); ++i) {
    const Line& l = lines[i];
    const std::vector<Token>& t = tokens(l);
    if (t[0].kind == Tok::End) continue;
    if (l.text[0] != ' ' && l.text[0] != '\t') refuse_statement(l, t, "unexpected unindented line after 'def forward'");
    if (returned) fail(l.number, t[0].col, "statement after 'return'");
    stmts.push_back(statement(l, t));
    returned = stmts.back().is_return;
  }
  if (!returned && !(stmts.size() == 1 && stmts[0].is_pass)) {
    fail(lines.back().number, 1, "no 'return' statement in forward");
  }
  for (std::size_t k = placeholders(params, stmts, def_number); k < stmts.size(); ++k) {
    emit(stmts[k], stmts.size(), return_type);
  }
  for (const auto& [name, line] : wrapped_) {
    if (!wrapped_called_.count(name)) fail(line, 1, "wrap(\"" + name + "\") names a function no node calls");
  }
  return graph_;
}

std::vector<Line> Builder::split_lines(std::string_view source) const {
  if (source.size() > limits_.max_source_bytes) {
    fail(1, 1, "source of " + std::to_string(source.size()) + " bytes exceeds the limit of " +
                   std::to_string(limits_.max_source_bytes));
  }
  std::vector<Line> lines;
  {
    std::size_t start = 0, n = 1;
    while (true) {
      auto nl = source.find('\n', start);
      std::string_view text = source.substr(start, nl == std::string_view::npos ? nl : nl - start);
      if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
      if (text.size() > limits_.max_line_bytes) {
        fail(n, 1, "line of " + std::to_string(text.size()) + " bytes exceeds the limit of " +
                       std::to_string(limits_.max_line_bytes));
      }
      lines.push_back({n++, text});
      if (nl == std::string_view::npos) break;
      start = nl + 1;
    }
  }
  for (const Line& l : lines) {
    for (std::size_t i = 0; i < l.text.size(); ++i) {
      if (l.text[i] == '\0') fail(l.number, i + 1, "NUL character in source");
    }
  }
  return lines;
}

Builder::Stmt Builder::statement(const Line& l, const std::vector<Token>& t) {
  Stmt s;
  s.line = l.number;
  s.col = t[0].col;
  std::size_t p = 0;
  if (t[0].kind == Tok::Name && t[0].text == "return") {
    s.is_return = true;
    if (t[1].kind == Tok::End) {
      s.rhs = make_expr(Expr::K::Name, t[0].col + 6);
      s.rhs->s = "None";
      p = 1;
    } else {
      ExprParser ep(*this, l.number, t, 1, limits_.max_expression_depth);
      s.rhs = ep.expr();
      if (ep.is_op(",")) ep.fail_here("returning a bare tuple is not supported");
      p = ep.pos();
    }
  } else if (t[0].kind == Tok::Name && t[0].text == "pass") {
    s.is_pass = true;
    p = 1;
  } else if (t[0].kind == Tok::Name && t[1].kind == Tok::Op && (t[1].text == "=" || t[1].text == ":")) {
    p = assignment(l, t, 0, s);
  } else {
    static const std::unordered_set<std::string_view> kStmt = {
        "if", "for", "while", "with", "try", "def", "class", "del", "import", "from", "global",
        "nonlocal", "assert", "raise", "yield", "lambda", "async", "await", "print", "elif", "else"};
    if (t[0].kind == Tok::Name && kStmt.count(t[0].text)) {
      refuse_statement(l, t, "'" + std::string(t[0].text) + "' statements are not supported");
    }
    p = assignment(l, t, inplace_form(l, t, s), s);
  }
  if (t[p].kind == Tok::Op && t[p].text == ";") p = free_list(l, t, p + 1, s);
  if (t[p].kind != Tok::End) fail(l.number, t[p].col, "unexpected text at the end of the statement");
  return s;
}

// name [: type] = <operation>, the name at t[at]; the position after it.
std::size_t Builder::assignment(const Line& l, const std::vector<Token>& t, std::size_t at, Stmt& s) {
  s.target = t[at].text;
  s.col = t[at].col;
  std::size_t p = at + 1;
  if (t[p].kind == Tok::Op && t[p].text == ":") {
    ++p;
    s.type = type_at(l, t, p, 0);
  }
  if (t[p].kind != Tok::Op || t[p].text != "=") fail(l.number, t[p].col, "expected '='");
  ExprParser ep(*this, l.number, t, p + 1, limits_.max_expression_depth);
  if (ep.peek().kind == Tok::Name && ep.peek().text == "None") {
    fail(l.number, ep.peek().col, "assignment of a constant (fx emits an operation on every line)");
  }
  s.rhs = ep.expr();
  if (ep.is_op("=")) ep.fail_here("chained assignment is only supported in the free list after ';'");
  if (ep.is_op(",")) ep.fail_here("tuple assignment is not supported");
  return ep.pos();
}

// fx's in-place forms `a += b;  name = a` and `a[i] = v;  name = a` up to the `;`: the
// operator and its operands into `s`; the position of the name after the `;`.
std::size_t Builder::inplace_form(const Line& l, const std::vector<Token>& t, Stmt& s) {
  ExprParser ep(*this, l.number, t, 0, limits_.max_expression_depth);
  ExprPtr lhs = ep.expr();
  const Token& op = ep.peek();
  auto aug = op.kind == Tok::Op ? inplace_operators().find(op.text) : inplace_operators().end();
  const bool setitem = op.kind == Tok::Op && op.text == "=" && lhs->k == Expr::K::Subscript;
  if (aug == inplace_operators().end() && !setitem) {
    refuse_statement(l, t, "unsupported statement (expected 'name = ...' or 'return ...')");
  }
  const std::size_t op_col = op.col;
  ExprParser rp(*this, l.number, t, ep.pos() + 1, limits_.max_expression_depth);
  ExprPtr rhs = rp.expr();
  const std::size_t p = rp.pos();
  if (!(t[p].kind == Tok::Op && t[p].text == ";" && t[p + 1].kind == Tok::Name)) {
    fail(l.number, op_col, (setitem ? std::string("item assignment") : "augmented assignment '" + std::string(op.text) + "'") +
                               " must be followed by ';  <name> = <target>' (fx's in-place form)");
  }
  if (setitem) {
    s.inplace = "operator.setitem";
    s.operands.push_back(std::move(lhs->a[0]));
    s.operands.push_back(std::move(lhs->a[1]));
  } else {
    s.inplace = "operator." + std::string(aug->second);
    s.operands.push_back(std::move(lhs));
  }
  s.operands.push_back(std::move(rhs));
  return p + 1;
}

// The free list after `;`, from t[p]: `name = name = ... = None`; the position after it.
std::size_t Builder::free_list(const Line& l, const std::vector<Token>& t, std::size_t p, Stmt& s) {
  while (true) {
    if (t[p].kind != Tok::Name) fail(l.number, t[p].col, "expected a name in the free list");
    if (t[p].text == "None") {
      if (s.frees.empty()) fail(l.number, t[p].col, "expected a name in the free list");
      ++p;
      break;
    }
    s.frees.emplace_back(t[p].text, t[p].col);
    ++p;
    if (t[p].kind != Tok::Op || t[p].text != "=") fail(l.number, t[p].col, "expected '=' in the free list");
    ++p;
  }
  return p;
}

std::size_t Builder::placeholders(const std::vector<Param>& params, const std::vector<Stmt>& stmts,
                                  std::size_t def_number) {
  // Leading `n = x` lines rename placeholders (`_args = args` for `*args`).
  std::unordered_map<std::string, std::string> alias;
  std::unordered_map<std::string, const Param*> by_raw;
  for (const Param& p : params) by_raw[p.raw] = &p;
  std::size_t k = 0;
  for (; k < stmts.size(); ++k) {
    const Stmt& s = stmts[k];
    if (s.is_return || s.is_pass || !s.inplace.empty() || !s.type.empty() || !s.frees.empty() ||
        s.rhs->k != Expr::K::Name || !by_raw.count(std::string(s.rhs->s)) || alias.count(std::string(s.rhs->s)) || by_raw.count(s.target)) {
      break;
    }
    alias[std::string(s.rhs->s)] = s.target;
  }
  for (const Param& p : params) {
    auto it = alias.find(p.raw);
    std::string name = it == alias.end() ? p.raw : it->second;
    Node* n = at_statement(def_number, 1, [&] { return graph_->create_node(Op::Placeholder, p.target, {}, {}, name); });
    if (n->name() != name) {
      fail(def_number, 1, "the placeholder name '" + name + "' cannot be kept (a graph names it '" + n->name() + "')");
    }
    if (p.default_value) at_statement(def_number, 1, [&] { n->set_args({*p.default_value}); });
    if (!p.type.empty()) at_statement(def_number, 1, [&] { n->set_type(p.type); });
  }
  return k;
}

void Builder::emit(Stmt& s, std::size_t statements, const std::string& return_type) {
  if (s.is_pass) {
    if (statements != 1) fail(s.line, s.col, "'pass' is only supported as the whole body");
    return;
  }
  if (s.is_return) {
    Value result = value(*s.rhs, s.line);
    Node* out = at_statement(s.line, s.col, [&] { return graph_->output(std::move(result)); });
    if (!return_type.empty()) at_statement(s.line, s.col, [&] { out->set_type(return_type); });
  } else {
    if (is_node_name(s.target)) fail(s.line, s.col, "'" + s.target + "' is assigned twice");
    Node* n;
    if (!s.inplace.empty()) {
      std::vector<Value> args;
      for (const auto& o : s.operands) {
        args.push_back(&o == &s.operands[1] && s.inplace == "operator.setitem" ? index_value(*o, s.line)
                                                                                : value(*o, s.line));
      }
      // fx prints `name = <first operand>` after the statement.
      if (s.rhs->k != Expr::K::Name || !(value(*s.rhs, s.line) == args[0])) {
        fail(s.line, s.rhs->col, "the in-place result must be named after its first operand");
      }
      n = make_node(Op::CallFunction, s.inplace, std::move(args), {}, s.target, s.line, s.col);
    } else {
      n = operation(*s.rhs, s.target, s.line, s.col);
    }
    if (!s.type.empty()) at_statement(s.line, s.col, [&] { n->set_type(s.type); });
  }
  for (const auto& [name, col] : s.frees) {
    if (!is_node_name(name)) fail(s.line, col, "freeing undefined name '" + name + "'");
    if (!freed_.insert(name).second) fail(s.line, col, "'" + name + "' is freed twice");
  }
}

}  // namespace

std::shared_ptr<Graph> parse_fx_code(std::string_view source, std::string_view where, const FxParseLimits& limits,
                                     Dialect dialect) {
  Builder b{std::string(where), limits, dialect};
  return b.build(source);
}

}  // namespace fxpack::interop
