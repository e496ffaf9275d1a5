// The zip layer: ZipWriter's bytes (alignment, determinism, atomic saves) and ZipReader's
// refusals of hostile archives, which are crafted by hand or patched from good ones.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "fxpack/errors.hpp"
#include "zip/zip_reader.hpp"
#include "zip/zip_writer.hpp"
#include "child_process.hpp"
#include "skip.hpp"

namespace fs = std::filesystem;
using fxpack::FormatError;
using fxpack::IoError;
using fxpack::testing::in_child;
using fxpack::testing::resident_bytes;
using fxpack::testing::skip_unless;
using fxpack::zip::Access;
using fxpack::zip::Method;
using fxpack::zip::ReaderLimits;
using fxpack::zip::ZipReader;
using fxpack::zip::ZipWriter;
using Bytes = std::vector<std::byte>;

namespace {

Bytes bytes_of(std::string_view s) {
  Bytes b(s.size());
  if (!s.empty()) std::memcpy(b.data(), s.data(), s.size());
  return b;
}

Bytes pattern(std::size_t n, unsigned seed) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = std::byte(static_cast<unsigned char>(i * 31 + seed));
  return b;
}

Bytes slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Bytes b(chars.size());
  if (!chars.empty()) std::memcpy(b.data(), chars.data(), chars.size());
  return b;
}

void spit(const fs::path& p, const Bytes& b) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

std::uint32_t crc_of(const Bytes& b) {
  return static_cast<std::uint32_t>(crc32_z(0, reinterpret_cast<const Bytef*>(b.data()), b.size()));
}

Bytes raw_deflate(const Bytes& in) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, 9, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  Bytes out(deflateBound(&zs, in.size()));
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// Little-endian field access for crafting and patching.
void put(Bytes& b, std::uint64_t v, int n) {
  for (int i = 0; i < n; ++i) b.push_back(std::byte(static_cast<unsigned char>(v >> (8 * i))));
}
void poke(Bytes& b, std::size_t at, std::uint64_t v, int n) {
  for (int i = 0; i < n; ++i) b.at(at + i) = std::byte(static_cast<unsigned char>(v >> (8 * i)));
}
std::uint64_t peek(const Bytes& b, std::size_t at, int n) {
  std::uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = v << 8 | std::to_integer<unsigned>(b.at(at + i));
  return v;
}

// A hand-made archive entry. `data` is what goes in the archive (already deflated for
// method 8); everything the central directory claims can be overridden.
struct Raw {
  std::string name{};
  Bytes data{};
  std::uint16_t method = 0;
  std::uint16_t flags = 0;
  std::optional<std::uint32_t> crc = std::nullopt;
  std::optional<std::uint64_t> uncompressed = std::nullopt;
  bool zip64 = false;  // sizes and offset in 0x0001 extra fields, and a Zip64 end record
};

Bytes craft(const std::vector<Raw>& entries) {
  Bytes out;
  std::vector<std::uint64_t> offsets;
  bool any64 = false;
  for (const Raw& e : entries) {
    offsets.push_back(out.size());
    any64 |= e.zip64;
    const Bytes name = bytes_of(e.name);
    const std::uint32_t crc = e.crc.value_or(crc_of(e.data));
    put(out, 0x04034b50, 4);
    put(out, e.zip64 ? 45 : 20, 2);
    put(out, e.flags, 2);
    put(out, e.method, 2);
    put(out, 0, 2);
    put(out, 0x21, 2);
    put(out, crc, 4);
    put(out, e.zip64 ? 0xffffffff : e.data.size(), 4);
    put(out, e.zip64 ? 0xffffffff : e.uncompressed.value_or(e.data.size()), 4);
    put(out, e.name.size(), 2);
    put(out, e.zip64 ? 20 : 0, 2);
    out.insert(out.end(), name.begin(), name.end());
    if (e.zip64) {
      put(out, 1, 2);
      put(out, 16, 2);
      put(out, e.uncompressed.value_or(e.data.size()), 8);
      put(out, e.data.size(), 8);
    }
    out.insert(out.end(), e.data.begin(), e.data.end());
  }
  const std::uint64_t cd_offset = out.size();
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const Raw& e = entries[i];
    const Bytes name = bytes_of(e.name);
    put(out, 0x02014b50, 4);
    put(out, 63, 2);
    put(out, e.zip64 ? 45 : 20, 2);
    put(out, e.flags, 2);
    put(out, e.method, 2);
    put(out, 0, 2);
    put(out, 0x21, 2);
    put(out, e.crc.value_or(crc_of(e.data)), 4);
    put(out, e.zip64 ? 0xffffffff : e.data.size(), 4);
    put(out, e.zip64 ? 0xffffffff : e.uncompressed.value_or(e.data.size()), 4);
    put(out, e.name.size(), 2);
    put(out, e.zip64 ? 28 : 0, 2);
    put(out, 0, 2);  // comment
    put(out, 0, 2);  // disk
    put(out, 0, 2);
    put(out, 0, 4);
    put(out, e.zip64 ? 0xffffffff : offsets[i], 4);
    out.insert(out.end(), name.begin(), name.end());
    if (e.zip64) {
      put(out, 1, 2);
      put(out, 24, 2);
      put(out, e.uncompressed.value_or(e.data.size()), 8);
      put(out, e.data.size(), 8);
      put(out, offsets[i], 8);
    }
  }
  const std::uint64_t cd_size = out.size() - cd_offset;
  if (any64) {
    const std::uint64_t z_end = out.size();
    put(out, 0x06064b50, 4);
    put(out, 44, 8);
    put(out, 45, 2);
    put(out, 45, 2);
    put(out, 0, 4);
    put(out, 0, 4);
    put(out, entries.size(), 8);
    put(out, entries.size(), 8);
    put(out, cd_size, 8);
    put(out, cd_offset, 8);
    put(out, 0x07064b50, 4);
    put(out, 0, 4);
    put(out, z_end, 8);
    put(out, 1, 4);
  }
  put(out, 0x06054b50, 4);
  put(out, 0, 2);
  put(out, 0, 2);
  put(out, any64 ? 0xffff : entries.size(), 2);
  put(out, any64 ? 0xffff : entries.size(), 2);
  put(out, any64 ? 0xffffffff : cd_size, 4);
  put(out, any64 ? 0xffffffff : cd_offset, 4);
  put(out, 0, 2);
  return out;
}

std::uint64_t cd_offset_of(const Bytes& zip) { return peek(zip, zip.size() - 22 + 16, 4); }

ZipReader open_bytes(const Bytes& b, const ReaderLimits& limits = {}) {
  return ZipReader::from_memory(std::make_shared<const Bytes>(b), limits);
}

std::string refusal(const Bytes& b, const ReaderLimits& limits = {}) {
  try {
    (void)open_bytes(b, limits);
  } catch (const FormatError& e) {
    return e.what();
  }
  return "(accepted)";
}

// A fresh directory, removed with everything in it at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "fxpack-zip-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path, ec);
  }
  std::set<std::string> listing() const {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(path)) names.insert(e.path().filename().string());
    return names;
  }
};

// The archive most tests use: stored entries of awkward sizes and names, added interleaved
// with deflated ones.
void add_sample(ZipWriter& w) {
  w.add_deflated("pkg/.data/version", bytes_of("1\n"));
  w.add_stored("pkg/.data/0", pattern(1, 1));
  w.add_stored("pkg/.data/tensor_with_a_long_name_17", pattern(4097, 2));
  w.add_deflated("pkg/model.pkl", bytes_of(std::string(3000, 'x') + "end"));
  w.add_stored("pkg/.data/empty", {});
  w.add_stored("pkg/.data/ünïcødé", pattern(63, 3));
  w.add_stored("a", pattern(65, 4));
}

Bytes sample_bytes() {
  ZipWriter w = ZipWriter::to_memory();
  add_sample(w);
  return w.finish();
}

// The sample archive written to dir/name.
fs::path sample_file(const TempDir& dir, const std::string& name) {
  const fs::path file = dir.path / name;
  ZipWriter w = ZipWriter::to_file(file);
  add_sample(w);
  w.finish();
  return file;
}

}  // namespace

TEST_CASE("zip: round trip through memory and through a file") {
  TempDir dir;
  const fs::path file = dir.path / "model.zip";
  {
    ZipWriter w = ZipWriter::to_file(file);
    add_sample(w);
    CHECK(w.finish().empty());
  }
  const Bytes memory = sample_bytes();

  for (const bool from_file : {false, true}) {
    CAPTURE(from_file);
    const ZipReader r = from_file ? ZipReader::open(file) : open_bytes(memory);
    std::vector<std::string> names;
    for (const auto& e : r.entries()) names.push_back(e.name);
    // Stored entries first, each group in the order added.
    CHECK(names == std::vector<std::string>{"pkg/.data/0", "pkg/.data/tensor_with_a_long_name_17",
                                            "pkg/.data/empty", "pkg/.data/ünïcødé", "a",
                                            "pkg/.data/version", "pkg/model.pkl"});
    CHECK(r.read("pkg/.data/0") == pattern(1, 1));
    CHECK(r.read("pkg/.data/tensor_with_a_long_name_17") == pattern(4097, 2));
    CHECK(r.read("pkg/.data/empty").empty());
    CHECK(r.read("pkg/.data/ünïcødé") == pattern(63, 3));
    CHECK(r.read("a") == pattern(65, 4));
    CHECK(r.read("pkg/.data/version") == bytes_of("1\n"));
    CHECK(r.read("pkg/model.pkl") == bytes_of(std::string(3000, 'x') + "end"));

    const auto& pkl = r.at("pkg/model.pkl");
    CHECK(pkl.method == Method::deflate);
    CHECK(pkl.uncompressed_size == 3003);
    CHECK(pkl.compressed_size < 100);
    const auto& t = r.at("pkg/.data/tensor_with_a_long_name_17");
    CHECK(t.method == Method::store);
    CHECK(t.compressed_size == 4097);
    CHECK(t.crc32 == crc_of(pattern(4097, 2)));
    CHECK(r.find("missing") == nullptr);
    CHECK_THROWS_WITH_AS(r.read("missing"), doctest::Contains("no entry 'missing'"), FormatError);
  }
}

TEST_CASE("zip: every stored entry's data is 64-byte aligned") {
  ZipWriter w = ZipWriter::to_memory();
  std::vector<Bytes> payloads;
  for (unsigned i = 0; i < 40; ++i) {
    // Names and sizes of every length mod 64, with deflated entries in between.
    const std::string name = "d/" + std::string(i % 23 + 1, static_cast<char>('a' + i % 26)) +
                             std::to_string(i);
    payloads.push_back(pattern(i * 37 % 200 + i, i));
    w.add_stored(name, payloads.back());
    if (i % 7 == 0) w.add_deflated("text/" + std::to_string(i), bytes_of("hello"));
  }
  const Bytes zip = w.finish();
  const ZipReader r = open_bytes(zip);
  int stored = 0;
  for (const auto& e : r.entries()) {
    if (e.method != Method::store) continue;
    ++stored;
    CAPTURE(e.name);
    CHECK(e.data_offset % 64 == 0);
  }
  CHECK(stored == 40);
}

TEST_CASE("zip: the same entries give the same bytes, in memory, on disk and in any time zone") {
  TempDir dir;
  const Bytes first = sample_bytes();
  CHECK(sample_bytes() == first);

  ZipWriter w = ZipWriter::to_file(dir.path / "x.zip");
  add_sample(w);
  w.finish();
  CHECK(slurp(dir.path / "x.zip") == first);

  const char* old_tz = std::getenv("TZ");
  const std::optional<std::string> saved = old_tz ? std::optional<std::string>(old_tz) : std::nullopt;
  for (const char* tz : {"UTC0", "IST-5:30", "AEST-10AEDT,M10.1.0,M4.1.0/3", "HST10"}) {
    CAPTURE(tz);
    ::setenv("TZ", tz, 1);
    ::tzset();
    CHECK(sample_bytes() == first);
  }
  if (saved) {
    ::setenv("TZ", saved->c_str(), 1);
  } else {
    ::unsetenv("TZ");
  }
  ::tzset();
  // DOS time 00:00, date 1980-01-01 in the first local header.
  CHECK(peek(first, 10, 2) == 0);
  CHECK(peek(first, 12, 2) == 0x21);
}

TEST_CASE("zip: a memory archive with an entry deflate cannot shrink is the file's bytes") {
  // libzip keeps random bytes asked to be deflated as they are; the memory store, written
  // into as libzip goes and patched where it seeks back, must end as the file does.
  Bytes noise(1 << 20);
  std::uint32_t x = 12345;
  for (std::byte& b : noise) {
    x = x * 1664525u + 1013904223u;
    b = std::byte(static_cast<unsigned char>(x >> 24));
  }
  const auto add = [&](ZipWriter& w) {
    w.add_stored("a", pattern(100, 1));
    w.add_deflated("noise", noise);
  };
  ZipWriter m = ZipWriter::to_memory();
  add(m);
  const Bytes memory = m.finish();
  TempDir dir;
  ZipWriter f = ZipWriter::to_file(dir.path / "n.zip");
  add(f);
  f.finish();
  CHECK(slurp(dir.path / "n.zip") == memory);
  const ZipReader r = open_bytes(memory);
  CHECK(r.read("noise") == noise);
  CHECK(r.read("a") == pattern(100, 1));
}

TEST_CASE("zip: an archive with no entries is written and read") {
  TempDir dir;
  const Bytes empty = ZipWriter::to_memory().finish();
  CHECK(empty.size() == 22);
  CHECK(open_bytes(empty).entries().empty());

  // libzip would delete an existing file instead of writing an empty archive.
  const fs::path file = dir.path / "old.zip";
  spit(file, sample_bytes());
  ZipWriter::to_file(file).finish();
  CHECK(slurp(file) == empty);
  CHECK(ZipReader::open(file).entries().empty());
  CHECK(dir.listing() == std::set<std::string>{"old.zip"});
}

TEST_CASE("zip: a failed save leaves the earlier archive and no temporary file") {
  TempDir dir;
  const fs::path file = dir.path / "model.zip";
  const Bytes old = sample_bytes();
  spit(file, old);
  const auto unchanged = [&] {
    CHECK(slurp(file) == old);
    CHECK(dir.listing() == std::set<std::string>{"model.zip"});
  };

  SUBCASE("the writer is destroyed without finish()") {
    {
      ZipWriter w = ZipWriter::to_file(file);
      w.add_stored("new", pattern(100, 9));
    }
    unchanged();
  }
  SUBCASE("an exception midway through adding") {
    try {
      ZipWriter w = ZipWriter::to_file(file);
      w.add_stored("new", pattern(100, 9));
      w.add_stored("new", pattern(100, 9));
      FAIL("duplicate accepted");
    } catch (const FormatError& e) {
      CHECK(std::string(e.what()).find("twice") != std::string::npos);
    }
    unchanged();
  }
  SUBCASE("a write error while libzip writes (file size limit)") {
    rlimit saved{};
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
    const auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
    rlimit small = saved;
    small.rlim_cur = 64 * 1024;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
    bool threw = false;
    try {
      ZipWriter w = ZipWriter::to_file(file);
      w.add_stored("big", pattern(1 << 20, 5));
      w.finish();
    } catch (const IoError&) {
      threw = true;
    }
    ::setrlimit(RLIMIT_FSIZE, &saved);
    ::signal(SIGXFSZ, old_handler);
    CHECK(threw);
    unchanged();
  }
  SUBCASE("the rename fails (the target is a non-empty directory)") {
    const fs::path blocked = dir.path / "blocked";
    fs::create_directory(blocked);
    spit(blocked / "inside", bytes_of("keep"));
    ZipWriter w = ZipWriter::to_file(blocked);
    w.add_stored("new", pattern(100, 9));
    CHECK_THROWS_AS(w.finish(), IoError);
    CHECK(slurp(blocked / "inside") == bytes_of("keep"));
    fs::remove_all(blocked);
    unchanged();
  }
  SUBCASE("the directory does not exist") {
    ZipWriter w = ZipWriter::to_file(dir.path / "nowhere" / "model.zip");
    w.add_stored("new", pattern(100, 9));
    CHECK_THROWS_AS(w.finish(), IoError);
    unchanged();
  }
}

TEST_CASE("zip: a save into a directory it may not write fails cleanly" *
          skip_unless(fxpack::testing::can_test_permissions(),
                      "running as root without the right to drop to an unprivileged user, and root ignores "
                      "directory permissions")) {
  // Root ignores directory permissions, so as root the save runs in a child that has dropped
  // to nobody; the directory is readable and searchable by all, writable by its owner only.
  TempDir dir;
  const fs::path file = dir.path / "model.zip";
  spit(file, sample_bytes());
  const Bytes before = slurp(file);
  const bool root = ::geteuid() == 0;
  fs::permissions(dir.path, root ? fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                       fs::perms::others_read | fs::perms::others_exec
                                 : fs::perms::owner_read | fs::perms::owner_exec);
  const std::string outcome = in_child([&] {
    if (!fxpack::testing::drop_root()) return 10;
    ZipWriter w = ZipWriter::to_file(file);
    w.add_stored("new", pattern(100, 9));
    try {
      w.finish();
    } catch (const IoError&) {
      return 0;
    }
    return 1;
  });
  fs::permissions(dir.path, fs::perms::owner_all);
  CHECK(outcome == "exit 0");
  CHECK(slurp(file) == before);
  CHECK(dir.listing() == std::set<std::string>{"model.zip"});
}

TEST_CASE("zip: a successful save replaces the archive and keeps its permissions") {
  TempDir dir;
  const fs::path file = dir.path / "model.zip";
  spit(file, bytes_of("not even a zip"));
  fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  ZipWriter w = ZipWriter::to_file(file);
  add_sample(w);
  w.finish();
  CHECK(slurp(file) == sample_bytes());
  CHECK(fs::status(file).permissions() ==
        (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read));
  CHECK(dir.listing() == std::set<std::string>{"model.zip"});
}

TEST_CASE("zip: the writer refuses bad names, duplicates and reuse") {
  ZipWriter w = ZipWriter::to_memory();
  const std::pair<std::string, const char*> cases[] = {
      {"", "empty name"},
      {"../evil", "'..' component"},
      {"a/../../b", "'..' component"},
      {"a/..", "'..' component"},
      {"/abs", "absolute path"},
      {"a\\b", "backslash"},
      {"C:/x", "drive letter"},
      {std::string("a\0b", 3), "NUL"},
      {"a\nb", "control character"},
      {"\xff", "UTF-8"},
      {"\xc0\xaf", "UTF-8"},
      {"\xed\xa0\x80", "UTF-8"},
      {std::string(70000, 'n'), "longer than 65535"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.second);
    CHECK_THROWS_WITH_AS(w.add_stored(c.first, {}), doctest::Contains(c.second), FormatError);
  }
  w.add_stored("ok/..x/x..", {});
  w.add_deflated("d", {});
  CHECK_THROWS_WITH_AS(w.add_stored("d", {}), doctest::Contains("twice"), FormatError);
  CHECK_THROWS_WITH_AS(w.add_deflated("ok/..x/x..", {}), doctest::Contains("twice"), FormatError);
  (void)w.finish();
  CHECK_THROWS_AS(w.add_stored("late", {}), fxpack::Error);
  CHECK_THROWS_AS(w.finish(), fxpack::Error);
}

TEST_CASE("zip: add_stored with an owner holds it instead of copying") {
  auto data = std::make_shared<Bytes>(pattern(1000, 7));
  ZipWriter w = ZipWriter::to_memory();
  w.add_stored("t", fxpack::zip::HeldBytes({std::span<const std::byte>(*data)}, data));
  CHECK(data.use_count() == 2);
  const Bytes zip = w.finish();
  CHECK(data.use_count() == 1);
  CHECK(open_bytes(zip).read("t") == *data);
}

TEST_CASE("zip: an entry in pieces is their concatenation, byte for byte as if joined") {
  // Pieces of every kind of length, empty ones among them (libzip 1.7 misplaces the pieces
  // after an empty fragment, so the writer must drop them), around a second entry whose
  // alignment depends on the first's size.
  auto data = std::make_shared<Bytes>(pattern(200000, 3));
  const std::span<const std::byte> all(*data);
  const std::vector<std::span<const std::byte>> pieces = {
      all.subspan(0, 0), all.subspan(0, 1), all.subspan(1, 0), all.subspan(1, 63), all.subspan(64, 65536),
      all.subspan(65600, 0), all.subspan(65600, 134399), all.subspan(199999, 1)};
  const auto archive = [&](bool joined) {
    ZipWriter w = ZipWriter::to_memory();
    if (joined) {
      w.add_stored("pkg/a", all);
      w.add_stored("pkg/b", pattern(100, 9));
      w.add_stored("pkg/c", {});
      w.add_stored("pkg/d", {});
    } else {
      w.add_stored("pkg/a", fxpack::zip::HeldBytes(pieces, data));
      w.add_stored("pkg/b", pattern(100, 9));
      w.add_stored("pkg/c", fxpack::zip::HeldBytes({all.subspan(0, 0)}, data));
      w.add_stored("pkg/d", fxpack::zip::HeldBytes({}, nullptr));
    }
    return w.finish();
  };
  const Bytes in_pieces = archive(false);
  CHECK(in_pieces == archive(true));
  const ZipReader r = open_bytes(in_pieces);
  CHECK(r.read("pkg/a") == *data);
  r.verify("pkg/a");
  CHECK(r.read("pkg/c").empty());
  CHECK(r.read("pkg/d").empty());
}

TEST_CASE("zip: views alias the mapping, are aligned and outlive the reader") {
  TempDir dir;
  const fs::path file = sample_file(dir, "m.zip");

  fxpack::zip::StoredView view;
  {
    const ZipReader r = ZipReader::open(file);
    view = r.view("pkg/.data/tensor_with_a_long_name_17");
    const auto archive = r.archive();
    CHECK(view.bytes.data() >= archive.data());
    CHECK(view.bytes.data() + view.bytes.size() <= archive.data() + archive.size());
    CHECK(reinterpret_cast<std::uintptr_t>(view.bytes.data()) % 64 == 0);
    CHECK(view.owner == r.owner());
    r.verify("pkg/.data/tensor_with_a_long_name_17");
    r.verify("pkg/model.pkl");
    CHECK_THROWS_WITH_AS(r.view("pkg/model.pkl"), doctest::Contains("compressed"), FormatError);
  }
  CHECK(Bytes(view.bytes.begin(), view.bytes.end()) == pattern(4097, 2));

  // A memory buffer is shared the same way.
  auto buffer = std::make_shared<const Bytes>(sample_bytes());
  const auto v = ZipReader::from_memory(buffer).view("a");
  CHECK(v.bytes.data() >= buffer->data());
  CHECK(v.bytes.data() < buffer->data() + buffer->size());
  CHECK(v.owner == buffer);
}

TEST_CASE("zip: corrupt data fails the CRC check in read() and verify()") {
  TempDir dir;
  Bytes zip = sample_bytes();
  const auto e = open_bytes(zip).at("pkg/.data/tensor_with_a_long_name_17");
  zip[e.data_offset + 1000] ^= std::byte{0x40};

  const ZipReader r = open_bytes(zip);
  CHECK_THROWS_WITH_AS(r.read(e.name), doctest::Contains("CRC"), FormatError);
  CHECK_THROWS_WITH_AS(r.verify(e.name), doctest::Contains("CRC"), FormatError);
  CHECK(r.view(e.name).bytes.size() == 4097);  // a view does not check by itself

  spit(dir.path / "bad.zip", zip);
  const ZipReader f = ZipReader::open(dir.path / "bad.zip");
  CHECK_THROWS_WITH_AS(f.verify(e.name), doctest::Contains("is corrupt: CRC"), FormatError);
  CHECK_THROWS_WITH_AS(f.read(e.name), doctest::Contains("bad.zip: entry 'pkg/.data/tensor"),
                       FormatError);
  CHECK_NOTHROW(f.read("a"));

  // A deflated entry: the stream breaks or the CRC does not match.
  Bytes zip2 = sample_bytes();
  const auto d = open_bytes(zip2).at("pkg/model.pkl");
  zip2[d.data_offset + d.compressed_size / 2] ^= std::byte{0x10};
  CHECK_THROWS_AS(open_bytes(zip2).read("pkg/model.pkl"), FormatError);
  CHECK_THROWS_AS(open_bytes(zip2).verify("pkg/model.pkl"), FormatError);
}

TEST_CASE("zip: deflate streams that lie about their size are refused on read") {
  const Bytes text = bytes_of(std::string(5000, 'y'));
  const Bytes packed = raw_deflate(text);
  const auto read_error = [](const Bytes& zip) -> std::string {
    try {
      (void)open_bytes(zip).read("t");
    } catch (const FormatError& e) {
      return e.what();
    }
    return "(accepted)";
  };
  CHECK(read_error(craft({{.name = "t", .data = packed, .method = 8, .crc = crc_of(text),
                           .uncompressed = 5000}})) == "(accepted)");
  CHECK(read_error(craft({{.name = "t", .data = packed, .method = 8, .crc = crc_of(text),
                           .uncompressed = 4999}}))
            .find("more than its recorded 4999") != std::string::npos);
  CHECK(read_error(craft({{.name = "t", .data = packed, .method = 8, .crc = crc_of(text),
                           .uncompressed = 5001}}))
            .find("inflates to 5000 bytes, not the recorded 5001") != std::string::npos);
  const Bytes cut(packed.begin(), packed.begin() + static_cast<std::ptrdiff_t>(packed.size() / 2));
  CHECK(read_error(craft({{.name = "t", .data = cut, .method = 8, .crc = crc_of(text),
                           .uncompressed = 5000}}))
            .find("truncated") != std::string::npos);
  CHECK(read_error(craft({{.name = "t", .data = Bytes(40, std::byte{0xff}), .method = 8,
                           .uncompressed = 100}}))
            .find("corrupt deflate data") != std::string::npos);
  Bytes trailing = packed;
  trailing.push_back(std::byte{0});
  CHECK(read_error(craft({{.name = "t", .data = trailing, .method = 8, .crc = crc_of(text),
                           .uncompressed = 5000}}))
            .find("1 bytes after the end of its deflate stream") != std::string::npos);
}

TEST_CASE("zip: Zip64 sizes and offsets are read from the extra field") {
  const Bytes text = bytes_of(std::string(3000, 'z'));
  const Bytes zip = craft({{.name = "s", .data = pattern(100, 1), .zip64 = true},
                           {.name = "d", .data = raw_deflate(text), .method = 8,
                            .crc = crc_of(text), .uncompressed = 3000, .zip64 = true}});
  const ZipReader r = open_bytes(zip);
  REQUIRE(r.entries().size() == 2);
  CHECK(r.at("s").compressed_size == 100);
  CHECK(r.at("s").data_offset == 30 + 1 + 20);
  CHECK(r.read("s") == pattern(100, 1));
  CHECK(r.read("d") == text);
}

TEST_CASE("zip: hostile archives are refused with a message that says what is wrong") {
  const Bytes good = sample_bytes();
  const std::uint64_t cd = cd_offset_of(good);
  const auto patched = [&](std::size_t at, std::uint64_t v, int n) {
    Bytes b = good;
    poke(b, at, v, n);
    return b;
  };
  const auto cut = [&](std::size_t n) { return Bytes(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n)); };
  const auto one = [](Raw r) { return craft({std::move(r)}); };
  const Bytes bomb_data = raw_deflate(Bytes(4 << 20));
  ReaderLimits few;
  few.max_entries = 2;
  ReaderLimits small;
  small.max_entry_size = 100;
  ReaderLimits little_total;
  little_total.max_total_size = 150;

  // A's sizes grown to cover B's local header, consistently in both headers.
  Bytes overlap = craft({{.name = "A", .data = pattern(10, 1)}, {.name = "B", .data = pattern(10, 2)}});
  poke(overlap, 18, 20, 4);
  poke(overlap, 22, 20, 4);
  poke(overlap, cd_offset_of(overlap) + 20, 20, 4);
  poke(overlap, cd_offset_of(overlap) + 24, 20, 4);
  Bytes into_cd = craft({{.name = "A", .data = pattern(10, 1)}});
  poke(into_cd, 18, 12, 4);
  poke(into_cd, 22, 12, 4);
  poke(into_cd, cd_offset_of(into_cd) + 20, 12, 4);
  poke(into_cd, cd_offset_of(into_cd) + 24, 12, 4);
  Bytes past_end = craft({{.name = "A", .data = pattern(10, 1)}});
  poke(past_end, 18, 1000000, 4);
  poke(past_end, 22, 1000000, 4);
  poke(past_end, cd_offset_of(past_end) + 20, 1000000, 4);
  poke(past_end, cd_offset_of(past_end) + 24, 1000000, 4);
  Bytes with_comment = good;
  poke(with_comment, with_comment.size() - 2, 5, 2);
  for (char c : std::string("hello")) with_comment.push_back(std::byte(c));

  struct Case {
    const char* what;
    Bytes bytes;
    ReaderLimits limits;
    const char* fragment;
  };
  const Case cases[] = {
      {"empty input", {}, {}, "truncated or not a zip file: no end-of-central-directory record"},
      {"cut to 10 bytes", cut(10), {}, "truncated"},
      {"cut in half", cut(good.size() / 2), {}, "truncated"},
      {"cut inside the central directory", cut(cd + 10), {}, "truncated"},
      {"cut by one byte", cut(good.size() - 1), {}, "truncated"},
      {"cut by 22 bytes", cut(good.size() - 22), {}, "truncated"},
      {"not a zip", bytes_of(std::string(100, 'q')), {}, "no end-of-central-directory record"},
      {"parent component", one({.name = "../evil", .data = pattern(3, 0)}), {}, "entry '../evil' has a '..' component"},
      {"inner parent", one({.name = "a/../../b", .data = {}}), {}, "'..' component"},
      {"absolute", one({.name = "/abs", .data = {}}), {}, "entry '/abs' has an absolute path"},
      {"backslash", one({.name = "a\\b", .data = {}}), {}, "backslash"},
      {"drive letter", one({.name = "c:evil", .data = {}}), {}, "drive letter"},
      {"control char", one({.name = "a\x1b[2Jb", .data = {}}), {}, "entry 'a\\x1b[2Jb' has a control character"},
      {"NUL", one({.name = std::string("a\0b", 3), .data = {}}), {}, "NUL"},
      {"empty name", one({.name = "", .data = {}}), {}, "empty name"},
      {"bad UTF-8", one({.name = "\xfe", .data = {}}), {}, "not valid UTF-8"},
      {"duplicate", craft({{.name = "x", .data = pattern(3, 0)}, {.name = "x", .data = pattern(3, 0)}}), {},
       "entry 'x' appears twice"},
      {"encrypted", one({.name = "x", .data = pattern(3, 0), .flags = 1}), {}, "entry 'x' is encrypted"},
      {"bzip2", one({.name = "x", .data = pattern(3, 0), .method = 12}), {}, "compression method 12"},
      {"stored size mismatch", one({.name = "x", .data = pattern(3, 0), .uncompressed = 4}), {},
       "is stored but its compressed size 3 differs"},
      {"bad local signature", patched(0, 0x04034b51, 4), {}, "has no local header at offset 0"},
      {"local name length", patched(26, 12, 2), {}, "disagrees with the central directory: name length 12 vs 11"},
      {"local method", patched(8, 8, 2), {}, "compression method 8 vs 0"},
      {"local size", patched(18, 2, 4), {}, "compressed size 2 vs 1"},
      {"local CRC", patched(14, 0, 4), {}, "disagrees with the central directory: CRC"},
      {"local name", patched(30, 'P', 1), {}, "different name in its local header"},
      {"header offset out of range", patched(cd + 42, 0x7fffffff, 4), {}, "past the end of the archive"},
      {"data past the end", past_end, {}, "data runs past the end of the archive (offset 31, size 1000000"},
      {"data into the central directory", into_cd, {}, "overlaps the central directory"},
      {"overlapping entries", overlap, {}, "entry 'A' overlaps entry 'B'"},
      {"bad central signature", patched(cd, 0x02014b51, 4), {}, "central directory entry #0"},
      {"central directory past the end", patched(good.size() - 22 + 16, cd + 100, 4), {}, "truncated or corrupt"},
      {"entry counts disagree", patched(good.size() - 22 + 10, 30000, 2), {}, "multi-disk"},
      {"entry count too big for the directory",
       [&] { Bytes b = patched(good.size() - 22 + 10, 30000, 2); poke(b, b.size() - 22 + 8, 30000, 2); return b; }(),
       {}, "cannot hold 30000 entries"},
      {"multi-disk", patched(good.size() - 22 + 4, 1, 2), {}, "multi-disk"},
      {"zip bomb", one({.name = "bomb", .data = bomb_data, .method = 8, .uncompressed = 4 << 20}), {},
       "entry 'bomb' claims 4194304 bytes from"},
      {"too many entries", good, few, "archive has 7 entries, more than the limit of 2"},
      {"entry bigger than the limit", good, small, "entry 'pkg/.data/tensor_with_a_long_name_17' is 4097 bytes"},
      {"total bigger than the limit", craft({{.name = "p", .data = pattern(100, 0)}, {.name = "q", .data = pattern(100, 0)}}),
       little_total, "entry 'q' brings the archive's uncompressed total past the limit of 150"},
      {"Zip64 field missing", patched(cd + 20, 0xffffffff, 4), {}, "no Zip64 extra field"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    const std::string message = refusal(c.bytes, c.limits);
    CAPTURE(message);
    CHECK(message.find(c.fragment) != std::string::npos);
  }
  CHECK(refusal(with_comment) == "(accepted)");
  CHECK(refusal(good) == "(accepted)");
}

TEST_CASE("zip: files that are not archives are refused with the path in the message") {
  TempDir dir;
  spit(dir.path / "empty.zip", {});
  CHECK_THROWS_WITH_AS(ZipReader::open(dir.path / "empty.zip"),
                       doctest::Contains("empty.zip: archive is truncated or not a zip file"), FormatError);
  const Bytes good = sample_bytes();
  spit(dir.path / "cut.zip", Bytes(good.begin(), good.begin() + 100));
  CHECK_THROWS_WITH_AS(ZipReader::open(dir.path / "cut.zip"),
                       doctest::Contains("cut.zip: archive is truncated"), FormatError);
  CHECK_THROWS_AS(ZipReader::open(dir.path / "absent.zip"), IoError);
  CHECK_THROWS_AS(ZipReader::open(dir.path), IoError);
}

TEST_CASE("zip: unzip -t accepts the writer's output" *
          skip_unless(fxpack::testing::have_program("unzip"), "the unzip program is not installed")) {
  TempDir dir;
  const fs::path file = sample_file(dir, "t.zip");
  const std::string command = "unzip -tq '" + file.string() + "' >/dev/null 2>&1";
  CHECK(std::system(command.c_str()) == 0);
}

TEST_CASE("zip: a DEFLATE entry's memory grows with what it inflates to, not with what it claims") {
  // Claims 1 GiB (with 6 MiB of compressed data, inside the 200:1 ratio limit) but its stream
  // ends after 1 MiB, followed by junk. Before, read() allocated and zero-filled the claimed
  // size first: a 1 GiB peak before "corrupt". Measured in a child, whose peak can be reset.
  Bytes data = raw_deflate(Bytes(1 << 20));
  const Bytes junk = pattern(6 << 20, 9);
  data.insert(data.end(), junk.begin(), junk.end());
  const auto zip = std::make_shared<const Bytes>(
      craft({{.name = "liar", .data = data, .method = 8, .crc = 0, .uncompressed = std::uint64_t{1} << 30}}));
  const std::string outcome = in_child([&] {
    if (!fxpack::testing::reset_peak_rss()) return 10;
    const long base = fxpack::testing::rss_kib();
    std::string message;
    try {
      (void)ZipReader::from_memory(zip).read("liar");
    } catch (const FormatError& e) {
      message = e.what();
    }
    const long growth_mib = (fxpack::testing::peak_rss_kib() - base) / 1024;
    std::fprintf(stderr, "peak growth %ld MiB: %s\n", growth_mib, message.c_str());
    if (message.find("inflates to 1048576 bytes, not the recorded 1073741824") == std::string::npos) return 11;
    return growth_mib < 64 ? 0 : 12;
  });
  CHECK(outcome == "exit 0");

  // verify() inflates through a fixed buffer: the peak stays small even for a true claim.
  const Bytes zeros(std::size_t{64} << 20);
  const auto big = std::make_shared<const Bytes>(
      craft({{.name = "z", .data = raw_deflate(zeros), .method = 8, .crc = crc_of(zeros), .uncompressed = zeros.size()}}));
  ReaderLimits lax;
  lax.max_deflate_ratio = 1u << 20;
  CHECK(in_child([&] {
          const ZipReader r = ZipReader::from_memory(big, lax);
          if (!fxpack::testing::reset_peak_rss()) return 10;
          const long base = fxpack::testing::rss_kib();
          r.verify("z");
          return (fxpack::testing::peak_rss_kib() - base) / 1024 < 16 ? 0 : 12;
        }) == "exit 0");
}

TEST_CASE("zip: verify and read never touch the mapping, so a truncated file is an error, not SIGBUS") {
  TempDir dir;
  const fs::path file = dir.path / "t.zip";
  for (const Access access : {Access::map, Access::read}) {
    CAPTURE(access == Access::map ? "map" : "read");
    ZipWriter w = ZipWriter::to_file(file);
    w.add_stored("big", pattern(8 << 20, 3));
    w.add_deflated("text", bytes_of(std::string(100000, 'q')));
    w.finish();
    // Another process truncates the file after it was opened (here: this one, in a child).
    const std::string outcome = in_child([&] {
      const ZipReader r = ZipReader::open(file, {}, access);
      fs::resize_file(file, 4 << 20);
      int refused = 0;
      for (const char* name : {"big", "text"}) {
        try {
          r.verify(name);
        } catch (const FormatError& e) {
          refused += std::string(e.what()).find("truncated") != std::string::npos ? 1 : 0;
        }
        try {
          (void)r.read(name);
        } catch (const FormatError& e) {
          refused += std::string(e.what()).find("truncated") != std::string::npos ? 1 : 0;
        }
      }
      if (access == Access::read) {
        try {
          (void)r.view("big");
        } catch (const FormatError& e) {
          refused += std::string(e.what()).find("truncated") != std::string::npos ? 1 : 0;
        }
      }
      return refused == (access == Access::read ? 5 : 4) ? 0 : 1;
    });
    CHECK(outcome == "exit 0");
  }
}

TEST_CASE("zip: a mapped entry's verifier reads the mapping; a truncated file is an error, not SIGBUS") {
  TempDir dir;
  const fs::path file = dir.path / "v.zip";
  ZipWriter w = ZipWriter::to_file(file);
  w.add_stored("small", pattern(5000, 1));
  w.add_stored("big", pattern(8 << 20, 3));
  w.finish();
  const std::string outcome = in_child([&] {
    const ZipReader r = ZipReader::open(file);
    const auto check_small = r.verifier("small");
    const auto check_big = r.verifier("big");
    // Another process truncates the file after it was mapped (here: this one, in a child).
    fs::resize_file(file, 4 << 20);
    check_small();  // still wholly in the file
    try {
      check_big();
    } catch (const FormatError& e) {
      const std::string what = e.what();
      return what.find("entry 'big' is truncated") != std::string::npos &&
                     what.find("when opened") != std::string::npos
                 ? 0
                 : 1;
    }
    return 2;
  });
  CHECK(outcome == "exit 0");

  // A file rewritten in place after it was opened: the mapping shows the new bytes, and so
  // the CRC taken through it refuses them.
  ZipWriter again = ZipWriter::to_file(file);
  again.add_stored("big", pattern(8 << 20, 3));
  again.finish();
  const ZipReader r = ZipReader::open(file);
  const auto check = r.verifier("big");
  {
    std::fstream f(file, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(r.at("big").data_offset + 12345));
    f.put('\x7f');
  }
  CHECK_THROWS_WITH_AS(check(), doctest::Contains("entry 'big' is corrupt: CRC"), FormatError);
}

TEST_CASE("zip: a mapped view's pages are released and read back the same; copies and buffers have no release") {
  TempDir dir;
  const fs::path file = dir.path / "p.zip";
  ZipWriter w = ZipWriter::to_file(file);
  w.add_stored("big", pattern(16 << 20, 5));
  w.finish();
  const std::string outcome = in_child([&] {
    const ZipReader r = ZipReader::open(file);
    const auto v = r.view("big");
    if (v.release == nullptr) return 1;
    if (Bytes(v.bytes.begin(), v.bytes.end()) != pattern(16 << 20, 5)) return 2;  // faults them in
    if (resident_bytes(v.bytes) < (16 << 20)) return 3;
    v.release(v.bytes);
    // Every page, the first and last too (which the entry may share with its neighbours).
    if (resident_bytes(v.bytes) > 0) return 5;
    if (Bytes(v.bytes.begin(), v.bytes.end()) != pattern(16 << 20, 5)) return 4;  // from the file again
    return resident_bytes(v.bytes) >= (16 << 20) ? 0 : 6;
  });
  CHECK(outcome == "exit 0");
  // A memory archive's buffer and an Access::read copy exist nowhere else: never released.
  CHECK((ZipReader::from_memory(std::make_shared<const Bytes>(sample_bytes())).view("a").release == nullptr));
  CHECK((ZipReader::open(file, {}, Access::read).view("big").release == nullptr));
}

TEST_CASE("zip: with Access::read nothing is mapped and views are aligned, checked copies") {
  TempDir dir;
  const fs::path file = sample_file(dir, "r.zip");
  const ZipReader r = ZipReader::open(file, {}, Access::read);
  CHECK(r.archive().empty());
  CHECK_FALSE(r.aliases());
  const auto v = r.view("pkg/.data/tensor_with_a_long_name_17");
  CHECK(reinterpret_cast<std::uintptr_t>(v.bytes.data()) % 64 == 0);
  CHECK(Bytes(v.bytes.begin(), v.bytes.end()) == pattern(4097, 2));
  CHECK(r.read("pkg/model.pkl") == bytes_of(std::string(3000, 'x') + "end"));

  Bytes bad = slurp(file);
  bad[r.at("pkg/.data/tensor_with_a_long_name_17").data_offset + 7] ^= std::byte{1};
  spit(dir.path / "bad.zip", bad);
  const ZipReader b = ZipReader::open(dir.path / "bad.zip", {}, Access::read);
  CHECK_THROWS_WITH_AS(b.view("pkg/.data/tensor_with_a_long_name_17"), doctest::Contains("CRC"), FormatError);
}

TEST_CASE("zip: read_view is read() without the copy where the archive is mapped or in memory") {
  TempDir dir;
  const fs::path file = sample_file(dir, "rv.zip");
  auto buffer = std::make_shared<const Bytes>(slurp(file));
  std::vector<fxpack::zip::StoredView> kept;  // used after their readers are gone
  for (const int how : {0, 1, 2}) {  // mapped file, memory buffer, Access::read
    CAPTURE(how);
    const ZipReader r = how == 0   ? ZipReader::open(file)
                        : how == 1 ? ZipReader::from_memory(buffer)
                                   : ZipReader::open(file, {}, Access::read);
    for (const auto& e : r.entries()) {
      CAPTURE(e.name);
      const auto v = r.read_view(e);
      CHECK(Bytes(v.bytes.begin(), v.bytes.end()) == r.read(e.name));
      const bool in_place = how != 2 && e.method == Method::store;
      const auto archive = r.archive();
      CHECK((!v.bytes.empty() && v.bytes.data() >= archive.data() &&
             v.bytes.data() < archive.data() + archive.size()) == (in_place && !v.bytes.empty()));
      CHECK((v.owner == r.owner()) == in_place);
      CHECK((v.release == nullptr));  // nothing to release: read now, then let go
    }
    kept.push_back(r.read_view(r.at("pkg/.data/tensor_with_a_long_name_17")));
    kept.push_back(r.read_view(r.at("pkg/model.pkl")));
  }
  for (std::size_t k = 0; k < kept.size(); k += 2) {
    CHECK(Bytes(kept[k].bytes.begin(), kept[k].bytes.end()) == pattern(4097, 2));
    CHECK(Bytes(kept[k + 1].bytes.begin(), kept[k + 1].bytes.end()) == bytes_of(std::string(3000, 'x') + "end"));
  }

  // Checked in place: a corrupt stored entry is refused, in memory and through the mapping.
  Bytes bad = *buffer;
  const auto e = open_bytes(bad).at("pkg/.data/tensor_with_a_long_name_17");
  bad[e.data_offset + 99] ^= std::byte{2};
  const ZipReader in_memory = open_bytes(bad);
  CHECK_THROWS_WITH_AS(in_memory.read_view(in_memory.at(e.name)), doctest::Contains("is corrupt: CRC"), FormatError);
  spit(dir.path / "bad.zip", bad);
  const ZipReader mapped = ZipReader::open(dir.path / "bad.zip");
  CHECK_THROWS_WITH_AS(mapped.read_view(mapped.at(e.name)), doctest::Contains("bad.zip: entry 'pkg/.data/tensor"),
                       FormatError);

  // A mapped file truncated since it was opened: an error before the mapping is read, not SIGBUS.
  const fs::path big = dir.path / "big.zip";
  ZipWriter wb = ZipWriter::to_file(big);
  wb.add_stored("big", pattern(8 << 20, 3));
  wb.finish();
  const std::string outcome = in_child([&] {
    const ZipReader r = ZipReader::open(big);
    fs::resize_file(big, 4 << 20);
    try {
      (void)r.read_view(r.at("big"));
    } catch (const FormatError& ex) {
      return std::string(ex.what()).find("entry 'big' is truncated") != std::string::npos ? 0 : 1;
    }
    return 2;
  });
  CHECK(outcome == "exit 0");
}

TEST_CASE("zip: peek returns the first bytes of stored and deflated entries without reading all") {
  const ZipReader r = open_bytes(sample_bytes());
  const auto text = [](const Bytes& b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); };
  CHECK(text(r.peek("pkg/model.pkl", 5)) == "xxxxx");
  const auto first = [](const Bytes& b, std::size_t n) { return Bytes(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n)); };
  CHECK(r.peek("pkg/.data/tensor_with_a_long_name_17", 3) == first(pattern(4097, 2), 3));
  CHECK(r.peek("pkg/.data/0", 100).size() == 1);
  CHECK(r.peek("pkg/.data/empty", 10).empty());
  // A CRC error further in is not seen by peek (it does not read that far), but is by read.
  Bytes zip = sample_bytes();
  zip[open_bytes(zip).at("a").data_offset + 60] ^= std::byte{2};
  CHECK(open_bytes(zip).peek("a", 4) == first(pattern(65, 4), 4));
  CHECK_THROWS_AS(open_bytes(zip).read("a"), FormatError);
}
