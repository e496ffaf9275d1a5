// JSON output of the fxpack command, written by rapidjson's PrettyWriter (2-space indent).
// Every string is made valid UTF-8 before it is written — a byte that is not UTF-8 becomes
// the text \xNN, as quote() shows it — so the output is always valid JSON in valid UTF-8,
// whatever an archive holds. Control characters are escaped by the writer (\n, \u001b).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

namespace fxpack::cli {

class Json {
 public:
  Json();

  Json& begin_object();
  Json& end_object();
  Json& begin_array();
  Json& end_array();
  Json& key(std::string_view k);
  Json& value(std::string_view s);
  Json& value(const char* s) { return value(std::string_view(s)); }
  Json& value(std::uint64_t n);
  Json& value(std::int64_t n);
  Json& value(bool b);
  template <typename T>
  Json& field(std::string_view k, const T& v) {
    return key(k).value(v);
  }
  // The document, ending in a newline. The writer must have closed every object and array.
  std::string text() const;

 private:
  rapidjson::StringBuffer buffer_;
  // No kWriteValidateEncodingFlag: rapidjson 1.1's PrettyWriter does not compile with
  // flags, and every string is valid UTF-8 already (valid_utf8()).
  rapidjson::PrettyWriter<rapidjson::StringBuffer> writer_;
};

// `text` with every byte that is not part of valid UTF-8 written as \xNN.
std::string valid_utf8(std::string_view text);

}  // namespace fxpack::cli
