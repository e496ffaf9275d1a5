// fxpack inspect, code, graph, dot: describing an archive and printing its graphs.
#include <algorithm>
#include <array>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "cli.hpp"
#include "json.hpp"

namespace fxpack::cli {

namespace {

constexpr const char* kInspectHelp = R"HELP(usage: fxpack inspect ARCHIVE [--json]

Describes an archive without running it: its format and version, the tree of records
(file_structure), and for every pickled module its class name, node counts by op, the
submodules with their classes, parameter and buffer counts and bytes, the ops it needs, and
whether this build can load and run it (missing ops are listed).

options:
  --json    one JSON object on stdout instead of text
  -h, --help
Exit status: 0 described, 1 the archive could not be read, 2 usage error.
)HELP";

constexpr const char* kCodeHelp = R"HELP(usage: fxpack code ARCHIVE [PACKAGE RESOURCE]

Prints the Python source torch.fx generates for the module's graph (GraphModule.code),
byte for byte. PACKAGE RESOURCE select the pickle (default: model model.pkl, or the only
pickle in the archive). Works for graphs whose ops this build cannot run.

options:
  -h, --help
)HELP";

constexpr const char* kGraphHelp = R"HELP(usage: fxpack graph ARCHIVE [PACKAGE RESOURCE]

Prints the module's graph as a table, like torch.fx's Graph.print_tabular(): one row per
node with its opcode, name, target, args and kwargs.

options:
  -h, --help
)HELP";

constexpr const char* kDotHelp = R"HELP(usage: fxpack dot ARCHIVE [PACKAGE RESOURCE]

Prints the module's graph in Graphviz DOT: one box per node coloured by op kind
(placeholder, get_attr, call_function, call_method, call_module, output), edges from
inputs to users, and the nodes of each submodule grouped in a cluster. Draw it with
  fxpack dot model.fxpkg | dot -Tsvg > model.svg

options:
  -h, --help
)HELP";

const char* const kOps[] = {"placeholder", "get_attr", "call_function", "call_method", "call_module", "output"};

struct TensorTotals {
  std::size_t count = 0;
  std::int64_t elements = 0;
  std::uint64_t bytes = 0;
  void add(const Tensor& t) {
    ++count;
    elements += t.numel();
    bytes += t.nbytes();
  }
};

// What inspect shows of one pickle.
struct PickleInfo {
  std::string record;
  std::string error;  // could not be loaded
  std::string class_name;
  std::string pickle_format;
  std::string dialect;  // whose torch.fx the generated code follows: "torch-1.13", "torch-2"
  std::size_t nodes = 0;
  std::map<std::string, std::size_t> by_op;
  std::vector<std::pair<std::string, std::string>> modules;  // path, "Kind(extra)"
  TensorTotals params, buffers;
  std::vector<std::string> requires_;
  std::vector<std::string> missing;
  std::vector<std::string> warnings;
};

// What inspect shows of the archive.
struct Description {
  std::string manifest_error;
  std::vector<PickleInfo> pickles;
  bool loadable() const {
    bool ok = !pickles.empty() && manifest_error.empty();
    for (const auto& i : pickles) ok = ok && i.error.empty() && i.missing.empty();
    return ok;
  }
  bool read_error() const {
    bool bad = !manifest_error.empty();
    for (const auto& i : pickles) bad = bad || !i.error.empty();
    return bad;
  }
};

std::string pickle_format_of(Archive& a, const std::string& record, const LoadedPickle& lp) {
  if (lp.report) return std::string(pickle::format_name(lp.report->format)) + " v" + std::to_string(lp.report->format_version);
  std::string format = "Python pickle";
  try {
    const auto head = a.package()->read_record(record);
    if (head.size() >= 2 && head[0] == std::byte{0x80}) format += " protocol " + std::to_string(std::to_integer<int>(head[1]));
  } catch (const Error&) {
  }
  return format;
}

PickleInfo describe(Archive& a, const Manifest* manifest, const std::string& record) {
  PickleInfo info;
  info.record = record.empty() ? "(pickle)" : record;
  std::set<std::string> req;
  if (manifest) {
    if (const Manifest::Pickle* p = manifest->find(record)) req.insert(p->items.begin(), p->items.end());
  }
  try {
    LoadedPickle lp = a.load(record);
    const GraphModule& gm = *lp.module;
    info.class_name = gm.class_name();
    info.pickle_format = pickle_format_of(a, record, lp);
    info.dialect = std::string(dialect_name(gm.graph().dialect()));
    for (const Node* n : gm.graph()) {
      ++info.nodes;
      ++info.by_op[std::string(op_name(n->op()))];
    }
    for (const auto& [path, m] : gm.named_modules())
      if (!path.empty()) info.modules.emplace_back(path, m->kind() + "(" + m->extra_repr() + ")");
    for (const auto& [n, t] : gm.named_parameters()) info.params.add(t);
    for (const auto& [n, t] : gm.named_buffers()) info.buffers.add(t);
    if (!manifest) req = required_items(gm);
    info.warnings = std::move(lp.warnings);
  } catch (const Error& e) {
    info.error = e.what();
  }
  info.requires_.assign(req.begin(), req.end());
  for (const auto& r : info.requires_)
    if (!provides(r)) info.missing.push_back(r);
  return info;
}

Description describe(Archive& a) {
  Description d;
  const Manifest* manifest = nullptr;
  if (a.kind() == ArchiveKind::FxpackPackage) {
    try {
      manifest = a.package()->manifest();
    } catch (const FormatError& e) {
      d.manifest_error = e.what();
    }
  }
  for (const auto& p : a.pickles()) d.pickles.push_back(describe(a, manifest, p));
  return d;
}

std::string kind_token(ArchiveKind k) {
  switch (k) {
    case ArchiveKind::FxpackPackage: return "fxpack-package";
    case ArchiveKind::TorchPackage: return "torch-package";
    case ArchiveKind::Pickle: return "fxpack-pickle";
  }
  return "?";
}

std::string totals_text(const TensorTotals& t) {
  return std::to_string(t.count) + " tensors, " + std::to_string(t.elements) + " elements, " + std::to_string(t.bytes) +
         " bytes";
}

void totals_json(Json& j, std::string_view name, const TensorTotals& t) {
  j.key(name).begin_object();
  j.field("tensors", std::uint64_t{t.count}).field("elements", std::int64_t{t.elements}).field("bytes", t.bytes);
  j.end_object();
}

std::string inspect_json(const Archive& a, const Description& d) {
  Json j;
  j.begin_object();
  j.field("archive", a.path().string()).field("kind", kind_token(a.kind())).field("format", a.format_description());
  j.field("fxpack_version", std::string(fxpack::version()));
  if (const PackageImporter* p = a.package()) {
    j.field("root", p->root());
    j.key("records").begin_array();
    for (const auto& r : p->records()) {
      const RecordInfo info = p->record_info(r);
      j.begin_object().field("name", r).field("size", info.size).field("stored", info.stored).end_object();
    }
    j.end_array();
    j.field("file_structure", p->file_structure());
  }
  if (!d.manifest_error.empty()) j.field("manifest_error", d.manifest_error);
  j.key("pickles").begin_array();
  for (const auto& i : d.pickles) {
    j.begin_object().field("record", i.record);
    if (!i.error.empty()) {
      j.field("error", i.error);
    } else {
      j.field("class_name", i.class_name).field("pickle_format", i.pickle_format).field("dialect", i.dialect);
      j.field("nodes", std::uint64_t{i.nodes});
      j.key("nodes_by_op").begin_object();
      for (const char* op : kOps)
        if (auto it = i.by_op.find(op); it != i.by_op.end()) j.field(op, std::uint64_t{it->second});
      j.end_object();
      j.key("modules").begin_array();
      for (const auto& [path, module] : i.modules) j.begin_object().field("path", path).field("module", module).end_object();
      j.end_array();
      totals_json(j, "parameters", i.params);
      totals_json(j, "buffers", i.buffers);
    }
    j.key("requires").begin_array();
    for (const auto& r : i.requires_) j.value(r);
    j.end_array().key("missing").begin_array();
    for (const auto& r : i.missing) j.value(r);
    j.end_array();
    if (!i.warnings.empty()) {
      j.key("warnings").begin_array();
      for (const auto& w : i.warnings) j.value(w);
      j.end_array();
    }
    j.field("loadable", i.error.empty() && i.missing.empty()).end_object();
  }
  j.end_array().field("loadable", d.loadable()).end_object();
  return j.text();
}

void inspect_pickle_text(Lines& out, const PickleInfo& i) {
  out("")("pickle " + i.record);
  if (!i.error.empty()) {
    out("  error: " + i.error);
  } else {
    out("  class: " + i.class_name)("  format: " + i.pickle_format)("  dialect: " + i.dialect);
    std::string nodes = "  nodes: " + std::to_string(i.nodes);
    std::string sep = " (";
    for (const char* op : kOps) {
      if (auto it = i.by_op.find(op); it != i.by_op.end()) {
        nodes += sep + op + " " + std::to_string(it->second);
        sep = ", ";
      }
    }
    out(nodes + (i.nodes ? ")" : ""));
    out("  parameters: " + totals_text(i.params))("  buffers: " + totals_text(i.buffers));
    out(std::string("  modules:") + (i.modules.empty() ? " none" : ""));
    std::size_t width = 0;
    for (const auto& m : i.modules) width = std::max(width, printable(m.first).size());
    for (const auto& [path, module] : i.modules)
      out("    " + printable(path) + std::string(width - printable(path).size() + 2, ' ') + module);
  }
  out(std::string("  requires:") + (i.requires_.empty() ? " nothing" : ""));
  for (const auto& r : i.requires_) out("    " + r + (provides(r) ? "" : "    MISSING"));
  for (const auto& w : i.warnings) out("  warning: " + w);
}

std::string inspect_text(const Archive& a, const Description& d) {
  Lines out;
  out("archive: " + a.path().string())("format: " + a.format_description());
  if (const PackageImporter* p = a.package()) {
    out("records: " + std::to_string(p->records().size()));
    std::istringstream tree(p->file_structure());
    for (std::string line; std::getline(tree, line);) out(line);
  }
  if (!d.manifest_error.empty()) out("manifest: unreadable: " + d.manifest_error);
  if (d.pickles.empty()) out("pickles: none");
  for (const auto& i : d.pickles) inspect_pickle_text(out, i);
  if (d.loadable()) {
    out("")("loadable by this build: yes");
  } else {
    std::vector<std::string> why;
    if (d.pickles.empty()) why.push_back("no pickled module");
    if (!d.manifest_error.empty()) why.push_back("unreadable manifest");
    for (const auto& i : d.pickles) {
      if (!i.error.empty()) why.push_back(i.record + " cannot be read");
      for (const auto& m : i.missing) why.push_back("missing " + m);
    }
    std::string line = "loadable by this build: no (";
    for (std::size_t k = 0; k < why.size(); ++k) line += (k ? "; " : "") + why[k];
    out("")(line + ")");
  }
  return out.text();
}

// The archive and the selected module, for code/graph/dot.
std::shared_ptr<GraphModule> module_from_args(const Args& args, const char* what) {
  if (args.positional.empty()) throw UsageError(std::string("missing ARCHIVE (the ") + what + " to show)");
  Archive a = open_archive(args.positional[0], false, LoadMode::Map);
  return a.load(select_pickle(a, args.positional, 1)).module;
}

// A DOT quoted string: printable text with backslashes and double quotes escaped, and
// newlines as DOT's \n.
std::string dot_quote(std::string_view s) {
  std::string out = "\"";
  for (std::size_t start = 0;;) {
    const std::size_t nl = s.find('\n', start);
    for (char c : printable(s.substr(start, nl == std::string_view::npos ? nl : nl - start))) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    if (nl == std::string_view::npos) break;
    out += "\\n";
    start = nl + 1;
  }
  return out + "\"";
}

// A node belongs to the module that owns it: call_module a.b.c -> a.b; get_attr a.b.weight -> a.b.
struct Cluster {
  std::map<std::string, Cluster> children;
  std::vector<const Node*> nodes;
};

Cluster clusters_of(const Graph& graph) {
  Cluster top;
  for (const Node* n : graph) {
    std::string owner;
    if (n->op() == Op::CallModule || n->op() == Op::GetAttr) {
      const auto dot = n->target().rfind('.');
      if (dot != std::string::npos) owner = n->target().substr(0, dot);
    }
    Cluster* c = &top;
    for (std::size_t start = 0; !owner.empty() && start <= owner.size();) {
      const auto d = owner.find('.', start);
      c = &c->children[owner.substr(0, d)];
      if (d == std::string::npos) break;
      start = d + 1;
    }
    c->nodes.push_back(n);
  }
  return top;
}

class DotWriter {
 public:
  explicit DotWriter(const GraphModule& gm) : gm_(gm) {}

  std::string write() {
    o_ << "digraph " << dot_quote(gm_.class_name()) << " {\n";
    o_ << "  rankdir=TB;\n";
    o_ << "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=10];\n";
    o_ << "  edge [fontname=\"Helvetica\", fontsize=9];\n";
    cluster(clusters_of(gm_.graph()), "  ");
    for (const Node* n : gm_.graph())
      for (const Node* in : n->input_nodes()) o_ << "  " << dot_quote(in->name()) << " -> " << dot_quote(n->name()) << ";\n";
    o_ << "}\n";
    return o_.str();
  }

 private:
  void node(const Node* n, const std::string& indent) {
    static const std::map<Op, const char*> colour = {
        {Op::Placeholder, "#a6cee3"}, {Op::GetAttr, "#d9d9d9"},    {Op::CallFunction, "#fdbf6f"},
        {Op::CallMethod, "#b2df8a"},  {Op::CallModule, "#fb9a99"}, {Op::Output, "#cab2d6"}};
    std::string label = n->name() + "\n" + std::string(op_name(n->op()));
    if (n->op() != Op::Placeholder && n->op() != Op::Output) label += "\n" + n->target();
    try {
      if (n->op() == Op::CallModule) {
        const auto m = gm_.get_submodule(n->target());
        label += "\n" + m->kind() + "(" + m->extra_repr() + ")";
      }
      if (n->op() == Op::GetAttr) {
        const Tensor& t = gm_.get_tensor(n->target());
        label += "\n" + std::string(dtype_name(t.dtype())) + t.shape().to_string();
      }
    } catch (const Error&) {
      // a dangling target: the box shows what the node says; `verify` reports it
    }
    o_ << indent << dot_quote(n->name()) << " [label=" << dot_quote(label) << ", fillcolor=\"" << colour.at(n->op())
       << "\"];\n";
  }

  void cluster(const Cluster& c, const std::string& indent) {
    for (const auto& [path, child] : c.children) {
      std::string kind;
      try {
        kind = gm_.get_submodule(path)->kind();
      } catch (const Error&) {
      }
      o_ << indent << "subgraph cluster_" << next_cluster_++ << " {\n";
      o_ << indent << "  label=" << dot_quote(path + (kind.empty() ? "" : " (" + kind + ")"))
         << "; style=\"rounded,dashed\"; fontname=\"Helvetica\"; fontsize=10;\n";
      cluster(child, indent + "  ");
      o_ << indent << "}\n";
    }
    for (const Node* n : c.nodes) node(n, indent);
  }

  const GraphModule& gm_;
  std::ostringstream o_;
  std::size_t next_cluster_ = 0;
};

}  // namespace

int cmd_inspect(const std::vector<std::string>& argv) {
  Args args = parse_args(argv, {{"--json", false}});
  if (args.help) {
    std::cout << kInspectHelp;
    return 0;
  }
  if (args.positional.empty()) throw UsageError("missing ARCHIVE");
  if (args.positional.size() > 1) throw UsageError("unexpected argument " + quote(args.positional[1]));
  Archive a = open_archive(args.positional[0], false, LoadMode::Map);
  const Description d = describe(a);
  std::cout << (args.has("--json") ? inspect_json(a, d) : inspect_text(a, d));
  return d.read_error() ? 1 : 0;
}

int cmd_code(const std::vector<std::string>& argv) {
  Args args = parse_args(argv, {});
  if (args.help) {
    std::cout << kCodeHelp;
    return 0;
  }
  auto gm = module_from_args(args, "archive");
  std::cout << python_code(gm->graph());
  return 0;
}

int cmd_graph(const std::vector<std::string>& argv) {
  Args args = parse_args(argv, {});
  if (args.help) {
    std::cout << kGraphHelp;
    return 0;
  }
  auto gm = module_from_args(args, "archive");
  // tabulate's "simple" format, as print_tabular uses; cells made printable before measuring.
  std::vector<std::array<std::string, 5>> rows;
  rows.push_back({"opcode", "name", "target", "args", "kwargs"});
  for (const Node* n : gm->graph()) {
    rows.push_back({std::string(op_name(n->op())), printable(n->name()), printable(n->target()),
                    printable(python_repr(Tuple{{n->args().begin(), n->args().end()}})), printable(python_repr(n->kwargs()))});
  }
  std::array<std::size_t, 5> width{};
  for (const auto& r : rows)
    for (std::size_t c = 0; c < 5; ++c) width[c] = std::max(width[c], r[c].size());
  Lines out;
  const auto line = [&](const std::array<std::string, 5>& r) {
    std::string s;
    for (std::size_t c = 0; c < 5; ++c) {
      s += r[c];
      if (c + 1 < 5) s += std::string(width[c] - r[c].size() + 2, ' ');
    }
    out(s);
  };
  line(rows[0]);
  std::array<std::string, 5> dashes;
  for (std::size_t c = 0; c < 5; ++c) dashes[c] = std::string(width[c], '-');
  line(dashes);
  for (std::size_t i = 1; i < rows.size(); ++i) line(rows[i]);
  std::cout << out.text();
  return 0;
}

int cmd_dot(const std::vector<std::string>& argv) {
  Args args = parse_args(argv, {});
  if (args.help) {
    std::cout << kDotHelp;
    return 0;
  }
  auto gm = module_from_args(args, "archive");
  std::cout << DotWriter(*gm).write();
  return 0;
}

}  // namespace fxpack::cli
