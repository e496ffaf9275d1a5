#include "zip/zip_writer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <random>

#include "fxpack/errors.hpp"

namespace fxpack::zip {
namespace {

constexpr std::uint16_t kPaddingExtraId = 0x4246;
constexpr std::size_t kAlignment = 64;

// The end-of-central-directory record of an archive with no entries. libzip will not write
// one (and would delete the file instead), so it is written by hand.
constexpr std::array<std::byte, 22> kEmptyArchive = {
    std::byte{'P'}, std::byte{'K'}, std::byte{5}, std::byte{6}};

std::string os_error(const std::string& what, const std::filesystem::path& path, int err) {
  return "zip: " + what + " '" + path.string() + "': " + std::strerror(err);
}

// 1980-01-01 00:00, the DOS epoch, as local time: libzip converts with localtime(), so this is
// what makes the stored date independent of the time zone.
std::time_t fixed_mtime() {
  std::tm tm{};
  tm.tm_year = 80;
  tm.tm_mday = 1;
  tm.tm_isdst = -1;
  return std::mktime(&tm);
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
  for (const Entry* e : order) {
    zip_source_t* src = zip_source_buffer(za, e->bytes.data(), e->bytes.size(), 0);
    if (src == nullptr) throw_libzip("cannot add '" + e->name + "'", za);
    const zip_int64_t idx = zip_file_add(za, e->name.c_str(), src, ZIP_FL_ENC_UTF_8);
    if (idx < 0) {
      zip_source_free(src);  // still ours when zip_file_add fails
      throw_libzip("cannot add '" + e->name + "'", za);
    }
    const auto index = static_cast<zip_uint64_t>(idx);
    if (zip_file_set_mtime(za, index, mtime, 0) != 0) throw_libzip("cannot set mtime", za);
    if (e->method == Method::deflate) {
      if (zip_set_file_compression(za, index, ZIP_CM_DEFLATE, 0) != 0) {
        throw_libzip("cannot set compression for '" + e->name + "'", za);
      }
      continue;
    }
    if (zip_set_file_compression(za, index, ZIP_CM_STORE, 0) != 0) {
      throw_libzip("cannot set compression for '" + e->name + "'", za);
    }
    // The local header is 30 bytes, the name, libzip's Zip64 field when the size needs one
    // (empty at exactly 0xffffffff, both sizes above), then our field's 4-byte header.
    const std::uint64_t size = e->bytes.size();
    std::uint64_t header = 30 + e->name.size();
    if (size >= 0xffffffffull) header += size > 0xffffffffull ? 20 : 4;
    const std::uint64_t pad = (kAlignment - (offset + header + 4) % kAlignment) % kAlignment;
    if (zip_file_extra_field_set(za, index, kPaddingExtraId, ZIP_EXTRA_FIELD_NEW, kZeros.data(),
                                 static_cast<zip_uint16_t>(pad), ZIP_FL_LOCAL) != 0) {
      throw_libzip("cannot pad '" + e->name + "'", za);
    }
    offset += header + 4 + pad + size;
  }
}

// False with errno set on failure.
bool write_all(int fd, std::span<const std::byte> bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    bytes = bytes.subspan(static_cast<std::size_t>(n));
  }
  return true;
}

// Removes the temporary file unless the rename has consumed it.
class TempFile {
 public:
  explicit TempFile(std::filesystem::path path) : path_(std::move(path)) {}
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  const std::filesystem::path& path() const { return path_; }
  void release() { path_.clear(); }

 private:
  std::filesystem::path path_;
};

// Creates an empty file next to `target` with a fresh name and permissions from the umask.
// The name starts with '.' so directory listings and globs skip a file caught mid-write.
std::pair<std::filesystem::path, int> create_temp(const std::filesystem::path& target) {
  const std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : ".";
  const std::string stem = "." + target.filename().string().substr(0, 200) + ".tmp-";
  std::random_device rd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    char suffix[9];
    std::snprintf(suffix, sizeof suffix, "%08x", static_cast<unsigned>(rd()));
    std::filesystem::path path = dir / (stem + suffix);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) return {std::move(path), fd};
    if (errno != EEXIST) throw IoError(os_error("cannot create a temporary file in", dir, errno));
  }
  throw IoError("zip: cannot create a temporary file in '" + dir.string() + "': all names taken");
}

void fsync_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError(os_error("cannot open", path, errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw IoError(os_error("cannot sync", path, err));
}

}  // namespace

ZipWriter::ZipWriter(std::filesystem::path target) : target_(std::move(target)) {}
ZipWriter::ZipWriter(ZipWriter&&) noexcept = default;
ZipWriter& ZipWriter::operator=(ZipWriter&&) noexcept = default;
ZipWriter::~ZipWriter() = default;

ZipWriter ZipWriter::to_file(std::filesystem::path target) {
  if (target.empty() || !target.has_filename()) {
    throw IoError("zip: '" + target.string() + "' does not name a file");
  }
  return ZipWriter(std::move(target));
}

ZipWriter ZipWriter::to_memory() { return ZipWriter(std::filesystem::path()); }

void ZipWriter::add(std::string_view name, Method method, std::span<const std::byte> bytes,
                    std::shared_ptr<const void> owner) {
  if (finished_) throw Error("zip: cannot add '" + std::string(name) + "': the writer is finished");
  check_entry_name(name);
  if (names_.find(name) != names_.end()) {
    throw FormatError("zip: cannot add '" + std::string(name) + "' twice");
  }
  names_.emplace(name);
  entries_.push_back({std::string(name), method, bytes, std::move(owner)});
}

void ZipWriter::add_stored(std::string_view name, std::span<const std::byte> bytes) {
  auto copy = std::make_shared<const std::vector<std::byte>>(bytes.begin(), bytes.end());
  const std::span<const std::byte> view(*copy);
  add(name, Method::store, view, std::move(copy));
}

void ZipWriter::add_stored(std::string_view name, std::span<const std::byte> bytes,
                           std::shared_ptr<const void> owner) {
  add(name, Method::store, bytes, std::move(owner));
}

void ZipWriter::add_deflated(std::string_view name, std::span<const std::byte> bytes) {
  auto copy = std::make_shared<const std::vector<std::byte>>(bytes.begin(), bytes.end());
  const std::span<const std::byte> view(*copy);
  add(name, Method::deflate, view, std::move(copy));
}

std::vector<std::byte> ZipWriter::finish() {
  if (finished_) throw Error("zip: finish() called twice");
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

  zip_error_t error;
  zip_error_init(&error);
  const auto error_text = [&] {
    std::string text = zip_error_strerror(&error);
    zip_error_fini(&error);
    return text;
  };

  if (target_.empty()) {
    if (order.empty()) return {kEmptyArchive.begin(), kEmptyArchive.end()};
    const Source buffer(zip_source_buffer_create(nullptr, 0, 0, &error));
    if (!buffer) throw IoError("zip: cannot create a memory buffer: " + error_text());
    zip_source_keep(buffer.get());  // the archive's reference; `buffer` stays ours
    Archive za(zip_open_from_source(buffer.get(), ZIP_TRUNCATE, &error));
    if (!za) {
      zip_source_free(buffer.get());  // zip_open_from_source did not take its reference
      throw IoError("zip: cannot open a memory archive: " + error_text());
    }
    add_entries(za.get(), order);
    if (zip_close(za.get()) != 0) throw_libzip("cannot write the archive", za.get());
    (void)za.release();  // zip_close freed it

    zip_source_t* src = buffer.get();
    const auto source_error = [&](const char* what) {
      return IoError(std::string("zip: ") + what + ": " + zip_error_strerror(zip_source_error(src)));
    };
    if (zip_source_open(src) != 0) throw source_error("cannot reopen the memory archive");
    std::vector<std::byte> out;
    zip_int64_t size = -1;
    if (zip_source_seek(src, 0, SEEK_END) == 0) size = zip_source_tell(src);
    if (size >= 0 && zip_source_seek(src, 0, SEEK_SET) == 0) {
      out.resize(static_cast<std::size_t>(size));
      if (zip_source_read(src, out.data(), out.size()) != size) size = -1;
    } else {
      size = -1;
    }
    zip_source_close(src);
    if (size < 0) throw source_error("cannot read back the memory archive");
    return out;
  }

  auto [temp_path, fd] = create_temp(target_);
  TempFile temp(std::move(temp_path));
  const bool written = !order.empty() || write_all(fd, kEmptyArchive);
  const int err = errno;
  ::close(fd);
  if (!written) throw IoError(os_error("cannot write", temp.path(), err));
  if (!order.empty()) {
    // libzip writes its own temporary beside ours and renames it over ours on success, or
    // removes it on failure.
    int code = 0;
    Archive za(zip_open(temp.path().c_str(), ZIP_TRUNCATE, &code));
    if (!za) {
      zip_error_init_with_code(&error, code);
      throw IoError("zip: cannot open '" + temp.path().string() + "': " + error_text());
    }
    add_entries(za.get(), order);
    if (zip_close(za.get()) != 0) {
      throw_libzip("cannot write '" + target_.string() + "'", za.get());
    }
    (void)za.release();
  }
  fsync_file(temp.path());
  struct stat old {};
  if (::stat(target_.c_str(), &old) == 0 && S_ISREG(old.st_mode)) {
    // Best effort: failing to copy the mode is no reason to lose the save.
    (void)::chmod(temp.path().c_str(), old.st_mode & 07777);
  }
  if (::rename(temp.path().c_str(), target_.c_str()) != 0) {
    throw IoError(os_error("cannot replace", target_, errno));
  }
  temp.release();
  // The new archive is in place: from here a failure must not be reported as if it were not,
  // so syncing the directory entry is best effort.
  const std::filesystem::path dir = target_.has_parent_path() ? target_.parent_path() : ".";
  if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

}  // namespace fxpack::zip
