#include "npy.hpp"

#include <cstring>
#include <limits>
#include <optional>
#include <vector>

#include "fxpack/errors.hpp"

namespace fxpack::cli {

namespace {

// NumPy's type codes for PyTorch's dtypes, by fxpack's dtype name. A dtype this build lacks
// (parse_dtype refuses its name) is reported as such; bfloat16 has no NumPy type.
struct Descr {
  const char* code;
  const char* dtype;
};
constexpr Descr kDescrs[] = {
    {"<f4", "float32"}, {"<f8", "float64"}, {"<f2", "float16"}, {"<i8", "int64"}, {"<i4", "int32"},
    {"<i2", "int16"},   {"|i1", "int8"},    {"|u1", "uint8"},   {"|b1", "bool"},
};

// A tiny parser for the Python dict literal of a .npy header.
class HeaderParser {
 public:
  HeaderParser(std::string_view s, const std::string& where) : s_(s), where_(where) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw FormatError(where_ + ": .npy header " + what + " (at header byte " + std::to_string(pos_) + ")");
  }
  void ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n')) ++pos_;
  }
  bool eat(char c) {
    ws();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!eat(c)) fail(std::string("expected '") + c + "'");
  }
  std::string str() {
    ws();
    if (pos_ >= s_.size() || (s_[pos_] != '\'' && s_[pos_] != '"')) fail("expected a string");
    char q = s_[pos_++];
    std::string out;
    while (pos_ < s_.size() && s_[pos_] != q) {
      if (s_[pos_] == '\\') fail("escapes in strings are not supported");
      out += s_[pos_++];
    }
    if (pos_ >= s_.size()) fail("has an unterminated string");
    ++pos_;
    return out;
  }
  bool boolean() {
    ws();
    if (s_.substr(pos_, 4) == "True") {
      pos_ += 4;
      return true;
    }
    if (s_.substr(pos_, 5) == "False") {
      pos_ += 5;
      return false;
    }
    fail("expected True or False");
  }
  std::vector<std::int64_t> shape() {
    expect('(');
    std::vector<std::int64_t> dims;
    while (!eat(')')) {
      ws();
      std::int64_t v = 0;
      std::size_t digits = 0;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
        if (v > (std::numeric_limits<std::int64_t>::max() - 9) / 10) fail("has a dimension that is too large");
        v = v * 10 + (s_[pos_++] - '0');
        ++digits;
      }
      if (pos_ < s_.size() && s_[pos_] == 'L') ++pos_;
      if (digits == 0) fail("expected a non-negative dimension in the shape");
      dims.push_back(v);
      if (dims.size() > Shape::kMaxDims)
        fail("has a shape of more than " + std::to_string(Shape::kMaxDims) + " dimensions");
      if (!eat(',')) {
        expect(')');
        break;
      }
    }
    return dims;
  }
  bool at_end() {
    ws();
    return pos_ == s_.size();
  }

 private:
  std::string_view s_;
  const std::string& where_;
  std::size_t pos_ = 0;
};

// The header dict's text and where the data starts, after the magic, version and length.
struct RawHeader {
  std::string_view text;
  std::size_t data_start = 0;
};

RawHeader raw_header(std::string_view bytes, const std::string& where) {
  if (bytes.size() < 10 || bytes.substr(0, 6) != std::string_view("\x93NUMPY", 6))
    throw FormatError(where + ": not a .npy file (no \\x93NUMPY magic)");
  const auto major = static_cast<unsigned char>(bytes[6]);
  const auto minor = static_cast<unsigned char>(bytes[7]);
  std::size_t header_len = 0, header_start = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<std::size_t>(static_cast<unsigned char>(bytes[9])) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw FormatError(where + ": .npy file is truncated in its header");
    for (int i = 3; i >= 0; --i) header_len = (header_len << 8) | static_cast<unsigned char>(bytes[8 + i]);
    header_start = 12;
  } else {
    throw FormatError(where + ": .npy format version " + std::to_string(major) + "." + std::to_string(minor) +
                      " is not supported (1.0, 2.0 and 3.0 are)");
  }
  if (minor != 0)
    throw FormatError(where + ": .npy format version " + std::to_string(major) + "." + std::to_string(minor) +
                      " is not supported");
  if (header_len > kMaxNpyHeader)
    throw FormatError(where + ": .npy header of " + std::to_string(header_len) + " bytes is larger than the limit of " +
                      std::to_string(kMaxNpyHeader));
  if (bytes.size() < header_start + header_len) throw FormatError(where + ": .npy file is truncated in its header");
  std::string_view header = bytes.substr(header_start, header_len);
  for (char c : header)
    if (static_cast<unsigned char>(c) >= 0x80 || (c < 0x20 && c != '\n'))
      throw FormatError(where + ": .npy header is not printable ASCII");
  return {header, header_start + header_len};
}

// The header dict's three keys.
struct Header {
  std::string descr;
  std::vector<std::int64_t> shape;
};

Header parse_header(std::string_view text, const std::string& where) {
  HeaderParser p(text, where);
  std::string descr;
  std::optional<bool> fortran;
  std::optional<std::vector<std::int64_t>> shape;
  p.expect('{');
  while (!p.eat('}')) {
    std::string key = p.str();
    p.expect(':');
    if (key == "descr" && descr.empty()) descr = p.str();
    else if (key == "fortran_order" && !fortran) fortran = p.boolean();
    else if (key == "shape" && !shape) shape = p.shape();
    else p.fail("has an unexpected or repeated key '" + key.substr(0, 32) + "'");
    if (!p.eat(',')) {
      p.expect('}');
      break;
    }
  }
  if (!p.at_end()) p.fail("has text after the dict");
  if (descr.empty() || !fortran || !shape) p.fail("lacks one of the keys 'descr', 'fortran_order', 'shape'");
  if (*fortran)
    throw FormatError(where + ": .npy array is in Fortran order; save it in C order (numpy.ascontiguousarray)");
  return {std::move(descr), std::move(*shape)};
}

// The supported type `descr` names: its dtype name and its dtype in this build.
struct ArrayType {
  const char* name;
  DType dtype;
};

ArrayType array_type(std::string descr, const std::string& where) {
  for (const char* one_byte : {"b1", "u1", "i1"})  // byte order is meaningless for single bytes
    if (descr.size() == 3 && (descr[0] == '<' || descr[0] == '=') && descr.substr(1) == one_byte) descr = "|" + descr.substr(1);
  const Descr* d = nullptr;
  for (const auto& k : kDescrs)
    if (descr == k.code) d = &k;
  if (!d)
    throw FormatError(where + ": .npy dtype '" + descr.substr(0, 32) +
                      "' is not supported (little-endian float32 '<f4', float64 '<f8', float16 '<f2', int64 '<i8', "
                      "int32 '<i4', int16 '<i2', int8 '|i1', uint8 '|u1', bool '|b1')");
  try {
    return {d->dtype, parse_dtype(d->dtype)};
  } catch (const Error&) {
    throw FormatError(where + ": .npy dtype '" + descr + "' (" + d->dtype + ") is not supported by this build of fxpack");
  }
}

}  // namespace

Tensor parse_npy(std::string_view bytes, const std::string& where) {
  const RawHeader raw = raw_header(bytes, where);
  const Header header = parse_header(raw.text, where);
  const auto [type_name, dtype] = array_type(header.descr, where);
  Shape s;
  std::uint64_t numel = 1;
  for (std::int64_t v : header.shape) {
    if (v != 0 && numel > (std::uint64_t{1} << 40) / static_cast<std::uint64_t>(v))
      throw FormatError(where + ": .npy shape is too large");
    numel *= static_cast<std::uint64_t>(v);
    s.push_back(v);
  }
  const std::uint64_t nbytes = numel * element_size(dtype);
  const std::uint64_t have = bytes.size() - raw.data_start;
  if (have != nbytes)
    throw FormatError(where + ": .npy data is " + std::to_string(have) + " bytes, the header's shape " +
                      s.to_string() + " and dtype " + type_name + " need " +
                      std::to_string(nbytes) + (have < nbytes ? " (truncated)" : ""));
  auto data = bytes.substr(raw.data_start);
  if (dtype == DType::Bool) {
    for (char c : data)
      if (c != 0 && c != 1) throw FormatError(where + ": .npy bool data holds a byte other than 0 or 1");
  }
  return Tensor::from_bytes(std::as_bytes(std::span(data.data(), data.size())), s, dtype);
}

std::string to_npy(const Tensor& t) {
  const char* code = nullptr;
  for (const auto& k : kDescrs)
    if (dtype_name(t.dtype()) == k.dtype) code = k.code;
  if (!code)
    throw FormatError("cannot write dtype " + std::string(dtype_name(t.dtype())) + " to .npy (NumPy has no such type)");
  std::string shape = "(";
  for (std::size_t i = 0; i < t.dim(); ++i) shape += (i ? ", " : "") + std::to_string(t.shape()[i]);
  shape += t.dim() == 1 ? ",)" : ")";  // "(3,)" as Python writes a 1-tuple
  std::string header = "{'descr': '" + std::string(code) + "', 'fortran_order': False, 'shape': " + shape + ", }";
  std::size_t total = 10 + header.size() + 1;
  header += std::string((64 - total % 64) % 64, ' ') + "\n";
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  auto b = t.bytes();
  out.append(reinterpret_cast<const char*>(b.data()), b.size());
  return out;
}

}  // namespace fxpack::cli
