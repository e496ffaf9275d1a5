#include "fxpack/codegen.hpp"

#include <string_view>
#include <unordered_map>

namespace fxpack {

namespace {

// fx's _format_target: `self.fc1`, `getattr(self.layers, "0")`.
std::string format_target(std::string base, std::string_view target) {
  std::size_t start = 0;
  while (true) {
    auto dot = target.find('.', start);
    std::string_view part = target.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (is_python_identifier(part))
      base += "." + std::string(part);
    else
      base = "getattr(" + base + ", \"" + std::string(part) + "\")";
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return base;
}

std::string format_args(std::span<const Value> args, const Dict& kwargs) {
  std::string out;
  for (const Value& a : args) {
    if (!out.empty()) out += ", ";
    out += python_repr(a);
  }
  for (const auto& [k, v] : kwargs.items) {
    if (!out.empty()) out += ", ";
    out += k + " = " + python_repr(v);
  }
  return out;
}

struct MagicMethod {
  std::string_view name;
  std::string_view pattern;  // '{}' marks the operands
};
// fx's magic_methods (reflectable and comparison operators).
constexpr MagicMethod kMagic[] = {
    {"add", "{} + {}"},   {"sub", "{} - {}"},      {"mul", "{} * {}"},   {"floordiv", "{} // {}"},
    {"truediv", "{} / {}"}, {"div", "{} / {}"},    {"mod", "{} % {}"},   {"pow", "{} ** {}"},
    {"lshift", "{} << {}"}, {"rshift", "{} >> {}"}, {"and_", "{} & {}"}, {"or_", "{} | {}"},
    {"xor", "{} ^ {}"},   {"getitem", "{}[{}]"},   {"matmul", "{} @ {}"}, {"eq", "{} == {}"},
    {"ne", "{} != {}"},   {"lt", "{} < {}"},       {"gt", "{} > {}"},    {"le", "{} <= {}"},
    {"ge", "{} >= {}"},   {"pos", "+{}"},          {"neg", "-{}"},       {"invert", "~{}"},
};

const MagicMethod* magic_for(std::string_view target) {
  constexpr std::string_view prefix = "operator.";
  if (!target.starts_with(prefix)) return nullptr;
  std::string_view name = target.substr(prefix.size());
  for (const auto& m : kMagic)
    if (m.name == name) return &m;
  return nullptr;
}

std::size_t count_holes(std::string_view pattern) {
  std::size_t n = 0;
  for (auto p = pattern.find("{}"); p != std::string_view::npos; p = pattern.find("{}", p + 2)) ++n;
  return n;
}

std::string fill(std::string_view pattern, std::span<const Value> args) {
  std::string out;
  std::size_t i = 0, start = 0;
  for (auto p = pattern.find("{}"); p != std::string_view::npos; p = pattern.find("{}", start)) {
    out += pattern.substr(start, p - start);
    out += python_repr(args[i++]);
    start = p + 2;
  }
  out += pattern.substr(start);
  return out;
}

// The name under which generated code refers to a call_function target.
std::string global_name(const std::string& target) {
  constexpr std::string_view builtins = "builtins.";
  if (std::string_view(target).starts_with(builtins)) return target.substr(builtins.size());
  return target;
}

// The one-line summary fx 1.13 prints for a stack trace in verbose mode.
std::string stack_summary(const std::string& trace) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  std::string_view t = trace;
  while (!t.empty() && (t.front() == '\n' || t.front() == ' ')) t.remove_prefix(1);
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.remove_suffix(1);
  std::string s(t);
  while (true) {
    auto nl = s.find('\n', start);
    lines.push_back(s.substr(start, nl - start));
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  auto strip = [](std::string x) {
    auto b = x.find_first_not_of(" \t");
    auto e = x.find_last_not_of(" \t");
    return b == std::string::npos ? std::string() : x.substr(b, e - b + 1);
  };
  std::size_t idx = 0;
  std::vector<std::string> context;
  while (idx < lines.size()) {
    std::string line = strip(lines[idx]);
    if (line.starts_with("File ")) break;
    context.push_back(line);
    ++idx;
  }
  std::vector<std::string> summary;
  if (!context.empty()) {
    std::string c;
    for (std::size_t i = 0; i < context.size(); ++i) c += (i ? ", " : "") + context[i];
    summary.push_back(c);
  }
  if (idx + 1 < lines.size()) {
    // ^File "(.+)", line (\d+), in (.+)$
    std::string line = strip(lines[idx]);
    auto q1 = line.find('"');
    auto q2 = line.find("\", line ", q1 + 1);
    auto in = line.find(", in ", q2 == std::string::npos ? 0 : q2);
    if (q1 == 5 && q2 != std::string::npos && in != std::string::npos) {
      std::string file = line.substr(q1 + 1, q2 - q1 - 1);
      std::string lineno = line.substr(q2 + 8, in - q2 - 8);
      std::string func = line.substr(in + 5);
      summary.push_back("File: " + file + ":" + lineno + " in " + func + ", code: " +
                        strip(lines[idx + 1]));
    }
  }
  std::string out;
  for (std::size_t i = 0; i < summary.size(); ++i) out += (i ? ", " : "") + summary[i];
  return out;
}

}  // namespace

std::string python_code(const Graph& graph, bool verbose) {
  // A node is freed (`x = None`) after its last user; a user frees its inputs in the order
  // it references them, as fx's map_arg walk does.
  std::unordered_map<const Node*, std::uint32_t> index;
  index.reserve(graph.size());
  std::vector<std::uint32_t> last_user;
  last_user.reserve(graph.size());
  for (const Node* n : graph) {
    auto i = static_cast<std::uint32_t>(last_user.size());
    for (const Node* in : n->input_nodes()) last_user[index.at(in)] = i;
    index.emplace(n, i);
    last_user.push_back(i);
  }

  std::string params = "self";
  std::string body;
  body.reserve(graph.size() * 48);
  const std::string* prev_stack = nullptr;
  bool prev_was_none = false;
  std::uint32_t position = 0;
  for (const Node* n : graph) {
    const std::uint32_t self = position++;
    if (verbose && n->op() != Op::Placeholder && n->op() != Op::Output) {
      const Value* st = n->meta().find("stack_trace");
      if (st && st->kind() == Value::Kind::String && !st->str().empty()) {
        if (!prev_stack || *prev_stack != st->str()) {
          prev_stack = &st->str();
          prev_was_none = false;
          body += "\n# " + stack_summary(st->str()) + "\n";
        }
      } else if (!prev_was_none) {
        prev_stack = nullptr;
        prev_was_none = true;
        body += "\n# No stacktrace found for following nodes \n";
      }
    }
    const std::string& name = n->name();
    switch (n->op()) {
      case Op::Placeholder: {
        params += ", " + n->target();
        if (n->target() != name) body += name + " = " + n->target();
        else continue;  // nothing emitted, no free for placeholders
        break;
      }
      case Op::GetAttr:
        body += name + " = " + format_target("self", n->target());
        break;
      case Op::CallModule:
        body += name + " = " + format_target("self", n->target()) + "(" +
                format_args(n->args(), n->kwargs()) + ")";
        break;
      case Op::CallMethod: {
        std::span<const Value> args = n->args();
        std::string recv = args.empty() ? std::string("None") : python_repr(args[0]);
        body += name + " = " + format_target(recv, n->target()) + "(" +
                format_args(args.empty() ? args : args.subspan(1), n->kwargs()) + ")";
        break;
      }
      case Op::CallFunction: {
        const MagicMethod* magic = magic_for(n->target());
        if (magic && n->kwargs().items.empty() && count_holes(magic->pattern) == n->args().size()) {
          body += name + " = " + fill(magic->pattern, n->args());
          break;
        }
        std::string g = global_name(n->target());
        if (g == "getattr" && n->args().size() == 2 && n->args()[1].kind() == Value::Kind::String &&
            is_python_identifier(n->args()[1].str())) {
          body += name + " = " + format_target(python_repr(n->args()[0]), n->args()[1].str());
          break;
        }
        body += name + " = " + g + "(" + format_args(n->args(), n->kwargs()) + ")";
        break;
      }
      case Op::Output:
        body += "return " + (n->args().empty() ? std::string("None") : python_repr(n->args()[0]));
        body += "\n";
        continue;
    }
    bool freed_any = false;
    for (const Node* in : n->input_nodes()) {
      if (last_user[index.at(in)] != self) continue;
      body += freed_any ? "" : ";  ";
      body += in->name();
      body += " = ";
      freed_any = true;
    }
    body += freed_any ? "None\n" : "\n";
  }
  if (body.empty()) body = "pass\n";

  std::string code = "\n\n\ndef forward(" + params + "):\n";
  code.reserve(code.size() + body.size() + graph.size() * 4 + 8);
  // Indent every line of the body by four spaces (the last, empty line too).
  std::size_t start = 0;
  while (true) {
    auto nl = body.find('\n', start);
    code += "    ";
    if (nl == std::string::npos) {
      code.append(body, start, std::string::npos);
      break;
    }
    code.append(body, start, nl - start + 1);
    start = nl + 1;
  }
  return code;
}

std::string readable_code(const Graph& graph, const std::string& class_name) {
  std::string code = python_code(graph, /*verbose=*/true);
  auto first = code.find_first_not_of('\n');
  code = "class " + class_name + "(torch.nn.Module):\n" + code.substr(first);
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
