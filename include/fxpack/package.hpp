// Packages: zip archives of pickled modules and resources, modelled on torch.package.
//
// == Layout ==
//
//   <root>/.data/version                 "fxpack.package 1\n"
//   <root>/.data/manifest                what each pickle needs (manifest.hpp)
//   <root>/.data/storages/<N>            tensor bytes, one record per Storage, N = 0, 1, ...
//   <root>/<package path>/<resource>     what save_pickle / save_text / save_binary wrote
//
// <root> is the archive file's stem ("model" for model.fxpkg), "archive" in memory; readers
// accept any single root folder. The package path "a.b" becomes folders "a/b".
//
// Every record is stored uncompressed, and each record's data starts at a multiple of 64
// bytes in the file, so the importer can memory-map the archive and let tensors alias their
// storage records without a copy. A Storage shared by two tensors, or by two modules of one
// package, is written once and is shared again after loading.
//
// The pickles are fxpack pickles (pickle.hpp) in portable-binary form whose storage table
// names storage records instead of holding bytes. The manifest lists what each pickle needs
// from the OpRegistry; PackageImporter checks it when the archive is opened and raises one
// FormatError listing every missing item, before anything is built.
//
// The same PackageImporter reads PyTorch's torch.package archives of fx GraphModules
// (recognised by their .data/extern_modules record), from PyTorch 1.13 or 2.x, without running
// any of their code, and PackageExporter writes them (PackageFormat::TorchPackage for 1.13,
// TorchPackage2 for 2.x).
//
// == Memory mapping (LoadMode) ==
//
// LoadMode::Map (the default) maps the archive file read-only; tensors whose storage record
// is a 64-byte aligned STORE record alias the mapping, so loading a large model costs no
// copy and pages are read only when used. The mapping lives as long as any such tensor. The
// operating system's rule for mapped files applies: if another process truncates or rewrites
// the file in place while it is mapped, touching a lost page raises SIGBUS, which kills the
// process (no library can turn it into an error). Replacing the file by rename — as
// PackageExporter and every fxpack tool do — is safe: the mapping keeps the old file.
// The importer reads headers, copies and verify_record() with pread, never through the
// mapping, so opening and checking a truncated file is a FormatError ("truncated"), not a
// crash; only tensor data, and a pickle record while load_pickle decodes it, are aliased.
// Each is read through the mapping only after fstat says the file still holds the whole
// record — a file truncated since opening or loading is a FormatError there too — and
// checked by CRC there: the CRC check before a storage record's first use (below), which
// that use reads next anyway, and a pickle record's when load_pickle starts, which it then
// decodes in place (no copy of it is made or kept). A truncation after that fstat, while
// the bytes are read, is the rule above.
//
// An inference plan that has packed a mapped weight gives its pages back to the system
// (Storage::release_pages, MADV_DONTNEED on the private read-only mapping), so the weight is
// not resident twice; the parameter still reads the same bytes, faulted in from the file
// again as the kernel may do for any mapped page. A memory archive's buffer is never released.
//
// An aliased record's CRC is checked when its tensor's bytes are first used — the first
// call, or the first data() of a parameter — not when the pickle is loaded (Storage::borrow's
// check): loading costs no pass over the weights, and no byte of a record is handed to
// anyone before its CRC has passed. A corrupt record makes that use, and every later one,
// throw the FormatError load_pickle used to throw ("entry '<record>' is corrupt: CRC ...").
//
// LoadMode::Copy reads the file and maps nothing: every tensor owns its bytes. Use it when
// the file may change under the process, or to release the file right after loading.
//
// A storage record that is not 64-byte aligned in the file (an archive re-zipped by another
// tool) is never aliased: its bytes are copied into aligned memory and a warning says so.
//
// == Guarantees ==
//
// Saving the same modules and resources twice gives identical bytes (fixed timestamps,
// records sorted by name). A package written to a path appears atomically (AtomicFile): a
// save that fails, is abandoned or is killed leaves any earlier archive at the path untouched
// and no temporary file.
// Importing never runs code from the archive; names with "..", absolute paths, backslashes
// or duplicates are refused; CRCs are checked on every read (of an aliased storage record:
// before its first use); sizes and counts are bounded
// (ImporterOptions); a truncated archive says that it is truncated; untrusted names are
// quoted in every message (quote.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fxpack/graph_module.hpp"
#include "fxpack/manifest.hpp"
#include "fxpack/pickle.hpp"

namespace fxpack {

enum class PackageFormat : std::uint8_t {
  Fxpack,        // the layout above
  // torch 1.13's torch.package layout (pickle protocol 3, fx-generated/_0.py, .data/N.storage,
  // extern_modules), which PyTorch's PackageImporter loads into a GraphModule. One pickle
  // per archive; leaf modules must be torch.nn classes.
  TorchPackage,
  // The same for PyTorch 2.x (checked against 2.6): its module state, its generated code
  // (dialect.hpp) and the byteorder and .data/serialization_id records it expects.
  TorchPackage2,
};

class PackageExporter {
 public:
  // Writes to `path` when closed (atomically: nothing appears before close()).
  explicit PackageExporter(std::filesystem::path path, PackageFormat format = PackageFormat::Fxpack);
  // Writes to memory; close() returns the bytes.
  explicit PackageExporter(PackageFormat format = PackageFormat::Fxpack);
  // Closes if still open; errors are swallowed here (call close() to see them), and a
  // package that was not closed successfully is not written.
  ~PackageExporter();
  PackageExporter(const PackageExporter&) = delete;
  PackageExporter& operator=(const PackageExporter&) = delete;

  // `package` is a dotted path ("model", "my.models"); `resource` a file name in it.
  void save_pickle(std::string_view package, std::string_view resource, const GraphModule& module);
  void save_text(std::string_view package, std::string_view resource, std::string_view text);
  void save_binary(std::string_view package, std::string_view resource,
                   std::span<const std::byte> bytes);

  // Writes the archive. For a memory exporter returns its bytes, else an empty vector.
  std::vector<std::byte> close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

enum class LoadMode : std::uint8_t {
  Map,   // map the file; aligned storage records become zero-copy tensors (see above)
  Copy,  // read the file, map nothing; every tensor owns its bytes
};

struct ImporterOptions {
  LoadMode mode = LoadMode::Map;
  // Check each aliased storage record's CRC (through the mapping, once the file is seen to
  // still hold it) before its bytes are first used. Off: never read the records (Map mode
  // only; copies are always checked, when they are made).
  bool verify_storage_crc = true;
  // Check the manifest against this build when opening, and refuse a package that needs
  // what the build lacks (listing all of it). Off: open anyway — to inspect, print or
  // convert it; its pickles still load as data (a missing kernel fails when the plan is
  // built).
  bool check_requirements = true;
  pickle::LoadLimits limits{};
  // Bounds on the zip archive itself, checked when it is opened: records, bytes of one
  // record and of all of them (uncompressed), and the compression ratio of a compressed
  // record larger than ratio_exempt_size.
  std::uint64_t max_records = 1u << 20;
  std::uint64_t max_record_size = std::uint64_t{64} << 30;
  std::uint64_t max_total_size = std::uint64_t{256} << 30;
  std::uint64_t max_deflate_ratio = 200;
  std::uint64_t ratio_exempt_size = std::uint64_t{1} << 20;
  // Receives every warning (a misaligned storage record copied, a source hash mismatch,
  // unregistered module kinds). Null: printed to stderr.
  std::function<void(const std::string&)> on_warning{};
};

// One record of an archive, as its zip directory describes it.
struct RecordInfo {
  std::string name;                  // below the root: "model/model.pkl", ".data/version"
  std::uint64_t size = 0;            // uncompressed bytes
  std::uint64_t compressed_size = 0;
  bool stored = true;                // STORE; false: DEFLATE
  std::uint32_t crc32 = 0;
  std::uint64_t data_offset = 0;     // of its (compressed) bytes in the archive file
};

// A pickle loaded with what happened on the way.
struct LoadedPickle {
  std::shared_ptr<GraphModule> module;       // a dirty LazyGraphModule
  std::optional<pickle::LoadReport> report;  // fxpack pickles: pickle::loads_with_report's
  std::vector<std::string> warnings;         // every warning of this load, also given to on_warning
};

// Reads fxpack packages and torch.package archives of fx GraphModules. Safe to use from
// several threads at once: loads share the storages they both use.
class PackageImporter {
 public:
  explicit PackageImporter(const std::filesystem::path& path, ImporterOptions options = {});
  explicit PackageImporter(std::vector<std::byte> bytes, ImporterOptions options = {});
  ~PackageImporter();
  PackageImporter(PackageImporter&&) noexcept;
  PackageImporter& operator=(PackageImporter&&) noexcept;

  // A LazyGraphModule, dirty. Storages shared within the package are shared again.
  std::shared_ptr<GraphModule> load_pickle(std::string_view package, std::string_view resource);
  LoadedPickle load_pickle_with_report(std::string_view package, std::string_view resource);
  std::string load_text(std::string_view package, std::string_view resource) const;
  std::vector<std::byte> load_binary(std::string_view package, std::string_view resource) const;
  bool has_record(std::string_view package, std::string_view resource) const;

  // What the archive is: Fxpack, or the torch.package of the PyTorch that wrote it
  // (TorchPackage2 when it has the byteorder or .data/serialization_id records of 2.x).
  PackageFormat format() const;
  // "fxpack package v1", "torch.package (.data/version 6)".
  std::string format_description() const;
  // fxpack packages: the manifest as written; torch.package archives have none (null). A
  // missing or malformed manifest is a FormatError here (an importer opened with
  // check_requirements refuses such a package already when opening).
  const Manifest* manifest() const;
  // The records that hold pickled modules, sorted (recognised by content: the fxpack pickle
  // header, or a Python pickle in a torch.package).
  std::vector<std::string> pickles() const;

  // Record names below the root ("model/model.pkl", ".data/version"), sorted.
  std::vector<std::string> records() const;
  const std::string& root() const;
  // The tree of records, drawn as torch.package's file_structure() does.
  std::string file_structure() const;
  // Any record by its name below the root; FormatError if there is none.
  RecordInfo record_info(std::string_view record) const;
  bool has_record(std::string_view record) const;
  // Its uncompressed bytes, CRC checked.
  std::vector<std::byte> read_record(std::string_view record) const;
  // Checks its sizes and CRC by reading it (never through the mapping); FormatError if bad.
  void verify_record(std::string_view record) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The record name of a resource: "my.models" + "model.pkl" → "my/models/model.pkl".
// Throws Error for a package that is not a dotted name or a resource that is not a plain
// file name (which also keeps resources out of .data/).
std::string record_name(std::string_view package, std::string_view resource);
// The inverse: "my/models/model.pkl" → {"my.models", "model.pkl"}; a record right under the
// root gives an empty package.
std::pair<std::string, std::string> split_record_name(std::string_view record);
// Record names below `root` drawn as torch.package's file_structure() draws them.
std::string format_file_structure(std::string_view root, const std::vector<std::string>& records);

}  // namespace fxpack
