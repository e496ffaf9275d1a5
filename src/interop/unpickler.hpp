// A restricted unpickler for Python pickles (protocols 2-5, plus the protocol 0/1 opcodes
// those streams still use, such as GLOBAL and MARK).
//
// Nothing is ever executed or instantiated: the stream is decoded into a neutral object
// tree (PyObject) that records what Python *would* have done — a REDUCE or NEWOBJ becomes a
// Reduce node holding the callable and its arguments, BUILD attaches the state to that
// node, persistent ids become PersistentId nodes. The caller interprets the tree.
//
// Hostile input:
//   - GLOBAL / STACK_GLOBAL names are checked against an allowlist ("module.name") when
//     the opcode is read; anything else (os.system, builtins.eval, subprocess.Popen, ...)
//     is refused with a FormatError naming the global and the byte offset;
//   - memo indexes are checked (GET of an unset slot, memo size bound);
//   - every length is checked against the input that is left before anything is
//     allocated; negative lengths are refused;
//   - the construction nesting depth, the MARK depth and the total number of objects are
//     bounded (UnpicklerLimits);
//   - a stream cut short says "truncated" with the byte offset;
//   - opcodes that need code or outside state (INST, OBJ, EXT1-4, NEXT_BUFFER, text
//     STRING/UNICODE/PERSID) are refused by name.
// Every refusal is an fxpack::FormatError that starts with the `where` given (record name).
//
// Objects live in an arena owned by PickleTree, which also keeps one copy of the pickle's
// bytes: str/bytes contents and global names are views into that copy, item and entry lists
// are allocated from the arena, so building a tree costs a few large allocations and freeing
// it none per object (loading a model makes tens of thousands of objects). Containers may be
// shared (memo) and, in a hostile stream, even cyclic. Anything that walks a tree recursively must bound its depth
// (PickleTree::max_depth is what the unpickler saw while building, not a guarantee for
// containers mutated after they were nested).
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <memory_resource>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fxpack::interop {

enum class PyKind : std::uint8_t {
  None,
  Bool,
  Int,
  Float,
  Str,
  Bytes,
  Tuple,
  List,
  Dict,
  Set,
  FrozenSet,
  Global,        // a reference to module.name (never resolved)
  Reduce,        // callable(*args) (REDUCE) or cls.__new__(cls, *args) (NEWOBJ / NEWOBJ_EX)
  PersistentId,  // persistent_load(pid)
};

// "None", "bool", "int", "float", "str", "bytes", "tuple", "list", "dict", "set",
// "frozenset", "global", "reduce", "persistent_id".
const char* py_kind_name(PyKind kind);

class Unpickler;

// A list inside a PickleTree's arena: read-only outside the unpickler, which grows it by
// doubling (the arena frees nothing, so a list costs at most twice its final size).
template <class T>
class ArenaList {
 public:
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  const T& operator[](std::size_t i) const noexcept { return data_[i]; }
  const T* begin() const noexcept { return data_; }
  const T* end() const noexcept { return data_ + size_; }
  std::reverse_iterator<const T*> rbegin() const noexcept { return std::reverse_iterator<const T*>(end()); }
  std::reverse_iterator<const T*> rend() const noexcept { return std::reverse_iterator<const T*>(begin()); }

 private:
  friend class Unpickler;
  void reserve(std::size_t n, std::pmr::memory_resource& arena) {
    if (n <= capacity_) return;
    T* p = static_cast<T*>(arena.allocate(n * sizeof(T), alignof(T)));
    for (std::size_t i = 0; i < size_; ++i) p[i] = data_[i];
    data_ = p;
    capacity_ = n;
  }
  void push_back(const T& v, std::pmr::memory_resource& arena) {
    if (size_ == capacity_) reserve(capacity_ < 2 ? 4 : 2 * capacity_, arena);
    data_[size_++] = v;
  }

  T* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

// Made only by the unpickler, inside a PickleTree's arena (it is never destroyed one by one:
// everything it refers to lives in the same arena).
struct PyObject {
  PyKind kind = PyKind::None;
  bool boolean = false;
  bool new_obj = false;     // Reduce made by NEWOBJ / NEWOBJ_EX
  std::uint32_t depth = 1;  // construction nesting depth
  std::int64_t integer = 0;
  double real = 0.0;
  std::string_view str;   // Str / Bytes contents; Global: the module (a view into the tree's copy of the pickle)
  std::string_view name;  // Global: the name inside the module
  // Tuple/List/Set/FrozenSet items; Reduce: items added by APPEND(S) to the result.
  ArenaList<const PyObject*> items;
  // Dict entries in insertion order (duplicates kept; look-ups take the last);
  // Reduce: entries added by SETITEM(S) to the result.
  ArenaList<std::pair<const PyObject*, const PyObject*>> entries;
  // Reduce: the callable (or class for NEWOBJ), its argument tuple, keyword arguments
  // (NEWOBJ_EX, else null) and the state given by BUILD (else null).
  // PersistentId: `args` is the pid object.
  const PyObject* callable = nullptr;
  const PyObject* args = nullptr;
  const PyObject* kwargs = nullptr;
  const PyObject* state = nullptr;
  std::size_t offset = 0;     // byte offset of the opcode that made it

  bool is(PyKind k) const { return kind == k; }
  // "module.name" for a Global, "" otherwise.
  std::string qualified_name() const;
  // Global whose module.name equals `qualified`.
  bool is_global(std::string_view qualified) const;
  // Reduce whose callable is the Global `qualified`.
  bool is_call_of(std::string_view qualified) const;
  // Last value of a Dict entry (or Reduce SETITEM entry) whose key is the Str `key`.
  const PyObject* find(std::string_view key) const;
};

struct UnpicklerLimits {
  std::size_t max_objects = std::size_t{1} << 22;  // every object created
  std::size_t max_depth = 256;                     // construction nesting and MARK depth
  std::size_t max_memo = std::size_t{1} << 22;     // memo entries
};

class PickleTree {
 public:
  explicit PickleTree(std::span<const std::byte> pickle);
  PickleTree(const PickleTree&) = delete;
  PickleTree& operator=(const PickleTree&) = delete;

  const PyObject& root() const { return *root_; }
  std::size_t object_count() const { return object_count_; }
  int protocol() const { return protocol_; }

 private:
  friend class Unpickler;
  std::unique_ptr<char[]> pickle_;  // the bytes decoded; every string_view of the tree points here
  std::pmr::monotonic_buffer_resource arena_;
  std::size_t object_count_ = 0;
  const PyObject* root_ = nullptr;
  int protocol_ = 0;
};

// Accepted globals: exact "module.name"s, and every `name` (an identifier) of a module under
// one of `module_prefixes` ("torch.nn.modules." admits torch.nn.modules.conv.Conv2d). A
// global is only a name in the tree; what may be done with it is the caller's decision.
struct GlobalAllowlist {
  GlobalAllowlist(std::initializer_list<std::string> exact, std::vector<std::string> prefixes = {})
      : names(exact), module_prefixes(std::move(prefixes)) {}
  bool allows(std::string_view module, std::string_view name) const;

  std::set<std::string, std::less<>> names;
  std::vector<std::string> module_prefixes;
};

// The globals a torch.package of an fx GraphModule needs: the fx reduce functions, the
// tensor/parameter rebuild functions, the storage types of fxpack's dtypes,
// collections.OrderedDict, builtins.set (nn.Module's _non_persistent_buffers_set), the fx
// Tracer class reference, torch.device, the dtype objects, and every class of
// torch.nn.modules (the loader rebuilds known leaf kinds, keeps other torch.nn classes as
// data, and refuses the rest); and the op table's torch.nn.functional functions, which a
// module may hold as an attribute (accepted only where a kind declares a Callable one).
const GlobalAllowlist& torch_package_allowlist();

// Decodes a whole pickle (up to and including STOP; trailing bytes are refused).
// `where` prefixes every error message (e.g. the record name).
std::shared_ptr<const PickleTree> unpickle(std::span<const std::byte> data,
                                           const GlobalAllowlist& allowlist,
                                           const UnpicklerLimits& limits = {},
                                           std::string_view where = "pickle");

// A short human-readable rendering (depth and length bounded), for messages and debugging.
std::string py_repr(const PyObject& obj, std::size_t max_depth = 6);

}  // namespace fxpack::interop
