// libFuzzer harness: pickle::loads in every format (the header line picks it: portable
// binary, JSON, Boost text, binary and xml), then whatever a user does with the module.
// loads() promises to throw only FormatError. Whatever loads is written again by the binary
// writers (binary_writer.cpp), loaded back and written once more: the two archives must be
// the same bytes, and neither step may throw.
//
// A format 2 header carries the body's CRC-32, which almost every mutation breaks; the
// harness reseals it (rewrites the 8 hex digits for the mutated body) so mutations reach the
// parsers behind the check. Unsealed inputs still test the check itself: an input whose
// header line does not end in 8 hex digits is passed on as it is.
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "exercise.hpp"

namespace {

std::string resealed(std::string bytes) {
  const std::size_t nl = bytes.find('\n');
  if (nl == std::string::npos || nl < 9 || bytes[nl - 9] != ' ') return bytes;
  for (std::size_t i = nl - 8; i < nl; ++i)
    if (!((bytes[i] >= '0' && bytes[i] <= '9') || (bytes[i] >= 'a' && bytes[i] <= 'f'))) return bytes;
  const auto* body = reinterpret_cast<const Bytef*>(bytes.data() + nl + 1);
  const auto crc = static_cast<unsigned long>(crc32_z(crc32_z(0, nullptr, 0), body, bytes.size() - nl - 1));
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08lx", crc & 0xffffffffUL);
  bytes.replace(nl - 8, 8, hex);
  return bytes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input = resealed(std::string(reinterpret_cast<const char*>(data), size));
  fxpack::pickle::LoadOptions options;
  options.limits.max_nodes = 10'000;
  options.limits.max_string_length = 1u << 16;
  options.limits.max_tensor_bytes = 1u << 24;
  options.limits.max_items = 10'000;
  options.on_warning = [](const std::string&) {};
  // Compared during the load, where a mismatch goes to on_warning (later ones go to stderr).
  options.source_hash_check = fxpack::pickle::SourceHashCheck::AtLoad;
  std::shared_ptr<fxpack::GraphModule> gm;
  try {
    gm = fxpack::pickle::loads(input, options);
  } catch (const fxpack::FormatError&) {
    return 0;
  }
  for (auto format : {fxpack::pickle::PickleFormat::PortableBinary, fxpack::pickle::PickleFormat::BoostBinary}) {
    const std::string bytes = fxpack::pickle::dumps(*gm, format);
    if (fxpack::pickle::dumps(*fxpack::pickle::loads(bytes, options), format) != bytes) __builtin_trap();
  }
  fxpack::fuzz::exercise(*gm);
  return 0;
}
