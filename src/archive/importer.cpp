// PackageImporter: opens a zip archive and hands it to the reader of its format — fxpack's
// own (package/native.hpp) or torch.package's (interop/torch_package.hpp) — chosen by
// content. The one place that knows both formats exist.
#include <algorithm>
#include <optional>

#include "fxpack/package.hpp"
#include "fxpack/quote.hpp"
#include "interop/torch_package.hpp"
#include "package/native.hpp"
#include "zip/zip_reader.hpp"

namespace fxpack {

namespace {

std::string text_of(const std::vector<std::byte>& b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

zip::ReaderLimits reader_limits(const ImporterOptions& o) {
  zip::ReaderLimits limits;
  limits.max_entries = o.max_records;
  limits.max_entry_size = o.max_record_size;
  limits.max_total_size = o.max_total_size;
  limits.max_deflate_ratio = o.max_deflate_ratio;
  limits.ratio_exempt_size = o.ratio_exempt_size;
  return limits;
}

}  // namespace

struct PackageImporter::Impl {
  ImporterOptions options;
  zip::ZipReader reader;
  std::string root;
  PackageFormat format = PackageFormat::Fxpack;
  std::optional<std::string> torch_version;         // torch.package: .data/version, trimmed
  std::unique_ptr<package::NativeReader> native;    // fxpack packages

  Impl(ImporterOptions o, zip::ZipReader r) : options(std::move(o)), reader(std::move(r)) { open(); }

  std::string full(std::string_view name) const { return root + "/" + std::string(name); }

  void open() {
    const auto& entries = reader.entries();
    if (entries.empty()) throw FormatError("package is empty: no .data/version record");
    const auto slash = entries.front().name.find('/');
    if (slash == std::string::npos || slash == 0) {
      throw FormatError("package record " + quote(entries.front().name) + " is not inside a root folder");
    }
    root = entries.front().name.substr(0, slash);
    const std::string_view prefix(entries.front().name.data(), slash + 1);
    for (const auto& e : entries) {
      if (!e.name.starts_with(prefix) || e.name.size() == prefix.size()) {
        throw FormatError("package record " + quote(e.name) + " is outside the root folder " + quote(root));
      }
    }
    if (interop::is_torch_package(reader)) {
      format = interop::torch_package_dialect(reader) == Dialect::Torch2 ? PackageFormat::TorchPackage2
                                                                         : PackageFormat::TorchPackage;
      // Shown by format_description() only: load_torch_package checks the version (and says
      // when the record is missing) before it loads anything.
      if (reader.find(full(".data/version"))) {
        std::string text = text_of(reader.peek(full(".data/version"), 64));
        while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
        torch_version = std::move(text);
      }
      return;
    }
    native = std::make_unique<package::NativeReader>(reader, root, options);
  }

  // The record names below the root, sorted (for listings: a load needs none of them).
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(reader.entries().size());
    for (const auto& e : reader.entries()) out.push_back(e.name.substr(root.size() + 1));
    std::sort(out.begin(), out.end());
    return out;
  }

  const zip::EntryInfo& entry(std::string_view record) const {
    const zip::EntryInfo* e = reader.find(full(record));
    if (!e) throw FormatError("package has no record " + quote(record));
    return *e;
  }

  // torch.package puts pickles anywhere outside .data/ and fx-generated/: recognise them by
  // name or by the PROTO opcode a pickle starts with.
  std::vector<std::string> torch_pickles() const {
    std::vector<std::string> out;
    for (const std::string& r : names()) {
      if (r.starts_with(".data/") || r.starts_with("fx-generated/")) continue;
      bool pickle = r.ends_with(".pkl");
      if (!pickle) {
        try {
          const auto head = reader.peek(full(r), 1);
          pickle = !head.empty() && head[0] == std::byte{0x80};
        } catch (const FormatError&) {
        }
      }
      if (pickle) out.push_back(r);
    }
    return out;
  }
};

PackageImporter::PackageImporter(const std::filesystem::path& path, ImporterOptions options) {
  const auto access = options.mode == LoadMode::Map ? zip::Access::map : zip::Access::read;
  zip::ZipReader reader = zip::ZipReader::open(path, reader_limits(options), access);
  impl_ = std::make_unique<Impl>(std::move(options), std::move(reader));
}

PackageImporter::PackageImporter(std::vector<std::byte> bytes, ImporterOptions options) {
  zip::ZipReader reader = zip::ZipReader::from_memory(std::make_shared<const std::vector<std::byte>>(std::move(bytes)),
                                                      reader_limits(options));
  impl_ = std::make_unique<Impl>(std::move(options), std::move(reader));
}

PackageImporter::~PackageImporter() = default;
PackageImporter::PackageImporter(PackageImporter&&) noexcept = default;
PackageImporter& PackageImporter::operator=(PackageImporter&&) noexcept = default;

LoadedPickle PackageImporter::load_pickle_with_report(std::string_view package, std::string_view resource) {
  const std::string name = record_name(package, resource);
  (void)impl_->entry(name);
  if (!impl_->native) {
    interop::TorchPackageOptions options;
    options.copy_tensors = impl_->options.mode == LoadMode::Copy;
    options.verify_crc = impl_->options.verify_storage_crc;
    LoadedPickle out;
    out.module = interop::load_torch_package(impl_->reader, package, resource, options);
    return out;
  }
  return impl_->native->load(name, impl_->options.on_warning);
}

std::shared_ptr<GraphModule> PackageImporter::load_pickle(std::string_view package, std::string_view resource) {
  return load_pickle_with_report(package, resource).module;
}

std::string PackageImporter::load_text(std::string_view package, std::string_view resource) const {
  return text_of(read_record(record_name(package, resource)));
}

std::vector<std::byte> PackageImporter::load_binary(std::string_view package, std::string_view resource) const {
  return read_record(record_name(package, resource));
}

bool PackageImporter::has_record(std::string_view package, std::string_view resource) const {
  return has_record(record_name(package, resource));
}

PackageFormat PackageImporter::format() const { return impl_->format; }

std::string PackageImporter::format_description() const {
  if (!impl_->native) {
    if (!impl_->torch_version) return "torch.package (no .data/version)";
    return "torch.package (.data/version " + printable(impl_->torch_version->substr(0, 32)) +
           (impl_->torch_version->size() > 32 ? "..." : "") + ")";
  }
  return "fxpack package v" + std::string(package::kVersionLine.substr(15, package::kVersionLine.size() - 16));
}

const Manifest* PackageImporter::manifest() const {
  if (!impl_->native) return nullptr;
  if (const Manifest* m = impl_->native->manifest()) return m;
  throw FormatError(impl_->native->manifest_error());
}

std::vector<std::string> PackageImporter::pickles() const {
  return impl_->native ? impl_->native->pickles(impl_->names()) : impl_->torch_pickles();
}

std::vector<std::string> PackageImporter::records() const { return impl_->names(); }
const std::string& PackageImporter::root() const { return impl_->root; }
std::string PackageImporter::file_structure() const { return format_file_structure(impl_->root, impl_->names()); }

RecordInfo PackageImporter::record_info(std::string_view record) const {
  const zip::EntryInfo& e = impl_->entry(record);
  return {std::string(record), e.uncompressed_size, e.compressed_size, e.method == zip::Method::store, e.crc32,
          e.data_offset};
}

bool PackageImporter::has_record(std::string_view record) const {
  return impl_->reader.find(impl_->full(record)) != nullptr;
}

std::vector<std::byte> PackageImporter::read_record(std::string_view record) const {
  return impl_->reader.read(impl_->entry(record).name);
}

void PackageImporter::verify_record(std::string_view record) const { impl_->reader.verify(impl_->entry(record).name); }

}  // namespace fxpack
