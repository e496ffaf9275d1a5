// Reading zip archives that may come from anyone.
//
// ZipReader parses the end-of-central-directory record, the central directory and every local
// header itself (libzip has no API for data offsets) and checks all of it before the first
// byte of entry data is touched. Opening succeeds only if every entry:
//   - has a name that passes check_entry_name() and is unique in the archive;
//   - is STORE or DEFLATE, not encrypted, and its local header agrees with the central
//     directory (name, method, flags, and the CRC and sizes unless bit 3 defers them);
//   - lies wholly inside the archive, before the central directory, overlapping no other
//     entry (overlapping entries are how the worst zip bombs multiply their output);
//   - stays within ReaderLimits (count, per-entry and total uncompressed size, and the
//     compression ratio of DEFLATE entries), so every later allocation is bounded.
// Zip64 archives are read: the Zip64 end record, and the 0x0001 extra field for sizes and
// offsets that do not fit in 32 bits.
//
// Every refusal is an fxpack::FormatError whose message names the entry and says what is wrong;
// an archive cut short says "truncated". Archives opened from a path are prefixed with the path.
// Failing OS calls throw fxpack::IoError.
//
// The archive bytes are never copied: a file is mapped read-only (MAP_PRIVATE) and a memory
// buffer is shared. Both live as long as the longest holder of owner(), so a STORE entry's
// bytes can be aliased zero-copy (for example by a tensor) after the reader is gone. The file
// must not be truncated while mapped (the kernel would raise SIGBUS on access).
//
// CRCs: read() always checks the CRC of what it returns. view() does not read the data (that
// is the point of it); call verify() before trusting a view.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace fxpack::zip {

enum class Method : std::uint16_t { store = 0, deflate = 8 };

// Bounds on what an archive may claim. Sizes are uncompressed bytes. The defaults admit any
// reasonable model package; lower them for archives from less trusted places.
struct ReaderLimits {
  std::uint64_t max_entries = std::uint64_t{1} << 20;
  std::uint64_t max_entry_size = std::uint64_t{64} << 30;
  std::uint64_t max_total_size = std::uint64_t{256} << 30;
  // A DEFLATE entry larger than ratio_exempt_size may be at most max_deflate_ratio times its
  // compressed size: real data rarely exceeds 100:1, a zip bomb needs ~1000:1. Small entries
  // are exempt because a run of zeros legitimately compresses that well and costs little.
  std::uint64_t max_deflate_ratio = 200;
  std::uint64_t ratio_exempt_size = std::uint64_t{1} << 20;
};

struct EntryInfo {
  std::string name;
  Method method = Method::store;
  std::uint32_t crc32 = 0;
  std::uint64_t compressed_size = 0;
  std::uint64_t uncompressed_size = 0;
  // Absolute offset of the entry's (compressed) data in the archive. ZipWriter puts every
  // STORE entry's data at a multiple of 64.
  std::uint64_t data_offset = 0;
};

// A STORE entry's bytes inside the archive; `owner` keeps them valid.
struct StoredView {
  std::span<const std::byte> bytes;
  std::shared_ptr<const void> owner;
};

// Throws FormatError unless `name` is a safe relative path: non-empty, valid UTF-8, at most
// 65535 bytes, no NUL or other control characters, no backslash, no leading '/', no drive
// letter ("C:"), and no ".." component. ZipWriter applies the same rules when adding.
void check_entry_name(std::string_view name);

class ZipReader {
 public:
  static ZipReader open(const std::filesystem::path& path, const ReaderLimits& limits = {});
  static ZipReader from_memory(std::shared_ptr<const std::vector<std::byte>> bytes,
                               const ReaderLimits& limits = {});
  // `owner` keeps `bytes` alive; it may be null if the caller guarantees that itself for as
  // long as the reader and its views are used.
  static ZipReader from_memory(std::span<const std::byte> bytes, std::shared_ptr<const void> owner,
                               const ReaderLimits& limits = {});

  // In central-directory order.
  const std::vector<EntryInfo>& entries() const noexcept { return entries_; }
  const EntryInfo* find(std::string_view name) const noexcept;
  // As find(), but a missing entry is a FormatError naming it.
  const EntryInfo& at(std::string_view name) const;

  // The entry's uncompressed bytes, CRC checked.
  std::vector<std::byte> read(std::string_view name) const;
  // Zero-copy bytes of a STORE entry; FormatError for a DEFLATE one. Not CRC checked.
  StoredView view(std::string_view name) const;
  // Checks the entry's CRC (a STORE entry in place, without copying).
  void verify(std::string_view name) const;

  std::span<const std::byte> archive() const noexcept { return bytes_; }
  const std::shared_ptr<const void>& owner() const noexcept { return owner_; }

 private:
  ZipReader(std::string where, std::span<const std::byte> bytes, std::shared_ptr<const void> owner);
  void parse(const ReaderLimits& limits);
  [[noreturn]] void fail(const std::string& what) const;
  std::span<const std::byte> data_of(const EntryInfo& e) const;
  void check_crc(const EntryInfo& e, std::span<const std::byte> bytes) const;

  std::string where_;  // "<path>: " for files, empty for memory; prefixes every message
  std::span<const std::byte> bytes_;
  std::shared_ptr<const void> owner_;
  std::vector<EntryInfo> entries_;
  std::map<std::string, std::size_t, std::less<>> index_;
};

}  // namespace fxpack::zip
