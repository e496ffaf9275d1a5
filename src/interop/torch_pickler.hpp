// The pickler for torch.package export: emits the opcodes and memo indexes CPython's
// pickle.Pickler (protocol 3) writes for the objects of a packaged GraphModule, so that the
// bytes save_torch_package writes (torch_package.hpp) are those the target PyTorch's
// PackageExporter writes. It is the counterpart of the unpickler (unpickler.hpp), but knows
// only the objects a GraphModule pickles to: its nn.Module __dict__ (module_dict_head, in the
// order and with the hook fields of the target PyTorch), submodules of the allowlisted
// torch.nn classes, tensors as _rebuild_tensor_v2/_rebuild_parameter calls on persistent
// storage ids, and plain values.
//
// Memo identity: strings by content (PyTorch's are interned), globals by name, modules and
// tensors by object; tuples, lists, dicts and REDUCE results get a fresh memo slot each, as
// in Python. Storages are numbered in first-use order (storage_order/storage_record: the
// caller writes them as .data/<id>.storage records).
//
// A value, module or tensor it cannot write (a kind without a torch.nn class, modules nested
// deeper than 64, a storage shared between dtypes, ...) is an fxpack::FormatError naming the
// module path or attribute.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fxpack/dtype.hpp"
#include "fxpack/module.hpp"
#include "fxpack/tensor.hpp"
#include "fxpack/value.hpp"

namespace fxpack::interop {

class TorchPickler {
 public:
  explicit TorchPickler(bool torch2) : torch2_(torch2) {}

  std::string out = std::string("\x80\x03", 2);
  std::vector<std::string> modules_used;  // modules of GLOBALs, first use order

  void op(char c) { out += c; }
  void u32(std::uint32_t n);
  std::uint32_t memoize();
  void get(std::uint32_t i);
  void none() { op('N'); }
  void boolean(bool b) { op(b ? '\x88' : '\x89'); }
  void integer(std::int64_t v);
  void real(double d);
  void str(std::string_view s);
  void global(std::string_view module, std::string_view name);
  // A tuple whose items `items(i)` writes.
  template <class F>
  void tuple(std::size_t n, F item) {
    if (n == 0) return op(')');
    if (n > 3) op('(');
    for (std::size_t i = 0; i < n; ++i) item(i);
    op(n == 1 ? '\x85' : n == 2 ? '\x86' : n == 3 ? '\x87' : 't');
    memoize();
  }
  void int_tuple(const std::vector<std::int64_t>& v);
  // _batch_setitems / _batch_appends: batches of 1000, MARK..SETITEMS or a lone SETITEM.
  template <class F>
  void batched(std::size_t n, F item, char single, char many) {
    for (std::size_t start = 0; start < n; start += 1000) {
      std::size_t end = std::min(n, start + 1000);
      if (end - start > 1) op('(');
      for (std::size_t i = start; i < end; ++i) item(i);
      op(end - start > 1 ? many : single);
    }
  }
  void empty_ordered_dict();
  template <class F>
  void ordered_dict(std::size_t n, F item) {
    empty_ordered_dict();
    batched(n, item, 's', 'u');
  }
  void empty_set();

  void value(const Value& v, const std::string& what);

  static std::string python_dtype(DType d) { return std::string(dtype_name(d)); }

  void tensor(const Tensor& t, bool parameter, const std::string& what);

  // A dict nn.Module keeps its members in: an OrderedDict in 1.13, a plain dict in 2.x.
  template <class F>
  void member_dict(std::size_t n, F item) {
    if (torch2_) {
      op('}');
      memoize();
      batched(n, item, 's', 'u');
    } else {
      ordered_dict(n, item);
    }
  }

  // nn.Module.__dict__ up to and including _modules, in the order the target PyTorch's
  // nn.Module.__init__ sets it. fxpack keeps no training flags: the module and its leaves
  // are in eval mode, as traced for inference; the plain Modules a GraphModule makes for the
  // parents of the paths it copies are fresh nn.Module()s, in training mode.
  void module_dict_head(const Module& m, const std::string& path);

  void module(const Module& m, const std::string& path);

  struct StorageRecord {
    std::size_t id;
    DType dtype;
    std::shared_ptr<Storage> storage;
  };
  const std::vector<const Storage*>& storage_order() const { return storage_order_; }
  const StorageRecord& storage_record(const Storage* s) const { return storage_ids_.at(s); }

 private:
  static std::string join(const std::string& a, const std::string& b) { return a.empty() ? b : a + "." + b; }
  bool torch2_;
  std::uint32_t next_ = 0;
  std::size_t depth_ = 0;
  std::unordered_map<std::string, std::uint32_t> str_memo_;
  std::unordered_map<std::string, std::uint32_t> global_memo_;
  std::unordered_map<const Module*, std::uint32_t> module_memo_;
  std::unordered_map<const Storage*, StorageRecord> storage_ids_;
  std::vector<const Storage*> storage_order_;
};

}  // namespace fxpack::interop
