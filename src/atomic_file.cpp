#include "fxpack/atomic_file.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>

#include "fxpack/errors.hpp"
#include "fxpack/quote.hpp"

namespace fxpack {

namespace {

[[noreturn]] void os_fail(const std::string& what, const std::filesystem::path& path, int err) {
  throw IoError(what + " " + quote(path.string(), 4096) + ": " + std::strerror(err));
}

std::string random_suffix() {
  static thread_local std::mt19937_64 gen{std::random_device{}()};
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(gen()));
  return buf;
}

// Removes the temporary files in `dir` whose names start with `prefix` and that no writer
// holds locked: their writer is gone (killed, or an older fxpack that did not lock).
void remove_stale_temporaries(const std::filesystem::path& dir, const std::string& prefix) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;  // creating the temporary file will report the real problem
  const int dfd = ::dirfd(d);
  while (const dirent* e = ::readdir(d)) {
    const std::string_view name = e->d_name;
    if (!name.starts_with(prefix)) continue;
    // O_NOFOLLOW: never act through a symlink someone planted under such a name.
    const int fd = ::openat(dfd, e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st {};
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && ::flock(fd, LOCK_EX | LOCK_NB) == 0) {
      ::unlinkat(dfd, e->d_name, 0);
    }
    ::close(fd);
  }
  ::closedir(d);
}

int open_unnamed(const std::filesystem::path& dir) {
#ifdef O_TMPFILE
  const int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0666);
  if (fd >= 0) return fd;
  // EOPNOTSUPP/EISDIR/EINVAL: this file system (or kernel) has no O_TMPFILE; use a name.
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) os_fail("cannot create a temporary file in", dir, errno);
#endif
  return -1;
}

// A fresh named temporary file, locked. The lock is taken after creating the file, so a
// concurrent cleaner may remove the name in between; then the link count is 0 and we retry.
std::pair<std::filesystem::path, int> open_named(const std::filesystem::path& dir, const std::string& prefix) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::filesystem::path path = dir / (prefix + random_suffix());
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) {
      if (errno == EEXIST) continue;
      os_fail("cannot create a temporary file in", dir, errno);
    }
    struct stat st {};
    if (::flock(fd, LOCK_EX) == 0 && ::fstat(fd, &st) == 0 && st.st_nlink > 0) return {std::move(path), fd};
    ::close(fd);
  }
  throw IoError("cannot create a temporary file in " + quote(dir.string(), 4096) + ": all names taken");
}

// Gives the unnamed file `fd` the name `path`.
bool link_unnamed(int fd, const std::filesystem::path& path) {
  // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; /proc/self/fd works for anyone where /proc is.
  if (::linkat(fd, "", AT_FDCWD, path.c_str(), AT_EMPTY_PATH) == 0) return true;
  const std::string proc = "/proc/self/fd/" + std::to_string(fd);
  return ::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW) == 0;
}

}  // namespace

std::string AtomicFile::temporary_prefix(const std::filesystem::path& target) {
  // Cut long names so that prefix + suffix stays within NAME_MAX (255).
  return "." + target.filename().string().substr(0, 200) + ".tmp-";
}

AtomicFile::AtomicFile(std::filesystem::path target, Temporary temporary) : target_(std::move(target)) {
  if (target_.empty() || !target_.has_filename()) {
    throw IoError(quote(target_.string(), 4096) + " does not name a file");
  }
  dir_ = target_.has_parent_path() ? target_.parent_path() : std::filesystem::path(".");
  const std::string prefix = temporary_prefix(target_);
  remove_stale_temporaries(dir_, prefix);
  if (temporary == Temporary::unnamed) fd_ = open_unnamed(dir_);
  if (fd_ < 0) {
    auto [path, fd] = open_named(dir_, prefix);
    temp_path_ = std::move(path);
    fd_ = fd;
  } else if (::flock(fd_, LOCK_EX) != 0) {
    // The lock also covers the moment after linking, when the file has a name.
    const int err = errno;
    ::close(fd_);
    os_fail("cannot lock a temporary file in", dir_, err);
  }
}

AtomicFile::~AtomicFile() {
  if (!committed_) discard();
}

void AtomicFile::discard() noexcept {
  if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void AtomicFile::write(std::span<const std::byte> bytes) {
  if (committed_) throw IoError("cannot write to " + quote(target_.string(), 4096) + ": already committed");
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) os_fail("cannot write", target_, errno);
    bytes = bytes.subspan(static_cast<std::size_t>(n));
  }
}

void AtomicFile::commit() {
  if (committed_) throw IoError("cannot commit " + quote(target_.string(), 4096) + " twice");
  if (::fsync(fd_) != 0) os_fail("cannot sync", target_, errno);
  struct stat old {};
  if (::stat(target_.c_str(), &old) == 0 && S_ISREG(old.st_mode)) {
    // Best effort: failing to copy the mode is no reason to lose the save.
    (void)::fchmod(fd_, old.st_mode & 07777);
  }
  if (temp_path_.empty()) {
    std::filesystem::path path;
    for (int attempt = 0;; ++attempt) {
      path = dir_ / (temporary_prefix(target_) + random_suffix());
      if (link_unnamed(fd_, path)) break;
      if (errno != EEXIST || attempt == 100) os_fail("cannot give a name to the temporary file in", dir_, errno);
    }
    temp_path_ = std::move(path);
  }
  if (::rename(temp_path_.c_str(), target_.c_str()) != 0) os_fail("cannot replace", target_, errno);
  temp_path_.clear();
  committed_ = true;
  ::close(fd_);
  fd_ = -1;
  // The new file is in place: from here a failure must not be reported as if it were not,
  // so syncing the directory entry is best effort.
  if (const int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void write_file_atomic(const std::filesystem::path& path, std::span<const std::byte> bytes) {
  AtomicFile file(path);
  file.write(bytes);
  file.commit();
}

void write_file_atomic(const std::filesystem::path& path, std::string_view bytes) {
  write_file_atomic(path, std::as_bytes(std::span(bytes.data(), bytes.size())));
}

}  // namespace fxpack
