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
// Every refusal is an fxpack::FormatError whose message names the entry (quoted, see
// fxpack/quote.hpp) and says what is wrong; an archive cut short says "truncated". Archives
// opened from a path are prefixed with the path. Failing OS calls throw fxpack::IoError.
//
// == How the bytes are reached ==
//
// Headers, read(), read_into(), verify() and peek() always *read* the archive: pread() on a file, a copy
// from a memory buffer. They never go through a memory mapping, so another process
// truncating the file makes them fail with a FormatError ("truncated"), never with SIGBUS.
// Only view() and read_view() may alias the archive, and a verifier() of what view() aliases
// reads it there:
//   - Access::map (files): the file is also mapped read-only (MAP_PRIVATE), and view()
//     returns the STORE entry's bytes inside the mapping, zero-copy. The mapping lives as long
//     as the longest holder of owner() or of a view's owner (for example a tensor). The kernel
//     raises SIGBUS when a mapped page is touched after the file was truncated under it:
//     nothing in a process can turn that into an error, so a file that may be truncated or
//     rewritten in place while views of it are used must be opened with Access::read.
//     A verifier() of a STORE entry reads the mapping, not the file: the pages it faults in
//     are the ones the view's first user reads next, so the record is read once, not twice
//     (the CRC by pread, then the user through the mapping). It first checks, with fstat, that
//     the file still holds the whole entry: a file truncated since it was opened is a
//     FormatError ("truncated"), like a pread past its end. A truncation in the instant between
//     that check and the CRC pass can still raise SIGBUS — the same window every use of a view
//     has, which the rule above is about. A file rewritten in place fails the CRC.
//     StoredView::release drops a view's pages (MADV_DONTNEED); the next read faults them in
//     from the file, as the kernel does anyway for a mapping's pages under memory pressure.
//   - Access::read (files): nothing is mapped; view() returns a 64-byte aligned copy of the
//     entry, CRC checked.
//   - memory buffers are shared, not copied: views alias them and hold their owner.
// read_view() is read() without the copy, for an entry that is read now and then let go (a
// pickle record, which the loader decodes into objects of its own): a STORE entry of a mapped
// file or memory buffer is returned in place, CRC checked there (of a mapped file after the
// fstat check above), and anything else is read() into a buffer the view owns. Lifetime: the
// bytes are valid while the view's `owner` is held, whether or not the reader still exists
// (a memory buffer opened with a null owner: while the caller keeps it). In place in a
// mapped file they are view()'s bytes under view()'s rule — a file truncated while they are
// read raises SIGBUS — so hold them only as long as they are read; an entry that must
// outlive the archive, or a file that may change, takes read() (or Access::read).
//
// Memory: read() of a DEFLATE entry grows its buffer with what zlib actually produces,
// never past the recorded size, so a stream that lies about its size costs what it
// inflates to, not what it claims. verify() inflates through a fixed-size buffer.
//
// CRCs: read() always checks the CRC of what it returns, and so does a view() copy. A view()
// of a mapped or memory archive does not read the data (that is the point of it): call
// verify() before trusting it, or hand verifier() to Storage::borrow to check it on first use.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace fxpack::zip {

enum class Method : std::uint16_t { store = 0, deflate = 8 };

enum class Access : std::uint8_t { map, read };

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

// A STORE entry's bytes; `owner` keeps them valid. `release`, set only for a mapped file,
// drops every page of the mapping the given bytes touch (a neighbouring entry's too): the next
// read of any of them faults it in again from the file (for Storage::borrow's `release`). A
// copy or a memory buffer has none: its bytes exist nowhere else.
struct StoredView {
  std::span<const std::byte> bytes;
  std::shared_ptr<const void> owner;
  void (*release)(std::span<const std::byte> bytes) noexcept = nullptr;
};

// Throws FormatError unless `name` is a safe relative path: non-empty, valid UTF-8, at most
// 65535 bytes, no NUL or other control characters, no backslash, no leading '/', no drive
// letter ("C:"), and no ".." component. ZipWriter applies the same rules when adding.
void check_entry_name(std::string_view name);

class ZipReader {
 public:
  static ZipReader open(const std::filesystem::path& path, const ReaderLimits& limits = {},
                        Access access = Access::map);
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
  // The same into `out`, which must be exactly the entry's uncompressed size.
  void read_into(std::string_view name, std::span<std::byte> out) const;
  // The bytes of a STORE entry (see "How the bytes are reached"); FormatError for a DEFLATE
  // one. The EntryInfo form takes an entry of this reader's entries() (no look-up by name).
  StoredView view(std::string_view name) const;
  StoredView view(const EntryInfo& entry) const;
  // The entry's uncompressed bytes, CRC checked, in place where the archive holds them (see
  // read_view() under "How the bytes are reached" for when, and for how long they are valid).
  // Any entry of this reader's entries(), STORE or DEFLATE.
  StoredView read_view(const EntryInfo& entry) const;
  // Checks the entry's sizes and CRC by reading it through a fixed-size buffer.
  void verify(std::string_view name) const;
  // verify() of the entry as a function to call later: it holds what reading needs (the file
  // or buffer, not this reader), so it may outlive the reader. For Storage::borrow's check,
  // which lets a view() be trusted on first use instead of when it is made.
  // Every verifier of a reader shares one handle on the bytes. Of a STORE entry of a mapped
  // file it reads the mapping, not the file (see "How the bytes are reached").
  std::function<void()> verifier(std::string_view name) const;
  std::function<void()> verifier(const EntryInfo& entry) const;
  // At most the first `n` uncompressed bytes of the entry, for recognising its content
  // without reading all of it. Not CRC checked (the rest is not read).
  std::vector<std::byte> peek(std::string_view name, std::size_t n) const;

  // True when view() aliases the archive (a mapped file or a memory buffer) rather than
  // copying.
  bool aliases() const noexcept { return file_ == nullptr || !memory_.empty(); }
  // The archive's bytes when it is mapped or in memory; empty for Access::read.
  std::span<const std::byte> archive() const noexcept { return memory_; }
  const std::shared_ptr<const void>& owner() const noexcept { return owner_; }
  std::uint64_t size() const noexcept { return size_; }

 private:
  struct File;
  struct EndRecord;
  struct CentralFields;

  ZipReader(std::string where, std::uint64_t size);
  void read_at(std::uint64_t offset, std::span<std::byte> out) const;
  // `n` bytes at `offset`: inside the memory buffer, or read into `scratch`.
  std::span<const std::byte> bytes_at(std::uint64_t offset, std::size_t n,
                                      std::vector<std::byte>& scratch) const;

  void parse(const ReaderLimits& limits);
  EndRecord find_end_record() const;
  void read_zip64_end(EndRecord& end) const;
  void check_directory_bounds(const EndRecord& end, const ReaderLimits& limits) const;
  CentralFields parse_central_entry(std::span<const std::byte> record, std::uint64_t index) const;
  void check_limits(const EntryInfo& info, const ReaderLimits& limits, std::uint64_t& total) const;
  // Bytes of the archive read ahead for the next local headers (files; memory is viewed).
  struct HeaderWindow {
    std::uint64_t offset = 0;
    std::vector<std::byte> bytes;
    // `n` bytes at `at`, from the window or read into it.
    std::span<const std::byte> get(const ZipReader& reader, std::uint64_t at, std::size_t n);
  };
  void check_local_header(EntryInfo& info, const CentralFields& central, std::uint64_t cd_offset,
                          HeaderWindow& window) const;
  // The sizes of a local header's Zip64 extra field (`extra`: the local extra field).
  void local_zip64_sizes(const EntryInfo& info, std::span<const std::byte> extra, std::uint64_t& uncompressed,
                         std::uint64_t& compressed) const;
  void check_no_overlaps(const std::vector<std::uint64_t>& header_offsets) const;

  // Hands the entry's uncompressed bytes to `sink` piece by piece, checking sizes and, if
  // the whole entry was streamed, the CRC. `sink` returns false to stop early.
  void stream(const EntryInfo& e, const std::function<bool(std::span<const std::byte>)>& sink) const;
  void stream_stored(const EntryInfo& e, const std::function<bool(std::span<const std::byte>)>& sink) const;
  void stream_deflated(const EntryInfo& e, const std::function<bool(std::span<const std::byte>)>& sink) const;
  [[noreturn]] void fail(const std::string& what) const;
  [[noreturn]] void fail_entry(std::string_view name, const std::string& what) const;
  void check_crc(const EntryInfo& e, std::uint32_t actual) const;
  std::vector<std::byte> read(const EntryInfo& e) const;
  // A STORE entry of a mapped file or memory buffer, CRC checked in place: of a mapped file
  // once fstat says the file still holds it. Returns its bytes.
  std::span<const std::byte> verify_in_place(const EntryInfo& e) const;

  std::string where_;  // "<path>: " for files, empty for memory; prefixes every message
  std::uint64_t size_ = 0;
  std::shared_ptr<const File> file_;     // files: read with pread
  std::span<const std::byte> memory_;    // memory buffers and mapped files
  std::shared_ptr<const void> owner_;    // keeps memory_ alive
  std::vector<EntryInfo> entries_;
  // Hashes names and views of names alike (find() takes a view).
  struct NameHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  // Entry index by name: a loader looks up every tensor's record.
  std::unordered_map<std::string, std::size_t, NameHash, std::equal_to<>> index_;
  // The bytes alone (no entries), shared by every verifier(); made by parse().
  std::shared_ptr<const ZipReader> bytes_;
};

}  // namespace fxpack::zip
