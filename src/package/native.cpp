#include "package/native.hpp"

#include <algorithm>
#include <cstring>

#include "fxpack/quote.hpp"
#include "pickle/checked_record.hpp"

namespace fxpack::package {

namespace {

constexpr std::size_t kAlignment = 64;

std::string text_of(const std::vector<std::byte>& b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Reading

NativeReader::NativeReader(const zip::ZipReader& zip, std::string root, const ImporterOptions& options)
    : zip_(zip), root_(std::move(root)), options_(options) {
  check_version();
  try {
    if (!zip_.find(full(".data/manifest"))) throw FormatError("package has no .data/manifest record");
    manifest_ = Manifest::parse(text_of(zip_.read(full(".data/manifest"))));
  } catch (const FormatError& e) {
    if (options_.check_requirements) throw;
    manifest_error_ = e.what();
    return;
  }
  if (!options_.check_requirements) return;
  const std::vector<std::string> unmet = manifest_->unmet_requirements();
  if (!unmet.empty()) {
    std::string msg = "package needs " + std::to_string(unmet.size()) + " item(s) that this build does not provide: ";
    for (std::size_t i = 0; i < unmet.size(); ++i) msg += (i ? "; " : "") + unmet[i];
    throw FormatError(msg);
  }
}

void NativeReader::check_version() const {
  const std::string version_record = full(".data/version");
  if (!zip_.find(version_record)) {
    throw FormatError("package has no " + quote(version_record) + " record: not an fxpack package");
  }
  // The record is one short line: read no more than that, whatever it claims.
  const std::string version = text_of(zip_.peek(version_record, 64));
  if (version == kVersionLine && zip_.at(version_record).uncompressed_size == kVersionLine.size()) return;
  const std::string shown = version.substr(0, version.find('\n'));
  if (shown.starts_with("fxpack.package ")) {
    throw FormatError("package format " + quote(shown) + " is not supported by this build, which reads '" +
                      std::string(kVersionLine.substr(0, kVersionLine.size() - 1)) + "'");
  }
  throw FormatError("record " + quote(version_record) + " does not name an fxpack package: " + quote(shown));
}

std::vector<std::string> NativeReader::pickles(const std::vector<std::string>& records) const {
  std::vector<std::string> out;
  for (const std::string& r : records) {
    if (r.starts_with(".data/")) continue;
    try {
      if (text_of(zip_.peek(full(r), kPickleMagic.size())) == kPickleMagic) out.push_back(r);
    } catch (const FormatError&) {
      // A record whose first bytes cannot even be inflated is no pickle anyone can load;
      // checking its CRC (verify) reports it.
    }
  }
  return out;
}

std::shared_ptr<Storage> NativeReader::storage(const std::string& key, std::uint64_t nbytes,
                                               const std::function<void(const std::string&)>& warn) {
  std::lock_guard lock(mu_);
  if (auto it = storages_.find(key); it != storages_.end()) {
    if (it->second->nbytes() != nbytes) {
      throw FormatError("storage record " + quote(key) + " is used with sizes " + std::to_string(it->second->nbytes()) +
                        " and " + std::to_string(nbytes));
    }
    return it->second;
  }
  if (!key.starts_with(kStoragePrefix)) throw FormatError("storage key " + quote(key, 64) + " is not a storage record");
  const std::string name = full(key);
  const zip::EntryInfo* e = zip_.find(name);
  if (!e) throw FormatError("storage record " + quote(name) + " is missing");
  if (e->uncompressed_size != nbytes) {
    throw FormatError("storage record " + quote(name) + " has " + std::to_string(e->uncompressed_size) +
                      " bytes, the pickle expects " + std::to_string(nbytes));
  }
  std::shared_ptr<Storage> s;
  if (options_.mode == LoadMode::Map && e->method == zip::Method::store && zip_.aliases()) {
    if (e->data_offset % kAlignment != 0) {
      // Tensors must not alias odd addresses (undefined behaviour in every kernel): copy.
      warn("storage record " + quote(name) + " is not 64-byte aligned in the archive (data at offset " +
           std::to_string(e->data_offset) + "): copied instead of mapped");
    } else {
      const zip::StoredView v = zip_.view(name);
      // A memory buffer may itself be less aligned than the file offsets promise.
      if (reinterpret_cast<std::uintptr_t>(v.bytes.data()) % kAlignment == 0) {
        // The CRC is checked when the tensor's bytes are first used (Storage::borrow).
        s = Storage::borrow(v.bytes.data(), v.bytes.size(), v.owner,
                            options_.verify_storage_crc ? zip_.verifier(name) : nullptr, v.release);
      }
    }
  }
  if (!s) {
    s = Storage::allocate(static_cast<std::size_t>(nbytes));
    zip_.read_into(name, std::span(s->data(), s->nbytes()));  // CRC checked
  }
  storages_.emplace(key, s);
  return s;
}

LoadedPickle NativeReader::load(const std::string& record, const std::function<void(const std::string&)>& on_warning) {
  LoadedPickle out;
  // The pickle's own warnings come back in its report; the module keeps `on_warning` (the
  // caller's hook, by value) for its deferred source-hash check, which runs after this returns.
  // Storage warnings come first: storages are resolved before the pickle's checks.
  const auto storage_warning = [&](const std::string& w) {
    out.warnings.push_back(w);
    pickle::emit_warning(on_warning, w);
  };
  // The record is decoded into objects of the module's own, so it need not outlive this call:
  // read in place where the archive is mapped or in memory (ZipReader::read_view), its CRC
  // checked there once — the pickle's own check of its body is derived from it.
  const zip::EntryInfo& entry = zip_.at(full(record));
  const zip::StoredView bytes = zip_.read_view(entry);
  pickle::LoadOptions options;
  options.limits = options_.limits;
  options.on_warning = on_warning;
  options.storage_source = [&](const std::string& key, std::uint64_t nbytes) {
    return storage(key, nbytes, storage_warning);
  };
  try {
    pickle::Loaded loaded = pickle::detail::loads_checked_record(
        std::string_view(reinterpret_cast<const char*>(bytes.bytes.data()), bytes.bytes.size()), entry.crc32, options);
    out.warnings.insert(out.warnings.end(), loaded.report.warnings.begin(), loaded.report.warnings.end());
    out.module = std::move(loaded.module);
    out.report = std::move(loaded.report);
  } catch (const FormatError& e) {
    throw FormatError("record " + quote(record) + ": " + e.what());
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Writing

void NativeWriter::add_pickle(std::string record, const GraphModule& module) {
  pickle::DumpOptions options;
  options.format = pickle::PickleFormat::PortableBinary;
  options.storage_sink = [this](const std::shared_ptr<Storage>& s) {
    auto [it, inserted] =
        storage_keys_.try_emplace(s.get(), std::string(kStoragePrefix) + std::to_string(storage_keys_.size()));
    if (inserted) storage_records_.emplace(it->second, s);
    return it->second;
  };
  std::vector<std::pair<Op, std::string_view>> call_targets;  // views of the graph's targets
  options.on_call_target = [&call_targets](Op op, std::string_view target) { call_targets.emplace_back(op, target); };
  pickle::detail::PicklePieces pickled = pickle::detail::dumps_pieces(module, options);
  const std::set<std::string> items = required_items(module, call_targets);
  manifest_.pickles.push_back({record, pickle::kFormatVersion, {items.begin(), items.end()}});
  zip::HeldBytes bytes({}, std::move(pickled.owner));
  for (std::string_view piece : pickled.pieces) bytes.pieces.push_back(zip::bytes_of(piece));
  records_.emplace(std::move(record), std::move(bytes));
}

void NativeWriter::add_record(std::string record, std::string bytes) {
  records_.emplace(std::move(record), zip::HeldBytes(std::move(bytes)));
}

void NativeWriter::write(zip::ZipWriter& zip, const std::string& root) const {
  Manifest manifest = manifest_;
  std::sort(manifest.pickles.begin(), manifest.pickles.end(),
            [](const Manifest::Pickle& a, const Manifest::Pickle& b) { return a.record < b.record; });
  // One sorted sequence of records (fxpack's own, the storages, the resources), each
  // written from its own memory (a large graph's pickle is tens of MB).
  std::map<std::string, zip::HeldBytes> all;
  all.emplace(".data/version", zip::HeldBytes(std::string(kVersionLine)));
  all.emplace(".data/manifest", zip::HeldBytes(manifest.to_string()));
  all.insert(records_.begin(), records_.end());
  for (const auto& [name, storage] : storage_records_) {
    all.emplace(name, zip::HeldBytes({std::span<const std::byte>(storage->data(), storage->nbytes())}, storage));
  }
  const std::string prefix = root + "/";
  for (auto& [name, bytes] : all) zip.add_stored(prefix + name, std::move(bytes));
}

}  // namespace fxpack::package
