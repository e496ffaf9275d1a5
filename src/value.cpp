#include "fxpack/value.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace fxpack {

namespace detail {
namespace {
// Freed Tensor boxes kept for reuse by the same thread: a plan's steps put a fresh tensor
// into a Value per call, and this keeps that off malloc once warm. Bounded, so a thread that
// frees many boxes (a large graph's constants going away) gives the rest back at once. The
// cache itself is trivial (usable at any time in the thread's life); a drain object frees
// what it holds when the thread ends and closes it, so a box freed later (a static's
// destructor) goes straight back to operator delete.
struct TensorBoxCache {
  static constexpr std::size_t kMax = 256;
  void* boxes[kMax];
  std::size_t size;
  bool closed;
};
thread_local TensorBoxCache t_tensor_boxes;  // zero-initialised
struct TensorBoxDrain {
  ~TensorBoxDrain() {
    TensorBoxCache& c = t_tensor_boxes;
    c.closed = true;
    while (c.size) ::operator delete(c.boxes[--c.size]);
  }
};
}  // namespace

void* BoxMemory<Tensor>::allocate() {
  TensorBoxCache& c = t_tensor_boxes;
  return c.size ? c.boxes[--c.size] : ::operator new(sizeof(Tensor));
}
void BoxMemory<Tensor>::release(void* p) noexcept {
  TensorBoxCache& c = t_tensor_boxes;
  if (c.closed || c.size == TensorBoxCache::kMax) {
    ::operator delete(p);
    return;
  }
  [[maybe_unused]] static thread_local TensorBoxDrain drain;  // registered with the first kept box
  c.boxes[c.size++] = p;
}
}  // namespace detail

bool operator==(const List& a, const List& b) { return a.items == b.items; }
bool operator==(const Tuple& a, const Tuple& b) { return a.items == b.items; }
bool operator==(const Dict& a, const Dict& b) { return a.items == b.items; }

const char* kind_name(Value::Kind kind) {
  switch (kind) {
    case Value::Kind::None: return "None";
    case Value::Kind::Bool: return "bool";
    case Value::Kind::Int: return "int";
    case Value::Kind::Double: return "float";
    case Value::Kind::String: return "str";
    case Value::Kind::DType: return "dtype";
    case Value::Kind::Device: return "device";
    case Value::Kind::Layout: return "layout";
    case Value::Kind::MemoryFormat: return "memory_format";
    case Value::Kind::Slice: return "slice";
    case Value::Kind::Node: return "Node";
    case Value::Kind::List: return "list";
    case Value::Kind::Tuple: return "tuple";
    case Value::Kind::Dict: return "dict";
    case Value::Kind::Tensor: return "Tensor";
    case Value::Kind::Ellipsis: return "ellipsis";
  }
  return "?";
}

namespace {
[[noreturn]] void wrong_kind(const char* expected, Value::Kind actual) {
  throw OpError(std::string("expected ") + expected + ", got " + kind_name(actual));
}
}  // namespace

const Tensor& Value::tensor() const {
  if (auto* t = std::get_if<detail::Boxed<Tensor>>(&v_)) return t->get();
  wrong_kind("Tensor", kind());
}
const Tensor* Value::if_tensor() const {
  auto* t = std::get_if<detail::Boxed<Tensor>>(&v_);
  return t ? &t->get() : nullptr;
}
Tensor* Value::if_tensor() {
  auto* t = std::get_if<detail::Boxed<Tensor>>(&v_);
  return t ? &t->get() : nullptr;
}
Node* Value::node() const {
  if (auto* n = std::get_if<Node*>(&v_)) return *n;
  wrong_kind("Node", kind());
}
bool Value::to_bool() const {
  if (auto* b = std::get_if<bool>(&v_)) return *b;
  wrong_kind("bool", kind());
}
std::int64_t Value::to_int() const {
  if (auto* i = std::get_if<std::int64_t>(&v_)) return *i;
  if (auto* b = std::get_if<bool>(&v_)) return *b ? 1 : 0;
  wrong_kind("int", kind());
}
double Value::to_double() const {
  if (auto* d = std::get_if<double>(&v_)) return *d;
  if (auto* i = std::get_if<std::int64_t>(&v_)) return static_cast<double>(*i);
  if (auto* b = std::get_if<bool>(&v_)) return *b ? 1.0 : 0.0;
  wrong_kind("float", kind());
}
const std::string& Value::str() const {
  if (const std::string* s = if_string()) return *s;
  wrong_kind("str", kind());
}
DType Value::dtype() const {
  if (auto* d = std::get_if<DType>(&v_)) return *d;
  wrong_kind("dtype", kind());
}
const std::vector<Value>& Value::items() const {
  if (const List* l = if_list()) return l->items;
  if (const Tuple* t = if_tuple()) return t->items;
  wrong_kind("list or tuple", kind());
}
const List& Value::list() const {
  if (const List* l = if_list()) return *l;
  wrong_kind("list", kind());
}
const Tuple& Value::tuple() const {
  if (const Tuple* t = if_tuple()) return *t;
  wrong_kind("tuple", kind());
}
const Dict& Value::dict() const {
  if (const Dict* d = if_dict()) return *d;
  wrong_kind("dict", kind());
}

namespace {
// The boxed T of `v`, or nullptr when `v` holds another alternative.
template <class T, class V>
auto* if_boxed(V& v) {
  auto* box = std::get_if<detail::Boxed<T>>(&v);
  return box ? &box->get() : nullptr;
}
}  // namespace

const std::string* Value::if_string() const { return if_boxed<std::string>(v_); }
const List* Value::if_list() const { return if_boxed<List>(v_); }
List* Value::if_list() { return if_boxed<List>(v_); }
const Tuple* Value::if_tuple() const { return if_boxed<Tuple>(v_); }
Tuple* Value::if_tuple() { return if_boxed<Tuple>(v_); }
const Dict* Value::if_dict() const { return if_boxed<Dict>(v_); }
Dict* Value::if_dict() { return if_boxed<Dict>(v_); }
const Slice& Value::slice() const {
  if (auto* s = std::get_if<detail::Boxed<Slice>>(&v_)) return s->get();
  wrong_kind("slice", kind());
}
const Device& Value::device() const {
  if (auto* d = std::get_if<detail::Boxed<Device>>(&v_)) return d->get();
  wrong_kind("device", kind());
}
std::vector<std::int64_t> Value::int_list() const {
  if (is_int()) return {to_int()};
  std::vector<std::int64_t> out;
  for (const Value& v : items()) out.push_back(v.to_int());
  return out;
}

void Slice::set_part(int i, const Value& v) {
  std::optional<std::int64_t>& part = i == 0 ? start : i == 1 ? stop : step;
  nodes[static_cast<std::size_t>(i)] = nullptr;
  part.reset();
  switch (v.kind()) {
    case Value::Kind::None: return;
    case Value::Kind::Int: part = v.to_int(); return;
    case Value::Kind::Bool: part = v.to_bool() ? 1 : 0; return;
    case Value::Kind::Node: nodes[static_cast<std::size_t>(i)] = v.node(); return;
    default:
      throw OpError(std::string("slice ") + (i == 0 ? "start" : i == 1 ? "stop" : "step") +
                    " must be an int or None, got " + kind_name(v.kind()));
  }
}

bool Value::contains_node() const {
  switch (kind()) {
    case Kind::Node: return true;
    case Kind::Slice: return slice().has_nodes();
    case Kind::List:
    case Kind::Tuple:
      for (const Value& v : items())
        if (v.contains_node()) return true;
      return false;
    case Kind::Dict:
      for (const auto& [k, v] : dict().items)
        if (v.contains_node()) return true;
      return false;
    default: return false;
  }
}

std::string python_float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  // Shortest round-trip digits, then Python's layout: fixed for 1e-4 <= |d| < 1e16,
  // otherwise d.ddde±XX.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  bool neg = sci[0] == '-';
  if (neg) sci.erase(0, 1);
  auto epos = sci.find('e');
  std::string mant = sci.substr(0, epos);
  int exp = std::stoi(sci.substr(epos + 1));
  std::string digits;
  for (char c : mant)
    if (c != '.') digits += c;
  std::string out;
  if (exp >= -4 && exp < 16) {
    if (exp < 0) {
      out = "0." + std::string(static_cast<std::size_t>(-exp - 1), '0') + digits;
    } else if (static_cast<std::size_t>(exp) + 1 >= digits.size()) {
      out = digits + std::string(static_cast<std::size_t>(exp) + 1 - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, static_cast<std::size_t>(exp) + 1) + "." +
            digits.substr(static_cast<std::size_t>(exp) + 1);
    }
  } else {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char e[16];
    std::snprintf(e, sizeof e, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    out += e;
  }
  return neg ? "-" + out : out;
}

std::string python_str_repr(const std::string& s) {
  bool has_single = s.find('\'') != std::string::npos;
  bool has_double = s.find('"') != std::string::npos;
  char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  for (unsigned char c : s) {
    if (c == static_cast<unsigned char>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += quote;
  return out;
}

namespace {
std::string optional_int_repr(const std::optional<std::int64_t>& v) {
  return v ? std::to_string(*v) : "None";
}
}  // namespace

std::string python_repr(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::None: return "None";
    case Value::Kind::Bool: return v.to_bool() ? "True" : "False";
    case Value::Kind::Int: return std::to_string(v.to_int());
    case Value::Kind::Double: return python_float_repr(v.to_double());
    case Value::Kind::String: return python_str_repr(v.str());
    case Value::Kind::DType: return "torch." + std::string(dtype_name(v.dtype()));
    case Value::Kind::Device: {
      const auto& d = v.device();
      if (d.index < 0) return "device(type=" + python_str_repr(d.type) + ")";
      return "device(type=" + python_str_repr(d.type) + ", index=" + std::to_string(d.index) + ")";
    }
    case Value::Kind::Layout: return "torch.strided";
    case Value::Kind::MemoryFormat:
      switch (std::get<MemoryFormat>(v.variant())) {
        case MemoryFormat::Contiguous: return "torch.contiguous_format";
        case MemoryFormat::Preserve: return "torch.preserve_format";
        case MemoryFormat::ChannelsLast: return "torch.channels_last";
      }
      return "?";
    case Value::Kind::Slice: {
      const Slice& s = v.slice();
      auto part = [&](int i, const std::optional<std::int64_t>& p) {
        Node* n = s.nodes[static_cast<std::size_t>(i)];
        return n ? python_repr(Value(n)) : optional_int_repr(p);
      };
      return "slice(" + part(0, s.start) + ", " + part(1, s.stop) + ", " + part(2, s.step) + ")";
    }
    case Value::Kind::Node: return detail::node_name(*v.node());
    case Value::Kind::List:
    case Value::Kind::Tuple: {
      bool list = v.kind() == Value::Kind::List;
      const auto& items = v.items();
      std::string out = list ? "[" : "(";
      for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) out += ", ";
        out += python_repr(items[i]);
      }
      if (!list && items.size() == 1) out += ",";
      out += list ? "]" : ")";
      return out;
    }
    case Value::Kind::Dict: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, x] : v.dict().items) {
        if (!first) out += ", ";
        first = false;
        out += python_str_repr(k) + ": " + python_repr(x);
      }
      return out + "}";
    }
    case Value::Kind::Tensor: {
      std::ostringstream os;
      os << v.tensor();
      return os.str();
    }
    case Value::Kind::Ellipsis: return "Ellipsis";
  }
  return "?";
}

}  // namespace fxpack
