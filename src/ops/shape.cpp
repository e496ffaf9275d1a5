// Shape ops (shape.yaml): reshape/view, flatten, permute/transpose/t, unsqueeze, indexing,
// size, contiguous, detach/clone, empty.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>

#include "elementwise.hpp"
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
void gather_strided(const E* in, std::int64_t base, const Shape& shape, const std::int64_t* st, E* out) {
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
    case 1: gather_strided(x.data<std::uint8_t>(), base, shape, st, out.data<std::uint8_t>()); break;
    case 2: gather_strided(x.data<std::uint16_t>(), base, shape, st, out.data<std::uint16_t>()); break;
    case 4: gather_strided(x.data<std::uint32_t>(), base, shape, st, out.data<std::uint32_t>()); break;
    default: gather_strided(x.data<std::uint64_t>(), base, shape, st, out.data<std::uint64_t>()); break;
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

Shape reshape_shape(std::int64_t numel, std::span<const std::int64_t> shape, const char* op) {
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
  if (infer >= 0) {
    if (known == 0 || numel % known != 0) {
      fail(std::string(op) + ": shape '" + list_str(shape) + "' is invalid for input of size " +
           std::to_string(numel));
    }
    out[static_cast<std::size_t>(infer)] = numel / known;
  } else if (known != numel) {
    fail(std::string(op) + ": shape '" + list_str(shape) + "' is invalid for input of size " +
         std::to_string(numel));
  }
  return out;
}

Tensor reshape(const Tensor& x, std::span<const std::int64_t> shape, const char* op) {
  if (!x.defined()) fail(std::string(op) + ": undefined tensor");
  return x.view(reshape_shape(x.numel(), shape, op));
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

// ---- Joining, splitting, selecting: every copy moves contiguous blocks ----------------------

namespace {

// Elements before dim, and from dim on excluding it (PyTorch's outer/inner split of a shape).
std::int64_t prod_before(const Shape& s, std::size_t dim) {
  std::int64_t p = 1;
  for (std::size_t i = 0; i < dim; ++i) p *= s[i];
  return p;
}
std::int64_t prod_after(const Shape& s, std::size_t dim) {
  std::int64_t p = 1;
  for (std::size_t i = dim + 1; i < s.size(); ++i) p *= s[i];
  return p;
}

Shape with_dim(const Shape& s, std::size_t dim, std::int64_t size) {
  Shape out = s;
  out[dim] = size;
  return out;
}

Shape without_dim(const Shape& s, std::size_t dim) {
  Shape out;
  for (std::size_t i = 0; i < s.size(); ++i)
    if (i != dim) out.push_back(s[i]);
  return out;
}

// The view of x (contiguous, shape s) as its elements seen through `st`: strides of the
// contiguous layout.
void strides_of(const Tensor& x, std::int64_t* st) { util::contiguous_strides(x.shape(), st); }

}  // namespace

Tensor cat(std::span<const Tensor> tensors, std::int64_t dim, const char* op) {
  if (tensors.empty()) fail(std::string(op) + ": expected a non-empty list of Tensors");
  // PyTorch skips legacy empty 1-D tensors ([0]) when it checks shapes.
  auto skipped = [](const Tensor& t) { return t.dim() == 1 && t.numel() == 0; };
  const Tensor* ref = nullptr;
  DType dt = tensors[0].dtype();
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    if (!t.defined()) fail(std::string(op) + ": tensor number " + std::to_string(i) + " is undefined");
    if (t.dim() == 0) {
      fail(std::string(op) + ": zero-dimensional tensor (at position " + std::to_string(i) +
           ") cannot be concatenated");
    }
    if (i > 0) dt = result_type(Value(Tensor::empty(Shape{0}, dt)), Value(Tensor::empty(Shape{0}, t.dtype())));
    if (!ref && !skipped(t)) ref = &t;
  }
  if (!ref) return Tensor::empty(Shape{0}, dt);
  const auto nd = static_cast<std::int64_t>(ref->dim());
  const auto d = static_cast<std::size_t>(util::wrap_dim(dim, nd, op));
  std::int64_t total = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    if (skipped(t)) continue;
    if (t.dim() != ref->dim()) {
      fail(std::string(op) + ": Tensors must have same number of dimensions: got " + std::to_string(ref->dim()) +
           " and " + std::to_string(t.dim()));
    }
    for (std::size_t k = 0; k < t.dim(); ++k) {
      if (k != d && t.shape()[k] != ref->shape()[k]) {
        fail(std::string(op) + ": Sizes of tensors must match except in dimension " + std::to_string(d) +
             ". Expected size " + std::to_string(ref->shape()[k]) + " but got size " + std::to_string(t.shape()[k]) +
             " for tensor number " + std::to_string(i) + " in the list.");
      }
    }
    total += t.shape()[d];
  }
  Tensor out = Tensor::empty(with_dim(ref->shape(), d, total), dt);
  const std::int64_t outer = prod_before(ref->shape(), d);
  const std::size_t es = element_size(dt);
  const std::size_t out_row = static_cast<std::size_t>(total * prod_after(ref->shape(), d)) * es;
  std::byte* base = out.data<std::byte>();
  std::size_t col = 0;
  for (const Tensor& t0 : tensors) {
    if (skipped(t0)) continue;
    const Tensor t = t0.to(dt);
    const std::size_t row = static_cast<std::size_t>(t.shape()[d] * prod_after(t.shape(), d)) * es;
    const std::byte* src = t.data<std::byte>();
    if (row > 0)
      for (std::int64_t r = 0; r < outer; ++r) std::memcpy(base + r * out_row + col, src + r * row, row);
    col += row;
  }
  return out;
}

Tensor stack(std::span<const Tensor> tensors, std::int64_t dim) {
  if (tensors.empty()) fail("stack: stack expects a non-empty TensorList");
  const Shape& s0 = tensors[0].shape();
  for (std::size_t i = 1; i < tensors.size(); ++i) {
    if (!(tensors[i].shape() == s0)) {
      fail("stack: stack expects each tensor to be equal size, but got " + s0.to_string() + " at entry 0 and " +
           tensors[i].shape().to_string() + " at entry " + std::to_string(i));
    }
  }
  const auto d = util::wrap_dim(dim, static_cast<std::int64_t>(s0.size()) + 1, "stack");
  std::vector<std::int64_t> s = s0.to_vector();
  s.insert(s.begin() + d, 1);
  std::vector<Tensor> parts;
  parts.reserve(tensors.size());
  for (const Tensor& t : tensors) parts.push_back(reshape(t, s, "stack"));
  return cat(parts, d, "stack");
}

Tensor narrow(const Tensor& x, std::int64_t dim, std::int64_t start, std::int64_t length, const char* op) {
  if (!x.defined()) fail(std::string(op) + ": undefined tensor");
  if (x.dim() == 0) fail(std::string(op) + ": narrow() cannot be applied to a 0-dim tensor.");
  const auto d = static_cast<std::size_t>(util::wrap_dim(dim, static_cast<std::int64_t>(x.dim()), op));
  const std::int64_t size = x.shape()[d];
  if (start < -size || start > size) {
    fail(std::string(op) + ": start out of range (expected to be in range of [" + std::to_string(-size) + ", " +
         std::to_string(size) + "], but got " + std::to_string(start) + ")");
  }
  if (start < 0) start += size;
  if (length < 0 || start > size - length) {
    fail(std::string(op) + ": start (" + std::to_string(start) + ") + length (" + std::to_string(length) +
         ") exceeds dimension size (" + std::to_string(size) + ").");
  }
  const Shape out_shape = with_dim(x.shape(), d, length);
  const std::int64_t outer = prod_before(x.shape(), d);
  const std::int64_t inner = prod_after(x.shape(), d);
  const std::size_t es = element_size(x.dtype());
  // One block: an alias of x's storage, as PyTorch's view.
  if (outer == 1 || length == size || out_shape.numel() == 0) {
    if (out_shape.numel() == 0) return Tensor::empty(out_shape, x.dtype());
    if (length == size) return x;
    return Tensor(x.storage(), x.byte_offset() + static_cast<std::size_t>(start * inner) * es, x.dtype(), out_shape);
  }
  Tensor out = Tensor::empty(out_shape, x.dtype());
  const std::size_t in_row = static_cast<std::size_t>(size * inner) * es;
  const std::size_t out_row = static_cast<std::size_t>(length * inner) * es;
  const std::byte* src = x.data<std::byte>() + static_cast<std::size_t>(start * inner) * es;
  std::byte* dst = out.data<std::byte>();
  for (std::int64_t r = 0; r < outer; ++r) std::memcpy(dst + r * out_row, src + r * in_row, out_row);
  return out;
}

Tensor select(const Tensor& x, std::int64_t dim, std::int64_t index) {
  if (!x.defined()) fail("select: undefined tensor");
  if (x.dim() == 0) fail("select: select() cannot be applied to a 0-dim tensor.");
  const auto d = static_cast<std::size_t>(util::wrap_dim(dim, static_cast<std::int64_t>(x.dim()), "select"));
  const std::int64_t size = x.shape()[d];
  if (index < -size || index >= size) {
    fail("select: select(): index " + std::to_string(index) + " out of range for tensor of size " +
         x.shape().to_string() + " at dimension " + std::to_string(d));
  }
  if (index < 0) index += size;
  return narrow(x, static_cast<std::int64_t>(d), index, 1, "select").view(without_dim(x.shape(), d));
}

std::vector<Tensor> split(const Tensor& x, std::int64_t split_size, std::int64_t dim) {
  if (!x.defined()) fail("split: undefined tensor");
  if (x.dim() == 0) fail("split: split expects at least a 1-dimensional tensor");
  if (split_size < 0)
    fail("split: split expects split_size be non-negative, but got split_size=" + std::to_string(split_size));
  const auto d = util::wrap_dim(dim, static_cast<std::int64_t>(x.dim()), "split");
  const std::int64_t size = x.shape()[static_cast<std::size_t>(d)];
  if (split_size == 0 && size != 0) {
    fail("split: split_size can only be 0 if dimension size is 0, but got dimension size of " + std::to_string(size));
  }
  const std::int64_t n = split_size == 0 ? 1 : std::max<std::int64_t>((size + split_size - 1) / split_size, 1);
  std::vector<Tensor> out;
  out.reserve(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t start = i * split_size;
    out.push_back(narrow(x, d, start, std::min(split_size, size - start), "split"));
  }
  return out;
}

std::vector<Tensor> split_with_sizes(const Tensor& x, std::span<const std::int64_t> sizes, std::int64_t dim) {
  if (!x.defined()) fail("split_with_sizes: undefined tensor");
  if (x.dim() == 0) fail("split_with_sizes: split expects at least a 1-dimensional tensor");
  const auto d = util::wrap_dim(dim, static_cast<std::int64_t>(x.dim()), "split_with_sizes");
  const std::int64_t size = x.shape()[static_cast<std::size_t>(d)];
  std::int64_t sum = 0;
  for (std::int64_t s : sizes) {
    if (s < 0) {
      fail(
          "split_with_sizes: split_with_sizes expects split_sizes have only non-negative entries, but got "
          "split_sizes=" +
          list_str(sizes));
    }
    sum += s;
  }
  if (sum != size) {
    fail("split_with_sizes: split_with_sizes expects split_sizes to sum exactly to " + std::to_string(size) +
         " (input tensor's size at dimension " + std::to_string(d) + "), but got split_sizes=" + list_str(sizes));
  }
  std::vector<Tensor> out;
  std::int64_t start = 0;
  for (std::int64_t s : sizes) {
    out.push_back(narrow(x, d, start, s, "split_with_sizes"));
    start += s;
  }
  return out;
}

Tensor expand(const Tensor& x, std::span<const std::int64_t> size, const char* op) {
  if (!x.defined()) fail(std::string(op) + ": undefined tensor");
  const std::size_t nd = x.dim();
  if (size.size() < nd) {
    fail(std::string(op) + ": the number of sizes provided (" + std::to_string(size.size()) +
         ") must be greater or equal to the number of dimensions in the tensor (" + std::to_string(nd) + ")");
  }
  if (size.size() > Shape::kMaxDims)
    fail(std::string(op) + ": at most " + std::to_string(Shape::kMaxDims) + " dimensions are supported");
  std::int64_t in_st[Shape::kMaxDims];
  strides_of(x, in_st);
  Shape out;
  std::int64_t st[Shape::kMaxDims];
  const std::size_t lead = size.size() - nd;
  for (std::size_t i = 0; i < size.size(); ++i) {
    std::int64_t target = size[i];
    if (i < lead) {
      if (target < 0) {
        fail(std::string(op) + ": The expanded size of the tensor (" + std::to_string(target) +
             ") isn't allowed in a leading, non-existing dimension " + std::to_string(i));
      }
      st[i] = 0;
    } else {
      const std::int64_t have = x.shape()[i - lead];
      if (target == -1) target = have;
      if (have != target) {
        if (have != 1) {
          fail(std::string(op) + ": The expanded size of the tensor (" + std::to_string(target) +
               ") must match the existing size (" + std::to_string(have) + ") at non-singleton dimension " +
               std::to_string(i) + ".  Target sizes: " + list_str(size) + ".  Tensor sizes: " + x.shape().to_string());
        }
        if (target < 0) fail(std::string(op) + ": invalid expanded size " + std::to_string(target));
      }
      st[i] = have == 1 ? 0 : in_st[i - lead];
    }
    out.push_back(target);
  }
  if (out.numel() == x.numel()) return x.view(out);
  return strided_copy(x, 0, out, st);
}

Tensor flip(const Tensor& x, std::span<const std::int64_t> dims) {
  if (!x.defined()) fail("flip: undefined tensor");
  const auto nd = static_cast<std::int64_t>(x.dim());
  std::int64_t st[Shape::kMaxDims];
  strides_of(x, st);
  bool flipped[Shape::kMaxDims] = {};
  std::int64_t base = 0;
  for (std::int64_t dim : dims) {
    const auto d = static_cast<std::size_t>(util::wrap_dim(dim, nd, "flip"));
    if (nd == 0) continue;
    if (flipped[d]) fail("flip: dims has duplicates: " + list_str(dims));
    flipped[d] = true;
    base += (x.shape()[d] - 1) * st[d];
    st[d] = -st[d];
  }
  if (x.numel() == 0) return Tensor::empty(x.shape(), x.dtype());
  return strided_copy(x, base, x.shape(), st);
}

namespace {

// x rolled by `shift` along dim d: two block copies per outer row.
Tensor roll_one(const Tensor& x, std::size_t d, std::int64_t shift) {
  const std::int64_t size = x.shape()[d];
  if (size == 0) return x;
  shift = ((shift % size) + size) % size;
  if (shift == 0) return x;
  const std::int64_t outer = prod_before(x.shape(), d);
  const std::size_t es = element_size(x.dtype());
  const std::size_t inner = static_cast<std::size_t>(prod_after(x.shape(), d)) * es;
  const std::size_t row = static_cast<std::size_t>(size) * inner;
  const std::size_t tail = static_cast<std::size_t>(shift) * inner;  // moves to the front
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  const std::byte* src = x.data<std::byte>();
  std::byte* dst = out.data<std::byte>();
  for (std::int64_t r = 0; r < outer; ++r) {
    std::memcpy(dst + r * row, src + r * row + (row - tail), tail);
    std::memcpy(dst + r * row + tail, src + r * row, row - tail);
  }
  return out;
}

}  // namespace

Tensor roll(const Tensor& x, std::span<const std::int64_t> shifts, std::span<const std::int64_t> dims) {
  if (!x.defined()) fail("roll: undefined tensor");
  if (shifts.empty()) fail("roll: `shifts` required");
  if (dims.empty()) {
    if (shifts.size() != 1) {
      fail("roll: shifts and dimensions must align. shifts: " + std::to_string(shifts.size()) + ", dims:0");
    }
    const std::int64_t n = x.numel();
    return roll_one(x.view(Shape{n}), 0, shifts[0]).view(x.shape());
  }
  if (shifts.size() != dims.size()) {
    fail("roll: shifts and dimensions must align. shifts: " + std::to_string(shifts.size()) +
         ", dims:" + std::to_string(dims.size()));
  }
  Tensor out = x;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    const auto d = util::wrap_dim(dims[i], static_cast<std::int64_t>(x.dim()), "roll");
    if (x.dim() == 0) continue;
    out = roll_one(out, static_cast<std::size_t>(d), shifts[i]);
  }
  return out.same_storage(x) ? x.clone() : out;
}

Tensor repeat(const Tensor& x, std::span<const std::int64_t> repeats) {
  if (!x.defined()) fail("repeat: undefined tensor");
  if (repeats.size() < x.dim()) {
    fail("repeat: Number of dimensions of repeat dims can not be smaller than number of dimensions of tensor");
  }
  if (repeats.size() > Shape::kMaxDims)
    fail("repeat: at most " + std::to_string(Shape::kMaxDims) + " dimensions are supported");
  for (std::int64_t r : repeats)
    if (r < 0)
      fail("repeat: Trying to create tensor with negative dimension " + std::to_string(r) + ": " + list_str(repeats));
  // x padded with leading 1s, then tiled one dim at a time from the last: each outer row's
  // block is copied `r` times.
  Shape cur;
  for (std::size_t i = x.dim(); i < repeats.size(); ++i) cur.push_back(1);
  for (std::int64_t s : x.shape()) cur.push_back(s);
  Tensor t = x.view(cur);
  const std::size_t es = element_size(x.dtype());
  for (std::size_t d = repeats.size(); d-- > 0;) {
    const std::int64_t r = repeats[d];
    if (r == 1) continue;
    Shape next = with_dim(cur, d, cur[d] * r);
    Tensor out = Tensor::empty(next, x.dtype());
    const std::int64_t outer = prod_before(cur, d);
    const std::size_t block = static_cast<std::size_t>(cur[d] * prod_after(cur, d)) * es;
    const std::byte* src = t.data<std::byte>();
    std::byte* dst = out.data<std::byte>();
    if (block > 0)
      for (std::int64_t o = 0; o < outer; ++o)
        for (std::int64_t k = 0; k < r; ++k) std::memcpy(dst + (o * r + k) * block, src + o * block, block);
    t = out;
    cur = next;
  }
  return t.same_storage(x) ? t.clone() : t;
}

namespace {

// The int64 positions of an index tensor, wrapped into [0, size) (negative ones count from
// the end when `negative` allows them, as advanced indexing does; index_select refuses them).
std::vector<std::int64_t> index_positions(const Tensor& index, std::int64_t size, bool negative, const char* op) {
  if (index.dtype() != DType::Int64 && index.dtype() != DType::Int32) {
    fail(std::string(op) + ": Expected dtype int32/int64 for index, got " + std::string(dtype_name(index.dtype())));
  }
  std::vector<std::int64_t> pos(static_cast<std::size_t>(index.numel()));
  for (std::size_t i = 0; i < pos.size(); ++i) {
    std::int64_t v = index.dtype() == DType::Int64 ? index.data<std::int64_t>()[i] : index.data<std::int32_t>()[i];
    if (negative && v < 0 && v >= -size) v += size;
    if (v < 0 || v >= size) {
      if (negative) {
        fail(std::string(op) + ": index " + std::to_string(v) + " is out of bounds for dimension with size " +
             std::to_string(size));
      }
      fail(std::string(op) + ": index out of range in self (index " + std::to_string(v) + ", size " +
           std::to_string(size) + ")");
    }
    pos[i] = v;
  }
  return pos;
}

// out[o, k, :] = x[o, pos[k], :] along dim d: one block copy per (outer row, position).
Tensor take_along(const Tensor& x, std::size_t d, std::span<const std::int64_t> pos) {
  const auto count = static_cast<std::int64_t>(pos.size());
  Tensor out = Tensor::empty(with_dim(x.shape(), d, count), x.dtype());
  const std::int64_t outer = prod_before(x.shape(), d);
  const std::size_t es = element_size(x.dtype());
  const std::size_t inner = static_cast<std::size_t>(prod_after(x.shape(), d)) * es;
  const std::size_t in_row = static_cast<std::size_t>(x.shape()[d]) * inner;
  const std::byte* src = x.data<std::byte>();
  std::byte* dst = out.data<std::byte>();
  if (inner == 0) return out;
  for (std::int64_t o = 0; o < outer; ++o)
    for (std::int64_t k = 0; k < count; ++k)
      std::memcpy(dst + (o * count + k) * inner,
                  src + o * in_row + static_cast<std::size_t>(pos[static_cast<std::size_t>(k)]) * inner, inner);
  return out;
}

}  // namespace

Tensor index_select(const Tensor& x, std::int64_t dim, const Tensor& index) {
  if (!x.defined() || !index.defined()) fail("index_select: undefined tensor");
  if (index.dim() > 1) fail("index_select: index_select(): Index is supposed to be a vector");
  if (x.dim() == 0) {
    util::wrap_dim(dim, 0, "index_select");
    index_positions(index, 1, false, "index_select");
    if (index.numel() != 1)
      fail("index_select: index_select(): Index to scalar can have only 1 value, got " + std::to_string(index.numel()) +
           " value(s)");
    return x.clone();
  }
  const auto d = static_cast<std::size_t>(util::wrap_dim(dim, static_cast<std::int64_t>(x.dim()), "index_select"));
  const auto pos = index_positions(index, x.shape()[d], false, "index_select");
  return take_along(x, d, pos);
}

Tensor gather(const Tensor& x, std::int64_t dim, const Tensor& index) {
  if (!x.defined() || !index.defined()) fail("gather: undefined tensor");
  if (index.dtype() != DType::Int64) fail("gather: gather(): Expected dtype int64 for index");
  const std::size_t nd = std::max<std::size_t>(x.dim(), 1);
  const auto d = static_cast<std::size_t>(util::wrap_dim(dim, static_cast<std::int64_t>(x.dim()), "gather"));
  if (std::max<std::size_t>(index.dim(), 1) != nd) {
    fail("gather: Index tensor must have the same number of dimensions as input tensor");
  }
  Shape xs = x.dim() == 0 ? Shape{1} : x.shape();
  Shape is = index.dim() == 0 ? Shape{1} : index.shape();
  for (std::size_t k = 0; k < nd; ++k) {
    if (k != d && is[k] > xs[k]) {
      fail("gather: Size does not match at dimension " + std::to_string(k) + " expected index " +
           index.shape().to_string() + " to be smaller than self " + x.shape().to_string() + " apart from dimension " +
           std::to_string(d));
    }
  }
  Tensor out = Tensor::empty(index.shape(), x.dtype());
  std::int64_t xst[Shape::kMaxDims];
  util::contiguous_strides(xs, xst);
  const std::size_t es = element_size(x.dtype());
  const std::byte* src = x.data<std::byte>();
  std::byte* dst = out.data<std::byte>();
  const std::int64_t* ip = index.data<std::int64_t>();
  std::int64_t idx[Shape::kMaxDims] = {};
  const std::int64_t n = index.numel();
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t v = ip[i];
    if (v < -xs[d] || v >= xs[d]) {
      fail("gather: index " + std::to_string(v) + " is out of bounds for dimension " + std::to_string(d) +
           " with size " + std::to_string(xs[d]));
    }
    std::int64_t off = 0;
    for (std::size_t k = 0; k < nd; ++k) off += (k == d ? (v < 0 ? v + xs[d] : v) : idx[k]) * xst[k];
    std::memcpy(dst + static_cast<std::size_t>(i) * es, src + static_cast<std::size_t>(off) * es, es);
    for (std::size_t k = nd; k-- > 0;) {
      if (++idx[k] < is[k]) break;
      idx[k] = 0;
    }
  }
  return out;
}

namespace {

// Zeroes the part of each trailing matrix above (lower=true: keep j - i <= diagonal) or
// below (keep j - i >= diagonal) the diagonal; zero bytes are zero in every dtype.
Tensor triangle(const Tensor& x, std::int64_t diagonal, bool lower, const char* op) {
  if (!x.defined()) fail(std::string(op) + ": undefined tensor");
  if (x.dim() < 2) fail(std::string(op) + ": input tensor must have at least 2 dimensions");
  Tensor out = x.clone();
  const std::int64_t rows = x.shape()[x.dim() - 2], cols = x.shape()[x.dim() - 1];
  const std::int64_t mats = rows * cols == 0 ? 0 : x.numel() / (rows * cols);
  const std::size_t es = element_size(x.dtype());
  std::byte* p = out.data<std::byte>();
  for (std::int64_t m = 0; m < mats; ++m)
    for (std::int64_t i = 0; i < rows; ++i) {
      std::byte* row = p + static_cast<std::size_t>((m * rows + i) * cols) * es;
      // lower: zero columns j > i + diagonal; upper: zero columns j < i + diagonal.
      const std::int64_t edge = std::clamp<std::int64_t>(lower ? i + diagonal + 1 : i + diagonal, 0, cols);
      if (lower)
        std::memset(row + static_cast<std::size_t>(edge) * es, 0, static_cast<std::size_t>(cols - edge) * es);
      else
        std::memset(row, 0, static_cast<std::size_t>(edge) * es);
    }
  return out;
}

// Whether each element is nonzero (NaN is; -0.0 is not), for any dtype.
std::vector<std::uint8_t> nonzero_mask(const Tensor& x) {
  const auto n = static_cast<std::size_t>(x.numel());
  std::vector<std::uint8_t> m(n);
  auto fill = [&](const auto* p) {
    for (std::size_t i = 0; i < n; ++i) m[i] = p[i] != 0;
  };
  switch (x.dtype()) {
    case DType::Float32:
      fill(x.data<float>());
      break;
    case DType::Float64:
      fill(x.data<double>());
      break;
    case DType::Float16:
    case DType::BFloat16: {
      const auto* p = x.data<std::uint16_t>();
      for (std::size_t i = 0; i < n; ++i) m[i] = (p[i] & 0x7fff) != 0;
      break;
    }
    default:
      switch (element_size(x.dtype())) {
        case 1:
          fill(x.data<std::uint8_t>());
          break;
        case 2:
          fill(x.data<std::uint16_t>());
          break;
        case 4:
          fill(x.data<std::uint32_t>());
          break;
        default:
          fill(x.data<std::uint64_t>());
          break;
      }
  }
  return m;
}

}  // namespace

Tensor tril(const Tensor& x, std::int64_t diagonal) { return triangle(x, diagonal, true, "tril"); }
Tensor triu(const Tensor& x, std::int64_t diagonal) { return triangle(x, diagonal, false, "triu"); }

Tensor nonzero(const Tensor& x) {
  if (!x.defined()) fail("nonzero: undefined tensor");
  const auto mask = nonzero_mask(x);
  std::int64_t count = 0;
  for (std::uint8_t b : mask) count += b;
  const auto nd = static_cast<std::int64_t>(x.dim());
  Tensor out = Tensor::empty(Shape{count, nd}, DType::Int64);
  std::int64_t* o = out.data<std::int64_t>();
  std::int64_t idx[Shape::kMaxDims] = {};
  for (std::size_t i = 0; i < mask.size(); ++i) {
    if (mask[i])
      for (std::int64_t k = 0; k < nd; ++k) *o++ = idx[k];
    for (std::int64_t k = nd; k-- > 0;) {
      if (++idx[k] < x.shape()[static_cast<std::size_t>(k)]) break;
      idx[k] = 0;
    }
  }
  return out;
}

Tensor masked_select(const Tensor& x, const Tensor& mask) {
  if (!x.defined() || !mask.defined()) fail("masked_select: undefined tensor");
  // uint8 masks are PyTorch's deprecated form, still accepted.
  if (mask.dtype() != DType::Bool && mask.dtype() != DType::UInt8) {
    fail(std::string("masked_select: masked_select: expected BoolTensor for mask, got ") +
         std::string(dtype_name(mask.dtype())));
  }
  const Shape s = broadcast_shapes(x.shape(), mask.shape(), "masked_select");
  const std::vector<std::int64_t> sv = s.to_vector();
  const Tensor xb = expand(x, sv, "masked_select");
  const Tensor mb = expand(mask, sv, "masked_select");
  const auto* m = mb.data<std::uint8_t>();
  std::int64_t count = 0;
  for (std::int64_t i = 0; i < mb.numel(); ++i) count += m[i] != 0;
  Tensor out = Tensor::empty(Shape{count}, x.dtype());
  const std::size_t es = element_size(x.dtype());
  const std::byte* src = xb.data<std::byte>();
  std::byte* dst = out.data<std::byte>();
  for (std::int64_t i = 0; i < mb.numel(); ++i)
    if (m[i]) {
      std::memcpy(dst, src + static_cast<std::size_t>(i) * es, es);
      dst += es;
    }
  return out;
}

Tensor squeeze(const Tensor& x, std::span<const std::int64_t> dims, bool all) {
  if (!x.defined()) fail("squeeze: undefined tensor");
  const auto nd = static_cast<std::int64_t>(x.dim());
  bool drop[Shape::kMaxDims] = {};
  if (all) {
    for (std::int64_t d = 0; d < nd; ++d) drop[d] = x.shape()[static_cast<std::size_t>(d)] == 1;
  } else {
    for (std::int64_t dim : dims) {
      const std::int64_t d = util::wrap_dim(dim, nd, "squeeze");
      if (nd > 0 && x.shape()[static_cast<std::size_t>(d)] == 1) drop[d] = true;
    }
  }
  Shape out;
  for (std::int64_t d = 0; d < nd; ++d)
    if (!drop[d]) out.push_back(x.shape()[static_cast<std::size_t>(d)]);
  return x.view(out);
}

std::vector<std::int64_t> movedim_permutation(std::int64_t nd, std::span<const std::int64_t> source,
                                              std::span<const std::int64_t> destination) {
  if (source.size() != destination.size()) {
    fail("movedim: Invalid source or destination dims: source (" + list_str(source) +
         " dims) should contain the same number of dims as destination (" + list_str(destination) + " dims)");
  }
  std::vector<std::int64_t> perm(static_cast<std::size_t>(nd), -1);
  bool src_used[Shape::kMaxDims] = {};
  for (std::size_t i = 0; i < source.size(); ++i) {
    const std::int64_t s = util::wrap_dim(source[i], nd, "movedim");
    const std::int64_t d = util::wrap_dim(destination[i], nd, "movedim");
    if (nd == 0) continue;
    if (src_used[s]) fail("movedim: repeated dim in `source` (" + list_str(source) + ")");
    if (perm[static_cast<std::size_t>(d)] != -1)
      fail("movedim: repeated dim in `destination` (" + list_str(destination) + ")");
    src_used[s] = true;
    perm[static_cast<std::size_t>(d)] = s;
  }
  std::int64_t next = 0;
  for (auto& p : perm) {
    if (p != -1) continue;
    while (src_used[next]) ++next;
    p = next++;
  }
  return perm;
}

Tensor movedim(const Tensor& x, std::span<const std::int64_t> source, std::span<const std::int64_t> destination) {
  if (!x.defined()) fail("movedim: undefined tensor");
  const auto perm = movedim_permutation(static_cast<std::int64_t>(x.dim()), source, destination);
  if (x.dim() == 0) return x;
  return permute(x, perm);
}

Tensor pad(const Tensor& x, std::span<const std::int64_t> pad, const std::string& mode, double value) {
  if (!x.defined()) fail("pad: undefined tensor");
  if (pad.size() % 2 != 0) fail("pad: Padding length must be divisible by 2");
  const std::size_t nd = x.dim();
  const std::size_t padded = pad.size() / 2;
  if (padded > nd) fail("pad: Padding length too large");
  const bool constant = mode == "constant";
  if (!constant && mode != "reflect" && mode != "replicate" && mode != "circular") {
    fail("pad: Unrecognised padding mode " + python_str_repr(mode));
  }
  if (!constant && (padded > 3 || nd < padded + 1 || nd > padded + 2)) {
    fail("pad: Padding mode " + python_str_repr(mode) + " takes " + std::to_string(padded + 1) + "-D or " +
         std::to_string(padded + 2) + "-D input for padding of length " + std::to_string(pad.size()) + ", got " +
         std::to_string(nd) + "-D input of shape " + x.shape().to_string());
  }
  // One padded dim at a time, the last first (pad[0], pad[1] are the last dim's): each
  // output row along the dim is one block, copied from its source row or filled.
  Tensor cur = x;
  const std::size_t es = element_size(x.dtype());
  for (std::size_t k = 0; k < padded; ++k) {
    const std::size_t d = nd - 1 - k;
    const std::int64_t before = pad[2 * k], after = pad[2 * k + 1];
    const std::int64_t n = cur.shape()[d];
    const std::int64_t out_n = n + before + after;
    if (out_n < 0) {
      fail("pad: The input size " + std::to_string(n) + ", plus negative padding " +
           std::to_string(std::min<std::int64_t>(before, 0)) + " and " +
           std::to_string(std::min<std::int64_t>(after, 0)) +
           " resulted in a negative output size, which is invalid. Check dimension " + std::to_string(d) +
           " of your input.");
    }
    if (mode == "reflect" && (before >= n || after >= n)) {
      fail("pad: Argument #4: Padding size should be less than the corresponding input dimension, but got: padding (" +
           std::to_string(before) + ", " + std::to_string(after) + ") at dimension " + std::to_string(d) +
           " of input " + x.shape().to_string());
    }
    if (mode == "circular" && (before > n || after > n)) {
      fail("pad: Padding value causes wrapping around more than once.");
    }
    if (mode == "replicate" && n == 0 && out_n > 0)
      fail("pad: replicate padding of an empty dimension " + std::to_string(d));
    Tensor out = Tensor::empty(with_dim(cur.shape(), d, out_n), x.dtype());
    const std::int64_t outer = prod_before(cur.shape(), d);
    const std::int64_t inner_n = prod_after(cur.shape(), d);
    const std::size_t inner = static_cast<std::size_t>(inner_n) * es;
    const Tensor fill = Tensor::full(Shape{inner_n}, value, x.dtype());
    const std::byte* src = cur.data<std::byte>();
    std::byte* dst = out.data<std::byte>();
    if (inner > 0)
      for (std::int64_t o = 0; o < outer; ++o)
        for (std::int64_t j = 0; j < out_n; ++j) {
          std::int64_t i = j - before;
          if (i < 0 || i >= n) {
            if (constant) {
              std::memcpy(dst + static_cast<std::size_t>(o * out_n + j) * inner, fill.data<std::byte>(), inner);
              continue;
            }
            if (mode == "reflect")
              i = i < 0 ? -i : 2 * (n - 1) - i;
            else if (mode == "replicate")
              i = i < 0 ? 0 : n - 1;
            else
              i = ((i % n) + n) % n;
          }
          std::memcpy(dst + static_cast<std::size_t>(o * out_n + j) * inner,
                      src + static_cast<std::size_t>(o * n + i) * inner, inner);
        }
    cur = out;
  }
  return cur.same_storage(x) ? x.clone() : cur;
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

namespace {

// Whether v is a Tensor used as a boolean mask (bool, or PyTorch's deprecated uint8 masks).
bool is_mask(const Tensor& t) { return t.dtype() == DType::Bool || t.dtype() == DType::UInt8; }

// x[items] for ints, slices and None (basic indexing, applied from dim 0): an alias of x's
// storage when the result is one contiguous block, else a copy.
Tensor basic_index(const Tensor& x, std::span<const Value> items) {
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
  for (const Value& v : items) {
    switch (v.kind()) {
      case Value::Kind::Int: {
        if (d >= nd) {
          fail("getitem: too many indices for tensor of dimension " + std::to_string(nd));
        }
        const std::int64_t size = x.shape()[d];
        std::int64_t i = std::get<std::int64_t>(v.variant());
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
        slice_indices(v.slice(), x.shape()[d], start, stop, step, count, "getitem");
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
        fail("getitem: unsupported index " + util::kind_str(v) +
             " (ints, slices, None, Ellipsis, one integer or bool Tensor, and tuples of those are supported)");
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

// The items of an index as given: a tuple's items; a list of ints as one integer Tensor (as
// x[[0, 2]] is); a lone bool as a 0-dim bool mask; anything else as one item.
std::vector<Value> index_items(const Value& idx) {
  std::vector<Value> given;
  if (const auto* tup = idx.if_tuple()) {
    given = tup->items;
  } else if (const auto* list = idx.if_list();
             list && !list->items.empty() &&
             std::all_of(list->items.begin(), list->items.end(), [](const Value& v) { return v.is_int(); })) {
    // x[[0, 2]]: a list of ints is an integer index, as a Tensor would be.
    std::vector<std::int64_t> v = idx.int_list();
    given.emplace_back(
        Tensor::from_vector(std::span<const std::int64_t>(v), Shape{static_cast<std::int64_t>(v.size())}));
  } else {
    given.push_back(idx);
  }
  if (given.size() == 1 && given[0].kind() == Value::Kind::Bool) {
    given[0] = Value(Tensor::full(Shape{}, given[0].to_bool() ? 1.0 : 0.0, DType::Bool));
  }
  return given;
}

// An index split into its basic part and its one Tensor index.
struct SplitIndex {
  std::vector<Value> basic;  // `...` expanded, the Tensor index's dims as full slices
  Tensor tensor;             // undefined when there is none
  std::size_t at = 0;        // the dim of basic_index's result it applies at
};

SplitIndex split_index(const Tensor& x, const std::vector<Value>& given) {
  // Dims the index consumes, and where the tensor index sits.
  std::size_t consumed = 0, ellipses = 0;
  std::optional<std::size_t> tensor_at;
  for (std::size_t i = 0; i < given.size(); ++i) {
    const Value& v = given[i];
    if (v.is_tensor()) {
      if (tensor_at) fail("getitem: indexing with more than one Tensor is not supported");
      tensor_at = i;
      const Tensor& t = v.tensor();
      consumed += is_mask(t) ? t.dim() : 1;
    } else if (v.kind() == Value::Kind::Ellipsis) {
      if (++ellipses > 1) fail("getitem: an index can only have a single ellipsis ('...')");
    } else if (v.kind() == Value::Kind::Int || v.kind() == Value::Kind::Slice) {
      ++consumed;
    }
  }
  if (consumed > x.dim()) {
    fail("getitem: too many indices for tensor of dimension " + std::to_string(x.dim()));
  }
  SplitIndex out;
  std::size_t& p = out.at;  // output dims before the tensor index
  for (std::size_t i = 0; i < given.size(); ++i) {
    const Value& v = given[i];
    if (v.kind() == Value::Kind::Ellipsis) {
      for (std::size_t k = consumed; k < x.dim(); ++k) out.basic.emplace_back(Slice{});
      if (!tensor_at || i < *tensor_at) p += x.dim() - consumed;
    } else if (v.is_tensor()) {
      out.tensor = v.tensor();
      for (std::size_t k = 0; k < (is_mask(out.tensor) ? out.tensor.dim() : 1); ++k) out.basic.emplace_back(Slice{});
    } else {
      out.basic.push_back(v);
      if (tensor_at && i < *tensor_at && v.kind() != Value::Kind::Int) ++p;
    }
  }
  return out;
}

// y indexed at dim p by `index_tensor` (integer positions, or a bool mask over the dims it
// covers): those dims of y replaced by the index's shape (a mask: by its count of trues).
Tensor tensor_index(const Tensor& y, const Tensor& index_tensor, std::size_t p) {
  const Shape& ys = y.shape();
  std::vector<std::int64_t> pos;
  std::vector<std::int64_t> result = std::vector<std::int64_t>(ys.begin(), ys.begin() + static_cast<std::ptrdiff_t>(p));
  std::size_t covered = 1;  // dims of y the tensor index replaces
  if (is_mask(index_tensor)) {
    const std::size_t k = index_tensor.dim();
    for (std::size_t j = 0; j < k; ++j) {
      if (index_tensor.shape()[j] != ys[p + j]) {
        fail("getitem: The shape of the mask " + index_tensor.shape().to_string() + " at index " + std::to_string(j) +
             " does not match the shape of the indexed tensor " + ys.to_string() + " at index " +
             std::to_string(p + j));
      }
    }
    const auto mask = nonzero_mask(index_tensor);
    for (std::size_t i = 0; i < mask.size(); ++i)
      if (mask[i]) pos.push_back(static_cast<std::int64_t>(i));
    covered = k;
    result.push_back(static_cast<std::int64_t>(pos.size()));
  } else {
    if (index_tensor.dtype() != DType::Int64 && index_tensor.dtype() != DType::Int32) {
      fail("getitem: tensors used as indices must be long, int, byte or bool tensors, got " +
           std::string(dtype_name(index_tensor.dtype())));
    }
    pos = index_positions(index_tensor, ys[p], true, "getitem");
    for (std::int64_t s : index_tensor.shape()) result.push_back(s);
  }
  // y with the covered dims merged into one, then the chosen positions along it.
  std::vector<std::int64_t> merged(ys.begin(), ys.begin() + static_cast<std::ptrdiff_t>(p));
  std::int64_t block = 1;
  for (std::size_t j = 0; j < covered; ++j) block *= ys[p + j];
  merged.push_back(block);
  for (std::size_t j = p + covered; j < ys.size(); ++j) {
    merged.push_back(ys[j]);
    result.push_back(ys[j]);
  }
  return reshape(take_along(reshape(y, merged, "getitem"), p, pos), result, "getitem");
}

}  // namespace

// Basic indexing, with `...` expanded to full slices; one Tensor index (integer positions,
// or a bool mask over the dims it covers) is applied after it, at the output dim where its
// place in the index lands — PyTorch's result for a single advanced index.
Tensor index(const Tensor& x, const Value& idx) {
  if (!x.defined()) fail("getitem: undefined tensor");
  const SplitIndex split = split_index(x, index_items(idx));
  Tensor y = basic_index(x, split.basic);
  if (!split.tensor.defined()) return y;
  return tensor_index(y, split.tensor, split.at);
}

Value getitem(const Value& obj, const Value& idx) {
  if (const auto* t = obj.if_tensor()) return Value(index(*t, idx));
  const std::vector<Value>* items = nullptr;
  const bool is_list = obj.kind() == Value::Kind::List;
  if (is_list) items = &obj.list().items;
  if (obj.kind() == Value::Kind::Tuple) items = &obj.tuple().items;
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
    slice_indices(idx.slice(), len, start, stop, step, count, "getitem");
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
// getitem of a Tensor is what PyTorch's indexing records: select.int for an int,
// slice.Tensor for a slice (full ones too), unsqueeze for None, nothing for `...`, then one
// index.Tensor for the Tensor index.
Value getitem_decomposition(OpRecorder& rec, const OpCall& call) {
  const Value& s = call.args[0].sym;
  if (s.kind() == Value::Kind::Tuple || s.kind() == Value::Kind::List) return getitem(s, call.args[1].sym);
  if (!call.args[0].real.is_tensor()) return call.result;
  const Tensor& x = call.args[0].real.tensor();
  const Value& real_idx = call.args[1].real;
  const Value& sym_idx = call.args[1].sym;
  const bool tuple = real_idx.kind() == Value::Kind::Tuple;
  const std::vector<Value> real_items = tuple ? real_idx.items() : std::vector<Value>{real_idx};
  const std::vector<Value> sym_items = tuple ? sym_idx.items() : std::vector<Value>{sym_idx};
  std::size_t consumed = 0;
  for (const Value& v : real_items) {
    if (v.is_tensor())
      consumed += is_mask(v.tensor()) ? v.tensor().dim() : 1;
    else if (v.kind() == Value::Kind::Int || v.kind() == Value::Kind::Slice)
      ++consumed;
  }
  Value cur = s;
  std::int64_t dim = 0;
  List indices;
  bool has_tensor = false;
  for (std::size_t i = 0; i < real_items.size(); ++i) {
    const Value& v = real_items[i];
    switch (v.kind()) {
      case Value::Kind::Int:
        cur = rec.record("select.int", {cur, Value(dim), sym_items[i]});
        break;
      case Value::Kind::Slice: {
        const Slice& sl = v.slice();
        cur = rec.record("slice.Tensor", {cur, Value(dim), Value(sl.start.value_or(0)),
                                          Value(sl.stop.value_or(std::numeric_limits<std::int64_t>::max())),
                                          Value(sl.step.value_or(1))});
        ++dim;
        break;
      }
      case Value::Kind::None:
        cur = rec.record("unsqueeze.default", {cur, Value(dim)});
        ++dim;
        break;
      case Value::Kind::Ellipsis:
        dim += static_cast<std::int64_t>(x.dim() - consumed);
        break;
      case Value::Kind::Tensor: {
        while (static_cast<std::int64_t>(indices.items.size()) < dim) indices.items.emplace_back();
        indices.items.push_back(sym_items[i]);
        has_tensor = true;
        dim += is_mask(v.tensor()) ? static_cast<std::int64_t>(v.tensor().dim()) : 1;
        break;
      }
      default:
        fail("getitem: indexing a Tensor with " + util::kind_str(v) + " is not supported by make_fx");
    }
  }
  if (has_tensor) cur = rec.record("index.Tensor", {cur, Value(std::move(indices))});
  return cur;
}

// ---- shape family kernels (wave 2) -------------------------------------------------------------

std::vector<Tensor> tensor_list(const Value& v) {
  std::vector<Tensor> out;
  out.reserve(v.items().size());
  for (const Value& t : v.items()) out.push_back(t.tensor());
  return out;
}

Value tensor_tuple(std::vector<Tensor> parts) {
  Tuple t;
  t.items.reserve(parts.size());
  for (Tensor& p : parts) t.items.emplace_back(std::move(p));
  return Value(std::move(t));
}

// cat(tensors, dim), and its aliases concat and concatenate
Value cat_kernel(std::span<const Value> a) { return Value(cat(tensor_list(a[0]), a[1].to_int(), "cat")); }
Value concat_kernel(std::span<const Value> a) { return Value(cat(tensor_list(a[0]), a[1].to_int(), "concat")); }
Value concatenate_kernel(std::span<const Value> a) {
  return Value(cat(tensor_list(a[0]), a[1].to_int(), "concatenate"));
}
// stack(tensors, dim)
Value stack_kernel(std::span<const Value> a) { return Value(stack(tensor_list(a[0]), a[1].to_int())); }
// split.Tensor(self, split_size, dim)
Value split_kernel(std::span<const Value> a) {
  return tensor_tuple(split(a[0].tensor(), a[1].to_int(), a[2].to_int()));
}
// split_with_sizes(self, split_sizes, dim)
Value split_with_sizes_kernel(std::span<const Value> a) {
  return tensor_tuple(split_with_sizes(a[0].tensor(), a[1].int_list(), a[2].to_int()));
}
// torch.functional.split(tensor, split_size_or_sections, dim)
Value functional_split_kernel(std::span<const Value> a) {
  const Value& s = a[1];
  if (s.is_int()) return tensor_tuple(split(a[0].tensor(), s.to_int(), a[2].to_int()));
  if (s.kind() != Value::Kind::List && s.kind() != Value::Kind::Tuple) {
    fail("split: split_size_or_sections must be an int or a list of ints, got " + util::kind_str(s));
  }
  return tensor_tuple(split_with_sizes(a[0].tensor(), s.int_list(), a[2].to_int()));
}
// chunk(self, chunks, dim): chunks of ceil(size / chunks) (the last one smaller), as split.
std::int64_t chunk_size(const Tensor& x, std::int64_t chunks, std::int64_t dim) {
  if (x.dim() == 0) fail("chunk: chunk expects at least a 1-dimensional tensor");
  if (chunks <= 0) fail("chunk: chunk expects `chunks` to be greater than 0, got: " + std::to_string(chunks));
  const std::int64_t size =
      x.shape()[static_cast<std::size_t>(util::wrap_dim(dim, static_cast<std::int64_t>(x.dim()), "chunk"))];
  return (size + chunks - 1) / chunks;
}
Value chunk_kernel(std::span<const Value> a) {
  const Tensor& x = a[0].tensor();
  const std::int64_t size = chunk_size(x, a[1].to_int(), a[2].to_int());
  return tensor_tuple(split(x, size, a[2].to_int()));
}
// unbind.int(self, dim)
Value unbind_kernel(std::span<const Value> a) {
  const Tensor& x = a[0].tensor();
  if (x.dim() == 0) fail("unbind: Dimension specified as 0 but tensor has no dimensions");
  const std::int64_t d = util::wrap_dim(a[1].to_int(), static_cast<std::int64_t>(x.dim()), "unbind");
  std::vector<Tensor> parts;
  for (std::int64_t i = 0; i < x.shape()[static_cast<std::size_t>(d)]; ++i) parts.push_back(select(x, d, i));
  return tensor_tuple(std::move(parts));
}
// squeeze(self), squeeze.dim(self, dim), squeeze.dims(self, dim)
Value squeeze_kernel(std::span<const Value> a) { return Value(squeeze(a[0].tensor(), {}, true)); }
Value squeeze_dim_kernel(std::span<const Value> a) {
  const std::int64_t d = a[1].to_int();
  return Value(squeeze(a[0].tensor(), std::span<const std::int64_t>(&d, 1), false));
}
Value squeeze_dims_kernel(std::span<const Value> a) { return Value(squeeze(a[0].tensor(), a[1].int_list(), false)); }
// expand(self, size, *, implicit)
Value expand_kernel(std::span<const Value> a) { return Value(expand(a[0].tensor(), a[1].int_list(), "expand")); }
// expand_as(self, other)
Value expand_as_kernel(std::span<const Value> a) {
  return Value(expand(a[0].tensor(), a[1].tensor().shape().to_vector(), "expand_as"));
}
// repeat(self, repeats)
Value repeat_kernel(std::span<const Value> a) { return Value(repeat(a[0].tensor(), a[1].int_list())); }
// view_as(self, other), reshape_as(self, other)
Value view_as_kernel(std::span<const Value> a) {
  return Value(reshape(a[0].tensor(), a[1].tensor().shape().to_vector(), "view_as"));
}
Value reshape_as_kernel(std::span<const Value> a) {
  return Value(reshape(a[0].tensor(), a[1].tensor().shape().to_vector(), "reshape_as"));
}
// unflatten.int(self, dim, sizes): dim becomes `sizes` (one -1 inferred).
Tensor unflatten(const Tensor& x, std::int64_t dim, std::span<const std::int64_t> sizes) {
  if (x.dim() == 0) fail("unflatten: Dimension specified as " + std::to_string(dim) + " but tensor has no dimensions");
  const auto d = static_cast<std::size_t>(util::wrap_dim(dim, static_cast<std::int64_t>(x.dim()), "unflatten"));
  if (sizes.empty()) fail("unflatten: sizes must be non-empty");
  std::int64_t known = 1;
  int infer = -1;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] == -1) {
      if (infer >= 0) fail("unflatten: only one dimension can be inferred");
      infer = static_cast<int>(i);
    } else {
      known *= sizes[i];
    }
  }
  const std::int64_t have = x.shape()[d];
  if ((infer < 0 && known != have) || (infer >= 0 && (known == 0 || have % known != 0))) {
    fail("unflatten: Provided sizes " + list_str(sizes) + " don't multiply up to the size of dim " + std::to_string(d) +
         " (" + std::to_string(have) + ") in the input tensor");
  }
  std::vector<std::int64_t> out(x.shape().begin(), x.shape().begin() + static_cast<std::ptrdiff_t>(d));
  for (std::size_t i = 0; i < sizes.size(); ++i) out.push_back(static_cast<int>(i) == infer ? have / known : sizes[i]);
  for (std::size_t i = d + 1; i < x.dim(); ++i) out.push_back(x.shape()[i]);
  return reshape(x, out, "unflatten");
}
Value unflatten_kernel(std::span<const Value> a) {
  return Value(unflatten(a[0].tensor(), a[1].to_int(), a[2].int_list()));
}
// movedim.int(self, source, destination), movedim.intlist(...)
Value movedim_kernel(std::span<const Value> a) {
  const std::int64_t s = a[1].to_int(), d = a[2].to_int();
  return Value(movedim(a[0].tensor(), std::span<const std::int64_t>(&s, 1), std::span<const std::int64_t>(&d, 1)));
}
Value movedim_list_kernel(std::span<const Value> a) {
  return Value(movedim(a[0].tensor(), a[1].int_list(), a[2].int_list()));
}
// narrow(self, dim, start, length)
Value narrow_kernel(std::span<const Value> a) {
  return Value(narrow(a[0].tensor(), a[1].to_int(), a[2].to_int(), a[3].to_int(), "narrow"));
}
// select.int(self, dim, index)
Value select_kernel(std::span<const Value> a) { return Value(select(a[0].tensor(), a[1].to_int(), a[2].to_int())); }
// index_select(self, dim, index)
Value index_select_kernel(std::span<const Value> a) {
  return Value(index_select(a[0].tensor(), a[1].to_int(), a[2].tensor()));
}
// gather(self, dim, index, *, sparse_grad)
Value gather_kernel(std::span<const Value> a) { return Value(gather(a[0].tensor(), a[1].to_int(), a[2].tensor())); }
// flip(self, dims)
Value flip_kernel(std::span<const Value> a) { return Value(flip(a[0].tensor(), a[1].int_list())); }
// roll(self, shifts, dims)
Value roll_kernel(std::span<const Value> a) { return Value(roll(a[0].tensor(), a[1].int_list(), a[2].int_list())); }
// tril(self, diagonal), triu(self, diagonal)
Value tril_kernel(std::span<const Value> a) { return Value(tril(a[0].tensor(), a[1].to_int())); }
Value triu_kernel(std::span<const Value> a) { return Value(triu(a[0].tensor(), a[1].to_int())); }
// nonzero(self)
Value nonzero_kernel(std::span<const Value> a) { return Value(nonzero(a[0].tensor())); }
// masked_select(self, mask)
Value masked_select_kernel(std::span<const Value> a) { return Value(masked_select(a[0].tensor(), a[1].tensor())); }
// dim(self), numel(self)
Value dim_kernel(std::span<const Value> a) { return Value(static_cast<std::int64_t>(a[0].tensor().dim())); }
Value numel_kernel(std::span<const Value> a) { return Value(a[0].tensor().numel()); }
// builtins.getattr(obj, name): the attributes of a Tensor that models read.
Value getattr_kernel(std::span<const Value> a) {
  const std::string& name = a[1].str();
  if (const Tensor* t = a[0].if_tensor()) {
    if (name == "shape") {
      Tuple s;
      for (std::int64_t d : t->shape()) s.items.emplace_back(d);
      return Value(std::move(s));
    }
    if (name == "ndim") return Value(static_cast<std::int64_t>(t->dim()));
    if (name == "dtype") return Value(t->dtype());
    if (name == "device") return Value(Device{});
    if (name == "is_cuda") return Value(false);
    fail("getattr: 'Tensor' object has no attribute " + python_str_repr(name) +
         " (fxpack reads shape, ndim, dtype, device and is_cuda)");
  }
  // torch.return_types (max/min/sort/topk/kthvalue/median/mode with a dim) are named tuples
  // whose fields are `values` then `indices`; fxpack keeps them as plain tuples.
  if (a[0].kind() == Value::Kind::Tuple && a[0].items().size() == 2 && (name == "values" || name == "indices")) {
    return a[0].items()[name == "values" ? 0 : 1];
  }
  fail("getattr: '" + util::kind_str(a[0]) + "' object has no attribute " + python_str_repr(name));
}
// Python's math functions; a domain error as Python's ValueError.
Value math_sqrt(std::span<const Value> a) {
  const double x = a[0].to_double();
  if (x < 0) fail("math.sqrt: math domain error (" + python_float_repr(x) + ")");
  return Value(std::sqrt(x));
}
Value math_exp(std::span<const Value> a) {
  const double y = std::exp(a[0].to_double());
  if (std::isinf(y) && !std::isinf(a[0].to_double())) fail("math.exp: math range error");
  return Value(y);
}
Value math_log(std::span<const Value> a) {
  const double x = a[0].to_double();
  if (!(x > 0)) fail("math.log: math domain error (" + python_float_repr(x) + ")");
  return Value(std::log(x));
}
Value to_python_int(double y, const char* op) {
  if (std::isnan(y)) fail(std::string(op) + ": cannot convert float NaN to integer");
  if (std::isinf(y)) fail(std::string(op) + ": cannot convert float infinity to integer");
  if (y < -9.2233720368547758e18 || y >= 9.2233720368547758e18)
    fail(std::string(op) + ": result does not fit in a 64-bit int");
  return Value(static_cast<std::int64_t>(y));
}
Value math_floor(std::span<const Value> a) {
  if (a[0].is_int()) return a[0];
  return to_python_int(std::floor(a[0].to_double()), "math.floor");
}
Value math_ceil(std::span<const Value> a) {
  if (a[0].is_int()) return a[0];
  return to_python_int(std::ceil(a[0].to_double()), "math.ceil");
}

// torch.nn.functional.pad(input, pad, mode, value)
Value pad_kernel(std::span<const Value> a) {
  const std::string& mode = a[2].str();
  if (mode != "constant" && !a[3].is_none() && a[3].to_double() != 0.0) {
    fail("pad: Padding mode " + python_str_repr(mode) + " doesn't take in value argument");
  }
  return Value(pad(a[0].tensor(), a[1].int_list(), mode, a[3].is_none() ? 0.0 : a[3].to_double()));
}
// slice.Tensor(self, dim, start, end, step)
Value slice_kernel(std::span<const Value> a) {
  const Tensor& x = a[0].tensor();
  if (x.dim() == 0) fail("slice: slice() cannot be applied to a 0-dim tensor.");
  const std::int64_t d = util::wrap_dim(a[1].to_int(), static_cast<std::int64_t>(x.dim()), "slice");
  const std::int64_t step = a[4].to_int();
  if (step <= 0) fail("slice: slice step must be positive, got " + std::to_string(step));
  std::vector<Value> items(static_cast<std::size_t>(d), Value(Slice{}));
  Slice s;
  if (!a[2].is_none()) s.start = a[2].to_int();
  if (!a[3].is_none()) s.stop = a[3].to_int();
  s.step = step;
  items.emplace_back(s);
  return Value(index(x, Value(Tuple{std::move(items)})));
}
// index.Tensor(self, indices): None keeps a dim; one Tensor index is supported.
Value index_tensor_kernel(std::span<const Value> a) {
  std::vector<Value> items;
  for (const Value& v : a[1].items()) items.push_back(v.is_none() ? Value(Slice{}) : v);
  return Value(index(a[0].tensor(), Value(Tuple{std::move(items)})));
}

// ---- shape family make_fx decompositions, as PyTorch 1.13 records them -----------------------

// narrow is slice.Tensor(x, dim, start, start + length), start wrapped.
Value narrow_decomposition(OpRecorder& rec, const OpCall& call) {
  const Tensor& x = call.args[0].real.tensor();
  const std::int64_t d = util::wrap_dim(call.args[1].real.to_int(), static_cast<std::int64_t>(x.dim()), "narrow");
  std::int64_t start = call.args[2].real.to_int();
  if (start < 0) start += x.shape()[static_cast<std::size_t>(d)];
  return rec.record("slice.Tensor",
                    {call.args[0].sym, call.args[1].sym, Value(start), Value(start + call.args[3].real.to_int())});
}
// movedim is permute.
Value movedim_decomposition(OpRecorder& rec, const OpCall& call) {
  const Tensor& x = call.args[0].real.tensor();
  const auto perm = movedim_permutation(static_cast<std::int64_t>(x.dim()),
                                        util::int_list_arg(call.args[1].real, "movedim", "source"),
                                        util::int_list_arg(call.args[2].real, "movedim", "destination"));
  return rec.record("permute.default", {call.args[0].sym, int_list(perm)});
}

List size_list(const Tensor& t) { return int_list(t.shape().to_vector()); }

// chunk is split.Tensor with ceil(size / chunks).
Value chunk_decomposition(OpRecorder& rec, const OpCall& call) {
  const Tensor& x = call.args[0].real.tensor();
  const std::int64_t size = chunk_size(x, call.args[1].real.to_int(), call.args[2].real.to_int());
  return rec.record("split.Tensor", {call.args[0].sym, Value(size), call.args[2].sym});
}
// torch.split: split.Tensor for an int, split_with_sizes for a list.
Value functional_split_decomposition(OpRecorder& rec, const OpCall& call) {
  if (call.args[1].real.is_int())
    return rec.record("split.Tensor", {call.args[0].sym, call.args[1].sym, call.args[2].sym});
  return rec.record("split_with_sizes.default",
                    {call.args[0].sym, int_list(call.args[1].real.int_list()), call.args[2].sym});
}
// expand_as(x, other) is expand(x, other.size()); view_as is view; unflatten is view.
Value expand_as_decomposition(OpRecorder& rec, const OpCall& call) {
  return rec.record("expand.default", {call.args[0].sym, size_list(call.args[1].real.tensor())});
}
Value view_as_decomposition(OpRecorder& rec, const OpCall& call) {
  return rec.record("view.default", {call.args[0].sym, size_list(call.args[1].real.tensor())});
}
Value unflatten_decomposition(OpRecorder& rec, const OpCall& call) {
  return rec.record("view.default", {call.args[0].sym, size_list(call.result.tensor())});
}
// reshape_as is reshape, which 1.13 records as _reshape_alias of a contiguous tensor.
Value reshape_as_decomposition(OpRecorder& rec, const OpCall& call) {
  return reshape_alias_of(rec, call.args[0], call.result.tensor());
}
// getattr reads a Python attribute: its value is a constant of the new graph.
// A field of a traced return type is the symbolic element.
Value getattr_decomposition(OpRecorder&, const OpCall& call) {
  const Value& obj = call.args[0].sym;
  if (obj.kind() == Value::Kind::Tuple && obj.items().size() == 2)
    return obj.items()[call.args[1].real.str() == "values" ? 0 : 1];
  if (call.result.is_tensor()) fail("getattr: a Tensor-valued attribute is not supported by make_fx");
  return call.result;
}

// ---- leaf modules: Identity ------------------------------------------------------------------

Value identity_forward(const Module&, std::span<const Value> inputs) {
  if (inputs.size() != 1) fail("Identity: forward takes 1 input, got " + std::to_string(inputs.size()));
  return inputs[0];
}
Value identity_make_fx(OpRecorder&, const Module&, const OpCall& call) { return call.args[0].sym; }

}  // namespace

#include "shape_table.inc"

}  // namespace fxpack::ops
