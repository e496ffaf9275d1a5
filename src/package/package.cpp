#include "fxpack/package.hpp"

#include <algorithm>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <unordered_map>

#include "fxpack/ops.hpp"
#include "interop/torch_package.hpp"
#include "package/zip_reader.hpp"
#include "package/zip_writer.hpp"

namespace fxpack {

namespace {

constexpr std::string_view kVersionLine = "fxpack.package 1\n";
constexpr std::string_view kManifestHeader = "fxpack.manifest 1";
constexpr std::string_view kStoragePrefix = ".data/storages/";

std::span<const std::byte> as_bytes(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

}  // namespace

std::string record_name(std::string_view package, std::string_view resource) {
  if (package.empty()) throw Error("package name is empty");
  if (resource.empty() || resource.find('/') != std::string_view::npos)
    throw Error("resource name '" + std::string(resource) + "' must be a plain file name");
  std::string path;
  std::size_t start = 0;
  while (true) {
    auto dot = package.find('.', start);
    std::string_view part = package.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (part.empty() || part == "." || part == ".." || part.find('/') != std::string_view::npos)
      throw Error("package name '" + std::string(package) + "' is not a dotted name");
    path += part;
    path += '/';
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  path += resource;  // never under .data/: a dotted name has no empty part
  zip::check_entry_name(path);
  return path;
}

std::set<std::string> required_items(const GraphModule& gm) {
  std::set<std::string> out;
  for (const Node* n : gm.graph()) {
    switch (n->op()) {
      case Op::CallFunction: out.insert("function " + n->target()); break;
      case Op::CallMethod: out.insert("method " + n->target()); break;
      case Op::CallModule: {
        std::string kind = "?";
        try {
          kind = gm.get_submodule(n->target())->kind();
        } catch (const Error&) {
        }
        out.insert("module " + kind);
        break;
      }
      default: break;
    }
  }
  return out;
}

bool provides(std::string_view item) {
  const OpRegistry& r = OpRegistry::global();
  auto sp = item.find(' ');
  if (sp == std::string_view::npos) return false;
  std::string_view kind = item.substr(0, sp);
  std::string_view name = item.substr(sp + 1);
  if (kind == "function") return r.function(name) != nullptr;
  if (kind == "method") return r.method(name) != nullptr;
  if (kind == "module") return r.module_kind(name) != nullptr;
  return false;
}

// ---------------------------------------------------------------------------------------
// Exporter

struct PackageExporter::Impl {
  std::optional<std::filesystem::path> path;
  PackageFormat format = PackageFormat::Fxpack;
  std::string root;
  std::optional<zip::ZipWriter> torch_writer;  // TorchPackage: records go straight in
  bool torch_pickle_saved = false;
  // Record name (below the root) → bytes; sorted, so archives are reproducible.
  std::map<std::string, std::string> records;
  std::map<std::string, std::shared_ptr<Storage>> storage_records;
  std::unordered_map<const Storage*, std::string> storage_keys;
  std::map<std::string, std::set<std::string>> manifest;  // pickle path → requirements
  bool closed = false;

  void add_record(std::string name, std::string bytes) {
    if (closed) throw Error("PackageExporter: the package is already closed");
    if (records.count(name)) throw Error("PackageExporter: '" + name + "' was already saved");
    if (torch_writer) {
      torch_writer->add_stored(root + "/" + name, as_bytes(bytes));
      records.emplace(std::move(name), std::string());
      return;
    }
    records.emplace(std::move(name), std::move(bytes));
  }
};

PackageExporter::PackageExporter(std::filesystem::path path, PackageFormat format)
    : impl_(std::make_unique<Impl>()) {
  impl_->root = path.stem().string();
  if (impl_->root.empty() || impl_->root == "." || impl_->root == "..") impl_->root = "archive";
  impl_->format = format;
  if (format == PackageFormat::TorchPackage || format == PackageFormat::TorchPackage2)
    impl_->torch_writer.emplace(zip::ZipWriter::to_file(path));
  impl_->path = std::move(path);
}

PackageExporter::PackageExporter(PackageFormat format) : impl_(std::make_unique<Impl>()) {
  impl_->root = "archive";
  impl_->format = format;
  if (format == PackageFormat::TorchPackage || format == PackageFormat::TorchPackage2)
    impl_->torch_writer.emplace(zip::ZipWriter::to_memory());
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

void PackageExporter::save_pickle(std::string_view package, std::string_view resource,
                                  const GraphModule& module) {
  std::string name = record_name(package, resource);
  if (impl_->torch_writer) {
    if (impl_->closed) throw Error("PackageExporter: the package is already closed");
    if (impl_->torch_pickle_saved)
      throw Error("PackageExporter: a torch.package archive written by fxpack holds one pickle; '" + name +
                  "' would be the second");
    interop::TorchExportOptions options;
    options.root = impl_->root;
    options.version = impl_->format == PackageFormat::TorchPackage2 ? Dialect::Torch2 : Dialect::Torch1_13;
    interop::save_torch_package(*impl_->torch_writer, module, package, resource, options);
    impl_->torch_pickle_saved = true;
    return;
  }
  pickle::DumpOptions options;
  options.format = pickle::PickleFormat::PortableBinary;
  options.storage_sink = [this](const std::shared_ptr<Storage>& s) {
    auto [it, inserted] = impl_->storage_keys.try_emplace(
        s.get(), std::string(kStoragePrefix) + std::to_string(impl_->storage_keys.size()));
    if (inserted) impl_->storage_records.emplace(it->second, s);
    return it->second;
  };
  std::string bytes = pickle::dumps(module, options);
  impl_->manifest[name] = required_items(module);
  impl_->add_record(std::move(name), std::move(bytes));
}

void PackageExporter::save_text(std::string_view package, std::string_view resource,
                                std::string_view text) {
  impl_->add_record(record_name(package, resource), std::string(text));
}

void PackageExporter::save_binary(std::string_view package, std::string_view resource,
                                  std::span<const std::byte> bytes) {
  impl_->add_record(record_name(package, resource),
                    std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

std::vector<std::byte> PackageExporter::close() {
  if (impl_->closed) throw Error("PackageExporter: the package is already closed");
  impl_->closed = true;  // a failed close does not leave a half-open exporter behind
  if (impl_->torch_writer) return impl_->torch_writer->finish();
  std::string manifest(kManifestHeader);
  manifest += '\n';
  for (const auto& [pickle_path, items] : impl_->manifest) {
    manifest += "pickle " + pickle_path + " " + std::to_string(pickle::kFormatVersion) + "\n";
    for (const auto& item : items) manifest += item + "\n";
  }
  std::map<std::string, std::string> meta = {{".data/version", std::string(kVersionLine)},
                                             {".data/manifest", std::move(manifest)}};
  // One sorted sequence of records (fxpack's own, the storages, the resources), so the same
  // content always gives the same bytes. Storages are written from their own memory.
  std::map<std::string, std::pair<std::span<const std::byte>, std::shared_ptr<const void>>> all;
  for (const auto& [name, bytes] : meta) all.emplace(name, std::pair(as_bytes(bytes), nullptr));
  for (const auto& [name, bytes] : impl_->records) all.emplace(name, std::pair(as_bytes(bytes), nullptr));
  for (const auto& [name, storage] : impl_->storage_records)
    all.emplace(name, std::pair(std::span<const std::byte>(storage->data(), storage->nbytes()), storage));
  auto writer = impl_->path ? zip::ZipWriter::to_file(*impl_->path) : zip::ZipWriter::to_memory();
  const std::string prefix = impl_->root + "/";
  for (const auto& [name, record] : all) {
    if (record.second) writer.add_stored(prefix + name, record.first, record.second);
    else writer.add_stored(prefix + name, record.first);
  }
  return writer.finish();
}

// ---------------------------------------------------------------------------------------
// Importer

struct PackageImporter::Impl {
  zip::ZipReader reader;
  ImporterOptions options;
  std::string root;
  bool torch_package = false;  // written by PyTorch's torch.package
  std::vector<std::string> names;  // below the root, sorted
  std::mutex mu;
  std::unordered_map<std::string, std::shared_ptr<Storage>> storages;

  Impl(zip::ZipReader r, ImporterOptions o) : reader(std::move(r)), options(o) { open(); }

  std::string full(std::string_view name) const { return root + "/" + std::string(name); }

  void open() {
    const auto& entries = reader.entries();
    if (entries.size() > options.max_records)
      throw FormatError("package has " + std::to_string(entries.size()) + " records, more than the limit of " +
                        std::to_string(options.max_records));
    if (entries.empty()) throw FormatError("package is empty: no .data/version record");
    auto slash = entries.front().name.find('/');
    if (slash == std::string::npos || slash == 0)
      throw FormatError("package record '" + entries.front().name + "' is not inside a root folder");
    root = entries.front().name.substr(0, slash);
    for (const auto& e : entries) {
      if (!e.name.starts_with(root + "/") || e.name.size() == root.size() + 1)
        throw FormatError("package record '" + e.name + "' is outside the root folder '" + root + "'");
      names.push_back(e.name.substr(root.size() + 1));
    }
    std::sort(names.begin(), names.end());
    if (interop::is_torch_package(reader)) {
      torch_package = true;
      return;
    }
    if (!reader.find(full(".data/version")))
      throw FormatError("package has no " + root + "/.data/version record: not an fxpack package");
    auto version = to_string(reader.read(full(".data/version")));
    if (version != kVersionLine) {
      std::string shown = version.substr(0, std::min<std::size_t>(version.find('\n'), 64));
      if (shown.starts_with("fxpack.package "))
        throw FormatError("package format '" + shown + "' is not supported by this build, which reads '" +
                          std::string(kVersionLine.substr(0, kVersionLine.size() - 1)) + "'");
      throw FormatError("record " + root + "/.data/version does not name an fxpack package: '" + shown + "'");
    }
    check_manifest();
  }

  static std::string to_string(const std::vector<std::byte>& b) {
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
  }

  void check_manifest() {
    if (!reader.find(full(".data/manifest"))) throw FormatError("package has no .data/manifest record");
    std::string text = to_string(reader.read(full(".data/manifest")));
    std::vector<std::string> missing;
    std::size_t start = 0, line_no = 0;
    std::string current;
    while (start < text.size()) {
      auto nl = text.find('\n', start);
      if (nl == std::string::npos) throw FormatError(".data/manifest: the last line has no newline (truncated?)");
      std::string line = text.substr(start, nl - start);
      start = nl + 1;
      ++line_no;
      auto where = [&] { return ".data/manifest line " + std::to_string(line_no) + ": "; };
      if (line_no == 1) {
        if (line != kManifestHeader)
          throw FormatError(where() + "expected '" + std::string(kManifestHeader) + "', got '" + line.substr(0, 64) + "'");
        continue;
      }
      auto sp = line.find(' ');
      std::string kind = line.substr(0, sp);
      if (sp == std::string::npos || sp + 1 >= line.size())
        throw FormatError(where() + "malformed entry '" + line.substr(0, 64) + "'");
      if (kind == "pickle") {
        auto sp2 = line.rfind(' ');
        current = line.substr(sp + 1, sp2 - sp - 1);
        std::string version = line.substr(sp2 + 1);
        if (version != std::to_string(pickle::kFormatVersion) &&
            !(version.size() < 10 && std::all_of(version.begin(), version.end(), ::isdigit) &&
              std::stoul(version) < pickle::kFormatVersion))
          missing.push_back("pickle format version " + version + " (for " + current + "; this build reads up to " +
                            std::to_string(pickle::kFormatVersion) + ")");
      } else if (kind == "function" || kind == "method" || kind == "module") {
        if (current.empty()) throw FormatError(where() + "entry before any 'pickle' line");
        if (!provides(line)) missing.push_back(line + " (for " + current + ")");
      } else {
        throw FormatError(where() + "unknown entry kind '" + kind.substr(0, 32) + "'");
      }
    }
    if (!missing.empty()) {
      std::string msg = "package needs " + std::to_string(missing.size()) +
                        " item(s) that this build does not provide: ";
      for (std::size_t i = 0; i < missing.size(); ++i) msg += (i ? "; " : "") + missing[i];
      throw FormatError(msg);
    }
  }

  std::shared_ptr<Storage> storage(const std::string& key, std::uint64_t nbytes) {
    std::lock_guard lock(mu);
    if (auto it = storages.find(key); it != storages.end()) {
      if (it->second->nbytes() != nbytes)
        throw FormatError("storage record '" + key + "' is used with sizes " + std::to_string(it->second->nbytes()) +
                          " and " + std::to_string(nbytes));
      return it->second;
    }
    if (!key.starts_with(kStoragePrefix)) throw FormatError("storage key '" + key.substr(0, 64) + "' is not a storage record");
    const zip::EntryInfo* e = reader.find(full(key));
    if (!e) throw FormatError("storage record '" + full(key) + "' is missing");
    if (e->uncompressed_size != nbytes)
      throw FormatError("storage record '" + full(key) + "' has " + std::to_string(e->uncompressed_size) +
                        " bytes, the pickle expects " + std::to_string(nbytes));
    std::shared_ptr<Storage> s;
    if (options.mmap_tensors && e->method == zip::Method::store) {
      if (options.verify_storage_crc) reader.verify(full(key));
      auto view = reader.view(full(key));
      s = Storage::borrow(view.bytes.data(), view.bytes.size(), view.owner);
    } else {
      auto bytes = reader.read(full(key));  // CRC checked
      s = Storage::allocate(bytes.size());
      std::copy(bytes.begin(), bytes.end(), s->data());
    }
    storages.emplace(key, s);
    return s;
  }
};

PackageImporter::PackageImporter(const std::filesystem::path& path, ImporterOptions options)
    : impl_(std::make_unique<Impl>(zip::ZipReader::open(path), options)) {}

PackageImporter::PackageImporter(std::vector<std::byte> bytes, ImporterOptions options)
    : impl_(std::make_unique<Impl>(
          zip::ZipReader::from_memory(std::make_shared<const std::vector<std::byte>>(std::move(bytes))), options)) {}

PackageImporter::~PackageImporter() = default;
PackageImporter::PackageImporter(PackageImporter&&) noexcept = default;
PackageImporter& PackageImporter::operator=(PackageImporter&&) noexcept = default;

std::shared_ptr<GraphModule> PackageImporter::load_pickle(std::string_view package, std::string_view resource) {
  std::string name = record_name(package, resource);
  if (!impl_->reader.find(impl_->full(name))) throw FormatError("package has no record '" + name + "'");
  if (impl_->torch_package) {
    interop::TorchPackageOptions options;
    options.copy_tensors = !impl_->options.mmap_tensors;
    options.verify_crc = impl_->options.verify_storage_crc;
    return interop::load_torch_package(impl_->reader, package, resource, options);
  }
  auto bytes = impl_->reader.read(impl_->full(name));
  pickle::LoadOptions options;
  options.limits = impl_->options.limits;
  options.storage_source = [this](const std::string& key, std::uint64_t nbytes) {
    return impl_->storage(key, nbytes);
  };
  try {
    return pickle::loads(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), options);
  } catch (const FormatError& e) {
    throw FormatError("record '" + name + "': " + e.what());
  }
}

std::string PackageImporter::load_text(std::string_view package, std::string_view resource) const {
  std::string name = record_name(package, resource);
  if (!impl_->reader.find(impl_->full(name))) throw FormatError("package has no record '" + name + "'");
  return Impl::to_string(impl_->reader.read(impl_->full(name)));
}

std::vector<std::byte> PackageImporter::load_binary(std::string_view package, std::string_view resource) const {
  std::string name = record_name(package, resource);
  if (!impl_->reader.find(impl_->full(name))) throw FormatError("package has no record '" + name + "'");
  return impl_->reader.read(impl_->full(name));
}

bool PackageImporter::has_record(std::string_view package, std::string_view resource) const {
  return impl_->reader.find(impl_->full(record_name(package, resource))) != nullptr;
}

std::vector<std::string> PackageImporter::records() const { return impl_->names; }
const std::string& PackageImporter::root() const { return impl_->root; }

namespace {
struct Dir {
  std::map<std::string, Dir> dirs;
  std::set<std::string> files;
};

// torch.package's Directory._stringify_tree: folders first, then files, each sorted.
void stringify(const Dir& d, const std::string& name, std::string& out, std::string preserved,
               std::string_view pointer) {
  out += preserved + std::string(pointer) + name + "\n";
  preserved += pointer == "├── " ? "│   " : "    ";
  std::size_t i = 0;
  for (const auto& [child, sub] : d.dirs) {
    bool last = ++i == d.dirs.size() && d.files.empty();
    stringify(sub, child, out, preserved, last ? "└── " : "├── ");
  }
  std::size_t j = 0;
  for (const auto& f : d.files) out += preserved + (++j == d.files.size() ? "└── " : "├── ") + f + "\n";
}
}  // namespace

std::string PackageImporter::file_structure() const { return format_file_structure(impl_->root, impl_->names); }

std::string format_file_structure(std::string_view root, const std::vector<std::string>& records) {
  Dir top;
  for (const auto& name : records) {
    Dir* d = &top;
    std::size_t start = 0;
    while (true) {
      auto slash = name.find('/', start);
      if (slash == std::string::npos) {
        d->files.insert(name.substr(start));
        break;
      }
      d = &d->dirs[name.substr(start, slash - start)];
      start = slash + 1;
    }
  }
  std::string out;
  stringify(top, std::string(root), out, "", "─── ");
  return out;
}

}  // namespace fxpack
