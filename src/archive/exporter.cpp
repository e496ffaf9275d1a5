// PackageExporter: writes fxpack's own format (package/native.hpp) or torch.package's
// (interop/torch_package.hpp), as the caller chose.
#include <exception>
#include <optional>
#include <set>

#include "fxpack/package.hpp"
#include "fxpack/quote.hpp"
#include "interop/torch_package.hpp"
#include "package/native.hpp"
#include "zip/zip_writer.hpp"

namespace fxpack {

namespace {
bool is_torch_format(PackageFormat format) {
  return format == PackageFormat::TorchPackage || format == PackageFormat::TorchPackage2;
}
}  // namespace

struct PackageExporter::Impl {
  std::optional<std::filesystem::path> path;  // empty: to memory
  PackageFormat format = PackageFormat::Fxpack;
  std::string root;
  package::NativeWriter native;               // Fxpack: records are collected, then sorted
  std::optional<zip::ZipWriter> torch_writer;  // TorchPackage(2): records go straight in
  bool torch_pickle_saved = false;
  std::set<std::string> saved;  // record names below the root
  bool closed = false;

  void check_open() const {
    if (closed) throw ValueError("PackageExporter: the package is already closed");
  }
  void check_new(const std::string& name) const {
    check_open();
    if (saved.count(name)) throw ValueError("PackageExporter: " + quote(name) + " was already saved");
  }
  void add_record(const std::string& name, std::string bytes) {
    check_new(name);
    if (torch_writer) {
      torch_writer->add_stored(root + "/" + name, zip::HeldBytes(std::move(bytes)));
    } else {
      native.add_record(name, std::move(bytes));
    }
    saved.insert(name);
  }
};

PackageExporter::PackageExporter(std::filesystem::path path, PackageFormat format) : impl_(std::make_unique<Impl>()) {
  impl_->root = path.stem().string();
  if (impl_->root.empty() || impl_->root == "." || impl_->root == "..") impl_->root = "archive";
  impl_->format = format;
  if (is_torch_format(format)) impl_->torch_writer.emplace(zip::ZipWriter::to_file(path));
  impl_->path = std::move(path);
}

PackageExporter::PackageExporter(PackageFormat format) : impl_(std::make_unique<Impl>()) {
  impl_->root = "archive";
  impl_->format = format;
  if (is_torch_format(format)) impl_->torch_writer.emplace(zip::ZipWriter::to_memory());
}

PackageExporter::~PackageExporter() {
  // Like torch.package's `with` block: an exporter dropped while an exception unwinds writes
  // nothing, so a failed save never replaces an earlier archive.
  if (!impl_ || impl_->closed || std::uncaught_exceptions() > 0) return;
  try {
    close();
  } catch (const std::exception&) {
  }
}

void PackageExporter::save_pickle(std::string_view package, std::string_view resource, const GraphModule& module) {
  const std::string name = record_name(package, resource);
  impl_->check_new(name);
  if (impl_->torch_writer) {
    if (impl_->torch_pickle_saved) {
      throw FormatError("PackageExporter: a torch.package archive written by fxpack holds one pickle; " + quote(name) +
                  " would be the second");
    }
    interop::TorchExportOptions options;
    options.root = impl_->root;
    options.version = impl_->format == PackageFormat::TorchPackage2 ? Dialect::Torch2 : Dialect::Torch1_13;
    interop::save_torch_package(*impl_->torch_writer, module, package, resource, options);
    impl_->torch_pickle_saved = true;
    impl_->saved.insert(name);
    return;
  }
  impl_->native.add_pickle(name, module);
  impl_->saved.insert(name);
}

void PackageExporter::save_text(std::string_view package, std::string_view resource, std::string_view text) {
  impl_->add_record(record_name(package, resource), std::string(text));
}

void PackageExporter::save_binary(std::string_view package, std::string_view resource,
                                  std::span<const std::byte> bytes) {
  impl_->add_record(record_name(package, resource),
                    std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

std::vector<std::byte> PackageExporter::close() {
  impl_->check_open();
  impl_->closed = true;  // a failed close does not leave a half-open exporter behind
  if (impl_->torch_writer) return impl_->torch_writer->finish();
  auto writer = impl_->path ? zip::ZipWriter::to_file(*impl_->path) : zip::ZipWriter::to_memory();
  // The records go with this call, not with the exporter: a closed exporter has no use for
  // them (a 10^6-node graph's pickle is 19 MB).
  const package::NativeWriter records = std::move(impl_->native);
  records.write(writer, impl_->root);
  return writer.finish();
}

}  // namespace fxpack
