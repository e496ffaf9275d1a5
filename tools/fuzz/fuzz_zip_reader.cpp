// libFuzzer harness: ZipReader on arbitrary bytes must either refuse them with a FormatError or
// hand out entries that read, peek, view and verify without crashing, hanging or allocating
// beyond the limits. The limits are lowered so that a claimed size cannot make one input slow.
#include <cstddef>
#include <cstdint>
#include <span>

#include "fxpack/errors.hpp"
#include "zip/zip_reader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fxpack::zip::ReaderLimits limits;
  limits.max_entries = 1000;
  limits.max_entry_size = std::uint64_t{16} << 20;
  limits.max_total_size = std::uint64_t{64} << 20;
  try {
    const auto reader = fxpack::zip::ZipReader::from_memory(std::as_bytes(std::span(data, size)), nullptr, limits);
    for (const auto& e : reader.entries()) {
      try {
        (void)reader.peek(e.name, 16);
        const auto bytes = reader.read(e.name);
        if (bytes.size() != e.uncompressed_size) __builtin_trap();
        reader.verify(e.name);
        if (e.method == fxpack::zip::Method::store) {
          const auto view = reader.view(e.name);
          if (view.bytes.data() < reader.archive().data() ||
              view.bytes.data() + view.bytes.size() > reader.archive().data() + size) {
            __builtin_trap();
          }
        }
      } catch (const fxpack::FormatError&) {
      }
    }
  } catch (const fxpack::FormatError&) {
  }
  return 0;
}
