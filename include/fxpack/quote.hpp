// Showing untrusted text in messages.
//
// Anything that came from an archive, a pickle or a command line — a record name, a storage
// key, a module kind, a class name, a target, a manifest line — may hold newlines, terminal
// escape sequences, invisible direction overrides or bytes that are not UTF-8. Printed raw, it
// could forge output (a fake "archive: ok" line), recolour or hide text on a terminal, or make
// JSON output invalid. So every message, warning and CLI line that shows such a string shows
// quote(s), and nothing else.
//
// quote(s) is the string between single quotes, with every byte that is
//   - a C0 control character (below 0x20) or DEL (0x7f),
//   - a C1 control character (U+0080..U+009F, which some terminals obey),
//   - a Unicode direction control (U+200E, U+200F, U+202A..U+202E, U+2066..U+2069),
//   - not part of a valid UTF-8 sequence (overlong forms and surrogates included),
//   - a backslash or a single quote
// written as \xNN (two lower-case hex digits per byte); all other UTF-8 text is kept as it
// is. A string longer than `max_bytes` is cut at a character boundary and "..." follows the
// closing quote. The result is always one line of valid UTF-8 with no control characters.
//
// printable(s) applies the same escaping to a whole message, without adding quotes and
// keeping backslashes and quotes: the last guard a program applies to a line it prints, so
// that text quoted where it was made passes through unchanged and text that was not cannot
// break the line.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace fxpack {

std::string quote(std::string_view text, std::size_t max_bytes = 200);
std::string printable(std::string_view text);

// The offset of the first byte that does not start a valid UTF-8 sequence (overlong forms,
// surrogates and code points past U+10FFFF are invalid), or std::string_view::npos.
std::size_t first_invalid_utf8(std::string_view text) noexcept;
inline bool is_valid_utf8(std::string_view text) noexcept {
  return first_invalid_utf8(text) == std::string_view::npos;
}

}  // namespace fxpack
