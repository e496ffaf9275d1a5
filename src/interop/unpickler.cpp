#include "interop/unpickler.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <unordered_map>

#include "fxpack/errors.hpp"
#include "block_cache.hpp"
#include "fxpack/ops.hpp"

namespace fxpack::interop {

const char* py_kind_name(PyKind kind) {
  switch (kind) {
    case PyKind::None: return "None";
    case PyKind::Bool: return "bool";
    case PyKind::Int: return "int";
    case PyKind::Float: return "float";
    case PyKind::Str: return "str";
    case PyKind::Bytes: return "bytes";
    case PyKind::Tuple: return "tuple";
    case PyKind::List: return "list";
    case PyKind::Dict: return "dict";
    case PyKind::Set: return "set";
    case PyKind::FrozenSet: return "frozenset";
    case PyKind::Global: return "global";
    case PyKind::Reduce: return "reduce";
    case PyKind::PersistentId: return "persistent_id";
  }
  return "?";
}

std::string PyObject::qualified_name() const {
  if (kind != PyKind::Global) return {};
  std::string q;
  q.reserve(str.size() + 1 + name.size());
  return q.append(str).append(1, '.').append(name);
}

// The arena's first block: a pickle of n bytes makes roughly one object per 8 bytes or so
// (most opcodes are 1-3 bytes, strings longer); later blocks grow geometrically. Its blocks
// come from, and go back to, the process's BlockCache (see block_cache.hpp for why).
PickleTree::PickleTree(std::span<const std::byte> pickle)
    : pickle_(new char[std::max<std::size_t>(pickle.size(), 1)]),
      arena_(std::clamp<std::size_t>(pickle.size() * 8, 4096, std::size_t{16} << 20),
             &detail::BlockCache::for_pickle_trees()) {
  if (!pickle.empty()) std::memcpy(pickle_.get(), pickle.data(), pickle.size());
}

bool PyObject::is_global(std::string_view qualified) const {
  if (kind != PyKind::Global) return false;
  return qualified.size() == str.size() + 1 + name.size() && qualified.starts_with(str) &&
         qualified[str.size()] == '.' && qualified.ends_with(name);
}

bool PyObject::is_call_of(std::string_view qualified) const {
  return kind == PyKind::Reduce && callable && callable->is_global(qualified);
}

const PyObject* PyObject::find(std::string_view key) const {
  for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
    if (it->first->kind == PyKind::Str && it->first->str == key) return it->second;
  }
  return nullptr;
}

bool GlobalAllowlist::allows(std::string_view module, std::string_view name) const {
  std::string q;
  q.reserve(module.size() + 1 + name.size());
  q.append(module).append(1, '.').append(name);
  if (names.count(q)) return true;
  auto ident = [](std::string_view s) {
    if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
    for (char c : s) {
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return false;
    }
    return true;
  };
  for (const std::string& prefix : module_prefixes) {
    if (!module.starts_with(prefix) || module.size() == prefix.size() || !ident(name)) continue;
    // every part of the module path below the prefix is an identifier
    std::string_view rest = module.substr(prefix.size());
    bool ok = true;
    for (std::size_t start = 0; ok;) {
      auto dot = rest.find('.', start);
      ok = ident(rest.substr(start, dot == std::string_view::npos ? dot : dot - start));
      if (dot == std::string_view::npos) break;
      start = dot + 1;
    }
    if (ok) return true;
  }
  return false;
}

const GlobalAllowlist& torch_package_allowlist() {
  static const GlobalAllowlist list(
      {
          "torch.fx.graph_module.reduce_package_graph_module",
          "torch.fx.graph_module.reduce_graph_module",
          "torch.fx._symbolic_trace.Tracer",
          "torch._utils._rebuild_tensor_v2",
          "torch._utils._rebuild_parameter",
          "torch._utils._rebuild_parameter_with_state",
          "torch.FloatStorage",
          "torch.DoubleStorage",
          "torch.LongStorage",
          "torch.BoolStorage",
          "torch.ByteStorage",
          "torch.HalfStorage",
          "torch.BFloat16Storage",
          "torch.IntStorage",
          "torch.CharStorage",
          "torch.ShortStorage",
          "collections.OrderedDict",
          "builtins.set",
          "torch.device",
          "torch.float32",
          "torch.float64",
          "torch.int64",
          "torch.bool",
          "torch.uint8",
          "torch.float16",
          "torch.bfloat16",
          "torch.int32",
          "torch.int8",
          "torch.int16",
      },
      {"torch.nn.modules."});
  // Functions a module keeps as an attribute (TransformerEncoderLayer.activation is
  // torch.nn.functional.relu): the op table's torch.nn.functional functions, by exact name.
  // They stay names in the tree; the loader accepts one only where a kind declares a
  // Callable attribute, and nothing ever calls the global — fxpack runs its own kernel.
  static const GlobalAllowlist with_functions = [] {
    GlobalAllowlist l = list;
    for (const std::string& f : OpRegistry::global().function_targets())
      if (f.starts_with("torch.nn.functional.")) l.names.insert(f);
    return l;
  }();
  return with_functions;
}

class Unpickler {
 public:
  Unpickler(std::span<const std::byte> data, const GlobalAllowlist& allow, const UnpicklerLimits& limits,
            std::string_view where)
      : tree_(std::make_shared<PickleTree>(data)),
        data_(reinterpret_cast<const std::byte*>(tree_->pickle_.get()), data.size()),
        allow_(allow),
        limits_(limits),
        where_(where) {}

  std::shared_ptr<const PickleTree> run();

 private:
  // One opcode family each: true if `op` is one of theirs (and was applied).
  bool stack_op(unsigned char op);
  bool scalar_op(unsigned char op);
  bool string_op(unsigned char op);
  bool container_op(unsigned char op);
  bool fill_op(unsigned char op);
  bool memo_op(unsigned char op);
  bool call_op(unsigned char op);
  [[noreturn]] void refuse(unsigned char op);
  // STOP: the tree, once the stack holds exactly its root and nothing follows.
  std::shared_ptr<const PickleTree> stop();

  [[noreturn]] void fail(const std::string& what) const {
    throw FormatError(where_ + ": " + what + " (byte offset " + std::to_string(op_offset_) + ")");
  }
  [[noreturn]] void truncated(std::size_t need, const char* what) const {
    throw FormatError(where_ + ": truncated pickle: " + what + " needs " + std::to_string(need) +
                      " byte(s) at byte offset " + std::to_string(pos_) + ", only " +
                      std::to_string(data_.size() - pos_) + " left (opcode at byte offset " +
                      std::to_string(op_offset_) + ")");
  }
  std::size_t remaining() const { return data_.size() - pos_; }
  const std::byte* take(std::size_t n, const char* what) {
    if (n > remaining()) truncated(n, what);
    const std::byte* p = data_.data() + pos_;
    pos_ += n;
    return p;
  }
  std::uint8_t u8(const char* what) { return static_cast<std::uint8_t>(*take(1, what)); }
  std::uint64_t uint_le(std::size_t n, const char* what) {
    const std::byte* p = take(n, what);
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
    return v;
  }
  std::int32_t i32(const char* what) {
    return static_cast<std::int32_t>(static_cast<std::uint32_t>(uint_le(4, what)));
  }
  // A length prefix of n bytes, checked against the input left.
  std::size_t length(std::size_t n, bool is_signed, const char* what) {
    std::uint64_t raw = uint_le(n, what);
    if (is_signed && n == 4 && static_cast<std::int32_t>(static_cast<std::uint32_t>(raw)) < 0) {
      fail(std::string(what) + ": negative length " +
           std::to_string(static_cast<std::int32_t>(static_cast<std::uint32_t>(raw))));
    }
    if (raw > remaining()) {
      fail(std::string(what) + ": length " + std::to_string(raw) + " exceeds the " +
           std::to_string(remaining()) + " byte(s) left (truncated or corrupt pickle)");
    }
    return static_cast<std::size_t>(raw);
  }
  std::string_view bytes_view(std::size_t n, const char* what) {
    return {reinterpret_cast<const char*>(take(n, what)), n};
  }
  // A protocol-0 text argument up to '\n' (bounded by the input).
  std::string_view line(const char* what) {
    const char* begin = reinterpret_cast<const char*>(data_.data()) + pos_;
    const void* nl = std::memchr(begin, '\n', remaining());
    if (!nl) {
      throw FormatError(where_ + ": truncated pickle: " + what + " has no end of line after byte offset " +
                        std::to_string(pos_) + " (opcode at byte offset " + std::to_string(op_offset_) + ")");
    }
    std::size_t n = static_cast<std::size_t>(static_cast<const char*>(nl) - begin);
    pos_ += n + 1;
    return {begin, n};
  }

  PyObject* make(PyKind kind) {
    if (tree_->object_count_ >= limits_.max_objects) {
      fail("more than " + std::to_string(limits_.max_objects) + " objects");
    }
    ++tree_->object_count_;
    auto* o = new (tree_->arena_.allocate(sizeof(PyObject), alignof(PyObject))) PyObject;
    o->kind = kind;
    o->offset = op_offset_;
    return o;
  }
  void note_child(PyObject* parent, const PyObject* child) {
    if (child->depth + 1 > parent->depth) parent->depth = child->depth + 1;
    if (parent->depth > limits_.max_depth) {
      fail("nesting deeper than " + std::to_string(limits_.max_depth) + " levels");
    }
  }

  void push(PyObject* o) { stack_.push_back(o); }
  PyObject* pop(const char* what) {
    if (stack_.size() <= stack_floor()) fail(std::string(what) + ": stack underflow");
    PyObject* o = stack_.back();
    stack_.pop_back();
    return o;
  }
  PyObject* top(const char* what) {
    if (stack_.size() <= stack_floor()) fail(std::string(what) + ": stack underflow");
    return stack_.back();
  }
  std::size_t stack_floor() const { return marks_.empty() ? 0 : marks_.back(); }
  // Pops everything down to the last MARK; the span is valid until the next pop_mark().
  std::span<PyObject* const> pop_mark(const char* what) {
    if (marks_.empty()) fail(std::string(what) + ": no MARK on the stack");
    std::size_t m = marks_.back();
    marks_.pop_back();
    popped_.assign(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return popped_;
  }

  PyObject* make_tuple(std::span<PyObject* const> items) {
    PyObject* t = make(PyKind::Tuple);
    t->items.reserve(items.size(), tree_->arena_);
    for (PyObject* i : items) {
      t->items.push_back(i, tree_->arena_);
      note_child(t, i);
    }
    return t;
  }
  // `module` and `name` are views into the tree's copy of the pickle.
  PyObject* make_global(std::string_view module, std::string_view name) {
    if (!allow_.allows(module, name)) {
      fail("global '" + std::string(module) + "." + std::string(name) + "' is not allowed");
    }
    PyObject* g = make(PyKind::Global);
    g->str = module;
    g->name = name;
    return g;
  }
  PyObject* make_str(std::string_view s, PyKind kind = PyKind::Str) {
    PyObject* o = make(kind);
    o->str = s;
    return o;
  }
  PyObject* make_int(std::int64_t v) {
    PyObject* o = make(PyKind::Int);
    o->integer = v;
    return o;
  }
  PyObject* make_bool(bool b) {
    PyObject* o = make(PyKind::Bool);
    o->boolean = b;
    return o;
  }
  PyObject* decode_long(std::string_view bytes) {
    std::size_t n = bytes.size();
    if (n == 0) return make_int(0);
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
    bool negative = (p[n - 1] & 0x80) != 0;
    // Bytes beyond 8 must be pure sign extension.
    for (std::size_t i = 8; i < n; ++i) {
      if (p[i] != (negative ? 0xff : 0x00)) fail("integer of " + std::to_string(n) + " bytes does not fit in 64 bits");
    }
    if (n > 8 && ((p[7] & 0x80) != 0) != negative) fail("integer of " + std::to_string(n) + " bytes does not fit in 64 bits");
    std::uint64_t v = 0;
    std::size_t k = std::min<std::size_t>(n, 8);
    for (std::size_t i = 0; i < k; ++i) v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
    if (negative && k < 8) v |= ~std::uint64_t{0} << (8 * k);
    return make_int(static_cast<std::int64_t>(v));
  }
  std::int64_t parse_decimal(std::string_view s, const char* what) {
    std::int64_t v = 0;
    if (!s.empty() && s.front() == '+') s.remove_prefix(1);
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) {
      fail(std::string(what) + ": bad decimal integer '" + std::string(s.substr(0, 40)) + "'");
    }
    return v;
  }
  // Python's pickler numbers memo entries 0, 1, 2, ... in order: those live in a vector. Any
  // other index (only hand-made pickles use one) goes to a map, so that a large index cannot
  // make the vector large.
  void memo_put(std::uint64_t idx, PyObject* o) {
    if (idx >= limits_.max_memo) fail("memo index " + std::to_string(idx) + " is out of range (limit " + std::to_string(limits_.max_memo) + ")");
    if (idx < memo_.size()) {
      memo_[idx] = o;
    } else if (idx == memo_.size() && !memo_sparse_.count(idx)) {
      memo_.push_back(o);
    } else {
      memo_sparse_[idx] = o;
    }
  }
  PyObject* memo_get(std::uint64_t idx) {
    if (idx < memo_.size()) return memo_[idx];
    auto it = memo_sparse_.find(idx);
    if (it == memo_sparse_.end()) fail("memo index " + std::to_string(idx) + " was never set (memo has " + std::to_string(memo_size()) + " entries)");
    return it->second;
  }
  std::size_t memo_size() const { return memo_.size() + memo_sparse_.size(); }
  void set_items(PyObject* target, std::span<PyObject* const> kv, const char* what) {
    if (kv.size() % 2) fail(std::string(what) + ": odd number of items");
    if (target->kind != PyKind::Dict && target->kind != PyKind::Reduce) {
      fail(std::string(what) + " on a " + py_kind_name(target->kind));
    }
    for (std::size_t i = 0; i < kv.size(); i += 2) {
      target->entries.push_back({kv[i], kv[i + 1]}, tree_->arena_);
      note_child(target, kv[i]);
      note_child(target, kv[i + 1]);
    }
  }
  void append_items(PyObject* target, std::span<PyObject* const> items, const char* what) {
    if (target->kind != PyKind::List && target->kind != PyKind::Reduce) {
      fail(std::string(what) + " on a " + py_kind_name(target->kind));
    }
    for (PyObject* i : items) {
      target->items.push_back(i, tree_->arena_);
      note_child(target, i);
    }
  }
  void reduce(bool new_obj, PyObject* callable, PyObject* args, PyObject* kwargs, const char* what) {
    if (args->kind != PyKind::Tuple) fail(std::string(what) + ": arguments must be a tuple, got " + py_kind_name(args->kind));
    if (callable->kind != PyKind::Global) fail(std::string(what) + ": callable must be a global, got " + py_kind_name(callable->kind));
    if (kwargs && kwargs->kind != PyKind::Dict) fail(std::string(what) + ": keyword arguments must be a dict");
    PyObject* r = make(PyKind::Reduce);
    r->callable = callable;
    r->args = args;
    r->kwargs = kwargs;
    r->new_obj = new_obj;
    note_child(r, args);
    if (kwargs) note_child(r, kwargs);
    push(r);
  }

  std::shared_ptr<PickleTree> tree_;
  std::span<const std::byte> data_;  // the tree's copy of the pickle
  const GlobalAllowlist& allow_;
  UnpicklerLimits limits_;
  std::string where_;
  std::size_t pos_ = 0;
  std::size_t op_offset_ = 0;
  std::vector<PyObject*> stack_;
  std::vector<std::size_t> marks_;
  std::vector<PyObject*> popped_;  // pop_mark()'s result
  std::vector<PyObject*> memo_;                                 // indexes 0 .. size-1
  std::unordered_map<std::uint64_t, PyObject*> memo_sparse_;   // any other index
};

std::shared_ptr<const PickleTree> Unpickler::run() {
  while (true) {
    op_offset_ = pos_;
    if (pos_ >= data_.size()) {
      throw FormatError(where_ + ": truncated pickle: no STOP opcode before the end of the data at byte offset " +
                        std::to_string(pos_));
    }
    const auto op = static_cast<unsigned char>(data_[pos_++]);
    if (op == '.') return stop();
    if (!(stack_op(op) || scalar_op(op) || string_op(op) || container_op(op) || fill_op(op) || memo_op(op) || call_op(op))) {
      refuse(op);
    }
  }
}

std::shared_ptr<const PickleTree> Unpickler::stop() {
  if (!marks_.empty()) fail("STOP with an open MARK");
  if (stack_.size() != 1) fail("STOP with " + std::to_string(stack_.size()) + " objects on the stack (expected 1)");
  if (pos_ != data_.size()) {
    fail(std::to_string(data_.size() - pos_) + " byte(s) of trailing data after STOP");
  }
  tree_->root_ = stack_.back();
  return tree_;
}

// PROTO, FRAME, MARK, POP, POP_MARK, DUP.
bool Unpickler::stack_op(unsigned char op) {
  switch (op) {
    case 0x80: {  // PROTO
      int proto = u8("PROTO");
      if (proto > 5) fail("unsupported pickle protocol " + std::to_string(proto));
      tree_->protocol_ = proto;
      break;
    }
    case 0x95:  // FRAME
      (void)length(8, false, "FRAME");
      break;
    case '(':  // MARK
      if (marks_.size() >= limits_.max_depth) fail("MARKs nested deeper than " + std::to_string(limits_.max_depth) + " levels");
      marks_.push_back(stack_.size());
      break;
    case '0':  // POP
      if (stack_.size() > stack_floor()) stack_.pop_back();
      else if (!marks_.empty()) marks_.pop_back();  // Python pops the mark itself
      else fail("POP: stack underflow");
      break;
    case '1':  // POP_MARK
      (void)pop_mark("POP_MARK");
      break;
    case '2':  // DUP
      push(top("DUP"));
      break;
    default: return false;
  }
  return true;
}

// None, bools, ints and floats.
bool Unpickler::scalar_op(unsigned char op) {
  switch (op) {
    case 'N': push(make(PyKind::None)); break;
    case 0x88: push(make_bool(true)); break;
    case 0x89: push(make_bool(false)); break;
    case 'J': push(make_int(i32("BININT"))); break;
    case 'K': push(make_int(u8("BININT1"))); break;
    case 'M': push(make_int(static_cast<std::int64_t>(uint_le(2, "BININT2")))); break;
    case 0x8a: {  // LONG1
      std::size_t n = length(1, false, "LONG1");
      push(decode_long(bytes_view(n, "LONG1")));
      break;
    }
    case 0x8b: {  // LONG4
      std::size_t n = length(4, true, "LONG4");
      push(decode_long(bytes_view(n, "LONG4")));
      break;
    }
    case 'I': {  // INT (text)
      std::string_view s = line("INT");
      if (s == "01") push(make_bool(true));
      else if (s == "00") push(make_bool(false));
      else push(make_int(parse_decimal(s, "INT")));
      break;
    }
    case 'L': {  // LONG (text)
      std::string_view s = line("LONG");
      if (!s.empty() && s.back() == 'L') s.remove_suffix(1);
      push(make_int(parse_decimal(s, "LONG")));
      break;
    }
    case 'G': {  // BINFLOAT (big-endian)
      const std::byte* p = take(8, "BINFLOAT");
      std::uint64_t bits = 0;
      for (int i = 0; i < 8; ++i) bits = (bits << 8) | static_cast<std::uint64_t>(p[i]);
      double d;
      std::memcpy(&d, &bits, sizeof d);
      PyObject* o = make(PyKind::Float);
      o->real = d;
      push(o);
      break;
    }
    case 'F': {  // FLOAT (text)
      std::string s(line("FLOAT"));
      double d = 0;
      if (s == "inf") d = INFINITY;
      else if (s == "-inf") d = -INFINITY;
      else if (s == "nan") d = NAN;
      else {
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
        if (ec != std::errc() || p != s.data() + s.size()) fail("FLOAT: bad number '" + s.substr(0, 40) + "'");
      }
      PyObject* o = make(PyKind::Float);
      o->real = d;
      push(o);
      break;
    }
    default: return false;
  }
  return true;
}

// str and bytes.
bool Unpickler::string_op(unsigned char op) {
  switch (op) {
    case 'X': { std::size_t n = length(4, false, "BINUNICODE"); push(make_str(bytes_view(n, "BINUNICODE"))); break; }
    case 0x8c: { std::size_t n = length(1, false, "SHORT_BINUNICODE"); push(make_str(bytes_view(n, "SHORT_BINUNICODE"))); break; }
    case 0x8d: { std::size_t n = length(8, false, "BINUNICODE8"); push(make_str(bytes_view(n, "BINUNICODE8"))); break; }
    case 'T': { std::size_t n = length(4, true, "BINSTRING"); push(make_str(bytes_view(n, "BINSTRING"))); break; }
    case 'U': { std::size_t n = length(1, false, "SHORT_BINSTRING"); push(make_str(bytes_view(n, "SHORT_BINSTRING"))); break; }
    case 'B': { std::size_t n = length(4, false, "BINBYTES"); push(make_str(bytes_view(n, "BINBYTES"), PyKind::Bytes)); break; }
    case 'C': { std::size_t n = length(1, false, "SHORT_BINBYTES"); push(make_str(bytes_view(n, "SHORT_BINBYTES"), PyKind::Bytes)); break; }
    case 0x8e: { std::size_t n = length(8, false, "BINBYTES8"); push(make_str(bytes_view(n, "BINBYTES8"), PyKind::Bytes)); break; }
    case 0x96: { std::size_t n = length(8, false, "BYTEARRAY8"); push(make_str(bytes_view(n, "BYTEARRAY8"), PyKind::Bytes)); break; }
    default: return false;
  }
  return true;
}

// Tuples, lists, dicts and sets.
bool Unpickler::container_op(unsigned char op) {
  switch (op) {
    case ')': push(make(PyKind::Tuple)); break;
    case ']': push(make(PyKind::List)); break;
    case '}': push(make(PyKind::Dict)); break;
    case 0x8f: push(make(PyKind::Set)); break;
    case 't': {  // TUPLE
      auto items = pop_mark("TUPLE");
      push(make_tuple(items));
      break;
    }
    case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
      std::size_t n = op - 0x84u;
      if (stack_.size() < stack_floor() + n) fail("TUPLE" + std::to_string(n) + ": stack underflow");
      PyObject* items[3];
      std::copy(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end(), items);
      stack_.resize(stack_.size() - n);
      push(make_tuple(std::span<PyObject* const>(items, n)));
      break;
    }
    case 'l': {  // LIST
      auto items = pop_mark("LIST");
      PyObject* l = make(PyKind::List);
      append_items(l, items, "LIST");
      push(l);
      break;
    }
    case 'd': {  // DICT
      auto items = pop_mark("DICT");
      PyObject* d = make(PyKind::Dict);
      set_items(d, items, "DICT");
      push(d);
      break;
    }
    case 0x91: {  // FROZENSET
      auto items = pop_mark("FROZENSET");
      PyObject* s = make(PyKind::FrozenSet);
      for (PyObject* i : items) {
        s->items.push_back(i, tree_->arena_);
        note_child(s, i);
      }
      push(s);
      break;
    }
    default: return false;
  }
  return true;
}

// APPEND(S), SETITEM(S), ADDITEMS: filling the container on top of the stack.
bool Unpickler::fill_op(unsigned char op) {
  switch (op) {
    case 'a': {  // APPEND
      PyObject* v = pop("APPEND");
      PyObject* l = top("APPEND");
      PyObject* vv[] = {v};
      append_items(l, vv, "APPEND");
      break;
    }
    case 'e': {  // APPENDS
      auto items = pop_mark("APPENDS");
      append_items(top("APPENDS"), items, "APPENDS");
      break;
    }
    case 's': {  // SETITEM
      PyObject* v = pop("SETITEM");
      PyObject* k = pop("SETITEM");
      PyObject* kv[] = {k, v};
      set_items(top("SETITEM"), kv, "SETITEM");
      break;
    }
    case 'u': {  // SETITEMS
      auto items = pop_mark("SETITEMS");
      set_items(top("SETITEMS"), items, "SETITEMS");
      break;
    }
    case 0x90: {  // ADDITEMS
      auto items = pop_mark("ADDITEMS");
      PyObject* s = top("ADDITEMS");
      if (s->kind != PyKind::Set) fail(std::string("ADDITEMS on a ") + py_kind_name(s->kind));
      for (PyObject* i : items) {
        s->items.push_back(i, tree_->arena_);
        note_child(s, i);
      }
      break;
    }
    default: return false;
  }
  return true;
}

// PUT and GET in their forms.
bool Unpickler::memo_op(unsigned char op) {
  switch (op) {
    case 'q': memo_put(u8("BINPUT"), top("BINPUT")); break;
    case 'r': memo_put(uint_le(4, "LONG_BINPUT"), top("LONG_BINPUT")); break;
    case 'p': {
      std::int64_t i = parse_decimal(line("PUT"), "PUT");
      if (i < 0) fail("PUT: negative memo index " + std::to_string(i));
      memo_put(static_cast<std::uint64_t>(i), top("PUT"));
      break;
    }
    case 0x94: memo_put(memo_size(), top("MEMOIZE")); break;
    case 'h': push(memo_get(u8("BINGET"))); break;
    case 'j': push(memo_get(uint_le(4, "LONG_BINGET"))); break;
    case 'g': {
      std::int64_t i = parse_decimal(line("GET"), "GET");
      if (i < 0) fail("GET: negative memo index " + std::to_string(i));
      push(memo_get(static_cast<std::uint64_t>(i)));
      break;
    }
    default: return false;
  }
  return true;
}

// Globals, calls (REDUCE, NEWOBJ), BUILD and persistent ids.
bool Unpickler::call_op(unsigned char op) {
  switch (op) {
    case 'c': {  // GLOBAL "module\nname\n"
      std::string_view module = line("GLOBAL");
      std::string_view name = line("GLOBAL");
      push(make_global(module, name));
      break;
    }
    case 0x93: {  // STACK_GLOBAL
      PyObject* name = pop("STACK_GLOBAL");
      PyObject* module = pop("STACK_GLOBAL");
      if (module->kind != PyKind::Str || name->kind != PyKind::Str) {
        fail("STACK_GLOBAL: module and name must be str");
      }
      push(make_global(module->str, name->str));
      break;
    }
    case 'R': {  // REDUCE
      PyObject* args = pop("REDUCE");
      PyObject* callable = pop("REDUCE");
      reduce(false, callable, args, nullptr, "REDUCE");
      break;
    }
    case 0x81: {  // NEWOBJ
      PyObject* args = pop("NEWOBJ");
      PyObject* cls = pop("NEWOBJ");
      reduce(true, cls, args, nullptr, "NEWOBJ");
      break;
    }
    case 0x92: {  // NEWOBJ_EX
      PyObject* kwargs = pop("NEWOBJ_EX");
      PyObject* args = pop("NEWOBJ_EX");
      PyObject* cls = pop("NEWOBJ_EX");
      reduce(true, cls, args, kwargs, "NEWOBJ_EX");
      break;
    }
    case 'b': {  // BUILD
      PyObject* state = pop("BUILD");
      PyObject* obj = top("BUILD");
      if (obj->kind != PyKind::Reduce) fail(std::string("BUILD on a ") + py_kind_name(obj->kind));
      if (obj->state) fail("BUILD applied twice to one object");
      obj->state = state;
      note_child(obj, state);
      break;
    }
    case 'Q': {  // BINPERSID
      PyObject* pid = pop("BINPERSID");
      PyObject* o = make(PyKind::PersistentId);
      o->args = pid;
      note_child(o, pid);
      push(o);
      break;
    }
    default: return false;
  }
  return true;
}

// Opcodes that need code or outside state, and unknown ones.
void Unpickler::refuse(unsigned char op) {
  switch (op) {
    case 'P': fail("opcode PERSID (text persistent id) is not supported");
    case 'S': fail("opcode STRING (protocol 0 text string) is not supported");
    case 'V': fail("opcode UNICODE (protocol 0 text string) is not supported");
    case 'i': fail("opcode INST is not supported (it instantiates a class)");
    case 'o': fail("opcode OBJ is not supported (it instantiates a class)");
    case 0x82: case 0x83: case 0x84: fail("opcodes EXT1/EXT2/EXT4 (copyreg extension registry) are not supported");
    case 0x97: fail("opcode NEXT_BUFFER (out-of-band buffer) is not supported");
    case 0x98: fail("opcode READONLY_BUFFER is not supported");
    default: {
      char buf[8];
      std::snprintf(buf, sizeof buf, "0x%02x", op);
      fail(std::string("unknown opcode ") + buf);
    }
  }
}

std::shared_ptr<const PickleTree> unpickle(std::span<const std::byte> data, const GlobalAllowlist& allowlist,
                                           const UnpicklerLimits& limits, std::string_view where) {
  return Unpickler(data, allowlist, limits, where).run();
}

namespace {
void repr_into(std::string& out, const PyObject& o, std::size_t depth) {
  if (out.size() > 400) {
    out += "...";
    return;
  }
  if (depth == 0) {
    out += "...";
    return;
  }
  auto seq = [&](const ArenaList<const PyObject*>& items, const char* open, const char* close) {
    out += open;
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (i) out += ", ";
      if (out.size() > 400) {
        out += "...";
        break;
      }
      repr_into(out, *items[i], depth - 1);
    }
    out += close;
  };
  switch (o.kind) {
    case PyKind::None: out += "None"; break;
    case PyKind::Bool: out += o.boolean ? "True" : "False"; break;
    case PyKind::Int: out += std::to_string(o.integer); break;
    case PyKind::Float: {
      char buf[40];
      std::snprintf(buf, sizeof buf, "%.17g", o.real);
      out += buf;
      break;
    }
    case PyKind::Str: out.append("'").append(o.str.substr(0, 80)).append(o.str.size() > 80 ? "...'" : "'"); break;
    case PyKind::Bytes: out += "b<" + std::to_string(o.str.size()) + " bytes>"; break;
    case PyKind::Tuple: seq(o.items, "(", ")"); break;
    case PyKind::List: seq(o.items, "[", "]"); break;
    case PyKind::Set: seq(o.items, "{", "}"); break;
    case PyKind::FrozenSet: seq(o.items, "frozenset({", "})"); break;
    case PyKind::Dict:
      out += "{";
      for (std::size_t i = 0; i < o.entries.size(); ++i) {
        if (i) out += ", ";
        if (out.size() > 400) {
          out += "...";
          break;
        }
        repr_into(out, *o.entries[i].first, depth - 1);
        out += ": ";
        repr_into(out, *o.entries[i].second, depth - 1);
      }
      out += "}";
      break;
    case PyKind::Global: out += o.qualified_name(); break;
    case PyKind::Reduce:
      repr_into(out, *o.callable, depth - 1);
      repr_into(out, *o.args, depth - 1);
      break;
    case PyKind::PersistentId:
      out += "persistent_id(";
      repr_into(out, *o.args, depth - 1);
      out += ")";
      break;
  }
}
}  // namespace

std::string py_repr(const PyObject& obj, std::size_t max_depth) {
  std::string out;
  repr_into(out, obj, max_depth);
  return out;
}

}  // namespace fxpack::interop
