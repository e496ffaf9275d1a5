// PyTorch's schema syntax: `name[.overload](Type name=default, *, ...) -> returns`.
// src/ops/gen_op_table.py validates the table's schemas with the same grammar at build time;
// this parser reads them (and user ops' schemas) at registration.
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>

#include "fxpack/ops.hpp"

namespace fxpack {

namespace {

class SchemaParser {
 public:
  explicit SchemaParser(std::string_view text) : s_(text) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw ValueError("schema '" + std::string(s_) + "': " + what + " at column " + std::to_string(pos_ + 1));
  }

  void skip_space() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  bool at_end() {
    skip_space();
    return pos_ >= s_.size();
  }
  bool peek(char c) {
    skip_space();
    return pos_ < s_.size() && s_[pos_] == c;
  }
  bool peek(std::string_view w) {
    skip_space();
    return s_.substr(pos_, w.size()) == w;
  }
  bool accept(char c) {
    if (!peek(c)) return false;
    ++pos_;
    return true;
  }
  void expect(char c) {
    if (!accept(c)) fail(std::string("expected '") + c + "'");
  }
  std::string identifier() {
    skip_space();
    std::size_t start = pos_;
    while (pos_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_')) ++pos_;
    if (start == pos_ || std::isdigit(static_cast<unsigned char>(s_[start]))) fail("expected a name");
    return std::string(s_.substr(start, pos_ - start));
  }
  // A dotted name: torch.nn.functional.relu
  std::string dotted() {
    std::string out = identifier();
    while (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      out += "." + identifier();
    }
    return out;
  }

  SchemaType type() {
    SchemaType t;
    std::string base = identifier();
    static const std::pair<const char*, ArgType> kBases[] = {
        {"Tensor", ArgType::Tensor},         {"Scalar", ArgType::Scalar},   {"int", ArgType::Int},
        {"SymInt", ArgType::Int},            {"float", ArgType::Float},     {"bool", ArgType::Bool},
        {"str", ArgType::Str},               {"ScalarType", ArgType::ScalarType}, {"Layout", ArgType::Layout},
        {"Device", ArgType::Device},         {"MemoryFormat", ArgType::MemoryFormat}, {"Any", ArgType::Any},
        {"Callable", ArgType::Callable},
    };
    bool found = false;
    for (const auto& [name, arg] : kBases) {
      if (base == name) {
        t.base = arg;
        found = true;
      }
    }
    if (!found) fail("unknown type '" + base + "'");
    if (peek('(')) alias_annotation();
    if (accept('?')) {
      if (peek('[')) {
        t.element_optional = true;
      } else {
        t.optional = true;
        return t;
      }
    }
    if (accept('[')) {
      t.list = true;
      skip_space();
      if (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) {
        std::int64_t n = integer();
        if (n <= 0 || n > 16) fail("list size must be 1..16");
        t.size = static_cast<std::int32_t>(n);
      }
      expect(']');
      if (peek('(')) alias_annotation();
      if (accept('?')) t.optional = true;
    }
    if (t.element_optional && !t.list) fail("'?' before '[' needs a list");
    return t;
  }

  // (a), (a!), (a -> *): remembered for purity.
  void alias_annotation() {
    expect('(');
    skip_space();
    std::size_t start = pos_;
    while (pos_ < s_.size() && s_[pos_] != ')') ++pos_;
    std::string_view body = s_.substr(start, pos_ - start);
    expect(')');
    if (body.empty()) fail("empty alias annotation");
    last_alias_ = std::string(body.substr(0, body.find_first_of("!- ")));
    last_alias_write_ = body.find('!') != std::string_view::npos;
  }

  std::int64_t integer() {
    skip_space();
    std::size_t start = pos_;
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    std::int64_t v = 0;
    auto r = std::from_chars(s_.data() + start, s_.data() + pos_, v);
    if (r.ec != std::errc() || r.ptr != s_.data() + pos_) fail("bad integer");
    return v;
  }

  Value number() {
    skip_space();
    std::size_t start = pos_;
    if (pos_ < s_.size() && (s_[pos_] == '-' || s_[pos_] == '+')) ++pos_;
    if (s_.substr(pos_, 3) == "inf") {
      pos_ += 3;
      const double inf = std::numeric_limits<double>::infinity();
      return Value(s_[start] == '-' ? -inf : inf);
    }
    bool is_float = false;
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      if (std::isdigit(static_cast<unsigned char>(c))) {
        ++pos_;
      } else if (c == '.' || c == 'e' || c == 'E') {
        is_float = true;
        ++pos_;
        if ((c == 'e' || c == 'E') && pos_ < s_.size() && (s_[pos_] == '-' || s_[pos_] == '+')) ++pos_;
      } else {
        break;
      }
    }
    std::string_view text = s_.substr(start, pos_ - start);
    if (text.empty() || text == "-" || text == "+") fail("expected a default value");
    if (!is_float) {
      std::int64_t v = 0;
      auto r = std::from_chars(text.data() + (text[0] == '+'), text.data() + text.size(), v);
      if (r.ec != std::errc() || r.ptr != text.data() + text.size()) fail("bad integer '" + std::string(text) + "'");
      return Value(v);
    }
    double d = 0;
    auto r = std::from_chars(text.data() + (text[0] == '+'), text.data() + text.size(), d);
    if (r.ec != std::errc() || r.ptr != text.data() + text.size()) fail("bad number '" + std::string(text) + "'");
    return Value(d);
  }

  Value literal() {
    skip_space();
    if (pos_ >= s_.size()) fail("expected a default value");
    char c = s_[pos_];
    if (c == '"' || c == '\'') {
      ++pos_;
      std::string out;
      while (pos_ < s_.size() && s_[pos_] != c) out += s_[pos_++];
      if (pos_ >= s_.size()) fail("unterminated string");
      ++pos_;
      return Value(std::move(out));
    }
    if (c == '[' || c == '(') {
      const char close = c == '[' ? ']' : ')';
      ++pos_;
      std::vector<Value> items;
      if (!accept(close)) {
        do {
          items.push_back(literal());
        } while (accept(','));
        expect(close);
      }
      if (close == ']') return Value(List{std::move(items)});
      return Value(Tuple{std::move(items)});
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '+' || c == '.') return number();
    std::string word = identifier();
    if (word == "None") return Value();
    if (word == "True") return Value(true);
    if (word == "False") return Value(false);
    if (word == "inf") return Value(std::numeric_limits<double>::infinity());
    if (word == "contiguous_format") return Value(MemoryFormat::Contiguous);
    if (word == "preserve_format") return Value(MemoryFormat::Preserve);
    if (word == "channels_last") return Value(MemoryFormat::ChannelsLast);
    if (word == "strided") return Value(Layout::Strided);
    static const std::pair<const char*, DType> kDTypes[] = {
        {"float", DType::Float32}, {"float32", DType::Float32}, {"double", DType::Float64},
        {"float64", DType::Float64}, {"long", DType::Int64},    {"int64", DType::Int64},
        {"bool", DType::Bool},      {"uint8", DType::UInt8},
    };
    for (const auto& [name, dt] : kDTypes)
      if (word == name) return Value(dt);
    fail("unknown default value '" + word + "'");
  }

  // A default made to fit its type: int[N]=k is N copies of k; a float default written as
  // an int is a float.
  Value fit_default(const SchemaType& t, Value v) {
    if (t.list && v.is_int() && t.base == ArgType::Int) {
      List l;
      for (std::int32_t i = 0; i < std::max<std::int32_t>(t.size, 1); ++i) l.items.push_back(v);
      return Value(std::move(l));
    }
    if (!t.list && t.base == ArgType::Float && v.is_int()) return Value(static_cast<double>(v.to_int()));
    return v;
  }

  std::vector<Param> params(bool* inplace) {
    std::vector<Param> out;
    expect('(');
    bool kw_only = false;
    if (accept(')')) return out;
    do {
      if (accept('*')) {
        if (kw_only) fail("'*' twice");
        kw_only = true;
        continue;
      }
      Param p;
      last_alias_.clear();
      last_alias_write_ = false;
      p.type = type();
      if (out.empty() && inplace) *inplace = last_alias_write_;
      if (!last_alias_.empty()) param_aliases_.push_back(last_alias_);
      p.name = identifier();
      for (const Param& q : out)
        if (q.name == p.name) fail("parameter '" + p.name + "' twice");
      p.keyword_only = kw_only;
      if (accept('=')) {
        p.required = false;
        p.default_value = fit_default(p.type, literal());
      } else if (!kw_only) {
        for (const Param& q : out)
          if (!q.required && !q.keyword_only) fail("parameter '" + p.name + "' without a default after one with a default");
      }
      out.push_back(std::move(p));
    } while (accept(','));
    expect(')');
    return out;
  }

  OpSchema schema(bool aten) {
    OpSchema out;
    if (aten) {
      out.name = identifier();
      if (accept('.')) out.overload = identifier();
      else out.overload = "default";
    } else {
      out.name = dotted();
      if (out.name.find('.') == std::string::npos)
        fail("a python schema needs a qualified name (torch.nn.functional.relu, operator.add, Tensor.size)");
    }
    out.params = params(&out.inplace);
    skip_space();
    if (!peek("->")) fail("expected '->'");
    pos_ += 2;
    if (accept('(')) {
      out.returns_tuple = true;
      if (!accept(')')) {
        do {
          last_alias_.clear();
          out.returns.push_back(type());
          if (!last_alias_.empty()) return_aliases_.push_back(last_alias_);
          skip_space();
          if (pos_ < s_.size() && (std::isalpha(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_'))
            (void)identifier();  // a return's name
        } while (accept(','));
        expect(')');
      }
    } else {
      last_alias_.clear();
      out.returns.push_back(type());
      if (!last_alias_.empty()) return_aliases_.push_back(last_alias_);
    }
    if (!at_end()) fail("unexpected text after the returns");
    for (const auto& a : return_aliases_)
      for (const auto& b : param_aliases_)
        if (a == b) out.view = true;
    if (out.inplace) out.view = false;
    return out;
  }

 private:
  std::string_view s_;
  std::size_t pos_ = 0;
  std::string last_alias_;
  bool last_alias_write_ = false;
  std::vector<std::string> param_aliases_, return_aliases_;
};

const char* base_name(ArgType t) {
  switch (t) {
    case ArgType::Tensor: return "Tensor";
    case ArgType::Scalar: return "Scalar";
    case ArgType::Int: return "int";
    case ArgType::Float: return "float";
    case ArgType::Bool: return "bool";
    case ArgType::Str: return "str";
    case ArgType::ScalarType: return "ScalarType";
    case ArgType::Layout: return "Layout";
    case ArgType::Device: return "Device";
    case ArgType::MemoryFormat: return "MemoryFormat";
    case ArgType::Any: return "Any";
    case ArgType::Callable: return "Callable";
  }
  return "?";
}

}  // namespace

std::string SchemaType::str() const {
  std::string out = base_name(base);
  if (element_optional) out += "?";
  if (list) out += size ? "[" + std::to_string(size) + "]" : "[]";
  if (optional) out += "?";
  return out;
}

bool OpSchema::returns_tensor() const {
  for (const SchemaType& t : returns)
    if (t.base == ArgType::Tensor || t.base == ArgType::Any) return true;
  return false;
}

std::string OpSchema::params_str(std::span<const Param> params) {
  std::string out = "(";
  bool first = true, star = false;
  for (const Param& p : params) {
    if (p.fixed) continue;
    if (!first) out += ", ";
    first = false;
    if (p.keyword_only && !star) {
      out += "*, ";
      star = true;
    }
    out += p.type.str() + " " + p.name;
    if (!p.required) out += "=" + python_repr(p.default_value);
  }
  return out + ")";
}

OpSchema parse_schema(std::string_view text, bool aten) { return SchemaParser(text).schema(aten); }

std::vector<Param> parse_params(std::string_view text) {
  SchemaParser p(text);
  auto out = p.params(nullptr);
  if (!p.at_end()) p.fail("unexpected text after the parameter list");
  return out;
}

}  // namespace fxpack
