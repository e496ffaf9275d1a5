#include "zip/zip_reader.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "fxpack/errors.hpp"

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
constexpr std::uint64_t kZip64EndSize = 56;
constexpr std::uint64_t kZip64LocatorSize = 20;
constexpr std::uint32_t kMax32 = 0xffffffff;
constexpr std::uint16_t kZip64ExtraId = 0x0001;
constexpr std::uint16_t kFlagEncrypted = 1 << 0;
constexpr std::uint16_t kFlagDataDescriptor = 1 << 3;
constexpr std::uint16_t kFlagStrongEncryption = 1 << 6;
constexpr std::uint16_t kMethodAes = 99;

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

// Length of the UTF-8 sequence starting at s[i], or 0 if it is not a valid one (overlong
// forms, surrogates and code points past U+10FFFF included).
std::size_t utf8_length(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const auto cont = [&](std::size_t k) { return i + k < s.size() && (b(k) & 0xc0) == 0x80; };
  const unsigned c = b(0);
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xe0 && b(1) < 0xa0) return 0;
    if (c == 0xed && b(1) >= 0xa0) return 0;
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xf0 && b(1) < 0x90) return 0;
    if (c == 0xf4 && b(1) >= 0x90) return 0;
    return 4;
  }
  return 0;
}

// Names are printed with anything unprintable or not UTF-8 escaped: a hostile name must not
// be able to forge terminal output or hide its own characters in the message.
std::string quote(std::string_view name) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "'";
  const std::string_view shown = name.substr(0, 200);
  for (std::size_t i = 0; i < shown.size();) {
    const auto u = static_cast<unsigned char>(shown[i]);
    const std::size_t n = utf8_length(shown, i);
    if (n == 0 || u < 0x20 || u == 0x7f || u == '\\' || u == '\'') {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
      ++i;
    } else {
      out.append(shown.substr(i, n));
      i += n;
    }
  }
  if (name.size() > shown.size()) out += "...";
  return out + "'";
}

std::string entry_msg(std::string_view name, const std::string& what) {
  return "entry " + quote(name) + " " + what;
}

std::uint32_t crc_of(std::span<const std::byte> bytes) {
  return static_cast<std::uint32_t>(
      crc32_z(crc32_z(0, nullptr, 0), reinterpret_cast<const Bytef*>(bytes.data()), bytes.size()));
}

// The archive; fits() is the bounds check that guards every access through at().
struct Cursor {
  const std::byte* base;
  std::uint64_t size;
  bool fits(std::uint64_t offset, std::uint64_t length) const {
    return offset <= size && length <= size - offset;
  }
  const std::byte* at(std::uint64_t offset) const { return base + offset; }
};

struct Zip64Fields {
  std::uint64_t* values[3];
  int count = 0;
};

}  // namespace

void check_entry_name(std::string_view name) {
  const auto bad = [&](const std::string& why) { throw FormatError(entry_msg(name, why)); };
  if (name.empty()) throw FormatError("entry with an empty name");
  if (name.size() > 0xffff) bad("has a name longer than 65535 bytes");
  for (std::size_t i = 0; i < name.size();) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c == 0) bad("has a NUL character in its name");
    if (c < 0x20 || c == 0x7f) bad("has a control character in its name");
    if (c == '\\') bad("has a backslash in its name (names use '/')");
    const std::size_t n = utf8_length(name, i);
    if (n == 0) bad("has a name that is not valid UTF-8 (at byte " + std::to_string(i) + ")");
    i += n;
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

ZipReader::ZipReader(std::string where, std::span<const std::byte> bytes,
                     std::shared_ptr<const void> owner)
    : where_(std::move(where)), bytes_(bytes), owner_(std::move(owner)) {}

void ZipReader::fail(const std::string& what) const { throw FormatError(where_ + what); }

ZipReader ZipReader::open(const std::filesystem::path& path, const ReaderLimits& limits) {
  const std::string where = path.string() + ": ";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError(where + "cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw IoError(where + "cannot stat: " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw IoError(where + "not a regular file");
  }
  if (st.st_size == 0) {
    ::close(fd);
    throw FormatError(where + "archive is truncated or not a zip file: the file is empty");
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int err = errno;
  ::close(fd);  // the mapping holds its own reference to the file
  if (p == MAP_FAILED) throw IoError(where + "cannot map: " + std::strerror(err));
  std::shared_ptr<const void> mapping(p, [size](const void* q) {
    ::munmap(const_cast<void*>(q), size);
  });
  ZipReader r(where, {static_cast<const std::byte*>(p), size}, std::move(mapping));
  r.parse(limits);
  return r;
}

ZipReader ZipReader::from_memory(std::shared_ptr<const std::vector<std::byte>> bytes,
                                 const ReaderLimits& limits) {
  if (!bytes) throw Error("ZipReader::from_memory: null buffer");
  const std::span<const std::byte> span(*bytes);
  return from_memory(span, std::move(bytes), limits);
}

ZipReader ZipReader::from_memory(std::span<const std::byte> bytes, std::shared_ptr<const void> owner,
                                 const ReaderLimits& limits) {
  ZipReader r("", bytes, std::move(owner));
  r.parse(limits);
  return r;
}

void ZipReader::parse(const ReaderLimits& limits) {
  const Cursor in{bytes_.data(), bytes_.size()};
  const std::string size_note = "archive size " + std::to_string(in.size);

  // 1. The end record: the last signature whose comment fits in what follows it.
  std::uint64_t end = 0;
  bool found = false;
  if (in.size >= kEndSize) {
    const std::uint64_t lowest = in.size - kEndSize > 0xffff ? in.size - kEndSize - 0xffff : 0;
    for (std::uint64_t pos = in.size - kEndSize + 1; pos-- > lowest;) {
      if (u32(in.at(pos)) == kEndSig && u16(in.at(pos + 20)) <= in.size - kEndSize - pos) {
        end = pos;
        found = true;
        break;
      }
    }
  }
  if (!found) {
    fail("archive is truncated or not a zip file: no end-of-central-directory record (" +
         size_note + ")");
  }
  const std::byte* e = in.at(end);
  std::uint64_t disk = u16(e + 4);
  std::uint64_t cd_disk = u16(e + 6);
  std::uint64_t disk_entries = u16(e + 8);
  std::uint64_t count = u16(e + 10);
  std::uint64_t cd_size = u32(e + 12);
  std::uint64_t cd_offset = u32(e + 16);
  std::uint64_t cd_limit = end;  // the central directory must end before this

  // 2. Zip64: the locator sits right before the end record and points at the Zip64 end record.
  if (end >= kZip64LocatorSize && u32(in.at(end - kZip64LocatorSize)) == kZip64LocatorSig) {
    const std::byte* loc = in.at(end - kZip64LocatorSize);
    const std::uint64_t z_end = u64(loc + 8);
    if (u32(loc + 4) != 0 || u32(loc + 16) > 1) fail("multi-disk archives are not supported");
    if (!in.fits(z_end, kZip64EndSize) || z_end + kZip64EndSize > end - kZip64LocatorSize) {
      fail("archive is truncated or corrupt: the Zip64 end record (offset " +
           std::to_string(z_end) + ") is outside the archive (" + size_note + ")");
    }
    const std::byte* z = in.at(z_end);
    if (u32(z) != kZip64EndSig) {
      fail("archive is corrupt: no Zip64 end record at offset " + std::to_string(z_end));
    }
    disk = u32(z + 16);
    cd_disk = u32(z + 20);
    disk_entries = u64(z + 24);
    count = u64(z + 32);
    cd_size = u64(z + 40);
    cd_offset = u64(z + 48);
    cd_limit = z_end;
  }
  if (disk != 0 || cd_disk != 0 || disk_entries != count) {
    fail("multi-disk archives are not supported");
  }
  if (!in.fits(cd_offset, cd_size) || cd_offset + cd_size > cd_limit) {
    fail("archive is truncated or corrupt: the central directory (offset " +
         std::to_string(cd_offset) + ", size " + std::to_string(cd_size) +
         ") runs past its end record at offset " + std::to_string(cd_limit) + " (" + size_note +
         ")");
  }
  if (count > limits.max_entries) {
    fail("archive has " + std::to_string(count) + " entries, more than the limit of " +
         std::to_string(limits.max_entries));
  }
  if (count > cd_size / kCentralSize) {
    fail("archive is truncated or corrupt: a central directory of " + std::to_string(cd_size) +
         " bytes cannot hold " + std::to_string(count) + " entries");
  }

  // 3. The central directory. `count` is now bounded by the archive size.
  entries_.reserve(count);
  std::vector<std::uint64_t> header_offsets;
  header_offsets.reserve(count);
  std::uint64_t total = 0;
  const std::uint64_t cd_end = cd_offset + cd_size;
  std::uint64_t pos = cd_offset;
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::string nth = "central directory entry #" + std::to_string(i);
    if (!in.fits(pos, kCentralSize) || pos + kCentralSize > cd_end) {
      fail("archive is truncated or corrupt: " + nth + " runs past the central directory");
    }
    const std::byte* c = in.at(pos);
    if (u32(c) != kCentralSig) {
      fail("archive is corrupt: " + nth + " (offset " + std::to_string(pos) +
           ") has a bad signature");
    }
    const std::uint16_t flags = u16(c + 8);
    const std::uint16_t method = u16(c + 10);
    EntryInfo info;
    info.crc32 = u32(c + 16);
    info.compressed_size = u32(c + 20);
    info.uncompressed_size = u32(c + 24);
    const std::uint64_t name_len = u16(c + 28);
    const std::uint64_t extra_len = u16(c + 30);
    const std::uint64_t comment_len = u16(c + 32);
    const std::uint16_t start_disk = u16(c + 34);
    std::uint64_t header = u32(c + 42);
    const std::uint64_t record = kCentralSize + name_len + extra_len + comment_len;
    if (record > cd_end - pos) {
      fail("archive is truncated or corrupt: " + nth + " runs past the central directory");
    }
    info.name.assign(reinterpret_cast<const char*>(c + kCentralSize), name_len);
    const auto bad = [&](const std::string& why) { fail(entry_msg(info.name, why)); };
    try {
      check_entry_name(info.name);
    } catch (const FormatError& err) {
      fail(err.what());
    }
    if (start_disk != 0) bad("starts on another disk; multi-disk archives are not supported");
    if ((flags & (kFlagEncrypted | kFlagStrongEncryption)) != 0 || method == kMethodAes) {
      bad("is encrypted, which is not supported");
    }
    if (method != static_cast<std::uint16_t>(Method::store) &&
        method != static_cast<std::uint16_t>(Method::deflate)) {
      bad("uses compression method " + std::to_string(method) +
          "; only STORE (0) and DEFLATE (8) are supported");
    }
    info.method = static_cast<Method>(method);

    // Fields that overflowed 32 bits are in the Zip64 extra field, in this order.
    Zip64Fields wanted;
    if (info.uncompressed_size == kMax32) wanted.values[wanted.count++] = &info.uncompressed_size;
    if (info.compressed_size == kMax32) wanted.values[wanted.count++] = &info.compressed_size;
    if (header == kMax32) wanted.values[wanted.count++] = &header;
    bool have_zip64 = false;
    const std::byte* x = c + kCentralSize + name_len;
    for (std::uint64_t off = 0; off + 4 <= extra_len;) {
      const std::uint16_t id = u16(x + off);
      const std::uint64_t len = u16(x + off + 2);
      if (len > extra_len - off - 4) bad("has a malformed extra field in the central directory");
      if (id == kZip64ExtraId && !have_zip64) {
        have_zip64 = true;
        if (len < 8 * static_cast<std::uint64_t>(wanted.count)) bad("has a truncated Zip64 extra field");
        for (int k = 0; k < wanted.count; ++k) *wanted.values[k] = u64(x + off + 4 + 8 * k);
      }
      off += 4 + len;
    }
    if (wanted.count > 0 && !have_zip64) bad("has 32-bit fields set to 0xffffffff but no Zip64 extra field");

    if (info.uncompressed_size > limits.max_entry_size) {
      bad("is " + std::to_string(info.uncompressed_size) +
          " bytes uncompressed, more than the limit of " + std::to_string(limits.max_entry_size));
    }
    if (info.uncompressed_size > limits.max_total_size - std::min(total, limits.max_total_size)) {
      bad("brings the archive's uncompressed total past the limit of " +
          std::to_string(limits.max_total_size) + " bytes");
    }
    total += info.uncompressed_size;
    if (info.method == Method::store && info.compressed_size != info.uncompressed_size) {
      bad("is stored but its compressed size " + std::to_string(info.compressed_size) +
          " differs from its uncompressed size " + std::to_string(info.uncompressed_size));
    }
    if (info.method == Method::deflate && info.uncompressed_size > limits.ratio_exempt_size &&
        info.uncompressed_size / std::max<std::uint64_t>(info.compressed_size, 1) >
            limits.max_deflate_ratio) {
      bad("claims " + std::to_string(info.uncompressed_size) + " bytes from " +
          std::to_string(info.compressed_size) + " compressed, a compression ratio over the limit of " +
          std::to_string(limits.max_deflate_ratio) + ":1 (a zip bomb?)");
    }

    // 4. The local header: its lengths give the data offset; everything else must agree.
    if (!in.fits(header, kLocalSize)) {
      bad("has its local header (offset " + std::to_string(header) +
          ") past the end of the archive; it is truncated or corrupt (" + size_note + ")");
    }
    const std::byte* l = in.at(header);
    if (u32(l) != kLocalSig) {
      bad("has no local header at offset " + std::to_string(header) + " (bad signature)");
    }
    const std::uint16_t l_flags = u16(l + 6);
    const std::uint64_t l_name_len = u16(l + 26);
    const std::uint64_t l_extra_len = u16(l + 28);
    const auto disagree = [&](const std::string& field, std::uint64_t local, std::uint64_t central) {
      bad("has a local header that disagrees with the central directory: " + field + " " +
          std::to_string(local) + " vs " + std::to_string(central));
    };
    if (l_name_len != name_len) disagree("name length", l_name_len, name_len);
    if (!in.fits(header + kLocalSize, l_name_len + l_extra_len)) {
      bad("has a local header (offset " + std::to_string(header) +
          ") that runs past the end of the archive; it is truncated or corrupt (" + size_note + ")");
    }
    if (std::memcmp(l + kLocalSize, c + kCentralSize, name_len) != 0) {
      bad("has a different name in its local header");
    }
    if (u16(l + 8) != method) disagree("compression method", u16(l + 8), method);
    if ((l_flags & (kFlagEncrypted | kFlagStrongEncryption)) != 0) {
      bad("is encrypted, which is not supported");
    }
    if ((l_flags & kFlagDataDescriptor) != (flags & kFlagDataDescriptor)) {
      disagree("data-descriptor flag", l_flags & kFlagDataDescriptor, flags & kFlagDataDescriptor);
    }
    std::uint64_t l_compressed = u32(l + 18);
    std::uint64_t l_uncompressed = u32(l + 22);
    if (l_compressed == kMax32 || l_uncompressed == kMax32) {
      // A local Zip64 field always holds both sizes, uncompressed first.
      const std::byte* lx = l + kLocalSize + l_name_len;
      bool have = false;
      for (std::uint64_t off = 0; off + 4 <= l_extra_len;) {
        const std::uint16_t id = u16(lx + off);
        const std::uint64_t len = u16(lx + off + 2);
        if (len > l_extra_len - off - 4) bad("has a malformed extra field in its local header");
        if (id == kZip64ExtraId && len >= 16 && !have) {
          have = true;
          l_uncompressed = u64(lx + off + 4);
          l_compressed = u64(lx + off + 12);
        }
        off += 4 + len;
      }
      if (!have) bad("has 0xffffffff sizes in its local header but no Zip64 extra field");
    }
    // With bit 3 set the writer could not seek back: the local fields may be zero.
    const bool deferred = (flags & kFlagDataDescriptor) != 0;
    if (!(deferred && u32(l + 14) == 0) && u32(l + 14) != info.crc32) {
      bad("has a local header that disagrees with the central directory: CRC " +
          hex32(u32(l + 14)) + " vs " + hex32(info.crc32));
    }
    if (!(deferred && l_compressed == 0) && l_compressed != info.compressed_size) {
      disagree("compressed size", l_compressed, info.compressed_size);
    }
    if (!(deferred && l_uncompressed == 0) && l_uncompressed != info.uncompressed_size) {
      disagree("uncompressed size", l_uncompressed, info.uncompressed_size);
    }

    info.data_offset = header + kLocalSize + l_name_len + l_extra_len;
    if (!in.fits(info.data_offset, info.compressed_size)) {
      bad("data runs past the end of the archive (offset " + std::to_string(info.data_offset) +
          ", size " + std::to_string(info.compressed_size) + ", " + size_note +
          "); it is truncated or corrupt");
    }
    if (info.data_offset + info.compressed_size > cd_offset) {
      bad("data (offset " + std::to_string(info.data_offset) + ", size " +
          std::to_string(info.compressed_size) + ") overlaps the central directory at offset " +
          std::to_string(cd_offset));
    }

    if (!index_.emplace(info.name, entries_.size()).second) bad("appears twice in the archive");
    header_offsets.push_back(header);
    entries_.push_back(std::move(info));
    pos += record;
  }

  // 5. No two entries may share bytes.
  std::vector<std::size_t> order(entries_.size());
  for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return header_offsets[a] < header_offsets[b]; });
  for (std::size_t k = 1; k < order.size(); ++k) {
    const EntryInfo& prev = entries_[order[k - 1]];
    if (prev.data_offset + prev.compressed_size > header_offsets[order[k]]) {
      fail(entry_msg(prev.name, "overlaps entry " + quote(entries_[order[k]].name) +
                                    " in the archive (a zip bomb or a corrupt archive)"));
    }
  }
}

const EntryInfo* ZipReader::find(std::string_view name) const noexcept {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

const EntryInfo& ZipReader::at(std::string_view name) const {
  const EntryInfo* e = find(name);
  if (e == nullptr) fail("archive has no entry " + quote(name));
  return *e;
}

std::span<const std::byte> ZipReader::data_of(const EntryInfo& e) const {
  // parse() checked the range against the archive size.
  return bytes_.subspan(static_cast<std::size_t>(e.data_offset),
                        static_cast<std::size_t>(e.compressed_size));
}

void ZipReader::check_crc(const EntryInfo& e, std::span<const std::byte> bytes) const {
  const std::uint32_t actual = crc_of(bytes);
  if (actual != e.crc32) {
    fail(entry_msg(e.name, "is corrupt: CRC " + hex32(actual) + " does not match the recorded " +
                               hex32(e.crc32)));
  }
}

std::vector<std::byte> ZipReader::read(std::string_view name) const {
  const EntryInfo& e = at(name);
  const std::span<const std::byte> in = data_of(e);
  if (e.method == Method::store) {
    std::vector<std::byte> out(in.begin(), in.end());
    check_crc(e, out);
    return out;
  }

  // parse() bounded uncompressed_size by the limits, so this allocation is too.
  std::vector<std::byte> out(static_cast<std::size_t>(e.uncompressed_size));
  z_stream zs{};
  if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) throw Error("zlib: inflateInit2 failed");
  const std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&zs, inflateEnd);
  const auto bad = [&](const std::string& why) { fail(entry_msg(e.name, why)); };
  // zlib counts in 32 bits, so feed both buffers in chunks. Once `out` is full, a one-byte
  // probe catches a stream that would inflate to more than the header claims.
  constexpr std::size_t kChunk = std::size_t{1} << 30;
  std::size_t in_pos = 0;
  std::size_t out_pos = 0;
  std::byte probe{};
  for (;;) {
    const std::size_t in_n = std::min(in.size() - in_pos, kChunk);
    const bool full = out_pos == out.size();
    const std::size_t out_n = full ? 1 : std::min(out.size() - out_pos, kChunk);
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data() + in_pos));
    zs.avail_in = static_cast<uInt>(in_n);
    zs.next_out = reinterpret_cast<Bytef*>(full ? &probe : out.data() + out_pos);
    zs.avail_out = static_cast<uInt>(out_n);
    const int rc = inflate(&zs, Z_NO_FLUSH);
    const std::size_t consumed = in_n - zs.avail_in;
    const std::size_t produced = out_n - zs.avail_out;
    in_pos += consumed;
    if (full && produced > 0) {
      bad("inflates to more than its recorded " + std::to_string(e.uncompressed_size) + " bytes");
    }
    out_pos += full ? 0 : produced;
    if (rc == Z_STREAM_END) break;
    if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT) {
      bad(std::string("has corrupt deflate data: ") + (zs.msg != nullptr ? zs.msg : "invalid stream"));
    }
    if (rc == Z_MEM_ERROR) throw std::bad_alloc();
    if (consumed == 0 && produced == 0) {
      if (in_pos == in.size()) bad("has deflate data that is truncated (the stream does not end)");
      bad("has deflate data that zlib cannot make progress on");
    }
  }
  if (out_pos != out.size()) {
    bad("inflates to " + std::to_string(out_pos) + " bytes, not the recorded " +
        std::to_string(e.uncompressed_size));
  }
  if (in_pos != in.size()) {
    bad("has " + std::to_string(in.size() - in_pos) + " bytes after the end of its deflate stream");
  }
  check_crc(e, out);
  return out;
}

StoredView ZipReader::view(std::string_view name) const {
  const EntryInfo& e = at(name);
  if (e.method != Method::store) {
    fail(entry_msg(e.name, "is compressed (DEFLATE) and cannot be viewed in place"));
  }
  return {data_of(e), owner_};
}

void ZipReader::verify(std::string_view name) const {
  const EntryInfo& e = at(name);
  if (e.method == Method::store) {
    check_crc(e, data_of(e));
  } else {
    (void)read(name);
  }
}

}  // namespace fxpack::zip
