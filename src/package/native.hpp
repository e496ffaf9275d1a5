// fxpack's own package format inside a zip archive (the layout of fxpack/package.hpp):
// reading its records and writing them. It knows nothing of torch.package; the public
// PackageImporter/PackageExporter (src/archive/) choose between this and interop/.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fxpack/manifest.hpp"
#include "fxpack/package.hpp"
#include "zip/zip_reader.hpp"
#include "zip/zip_writer.hpp"

namespace fxpack::package {

inline constexpr std::string_view kVersionLine = "fxpack.package 1\n";
inline constexpr std::string_view kStoragePrefix = ".data/storages/";
inline constexpr std::string_view kPickleMagic = "fxpack.pickle ";

// The records of one fxpack package below `root` of a zip archive, which must outlive it.
// Opening checks the version record and reads the manifest (refusing what this build lacks
// when options.check_requirements is set). load() may be called from several threads.
class NativeReader {
 public:
  NativeReader(const zip::ZipReader& zip, std::string root, const ImporterOptions& options);

  // Null only when the manifest could not be read and requirements were not checked; then
  // manifest_error() says why.
  const Manifest* manifest() const noexcept { return manifest_ ? &*manifest_ : nullptr; }
  const std::string& manifest_error() const noexcept { return manifest_error_; }
  // The records among `records` (names below the root) that hold fxpack pickles.
  std::vector<std::string> pickles(const std::vector<std::string>& records) const;
  // Loads the pickle in `record`; storages come from the package's storage records. Warnings
  // go to `on_warning` (null: stderr), now and from the module's deferred source-hash check.
  LoadedPickle load(const std::string& record, const std::function<void(const std::string&)>& on_warning);

 private:
  std::string full(std::string_view name) const { return root_ + "/" + std::string(name); }
  void check_version() const;
  std::shared_ptr<Storage> storage(const std::string& key, std::uint64_t nbytes,
                                   const std::function<void(const std::string&)>& warn);

  const zip::ZipReader& zip_;
  std::string root_;
  const ImporterOptions& options_;
  std::optional<Manifest> manifest_;
  std::string manifest_error_;
  std::mutex mu_;  // guards storages_
  std::unordered_map<std::string, std::shared_ptr<Storage>> storages_;
};

// Collects what an fxpack package will hold; write() adds every record to a zip writer,
// sorted by name, so the same content always gives the same bytes.
class NativeWriter {
 public:
  bool has(std::string_view record) const { return records_.count(std::string(record)) != 0; }
  void add_pickle(std::string record, const GraphModule& module);
  void add_record(std::string record, std::string bytes);
  void write(zip::ZipWriter& zip, const std::string& root) const;

 private:
  // below the root → bytes (a pickle's in the pieces its writer made; the zip writer holds
  // them until it has written them)
  std::map<std::string, zip::HeldBytes> records_;
  std::map<std::string, std::shared_ptr<Storage>> storage_records_;
  std::unordered_map<const Storage*, std::string> storage_keys_;
  Manifest manifest_;
};

}  // namespace fxpack::package
