// Opening archives for the fxpack command: fxpack packages, torch.package archives and bare
// fxpack pickles, recognised by content.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <unordered_map>

#include "cli.hpp"
#include "interop/torch_package.hpp"

namespace fxpack::cli {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------
// Arguments

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
    if (spec == flags.end()) throw UsageError("unknown option '" + name + "'");
    if (a.has(name) && !spec->repeatable) throw UsageError("option '" + name + "' given twice");
    auto& slot = a.values[name];
    if (!spec->takes_value) {
      if (has_inline) throw UsageError("option '" + name + "' takes no value");
      continue;
    }
    if (has_inline) {
      slot.push_back(inline_value);
    } else {
      if (i + 1 >= argv.size()) throw UsageError("option '" + name + "' needs a value");
      slot.push_back(argv[++i]);
    }
  }
  return a;
}

// ---------------------------------------------------------------------------------------
// Files

std::string read_whole_file(const std::string& path, std::uint64_t max_bytes) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw IoError(path + ": is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(path + ": cannot open (" + std::string(std::strerror(errno)) + ")");
  in.seekg(0, std::ios::end);
  auto size = static_cast<std::uint64_t>(in.tellg());
  if (size > max_bytes)
    throw IoError(path + ": " + std::to_string(size) + " bytes, more than the limit of " + std::to_string(max_bytes));
  in.seekg(0);
  std::string bytes(size, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(size));
  if (!in) throw IoError(path + ": read failed");
  return bytes;
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  fs::path target(path);
  fs::path tmp = target;
  tmp += ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw IoError(path + ": cannot write (" + std::string(std::strerror(errno)) + ")");
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      std::error_code ec;
      fs::remove(tmp, ec);
      throw IoError(path + ": write failed");
    }
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw IoError(path + ": cannot rename the temporary file into place");
  }
}

std::string json_str(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

// ---------------------------------------------------------------------------------------
// Archives

std::string Archive::format_description() const {
  switch (kind) {
    case ArchiveKind::FxpackPackage: return "fxpack package v" + version;
    case ArchiveKind::TorchPackage: return "torch.package (.data/version " + version + ")";
    case ArchiveKind::Pickle: {
      try {
        pickle::PickleHeader h = pickle::read_header(pickle_bytes);
        return "fxpack pickle, " + std::string(pickle::format_name(h.format)) + " v" + std::to_string(h.version);
      } catch (const Error&) {
        return "fxpack pickle, ? v?";
      }
    }
  }
  return "?";
}

const zip::EntryInfo* Archive::entry(const std::string& record) const {
  return zip ? zip->find(full(record)) : nullptr;
}

std::string Archive::read(const std::string& record) const {
  auto bytes = zip->read(full(record));
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

std::pair<std::string, std::string> split_record(const std::string& record) {
  auto slash = record.rfind('/');
  if (slash == std::string::npos) return {"", record};
  std::string p = record.substr(0, slash);
  std::replace(p.begin(), p.end(), '/', '.');
  return {p, record.substr(slash + 1)};
}

namespace {

// The first bytes of a record without reading (or CRC-checking) all of it.
std::string peek(const zip::ZipReader& z, const zip::EntryInfo& e, std::size_t n) {
  if (e.method == zip::Method::store) {
    auto v = z.view(e.name);
    n = std::min(n, v.bytes.size());
    return std::string(reinterpret_cast<const char*>(v.bytes.data()), n);
  }
  try {
    auto b = z.read(e.name);
    return std::string(reinterpret_cast<const char*>(b.data()), std::min(n, b.size()));
  } catch (const Error&) {
    return {};
  }
}

void parse_manifest(Archive& a) {
  if (!a.entry(".data/manifest")) {
    a.manifest_error = "package has no .data/manifest record";
    return;
  }
  std::string text;
  try {
    text = a.read(".data/manifest");
  } catch (const Error& e) {
    a.manifest_error = e.what();
    return;
  }
  std::size_t start = 0, line_no = 0;
  while (start < text.size()) {
    auto nl = text.find('\n', start);
    if (nl == std::string::npos) {
      a.manifest_error = ".data/manifest: the last line has no newline (truncated?)";
      break;
    }
    std::string line = text.substr(start, nl - start);
    start = nl + 1;
    ++line_no;
    std::string where = ".data/manifest line " + std::to_string(line_no) + ": ";
    if (line_no == 1) {
      if (line != "fxpack.manifest 1") {
        a.manifest_error = where + "expected 'fxpack.manifest 1', got '" + line.substr(0, 64) + "'";
        break;
      }
      continue;
    }
    auto sp = line.find(' ');
    std::string kind = line.substr(0, sp);
    if (sp == std::string::npos || sp + 1 >= line.size()) {
      a.manifest_error = where + "malformed entry '" + line.substr(0, 64) + "'";
      break;
    }
    if (kind == "pickle") {
      auto sp2 = line.rfind(' ');
      if (sp2 == sp) {
        a.manifest_error = where + "malformed entry '" + line.substr(0, 64) + "'";
        break;
      }
      a.manifest.push_back({line.substr(sp + 1, sp2 - sp - 1), line.substr(sp2 + 1), {}});
    } else if (kind == "function" || kind == "method" || kind == "module") {
      if (a.manifest.empty()) {
        a.manifest_error = where + "entry before any 'pickle' line";
        break;
      }
      a.manifest.back().items.push_back(line);
    } else {
      a.manifest_error = where + "unknown entry kind '" + kind.substr(0, 32) + "'";
      break;
    }
  }
  if (!a.manifest_error.empty()) a.manifest.clear();
}

}  // namespace

Archive open_archive(const std::string& path) {
  Archive a;
  a.path = path;
  std::string head;
  {
    std::error_code ec;
    if (fs::is_directory(path, ec)) throw IoError(path + ": is a directory");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw IoError(path + ": cannot open (" + std::string(std::strerror(errno)) + ")");
    head.resize(16);
    in.read(head.data(), 16);
    head.resize(static_cast<std::size_t>(in.gcount()));
  }
  if (head.starts_with("fxpack.pickle ")) {
    a.kind = ArchiveKind::Pickle;
    a.pickle_bytes = read_whole_file(path);
    a.pickles = {""};
    return a;
  }
  if (!head.starts_with("PK")) {
    if (head.empty()) throw FormatError(path + ": the file is empty");
    throw FormatError(path + ": not an fxpack package, torch.package archive or fxpack pickle");
  }
  a.zip.emplace(zip::ZipReader::open(path));
  const auto& entries = a.zip->entries();
  if (entries.empty()) throw FormatError(path + ": the archive has no records");
  auto slash = entries.front().name.find('/');
  if (slash == std::string::npos || slash == 0)
    throw FormatError(path + ": record '" + entries.front().name + "' is not inside a root folder");
  a.root = entries.front().name.substr(0, slash);
  for (const auto& e : entries) {
    if (!e.name.starts_with(a.root + "/") || e.name.size() == a.root.size() + 1)
      throw FormatError(path + ": record '" + e.name + "' is outside the root folder '" + a.root + "'");
    a.records.push_back(e.name.substr(a.root.size() + 1));
  }
  std::sort(a.records.begin(), a.records.end());
  if (interop::is_torch_package(*a.zip)) {
    a.kind = ArchiveKind::TorchPackage;
    try {
      a.version = a.read(".data/version");
      while (!a.version.empty() && (a.version.back() == '\n' || a.version.back() == '\r')) a.version.pop_back();
      if (a.version.size() > 32) a.version = a.version.substr(0, 32) + "...";
    } catch (const Error&) {
      a.version = "?";
    }
    for (const auto& r : a.records) {
      if (r.starts_with(".data/") || r.starts_with("fx-generated/")) continue;
      const auto* e = a.entry(r);
      std::string p = peek(*a.zip, *e, 1);
      if (r.ends_with(".pkl") || (!p.empty() && p[0] == '\x80')) a.pickles.push_back(r);
    }
    return a;
  }
  a.kind = ArchiveKind::FxpackPackage;
  if (!a.entry(".data/version"))
    throw FormatError(path + ": package has no " + a.root + "/.data/version record: not an fxpack package");
  std::string version = a.read(".data/version");
  if (!version.starts_with("fxpack.package ") || !version.ends_with("\n") || version.size() > 64)
    throw FormatError(path + ": record " + a.root + "/.data/version does not name an fxpack package: '" +
                      version.substr(0, std::min<std::size_t>(version.find('\n'), 64)) + "'");
  a.version = version.substr(15, version.size() - 16);
  if (a.version != "1")
    throw FormatError(path + ": package format 'fxpack.package " + a.version +
                      "' is not supported by this build, which reads 'fxpack.package 1'");
  parse_manifest(a);
  for (const auto& r : a.records) {
    if (r.starts_with(".data/")) continue;
    const auto* e = a.entry(r);
    if (peek(*a.zip, *e, 14) == "fxpack.pickle ") a.pickles.push_back(r);
  }
  return a;
}

std::string select_pickle(const Archive& a, const std::vector<std::string>& positional, std::size_t first) {
  if (a.kind == ArchiveKind::Pickle) {
    if (positional.size() > first) throw UsageError("a bare pickle has no PACKAGE RESOURCE to select");
    return "";
  }
  if (positional.size() == first + 1) throw UsageError("give both PACKAGE and RESOURCE, or neither");
  if (positional.size() > first + 2) throw UsageError("unexpected argument '" + positional[first + 2] + "'");
  if (positional.size() == first + 2) {
    std::string r = record_name(positional[first], positional[first + 1]);
    if (!a.entry(r)) throw Error(a.path + ": no record '" + r + "' (package '" + positional[first] + "', resource '" +
                                 positional[first + 1] + "')");
    return r;
  }
  if (std::find(a.pickles.begin(), a.pickles.end(), "model/model.pkl") != a.pickles.end()) return "model/model.pkl";
  if (a.pickles.size() == 1) return a.pickles.front();
  if (a.pickles.empty()) throw Error(a.path + ": the archive holds no pickled module");
  std::string list;
  for (const auto& p : a.pickles) list += (list.empty() ? "" : ", ") + p;
  throw Error(a.path + ": the archive holds several pickles (" + list + "); name one as PACKAGE RESOURCE");
}

LoadedModule load_module(const Archive& a, const std::string& record) {
  LoadedModule out;
  if (a.kind == ArchiveKind::TorchPackage) {
    auto [package, resource] = split_record(record);
    out.gm = interop::load_torch_package(*a.zip, package, resource);
    return out;
  }
  pickle::LoadOptions options;
  auto warnings = std::make_shared<std::vector<std::string>>();
  options.on_warning = [warnings](const std::string& w) { warnings->push_back(w); };
  std::string bytes;
  if (a.kind == ArchiveKind::Pickle) {
    bytes = a.pickle_bytes;
  } else {
    bytes = a.read(record);
    auto cache = std::make_shared<std::unordered_map<std::string, std::shared_ptr<Storage>>>();
    const Archive* ap = &a;
    options.storage_source = [ap, cache](const std::string& key, std::uint64_t nbytes) {
      if (auto it = cache->find(key); it != cache->end()) return it->second;
      if (!key.starts_with(".data/storages/")) throw FormatError("storage key '" + key.substr(0, 64) + "' is not a storage record");
      const zip::EntryInfo* e = ap->entry(key);
      if (!e) throw FormatError("storage record '" + ap->full(key) + "' is missing");
      if (e->uncompressed_size != nbytes)
        throw FormatError("storage record '" + ap->full(key) + "' has " + std::to_string(e->uncompressed_size) +
                          " bytes, the pickle expects " + std::to_string(nbytes));
      auto data = ap->zip->read(ap->full(key));  // CRC checked
      auto s = Storage::allocate(data.size());
      std::copy(data.begin(), data.end(), s->data());
      cache->emplace(key, s);
      return s;
    };
  }
  try {
    auto loaded = pickle::loads_with_report(bytes, options);
    out.gm = loaded.module;
    out.report = std::move(loaded.report);
  } catch (const FormatError& e) {
    if (record.empty()) throw;
    throw FormatError("record '" + record + "': " + e.what());
  }
  out.warnings = *warnings;
  return out;
}

}  // namespace fxpack::cli
