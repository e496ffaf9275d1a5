// Command-line arguments and reading input files, for the fxpack command.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "cli.hpp"

namespace fxpack::cli {

std::optional<std::string> Args::value(const std::string& flag) const {
  auto it = values.find(flag);
  if (it == values.end() || it->second.empty()) return std::nullopt;
  return it->second.back();
}

const std::vector<std::string>& Args::all(const std::string& flag) const {
  static const std::vector<std::string> none;
  auto it = values.find(flag);
  return it == values.end() ? none : it->second;
}

Args parse_args(const std::vector<std::string>& argv, const std::vector<FlagSpec>& flags) {
  Args a;
  bool only_positional = false;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    const std::string& s = argv[i];
    if (only_positional || s.size() < 2 || s[0] != '-') {
      a.positional.push_back(s);
      continue;
    }
    if (s == "--") {
      only_positional = true;
      continue;
    }
    if (s == "-h" || s == "--help") {
      a.help = true;
      continue;
    }
    std::string name = s, inline_value;
    bool has_inline = false;
    if (auto eq = s.find('='); s.starts_with("--") && eq != std::string::npos) {
      name = s.substr(0, eq);
      inline_value = s.substr(eq + 1);
      has_inline = true;
    }
    auto spec = std::find_if(flags.begin(), flags.end(), [&](const FlagSpec& f) { return f.name == name; });
    if (spec == flags.end()) throw UsageError("unknown option " + quote(name));
    if (a.has(name) && !spec->repeatable) throw UsageError("option " + quote(name) + " given twice");
    auto& slot = a.values[name];
    if (!spec->takes_value) {
      if (has_inline) throw UsageError("option " + quote(name) + " takes no value");
      continue;
    }
    if (has_inline) {
      slot.push_back(inline_value);
    } else {
      if (i + 1 >= argv.size()) throw UsageError("option " + quote(name) + " needs a value");
      slot.push_back(argv[++i]);
    }
  }
  return a;
}

std::string read_whole_file(const std::string& path, std::uint64_t max_bytes) {
  const std::string where = printable(path) + ": ";
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw IoError(where + "is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(where + "cannot open (" + std::string(std::strerror(errno)) + ")");
  in.seekg(0, std::ios::end);
  const auto size = static_cast<std::uint64_t>(in.tellg());
  if (size > max_bytes) {
    throw IoError(where + std::to_string(size) + " bytes, more than the limit of " + std::to_string(max_bytes));
  }
  in.seekg(0);
  std::string bytes(size, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(size));
  if (!in) throw IoError(where + "read failed");
  return bytes;
}

Lines& Lines::operator()(std::string_view line) {
  text_ += printable(line);
  text_ += '\n';
  return *this;
}

}  // namespace fxpack::cli
