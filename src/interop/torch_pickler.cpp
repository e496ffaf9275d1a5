#include "interop/torch_pickler.hpp"

#include <cstring>
#include <map>
#include <span>

#include "fxpack/errors.hpp"
#include "fxpack/graph_module.hpp"
#include "fxpack/ops.hpp"
#include "interop/torch_package.hpp"

namespace fxpack::interop {

void TorchPickler::u32(std::uint32_t n) {
  for (int i = 0; i < 4; ++i) out += static_cast<char>((n >> (8 * i)) & 0xff);
}

std::uint32_t TorchPickler::memoize() {
  std::uint32_t i = next_++;
  if (i < 256) {
    out += 'q';
    out += static_cast<char>(i);
  } else {
    out += 'r';
    u32(i);
  }
  return i;
}

void TorchPickler::get(std::uint32_t i) {
  if (i < 256) {
    out += 'h';
    out += static_cast<char>(i);
  } else {
    out += 'j';
    u32(i);
  }
}

void TorchPickler::integer(std::int64_t v) {
  if (v >= 0 && v <= 0xff) {
    op('K');
    out += static_cast<char>(v);
  } else if (v >= 0 && v <= 0xffff) {
    op('M');
    out += static_cast<char>(v & 0xff);
    out += static_cast<char>((v >> 8) & 0xff);
  } else if (v >= -0x80000000LL && v <= 0x7fffffffLL) {
    op('J');
    u32(static_cast<std::uint32_t>(static_cast<std::int32_t>(v)));
  } else {
    // LONG1 with the shortest two's complement encoding (pickle.encode_long).
    std::string bytes;
    auto u = static_cast<std::uint64_t>(v);
    for (int i = 0; i < 8; ++i) bytes += static_cast<char>((u >> (8 * i)) & 0xff);
    while (bytes.size() > 1) {
      auto last = static_cast<unsigned char>(bytes.back());
      auto prev = static_cast<unsigned char>(bytes[bytes.size() - 2]);
      if ((last == 0x00 && !(prev & 0x80)) || (last == 0xff && (prev & 0x80))) bytes.pop_back();
      else break;
    }
    op('\x8a');
    out += static_cast<char>(bytes.size());
    out += bytes;
  }
}

void TorchPickler::real(double d) {
  op('G');
  std::uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  for (int i = 7; i >= 0; --i) out += static_cast<char>((bits >> (8 * i)) & 0xff);
}

void TorchPickler::str(std::string_view s) {
  if (auto it = str_memo_.find(std::string(s)); it != str_memo_.end()) return get(it->second);
  op('X');
  u32(static_cast<std::uint32_t>(s.size()));
  out += s;
  str_memo_.emplace(std::string(s), memoize());
}

void TorchPickler::global(std::string_view module, std::string_view name) {
  std::string key = std::string(module) + "\n" + std::string(name);
  if (auto it = global_memo_.find(key); it != global_memo_.end()) return get(it->second);
  op('c');
  out += key;
  out += '\n';
  global_memo_.emplace(key, memoize());
  if (std::find(modules_used.begin(), modules_used.end(), module) == modules_used.end()) {
    modules_used.emplace_back(module);
  }
}

void TorchPickler::int_tuple(const std::vector<std::int64_t>& v) {
  tuple(v.size(), [&](std::size_t i) { integer(v[i]); });
}

void TorchPickler::empty_ordered_dict() {
  global("collections", "OrderedDict");
  op(')');
  op('R');
  memoize();
}

void TorchPickler::empty_set() {
  global("builtins", "set");
  op(']');
  memoize();
  op('\x85');
  memoize();
  op('R');
  memoize();
}

void TorchPickler::value(const Value& v, const std::string& what) {
  switch (v.kind()) {
    case Value::Kind::None: return none();
    case Value::Kind::Bool: return boolean(v.to_bool());
    case Value::Kind::Int: return integer(v.to_int());
    case Value::Kind::Double: return real(v.to_double());
    case Value::Kind::String: return str(v.str());
    case Value::Kind::Tuple: {
      const auto& items = v.items();
      return tuple(items.size(), [&](std::size_t i) { value(items[i], what); });
    }
    case Value::Kind::List: {
      const auto& items = v.items();
      op(']');
      memoize();
      return batched(items.size(), [&](std::size_t i) { value(items[i], what); }, 'a', 'e');
    }
    case Value::Kind::Dict: {
      const auto& items = v.dict().items;
      op('}');
      memoize();
      return batched(items.size(), [&](std::size_t i) {
        str(items[i].first);
        value(items[i].second, what);
      }, 's', 'u');
    }
    case Value::Kind::DType: return global("torch", python_dtype(v.dtype()));
    case Value::Kind::Device: {
      const auto& d = v.device();
      global("torch", "device");
      if (d.index < 0) {
        tuple(1, [&](std::size_t) { str(d.type); });
      } else {
        tuple(2, [&](std::size_t i) {
          if (i == 0) str(d.type);
          else integer(d.index);
        });
      }
      op('R');
      memoize();
      return;
    }
    default:
      throw FormatError("torch.package export: " + what + ": a " + kind_name(v.kind()) + " value cannot be exported");
  }
}

void TorchPickler::tensor(const Tensor& t, bool parameter, const std::string& what) {
  if (!t.defined()) throw FormatError("torch.package export: " + what + " is an undefined tensor");
  if (parameter) global("torch._utils", "_rebuild_parameter");
  global("torch._utils", "_rebuild_tensor_v2");
  const std::size_t es = element_size(t.dtype());
  const Storage* st = t.storage().get();
  if (st->nbytes() % es || t.byte_offset() % es) {
    throw FormatError("torch.package export: " + what + ": storage size or offset is not a multiple of the element size");
  }
  auto [it, inserted] = storage_ids_.try_emplace(st, StorageRecord{storage_ids_.size(), t.dtype(), t.storage()});
  if (!inserted && it->second.dtype != t.dtype()) {
    throw FormatError("torch.package export: " + what + ": a storage shared by tensors of different dtypes");
  }
  if (inserted) storage_order_.push_back(st);
  op('(');
  op('(');
  str("storage");
  static const std::map<DType, const char*> kStorage = {
      {DType::Float32, "FloatStorage"}, {DType::Float64, "DoubleStorage"},     {DType::Int64, "LongStorage"},
      {DType::Bool, "BoolStorage"},     {DType::UInt8, "ByteStorage"},         {DType::Float16, "HalfStorage"},
      {DType::BFloat16, "BFloat16Storage"}, {DType::Int32, "IntStorage"},      {DType::Int8, "CharStorage"},
      {DType::Int16, "ShortStorage"}};
  global("torch", kStorage.at(t.dtype()));
  integer(static_cast<std::int64_t>(it->second.id));
  str("cpu");
  integer(static_cast<std::int64_t>(st->nbytes() / es));
  op('t');
  memoize();
  op('Q');
  integer(static_cast<std::int64_t>(t.byte_offset() / es));
  std::vector<std::int64_t> shape = t.shape().to_vector(), stride(shape.size());
  std::int64_t s = 1;
  for (std::size_t i = shape.size(); i-- > 0;) {
    stride[i] = s;
    s *= std::max<std::int64_t>(shape[i], 1);  // PyTorch's contiguous strides
  }
  int_tuple(shape);
  int_tuple(stride);
  boolean(false);
  empty_ordered_dict();
  op('t');
  memoize();
  op('R');
  memoize();
  if (parameter) {
    boolean(true);
    empty_ordered_dict();
    op('\x87');
    memoize();
    op('R');
    memoize();
  }
}

void TorchPickler::module_dict_head(const Module& m, const std::string& path) {
  str("training");
  boolean(!path.empty() && m.kind() == "Module" && !dynamic_cast<const GraphModule*>(&m));
  // PyTorch keeps optional tensors as None entries (Conv2d(bias=False) has 'bias': None):
  // the kind's declared slots first, in order, then anything else (a data-only module
  // holds them as undefined tensors).
  const ModuleKind* kind = m.leaf_kind();
  auto slots = [&](const std::vector<std::pair<std::string, Tensor>>& have, bool params) {
    std::vector<std::pair<std::string, const Tensor*>> out;
    if (kind) {
      for (const ModuleTensorSlot& slot : params ? kind->parameters : kind->buffers) {
        const std::string& name = slot.name;
        const Tensor* t = nullptr;
        for (const auto& [n, x] : have) {
          if (n == name) t = &x;
        }
        out.emplace_back(name, t);
      }
    }
    for (const auto& [n, x] : have) {
      bool listed = false;
      for (const auto& [o, t] : out) listed = listed || o == n;
      if (!listed) out.emplace_back(n, x.defined() ? &x : nullptr);
    }
    return out;
  };
  for (bool params : {true, false}) {
    const auto entries = slots(params ? m.parameters() : m.buffers(), params);
    str(params ? "_parameters" : "_buffers");
    member_dict(entries.size(), [&](std::size_t i) {
      str(entries[i].first);
      if (!entries[i].second) return none();
      tensor(*entries[i].second, params, (params ? "parameter '" : "buffer '") + join(path, entries[i].first) + "'");
    });
  }
  str("_non_persistent_buffers_set");
  empty_set();
  if (torch2_) {
    str("_backward_pre_hooks");
    empty_ordered_dict();
  }
  str("_backward_hooks");
  empty_ordered_dict();
  str("_is_full_backward_hook");
  none();
  static const char* const k113[] = {"_forward_hooks", "_forward_pre_hooks", "_state_dict_hooks",
                                     "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks"};
  static const char* const k2[] = {"_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
                                   "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_state_dict_hooks",
                                   "_state_dict_pre_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks"};
  for (const char* hooks : torch2_ ? std::span<const char* const>(k2) : std::span<const char* const>(k113)) {
    str(hooks);
    empty_ordered_dict();
  }
  str("_modules");
  member_dict(m.children().size(), [&](std::size_t i) {
    str(m.children()[i].first);
    module(*m.children()[i].second, join(path, m.children()[i].first));
  });
}

void TorchPickler::module(const Module& m, const std::string& path) {
  if (auto it = module_memo_.find(&m); it != module_memo_.end()) return get(it->second);
  // The kind's first class (the op table's `classes`), torch.nn.Module for a plain parent,
  // or the class a data-only module (a torch.nn class fxpack has no kind for) names.
  std::string cls;
  const ModuleKind* kind = m.leaf_kind();
  const bool graph_module = dynamic_cast<const GraphModule*>(&m) != nullptr;
  if (kind && !kind->classes.empty()) cls = kind->classes.front();
  else if (!kind && !graph_module && m.kind() == "Module") cls = kPlainModuleClass;
  else if (!kind && !graph_module && m.kind().starts_with("torch.nn.modules.")) cls = m.kind();
  if (cls.empty()) {
    throw FormatError("torch.package export: module '" + path + "' of kind " + m.kind() + " has no torch.nn class to write");
  }
  if (++depth_ > 64) throw FormatError("torch.package export: modules nested too deeply at '" + path + "'");
  const auto dot = cls.rfind('.');
  global(cls.substr(0, dot), cls.substr(dot + 1));
  op(')');
  op('\x81');
  module_memo_.emplace(&m, memoize());
  op('}');
  memoize();
  op('(');
  module_dict_head(m, path);
  for (const auto& [name, v] : m.attrs().items) {
    str(name);
    if (is_callable_attribute(m, name) && v.kind() == Value::Kind::String) {
      // torch.nn.functional.relu: the function object itself, as PyTorch pickles it
      const std::string& f = v.str();
      const auto dot = f.rfind('.');
      if (dot == std::string::npos) throw FormatError("torch.package export: attribute '" + join(path, name) + "' names no module");
      global(f.substr(0, dot), f.substr(dot + 1));
      continue;
    }
    value(v, "attribute '" + join(path, name) + "'");
  }
  if (kind && kind->private_attributes) {
    for (const auto& [name, v] : kind->private_attributes(m)) {
      str(name);
      value(v, "attribute '" + join(path, name) + "'");
    }
  }
  op('u');
  op('b');
  --depth_;
}

}  // namespace fxpack::interop

