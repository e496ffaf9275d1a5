// Record names of packages and the tree torch.package's file_structure() draws of them.
#include <map>
#include <set>

#include "fxpack/errors.hpp"
#include "fxpack/package.hpp"
#include "fxpack/quote.hpp"
#include "zip/zip_reader.hpp"

namespace fxpack {

std::string record_name(std::string_view package, std::string_view resource) {
  if (package.empty()) throw ValueError("package name is empty");
  if (resource.empty() || resource.find('/') != std::string_view::npos) {
    throw ValueError("resource name " + quote(resource) + " must be a plain file name");
  }
  std::string path;
  std::size_t start = 0;
  while (true) {
    const auto dot = package.find('.', start);
    const std::string_view part = package.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (part.empty() || part == "." || part == ".." || part.find('/') != std::string_view::npos) {
      throw ValueError("package name " + quote(package) + " is not a dotted name");
    }
    path += part;
    path += '/';
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  path += resource;  // never under .data/: a dotted name has no empty part
  zip::check_entry_name(path);
  return path;
}

std::pair<std::string, std::string> split_record_name(std::string_view record) {
  const auto slash = record.rfind('/');
  if (slash == std::string_view::npos) return {"", std::string(record)};
  std::string package(record.substr(0, slash));
  for (char& c : package) {
    if (c == '/') c = '.';
  }
  return {std::move(package), std::string(record.substr(slash + 1))};
}

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
    const bool last = ++i == d.dirs.size() && d.files.empty();
    stringify(sub, child, out, preserved, last ? "└── " : "├── ");
  }
  std::size_t j = 0;
  for (const auto& f : d.files) out += preserved + (++j == d.files.size() ? "└── " : "├── ") + f + "\n";
}

}  // namespace

std::string format_file_structure(std::string_view root, const std::vector<std::string>& records) {
  // Each level indents every line below it, so a name of thousands of folders would draw
  // (and recurse) quadratically: below this depth the rest of a name is drawn as one entry.
  constexpr int kMaxDepth = 32;
  Dir top;
  for (const auto& name : records) {
    Dir* d = &top;
    std::size_t start = 0;
    for (int depth = 1;; ++depth) {
      const auto slash = name.find('/', start);
      if (slash == std::string::npos || depth == kMaxDepth) {
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
