#include "fxpack/manifest.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <string_view>

#include "fxpack/errors.hpp"
#include "fxpack/graph_module.hpp"
#include "fxpack/ops.hpp"
#include "fxpack/pickle.hpp"
#include "fxpack/quote.hpp"

namespace fxpack {

namespace {

constexpr std::string_view kHeader = "fxpack.manifest 1";

// A version number as the exporter writes it: 1 to 9 decimal digits, no sign, no leading zero.
bool parse_version(std::string_view text, std::uint32_t& out) {
  if (text.empty() || text.size() > 9 || text[0] == '0') return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

Manifest Manifest::parse(std::string_view text) {
  Manifest m;
  std::size_t line_no = 0;
  for (std::size_t start = 0; start < text.size();) {
    const std::size_t nl = text.find('\n', start);
    ++line_no;
    const auto fail = [&](const std::string& what) {
      throw FormatError(".data/manifest line " + std::to_string(line_no) + ": " + what);
    };
    if (nl == std::string_view::npos) fail("the last line has no newline (truncated?)");
    const std::string_view line = text.substr(start, nl - start);
    start = nl + 1;
    if (line_no == 1) {
      if (line != kHeader) fail("expected '" + std::string(kHeader) + "', got " + quote(line, 64));
      continue;
    }
    const std::size_t sp = line.find(' ');
    if (sp == std::string_view::npos || sp + 1 == line.size()) fail("malformed entry " + quote(line, 64));
    const std::string_view kind = line.substr(0, sp);
    if (kind == "pickle") {
      const std::size_t last = line.rfind(' ');
      const std::string_view record = last > sp ? line.substr(sp + 1, last - sp - 1) : std::string_view();
      const std::string_view version = line.substr(last + 1);
      if (record.empty()) fail("pickle line " + quote(line, 64) + " needs a record and a format version");
      Pickle p;
      p.record = std::string(record);
      if (!parse_version(version, p.format_version)) {
        fail("pickle " + quote(record) + " has format version " + quote(version, 16) +
             ", which is not a version number");
      }
      m.pickles.push_back(std::move(p));
    } else if (kind == "function" || kind == "method" || kind == "module") {
      if (m.pickles.empty()) fail("entry " + quote(line, 64) + " comes before any 'pickle' line");
      m.pickles.back().items.emplace_back(line);
    } else {
      fail("unknown entry kind " + quote(kind, 32));
    }
  }
  if (line_no == 0) throw FormatError(".data/manifest is empty: expected '" + std::string(kHeader) + "'");
  return m;
}

std::string Manifest::to_string() const {
  std::string out(kHeader);
  out += '\n';
  const auto one_line = [](std::string_view text) {
    if (text.find('\n') != std::string_view::npos) {
      throw FormatError("cannot write " + quote(text) + " in a manifest: it holds a newline");
    }
  };
  for (const Pickle& p : pickles) {
    one_line(p.record);
    for (const std::string& item : p.items) one_line(item);
    out += "pickle " + p.record + " " + std::to_string(p.format_version) + "\n";
    for (const std::string& item : p.items) out += item + "\n";
  }
  return out;
}

const Manifest::Pickle* Manifest::find(std::string_view record) const noexcept {
  for (const Pickle& p : pickles)
    if (p.record == record) return &p;
  return nullptr;
}

std::vector<std::string> Manifest::unmet_requirements() const {
  std::vector<std::string> out;
  for (const Pickle& p : pickles) {
    if (p.format_version > pickle::kFormatVersion) {
      out.push_back("pickle format version " + std::to_string(p.format_version) + " (for " + quote(p.record) +
                    "; this build reads up to " + std::to_string(pickle::kFormatVersion) + ")");
    }
    for (const std::string& item : p.items)
      if (!provides(item)) out.push_back(quote(item) + " (for " + quote(p.record) + ")");
  }
  return out;
}

std::set<std::string> required_items(const GraphModule& gm) {
  // The distinct call targets first, so that an item's text is made once per distinct
  // target rather than once per node. Targets are interned by the graph: a node whose op
  // and target address are among the last few seen is skipped without hashing its target.
  std::vector<std::pair<Op, std::string_view>> distinct;
  std::set<std::pair<Op, std::string_view>> seen;
  std::array<std::pair<Op, const char*>, 8> recent{};
  std::size_t next = 0;
  for (const Node* n : gm.graph()) {
    const Op op = n->op();
    if (op != Op::CallFunction && op != Op::CallMethod && op != Op::CallModule) continue;
    const std::string_view target = n->target();
    const std::pair<Op, const char*> key{op, target.data()};
    if (std::find(recent.begin(), recent.end(), key) != recent.end()) continue;
    recent[next++ % recent.size()] = key;
    if (seen.emplace(op, target).second) distinct.emplace_back(op, target);
  }
  return required_items(gm, distinct);
}

std::set<std::string> required_items(const GraphModule& gm,
                                     std::span<const std::pair<Op, std::string_view>> call_targets) {
  std::set<std::string> out;
  for (const auto& [op, target] : call_targets) {
    switch (op) {
      case Op::CallFunction: out.insert("function " + std::string(target)); break;
      case Op::CallMethod: out.insert("method " + std::string(target)); break;
      case Op::CallModule: {
        std::string kind = "?";
        try {
          kind = gm.get_submodule(target)->kind();
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
  const std::size_t sp = item.find(' ');
  if (sp == std::string_view::npos) return false;
  const std::string_view kind = item.substr(0, sp);
  const std::string_view name = item.substr(sp + 1);
  if (kind == "function") return r.function(name) != nullptr;
  if (kind == "method") return r.method(name) != nullptr;
  if (kind == "module") return r.module_kind(name) != nullptr;
  return false;
}

}  // namespace fxpack
