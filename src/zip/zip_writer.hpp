// Writing zip archives, reproducibly and atomically (libzip underneath).
//
// The bytes: entries appear in the order they were added, except that every STORE entry is
// written before every DEFLATE entry (a deflated entry's size is unknown until libzip compresses
// it, so a STORE entry after one could not be aligned). Each STORE entry's data starts at an
// offset that is a multiple of 64, so a reader can map it and alias it as tensor data: the
// local header carries a zero-filled padding extra field with id 0x4246 (PyTorch's "FB"),
// which the central directory does not repeat. All timestamps are 1980-01-01 00:00 (DOS local
// time, whatever the time zone), there are no comments, and names are flagged UTF-8, so the
// same entries give the same bytes on every run and every machine, to a file or to memory.
// An archive with no entries is the 22-byte end record alone.
//
// Atomicity (to_file): nothing touches the file system before finish(). finish() has libzip
// write the archive into an AtomicFile (fxpack/atomic_file.hpp: an unnamed temporary file in
// the target's directory, synced and renamed over the target), so readers see the old archive
// or the complete new one, even across a crash or a SIGKILL. If finish() throws, or is never
// called, or the process is killed, the target is untouched and no temporary file is left
// (on a file system without O_TMPFILE: the next save to the path removes it). An existing
// target keeps its permission bits.
//
// Names must pass check_entry_name() (zip_reader.hpp) and be unique; add_* throws
// fxpack::FormatError otherwise. The writer keeps the bytes of every entry until finish():
// by copying them, or for HeldBytes, by holding their owner. finish() throws
// fxpack::IoError when the OS or libzip fails. A writer is single-use: after finish(), even a
// failed one, it accepts nothing more.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fxpack/atomic_file.hpp"
#include "zip/zip_reader.hpp"

namespace fxpack::zip {

// A string's bytes as the byte span the writer takes.
inline std::span<const std::byte> bytes_of(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

// An entry's bytes that the writer holds instead of copying: `pieces` one after another (a
// record its writer made in parts is not joined into one buffer first), and the `owner` that
// keeps them alive and unchanged until the writer has written them. (Take the pieces' spans
// before moving their owner into the same call: arguments are evaluated in no fixed order.)
struct HeldBytes {
  HeldBytes(std::vector<std::span<const std::byte>> pieces, std::shared_ptr<const void> owner)
      : pieces(std::move(pieces)), owner(std::move(owner)) {}
  // A string's bytes, the string moved in.
  explicit HeldBytes(std::string bytes);

  std::vector<std::span<const std::byte>> pieces;
  std::shared_ptr<const void> owner;
};

class ZipWriter {
 public:
  static ZipWriter to_file(std::filesystem::path target,
                           AtomicFile::Temporary temporary = AtomicFile::Temporary::unnamed);
  static ZipWriter to_memory();

  ZipWriter(ZipWriter&&) noexcept;
  ZipWriter& operator=(ZipWriter&&) noexcept;
  ~ZipWriter();

  // STORE, data 64-byte aligned. The bytes are copied.
  void add_stored(std::string_view name, std::span<const std::byte> bytes);
  // STORE without a copy.
  void add_stored(std::string_view name, HeldBytes bytes);
  // DEFLATE, for text-like records. The bytes are copied.
  void add_deflated(std::string_view name, std::span<const std::byte> bytes);

  // Writes the archive. A memory writer returns its bytes; a file writer returns an empty
  // vector once the archive is in place.
  std::vector<std::byte> finish();

 private:
  struct Entry {
    std::string name;
    Method method;
    HeldBytes bytes;     // no piece empty
    std::uint64_t size;  // of all pieces
  };

  ZipWriter(std::filesystem::path target, AtomicFile::Temporary temporary);
  void add(std::string_view name, Method method, HeldBytes bytes);

  std::filesystem::path target_;  // empty for a memory writer
  AtomicFile::Temporary temporary_;
  std::vector<Entry> entries_;
  std::set<std::string, std::less<>> names_;
  bool finished_ = false;
};

}  // namespace fxpack::zip
