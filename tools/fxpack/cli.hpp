// The fxpack command: shared pieces (arguments, opening archives, output).
//
// The command uses only the public API (include/fxpack/): Archive to open any archive by
// content, PackageImporter to read records and the Manifest, write_file_atomic to write.
//
// Exit status of every subcommand: 0 success, 1 a problem was found or the command failed,
// 2 a usage error. Messages go to stderr as "fxpack <command>: <message>"; no stack dumps.
//
// Output that shows text from an archive or the command line cannot be forged by it: text
// lines are built with quote() for untrusted names inside sentences and every line passes
// through printable() before it is written (Lines), and JSON is written by rapidjson's
// writer from valid UTF-8 (json.hpp). Only `code` prints generated source as it is, because
// being byte-identical to PyTorch's is its point.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "fxpack/fxpack.hpp"

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

std::string read_whole_file(const std::string& path, std::uint64_t max_bytes = 1ull << 34);

// --- Archives ---------------------------------------------------------------------------

// How a subcommand opens an archive.
//   check_requirements: refuse a package whose manifest asks for what this build lacks (run);
//     the others open anything they can read and report what is missing.
//   mode: Map where weight pages are never read (inspect, code, graph, dot) or a mapped run
//     is what the user asked for (run); Copy where every byte is read anyway (verify,
//     convert), so that a file truncated meanwhile is an error, never SIGBUS.
// Warnings are not printed: they are in each LoadedPickle, for the command to show.
Archive open_archive(const std::string& path, bool check_requirements, LoadMode mode);

// The pickle record named by [PACKAGE RESOURCE] positionals (after the archive), defaulting
// to model/model.pkl, or the only pickle when the archive has exactly one.
std::string select_pickle(const Archive& a, const std::vector<std::string>& positional, std::size_t first);

// "<path>: <message>" with the path made printable.
std::string at_path(const Archive& a, const std::string& message);

// --- Output -----------------------------------------------------------------------------

// Text output, one line at a time; every line passes through printable().
class Lines {
 public:
  Lines& operator()(std::string_view line);
  const std::string& text() const noexcept { return text_; }

 private:
  std::string text_;
};

// --- Subcommands ------------------------------------------------------------------------

int cmd_inspect(const std::vector<std::string>& argv);
int cmd_code(const std::vector<std::string>& argv);
int cmd_graph(const std::vector<std::string>& argv);
int cmd_dot(const std::vector<std::string>& argv);
int cmd_run(const std::vector<std::string>& argv);
int cmd_verify(const std::vector<std::string>& argv);
int cmd_convert(const std::vector<std::string>& argv);

}  // namespace fxpack::cli
