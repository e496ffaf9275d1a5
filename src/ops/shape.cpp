// Shape ops (shape.yaml): reshape/view, flatten, permute/transpose/t, unsqueeze, indexing,
// size, contiguous, detach/clone, empty.
#include <algorithm>
#include <cstring>
#include <limits>

#include "kernels.hpp"
#include "util.hpp"

namespace fxpack::ops {

using util::fail;

namespace {

std::string list_str(std::span<const std::int64_t> v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(v[i]);
  }
  return s + "]";
}

// Copies the elements of x seen through (shape, strides in elements, base offset in
// elements) into a fresh contiguous tensor.
template <class E>
void gather(const E* in, std::int64_t base, const Shape& shape, const std::int64_t* st, E* out) {
  const std::size_t nd = shape.size();
  const std::int64_t n = shape.numel();
  if (n == 0) return;
  if (nd == 0) {
    out[0] = in[base];
    return;
  }
  const std::int64_t inner = shape[nd - 1];
  const std::int64_t is = st[nd - 1];
  const std::int64_t outer = n / inner;
  std::int64_t idx[Shape::kMaxDims] = {};
  std::int64_t off = base;
  for (std::int64_t r = 0; r < outer; ++r) {
    const E* p = in + off;
    if (is == 1) {
      std::memcpy(out, p, static_cast<std::size_t>(inner) * sizeof(E));
    } else {
      for (std::int64_t j = 0; j < inner; ++j) out[j] = p[j * is];
    }
    out += inner;
    for (std::size_t d = nd - 1; d-- > 0;) {
      off += st[d];
      if (++idx[d] < shape[d]) break;
      off -= st[d] * shape[d];
      idx[d] = 0;
    }
  }
}

Tensor strided_copy(const Tensor& x, std::int64_t base, const Shape& shape, const std::int64_t* st) {
  Tensor out = Tensor::empty(shape, x.dtype());
  switch (element_size(x.dtype())) {
    case 1: gather(x.data<std::uint8_t>(), base, shape, st, out.data<std::uint8_t>()); break;
    case 2: gather(x.data<std::uint16_t>(), base, shape, st, out.data<std::uint16_t>()); break;
    case 4: gather(x.data<std::uint32_t>(), base, shape, st, out.data<std::uint32_t>()); break;
    default: gather(x.data<std::uint64_t>(), base, shape, st, out.data<std::uint64_t>()); break;
  }
  return out;
}

// Whether (shape, strides) describe a contiguous row-major block.
bool is_contiguous(const Shape& shape, const std::int64_t* st) {
  std::int64_t expect = 1;
  for (std::size_t i = shape.size(); i-- > 0;) {
    if (shape[i] == 1) continue;
    if (st[i] != expect) return false;
    expect *= shape[i];
  }
  return true;
}

}  // namespace

Tensor reshape(const Tensor& x, std::span<const std::int64_t> shape, const char* op) {
  if (!x.defined()) fail(std::string(op) + ": undefined tensor");
  if (shape.size() > Shape::kMaxDims) {
    fail(std::string(op) + ": " + std::to_string(shape.size()) + " dimensions, at most " +
         std::to_string(Shape::kMaxDims) + " are supported");
  }
  Shape out;
  std::int64_t known = 1;
  int infer = -1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    const std::int64_t d = shape[i];
    if (d == -1) {
      if (infer >= 0) fail(std::string(op) + ": only one dimension can be inferred");
      infer = static_cast<int>(i);
    } else if (d < 0) {
      fail(std::string(op) + ": invalid shape dimension " + std::to_string(d));
    } else if (d != 0 && known > std::numeric_limits<std::int64_t>::max() / d) {
      fail(std::string(op) + ": shape '" + list_str(shape) + "' is too large");
    } else {
      known *= d;
    }
    out.push_back(d);
  }
  const std::int64_t n = x.numel();
  if (infer >= 0) {
    if (known == 0 || n % known != 0) {
      fail(std::string(op) + ": shape '" + list_str(shape) + "' is invalid for input of size " +
           std::to_string(n));
    }
    out[static_cast<std::size_t>(infer)] = n / known;
  } else if (known != n) {
    fail(std::string(op) + ": shape '" + list_str(shape) + "' is invalid for input of size " +
         std::to_string(n));
  }
  return x.view(out);
}

Tensor flatten(const Tensor& x, std::int64_t start_dim, std::int64_t end_dim) {
  if (!x.defined()) fail("flatten: undefined tensor");
  const auto nd = static_cast<std::int64_t>(x.dim());
  const std::int64_t s = util::wrap_dim(start_dim, nd, "flatten");
  const std::int64_t e = util::wrap_dim(end_dim, nd, "flatten");
  if (s > e) fail("flatten: flatten() has invalid args: start_dim cannot come after end_dim");
  if (nd == 0) return x.view(Shape{1});
  if (s == e) return x;
  Shape out;
  std::int64_t prod = 1;
  for (std::int64_t i = 0; i < nd; ++i) {
    const std::int64_t d = x.shape()[static_cast<std::size_t>(i)];
    if (i < s || i > e) {
      out.push_back(d);
    } else {
      prod *= d;
      if (i == e) out.push_back(prod);
    }
  }
  return x.view(out);
}

Tensor permute(const Tensor& x, std::span<const std::int64_t> dims) {
  if (!x.defined()) fail("permute: undefined tensor");
  const auto nd = static_cast<std::int64_t>(x.dim());
  if (static_cast<std::int64_t>(dims.size()) != nd) {
    fail("permute: number of dims don't match in permute: the tensor has shape " +
         x.shape().to_string() + " (" + std::to_string(nd) + " dims) but dims is " + list_str(dims));
  }
  std::int64_t in_st[Shape::kMaxDims];
  util::contiguous_strides(x.shape(), in_st);
  bool seen[Shape::kMaxDims] = {};
  Shape out;
  std::int64_t st[Shape::kMaxDims];
  bool identity = true;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    const std::int64_t d = util::wrap_dim(dims[i], nd, "permute");
    if (nd == 0) continue;
    if (seen[d]) fail("permute: repeated dim " + std::to_string(d) + " in dims " + list_str(dims));
    seen[d] = true;
    if (d != static_cast<std::int64_t>(i)) identity = false;
    out.push_back(x.shape()[static_cast<std::size_t>(d)]);
    st[i] = in_st[d];
  }
  if (identity) return x.clone();
  return strided_copy(x, 0, out, st);
}

Tensor transpose(const Tensor& x, std::int64_t dim0, std::int64_t dim1) {
  if (!x.defined()) fail("transpose: undefined tensor");
  const auto nd = static_cast<std::int64_t>(x.dim());
  const std::int64_t a = util::wrap_dim(dim0, nd, "transpose");
  const std::int64_t b = util::wrap_dim(dim1, nd, "transpose");
  if (nd == 0) return x;
  std::vector<std::int64_t> perm(static_cast<std::size_t>(nd));
  for (std::int64_t i = 0; i < nd; ++i) perm[static_cast<std::size_t>(i)] = i;
  std::swap(perm[static_cast<std::size_t>(a)], perm[static_cast<std::size_t>(b)]);
  return permute(x, perm);
}

Tensor t(const Tensor& x) {
  if (!x.defined()) fail("t: undefined tensor");
  if (x.dim() > 2) {
    fail("t: t() expects a tensor with <= 2 dimensions, but self is " + std::to_string(x.dim()) + "D");
  }
  if (x.dim() < 2) return x;
  return transpose(x, 0, 1);
}

namespace {

// Python's slice.indices(length) for a step > 0 or < 0.
void slice_indices(const Slice& s, std::int64_t len, std::int64_t& start, std::int64_t& stop,
                   std::int64_t& step, std::int64_t& count, const char* op) {
  step = s.step.value_or(1);
  if (step == 0) fail(std::string(op) + ": slice step cannot be zero");
  if (step > 0) {
    start = s.start.value_or(0);
    stop = s.stop.value_or(len);
    if (start < 0) start = std::max<std::int64_t>(start + len, 0);
    if (start > len) start = len;
    if (stop < 0) stop = std::max<std::int64_t>(stop + len, 0);
    if (stop > len) stop = len;
    count = stop > start ? (stop - start - 1) / step + 1 : 0;
  } else {
    if (step == std::numeric_limits<std::int64_t>::min()) step = -std::numeric_limits<std::int64_t>::max();
    start = s.start.value_or(len - 1);
    stop = s.stop ? *s.stop : -1;
    const bool stop_none = !s.stop;
    if (start < 0) start = std::max<std::int64_t>(start + len, -1);
    if (start >= len) start = len - 1;
    if (!stop_none) {
      if (stop < 0) stop = std::max<std::int64_t>(stop + len, -1);
      if (stop >= len) stop = len - 1;
    }
    count = start > stop ? (start - stop - 1) / (-step) + 1 : 0;
  }
}

}  // namespace

Tensor index(const Tensor& x, const Value& idx) {
  if (!x.defined()) fail("getitem: undefined tensor");
  std::vector<const Value*> items;
  if (const auto* tup = std::get_if<Tuple>(&idx.variant())) {
    for (const Value& v : tup->items) items.push_back(&v);
  } else {
    items.push_back(&idx);
  }
  const std::size_t nd = x.dim();
  std::int64_t in_st[Shape::kMaxDims];
  util::contiguous_strides(x.shape(), in_st);
  Shape out;
  std::int64_t st[Shape::kMaxDims];
  std::int64_t base = 0;
  std::size_t d = 0;
  auto push = [&](std::int64_t size, std::int64_t stride) {
    if (out.size() >= Shape::kMaxDims) fail("getitem: result has too many dimensions");
    st[out.size()] = stride;
    out.push_back(size);
  };
  for (const Value* v : items) {
    switch (v->kind()) {
      case Value::Kind::Int:
      case Value::Kind::Bool: {
        if (v->kind() == Value::Kind::Bool) fail("getitem: bool indices are not supported");
        if (d >= nd) {
          fail("getitem: too many indices for tensor of dimension " + std::to_string(nd));
        }
        const std::int64_t size = x.shape()[d];
        std::int64_t i = std::get<std::int64_t>(v->variant());
        if (i < -size || i >= size) {
          fail("getitem: index " + std::to_string(i) + " is out of bounds for dimension " +
               std::to_string(d) + " with size " + std::to_string(size));
        }
        if (i < 0) i += size;
        base += i * in_st[d];
        ++d;
        break;
      }
      case Value::Kind::Slice: {
        if (d >= nd) {
          fail("getitem: too many indices for tensor of dimension " + std::to_string(nd));
        }
        std::int64_t start, stop, step, count;
        slice_indices(std::get<Slice>(v->variant()), x.shape()[d], start, stop, step, count, "getitem");
        if (step < 0) fail("getitem: step must be greater than zero");
        if (count > 0) base += start * in_st[d];
        push(count, count > 1 ? in_st[d] * step : 0);
        ++d;
        break;
      }
      case Value::Kind::None:
        push(1, 0);
        break;
      default:
        fail("getitem: unsupported index " + util::kind_str(*v) +
             " (only ints, slices, None and tuples of those are supported)");
    }
  }
  for (; d < nd; ++d) push(x.shape()[d], in_st[d]);
  if (out.numel() == 0) return Tensor::empty(out, x.dtype());
  if (is_contiguous(out, st)) {
    return Tensor(x.storage(), x.byte_offset() + static_cast<std::size_t>(base) * element_size(x.dtype()),
                  x.dtype(), out);
  }
  return strided_copy(x, base, out, st);
}

Value getitem(const Value& obj, const Value& idx) {
  if (const auto* t = std::get_if<Tensor>(&obj.variant())) return Value(index(*t, idx));
  const std::vector<Value>* items = nullptr;
  const bool is_list = obj.kind() == Value::Kind::List;
  if (is_list) items = &std::get<List>(obj.variant()).items;
  if (obj.kind() == Value::Kind::Tuple) items = &std::get<Tuple>(obj.variant()).items;
  if (!items) fail("getitem: object of type " + util::kind_str(obj) + " is not subscriptable");
  const auto len = static_cast<std::int64_t>(items->size());
  const char* what = is_list ? "list" : "tuple";
  if (idx.kind() == Value::Kind::Int || idx.kind() == Value::Kind::Bool) {
    std::int64_t i = idx.kind() == Value::Kind::Int ? std::get<std::int64_t>(idx.variant())
                                                    : (std::get<bool>(idx.variant()) ? 1 : 0);
    if (i < -len || i >= len) {
      fail(std::string("getitem: ") + what + " index " + std::to_string(i) +
           " out of range (length " + std::to_string(len) + ")");
    }
    if (i < 0) i += len;
    return (*items)[static_cast<std::size_t>(i)];
  }
  if (idx.kind() == Value::Kind::Slice) {
    std::int64_t start, stop, step, count;
    slice_indices(std::get<Slice>(idx.variant()), len, start, stop, step, count, "getitem");
    std::vector<Value> out;
    out.reserve(static_cast<std::size_t>(count));
    for (std::int64_t k = 0; k < count; ++k) out.push_back((*items)[static_cast<std::size_t>(start + k * step)]);
    if (is_list) return Value(List{std::move(out)});
    return Value(Tuple{std::move(out)});
  }
  fail(std::string("getitem: ") + what + " indices must be integers or slices, not " + util::kind_str(idx));
}

namespace {

// ---- Kernels (named by shape.yaml): arguments are bound and type-checked -----------------------

// reshape(self, shape)
Value reshape_kernel(std::span<const Value> a) { return Value(reshape(a[0].tensor(), a[1].int_list(), "reshape")); }
// view(self, size)
Value view_kernel(std::span<const Value> a) { return Value(reshape(a[0].tensor(), a[1].int_list(), "view")); }
// _unsafe_view(self, size)
Value unsafe_view_kernel(std::span<const Value> a) {
  return Value(reshape(a[0].tensor(), a[1].int_list(), "_unsafe_view"));
}
// _reshape_alias(self, size, stride): fxpack tensors are contiguous, so the strides must be
// the contiguous strides of `size`.
Value reshape_alias_kernel(std::span<const Value> a) {
  auto size = a[1].int_list();
  auto stride = a[2].int_list();
  if (size.size() != stride.size())
    fail("_reshape_alias: size and stride have different lengths (" + python_repr(a[1]) + ", " + python_repr(a[2]) + ")");
  std::int64_t expect = 1;
  for (std::size_t i = size.size(); i-- > 0;) {
    if (size[i] != 1 && stride[i] != expect)
      fail("_reshape_alias: only contiguous strides are supported, got size " + python_repr(a[1]) + " and stride " +
           python_repr(a[2]));
    expect *= size[i];
  }
  return Value(reshape(a[0].tensor(), size, "_reshape_alias"));
}
// flatten(self, start_dim, end_dim)
Value flatten_kernel(std::span<const Value> a) { return Value(flatten(a[0].tensor(), a[1].to_int(), a[2].to_int())); }
// permute(self, dims)
Value permute_kernel(std::span<const Value> a) { return Value(permute(a[0].tensor(), a[1].int_list())); }
// transpose.int(self, dim0, dim1)
Value transpose_kernel(std::span<const Value> a) {
  return Value(transpose(a[0].tensor(), a[1].to_int(), a[2].to_int()));
}
// t(self)
Value t_kernel(std::span<const Value> a) { return Value(t(a[0].tensor())); }
// unsqueeze(self, dim)
Value unsqueeze_kernel(std::span<const Value> a) {
  const Tensor& x = a[0].tensor();
  const auto nd = static_cast<std::int64_t>(x.dim());
  const std::int64_t d = util::wrap_dim(a[1].to_int(), nd + 1, "unsqueeze");
  std::vector<std::int64_t> s = x.shape().to_vector();
  s.insert(s.begin() + d, 1);
  return Value(reshape(x, s, "unsqueeze"));
}
// operator.getitem(a, b)
Value getitem_kernel(std::span<const Value> a) { return getitem(a[0], a[1]); }
// contiguous(self, *, memory_format): fxpack tensors are contiguous.
Value contiguous_kernel(std::span<const Value> a) { return a[0]; }
// detach(self): fxpack has no autograd.
Value detach_kernel(std::span<const Value> a) { return a[0]; }
// clone(self, *, memory_format)
Value clone_kernel(std::span<const Value> a) { return Value(a[0].tensor().clone()); }
// Tensor.size(self, dim)
Value size_dim_kernel(std::span<const Value> a) {
  const Tensor& x = a[0].tensor();
  const std::int64_t d = util::wrap_dim(a[1].to_int(), static_cast<std::int64_t>(x.dim()), "size");
  if (x.dim() == 0) fail("size: dimension specified as " + std::to_string(d) + " but tensor has no dimensions");
  return Value(x.shape()[static_cast<std::size_t>(d)]);
}
// Tensor.size(self)
Value size_kernel(std::span<const Value> a) {
  Tuple t;
  for (std::int64_t d : a[0].tensor().shape()) t.items.emplace_back(d);
  return Value(std::move(t));
}
// empty.memory_format(size, *, dtype, layout, device, pin_memory, memory_format)
Value empty_kernel(std::span<const Value> a) {
  auto dims = a[0].int_list();
  for (std::int64_t d : dims)
    if (d < 0) fail("empty: negative dimension " + std::to_string(d));
  const DType dt = a[1].is_none() ? DType::Float32 : a[1].dtype();
  return Value(Tensor::empty(Shape(std::span<const std::int64_t>(dims)), dt));
}

// ---- make_fx decompositions -------------------------------------------------------------------

List int_list(const std::vector<std::int64_t>& v) {
  List l;
  for (std::int64_t x : v) l.items.emplace_back(x);
  return l;
}

// PyTorch 1.13's reshape of a contiguous tensor: _reshape_alias(x, size, contiguous strides).
Value reshape_alias_of(OpRecorder& rec, const TracedValue& x, const Tensor& result) {
  std::vector<std::int64_t> strides(result.dim());
  util::contiguous_strides(result.shape(), strides.data());
  return rec.record("_reshape_alias.default", {x.sym, int_list(result.shape().to_vector()), int_list(strides)});
}

Value reshape_decomposition(OpRecorder& rec, const OpCall& call) {
  return reshape_alias_of(rec, call.args[0], call.result.tensor());
}

// torch.flatten: the input itself when nothing is flattened, else a reshape.
Value flatten_decomposition(OpRecorder& rec, const OpCall& call) {
  const Tensor& x = call.args[0].real.tensor();
  const auto nd = static_cast<std::int64_t>(x.dim());
  if (nd > 0) {
    auto wrap = [&](std::int64_t d) { return d < 0 ? d + nd : d; };
    if (wrap(call.args[1].real.to_int()) == wrap(call.args[2].real.to_int())) return call.args[0].sym;
  }
  return reshape_alias_of(rec, call.args[0], call.result.tensor());
}

// An op that returns its (contiguous) input: nothing is recorded.
Value returns_self(OpRecorder&, const OpCall& call) { return call.args[0].sym; }

// getitem of a traced tuple or list is the symbolic element; indexing a Tensor has no
// op-level form yet.
Value getitem_decomposition(OpRecorder&, const OpCall& call) {
  const Value& s = call.args[0].sym;
  if (s.kind() == Value::Kind::Tuple || s.kind() == Value::Kind::List) return getitem(s, call.args[1].sym);
  fail("getitem: indexing a Tensor is not supported by make_fx");
}

}  // namespace

#include "shape_table.inc"

}  // namespace fxpack::ops
