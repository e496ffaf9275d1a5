#include "interop/torch_package.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <span>
#include <unordered_map>
#include <unordered_set>

#include "fxpack/codegen.hpp"
#include "fxpack/errors.hpp"
#include "fxpack/ops.hpp"
#include "interop/torch_pickler.hpp"

namespace fxpack::interop {

namespace {

std::string first_component(std::string_view name) {
  auto slash = name.find('/');
  if (slash == std::string_view::npos) return {};
  return std::string(name.substr(0, slash));
}

std::string root_or_empty(const zip::ZipReader& zip) {
  const auto& entries = zip.entries();
  if (entries.empty()) return {};
  std::string root = first_component(entries.front().name);
  if (root.empty()) return {};
  for (const auto& e : entries) {
    if (e.name.size() <= root.size() || e.name.compare(0, root.size(), root) != 0 || e.name[root.size()] != '/') {
      return {};
    }
  }
  if (!zip.find(root + "/.data/extern_modules")) return {};
  return root;
}

// nn.Module bookkeeping in __dict__ that carries nothing fxpack needs (hooks must be empty).
// Sorted: looked up for every member of every module.
constexpr std::string_view kModuleInternals[] = {
    "_backward_hooks", "_backward_pre_hooks", "_forward_hooks", "_forward_hooks_always_called",
    "_forward_hooks_with_kwargs", "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_is_full_backward_hook",
    "_load_state_dict_post_hooks", "_load_state_dict_pre_hooks", "_non_persistent_buffers_set",
    "_state_dict_hooks", "_state_dict_pre_hooks", "training"};
static_assert(std::is_sorted(std::begin(kModuleInternals), std::end(kModuleInternals)));
bool is_module_internal(std::string_view key) {
  return std::binary_search(std::begin(kModuleInternals), std::end(kModuleInternals), key);
}

struct StorageEntry {
  std::shared_ptr<Storage> storage;
  DType dtype;
  std::int64_t numel;
};

// What is being read, for error messages: pieces of text chained to the description of what
// contains it, joined only when a message is made — a successful load builds none of them
// (it reads tens of thousands of values). Every piece must outlive the What.
class What {
 public:
  What(const char* text) : text_{text, {}, {}} {}  // NOLINT: a literal is a What
  What(const std::string& text) : text_{text, {}, {}} {}  // NOLINT
  What(const What& parent, std::string_view a, std::string_view b = {}, std::string_view c = {})
      : parent_(&parent), text_{a, b, c} {}
  std::string str() const {
    std::string s = parent_ ? parent_->str() : std::string();
    for (std::string_view t : text_) s.append(t);
    return s;
  }

 private:
  const What* parent_ = nullptr;
  std::string_view text_[3];
};

std::string operator+(const What& w, std::string_view s) { return w.str().append(s); }

// The storage classes PyTorch pickles as torch.<name>.
struct StorageClass {
  std::string_view name;
  DType dtype;
};
constexpr StorageClass kStorageClasses[] = {
    {"FloatStorage", DType::Float32}, {"DoubleStorage", DType::Float64},   {"LongStorage", DType::Int64},
    {"BoolStorage", DType::Bool},     {"ByteStorage", DType::UInt8},       {"HalfStorage", DType::Float16},
    {"BFloat16Storage", DType::BFloat16}, {"IntStorage", DType::Int32},   {"CharStorage", DType::Int8},
    {"ShortStorage", DType::Int16}};

// Whether a name was seen before, in order: a scan of the few names a module's dicts hold,
// a hash set beyond that (a hostile dict may be large).
class SeenNames {
 public:
  bool insert(std::string_view name) {
    if (set_.empty()) {
      for (std::size_t i = 0; i < count_; ++i)
        if (small_[i] == name) return false;
      if (count_ < small_.size()) {
        small_[count_++] = name;
        return true;
      }
      set_.insert(small_.begin(), small_.end());
    }
    return set_.insert(name).second;
  }

 private:
  std::array<std::string_view, 16> small_;
  std::size_t count_ = 0;
  std::unordered_set<std::string_view> set_;
};

class Loader {
 public:
  Loader(const zip::ZipReader& zip, std::string root, std::string record, const TorchPackageOptions& opts)
      : zip_(zip), root_(std::move(root)), record_(std::move(record)), opts_(opts),
        dialect_(torch_package_dialect(zip_)) {}

  std::shared_ptr<GraphModule> load();

 private:
  [[noreturn]] void fail(const std::string& what) const { throw FormatError(record_ + ": " + what); }
  [[noreturn]] void fail_at(const PyObject& o, const std::string& what) const {
    throw FormatError(record_ + ": " + what + " (object made at byte offset " + std::to_string(o.offset) + ")");
  }
  const PyObject& tuple_of(const PyObject* o, std::size_t n, const What& what) const {
    if (!o || o->kind != PyKind::Tuple) fail(what + " must be a tuple");
    if (o->items.size() != n) {
      fail_at(*o, what + " must have " + std::to_string(n) + " items, got " + std::to_string(o->items.size()));
    }
    return *o;
  }
  std::string_view str_of(const PyObject* o, const What& what) const {
    if (!o || o->kind != PyKind::Str) fail(what + " must be a str, got " + (o ? py_kind_name(o->kind) : "nothing"));
    return o->str;
  }
  std::int64_t int_of(const PyObject* o, const What& what) const {
    if (!o || o->kind != PyKind::Int) fail(what + " must be an int, got " + (o ? py_kind_name(o->kind) : "nothing"));
    return o->integer;
  }
  // collections.OrderedDict() (+ SETITEMS) or a plain dict: entries with unique str keys
  // (views into the pickle).
  std::vector<std::pair<std::string_view, const PyObject*>> ordered_dict(const PyObject* o, const What& what) const;
  bool is_empty_ordered_dict(const PyObject* o) const {
    return o && ((o->kind == PyKind::Dict && o->entries.empty()) ||
                 (o->is_call_of("collections.OrderedDict") && o->args->items.empty() && o->entries.empty() &&
                  o->items.empty() && !o->state));
  }
  bool is_tensor(const PyObject& o) const {
    return o.is_call_of("torch._utils._rebuild_tensor_v2") || o.is_call_of("torch._utils._rebuild_parameter") ||
           o.is_call_of("torch._utils._rebuild_parameter_with_state");
  }
  // A tensor's size and stride, read from its _rebuild_tensor_v2 arguments.
  struct Layout {
    std::size_t rank = 0;
    std::int64_t dims[Shape::kMaxDims];
    std::int64_t strides[Shape::kMaxDims];
    std::int64_t numel = 1;
    bool contiguous = true;
  };
  Tensor tensor(const PyObject& o, const What& what);
  // The _rebuild_tensor_v2 call of a tensor or parameter, its form checked.
  const PyObject& rebuild_tensor_call(const PyObject& o, const What& what) const;
  Layout layout(const PyObject& rebuild_call, const What& what) const;
  // A non-contiguous view's elements copied into a tensor of their own.
  Tensor gathered(const PyObject& rebuild_call, const Storage& st, std::int64_t storage_numel, std::int64_t offset,
                  const Layout& l, DType dtype, const What& what) const;
  std::shared_ptr<Storage> storage(const PyObject& pid, DType& dtype, std::int64_t& numel, const What& what);
  Value value(const PyObject& o, const What& what, std::size_t depth);
  std::shared_ptr<Module> module(const PyObject& o, const std::string& path, std::size_t depth);
  // data_only: a torch.nn class fxpack has no kind for, kept as data (see module()).
  void fill_module(Module& m, const PyObject& state, const std::string& path, std::size_t depth, bool top_level,
                   bool data_only = false);
  // A module's __dict__ by name: a few dozen entries, so a sorted vector (no hashing, no
  // copies of the names) — loading a model builds hundreds of these. Names checked unique.
  using Fields = std::vector<std::pair<std::string_view, const PyObject*>>;
  Fields fields_of(const PyObject& state, const std::string& where) const;
  void other_members(Module& m, const PyObject& state, const std::string& where, std::size_t depth, bool top_level,
                     bool data_only);

  const zip::ZipReader& zip_;
  std::string root_;
  std::string record_;
  TorchPackageOptions opts_;
  Dialect dialect_;
  std::unordered_map<std::string, StorageEntry> storages_;
  // A module object pickled once (memo) and used under several names stays one Module.
  std::unordered_map<const PyObject*, std::shared_ptr<Module>> modules_;
  // The modules being built, outermost first (at most max_module_depth of them).
  std::vector<const PyObject*> building_;
  // Objects visited while converting values: shared sub-objects could otherwise expand
  // exponentially (a list holding the same list twice, 60 levels deep).
  std::size_t budget_ = std::size_t{1} << 20;
  void spend(const PyObject& o) {
    if (budget_ == 0) fail_at(o, "attribute values expand to more than 1048576 objects");
    --budget_;
  }
};

std::vector<std::pair<std::string_view, const PyObject*>> Loader::ordered_dict(const PyObject* o, const What& what) const {
  if (!o) fail(what + " is missing");
  if (o->kind != PyKind::Dict) {
    if (!o->is_call_of("collections.OrderedDict")) fail_at(*o, what + " must be an OrderedDict, got " + py_repr(*o, 2));
    if (!o->args->items.empty() || !o->items.empty() || o->state || o->kwargs) {
      fail_at(*o, what + ": only OrderedDict() filled by SETITEMS is supported");
    }
  }
  std::vector<std::pair<std::string_view, const PyObject*>> out;
  SeenNames seen;
  out.reserve(o->entries.size());
  const What key_what(what, " key");
  for (const auto& [k, v] : o->entries) {
    const std::string_view key = str_of(k, key_what);
    if (!seen.insert(key)) fail_at(*o, what + ": key '" + std::string(key) + "' repeated");
    out.emplace_back(key, v);
  }
  return out;
}

std::shared_ptr<Storage> Loader::storage(const PyObject& pid, DType& dtype, std::int64_t& numel, const What& what) {
  if (pid.kind != PyKind::PersistentId) fail_at(pid, what + ": the storage must be a persistent id, got " + py_repr(pid, 2));
  const PyObject& t = tuple_of(pid.args, 5, What(what, ": storage persistent id"));
  if (str_of(t.items[0], What(what, ": persistent id type")) != "storage") {
    fail_at(pid, what + ": persistent id of type '" + std::string(t.items[0]->str) + "' where a storage was expected");
  }
  const PyObject* type = t.items[1];
  if (type->kind != PyKind::Global) fail_at(pid, what + ": storage type must be a global");
  const StorageClass* cls = nullptr;
  if (type->str == "torch") {
    for (const StorageClass& c : kStorageClasses)
      if (type->name == c.name) cls = &c;
  }
  if (!cls) fail_at(pid, what + ": unsupported storage type " + type->qualified_name());
  dtype = cls->dtype;
  std::string key;
  if (t.items[2]->kind == PyKind::Int) {
    if (t.items[2]->integer < 0) fail_at(pid, what + ": negative storage key");
    key = std::to_string(t.items[2]->integer);
  } else {
    key = str_of(t.items[2], What(what, ": storage key"));
    if (key.empty() || key.size() > 64 || key.find_first_not_of("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-") != std::string::npos) {
      fail_at(pid, what + ": bad storage key '" + key.substr(0, 64) + "'");
    }
  }
  const std::string_view location = str_of(t.items[3], What(what, ": storage location"));
  if (location != "cpu") {
    fail_at(pid, what + ": storage location '" + std::string(location) + "' is not supported (only 'cpu')");
  }
  numel = int_of(t.items[4], What(what, ": storage size"));
  if (numel < 0) fail_at(pid, what + ": negative storage size " + std::to_string(numel));
  const std::size_t esize = element_size(dtype);
  if (static_cast<std::uint64_t>(numel) > std::numeric_limits<std::uint64_t>::max() / 2 / esize) {
    fail_at(pid, what + ": storage size " + std::to_string(numel) + " is too large");
  }
  const std::size_t nbytes = static_cast<std::size_t>(numel) * esize;

  if (auto it = storages_.find(key); it != storages_.end()) {
    if (it->second.dtype != dtype || it->second.numel != numel) {
      fail_at(pid, what + ": storage " + key + " is used with two different types or sizes");
    }
    return it->second.storage;
  }
  std::string name;
  name.reserve(root_.size() + key.size() + 15);
  name.append(root_).append("/.data/").append(key).append(".storage");
  const zip::EntryInfo* e = zip_.find(name);
  if (!e) fail_at(pid, what + ": storage record " + name + " is missing");
  if (e->uncompressed_size != nbytes) {
    fail(name + " has " + std::to_string(e->uncompressed_size) + " bytes, but " + what.str() + " needs a " +
         std::string(dtype_name(dtype)) + " storage of " + std::to_string(numel) + " elements (" +
         std::to_string(nbytes) + " bytes)");
  }
  std::shared_ptr<Storage> s;
  if (!opts_.copy_tensors && e->method == zip::Method::store) {
    zip::StoredView v = zip_.view(*e);
    // Kernels need element alignment only; 16 also admits archives held in heap buffers.
    if (v.bytes.size() == nbytes && reinterpret_cast<std::uintptr_t>(v.bytes.data()) % 16 == 0) {
      // The CRC is checked when the tensor's bytes are first used (Storage::borrow).
      s = Storage::borrow(v.bytes.data(), nbytes, std::move(v.owner), opts_.verify_crc ? zip_.verifier(*e) : nullptr,
                          v.release);
    }
  }
  if (!s) {
    std::vector<std::byte> bytes = zip_.read(name);
    if (bytes.size() != nbytes) fail(name + ": read " + std::to_string(bytes.size()) + " bytes, expected " + std::to_string(nbytes));
    s = Storage::allocate(nbytes);
    if (nbytes) std::memcpy(s->data(), bytes.data(), nbytes);
  }
  storages_.emplace(std::move(key), StorageEntry{s, dtype, numel});
  return s;
}

const PyObject& Loader::rebuild_tensor_call(const PyObject& o, const What& what) const {
  const PyObject* t = &o;
  const bool with_state = o.is_call_of("torch._utils._rebuild_parameter_with_state");
  if (with_state || o.is_call_of("torch._utils._rebuild_parameter")) {
    const PyObject& a = tuple_of(o.args, with_state ? 4 : 3, What(what, ": _rebuild_parameter arguments"));
    if (a.items[1]->kind != PyKind::Bool) fail_at(o, what + ": requires_grad must be a bool");
    if (!is_empty_ordered_dict(a.items[2])) fail_at(o, what + ": backward hooks are not supported");
    // 2.x's _rebuild_parameter_with_state: the Parameter's own __dict__, which fxpack has
    // nowhere to keep; only an empty one is accepted.
    if (with_state && !(a.items[3]->kind == PyKind::None || (a.items[3]->kind == PyKind::Dict && a.items[3]->entries.empty()))) {
      fail_at(o, what + ": parameter state " + py_repr(*a.items[3], 2) + " is not supported");
    }
    t = a.items[0];
    if (!t->is_call_of("torch._utils._rebuild_tensor_v2")) fail_at(o, what + ": parameter data must be a _rebuild_tensor_v2 call");
  }
  if (!t->is_call_of("torch._utils._rebuild_tensor_v2")) fail_at(*t, what + ": expected a tensor");
  if (t->state || !t->entries.empty() || !t->items.empty() || t->kwargs) fail_at(*t, what + ": unexpected tensor state");
  const PyObject* args = t->args;
  if (args->items.size() != 6 && args->items.size() != 7) {
    fail_at(*t, what + ": _rebuild_tensor_v2 takes 6 or 7 arguments, got " + std::to_string(args->items.size()));
  }
  if (args->items.size() == 7 && !(args->items[6]->kind == PyKind::None || is_empty_ordered_dict(args->items[6]))) {
    fail_at(*t, what + ": tensor metadata is not supported");
  }
  return *t;
}

Loader::Layout Loader::layout(const PyObject& t, const What& what) const {
  const PyObject* size = t.args->items[2];
  const PyObject* stride = t.args->items[3];
  if (size->kind != PyKind::Tuple || stride->kind != PyKind::Tuple) fail_at(t, what + ": size and stride must be tuples");
  if (size->items.size() != stride->items.size()) fail_at(t, what + ": size and stride differ in length");
  if (size->items.size() > Shape::kMaxDims) {
    fail_at(t, what + ": " + std::to_string(size->items.size()) + " dimensions (at most " + std::to_string(Shape::kMaxDims) + ")");
  }
  if (t.args->items[4]->kind != PyKind::Bool) fail_at(t, what + ": requires_grad must be a bool");
  if (!is_empty_ordered_dict(t.args->items[5])) fail_at(t, what + ": backward hooks are not supported");
  Layout l;
  l.rank = size->items.size();
  const What size_what(what, ": size"), stride_what(what, ": stride");
  for (std::size_t i = 0; i < l.rank; ++i) {
    std::int64_t d = int_of(size->items[i], size_what);
    std::int64_t s = int_of(stride->items[i], stride_what);
    if (d < 0) fail_at(t, what + ": negative size " + std::to_string(d));
    if (d != 0 && l.numel > std::numeric_limits<std::int64_t>::max() / d) fail_at(t, what + ": size overflows");
    l.numel *= d;
    l.dims[i] = d;
    l.strides[i] = s;
  }
  if (l.numel > 0) {
    std::int64_t expected = 1;
    for (std::size_t i = l.rank; i-- > 0;) {
      if (l.dims[i] != 1 && l.strides[i] != expected) l.contiguous = false;
      expected *= l.dims[i];
    }
  }
  return l;
}

Tensor Loader::tensor(const PyObject& o, const What& what) {
  const PyObject& t = rebuild_tensor_call(o, what);
  const PyObject* args = t.args;
  DType dtype;
  std::int64_t storage_numel = 0;
  auto st = storage(*args->items[0], dtype, storage_numel, what);
  const std::int64_t offset = int_of(args->items[1], What(what, ": storage offset"));
  const Layout l = layout(t, what);
  if (offset < 0 || offset > storage_numel) {
    fail_at(t, what + ": storage offset " + std::to_string(offset) + " is outside the storage of " +
                   std::to_string(storage_numel) + " elements");
  }
  const Shape shape{std::span<const std::int64_t>(l.dims, l.rank)};
  if (l.contiguous) {
    if (l.numel > storage_numel - offset) {
      fail_at(t, what + ": storage offset " + std::to_string(offset) + " + " + std::to_string(l.numel) +
                     " elements exceeds the storage of " + std::to_string(storage_numel));
    }
    return Tensor(st, static_cast<std::size_t>(offset) * element_size(dtype), dtype, shape);
  }
  return gathered(t, *st, storage_numel, offset, l, dtype, what);
}

// A strided view (x[:, 1], x.t(), x.expand(...)): fxpack tensors are contiguous, so the
// elements are gathered into a storage of their own (the values stay; sharing with the
// viewed storage does not). Every element must lie inside the storage.
Tensor Loader::gathered(const PyObject& t, const Storage& st, std::int64_t storage_numel, std::int64_t offset,
                        const Layout& l, DType dtype, const What& what) const {
  std::int64_t last = offset;
  for (std::size_t i = 0; i < l.rank; ++i) {
    if (l.strides[i] < 0) fail_at(t, what + ": negative stride " + std::to_string(l.strides[i]));
    if (l.dims[i] > 1 && l.strides[i] > (std::numeric_limits<std::int64_t>::max() - last) / (l.dims[i] - 1)) {
      fail_at(t, what + ": strides overflow");
    }
    if (l.dims[i] > 0) last += (l.dims[i] - 1) * l.strides[i];
  }
  if (last >= storage_numel) {
    fail_at(t, what + ": size " + py_repr(*t.args->items[2]) + " with stride " + py_repr(*t.args->items[3]) +
                   " at offset " + std::to_string(offset) + " reaches element " + std::to_string(last) +
                   " of a storage of " + std::to_string(storage_numel));
  }
  Tensor out = Tensor::empty(Shape{std::span<const std::int64_t>(l.dims, l.rank)}, dtype);
  const std::size_t es = element_size(dtype);
  const std::byte* src = st.data();
  std::byte* dst = out.storage()->data();
  std::vector<std::int64_t> index(l.rank, 0);
  std::int64_t at = offset;
  for (std::int64_t k = 0; k < l.numel; ++k) {
    std::memcpy(dst + static_cast<std::size_t>(k) * es, src + static_cast<std::size_t>(at) * es, es);
    for (std::size_t d = l.rank; d-- > 0;) {
      at += l.strides[d];
      if (++index[d] < l.dims[d]) break;
      at -= l.strides[d] * l.dims[d];
      index[d] = 0;
    }
  }
  return out;
}

Value Loader::value(const PyObject& o, const What& what, std::size_t depth) {
  if (depth > opts_.max_module_depth) fail_at(o, what + ": nested too deeply (or cyclic)");
  spend(o);
  switch (o.kind) {
    case PyKind::None: return Value(None{});
    case PyKind::Bool: return Value(o.boolean);
    case PyKind::Int: return Value(o.integer);
    case PyKind::Float: return Value(o.real);
    case PyKind::Str: return Value(std::string(o.str));
    case PyKind::Tuple:
    case PyKind::List: {
      std::vector<Value> items;
      items.reserve(o.items.size());
      for (const PyObject* i : o.items) items.push_back(value(*i, what, depth + 1));
      if (o.kind == PyKind::List) return Value(List{std::move(items)});
      return Value(Tuple{std::move(items)});
    }
    case PyKind::Dict: {
      Dict d;
      SeenNames seen;
      const What key_what(what, ": dict key");
      for (const auto& [k, v] : o.entries) {
        const std::string_view key = str_of(k, key_what);
        if (!seen.insert(key)) fail_at(o, what + ": dict key '" + std::string(key) + "' repeated");
        d.items.emplace_back(std::string(key), value(*v, what, depth + 1));
      }
      return Value(std::move(d));
    }
    case PyKind::Global: {
      if (o.str == "torch") {
        for (int i = 0; i < kDTypeCount; ++i) {
          if (o.name == dtype_name(static_cast<DType>(i))) return Value(static_cast<DType>(i));
        }
      }
      break;
    }
    case PyKind::Reduce: {
      if (o.is_call_of("torch.device") && !o.new_obj && !o.state && o.entries.empty() && o.items.empty()) {
        const auto& a = o.args->items;
        if ((a.size() == 1 || a.size() == 2) && a[0]->kind == PyKind::Str) {
          Device d;
          d.type = a[0]->str;
          if (a.size() == 2) d.index = int_of(a[1], What(what, ": device index"));
          return Value(std::move(d));
        }
      }
      break;
    }
    default: break;
  }
  fail_at(o, what + ": unsupported value " + py_repr(o, 3));
}

void Loader::fill_module(Module& m, const PyObject& state, const std::string& path, std::size_t depth, bool top_level,
                         bool data_only) {
  const std::string where = path.empty() ? std::string("the GraphModule") : "module '" + path + "'";
  const Fields fields = fields_of(state, where);
  const auto field = [&fields](std::string_view name) -> const PyObject* {
    const auto it = std::lower_bound(fields.begin(), fields.end(), name,
                                     [](const auto& entry, std::string_view n) { return entry.first < n; });
    return it != fields.end() && it->first == name ? it->second : nullptr;
  };
  const std::string& kind = m.kind();
  const ModuleKind* leaf = m.leaf_kind();
  // Hooks would be Python callables; an allowlisted pickle cannot hold any, but say so.
  for (const auto& [key, v] : fields) {
    if (key.find("hooks") != std::string::npos && is_module_internal(key) && !is_empty_ordered_dict(v) &&
        v->kind != PyKind::None) {
      fail_at(*v, where + ": " + std::string(key) + " must be empty");
    }
  }
  // Configuration attributes, in factory order. One with a default in the op table is one
  // that only some PyTorch versions keep (2.x's PReLU.init): absent, it takes the default.
  if (!top_level && !data_only && leaf) {
    for (const Param& a : leaf->attributes) {
      const std::string& name = a.name;
      const PyObject* given = field(name);
      if (!given && !a.required) {
        m.set_attr(name, a.default_value);
        continue;
      }
      if (!given) fail_at(state, where + " (" + kind + "): attribute '" + name + "' is missing");
      if (a.type.base == ArgType::Callable) {
        // A function held as data: its name, which must be a registered function target.
        const PyObject& f = *given;
        const std::string q = f.kind == PyKind::Global ? f.qualified_name() : std::string();
        if (q.empty() || !OpRegistry::global().function(q)) {
          fail_at(f, where + " (" + kind + "): attribute '" + name + "' must be a registered function, got " +
                         py_repr(f, 2));
        }
        m.set_attr(name, Value(q));
        continue;
      }
      m.set_attr(name, value(*given, What(where, " attribute '", name, "'"), depth + 1));
    }
  }
  // A None slot (Conv2d(bias=False)'s bias) is implied by a registered kind; a data-only
  // module keeps it as an undefined tensor so that it can be written back.
  for (const auto& [name, t] : ordered_dict(field("_parameters"), What(where, " _parameters"))) {
    if (t->kind == PyKind::None) {
      if (data_only) m.register_parameter(std::string(name), Tensor());
      continue;
    }
    m.register_parameter(std::string(name), tensor(*t, What(where, " parameter '", name, "'")));
  }
  for (const auto& [name, t] : ordered_dict(field("_buffers"), What(where, " _buffers"))) {
    if (t->kind == PyKind::None) {
      if (data_only) m.register_buffer(std::string(name), Tensor());
      continue;
    }
    m.register_buffer(std::string(name), tensor(*t, What(where, " buffer '", name, "'")));
  }
  for (const auto& [view, child] : ordered_dict(field("_modules"), What(where, " _modules"))) {
    if (child->kind == PyKind::None) continue;
    const std::string name(view);
    if (name.empty() || name.find('.') != std::string::npos) fail_at(*child, where + ": bad submodule name '" + name + "'");
    m.register_module(name, module(*child, path.empty() ? name : path + "." + name, depth + 1));
  }
  other_members(m, state, where, depth, top_level, data_only);
}

Loader::Fields Loader::fields_of(const PyObject& state, const std::string& where) const {
  if (state.kind != PyKind::Dict) fail_at(state, where + ": state must be a dict, got " + py_kind_name(state.kind));
  Fields fields;
  fields.reserve(state.entries.size());
  for (const auto& [k, v] : state.entries) {
    if (!k || k->kind != PyKind::Str) str_of(k, What(where, ": attribute name"));  // throws, saying what it is
    fields.emplace_back(k->str, v);
  }
  std::sort(fields.begin(), fields.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (std::size_t i = 1; i < fields.size(); ++i) {
    if (fields[i].first == fields[i - 1].first) {
      fail_at(state, where + ": attribute '" + std::string(fields[i].first) + "' repeated");
    }
  }
  return fields;
}

// The members of a module's __dict__ besides its parameters, buffers and submodules: the
// kind's configuration (read by fill_module), bookkeeping, private derived state; a data-only
// module keeps all of them, the GraphModule its tensor constants; anything else is refused.
void Loader::other_members(Module& m, const PyObject& state, const std::string& where, std::size_t depth,
                           bool top_level, bool data_only) {
  const ModuleKind* leaf = m.leaf_kind();
  const std::string& kind = m.kind();
  const auto is_kind_attribute = [leaf](std::string_view key) {
    if (leaf)
      for (const Param& a : leaf->attributes)
        if (a.name == key) return true;
    return false;
  };
  static const std::unordered_set<std::string_view> kGraphModuleKeys = {
      "_code", "_tracer_cls", "_tracer_extras", "meta", "_graphmodule_cls_name"};
  for (const auto& [k, v] : state.entries) {
    const std::string_view key = k->str;
    if (key == "_parameters" || key == "_buffers" || key == "_modules" || is_module_internal(key)) continue;
    if (data_only) {
      // Everything else of its __dict__, private state included, in order.
      m.set_attr(std::string(key), value(*v, What(where, " attribute '", key, "'"), depth + 1));
      continue;
    }
    if (!top_level && is_kind_attribute(key)) continue;
    if (top_level && kGraphModuleKeys.count(key)) continue;
    if (top_level && is_tensor(*v)) {
      m.register_buffer(std::string(key), tensor(*v, What(where, " attribute '", key, "'")));  // a tensor constant
      continue;
    }
    if (!key.empty() && key[0] == '_') continue;  // private derived state (_reversed_padding_repeated_twice)
    fail_at(*v, where + " (" + kind + "): unsupported attribute '" + std::string(key) + "'");
  }
}

std::shared_ptr<Module> Loader::module(const PyObject& o, const std::string& path, std::size_t depth) {
  const std::string where = "module '" + path + "'";
  if (depth > opts_.max_module_depth) fail_at(o, where + ": modules nested too deeply");
  if (auto it = modules_.find(&o); it != modules_.end()) return it->second;
  if (std::find(building_.begin(), building_.end(), &o) != building_.end()) {
    fail_at(o, where + ": a module contains itself");
  }
  building_.push_back(&o);
  spend(o);
  if (o.kind != PyKind::Reduce || !o.new_obj || o.callable->kind != PyKind::Global) {
    fail_at(o, where + ": expected a torch.nn module object, got " + py_repr(o, 2));
  }
  const std::string qualified = o.callable->qualified_name();
  const ModuleKind* kind = OpRegistry::global().module_class(qualified);
  // A torch.nn class without an fxpack kind is kept as data: its kind is the qualified
  // class name, its attributes the rest of its __dict__. It prints, pickles and exports
  // back; calling it fails naming the kind.
  const bool plain = qualified == kPlainModuleClass;
  const bool data_only = !kind && !plain;
  if (data_only && !qualified.starts_with("torch.nn.modules.")) fail_at(o, where + ": class " + qualified + " is not supported");
  const std::string kind_name = kind ? kind->name : plain ? std::string("Module") : qualified;
  if (!o.args->items.empty() || o.kwargs || !o.entries.empty() || !o.items.empty()) {
    fail_at(o, where + ": unexpected constructor arguments for " + kind_name);
  }
  if (!o.state) fail_at(o, where + ": " + kind_name + " has no state");
  auto m = kind ? std::make_shared<Module>(*kind) : std::make_shared<Module>(kind_name);
  fill_module(*m, *o.state, path, depth, false, data_only);
  if (kind) {
    try {
      kind->validate(*m);
    } catch (const Error& e) {
      fail(where + ": " + e.what());
    }
  }
  building_.pop_back();
  modules_.emplace(&o, m);
  return m;
}

std::shared_ptr<GraphModule> Loader::load() {
  std::vector<std::byte> bytes = zip_.read(record_);
  auto tree = unpickle(bytes, torch_package_allowlist(), opts_.pickle_limits, record_);
  const PyObject& top = tree->root();
  if (top.kind != PyKind::PersistentId) {
    fail_at(top, "expected the persistent id of a packaged GraphModule, got " + py_repr(top, 2));
  }
  const PyObject* pid = top.args;
  if (!pid || pid->kind != PyKind::Tuple || pid->items.empty()) fail_at(top, "persistent id must be a non-empty tuple");
  if (str_of(pid->items[0], "persistent id type") != "reduce_package") {
    fail_at(top, "top-level persistent id of type '" + std::string(pid->items[0]->str) + "' (expected 'reduce_package')");
  }
  const PyObject* func = nullptr;
  const PyObject* fargs = nullptr;
  if (pid->items.size() == 4) {
    func = pid->items[2];
    fargs = pid->items[3];
  } else if (pid->items.size() == 3) {
    func = pid->items[1];
    fargs = pid->items[2];
  } else {
    fail_at(top, "reduce_package persistent id must have 3 or 4 items");
  }
  if (!func->is_global("torch.fx.graph_module.reduce_package_graph_module")) {
    fail_at(*func, "reduce_package function must be torch.fx.graph_module.reduce_package_graph_module, got " + py_repr(*func, 1));
  }
  const PyObject& a = tuple_of(fargs, 2, "reduce_package_graph_module arguments");
  const PyObject& body = *a.items[0];
  const std::string generated(str_of(a.items[1], "generated module name"));
  if (body.kind != PyKind::Dict) fail_at(body, "GraphModule state must be a dict");

  std::string class_name = "GraphModule";
  if (const PyObject* cn = body.find("_graphmodule_cls_name")) class_name = str_of(cn, "_graphmodule_cls_name");

  // fx-generated._0 -> <root>/fx-generated/_0.py
  {
    bool ok = !generated.empty() && generated.size() <= 1024 && generated.front() != '.' && generated.back() != '.' &&
              generated.find("..") == std::string::npos &&
              generated.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") ==
                  std::string::npos;
    if (!ok) fail("bad generated module name '" + generated.substr(0, 64) + "'");
  }
  std::string code_path = generated;
  for (char& c : code_path) {
    if (c == '.') c = '/';
  }
  code_path = root_ + "/" + code_path + ".py";
  try {
    zip::check_entry_name(code_path);
  } catch (const FormatError& e) {
    fail("generated module name '" + generated + "': " + e.what());
  }
  if (!zip_.find(code_path)) fail("generated code record " + code_path + " is missing");
  std::vector<std::byte> src = zip_.read(code_path);
  auto graph = parse_fx_code(std::string_view(reinterpret_cast<const char*>(src.data()), src.size()), code_path,
                             opts_.code_limits, dialect_);

  auto root = std::make_shared<Module>(class_name);
  try {
    fill_module(*root, body, "", 0, true);
  } catch (const FormatError&) {
    throw;
  } catch (const Error& e) {
    fail(e.what());  // e.g. a member name Module refuses ("a.b", "")
  }
  try {
    return make_graph_module(root, std::move(graph),
                             MakeGraphModuleOptions{.class_name = class_name, .graph_module_cls = GraphModuleClass::Lazy});
  } catch (const FormatError&) {
    throw;
  } catch (const Error& e) {
    fail(std::string("the graph does not match the modules: ") + e.what());
  }
}

std::string package_path(std::string_view package) {
  std::string p(package);
  for (char& c : p) {
    if (c == '.') c = '/';
  }
  return p;
}

}  // namespace

bool is_callable_attribute(const Module& m, std::string_view name) {
  if (const ModuleKind* k = m.leaf_kind())
    for (const Param& a : k->attributes)
      if (a.name == name) return a.type.base == ArgType::Callable;
  return false;
}

bool is_torch_package(const zip::ZipReader& zip) { return !root_or_empty(zip).empty(); }

std::string torch_package_root(const zip::ZipReader& zip) {
  std::string root = root_or_empty(zip);
  if (root.empty()) {
    throw FormatError("not a torch.package archive (no single root folder with .data/extern_modules)");
  }
  return root;
}

std::uint64_t torch_package_version(const zip::ZipReader& zip) {
  const std::string root = torch_package_root(zip);
  // PyTorchStreamReader reads .data/version, or the legacy top-level `version` record.
  std::string name = root + "/.data/version";
  if (!zip.find(name)) name = root + "/version";
  if (!zip.find(name)) throw FormatError("torch.package archive has no .data/version record (" + root + "/.data/version)");
  const zip::EntryInfo* e = zip.find(name);
  if (e->uncompressed_size > 64) {
    throw FormatError(name + ": a version record of " + std::to_string(e->uncompressed_size) + " bytes");
  }
  std::vector<std::byte> bytes = zip.read(name);
  std::string text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  // std::stoull, as PyTorch parses it: leading whitespace, an optional sign, digits; the
  // rest is ignored; a minus sign wraps around.
  std::size_t i = 0;
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  bool negative = false;
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) negative = text[i++] == '-';
  std::uint64_t v = 0;
  std::size_t digits = 0;
  bool overflow = false;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i, ++digits) {
    std::uint64_t d = static_cast<std::uint64_t>(text[i] - '0');
    if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10) overflow = true;
    v = v * 10 + d;
  }
  auto quoted = [&] {  // the untrusted text, printable and bounded
    std::string q = "'";
    for (char c : text.substr(0, 32)) {
      if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
        q += c;
      } else {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
        q += buf;
      }
    }
    return q + (text.size() > 32 ? "...'" : "'");
  };
  if (digits == 0 || overflow) throw FormatError(name + ": cannot parse the version " + quoted() + " as a number");
  if (negative) v = ~v + 1;
  if (v < kTorchPackageMinVersion || v > kTorchPackageMaxVersion) {
    throw FormatError(name + ": torch.package version " + std::to_string(v) + " is not supported; PyTorch reads versions " +
                      std::to_string(kTorchPackageMinVersion) + " to " + std::to_string(kTorchPackageMaxVersion));
  }
  return v;
}

Dialect torch_package_dialect(const zip::ZipReader& zip) {
  const std::string root = torch_package_root(zip);
  return zip.find(root + "/byteorder") || zip.find(root + "/.data/serialization_id") ? Dialect::Torch2
                                                                                      : Dialect::Torch1_13;
}

std::shared_ptr<GraphModule> load_torch_package(const zip::ZipReader& zip, std::string_view package,
                                                std::string_view resource, const TorchPackageOptions& options) {
  std::string root = torch_package_root(zip);
  (void)torch_package_version(zip);
  if (package.empty() || resource.empty()) throw FormatError("load_torch_package: empty package or resource name");
  std::string record = root + "/" + package_path(package) + "/" + std::string(resource);
  zip::check_entry_name(record);
  if (!zip.find(record)) throw FormatError("torch.package has no record " + record);
  return Loader(zip, std::move(root), std::move(record), options).load();
}

// ---- export ---------------------------------------------------------------------------

namespace {

// fx's _format_import_block: the import statements of the generated source, and the modules
// they need (for .data/extern_modules).
struct ImportBlock {
  std::string header;
  std::vector<std::string> modules;
};

ImportBlock import_block(const PythonCode& pc, bool torch2) {
  // One statement per global of the source. 1.13 joins a set (its order varies from run to
  // run: this is the reference archives'); 2.x sorts them.
  std::vector<std::pair<std::string, std::string>> imports;  // statement, module it needs
  for (const auto& [name, object] : pc.globals) {
    static const std::map<std::string, std::pair<std::string, std::string>, std::less<>> kCustom = {
        {"inf", {"from math import inf", "math"}},
        {"nan", {"from math import nan", "math"}},
        {"NoneType", {"NoneType = type(None)", ""}},
        {"torch", {"import torch", "torch"}},
        {"device", {"from torch import device", "torch"}},
        {"fx_pytree", {"import torch.fx._pytree as fx_pytree", "torch.fx._pytree"}},
        {"pytree", {"import torch.utils._pytree as pytree", "torch.utils._pytree"}}};
    if (auto it = kCustom.find(name); it != kCustom.end()) {
      imports.push_back(it->second);
      continue;
    }
    auto dot = object.rfind('.');
    std::string module = object.substr(0, dot);
    imports.emplace_back("from " + module + " import " + object.substr(dot + 1) + " as " + name, module);
  }
  if (torch2) {
    std::sort(imports.begin(), imports.end());
  } else {
    static const std::vector<std::string> kOrder = {"NoneType", "nan", "fx_pytree", "torch", "inf", "pytree", "device"};
    std::vector<std::pair<std::string, std::string>> ordered;
    for (const auto& name : kOrder) {
      for (std::size_t i = 0; i < pc.globals.size(); ++i) {
        if (pc.globals[i].first == name) ordered.push_back(imports[i]);
      }
    }
    for (std::size_t i = 0; i < pc.globals.size(); ++i) {
      if (std::find(kOrder.begin(), kOrder.end(), pc.globals[i].first) == kOrder.end()) ordered.push_back(imports[i]);
    }
    imports = std::move(ordered);
  }
  std::string header;
  std::vector<std::string> source_modules;
  for (const auto& [statement, module] : imports) {
    header += (header.empty() ? "" : "\n") + statement;
    if (!module.empty() && std::find(source_modules.begin(), source_modules.end(), module) == source_modules.end()) {
      source_modules.push_back(module);
    }
  }
  return {std::move(header), std::move(source_modules)};
}

// The pickle PackageExporter.save_pickle writes for the GraphModule: the persistent id
// ('reduce_package', id, reduce_package_graph_module, (its __dict__, 'fx-generated._0')).
void pickle_graph_module(TorchPickler& p, const GraphModule& gm, const PythonCode& pc, bool torch2,
                         std::uint64_t object_id) {
  p.op('(');
  p.str("reduce_package");
  p.integer(static_cast<std::int64_t>(object_id));
  p.global("torch.fx.graph_module", "reduce_package_graph_module");
  p.op('}');
  p.memoize();
  p.op('(');
  p.module_dict_head(gm, "");
  p.str("_code");
  p.str(pc.src);
  if (torch2) {
    // {body line number: node index}
    p.str("_lineno_map");
    p.op('}');
    p.memoize();
    p.batched(pc.line_nodes.size(), [&](std::size_t i) {
      p.integer(static_cast<std::int64_t>(i + 1));
      if (pc.line_nodes[i] < 0) p.none();
      else p.integer(pc.line_nodes[i]);
    }, 's', 'u');
  }
  p.str("_tracer_cls");
  p.global("torch.fx._symbolic_trace", "Tracer");
  p.str("_tracer_extras");
  p.op('}');
  p.memoize();
  p.str("meta");
  p.op('}');
  p.memoize();
  if (torch2) {
    for (const char* hooks : {"_replace_hooks", "_create_node_hooks", "_erase_node_hooks"}) {
      p.str(hooks);
      p.op(']');
      p.memoize();
    }
  }
  p.str("_graphmodule_cls_name");
  p.str(gm.class_name());
  p.op('u');
  p.str("fx-generated._0");
  p.op('\x86');
  p.memoize();
  p.op('t');
  p.memoize();
  p.op('Q');
  p.op('.');
}

}  // namespace

void save_torch_package(zip::ZipWriter& zip, const GraphModule& gm, std::string_view package, std::string_view resource,
                        const TorchExportOptions& options) {
  if (package.empty() || resource.empty()) throw ValueError("save_torch_package: empty package or resource name");
  const bool torch2 = options.version == Dialect::Torch2;
  const std::string root = options.root;
  // The code in the target PyTorch's dialect (it re-traces this source when it loads).
  const PythonCode pc = generate_python_code(gm.graph(), {.verbose = false, .dialect = options.version});
  const std::string& code = pc.src;
  const auto [header, source_modules] = import_block(pc, torch2);
  TorchPickler p(torch2);
  pickle_graph_module(p, gm, pc, torch2, options.object_id);

  const std::string base = root + "/";
  for (const Storage* s : p.storage_order()) {
    const auto& rec = p.storage_record(s);
    zip.add_stored(base + ".data/" + std::to_string(rec.id) + ".storage",
                   zip::HeldBytes({std::span<const std::byte>(rec.storage->data(), rec.storage->nbytes())}, rec.storage));
  }
  std::string source = header + code;
  // PyTorch draws a random id; this one is derived from the contents, so that archives stay
  // reproducible: two 20-digit numbers, as PyTorch prints it.
  std::string id;
  if (torch2) {
    char digits[48];
    std::snprintf(digits, sizeof digits, "%020llu%020llu", static_cast<unsigned long long>(source_hash(p.out)),
                  static_cast<unsigned long long>(source_hash(source)));
    id = digits;
  }
  // The pickle and the source (tens of MB for a large graph) are held, not copied.
  zip.add_stored(base + package_path(package) + "/" + std::string(resource), zip::HeldBytes(std::move(p.out)));
  zip.add_stored(base + "fx-generated/_0.py", zip::HeldBytes(std::move(source)));
  std::string externs;
  std::vector<std::string> all = source_modules;
  for (const auto& m : p.modules_used) {
    if (std::find(all.begin(), all.end(), m) == all.end()) all.push_back(m);
  }
  for (const auto& m : all) externs += m + "\n";
  zip.add_stored(base + ".data/extern_modules", zip::bytes_of(externs));
  zip.add_stored(base + ".data/python_version",
                 zip::bytes_of(options.python_version ? *options.python_version : torch2 ? "3.13.5" : "3.11.2"));
  zip.add_stored(base + ".data/version", zip::bytes_of("6\n"));
  if (torch2) {
    zip.add_stored(base + "byteorder", zip::bytes_of("little"));
    zip.add_stored(base + ".data/serialization_id", zip::bytes_of(id));
  }
}

}  // namespace fxpack::interop
