// fxpack inspect, code, graph, dot: describing an archive and printing its graphs.
#include <algorithm>
#include <iostream>
#include <map>
#include <sstream>

#include "cli.hpp"

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

std::string totals_text(const TensorTotals& t) {
  return std::to_string(t.count) + " tensors, " + std::to_string(t.elements) + " elements, " +
         std::to_string(t.bytes) + " bytes";
}
std::string totals_json(const TensorTotals& t) {
  return "{\"tensors\": " + std::to_string(t.count) + ", \"elements\": " + std::to_string(t.elements) +
         ", \"bytes\": " + std::to_string(t.bytes) + "}";
}

struct PickleInfo {
  std::string record;
  std::string error;  // could not be loaded
  std::string class_name;
  std::string pickle_format;
  std::size_t nodes = 0;
  std::map<std::string, std::size_t> by_op;  // in Op order via op_rank
  std::vector<std::pair<std::string, std::string>> modules;  // path, "Kind(extra)"
  TensorTotals params, buffers;
  std::vector<std::string> requires_;
  std::vector<std::string> missing;
  std::vector<std::string> warnings;
};

const char* kOps[] = {"placeholder", "get_attr", "call_function", "call_method", "call_module", "output"};

PickleInfo describe(const Archive& a, const std::string& record) {
  PickleInfo info;
  info.record = record.empty() ? "(pickle)" : record;
  LoadedModule lm;
  try {
    lm = load_module(a, record);
  } catch (const Error& e) {
    info.error = e.what();
  }
  std::set<std::string> req;
  if (a.kind == ArchiveKind::FxpackPackage && a.manifest_error.empty()) {
    for (const auto& m : a.manifest)
      if (m.pickle == record) req.insert(m.items.begin(), m.items.end());
  }
  if (lm.gm) {
    const GraphModule& gm = *lm.gm;
    info.class_name = gm.class_name();
    if (lm.report) info.pickle_format = std::string(pickle::format_name(lm.report->format)) + " v" +
                                        std::to_string(lm.report->format_version);
    else {
      info.pickle_format = "Python pickle";
      try {
        std::string head = a.read(record).substr(0, 2);
        if (head.size() == 2 && head[0] == '\x80') info.pickle_format += " protocol " + std::to_string(static_cast<int>(head[1]));
      } catch (const Error&) {
      }
    }
    for (const Node* n : gm.graph()) {
      ++info.nodes;
      ++info.by_op[std::string(op_name(n->op()))];
    }
    for (const auto& [path, m] : gm.named_modules()) {
      if (path.empty()) continue;
      std::string extra = m->extra_repr();
      info.modules.emplace_back(path, m->kind() + "(" + extra + ")");
    }
    for (const auto& [n, t] : gm.named_parameters()) info.params.add(t);
    for (const auto& [n, t] : gm.named_buffers()) info.buffers.add(t);
    if (a.kind != ArchiveKind::FxpackPackage || !a.manifest_error.empty()) req = required_items(gm);
    info.warnings = lm.warnings;
  }
  info.requires_.assign(req.begin(), req.end());
  for (const auto& r : info.requires_)
    if (!provides(r)) info.missing.push_back(r);
  return info;
}

std::string file_tree(const Archive& a) { return format_file_structure(a.root, a.records); }

std::string kind_token(ArchiveKind k) {
  switch (k) {
    case ArchiveKind::FxpackPackage: return "fxpack-package";
    case ArchiveKind::TorchPackage: return "torch-package";
    case ArchiveKind::Pickle: return "fxpack-pickle";
  }
  return "?";
}

// The archive and the selected module, for code/graph/dot.
std::shared_ptr<GraphModule> module_from_args(const Args& args, const char* what) {
  if (args.positional.empty()) throw UsageError(std::string("missing ARCHIVE (the ") + what + " to show)");
  Archive a = open_archive(args.positional[0]);
  std::string record = select_pickle(a, args.positional, 1);
  return load_module(a, record).gm;
}

std::string dot_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace

int cmd_inspect(const std::vector<std::string>& argv) {
  Args args = parse_args(argv, {{"--json", false}});
  if (args.help) {
    std::cout << kInspectHelp;
    return 0;
  }
  if (args.positional.empty()) throw UsageError("missing ARCHIVE");
  if (args.positional.size() > 1) throw UsageError("unexpected argument '" + args.positional[1] + "'");
  Archive a = open_archive(args.positional[0]);
  std::vector<PickleInfo> infos;
  for (const auto& p : a.pickles) infos.push_back(describe(a, p));
  bool loadable = !infos.empty() && a.manifest_error.empty();
  for (const auto& i : infos) loadable = loadable && i.error.empty() && i.missing.empty();
  bool read_error = !a.manifest_error.empty();
  for (const auto& i : infos) read_error = read_error || !i.error.empty();

  std::ostringstream o;
  if (args.has("--json")) {
    o << "{\n  \"archive\": " << json_str(a.path) << ",\n  \"kind\": " << json_str(kind_token(a.kind))
      << ",\n  \"format\": " << json_str(a.format_description());
    if (a.zip) {
      o << ",\n  \"root\": " << json_str(a.root) << ",\n  \"records\": [";
      for (std::size_t i = 0; i < a.records.size(); ++i) {
        const auto* e = a.entry(a.records[i]);
        o << (i ? "," : "") << "\n    {\"name\": " << json_str(a.records[i]) << ", \"size\": " << e->uncompressed_size
          << ", \"stored\": " << (e->method == zip::Method::store ? "true" : "false") << "}";
      }
      o << "\n  ],\n  \"file_structure\": " << json_str(file_tree(a));
    }
    if (!a.manifest_error.empty()) o << ",\n  \"manifest_error\": " << json_str(a.manifest_error);
    o << ",\n  \"pickles\": [";
    for (std::size_t k = 0; k < infos.size(); ++k) {
      const auto& i = infos[k];
      o << (k ? "," : "") << "\n    {\n      \"record\": " << json_str(i.record);
      if (!i.error.empty()) o << ",\n      \"error\": " << json_str(i.error);
      if (i.error.empty()) {
        o << ",\n      \"class_name\": " << json_str(i.class_name) << ",\n      \"pickle_format\": "
          << json_str(i.pickle_format) << ",\n      \"nodes\": " << i.nodes << ",\n      \"nodes_by_op\": {";
        bool first = true;
        for (const char* op : kOps) {
          auto it = i.by_op.find(op);
          if (it == i.by_op.end()) continue;
          o << (first ? "" : ", ") << json_str(op) << ": " << it->second;
          first = false;
        }
        o << "},\n      \"modules\": [";
        for (std::size_t m = 0; m < i.modules.size(); ++m)
          o << (m ? ", " : "") << "{\"path\": " << json_str(i.modules[m].first)
            << ", \"module\": " << json_str(i.modules[m].second) << "}";
        o << "],\n      \"parameters\": " << totals_json(i.params) << ",\n      \"buffers\": " << totals_json(i.buffers);
      }
      o << ",\n      \"requires\": [";
      for (std::size_t r = 0; r < i.requires_.size(); ++r) o << (r ? ", " : "") << json_str(i.requires_[r]);
      o << "],\n      \"missing\": [";
      for (std::size_t r = 0; r < i.missing.size(); ++r) o << (r ? ", " : "") << json_str(i.missing[r]);
      o << "],\n      \"loadable\": " << (i.error.empty() && i.missing.empty() ? "true" : "false") << "\n    }";
    }
    o << "\n  ],\n  \"loadable\": " << (loadable ? "true" : "false") << "\n}\n";
    std::cout << o.str();
    return read_error ? 1 : 0;
  }

  o << "archive: " << a.path << "\n";
  o << "format: " << a.format_description() << "\n";
  if (a.zip) {
    o << "records: " << a.records.size() << "\n" << file_tree(a);
  }
  if (!a.manifest_error.empty()) o << "manifest: unreadable: " << a.manifest_error << "\n";
  if (infos.empty()) o << "pickles: none\n";
  for (const auto& i : infos) {
    o << "\npickle " << i.record << "\n";
    if (!i.error.empty()) {
      o << "  error: " << i.error << "\n";
    } else {
      o << "  class: " << i.class_name << "\n";
      o << "  format: " << i.pickle_format << "\n";
      o << "  nodes: " << i.nodes;
      std::string sep = " (";
      for (const char* op : kOps) {
        auto it = i.by_op.find(op);
        if (it == i.by_op.end()) continue;
        o << sep << op << " " << it->second;
        sep = ", ";
      }
      o << (i.nodes ? ")" : "") << "\n";
      o << "  parameters: " << totals_text(i.params) << "\n";
      o << "  buffers: " << totals_text(i.buffers) << "\n";
      o << "  modules:" << (i.modules.empty() ? " none" : "") << "\n";
      std::size_t width = 0;
      for (const auto& m : i.modules) width = std::max(width, m.first.size());
      for (const auto& m : i.modules)
        o << "    " << m.first << std::string(width - m.first.size() + 2, ' ') << m.second << "\n";
    }
    o << "  requires:" << (i.requires_.empty() ? " nothing" : "") << "\n";
    for (const auto& r : i.requires_) o << "    " << r << (provides(r) ? "" : "    MISSING") << "\n";
    for (const auto& w : i.warnings) o << "  warning: " << w << "\n";
  }
  o << "\nloadable by this build: ";
  if (loadable) {
    o << "yes\n";
  } else {
    std::vector<std::string> why;
    if (infos.empty()) why.push_back("no pickled module");
    if (!a.manifest_error.empty()) why.push_back("unreadable manifest");
    for (const auto& i : infos) {
      if (!i.error.empty()) why.push_back(i.record + " cannot be read");
      for (const auto& m : i.missing) why.push_back("missing " + m);
    }
    o << "no (";
    for (std::size_t k = 0; k < why.size(); ++k) o << (k ? "; " : "") << why[k];
    o << ")\n";
  }
  std::cout << o.str();
  return read_error ? 1 : 0;
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
  // tabulate's "simple" format, as print_tabular uses.
  std::vector<std::array<std::string, 5>> rows;
  rows.push_back({"opcode", "name", "target", "args", "kwargs"});
  for (const Node* n : gm->graph()) {
    rows.push_back({std::string(op_name(n->op())), n->name(), n->target(), python_repr(Tuple{n->args()}),
                    python_repr(n->kwargs())});
  }
  std::array<std::size_t, 5> width{};
  for (const auto& r : rows)
    for (std::size_t c = 0; c < 5; ++c) width[c] = std::max(width[c], r[c].size());
  std::ostringstream o;
  auto line = [&](const std::array<std::string, 5>& r) {
    std::string s;
    for (std::size_t c = 0; c < 5; ++c) {
      s += r[c];
      if (c + 1 < 5) s += std::string(width[c] - r[c].size() + 2, ' ');
    }
    o << s << "\n";
  };
  line(rows[0]);
  std::array<std::string, 5> dashes;
  for (std::size_t c = 0; c < 5; ++c) dashes[c] = std::string(width[c], '-');
  line(dashes);
  for (std::size_t i = 1; i < rows.size(); ++i) line(rows[i]);
  std::cout << o.str();
  return 0;
}

int cmd_dot(const std::vector<std::string>& argv) {
  Args args = parse_args(argv, {});
  if (args.help) {
    std::cout << kDotHelp;
    return 0;
  }
  auto gm = module_from_args(args, "archive");
  static const std::map<Op, const char*> colour = {
      {Op::Placeholder, "#a6cee3"}, {Op::GetAttr, "#d9d9d9"},  {Op::CallFunction, "#fdbf6f"},
      {Op::CallMethod, "#b2df8a"},  {Op::CallModule, "#fb9a99"}, {Op::Output, "#cab2d6"}};
  // Cluster tree: a node belongs to the module that owns it (call_module a.b.c -> a.b;
  // get_attr a.b.weight -> a.b).
  struct Cluster {
    std::map<std::string, Cluster> children;
    std::vector<const Node*> nodes;
  };
  Cluster top;
  for (const Node* n : gm->graph()) {
    std::string owner;
    if (n->op() == Op::CallModule || n->op() == Op::GetAttr) {
      auto dot = n->target().rfind('.');
      if (dot != std::string::npos) owner = n->target().substr(0, dot);
    }
    Cluster* c = &top;
    std::size_t start = 0;
    while (!owner.empty() && start <= owner.size()) {
      auto d = owner.find('.', start);
      std::string path = owner.substr(0, d);
      c = &c->children[path];
      if (d == std::string::npos) break;
      start = d + 1;
    }
    c->nodes.push_back(n);
  }
  std::ostringstream o;
  o << "digraph " << json_str(gm->class_name()) << " {\n";
  o << "  rankdir=TB;\n";
  o << "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=10];\n";
  o << "  edge [fontname=\"Helvetica\", fontsize=9];\n";
  std::size_t cluster_id = 0;
  auto emit_node = [&](const Node* n, const std::string& indent) {
    std::string label = n->name() + "\n" + std::string(op_name(n->op()));
    if (n->op() != Op::Placeholder && n->op() != Op::Output) label += "\n" + n->target();
    if (n->op() == Op::CallModule) {
      try {
        auto m = gm->get_submodule(n->target());
        label += "\n" + m->kind() + "(" + m->extra_repr() + ")";
      } catch (const Error&) {
      }
    }
    if (n->op() == Op::GetAttr) {
      try {
        const Tensor& t = gm->get_tensor(n->target());
        label += "\n" + std::string(dtype_name(t.dtype())) + t.shape().to_string();
      } catch (const Error&) {
      }
    }
    o << indent << json_str(n->name()) << " [label=\"" << dot_escape(label) << "\", fillcolor=\"" << colour.at(n->op())
      << "\"];\n";
  };
  auto emit = [&](auto& self, const Cluster& c, const std::string& path, const std::string& indent) -> void {
    for (const auto& [child_path, child] : c.children) {
      std::string kind;
      try {
        kind = gm->get_submodule(child_path)->kind();
      } catch (const Error&) {
      }
      o << indent << "subgraph cluster_" << cluster_id++ << " {\n";
      o << indent << "  label=\"" << dot_escape(child_path + (kind.empty() ? "" : " (" + kind + ")"))
        << "\"; style=\"rounded,dashed\"; fontname=\"Helvetica\"; fontsize=10;\n";
      self(self, child, child_path, indent + "  ");
      o << indent << "}\n";
    }
    for (const Node* n : c.nodes) emit_node(n, indent);
    (void)path;
  };
  emit(emit, top, "", "  ");
  for (const Node* n : gm->graph()) {
    for (const Node* in : n->input_nodes()) o << "  " << json_str(in->name()) << " -> " << json_str(n->name()) << ";\n";
  }
  o << "}\n";
  std::cout << o.str();
  return 0;
}

}  // namespace fxpack::cli
