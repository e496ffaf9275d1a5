// The fxpack command: shared pieces (argument parsing, opening archives, JSON output).
//
// Exit status of every subcommand: 0 success, 1 a problem was found or the command failed,
// 2 a usage error. Messages go to stderr as "fxpack <command>: <message>"; no stack dumps.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "fxpack/fxpack.hpp"
#include "zip/zip_reader.hpp"

namespace fxpack::cli {

// A wrong command line: reported with a hint to --help, exit status 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// --- Arguments -------------------------------------------------------------------------

struct FlagSpec {
  std::string name;       // "--json"
  bool takes_value;       // "--output FILE"
  bool repeatable = false;
};

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::vector<std::string>> values;  // flag -> values (empty for switches)
  bool help = false;

  bool has(const std::string& flag) const { return values.count(flag) != 0; }
  std::optional<std::string> value(const std::string& flag) const;
  const std::vector<std::string>& all(const std::string& flag) const;
};

// Parses argv after the subcommand; unknown flags, missing values and repeated
// non-repeatable flags are UsageErrors. "--" ends the flags; "-h"/"--help" set help.
Args parse_args(const std::vector<std::string>& argv, const std::vector<FlagSpec>& flags);

// --- Archives ---------------------------------------------------------------------------

enum class ArchiveKind { FxpackPackage, TorchPackage, Pickle };

struct ManifestEntry {
  std::string pickle;  // record path below the root
  std::string version;
  std::vector<std::string> items;  // "function torch.relu", ...
};

struct Archive {
  std::string path;
  ArchiveKind kind = ArchiveKind::Pickle;
  std::optional<zip::ZipReader> zip;  // packages
  std::string root;                   // packages
  std::string version;                // fxpack: "1"; torch: .data/version contents
  std::vector<std::string> records;   // below the root, sorted
  std::vector<std::string> pickles;   // records holding pickled GraphModules
  std::string pickle_bytes;           // bare pickles
  // fxpack packages: the manifest as written (empty when it could not be parsed).
  std::vector<ManifestEntry> manifest;
  std::string manifest_error;

  std::string format_description() const;
  std::string full(const std::string& record) const { return root + "/" + record; }
  // The bytes of a record (CRC checked).
  std::string read(const std::string& record) const;
  const zip::EntryInfo* entry(const std::string& record) const;
};

// Opens and recognises an archive; throws fxpack::Error if it cannot be read at all.
Archive open_archive(const std::string& path);

// "my/pkg/model.pkl" -> {"my.pkg", "model.pkl"}.
std::pair<std::string, std::string> split_record(const std::string& record);

// The pickle record named by [PACKAGE RESOURCE] positionals (after the archive), defaulting
// to model/model.pkl, or the only pickle when the archive has exactly one.
std::string select_pickle(const Archive& a, const std::vector<std::string>& positional, std::size_t first);

struct LoadedModule {
  std::shared_ptr<GraphModule> gm;
  std::optional<pickle::LoadReport> report;  // fxpack pickles
  std::vector<std::string> warnings;
};

// Loads a pickle as data: unregistered targets are fine (for printing), storages are CRC
// checked. For torch packages this is PackageImporter::load_pickle.
LoadedModule load_module(const Archive& a, const std::string& record);

// What a graph needs from the registry: "function <target>", "method <name>", "module <kind>".

// --- Output -----------------------------------------------------------------------------

std::string json_str(std::string_view s);

// Writes `bytes` to `path` through a temporary file renamed into place.
void write_file_atomic(const std::string& path, std::string_view bytes);
std::string read_whole_file(const std::string& path, std::uint64_t max_bytes = 1ull << 34);

// --- Subcommands ------------------------------------------------------------------------

int cmd_inspect(const std::vector<std::string>& argv);
int cmd_code(const std::vector<std::string>& argv);
int cmd_graph(const std::vector<std::string>& argv);
int cmd_dot(const std::vector<std::string>& argv);
int cmd_run(const std::vector<std::string>& argv);
int cmd_verify(const std::vector<std::string>& argv);
int cmd_convert(const std::vector<std::string>& argv);

}  // namespace fxpack::cli
