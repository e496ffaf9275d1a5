// Code generation: fx's CodeGen._gen_python_code, for each dialect (codegen.hpp).
#include "fxpack/codegen.hpp"

#include <algorithm>
#include <deque>
#include <optional>
#include <span>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "python_names.hpp"
#include "type_expr.hpp"

namespace fxpack {

namespace {

// Literal appends to the body as string_views: their length is known where they are written,
// without a strlen call per append once GCC stops inlining append(const char*) into the
// per-node code (it did, when emit_body grew).
using namespace std::string_view_literals;

// fx's _format_target: `self.fc1`, `getattr(self.layers, "0")`.
void append_target(std::string& out, std::string base, std::string_view target) {
  std::size_t start = 0;
  while (true) {
    auto dot = target.find('.', start);
    std::string_view part = target.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (is_python_identifier(part)) {
      base += '.';
      base += part;
    } else {
      base = "getattr(" + base + ", \"" + std::string(part) + "\")";
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  out += base;
}

struct Pattern {
  std::string_view name;
  std::string_view pattern;  // '{}' marks the operands
};
// fx's magic_methods (reflectable and comparison operators) and inplace_methods.
constexpr Pattern kMagic[] = {
    {"add", "{} + {}"},   {"sub", "{} - {}"},      {"mul", "{} * {}"},   {"floordiv", "{} // {}"},
    {"truediv", "{} / {}"}, {"div", "{} / {}"},    {"mod", "{} % {}"},   {"pow", "{} ** {}"},
    {"lshift", "{} << {}"}, {"rshift", "{} >> {}"}, {"and_", "{} & {}"}, {"or_", "{} | {}"},
    {"xor", "{} ^ {}"},   {"getitem", "{}[{}]"},   {"matmul", "{} @ {}"}, {"eq", "{} == {}"},
    {"ne", "{} != {}"},   {"lt", "{} < {}"},       {"gt", "{} > {}"},    {"le", "{} <= {}"},
    {"ge", "{} >= {}"},   {"pos", "+{}"},          {"neg", "-{}"},       {"invert", "~{}"},
};
constexpr Pattern kInplace[] = {
    {"iadd", "{} += {}"},  {"iand", "{} &= {}"},  {"ifloordiv", "{} //= {}"}, {"ilshift", "{} <<= {}"},
    {"imod", "{} %= {}"},  {"imul", "{} *= {}"},  {"imatmul", "{} @= {}"},    {"ior", "{} |= {}"},
    {"ipow", "{} **= {}"}, {"irshift", "{} >>= {}"}, {"isub", "{} -= {}"},    {"itruediv", "{} /= {}"},
    {"ixor", "{} ^= {}"},  {"setitem", "{}[{}] = {}"},
};

template <std::size_t N>
const Pattern* find_pattern(const Pattern (&table)[N], std::string_view target) {
  constexpr std::string_view prefix = "operator.";
  if (!target.starts_with(prefix)) return nullptr;
  std::string_view name = target.substr(prefix.size());
  for (const auto& p : table)
    if (p.name == name) return &p;
  return nullptr;
}

std::size_t count_holes(std::string_view pattern) {
  std::size_t n = 0;
  for (auto p = pattern.find("{}"); p != std::string_view::npos; p = pattern.find("{}", p + 2)) ++n;
  return n;
}

// The qualified name fx's _get_qualified_name gives the function a call_function target
// names: builtins are bare, operator functions live in _operator.
std::string qualified_function(const std::string& target) {
  constexpr std::string_view builtins = "builtins.";
  constexpr std::string_view op = "operator.";
  if (std::string_view(target).starts_with(builtins)) return target.substr(builtins.size());
  if (std::string_view(target).starts_with(op)) return "_" + target;
  return target;
}

// The object a global stands for, as a qualified name: builtins get their module.
std::string object_key(const std::string& qualified) {
  if (qualified.find('.') == std::string::npos) return "builtins." + (qualified == "..." ? std::string("Ellipsis") : qualified);
  return qualified;
}

// Python's str.strip(): without leading and trailing whitespace.
std::string strip(std::string_view x) {
  auto b = x.find_first_not_of(" \t\n\r\f\v");
  auto e = x.find_last_not_of(" \t\n\r\f\v");
  return b == std::string_view::npos ? std::string() : std::string(x.substr(b, e - b + 1));
}

// trace.strip().split("\n"), as both dialects' summaries start.
std::vector<std::string> trace_lines(const std::string& trace) {
  const std::string s = strip(trace);
  std::vector<std::string> lines;
  for (std::size_t start = 0;;) {
    auto nl = s.find('\n', start);
    lines.push_back(s.substr(start, nl == std::string::npos ? nl : nl - start));
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return lines;
}

// The one-line summary fx 1.13 prints for a stack trace in verbose mode: the context lines
// before the first `File` line, then that frame's file, line and code.
std::string stack_summary_1_13(const std::string& trace) {
  const std::vector<std::string> lines = trace_lines(trace);
  std::size_t idx = 0;
  std::vector<std::string> summary;
  std::string context;
  for (; idx < lines.size(); ++idx) {
    std::string line = strip(lines[idx]);
    if (line.starts_with("File ")) break;
    context += (context.empty() ? "" : ", ") + line;
  }
  if (idx > 0) summary.push_back(context);
  if (idx + 1 < lines.size()) {
    // ^File "(.+)", line (\d+), in (.+)$
    std::string line = strip(lines[idx]);
    auto q2 = line.find("\", line ", 6);
    if (line.size() > 6 && line.compare(0, 6, "File \"") == 0 && q2 != std::string::npos && q2 > 6) {
      auto in = line.find(", in ", q2 + 8);
      std::string lineno = in == std::string::npos ? std::string() : line.substr(q2 + 8, in - q2 - 8);
      bool digits = !lineno.empty() && lineno.find_first_not_of("0123456789") == std::string::npos;
      if (digits && in + 5 < line.size()) summary.push_back("File: " + line.substr(6, q2 - 6) + ":" + lineno);
    }
    summary.push_back("code: " + strip(lines[idx + 1]));
  }
  std::string out;
  for (std::size_t i = 0; i < summary.size(); ++i) out += (i ? ", " : "") + summary[i];
  return out;
}

// fx 2.x's _parse_stack_trace summary: the innermost `File` frame (searched from the
// second-to-last line up), with its function name; empty when there is none.
std::string stack_summary_2(const std::string& trace) {
  const std::vector<std::string> lines = trace_lines(trace);
  for (std::size_t idx = lines.size() >= 2 ? lines.size() - 1 : 0; idx-- > 0;) {
    std::string line = strip(lines[idx]);
    auto q2 = line.find("\", line ", 6);
    if (line.size() <= 6 || line.compare(0, 6, "File \"") != 0 || q2 == std::string::npos || q2 == 6) continue;
    auto in = line.find(", in ", q2 + 8);
    if (in == std::string::npos || in + 5 >= line.size()) continue;
    std::string lineno = line.substr(q2 + 8, in - q2 - 8);
    if (lineno.empty() || lineno.find_first_not_of("0123456789") != std::string::npos) continue;
    return "File: " + line.substr(6, q2 - 6) + ":" + lineno + " in " + line.substr(in + 5) +
           ", code: " + strip(lines[idx + 1]);
  }
  return {};
}

class Generator {
 public:
  // The source is written in `buffer`'s memory (its text dropped).
  Generator(const Graph& graph, const LastUses& uses, const CodegenOptions& options, std::string buffer)
      : graph_(graph), dialect_(options.dialect.value_or(graph.dialect())), verbose_(options.verbose),
        line_nodes_(options.line_nodes), body_(std::move(buffer)), last_uses_(uses) {
    body_.clear();
  }

  PythonCode run();

 private:
  // fx's _Namespace.create_name for a node (never a builtin) or a global (`object`: the
  // qualified name of what it stands for). Names live in `owned_` or in the graph's nodes.
  std::string_view create_name(std::string_view hint, const std::string* object) {
    std::string name = detail::create_python_name(hint, dialect_, counters_, [&](const std::string& c) {
      if (detail::is_python_keyword(c)) return false;
      if (detail::is_python_builtin(c) && (!object || *object != "builtins." + c)) return false;
      std::string_view custom = detail::custom_builtin_object(c);
      if (!custom.empty() && (!object || *object != custom)) return false;
      return !taken(c);
    });
    owned_.push_back(std::move(name));
    made_.insert(owned_.back());
    return owned_.back();
  }
  // Taken in this namespace: a name made here, or the name of a node already named as itself
  // (nodes are named in program order, when they are emitted).
  bool taken(std::string_view c) const {
    if (made_.count(c)) return true;
    const Node* m = graph_.find_node(c);
    return m && naming_[last_uses_.position(m)] == Naming::Own;
  }

  // The name the source calls a call_function target by (add_global of its qualified name,
  // once per target).
  const std::string& function_global(const std::string& target) {
    if (auto it = function_globals_.find(target); it != function_globals_.end()) return it->second;
    std::string qualified = qualified_function(target);
    return function_globals_.emplace(target, add_global(qualified, qualified)).first->second;
  }

  // fx's add_global: torch names print as they are, others through a global of the source.
  std::string add_global(const std::string& hint, const std::string& qualified) {
    const bool dynamo = dialect_ == Dialect::Torch2 &&
                        (qualified.starts_with("torch._dynamo.") || qualified.starts_with("torch._inductor."));
    if (qualified.starts_with("torch.") && qualified != "torch.device" && !dynamo) return qualified;
    std::string key = object_key(qualified);
    if (auto it = global_names_.find(key); it != global_names_.end()) return it->second;
    std::string name(create_name(hint, &key));
    global_names_.emplace(key, name);
    out_.globals.emplace_back(name, key);
    return name;
  }

  void type_repr(std::string& out, const detail::TypeExpr& t) {
    if (t.name == "()") {
      out += "()";
      return;
    }
    out += add_global(t.name, t.name);
    if (!t.subscripted) return;
    out += '[';
    for (std::size_t i = 0; i < t.args.size(); ++i) {
      if (i) out += ',';
      type_repr(out, t.args[i]);
    }
    out += ']';
  }
  std::string type_repr(const std::string& type) {
    std::string out;
    if (auto t = detail::parse_type_expr(type)) type_repr(out, *t);
    return out;
  }

  // The node's name in this source: its own, unless a global took it first (fx's
  // node_repr). The common case claims the name as it is, without building strings.
  std::string_view node_name(const Node* n) {
    const std::uint32_t position = last_uses_.position(n);
    Naming& naming = naming_[position];
    if (naming == Naming::Own) return n->name();
    if (naming == Naming::Renamed) return renamed_.at(position);
    const std::string& name = n->name();
    // Node names are unique in the graph, so only a name made here can clash with one.
    if (!detail::is_reserved_name(name) && (made_.size() == kCustomBuiltins || !made_.count(name))) {
      if (dialect_ == Dialect::Torch2) note_suffix(name);
      naming = Naming::Own;
      return name;
    }
    naming = Naming::Renamed;
    return renamed_.emplace(position, create_name(name, nullptr)).first->second;
  }
  // What create_python_name does to 2.x's counters when it claims `name` unchanged: a base
  // remembers the suffix it was last given.
  void note_suffix(std::string_view name) {
    const detail::NameSuffix x = detail::parse_name_suffix(name);  // a node's name: never TooLarge
    if (x.kind != detail::NameSuffix::Kind::Number || x.number == 0) return;
    std::string_view base = name.substr(0, x.base_size);
    if (auto it = counters_.find(base); it != counters_.end()) it->second = x.number;
    else counters_.emplace(std::string(base), x.number);
  }

  // repr() of an argument as the dialect's _format_args prints it.
  void repr(std::string& out, const Value& v) {
    switch (v.kind()) {
      case Value::Kind::Node: out += node_name(v.node()); return;
      case Value::Kind::List:
      case Value::Kind::Tuple: {
        const bool list = v.kind() == Value::Kind::List;
        const auto& items = v.items();
        out += list ? '[' : '(';
        for (std::size_t i = 0; i < items.size(); ++i) {
          if (i) out += ", ";
          repr(out, items[i]);
        }
        if (!list && items.size() == 1) out += ',';
        out += list ? ']' : ')';
        return;
      }
      case Value::Kind::Dict: {
        out += '{';
        bool first = true;
        for (const auto& [k, x] : v.dict().items) {
          if (!first) out += ", ";
          first = false;
          out += python_str_repr(k);
          out += ": ";
          repr(out, x);
        }
        out += '}';
        return;
      }
      case Value::Kind::Slice: {
        const Slice& sl = v.slice();
        if (!sl.has_nodes()) break;
        const std::optional<std::int64_t>* parts[] = {&sl.start, &sl.stop, &sl.step};
        out += "slice(";
        for (std::size_t i = 0; i < 3; ++i) {
          if (i) out += ", ";
          if (sl.nodes[i]) out += node_name(sl.nodes[i]);
          else out += *parts[i] ? std::to_string(**parts[i]) : std::string("None");
        }
        out += ')';
        return;
      }
      case Value::Kind::Tensor:
        // 2.x's _get_repr shortens tensors; the return statement uses plain repr().
        if (dialect_ == Dialect::Torch2 && !plain_repr_) {
          const Tensor& t = v.tensor();
          out += "torch.Tensor(size=[";
          for (std::size_t i = 0; i < t.shape().size(); ++i) out += (i ? ", " : "") + std::to_string(t.shape()[i]);
          out += "], dtype=" + std::string(dtype_name(t.dtype())) + ")";
          return;
        }
        out += python_repr(v);
        return;
      default: break;
    }
    out += python_repr(v);
  }

  void args(std::string& out, std::span<const Value> a, const Dict& kwargs) {
    bool first = true;
    for (const Value& x : a) {
      if (!first) out += ", ";
      first = false;
      repr(out, x);
    }
    for (const auto& [k, x] : kwargs.items) {
      if (!first) out += ", ";
      first = false;
      out += k;
      out += " = ";
      repr(out, x);
    }
  }

  void fill(std::string& out, std::string_view pattern, std::span<const Value> a) {
    std::size_t i = 0, start = 0;
    for (auto p = pattern.find("{}"); p != std::string_view::npos; p = pattern.find("{}", start)) {
      out += pattern.substr(start, p - start);
      repr(out, a[i++]);
      start = p + 2;
    }
    out += pattern.substr(start);
  }

  void stack_trace_comment(const Node* n);
  // The next line of the body comes from node `position` (-1: none), for line_nodes.
  void line_from(std::int64_t position) {
    if (line_nodes_) out_.line_nodes.push_back(position);
  }
  void emit(const Node* n);
  void emit_placeholder(const Node* n, const std::string& annotation);
  void emit_call_function(const Node* n, const std::string& annotation);
  void assign(const Node* n, const std::string& annotation);
  // run()'s phases: the custom builtins, the body line by line, the finished source.
  void declare_custom_builtins();
  void emit_body();
  bool emit_line(const Node* n, std::size_t self);
  void indent_since(std::size_t from);
  void make_head_room();
  std::string head() const;
  void assemble_source();

  const Graph& graph_;
  Dialect dialect_;
  bool verbose_;
  bool line_nodes_;
  bool plain_repr_ = false;
  PythonCode out_;
  // The source: room for the head (the wrap() lines and the signature, known only once the
  // body is: make_head_room), then the body, indented as it is written.
  std::string body_;
  std::optional<std::size_t> head_room_;
  std::vector<std::string> free_vars_;
  std::string return_annotation_;
  std::vector<std::string> wrapped_;
  static constexpr std::size_t kCustomBuiltins = 7;
  std::deque<std::string> owned_;                // names made here: globals, renamed nodes
  std::unordered_set<std::string_view> made_;    // views of owned_
  detail::NameCounters counters_;
  std::unordered_map<std::string, std::string> global_names_;  // object → name
  std::unordered_map<std::string, std::string, detail::StringHash, std::equal_to<>> function_globals_;
  // A node is freed (`x = None`) after its last user; a user frees its inputs in the order
  // it references them, as fx's map_arg walk does. Also numbers the nodes.
  const LastUses& last_uses_;
  // Per node position, once named: a byte, not the name (16 MB at 10^6 nodes); the few
  // renamed nodes' names (in owned_) by position.
  enum class Naming : std::uint8_t { Unnamed, Own, Renamed };
  std::vector<Naming> naming_;
  std::unordered_map<std::uint32_t, std::string_view> renamed_;
  // verbose: the stack trace of the previous node (fx's prev_stacktrace: none, "" or a trace)
  bool have_prev_ = false;
  std::string prev_stack_;
};

void Generator::stack_trace_comment(const Node* n) {
  if (n->op() == Op::Placeholder || n->op() == Op::Output) return;
  const Value* st = n->meta().find("stack_trace");
  const bool has = st && st->kind() == Value::Kind::String && !st->str().empty();
  if (has) {
    if (have_prev_ && prev_stack_ == st->str()) return;
    have_prev_ = true;
    prev_stack_ = st->str();
    if (dialect_ == Dialect::Torch2) body_ += "\n # " + stack_summary_2(st->str()) + "\n";
    else body_ += "\n# " + stack_summary_1_13(st->str()) + "\n";
  } else if (!have_prev_ || !prev_stack_.empty()) {
    have_prev_ = true;
    prev_stack_.clear();
    body_ += dialect_ == Dialect::Torch2 ? "\n# No stacktrace found for following nodes\n"
                                         : "\n# No stacktrace found for following nodes \n";
  }
}

// `name : annotation = ` for a node's line.
void Generator::assign(const Node* n, const std::string& annotation) {
  body_ += node_name(n);
  body_ += annotation;
  body_ += " = "sv;
}

void Generator::emit(const Node* n) {
  std::string& line = body_;
  const std::string annotation = n->type().empty() ? std::string() : " : " + type_repr(n->type());
  switch (n->op()) {
    case Op::Placeholder:
      emit_placeholder(n, annotation);
      return;
    case Op::GetAttr:
      assign(n, annotation);
      append_target(line, "self", n->target());
      return;
    case Op::CallModule:
      assign(n, annotation);
      append_target(line, "self", n->target());
      line += '(';
      args(line, n->args(), n->kwargs());
      line += ')';
      return;
    case Op::CallMethod: {
      std::span<const Value> a = n->args();
      assign(n, annotation);
      std::string recv;
      if (a.empty()) recv = "None";
      else repr(recv, a[0]);
      append_target(line, std::move(recv), n->target());
      line += '(';
      args(line, a.empty() ? a : a.subspan(1), n->kwargs());
      line += ')';
      return;
    }
    case Op::CallFunction:
      emit_call_function(n, annotation);
      return;
    case Op::Output:
      if (!n->type().empty()) return_annotation_ = " -> " + type_repr(n->type());
      line += "return ";
      plain_repr_ = true;
      if (n->args().empty()) line += "None";
      else repr(line, n->args()[0]);
      plain_repr_ = false;
      return;
  }
}

// A parameter of forward(); a line only when the node's name differs from it.
void Generator::emit_placeholder(const Node* n, const std::string& annotation) {
  std::string var = n->target() + annotation;
  if (!n->args().empty()) {
    var += " = ";
    repr(var, n->args()[0]);
  }
  free_vars_.push_back(std::move(var));
  std::string raw = n->target();
  std::erase(raw, '*');
  if (raw != node_name(n)) {
    body_ += node_name(n);
    body_ += " = " + raw;
  }
}

// An operator pattern (`a + b`, `a += b`), attribute access for getattr, or a call of the
// target's global.
void Generator::emit_call_function(const Node* n, const std::string& annotation) {
  std::string& line = body_;
  const std::string& target = n->target();
  if (const Pattern* magic = find_pattern(kMagic, target); magic && count_holes(magic->pattern) <= n->args().size()) {
    assign(n, annotation);
    fill(line, magic->pattern, n->args());
    return;
  }
  if (const Pattern* inplace = find_pattern(kInplace, target);
      inplace && !n->args().empty() && count_holes(inplace->pattern) <= n->args().size()) {
    fill(line, inplace->pattern, n->args());
    line += ";  ";
    assign(n, annotation);
    repr(line, n->args()[0]);
    return;
  }
  const std::string& global = function_global(target);
  // getattr(x, 'name') with an identifier prints as attribute access.
  if (global == "getattr" && n->args().size() == 2 && n->args()[1].kind() == Value::Kind::String &&
      is_python_identifier(n->args()[1].str())) {
    assign(n, annotation);
    std::string recv;
    repr(recv, n->args()[0]);
    append_target(line, std::move(recv), n->args()[1].str());
    return;
  }
  assign(n, annotation);
  line += global;
  line += '(';
  args(line, n->args(), n->kwargs());
  line += ')';
  const Value* wrapped = n->meta().find("is_wrapped");
  if (wrapped && wrapped->kind() == Value::Kind::Bool && wrapped->to_bool() &&
      std::find(wrapped_.begin(), wrapped_.end(), global) == wrapped_.end()) {
    wrapped_.push_back(global);
  }
}

PythonCode Generator::run() {
  naming_.resize(graph_.size(), Naming::Unnamed);
  declare_custom_builtins();
  emit_body();
  assemble_source();
  return std::move(out_);
}

// fx's custom builtins are the first globals of every source.
void Generator::declare_custom_builtins() {
  for (const char* name : {"inf", "nan", "NoneType", "torch", "device", "fx_pytree", "pytree"}) {
    std::string object(detail::custom_builtin_object(name));
    std::string key = object_key(object);
    global_names_.emplace(key, std::string(create_name(name, &key)));
    out_.globals.emplace_back(name, key);
  }
}

// One line per node (with its frees), and which node each line comes from.
void Generator::emit_body() {
  // A typical line and its indent, with room to spare: the source is finished in this buffer
  // (assemble_source). Too small an estimate costs a copy of the whole source into new pages
  // (the benchmark's chain takes 54 bytes a line at 10^6 nodes, past the 52 this was); too
  // large costs only address space, as pages never written are never mapped.
  body_.reserve(graph_.size() * 64 + 256);
  if (line_nodes_) out_.line_nodes.reserve(graph_.size() + 2);
  body_ = "    ";  // the first line's indent; each newline brings the next line's (indent_since)
  std::size_t position = 0;
  for (const Node* n : graph_) {
    if (!head_room_ && n->op() != Op::Placeholder) make_head_room();
    const std::size_t start = body_.size();
    if (!emit_line(n, position++)) continue;
    indent_since(start);
    body_ += "\n    "sv;  // the line's end and the next line's indent
  }
  if (!head_room_) make_head_room();
  if (body_.size() == *head_room_ + 4) {
    body_ += "pass\n    ";
    line_from(-1);
  }
  line_from(out_.line_nodes.empty() ? -1 : out_.line_nodes.back());  // the last, empty line
}

// Node `self`'s line, with its frees, but for its newline; false when there is none (a
// placeholder named as its parameter).
bool Generator::emit_line(const Node* n, std::size_t self) {
  if (verbose_) stack_trace_comment(n);
  const std::size_t before = body_.size();
  emit(n);
  if (n->op() == Op::Placeholder) {
    if (body_.size() == before) return false;
    line_from(static_cast<std::int64_t>(self));
    return true;
  }
  line_from(static_cast<std::int64_t>(self));
  if (n->op() == Op::Output) return true;
  bool freed_any = false;
  for (const Node* in : last_uses_.at(self)) {
    body_ += freed_any ? ""sv : ";  "sv;
    body_ += node_name(in);
    body_ += " = "sv;
    freed_any = true;
  }
  // 2.x frees a value nothing uses right after it is made.
  if (dialect_ == Dialect::Torch2 && n->users().empty()) {
    body_ += freed_any ? ""sv : ";  "sv;
    body_ += node_name(n);
    body_ += " = "sv;
    freed_any = true;
  }
  if (freed_any) body_ += "None"sv;
  return true;
}

// Four spaces after each newline of body_[from, end): the next line's indent (fx indents
// every line of the body, a multi-line repr's or a stack trace comment's too). Done as each
// node's text is written, while it is in cache: indenting the finished body moved all of it
// again, line by line (54 MB at 10^6 nodes).
void Generator::indent_since(std::size_t from) {
  const std::size_t nl = body_.find('\n', from);
  if (nl == std::string::npos) return;  // mostly
  const std::string text = body_.substr(nl);
  body_.resize(nl);
  for (const char c : text) {
    body_ += c;
    if (c == '\n') body_ += "    ";
  }
}

// Leaves room before the body for the head as it would be now. Made before the first node
// that is not a placeholder: then the parameters are known, and nothing but a wrap() line or
// a return annotation (or a later placeholder) changes the head, so mostly the room fits and
// assemble_source writes the head in it, without moving the body.
void Generator::make_head_room() {
  head_room_ = head().size();
  body_.insert(0, *head_room_, ' ');  // before the placeholders' few lines, if any
}

// The wrap() lines and forward's signature.
std::string Generator::head() const {
  std::string head = "\n";
  for (std::size_t i = 0; i < wrapped_.size(); ++i) {
    if (i) head += '\n';
    head += "torch.fx._symbolic_trace.wrap(\"" + wrapped_[i] + "\")";
  }
  head += "\n\ndef forward(";
  bool self_first = !free_vars_.empty() && free_vars_[0] == "self";
  if (!self_first) head += "self";
  for (std::size_t i = 0; i < free_vars_.size(); ++i) {
    if (i || !self_first) head += ", ";
    head += free_vars_[i];
  }
  head += ")" + return_annotation_ + ":\n";
  return head;
}

// The head and the body, in the body's own buffer: at 10^6 nodes a second buffer for the
// source would be ~50 MB of fresh pages per recompile.
void Generator::assemble_source() {
  std::size_t room = *head_room_;
  // 2.x strips the body's leading newlines (a verbose body starts with one): here, lines
  // that are only their indent.
  if (dialect_ == Dialect::Torch2)
    while (std::string_view(body_).substr(room).starts_with("    \n")) room += 5;
  // When the head is as long as its room, the body stays in place (libstdc++'s replace
  // moves the rest only when the lengths differ).
  body_.replace(0, room, head());
  out_.src = std::move(body_);
}

}  // namespace

PythonCode generate_python_code(const Graph& graph, const CodegenOptions& options) {
  return generate_python_code(graph, graph.last_uses(), options);
}

PythonCode generate_python_code(const Graph& graph, const LastUses& uses, const CodegenOptions& options,
                                std::string buffer) {
  uses.check_current(graph, "generate_python_code");
  return Generator(graph, uses, options, std::move(buffer)).run();
}

std::string python_code(const Graph& graph, bool verbose) {
  return generate_python_code(graph, {.verbose = verbose, .dialect = std::nullopt, .line_nodes = false}).src;
}

std::string readable_code(const Graph& graph, const std::string& class_name) {
  std::string code = python_code(graph, /*verbose=*/true);
  auto first = code.find_first_not_of('\n');
  code = "class " + class_name + "(torch.nn.Module):\n" + code.substr(first == std::string::npos ? code.size() : first);
  // _addindent(code, 4): every line after the first gains four spaces.
  std::string out;
  out.reserve(code.size() + graph.size() * 4 + 16);
  std::size_t start = 0;
  bool first_line = true;
  while (true) {
    auto nl = code.find('\n', start);
    if (!first_line) out += "    ";
    first_line = false;
    if (nl == std::string::npos) {
      out.append(code, start, std::string::npos);
      break;
    }
    out.append(code, start, nl - start + 1);
    start = nl + 1;
  }
  return out;
}

std::uint64_t source_hash(const std::string& source) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : source) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace fxpack
