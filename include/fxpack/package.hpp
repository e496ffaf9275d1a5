// Packages: zip archives of pickled modules and resources, modelled on torch.package.
//
// == Layout ==
//
//   <root>/.data/version                 "fxpack.package 1\n"
//   <root>/.data/manifest                what each pickle needs (see below)
//   <root>/.data/storages/<N>            tensor bytes, one record per Storage, N = 0, 1, ...
//   <root>/<package path>/<resource>     what save_pickle / save_text / save_binary wrote
//
// <root> is the archive file's stem ("model" for model.fxpkg), "archive" in memory; readers
// accept any single root folder. The package path "a.b" becomes folders "a/b".
//
// Every record is stored uncompressed, and each record's data starts at a multiple of 64
// bytes in the file, so the importer memory-maps the archive and tensors alias their storage
// records without a copy (their lifetime holds the mapping). A Storage shared by two tensors,
// or by two modules of one package, is written once and is shared again after loading.
//
// The pickles are fxpack pickles (pickle.hpp) in portable-binary form whose storage table
// names storage records instead of holding bytes.
//
// == Manifest ==
//
// A text record, one item per line, sorted within each pickle:
//
//   fxpack.manifest 1
//   pickle <package path>/<resource> <pickle format version>
//   function <target>        a call_function target the graph uses
//   method <name>            a call_method name
//   module <kind>            a call_module kind (leaf module class)
//
// PackageImporter checks every item against the OpRegistry when the archive is opened and
// raises one FormatError listing every missing item, before anything is built.
//
// == Guarantees ==
//
// Saving the same modules and resources twice gives identical bytes (fixed timestamps,
// records sorted by name). A package written to a path appears atomically: a save that fails
// or is abandoned leaves any earlier archive at the path untouched and no temporary file.
// Importing never runs code from the archive; names with "..", absolute paths, backslashes
// or duplicates are refused; CRCs are checked on every read; sizes and counts are bounded
// (ImporterOptions); a truncated archive says that it is truncated.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "fxpack/graph_module.hpp"
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

struct ImporterOptions {
  // Tensors alias the memory-mapped storage records (true) or get their own copy (false).
  bool mmap_tensors = true;
  // Check each storage record's CRC when a pickle using it is loaded. (Reading a record's
  // bytes touches its pages; turn off to load without touching them.)
  bool verify_storage_crc = true;
  pickle::LoadLimits limits{};
  std::uint64_t max_records = 1u << 20;
};

// Reads fxpack packages and torch.package archives of fx GraphModules (recognised by their
// .data/extern_modules record; loaded without running any of their code).
class PackageImporter {
 public:
  explicit PackageImporter(const std::filesystem::path& path, ImporterOptions options = {});
  explicit PackageImporter(std::vector<std::byte> bytes, ImporterOptions options = {});
  ~PackageImporter();
  PackageImporter(PackageImporter&&) noexcept;
  PackageImporter& operator=(PackageImporter&&) noexcept;

  // A LazyGraphModule, dirty. Storages shared within the package are shared again.
  std::shared_ptr<GraphModule> load_pickle(std::string_view package, std::string_view resource);
  std::string load_text(std::string_view package, std::string_view resource) const;
  std::vector<std::byte> load_binary(std::string_view package, std::string_view resource) const;
  bool has_record(std::string_view package, std::string_view resource) const;

  // Record names below the root ("model/model.pkl", ".data/version"), sorted.
  std::vector<std::string> records() const;
  const std::string& root() const;
  // The tree of records, drawn as torch.package's file_structure() does.
  std::string file_structure() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The record name of a resource: "my.models" + "model.pkl" → "my/models/model.pkl".
// Throws Error for a package that is not a dotted name or a resource that is not a plain
// file name (which also keeps resources out of .data/).
std::string record_name(std::string_view package, std::string_view resource);
// The manifest items a module needs from the OpRegistry: "function <target>",
// "method <name>", "module <kind>" (kind "?" for a call_module target that is missing).
std::set<std::string> required_items(const GraphModule& module);
// True if this build provides a manifest item.
bool provides(std::string_view item);
// Record names below `root` drawn as torch.package's file_structure() draws them.
std::string format_file_structure(std::string_view root, const std::vector<std::string>& records);

}  // namespace fxpack
