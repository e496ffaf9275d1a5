// libFuzzer harness: PackageImporter on arbitrary bytes — fxpack packages and torch.package
// archives — then every public look at the archive (records, file structure, manifest,
// every record read and verified) and every pickle loaded and exercised.
//
// An input is either a zip archive as it is, or (starting with "FXRC") a list of records
// that the harness zips itself: [u16 name length][name][u32 data length][data]..., little
// endian, cut short where the input ends. Mutating a zip almost always breaks a CRC, which
// the importer rightly refuses before looking further; the record form lets the fuzzer
// change a manifest, a pickle or a storage and still get past the zip layer (which
// fuzz_zip_reader covers on its own).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "exercise.hpp"
#include "zip/zip_writer.hpp"

namespace {

std::vector<std::byte> zip_of_records(const std::uint8_t* data, std::size_t size) {
  auto writer = fxpack::zip::ZipWriter::to_memory();
  std::set<std::string> names;
  std::size_t pos = 4;
  const auto take = [&](std::size_t n) -> std::uint64_t {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n && pos < size; ++i) v |= static_cast<std::uint64_t>(data[pos++]) << (8 * i);
    return v;
  };
  while (pos < size) {
    const std::size_t name_len = take(2);
    const std::string name(reinterpret_cast<const char*>(data + pos), std::min(name_len, size - pos));
    pos += name.size();
    const std::size_t data_len = std::min<std::uint64_t>(take(4), size - pos);
    const auto* bytes = reinterpret_cast<const std::byte*>(data + pos);
    pos += data_len;
    if (!names.insert(name).second) continue;
    try {
      writer.add_stored(name, std::span(bytes, data_len));
    } catch (const fxpack::FormatError&) {
      // a name the writer refuses: leave the record out
    }
  }
  return writer.finish();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fxpack::ImporterOptions options;
  options.check_requirements = false;  // also load what this build cannot run
  options.max_records = 1000;
  options.max_record_size = std::uint64_t{16} << 20;
  options.max_total_size = std::uint64_t{64} << 20;
  options.limits.max_nodes = 10'000;
  options.limits.max_string_length = 1u << 16;
  options.limits.max_tensor_bytes = 1u << 24;
  options.limits.max_items = 10'000;
  options.on_warning = [](const std::string&) {};
  std::vector<std::byte> bytes;
  if (size >= 4 && std::memcmp(data, "FXRC", 4) == 0) {
    bytes = zip_of_records(data, size);
  } else {
    const auto* b = reinterpret_cast<const std::byte*>(data);
    bytes.assign(b, b + size);
  }
  std::unique_ptr<fxpack::PackageImporter> importer;
  try {
    importer = std::make_unique<fxpack::PackageImporter>(std::move(bytes), options);
  } catch (const fxpack::FormatError&) {
    return 0;
  }
  (void)importer->format_description();
  (void)importer->file_structure();
  try {
    (void)importer->manifest();
  } catch (const fxpack::FormatError&) {
  }
  for (const auto& record : importer->records()) {
    try {
      (void)importer->record_info(record);
      importer->verify_record(record);
      (void)importer->read_record(record);
    } catch (const fxpack::FormatError&) {
    }
  }
  for (const auto& record : importer->pickles()) {
    const auto [package, resource] = fxpack::split_record_name(record);
    try {
      auto loaded = importer->load_pickle_with_report(package, resource);
      fxpack::fuzz::exercise(*loaded.module);
    } catch (const fxpack::Error&) {
      // FormatError for a bad archive; Error from record_name for a record name that is
      // not a package path (load_pickle only takes those).
    }
  }
  return 0;
}
