#include "zip/zip_writer.hpp"

#include <unistd.h>
#include <zip.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "fxpack/errors.hpp"
#include "fxpack/quote.hpp"

namespace fxpack::zip {
namespace {

constexpr std::uint16_t kPaddingExtraId = 0x4246;
constexpr std::size_t kAlignment = 64;

// The end-of-central-directory record of an archive with no entries. libzip will not write
// one (and would delete the file instead), so it is written by hand.
constexpr std::array<std::byte, 22> kEmptyArchive = {
    std::byte{'P'}, std::byte{'K'}, std::byte{5}, std::byte{6}};

// 1980-01-01 00:00, the DOS epoch, as local time: libzip converts with localtime(), so this is
// what makes the stored date independent of the time zone.
std::time_t fixed_mtime() {
  std::tm tm{};
  tm.tm_year = 80;
  tm.tm_mday = 1;
  tm.tm_isdst = -1;
  return std::mktime(&tm);
}

// A copy of `bytes` that an entry owns, as its one piece.
HeldBytes copied(std::span<const std::byte> bytes) {
  auto copy = std::make_shared<const std::vector<std::byte>>(bytes.begin(), bytes.end());
  const std::span<const std::byte> piece(*copy);  // before `copy` moves into the owner
  return HeldBytes({piece}, std::move(copy));
}

struct ArchiveCloser {
  void operator()(zip_t* za) const { zip_discard(za); }
};
using Archive = std::unique_ptr<zip_t, ArchiveCloser>;

struct SourceCloser {
  void operator()(zip_source_t* src) const { zip_source_free(src); }
};
using Source = std::unique_ptr<zip_source_t, SourceCloser>;

[[noreturn]] void throw_libzip(const std::string& what, zip_t* za) {
  throw IoError("zip: " + what + ": " + zip_strerror(za));
}

template <typename Entry>
void add_entries(zip_t* za, const std::vector<const Entry*>& order) {
  static constexpr std::array<zip_uint8_t, kAlignment> kZeros{};
  const std::time_t mtime = fixed_mtime();
  std::uint64_t offset = 0;  // of the next local header, exact while all entries so far are STORE
  std::vector<zip_buffer_fragment_t> fragments;
  for (const Entry* e : order) {
    // libzip copies the fragment list. It is given no empty piece: libzip 1.7 skips empty
    // fragments but still numbers the offsets of the rest by their place in this list.
    fragments.clear();
    for (std::span<const std::byte> piece : e->bytes.pieces)
      fragments.push_back({reinterpret_cast<zip_uint8_t*>(const_cast<std::byte*>(piece.data())), piece.size()});
    zip_source_t* src = zip_source_buffer_fragment(za, fragments.data(), fragments.size(), 0);
    if (src == nullptr) throw_libzip("cannot add " + quote(e->name), za);
    const zip_int64_t idx = zip_file_add(za, e->name.c_str(), src, ZIP_FL_ENC_UTF_8);
    if (idx < 0) {
      zip_source_free(src);  // still ours when zip_file_add fails
      throw_libzip("cannot add " + quote(e->name), za);
    }
    const auto index = static_cast<zip_uint64_t>(idx);
    if (zip_file_set_mtime(za, index, mtime, 0) != 0) throw_libzip("cannot set mtime", za);
    if (e->method == Method::deflate) {
      if (zip_set_file_compression(za, index, ZIP_CM_DEFLATE, 0) != 0) {
        throw_libzip("cannot set compression for " + quote(e->name), za);
      }
      continue;
    }
    if (zip_set_file_compression(za, index, ZIP_CM_STORE, 0) != 0) {
      throw_libzip("cannot set compression for " + quote(e->name), za);
    }
    // The local header is 30 bytes, the name, libzip's Zip64 field when the size needs one
    // (empty at exactly 0xffffffff, both sizes above), then our field's 4-byte header.
    const std::uint64_t size = e->size;
    std::uint64_t header = 30 + e->name.size();
    if (size >= 0xffffffffull) header += size > 0xffffffffull ? 20 : 4;
    const std::uint64_t pad = (kAlignment - (offset + header + 4) % kAlignment) % kAlignment;
    if (zip_file_extra_field_set(za, index, kPaddingExtraId, ZIP_EXTRA_FIELD_NEW, kZeros.data(),
                                 static_cast<zip_uint16_t>(pad), ZIP_FL_LOCAL) != 0) {
      throw_libzip("cannot pad " + quote(e->name), za);
    }
    offset += header + 4 + pad + size;
  }
}

// Where a Sink keeps the archive libzip writes. A store reads (-1 on failure), writes at a
// position, growing as needed, and truncates (a libzip error code on failure, ZIP_ER_OK
// otherwise), with errno set when it fails.
// The file store writes into an open file descriptor (an AtomicFile's temporary file), so
// libzip creates no file of its own.
class FileStore {
 public:
  explicit FileStore(int fd) : fd_(fd) {}
  zip_int64_t read(zip_uint64_t pos, void* data, zip_uint64_t n) {
    const ssize_t got = ::pread(fd_, data, n, static_cast<off_t>(pos));
    return got < 0 ? -1 : got;
  }
  int write(zip_uint64_t pos, const void* data, zip_uint64_t n) {
    const auto* p = static_cast<const char*>(data);
    zip_uint64_t done = 0;
    while (done < n) {
      const ssize_t w = ::pwrite(fd_, p + done, n - done, static_cast<off_t>(pos + done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return ZIP_ER_WRITE;
      done += static_cast<zip_uint64_t>(w);
    }
    return ZIP_ER_OK;
  }
  int truncate(zip_uint64_t size) { return ::ftruncate(fd_, static_cast<off_t>(size)) == 0 ? ZIP_ER_OK : ZIP_ER_WRITE; }

 private:
  int fd_;
};

// The memory store writes straight into the vector finish() returns: libzip's own buffer
// source would hold the archive in fragments, to be copied out once more (at 10^6 nodes, a
// 19 MB copy into memory faulted in fresh). Exceptions must not cross libzip's C frames, so
// a failed allocation is ZIP_ER_MEMORY.
class MemoryStore {
 public:
  explicit MemoryStore(std::vector<std::byte>& bytes) : bytes_(bytes) {}
  zip_int64_t read(zip_uint64_t pos, void* data, zip_uint64_t n) {
    std::memcpy(data, bytes_.data() + pos, n);
    return static_cast<zip_int64_t>(n);
  }
  // What lies past the end is appended, not first cleared by resize() and then written
  // over: libzip writes the archive front to back, seeking back only to patch headers.
  int write(zip_uint64_t pos, const void* data, zip_uint64_t n) {
    if (n == 0) return ZIP_ER_OK;
    if (pos > bytes_.size()) {
      if (int error = truncate(pos)) return error;
    }
    const auto* from = static_cast<const std::byte*>(data);
    const std::size_t over = std::min<std::size_t>(n, bytes_.size() - pos);
    if (over) std::memcpy(bytes_.data() + pos, from, over);
    try {
      bytes_.insert(bytes_.end(), from + over, from + n);
    } catch (const std::exception&) {
      errno = ENOMEM;
      return ZIP_ER_MEMORY;
    }
    return ZIP_ER_OK;
  }
  int truncate(zip_uint64_t size) {
    try {
      bytes_.resize(size);
    } catch (const std::exception&) {
      errno = ENOMEM;
      return ZIP_ER_MEMORY;
    }
    return ZIP_ER_OK;
  }

 private:
  std::vector<std::byte>& bytes_;
};

// A libzip source that writes the archive into a store. It starts empty; libzip writes,
// seeks back to patch local headers, and commits.
template <class Store>
class Sink {
 public:
  explicit Sink(Store store) : store_(std::move(store)) { zip_error_init(&error_); }
  ~Sink() { zip_error_fini(&error_); }
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;

  // noexcept: an exception must never unwind through libzip's C frames.
  static zip_int64_t callback(void* self, void* data, zip_uint64_t len, zip_source_cmd_t cmd) noexcept {
    return static_cast<Sink*>(self)->handle(data, len, cmd);
  }

 private:
  zip_int64_t fail(int zip_code, int err) {
    zip_error_set(&error_, zip_code, err);
    return -1;
  }

  zip_int64_t handle(void* data, zip_uint64_t len, zip_source_cmd_t cmd) {
    switch (cmd) {
      case ZIP_SOURCE_SUPPORTS:
        return ZIP_SOURCE_SUPPORTS_WRITABLE | ZIP_SOURCE_MAKE_COMMAND_BITMASK(ZIP_SOURCE_ACCEPT_EMPTY);
      case ZIP_SOURCE_ACCEPT_EMPTY:
        return 1;
      case ZIP_SOURCE_STAT: {
        auto* st = ZIP_SOURCE_GET_ARGS(zip_stat_t, data, len, &error_);
        if (st == nullptr) return -1;
        zip_stat_init(st);
        st->size = end_;
        st->comp_size = end_;
        st->valid = ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE;
        return sizeof(zip_stat_t);
      }
      case ZIP_SOURCE_OPEN:
        read_pos_ = 0;
        return 0;
      case ZIP_SOURCE_READ: {
        const zip_uint64_t n = std::min<zip_uint64_t>(len, end_ - std::min(read_pos_, end_));
        const zip_int64_t got = n == 0 ? 0 : store_.read(read_pos_, data, n);
        if (got < 0) return fail(ZIP_ER_READ, errno);
        read_pos_ += static_cast<zip_uint64_t>(got);
        return got;
      }
      case ZIP_SOURCE_CLOSE:
        return 0;
      case ZIP_SOURCE_SEEK: {
        const zip_int64_t pos = zip_source_seek_compute_offset(read_pos_, end_, data, len, &error_);
        if (pos < 0) return -1;
        read_pos_ = static_cast<zip_uint64_t>(pos);
        return 0;
      }
      case ZIP_SOURCE_TELL:
        return static_cast<zip_int64_t>(read_pos_);
      case ZIP_SOURCE_BEGIN_WRITE:
      case ZIP_SOURCE_ROLLBACK_WRITE:
      case ZIP_SOURCE_REMOVE:
        if (int error = store_.truncate(0)) return fail(error, errno);
        write_pos_ = end_ = 0;
        return 0;
      case ZIP_SOURCE_WRITE: {
        if (int error = store_.write(write_pos_, data, len)) return fail(error, errno);
        write_pos_ += len;
        end_ = std::max(end_, write_pos_);
        return static_cast<zip_int64_t>(len);
      }
      case ZIP_SOURCE_SEEK_WRITE: {
        const zip_int64_t pos = zip_source_seek_compute_offset(write_pos_, end_, data, len, &error_);
        if (pos < 0) return -1;
        write_pos_ = static_cast<zip_uint64_t>(pos);
        return 0;
      }
      case ZIP_SOURCE_TELL_WRITE:
        return static_cast<zip_int64_t>(write_pos_);
      case ZIP_SOURCE_COMMIT_WRITE:
        // Only our own store was written (for a file, AtomicFile::commit() syncs and renames it).
        if (int error = store_.truncate(end_)) return fail(error, errno);
        return 0;
      case ZIP_SOURCE_ERROR:
        return zip_error_to_data(&error_, data, len);
      case ZIP_SOURCE_FREE:
        return 0;
      default:
        return fail(ZIP_ER_OPNOTSUPP, 0);
    }
  }

  Store store_;
  zip_error_t error_;
  zip_uint64_t read_pos_ = 0;
  zip_uint64_t write_pos_ = 0;
  zip_uint64_t end_ = 0;
};

// Has libzip write the entries, in `order`, into `sink`'s store; `what` names the archive in
// errors.
template <class Store, typename Entry>
void write_archive(Sink<Store>& sink, const std::vector<const Entry*>& order, const std::string& what) {
  zip_error_t error;
  zip_error_init(&error);
  const Source source(zip_source_function_create(&Sink<Store>::callback, &sink, &error));
  if (!source) {
    const std::string text = zip_error_strerror(&error);
    zip_error_fini(&error);
    throw IoError("zip: cannot create a source for " + what + ": " + text);
  }
  zip_source_keep(source.get());  // the archive's reference; `source` stays ours
  Archive za(zip_open_from_source(source.get(), ZIP_TRUNCATE, &error));
  if (!za) {
    zip_source_free(source.get());  // zip_open_from_source did not take its reference
    const std::string text = zip_error_strerror(&error);
    zip_error_fini(&error);
    throw IoError("zip: cannot start " + what + ": " + text);
  }
  zip_error_fini(&error);
  add_entries(za.get(), order);
  if (zip_close(za.get()) != 0) throw_libzip("cannot write " + what, za.get());
  (void)za.release();  // zip_close freed it
}

}  // namespace

ZipWriter::ZipWriter(std::filesystem::path target, AtomicFile::Temporary temporary)
    : target_(std::move(target)), temporary_(temporary) {}
ZipWriter::ZipWriter(ZipWriter&&) noexcept = default;
ZipWriter& ZipWriter::operator=(ZipWriter&&) noexcept = default;
ZipWriter::~ZipWriter() = default;

ZipWriter ZipWriter::to_file(std::filesystem::path target, AtomicFile::Temporary temporary) {
  if (target.empty() || !target.has_filename()) {
    throw IoError("zip: " + quote(target.string(), 4096) + " does not name a file");
  }
  return ZipWriter(std::move(target), temporary);
}

ZipWriter ZipWriter::to_memory() { return ZipWriter(std::filesystem::path(), AtomicFile::Temporary::unnamed); }

HeldBytes::HeldBytes(std::string bytes) {
  auto held = std::make_shared<const std::string>(std::move(bytes));
  pieces.push_back(bytes_of(*held));
  owner = std::move(held);
}

void ZipWriter::add(std::string_view name, Method method, HeldBytes bytes) {
  if (finished_) throw ValueError("zip: cannot add " + quote(name) + ": the writer is finished");
  check_entry_name(name);
  if (names_.find(name) != names_.end()) {
    throw FormatError("zip: cannot add " + quote(name) + " twice");
  }
  std::erase_if(bytes.pieces, [](std::span<const std::byte> piece) { return piece.empty(); });
  std::uint64_t size = 0;
  for (std::span<const std::byte> piece : bytes.pieces) size += piece.size();
  names_.emplace(name);
  entries_.push_back({std::string(name), method, std::move(bytes), size});
}

void ZipWriter::add_stored(std::string_view name, std::span<const std::byte> bytes) {
  add(name, Method::store, copied(bytes));
}

void ZipWriter::add_stored(std::string_view name, HeldBytes bytes) { add(name, Method::store, std::move(bytes)); }

void ZipWriter::add_deflated(std::string_view name, std::span<const std::byte> bytes) {
  add(name, Method::deflate, copied(bytes));
}

std::vector<std::byte> ZipWriter::finish() {
  if (finished_) throw ValueError("zip: finish() called twice");
  finished_ = true;
  // The entries are released however finish() ends: the writer is single-use.
  const std::vector<Entry> entries = std::move(entries_);
  names_.clear();
  std::vector<const Entry*> order;
  order.reserve(entries.size());
  for (const Entry& e : entries) {
    if (e.method == Method::store) order.push_back(&e);
  }
  for (const Entry& e : entries) {
    if (e.method == Method::deflate) order.push_back(&e);
  }

  if (target_.empty()) {
    if (order.empty()) return {kEmptyArchive.begin(), kEmptyArchive.end()};
    // Room for the whole archive up front: the entries, and per entry its two headers, name
    // twice, padding and data descriptor (libzip stores what deflate cannot shrink), so the
    // vector does not move as it grows; were the room short, it would only reallocate.
    std::size_t room = 22;
    for (const Entry* e : order) room += e->size + 2 * e->name.size() + 200;
    std::vector<std::byte> out;
    out.reserve(room);
    Sink<MemoryStore> sink{MemoryStore(out)};
    write_archive(sink, order, std::string("the memory archive"));
    return out;
  }

  AtomicFile file(target_, temporary_);
  if (order.empty()) {
    file.write(kEmptyArchive);
  } else {
    Sink<FileStore> sink{FileStore(file.fd())};
    write_archive(sink, order, quote(target_.string(), 4096));
  }
  file.commit();
  return {};
}

}  // namespace fxpack::zip
