// Any archive fxpack reads, recognised by its content rather than its name: an fxpack
// package, a torch.package archive of an fx GraphModule (written by PyTorch or by fxpack),
// or a bare fxpack pickle. What tools such as the fxpack command open when given a path.
//
//   auto archive = fxpack::Archive::open("model.pt");
//   for (const std::string& record : archive.pickles()) {
//     fxpack::LoadedPickle p = archive.load(record);
//     std::cout << p.module->code();
//   }
//
// Packages are opened with PackageImporter (package.hpp) and the given options; a bare
// pickle is read whole (at most max_pickle_bytes) and loaded with pickle::loads_with_report,
// using the options' limits and warning hook. Nothing from an archive is ever run.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fxpack/package.hpp"

namespace fxpack {

enum class ArchiveKind : std::uint8_t { FxpackPackage, TorchPackage, Pickle };

class Archive {
 public:
  // FormatError if the file is none of the three kinds (or is refused by their reader),
  // IoError if it cannot be read.
  static Archive open(const std::filesystem::path& path, ImporterOptions options = {},
                      std::uint64_t max_pickle_bytes = std::uint64_t{1} << 34);

  ArchiveKind kind() const noexcept { return kind_; }
  const std::filesystem::path& path() const noexcept { return path_; }
  // "fxpack package v1", "torch.package (.data/version 6)", "fxpack pickle, json v1".
  std::string format_description() const;
  // The pickled modules: record names of a package (PackageImporter::pickles()), or one
  // empty name for a bare pickle.
  std::vector<std::string> pickles() const;
  // The package; null for a bare pickle.
  PackageImporter* package() noexcept { return package_.get(); }
  const PackageImporter* package() const noexcept { return package_.get(); }
  // The bytes of a bare pickle (empty for a package).
  const std::string& pickle_bytes() const noexcept { return pickle_bytes_; }
  // Loads the module pickled in `record` (empty for a bare pickle).
  LoadedPickle load(std::string_view record);

 private:
  ArchiveKind kind_ = ArchiveKind::Pickle;
  std::filesystem::path path_;
  ImporterOptions options_;
  std::unique_ptr<PackageImporter> package_;
  std::string pickle_bytes_;
};

}  // namespace fxpack
