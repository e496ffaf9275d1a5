// Writing a file atomically: readers see the old file or the complete new one, never a part
// of it, even across a crash or a SIGKILL; a write that fails, or is abandoned, leaves the old
// file untouched and no temporary file behind.
//
// How: the bytes go to an unnamed temporary file in the target's directory (Linux O_TMPFILE),
// which the kernel deletes by itself if the process dies. commit() fsyncs it, gives it the
// target's permission bits (if the target exists), links it into the directory under a
// temporary name and renames that over the target, then fsyncs the directory. Only between
// the link and the rename — microseconds, after the data is complete and synced — does a
// named temporary file exist.
//
// Where the file system has no O_TMPFILE (or when asked with Temporary::named), the temporary
// file is named ".<target name>.tmp-<16 hex digits>" from the start and holds an exclusive
// flock() while it is written. Every AtomicFile first removes the temporary files of its
// target that no live writer holds locked, so whatever a killed writer left behind — in
// either mode, and from older fxpack versions, whose temporary files had the same prefix —
// is gone after the next save to the same path.
//
// Errors are fxpack::IoError naming the path and the OS error.
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

namespace fxpack {

class AtomicFile {
 public:
  enum class Temporary : unsigned char {
    unnamed,  // O_TMPFILE where the file system supports it, else named
    named,    // always a named, locked temporary file (for tests, and file systems whose
              // O_TMPFILE support is unreliable)
  };

  // Creates the temporary file next to `target` (after removing stale ones).
  explicit AtomicFile(std::filesystem::path target, Temporary temporary = Temporary::unnamed);
  // Discards the temporary file unless commit() succeeded.
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // The temporary file, open for reading and writing (pwrite at any offset works too).
  int fd() const noexcept { return fd_; }
  // Appends at the file offset.
  void write(std::span<const std::byte> bytes);
  // Puts the file in place (see above). After a successful commit() the AtomicFile is done.
  void commit();

  const std::filesystem::path& target() const noexcept { return target_; }
  // True if the temporary file has no name (O_TMPFILE).
  bool unnamed() const noexcept { return temp_path_.empty(); }

  // The name prefix of the target's temporary files: ".<target name>.tmp-".
  static std::string temporary_prefix(const std::filesystem::path& target);

 private:
  void discard() noexcept;

  std::filesystem::path target_;
  std::filesystem::path dir_;
  std::filesystem::path temp_path_;  // empty while the temporary file has no name
  int fd_ = -1;
  bool committed_ = false;
};

// The whole of `bytes` written to `path` through an AtomicFile.
void write_file_atomic(const std::filesystem::path& path, std::span<const std::byte> bytes);
void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);

}  // namespace fxpack
