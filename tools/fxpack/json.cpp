#include "json.hpp"

#include <stdexcept>

#include "fxpack/quote.hpp"

namespace fxpack::cli {

namespace {

void check(bool ok, const char* what) {
  // Only misuse (a key outside an object, unbalanced nesting) fails: strings are valid.
  if (!ok) throw std::logic_error(std::string("JSON writer: ") + what);
}

}  // namespace

std::string valid_utf8(std::string_view text) {
  std::string out;
  while (!text.empty()) {
    const std::size_t bad = first_invalid_utf8(text);
    if (bad == std::string_view::npos) {
      out += text;
      break;
    }
    out += text.substr(0, bad);
    static constexpr char kHex[] = "0123456789abcdef";
    const auto u = static_cast<unsigned char>(text[bad]);
    out += "\\x";
    out += kHex[u >> 4];
    out += kHex[u & 15];
    text.remove_prefix(bad + 1);
  }
  return out;
}

Json::Json() : writer_(buffer_) { writer_.SetIndent(' ', 2); }

Json& Json::begin_object() {
  check(writer_.StartObject(), "StartObject");
  return *this;
}
Json& Json::end_object() {
  check(writer_.EndObject(), "EndObject");
  return *this;
}
Json& Json::begin_array() {
  check(writer_.StartArray(), "StartArray");
  return *this;
}
Json& Json::end_array() {
  check(writer_.EndArray(), "EndArray");
  return *this;
}
Json& Json::key(std::string_view k) {
  const std::string s = valid_utf8(k);
  check(writer_.Key(s.data(), static_cast<rapidjson::SizeType>(s.size())), "Key");
  return *this;
}
Json& Json::value(std::string_view v) {
  const std::string s = valid_utf8(v);
  check(writer_.String(s.data(), static_cast<rapidjson::SizeType>(s.size())), "String");
  return *this;
}
Json& Json::value(std::uint64_t n) {
  check(writer_.Uint64(n), "Uint64");
  return *this;
}
Json& Json::value(std::int64_t n) {
  check(writer_.Int64(n), "Int64");
  return *this;
}
Json& Json::value(bool b) {
  check(writer_.Bool(b), "Bool");
  return *this;
}

std::string Json::text() const {
  check(writer_.IsComplete(), "incomplete document");
  return std::string(buffer_.GetString(), buffer_.GetSize()) + "\n";
}

}  // namespace fxpack::cli
