// quote() and printable(): untrusted text shown in messages and CLI lines.
#include <doctest/doctest.h>

#include <string>

#include "fxpack/quote.hpp"

using fxpack::first_invalid_utf8;
using fxpack::is_valid_utf8;
using fxpack::printable;
using fxpack::quote;

TEST_CASE("quote: plain text is kept between single quotes") {
  CHECK(quote("model/model.pkl") == "'model/model.pkl'");
  CHECK(quote("") == "''");
  CHECK(quote("ünïcødé ✓ 日本") == "'ünïcødé ✓ 日本'");
}

TEST_CASE("quote: what could forge or hide output is escaped byte by byte") {
  // The forged "ok" line of issue 11: a newline, an ANSI escape, a carriage return.
  CHECK(quote("k\nm.fxpkg: ok (fxpack package v1)\x1b[2K\r") ==
        "'k\\x0am.fxpkg: ok (fxpack package v1)\\x1b[2K\\x0d'");
  CHECK(quote(std::string("a\0b", 3)) == "'a\\x00b'");
  CHECK(quote("del\x7f") == "'del\\x7f'");
  CHECK(quote("it's a\\b") == "'it\\x27s a\\x5cb'");
  CHECK(quote("\xc2\x9b" "2J") == "'\\xc2\\x9b2J'");          // C1 CSI
  CHECK(quote("abc\xe2\x80\xae" "cba") == "'abc\\xe2\\x80\\xaecba'");  // right-to-left override
  CHECK(quote("\xff\xfe") == "'\\xff\\xfe'");                // not UTF-8
  CHECK(quote("\xc0\xaf") == "'\\xc0\\xaf'");                // overlong '/'
  CHECK(quote("\xed\xa0\x80") == "'\\xed\\xa0\\x80'");       // a surrogate
}

TEST_CASE("quote: long text is cut at a character boundary") {
  CHECK(quote(std::string(300, 'a')) == "'" + std::string(200, 'a') + "'...");
  CHECK(quote(std::string(10, 'a'), 4) == "'aaaa'...");
  const std::string euros = "€€€€";  // 3 bytes each
  CHECK(quote(euros, 4) == "'€'...");
  CHECK(is_valid_utf8(quote(euros, 5)));
}

TEST_CASE("printable: a whole message stays one valid UTF-8 line; quoted parts pass unchanged") {
  const std::string message = "entry " + quote("a\nb") + " is corrupt";
  CHECK(printable(message) == message);
  CHECK(printable("raw\nline\x1b[31m") == "raw\\x0aline\\x1b[31m");
  CHECK(printable("back\\slash 'quoted'") == "back\\slash 'quoted'");
  CHECK(printable("bad \xff byte") == "bad \\xff byte");
}

TEST_CASE("is_valid_utf8 and first_invalid_utf8") {
  CHECK(is_valid_utf8(""));
  CHECK(is_valid_utf8("plain ✓ 𝄞"));
  CHECK(first_invalid_utf8("ok\xffok") == 2);
  CHECK(first_invalid_utf8("\xf4\x90\x80\x80") == 0);  // past U+10FFFF
  CHECK(first_invalid_utf8("\xe2\x82") == 0);          // truncated sequence
}
