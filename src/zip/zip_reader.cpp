#include "zip/zip_reader.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

#include "fxpack/errors.hpp"
#include "fxpack/quote.hpp"

namespace fxpack::zip {
namespace {

constexpr std::uint32_t kLocalSig = 0x04034b50;
constexpr std::uint32_t kCentralSig = 0x02014b50;
constexpr std::uint32_t kEndSig = 0x06054b50;
constexpr std::uint32_t kZip64EndSig = 0x06064b50;
constexpr std::uint32_t kZip64LocatorSig = 0x07064b50;
constexpr std::uint64_t kLocalSize = 30;
constexpr std::uint64_t kCentralSize = 46;
constexpr std::uint64_t kEndSize = 22;
constexpr std::uint64_t kMaxComment = 0xffff;
constexpr std::uint64_t kZip64EndSize = 56;
constexpr std::uint64_t kZip64LocatorSize = 20;
constexpr std::uint32_t kMax32 = 0xffffffff;
constexpr std::uint16_t kZip64ExtraId = 0x0001;
constexpr std::uint16_t kFlagEncrypted = 1 << 0;
constexpr std::uint16_t kFlagDataDescriptor = 1 << 3;
constexpr std::uint16_t kFlagStrongEncryption = 1 << 6;
constexpr std::uint16_t kMethodAes = 99;
// Pieces in which entry data is read and inflated: big enough to keep syscalls and zlib
// calls cheap, small enough that verify() and peek() cost nothing noticeable in memory.
constexpr std::size_t kReadChunk = std::size_t{1} << 20;
constexpr std::size_t kInflateChunk = std::size_t{256} << 10;
constexpr std::size_t kAlignment = 64;
// Bytes of extra field read with a local header's fixed part and name in one go: PyTorch pads
// with an extra field of under 64 bytes, so a file pays at most one pread per entry.
constexpr std::uint64_t kLocalExtraGuess = 128;
// Local headers are read through a window of at least this many bytes, so that the headers
// of small entries that follow each other (a BatchNorm's vectors) cost one pread together.
constexpr std::uint64_t kHeaderWindow = 4096;

std::uint16_t u16(const std::byte* p) {
  return static_cast<std::uint16_t>(std::to_integer<unsigned>(p[0]) |
                                    std::to_integer<unsigned>(p[1]) << 8);
}
std::uint32_t u32(const std::byte* p) {
  return static_cast<std::uint32_t>(u16(p)) | static_cast<std::uint32_t>(u16(p + 2)) << 16;
}
std::uint64_t u64(const std::byte* p) {
  return static_cast<std::uint64_t>(u32(p)) | static_cast<std::uint64_t>(u32(p + 4)) << 32;
}

std::string hex32(std::uint32_t v) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s = "0x";
  for (int shift = 28; shift >= 0; shift -= 4) s += kHex[(v >> shift) & 15];
  return s;
}

std::string entry_msg(std::string_view name, const std::string& what) {
  return "entry " + quote(name) + " " + what;
}

std::uint32_t crc_update(std::uint32_t crc, std::span<const std::byte> bytes) {
  return static_cast<std::uint32_t>(
      crc32_z(crc, reinterpret_cast<const Bytef*>(bytes.data()), bytes.size()));
}

bool fits(std::uint64_t offset, std::uint64_t length, std::uint64_t size) {
  return offset <= size && length <= size - offset;
}

// A 64-byte aligned heap block, for view() copies that tensors may alias.
std::shared_ptr<std::byte> aligned_block(std::size_t n) {
  auto* p = static_cast<std::byte*>(::operator new(std::max<std::size_t>(n, 1), std::align_val_t{kAlignment}));
  return std::shared_ptr<std::byte>(p, [](std::byte* q) { ::operator delete(q, std::align_val_t{kAlignment}); });
}

// StoredView::release of a mapped file. The mapping is private and read-only, so no page of it
// was ever copied on write: MADV_DONTNEED only unmaps them, and the next read maps the file's
// page again — the same bytes, reached as every page of a mapping is (the header's rule for
// mapped files; the kernel drops such pages under memory pressure too). Every page `bytes`
// touches, the first and last too: one that also holds a neighbouring record someone still
// reads costs that reader one minor fault, while pages between small records (batch-norm
// statistics, biases) would otherwise never go back (mobilenet_v2: 0.5 MiB of them after its
// weights were packed). A failing madvise only keeps the memory, so its result is ignored.
void release_mapped(std::span<const std::byte> bytes) noexcept {
  static const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<std::uintptr_t>(bytes.data());
  const std::uintptr_t lo = begin / page * page;
  const std::uintptr_t hi = (begin + bytes.size() + page - 1) / page * page;
  if (hi > lo) ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
}

}  // namespace

// An open file: preads go here, in every access mode.
struct ZipReader::File {
  int fd = -1;
  explicit File(int f) : fd(f) {}
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  ~File() { ::close(fd); }
};

// What the end records say about the central directory.
struct ZipReader::EndRecord {
  std::uint64_t offset = 0;  // of the end record
  std::uint64_t disk = 0, cd_disk = 0, disk_entries = 0, count = 0;
  std::uint64_t cd_size = 0, cd_offset = 0;
  std::uint64_t cd_limit = 0;  // the central directory must end before this
};

// The fields of one central directory record that the local header must agree with.
struct ZipReader::CentralFields {
  EntryInfo info;
  std::uint16_t flags = 0;
  std::uint16_t method = 0;
  std::uint64_t header_offset = 0;
  std::uint64_t record_size = 0;  // fixed part, name, extra field and comment
};

void check_entry_name(std::string_view name) {
  const auto bad = [&](const std::string& why) { throw FormatError(entry_msg(name, why)); };
  if (name.empty()) throw FormatError("entry with an empty name");
  if (name.size() > 0xffff) bad("has a name longer than 65535 bytes");
  if (const std::size_t at = first_invalid_utf8(name); at != std::string_view::npos) {
    bad("has a name that is not valid UTF-8 (at byte " + std::to_string(at) + ")");
  }
  for (const char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == 0) bad("has a NUL character in its name");
    if (c < 0x20 || c == 0x7f) bad("has a control character in its name");
    if (c == '\\') bad("has a backslash in its name (names use '/')");
  }
  if (name.front() == '/') bad("has an absolute path as its name");
  if (name.size() >= 2 && name[1] == ':' &&
      ((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z'))) {
    bad("has a drive letter in its name");
  }
  for (std::size_t start = 0; start <= name.size();) {
    const std::size_t slash = std::min(name.find('/', start), name.size());
    if (name.substr(start, slash - start) == "..") bad("has a '..' component in its name");
    start = slash + 1;
  }
}

ZipReader::ZipReader(std::string where, std::uint64_t size) : where_(std::move(where)), size_(size) {}

void ZipReader::fail(const std::string& what) const { throw FormatError(where_ + what); }

void ZipReader::fail_entry(std::string_view name, const std::string& what) const {
  fail(entry_msg(name, what));
}

// ---------------------------------------------------------------------------------------
// Opening

ZipReader ZipReader::open(const std::filesystem::path& path, const ReaderLimits& limits, Access access) {
  const std::string where = printable(path.string()) + ": ";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError(where + "cannot open: " + std::strerror(errno));
  auto file = std::make_shared<const File>(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw IoError(where + "cannot stat: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw IoError(where + "not a regular file");
  if (st.st_size == 0) {
    throw FormatError(where + "archive is truncated or not a zip file: the file is empty");
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  ZipReader r(where, size);
  r.file_ = std::move(file);
  if (access == Access::map) {
    void* p = ::mmap(nullptr, static_cast<std::size_t>(size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) throw IoError(where + "cannot map: " + std::strerror(errno));
    r.owner_ = std::shared_ptr<const void>(p, [size](const void* q) {
      ::munmap(const_cast<void*>(q), static_cast<std::size_t>(size));
    });
    r.memory_ = {static_cast<const std::byte*>(p), static_cast<std::size_t>(size)};
  }
  r.parse(limits);
  return r;
}

ZipReader ZipReader::from_memory(std::shared_ptr<const std::vector<std::byte>> bytes,
                                 const ReaderLimits& limits) {
  if (!bytes) throw ValueError("ZipReader::from_memory: null buffer");
  const std::span<const std::byte> span(*bytes);
  return from_memory(span, std::move(bytes), limits);
}

ZipReader ZipReader::from_memory(std::span<const std::byte> bytes, std::shared_ptr<const void> owner,
                                 const ReaderLimits& limits) {
  ZipReader r("", bytes.size());
  r.memory_ = bytes;
  r.owner_ = std::move(owner);
  r.parse(limits);
  return r;
}

// ---------------------------------------------------------------------------------------
// Reading bytes: pread for files (mapped or not), a copy for memory buffers.

void ZipReader::read_at(std::uint64_t offset, std::span<std::byte> out) const {
  // Every caller checked the range against size_, the size the archive had when opened.
  if (out.empty()) return;
  if (!file_) {
    std::memcpy(out.data(), memory_.data() + offset, out.size());
    return;
  }
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::pread(file_->fd, out.data() + done, out.size() - done,
                              static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw IoError(where_ + "cannot read at offset " + std::to_string(offset + done) + ": " + std::strerror(errno));
    if (n == 0) {
      fail("archive is truncated: the file ends at offset " + std::to_string(offset + done) +
           ", it was " + std::to_string(size_) + " bytes when opened (changed while being read?)");
    }
    done += static_cast<std::size_t>(n);
  }
}

std::span<const std::byte> ZipReader::HeaderWindow::get(const ZipReader& r, std::uint64_t at, std::size_t n) {
  if (!r.file_) return r.memory_.subspan(static_cast<std::size_t>(at), n);
  if (at < offset || at + n > offset + bytes.size()) {
    bytes.resize(static_cast<std::size_t>(std::max<std::uint64_t>(n, std::min(kHeaderWindow, r.size_ - at))));
    r.read_at(at, bytes);
    offset = at;
  }
  return std::span<const std::byte>(bytes).subspan(static_cast<std::size_t>(at - offset), n);
}

std::span<const std::byte> ZipReader::bytes_at(std::uint64_t offset, std::size_t n,
                                               std::vector<std::byte>& scratch) const {
  if (!file_) return memory_.subspan(static_cast<std::size_t>(offset), n);
  scratch.resize(n);
  read_at(offset, scratch);
  return scratch;
}

// ---------------------------------------------------------------------------------------
// Parsing: end record, Zip64 end record, central directory, local headers, overlaps.

void ZipReader::parse(const ReaderLimits& limits) {
  EndRecord end = find_end_record();
  read_zip64_end(end);
  check_directory_bounds(end, limits);

  std::vector<std::byte> cd_scratch;
  const std::span<const std::byte> cd = bytes_at(end.cd_offset, static_cast<std::size_t>(end.cd_size), cd_scratch);
  entries_.reserve(end.count);
  index_.reserve(end.count);
  std::vector<std::uint64_t> header_offsets;
  header_offsets.reserve(end.count);
  std::uint64_t total = 0;
  std::uint64_t pos = 0;
  HeaderWindow window;
  for (std::uint64_t i = 0; i < end.count; ++i) {
    CentralFields central = parse_central_entry(cd.subspan(static_cast<std::size_t>(pos)), i);
    check_limits(central.info, limits, total);
    check_local_header(central.info, central, end.cd_offset, window);
    if (!index_.emplace(central.info.name, entries_.size()).second) {
      fail_entry(central.info.name, "appears twice in the archive");
    }
    header_offsets.push_back(central.header_offset);
    entries_.push_back(std::move(central.info));
    pos += central.record_size;
  }
  check_no_overlaps(header_offsets);
  // A reader without entries: stream() needs only the bytes and where they come from.
  auto bytes = std::make_shared<ZipReader>(ZipReader(where_, size_));
  bytes->file_ = file_;
  bytes->memory_ = memory_;
  bytes->owner_ = owner_;
  bytes_ = std::move(bytes);
}

ZipReader::EndRecord ZipReader::find_end_record() const {
  // The last signature whose comment fits in what follows it.
  const std::string size_note = "archive size " + std::to_string(size_);
  EndRecord end;
  bool found = false;
  if (size_ >= kEndSize) {
    const std::uint64_t tail_start = size_ - std::min(size_, kEndSize + kMaxComment);
    std::vector<std::byte> scratch;
    const std::span<const std::byte> tail =
        bytes_at(tail_start, static_cast<std::size_t>(size_ - tail_start), scratch);
    for (std::uint64_t pos = tail.size() - kEndSize + 1; pos-- > 0;) {
      const std::byte* e = tail.data() + pos;
      if (u32(e) == kEndSig && u16(e + 20) <= tail.size() - kEndSize - pos) {
        end.offset = tail_start + pos;
        end.disk = u16(e + 4);
        end.cd_disk = u16(e + 6);
        end.disk_entries = u16(e + 8);
        end.count = u16(e + 10);
        end.cd_size = u32(e + 12);
        end.cd_offset = u32(e + 16);
        end.cd_limit = end.offset;
        found = true;
        break;
      }
    }
  }
  if (!found) {
    fail("archive is truncated or not a zip file: no end-of-central-directory record (" +
         size_note + ")");
  }
  return end;
}

void ZipReader::read_zip64_end(EndRecord& end) const {
  // Zip64: the locator sits right before the end record and points at the Zip64 end record.
  if (end.offset < kZip64LocatorSize) return;
  std::vector<std::byte> scratch;
  const std::span<const std::byte> loc = bytes_at(end.offset - kZip64LocatorSize, kZip64LocatorSize, scratch);
  if (u32(loc.data()) != kZip64LocatorSig) return;
  const std::uint64_t z_end = u64(loc.data() + 8);
  if (u32(loc.data() + 4) != 0 || u32(loc.data() + 16) > 1) fail("multi-disk archives are not supported");
  if (!fits(z_end, kZip64EndSize, size_) || z_end + kZip64EndSize > end.offset - kZip64LocatorSize) {
    fail("archive is truncated or corrupt: the Zip64 end record (offset " + std::to_string(z_end) +
         ") is outside the archive (archive size " + std::to_string(size_) + ")");
  }
  const std::span<const std::byte> z = bytes_at(z_end, kZip64EndSize, scratch);
  if (u32(z.data()) != kZip64EndSig) {
    fail("archive is corrupt: no Zip64 end record at offset " + std::to_string(z_end));
  }
  end.disk = u32(z.data() + 16);
  end.cd_disk = u32(z.data() + 20);
  end.disk_entries = u64(z.data() + 24);
  end.count = u64(z.data() + 32);
  end.cd_size = u64(z.data() + 40);
  end.cd_offset = u64(z.data() + 48);
  end.cd_limit = z_end;
}

void ZipReader::check_directory_bounds(const EndRecord& end, const ReaderLimits& limits) const {
  if (end.disk != 0 || end.cd_disk != 0 || end.disk_entries != end.count) {
    fail("multi-disk archives are not supported");
  }
  if (!fits(end.cd_offset, end.cd_size, size_) || end.cd_offset + end.cd_size > end.cd_limit) {
    fail("archive is truncated or corrupt: the central directory (offset " +
         std::to_string(end.cd_offset) + ", size " + std::to_string(end.cd_size) +
         ") runs past its end record at offset " + std::to_string(end.cd_limit) +
         " (archive size " + std::to_string(size_) + ")");
  }
  if (end.count > limits.max_entries) {
    fail("archive has " + std::to_string(end.count) + " entries, more than the limit of " +
         std::to_string(limits.max_entries));
  }
  // From here `count` is bounded by the archive size.
  if (end.count > end.cd_size / kCentralSize) {
    fail("archive is truncated or corrupt: a central directory of " + std::to_string(end.cd_size) +
         " bytes cannot hold " + std::to_string(end.count) + " entries");
  }
}

ZipReader::CentralFields ZipReader::parse_central_entry(std::span<const std::byte> rest, std::uint64_t index) const {
  const auto nth = [index] { return "central directory entry #" + std::to_string(index); };
  if (rest.size() < kCentralSize) {
    fail("archive is truncated or corrupt: " + nth() + " runs past the central directory");
  }
  const std::byte* c = rest.data();
  if (u32(c) != kCentralSig) fail("archive is corrupt: " + nth() + " has a bad signature");
  CentralFields f;
  EntryInfo& info = f.info;
  f.flags = u16(c + 8);
  f.method = u16(c + 10);
  info.crc32 = u32(c + 16);
  info.compressed_size = u32(c + 20);
  info.uncompressed_size = u32(c + 24);
  const std::uint64_t name_len = u16(c + 28);
  const std::uint64_t extra_len = u16(c + 30);
  const std::uint64_t comment_len = u16(c + 32);
  const std::uint16_t start_disk = u16(c + 34);
  f.header_offset = u32(c + 42);
  f.record_size = kCentralSize + name_len + extra_len + comment_len;
  if (f.record_size > rest.size()) {
    fail("archive is truncated or corrupt: " + nth() + " runs past the central directory");
  }
  info.name.assign(reinterpret_cast<const char*>(c + kCentralSize), name_len);
  try {
    check_entry_name(info.name);
  } catch (const FormatError& err) {
    fail(err.what());
  }
  const auto bad = [&](const std::string& why) { fail_entry(info.name, why); };
  if (start_disk != 0) bad("starts on another disk; multi-disk archives are not supported");
  if ((f.flags & (kFlagEncrypted | kFlagStrongEncryption)) != 0 || f.method == kMethodAes) {
    bad("is encrypted, which is not supported");
  }
  if (f.method != static_cast<std::uint16_t>(Method::store) &&
      f.method != static_cast<std::uint16_t>(Method::deflate)) {
    bad("uses compression method " + std::to_string(f.method) +
        "; only STORE (0) and DEFLATE (8) are supported");
  }
  info.method = static_cast<Method>(f.method);

  // Fields that overflowed 32 bits are in the Zip64 extra field, in this order.
  std::uint64_t* wanted[3];
  int wanted_count = 0;
  if (info.uncompressed_size == kMax32) wanted[wanted_count++] = &info.uncompressed_size;
  if (info.compressed_size == kMax32) wanted[wanted_count++] = &info.compressed_size;
  if (f.header_offset == kMax32) wanted[wanted_count++] = &f.header_offset;
  bool have_zip64 = false;
  const std::byte* x = c + kCentralSize + name_len;
  for (std::uint64_t off = 0; off + 4 <= extra_len;) {
    const std::uint16_t id = u16(x + off);
    const std::uint64_t len = u16(x + off + 2);
    if (len > extra_len - off - 4) bad("has a malformed extra field in the central directory");
    if (id == kZip64ExtraId && !have_zip64) {
      have_zip64 = true;
      if (len < 8 * static_cast<std::uint64_t>(wanted_count)) bad("has a truncated Zip64 extra field");
      for (int k = 0; k < wanted_count; ++k) *wanted[k] = u64(x + off + 4 + 8 * k);
    }
    off += 4 + len;
  }
  if (wanted_count > 0 && !have_zip64) bad("has 32-bit fields set to 0xffffffff but no Zip64 extra field");
  return f;
}

void ZipReader::check_limits(const EntryInfo& info, const ReaderLimits& limits, std::uint64_t& total) const {
  const auto bad = [&](const std::string& why) { fail_entry(info.name, why); };
  if (info.uncompressed_size > limits.max_entry_size) {
    bad("is " + std::to_string(info.uncompressed_size) + " bytes uncompressed, more than the limit of " +
        std::to_string(limits.max_entry_size));
  }
  if (info.uncompressed_size > limits.max_total_size - std::min(total, limits.max_total_size)) {
    bad("brings the archive's uncompressed total past the limit of " + std::to_string(limits.max_total_size) +
        " bytes");
  }
  total += info.uncompressed_size;
  if (info.method == Method::store && info.compressed_size != info.uncompressed_size) {
    bad("is stored but its compressed size " + std::to_string(info.compressed_size) +
        " differs from its uncompressed size " + std::to_string(info.uncompressed_size));
  }
  if (info.method == Method::deflate && info.uncompressed_size > limits.ratio_exempt_size &&
      info.uncompressed_size / std::max<std::uint64_t>(info.compressed_size, 1) > limits.max_deflate_ratio) {
    bad("claims " + std::to_string(info.uncompressed_size) + " bytes from " + std::to_string(info.compressed_size) +
        " compressed, a compression ratio over the limit of " + std::to_string(limits.max_deflate_ratio) +
        ":1 (a zip bomb?)");
  }
}

void ZipReader::check_local_header(EntryInfo& info, const CentralFields& central, std::uint64_t cd_offset,
                                   HeaderWindow& window) const {
  // The local header's lengths give the data offset; everything else must agree.
  const auto bad = [&](const std::string& why) { fail_entry(info.name, why); };
  const auto size_note = [this] { return "archive size " + std::to_string(size_); };
  const std::uint64_t header = central.header_offset;
  if (!fits(header, kLocalSize, size_)) {
    bad("has its local header (offset " + std::to_string(header) +
        ") past the end of the archive; it is truncated or corrupt (" + size_note() + ")");
  }
  // The fixed part, and the name and extra field when they are as long as expected.
  const std::span<const std::byte> head = window.get(
      *this, header, static_cast<std::size_t>(std::min(kLocalSize + info.name.size() + kLocalExtraGuess, size_ - header)));
  const std::byte* l = head.data();
  if (u32(l) != kLocalSig) bad("has no local header at offset " + std::to_string(header) + " (bad signature)");
  const std::uint16_t l_flags = u16(l + 6);
  const std::uint64_t l_name_len = u16(l + 26);
  const std::uint64_t l_extra_len = u16(l + 28);
  const auto disagree = [&](const std::string& field, std::uint64_t local, std::uint64_t in_central) {
    bad("has a local header that disagrees with the central directory: " + field + " " + std::to_string(local) +
        " vs " + std::to_string(in_central));
  };
  if (l_name_len != info.name.size()) disagree("name length", l_name_len, info.name.size());
  if (!fits(header + kLocalSize, l_name_len + l_extra_len, size_)) {
    bad("has a local header (offset " + std::to_string(header) +
        ") that runs past the end of the archive; it is truncated or corrupt (" + size_note() + ")");
  }
  if (u16(l + 8) != central.method) disagree("compression method", u16(l + 8), central.method);
  if ((l_flags & (kFlagEncrypted | kFlagStrongEncryption)) != 0) bad("is encrypted, which is not supported");
  if ((l_flags & kFlagDataDescriptor) != (central.flags & kFlagDataDescriptor)) {
    disagree("data-descriptor flag", l_flags & kFlagDataDescriptor, central.flags & kFlagDataDescriptor);
  }
  const std::uint32_t l_crc = u32(l + 14);
  std::uint64_t l_compressed = u32(l + 18);
  std::uint64_t l_uncompressed = u32(l + 22);

  std::vector<std::byte> var_scratch;
  const auto var_size = static_cast<std::size_t>(l_name_len + l_extra_len);
  const std::span<const std::byte> var = kLocalSize + var_size <= head.size()
                                             ? head.subspan(kLocalSize, var_size)
                                             : bytes_at(header + kLocalSize, var_size, var_scratch);
  if (std::memcmp(var.data(), info.name.data(), info.name.size()) != 0) {
    bad("has a different name in its local header");
  }
  if (l_compressed == kMax32 || l_uncompressed == kMax32) {
    local_zip64_sizes(info, var.subspan(static_cast<std::size_t>(l_name_len)), l_uncompressed, l_compressed);
  }
  // With bit 3 set the writer could not seek back: the local fields may be zero.
  const bool deferred = (central.flags & kFlagDataDescriptor) != 0;
  if (!(deferred && l_crc == 0) && l_crc != info.crc32) {
    bad("has a local header that disagrees with the central directory: CRC " + hex32(l_crc) + " vs " +
        hex32(info.crc32));
  }
  if (!(deferred && l_compressed == 0) && l_compressed != info.compressed_size) {
    disagree("compressed size", l_compressed, info.compressed_size);
  }
  if (!(deferred && l_uncompressed == 0) && l_uncompressed != info.uncompressed_size) {
    disagree("uncompressed size", l_uncompressed, info.uncompressed_size);
  }

  info.data_offset = header + kLocalSize + l_name_len + l_extra_len;
  if (!fits(info.data_offset, info.compressed_size, size_)) {
    bad("data runs past the end of the archive (offset " + std::to_string(info.data_offset) + ", size " +
        std::to_string(info.compressed_size) + ", " + size_note() + "); it is truncated or corrupt");
  }
  if (info.data_offset + info.compressed_size > cd_offset) {
    bad("data (offset " + std::to_string(info.data_offset) + ", size " + std::to_string(info.compressed_size) +
        ") overlaps the central directory at offset " + std::to_string(cd_offset));
  }
}

void ZipReader::local_zip64_sizes(const EntryInfo& info, std::span<const std::byte> extra, std::uint64_t& uncompressed,
                                  std::uint64_t& compressed) const {
  // A local Zip64 field always holds both sizes, uncompressed first.
  const auto bad = [&](const std::string& why) { fail_entry(info.name, why); };
  const std::byte* lx = extra.data();
  const std::uint64_t l_extra_len = extra.size();
  bool have = false;
  for (std::uint64_t off = 0; off + 4 <= l_extra_len;) {
    const std::uint16_t id = u16(lx + off);
    const std::uint64_t len = u16(lx + off + 2);
    if (len > l_extra_len - off - 4) bad("has a malformed extra field in its local header");
    if (id == kZip64ExtraId && len >= 16 && !have) {
      have = true;
      uncompressed = u64(lx + off + 4);
      compressed = u64(lx + off + 12);
    }
    off += 4 + len;
  }
  if (!have) bad("has 0xffffffff sizes in its local header but no Zip64 extra field");
}

void ZipReader::check_no_overlaps(const std::vector<std::uint64_t>& header_offsets) const {
  std::vector<std::size_t> order(entries_.size());
  for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return header_offsets[a] < header_offsets[b]; });
  for (std::size_t k = 1; k < order.size(); ++k) {
    const EntryInfo& prev = entries_[order[k - 1]];
    if (prev.data_offset + prev.compressed_size > header_offsets[order[k]]) {
      fail_entry(prev.name, "overlaps entry " + quote(entries_[order[k]].name) +
                                " in the archive (a zip bomb or a corrupt archive)");
    }
  }
}

// ---------------------------------------------------------------------------------------
// Entries

const EntryInfo* ZipReader::find(std::string_view name) const noexcept {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

const EntryInfo& ZipReader::at(std::string_view name) const {
  const EntryInfo* e = find(name);
  if (e == nullptr) fail("archive has no entry " + quote(name));
  return *e;
}

void ZipReader::check_crc(const EntryInfo& e, std::uint32_t actual) const {
  if (actual != e.crc32) {
    fail_entry(e.name, "is corrupt: CRC " + hex32(actual) + " does not match the recorded " + hex32(e.crc32));
  }
}

void ZipReader::stream(const EntryInfo& e, const std::function<bool(std::span<const std::byte>)>& sink) const {
  if (e.method == Method::store) {
    stream_stored(e, sink);
  } else {
    stream_deflated(e, sink);
  }
}

void ZipReader::stream_stored(const EntryInfo& e, const std::function<bool(std::span<const std::byte>)>& sink) const {
  std::vector<std::byte> buffer(static_cast<std::size_t>(std::min<std::uint64_t>(e.compressed_size, kReadChunk)));
  std::uint32_t crc = crc_update(0, {});
  for (std::uint64_t done = 0; done < e.compressed_size;) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(e.compressed_size - done, kReadChunk));
    const std::span<const std::byte> piece = bytes_at(e.data_offset + done, n, buffer);
    crc = crc_update(crc, piece);
    done += n;
    if (!sink(piece)) return;
  }
  check_crc(e, crc);
}

void ZipReader::stream_deflated(const EntryInfo& e, const std::function<bool(std::span<const std::byte>)>& sink) const {
  z_stream zs{};
  if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) throw IoError("zlib: inflateInit2 failed");
  const std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&zs, inflateEnd);
  const auto bad = [&](const std::string& why) { fail_entry(e.name, why); };
  std::vector<std::byte> in_buffer;
  std::vector<std::byte> out(kInflateChunk);
  std::span<const std::byte> in;  // the piece of compressed data not yet consumed
  std::uint64_t in_pos = 0;       // compressed bytes fetched so far
  std::uint64_t produced = 0;
  std::uint32_t crc = crc_update(0, {});
  for (;;) {
    if (in.empty() && in_pos < e.compressed_size) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(e.compressed_size - in_pos, kReadChunk));
      in = bytes_at(e.data_offset + in_pos, n, in_buffer);
      in_pos += n;
    }
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
    zs.avail_in = static_cast<uInt>(in.size());
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    const int rc = inflate(&zs, Z_NO_FLUSH);
    const std::size_t consumed = in.size() - zs.avail_in;
    const std::size_t made = out.size() - zs.avail_out;
    in = in.subspan(consumed);
    if (made > e.uncompressed_size - produced) {
      bad("inflates to more than its recorded " + std::to_string(e.uncompressed_size) + " bytes");
    }
    produced += made;
    const std::span<const std::byte> piece(out.data(), made);
    crc = crc_update(crc, piece);
    if (made > 0 && !sink(piece)) return;
    if (rc == Z_STREAM_END) break;
    if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT) {
      bad(std::string("has corrupt deflate data: ") + (zs.msg != nullptr ? zs.msg : "invalid stream"));
    }
    if (rc == Z_MEM_ERROR) throw std::bad_alloc();
    if (consumed == 0 && made == 0) {
      if (in.empty() && in_pos == e.compressed_size) bad("has deflate data that is truncated (the stream does not end)");
      bad("has deflate data that zlib cannot make progress on");
    }
  }
  if (produced != e.uncompressed_size) {
    bad("inflates to " + std::to_string(produced) + " bytes, not the recorded " + std::to_string(e.uncompressed_size));
  }
  const std::uint64_t unused = in.size() + (e.compressed_size - in_pos);
  if (unused != 0) bad("has " + std::to_string(unused) + " bytes after the end of its deflate stream");
  check_crc(e, crc);
}

std::vector<std::byte> ZipReader::read(std::string_view name) const { return read(at(name)); }

std::vector<std::byte> ZipReader::read(const EntryInfo& e) const {
  std::vector<std::byte> out;
  if (e.method == Method::store) {
    // The bytes exist in the archive, so their size is no claim: read them in one go.
    out.resize(static_cast<std::size_t>(e.uncompressed_size));
    read_at(e.data_offset, out);
    check_crc(e, crc_update(crc_update(0, {}), out));
    return out;
  }
  // A DEFLATE entry's size is only a claim: grow with what is produced, doubling, never
  // past the recorded size (which stream() enforces before handing anything over).
  out.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(e.uncompressed_size, kInflateChunk)));
  stream(e, [&](std::span<const std::byte> piece) {
    if (out.size() + piece.size() > out.capacity()) {
      const std::uint64_t want = std::max<std::uint64_t>(out.size() + piece.size(), 2 * static_cast<std::uint64_t>(out.capacity()));
      out.reserve(static_cast<std::size_t>(std::min(want, e.uncompressed_size)));
    }
    out.insert(out.end(), piece.begin(), piece.end());
    return true;
  });
  return out;
}

void ZipReader::read_into(std::string_view name, std::span<std::byte> out) const {
  const EntryInfo& e = at(name);
  if (out.size() != e.uncompressed_size) {
    throw ValueError("ZipReader::read_into: " + std::to_string(out.size()) + " bytes for entry " + quote(e.name) +
                " of " + std::to_string(e.uncompressed_size));
  }
  if (e.method == Method::store) {
    read_at(e.data_offset, out);
    check_crc(e, crc_update(crc_update(0, {}), out));
    return;
  }
  std::size_t filled = 0;  // stream() never hands over more than the recorded size
  stream(e, [&](std::span<const std::byte> piece) {
    if (!piece.empty()) std::memcpy(out.data() + filled, piece.data(), piece.size());
    filled += piece.size();
    return true;
  });
}

StoredView ZipReader::view(std::string_view name) const { return view(at(name)); }

StoredView ZipReader::view(const EntryInfo& e) const {
  if (e.method != Method::store) {
    fail_entry(e.name, "is compressed (DEFLATE) and cannot be viewed in place");
  }
  if (!memory_.empty() || !file_) {
    // parse() checked the range against the archive size.
    return {memory_.subspan(static_cast<std::size_t>(e.data_offset), static_cast<std::size_t>(e.compressed_size)),
            owner_, file_ ? release_mapped : nullptr};
  }
  const auto n = static_cast<std::size_t>(e.compressed_size);
  std::shared_ptr<std::byte> block = aligned_block(n);
  const std::span<std::byte> bytes(block.get(), n);
  read_at(e.data_offset, bytes);
  check_crc(e, crc_update(crc_update(0, {}), bytes));
  return {bytes, std::move(block)};
}

StoredView ZipReader::read_view(const EntryInfo& e) const {
  if (e.method == Method::store && aliases()) return {verify_in_place(e), owner_};
  auto copy = std::make_shared<const std::vector<std::byte>>(read(e));
  const std::span<const std::byte> bytes(*copy);
  return {bytes, std::move(copy)};
}

void ZipReader::verify(std::string_view name) const {
  stream(at(name), [](std::span<const std::byte>) { return true; });
}

std::function<void()> ZipReader::verifier(std::string_view name) const { return verifier(at(name)); }

std::function<void()> ZipReader::verifier(const EntryInfo& entry) const {
  if (entry.method == Method::store && aliases()) {
    return [bytes = bytes_, entry] { (void)bytes->verify_in_place(entry); };
  }
  return [bytes = bytes_, entry] { bytes->stream(entry, [](std::span<const std::byte>) { return true; }); };
}

std::span<const std::byte> ZipReader::verify_in_place(const EntryInfo& e) const {
  if (file_) {
    // Touching a mapped page past the end of the file is SIGBUS: the file must still hold the
    // entry (it may have been truncated since it was opened) before its pages are read.
    struct stat st {};
    if (::fstat(file_->fd, &st) != 0) throw IoError(where_ + "cannot stat: " + std::strerror(errno));
    const std::uint64_t end = e.data_offset + e.compressed_size;  // parse() checked it fits in size_
    if (static_cast<std::uint64_t>(st.st_size) < end) {
      fail_entry(e.name, "is truncated: the file ends at offset " + std::to_string(st.st_size) +
                             ", before the entry's end at offset " + std::to_string(end) + "; it was " +
                             std::to_string(size_) + " bytes when opened (changed while mapped?)");
    }
  }
  const auto bytes = memory_.subspan(static_cast<std::size_t>(e.data_offset), static_cast<std::size_t>(e.compressed_size));
  check_crc(e, crc_update(crc_update(0, {}), bytes));
  return bytes;
}

std::vector<std::byte> ZipReader::peek(std::string_view name, std::size_t n) const {
  const EntryInfo& e = at(name);
  std::vector<std::byte> out;
  if (e.method == Method::store) {
    out.resize(static_cast<std::size_t>(std::min<std::uint64_t>(n, e.uncompressed_size)));
    read_at(e.data_offset, out);
    return out;
  }
  stream(e, [&](std::span<const std::byte> piece) {
    out.insert(out.end(), piece.begin(), piece.begin() + static_cast<std::ptrdiff_t>(std::min(n - out.size(), piece.size())));
    return out.size() < n;
  });
  return out;
}

}  // namespace fxpack::zip
