// The op table's examples (docs/design.md §5.9): a Python argument list such as
// `(randn(2, 3), 1, keepdim=True)` turned into Values, with the tensor factories seeded so
// a failure reproduces. Used by test_op_table.cpp.
#pragma once

#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fxpack/errors.hpp"
#include "fxpack/tensor.hpp"
#include "fxpack/value.hpp"

namespace fxpack::testing {

struct ExampleArgs {
  std::vector<Value> args;
  Dict kwargs;
};

class ExampleParser {
 public:
  ExampleParser(std::string_view text, std::uint32_t seed) : s_(text), rng_(seed) {}

  ExampleArgs arguments() {
    ExampleArgs out;
    expect('(');
    if (!accept(')')) {
      do {
        if (peek(')')) break;  // a trailing comma
        std::size_t save = pos_;
        if (is_ident_start()) {
          std::string name = identifier();
          if (accept('=')) {
            out.kwargs.items.emplace_back(name, value());
            continue;
          }
          pos_ = save;
        }
        if (!out.kwargs.items.empty()) fail("a positional argument after a keyword argument");
        out.args.push_back(value());
      } while (accept(','));
      expect(')');
    }
    skip();
    if (pos_ != s_.size()) fail("unexpected text after the argument list");
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error("example '" + std::string(s_) + "': " + what + " at column " + std::to_string(pos_ + 1));
  }
  void skip() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  bool peek(char c) {
    skip();
    return pos_ < s_.size() && s_[pos_] == c;
  }
  bool accept(char c) {
    if (!peek(c)) return false;
    ++pos_;
    return true;
  }
  void expect(char c) {
    if (!accept(c)) fail(std::string("expected '") + c + "'");
  }
  bool is_ident_start() {
    skip();
    return pos_ < s_.size() && (std::isalpha(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_');
  }
  std::string identifier() {
    skip();
    std::size_t start = pos_;
    while (pos_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_')) ++pos_;
    if (start == pos_) fail("expected a name");
    return std::string(s_.substr(start, pos_ - start));
  }

  Value number() {
    skip();
    std::size_t start = pos_;
    if (s_[pos_] == '-') ++pos_;
    bool is_float = false;
    while (pos_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '.' ||
                                s_[pos_] == 'e' || s_[pos_] == 'E' ||
                                ((s_[pos_] == '-' || s_[pos_] == '+') && (s_[pos_ - 1] == 'e' || s_[pos_ - 1] == 'E')))) {
      if (!std::isdigit(static_cast<unsigned char>(s_[pos_]))) is_float = true;
      ++pos_;
    }
    std::string text(s_.substr(start, pos_ - start));
    if (text == "-" && is_ident_start()) {
      Value v = value();
      return v.is_double() ? Value(-v.to_double()) : Value(-v.to_int());
    }
    if (is_float) return Value(std::stod(text));
    return Value(static_cast<std::int64_t>(std::stoll(text)));
  }

  // (a, b) / (a,) / (a) -> a tuple or the value itself
  Value sequence(char close, bool list) {
    std::vector<Value> items;
    bool comma = false;
    if (!accept(close)) {
      do {
        if (peek(close)) break;
        items.push_back(value());
        comma = peek(',');
      } while (accept(','));
      expect(close);
    }
    if (list) return Value(List{std::move(items)});
    if (items.size() == 1 && !comma) return items[0];  // parentheses, not a tuple
    return Value(Tuple{std::move(items)});
  }

  std::vector<std::int64_t> shape_of(const std::vector<Value>& args) {
    std::vector<std::int64_t> shape;
    if (args.size() == 1 && (args[0].kind() == Value::Kind::Tuple || args[0].kind() == Value::Kind::List)) {
      for (const Value& d : args[0].items()) shape.push_back(d.to_int());
    } else {
      for (const Value& d : args) shape.push_back(d.to_int());
    }
    return shape;
  }

  DType dtype_kw(const Dict& kwargs, DType fallback) {
    for (const auto& [k, v] : kwargs.items) {
      if (k != "dtype") fail("unknown keyword '" + k + "'");
      return v.dtype();
    }
    return fallback;
  }

  Tensor random(const std::vector<std::int64_t>& shape, DType dtype, bool normal) {
    Shape s{std::span<const std::int64_t>(shape)};
    std::vector<double> v(static_cast<std::size_t>(s.numel()));
    std::normal_distribution<double> nd;
    std::uniform_real_distribution<double> ud;
    for (double& x : v) x = normal ? nd(rng_) : ud(rng_);
    return Tensor::from_vector(std::span<const double>(v), s).to(dtype);
  }

  // Nested data of tensor([...]).
  void flatten_data(const Value& v, std::vector<double>& out, std::vector<std::int64_t>& shape, std::size_t depth,
                    bool& floats, bool& bools) {
    if (v.kind() == Value::Kind::List || v.kind() == Value::Kind::Tuple) {
      if (shape.size() <= depth) shape.push_back(static_cast<std::int64_t>(v.items().size()));
      for (const Value& x : v.items()) flatten_data(x, out, shape, depth + 1, floats, bools);
      return;
    }
    floats = floats || v.is_double();
    bools = bools || v.kind() == Value::Kind::Bool;
    out.push_back(v.to_double());
  }

  Value call(const std::string& fn) {
    std::vector<Value> args;
    Dict kwargs;
    if (!accept(')')) {
      do {
        if (peek(')')) break;
        std::size_t save = pos_;
        if (is_ident_start()) {
          std::string name = identifier();
          if (accept('=')) {
            kwargs.items.emplace_back(name, value());
            continue;
          }
          pos_ = save;
        }
        args.push_back(value());
      } while (accept(','));
      expect(')');
    }
    if (fn == "randn" || fn == "rand") return random(shape_of(args), dtype_kw(kwargs, DType::Float32), fn == "randn");
    if (fn == "ones" || fn == "zeros") {
      const auto shape = shape_of(args);
      return Tensor::full(Shape{std::span<const std::int64_t>(shape)}, fn == "ones" ? 1.0 : 0.0,
                          dtype_kw(kwargs, DType::Float32));
    }
    if (fn == "randint") {
      if (args.size() != 3) fail("randint(low, high, shape)");
      const auto shape = shape_of({args[2]});
      Shape s{std::span<const std::int64_t>(shape)};
      std::uniform_int_distribution<std::int64_t> d(args[0].to_int(), args[1].to_int() - 1);
      std::vector<std::int64_t> v(static_cast<std::size_t>(s.numel()));
      for (auto& x : v) x = d(rng_);
      return Tensor::from_vector(std::span<const std::int64_t>(v), s).to(dtype_kw(kwargs, DType::Int64));
    }
    if (fn == "tensor") {
      if (args.size() != 1) fail("tensor(data)");
      std::vector<double> data;
      std::vector<std::int64_t> shape;
      bool floats = false, bools = false;
      flatten_data(args[0], data, shape, 0, floats, bools);
      const DType inferred = floats ? DType::Float32 : bools ? DType::Bool : DType::Int64;
      return Tensor::from_vector(std::span<const double>(data), Shape{std::span<const std::int64_t>(shape)})
          .to(dtype_kw(kwargs, inferred));
    }
    if (fn == "slice") {
      auto part = [&](std::size_t i) -> std::optional<std::int64_t> {
        if (i >= args.size() || args[i].is_none()) return std::nullopt;
        return args[i].to_int();
      };
      if (args.size() == 1) return Value(Slice{std::nullopt, part(0), std::nullopt});
      return Value(Slice{part(0), part(1), part(2)});
    }
    fail("unknown function '" + fn + "'");
  }

  Value value() {
    skip();
    if (pos_ >= s_.size()) fail("expected a value");
    const char c = s_[pos_];
    if (c == '(') {
      ++pos_;
      return sequence(')', false);
    }
    if (c == '[') {
      ++pos_;
      return sequence(']', true);
    }
    if (c == '\'' || c == '"') {
      ++pos_;
      std::string out;
      while (pos_ < s_.size() && s_[pos_] != c) out += s_[pos_++];
      if (pos_ >= s_.size()) fail("unterminated string");
      ++pos_;
      return Value(std::move(out));
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '.') return number();
    std::string word = identifier();
    if (word == "None") return Value();
    if (word == "True") return Value(true);
    if (word == "False") return Value(false);
    if (word == "inf") return Value(std::numeric_limits<double>::infinity());
    if (word == "nan") return Value(std::numeric_limits<double>::quiet_NaN());
    if (word == "torch") {
      expect('.');
      std::string attr = identifier();
      if (attr == "strided") return Value(Layout::Strided);
      if (attr == "contiguous_format") return Value(MemoryFormat::Contiguous);
      if (attr == "preserve_format") return Value(MemoryFormat::Preserve);
      if (attr == "channels_last") return Value(MemoryFormat::ChannelsLast);
      if (attr == "float" || attr == "float32") return Value(DType::Float32);
      if (attr == "double" || attr == "float64") return Value(DType::Float64);
      if (attr == "long" || attr == "int64") return Value(DType::Int64);
      if (attr == "bool") return Value(DType::Bool);
      if (attr == "uint8") return Value(DType::UInt8);
      if (attr == "int" || attr == "int32") return Value(DType::Int32);
      if (attr == "short" || attr == "int16") return Value(DType::Int16);
      if (attr == "int8") return Value(DType::Int8);
      if (attr == "half" || attr == "float16") return Value(DType::Float16);
      if (attr == "bfloat16") return Value(DType::BFloat16);
      fail("unknown torch." + attr);
    }
    if (accept('(')) return call(word);
    fail("unknown name '" + word + "'");
  }

  std::string_view s_;
  std::size_t pos_ = 0;
  std::mt19937 rng_;
};

inline ExampleArgs parse_example(std::string_view text, std::uint32_t seed) {
  return ExampleParser(text, seed).arguments();
}

}  // namespace fxpack::testing
