// Dense CPU tensors: Shape, Storage, Tensor, printing and comparison.
#include "fxpack/tensor.hpp"

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <new>
#include <ostream>
#include <sstream>

namespace fxpack {

// ---------------------------------------------------------------------------------------
// Shape

Shape::Shape(std::initializer_list<std::int64_t> dims) {
  if (dims.size() > kMaxDims) {
    throw ValueError("Shape: " + std::to_string(dims.size()) + " dimensions, at most " +
                std::to_string(kMaxDims) + " are supported");
  }
  for (std::int64_t d : dims) dims_[ndim_++] = d;
}

Shape::Shape(std::span<const std::int64_t> dims) {
  if (dims.size() > kMaxDims) {
    throw ValueError("Shape: " + std::to_string(dims.size()) + " dimensions, at most " +
                std::to_string(kMaxDims) + " are supported");
  }
  for (std::int64_t d : dims) dims_[ndim_++] = d;
}

void Shape::push_back(std::int64_t d) {
  if (ndim_ >= kMaxDims) {
    throw ValueError("Shape: more than " + std::to_string(kMaxDims) + " dimensions are not supported");
  }
  dims_[ndim_++] = d;
}

std::int64_t Shape::numel() const {
  std::int64_t n = 1;
  for (std::size_t i = 0; i < ndim_; ++i) n *= dims_[i];
  return n;
}

std::string Shape::to_string() const {
  std::string s = "[";
  for (std::size_t i = 0; i < ndim_; ++i) {
    if (i) s += ", ";
    s += std::to_string(dims_[i]);
  }
  s += "]";
  return s;
}

bool operator==(const Shape& a, const Shape& b) {
  if (a.ndim_ != b.ndim_) return false;
  for (std::size_t i = 0; i < a.ndim_; ++i) {
    if (a.dims_[i] != b.dims_[i]) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// Storage
//
// allocate() makes ONE heap block holding the shared_ptr control block, the Storage object
// and the 64-byte aligned data after it (one malloc per tensor). The destructor recognises
// such inline data by its address (the first 64-byte boundary after the object) and leaves
// it to the block's deallocation; any other un-owned data came from aligned operator new.

namespace {

constexpr std::size_t kAlign = 64;
// Larger requests are refused before they reach the allocator (1 TiB).
constexpr std::size_t kMaxStorageBytes = std::size_t{1} << 40;

std::byte* inline_data_address(const Storage* s) {
  auto p = reinterpret_cast<std::uintptr_t>(s) + sizeof(Storage);
  p = (p + kAlign - 1) & ~static_cast<std::uintptr_t>(kAlign - 1);
  return reinterpret_cast<std::byte*>(p);
}

struct InlineTag {
  std::size_t nbytes;
};

template <class T>
struct InlineAllocator {
  using value_type = T;
  std::size_t extra = 0;
  // calloc: its fresh pages (a large block is a fresh mapping) are not written, so they
  // become resident only when first touched — a large zeroed storage filled part by part
  // (packed weights) is not resident all at once, as a memset would make it.
  bool zeroed = false;

  InlineAllocator() = default;
  InlineAllocator(std::size_t e, bool z) : extra(e), zeroed(z) {}
  template <class U>
  InlineAllocator(const InlineAllocator<U>& o) : extra(o.extra), zeroed(o.zeroed) {}  // NOLINT

  T* allocate(std::size_t n) {
    const std::size_t bytes = n * sizeof(T) + kAlign + extra;
    void* p = zeroed ? std::calloc(1, bytes) : std::malloc(bytes);
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t) { std::free(p); }

  template <class U, class... A>
  void construct(U* p, A&&... a) {
    ::new (static_cast<void*>(p)) U(std::forward<A>(a)...);
  }
  void construct(Storage* p, InlineTag tag) {
    // A zeroed storage's bytes came from calloc (allocate above).
    ::new (static_cast<void*>(p)) Storage(inline_data_address(p), tag.nbytes, nullptr);
  }
  template <class U>
  void destroy(U* p) {
    p->~U();
  }

  template <class U>
  bool operator==(const InlineAllocator<U>& o) const {
    return extra == o.extra && zeroed == o.zeroed;
  }
};

// A storage with its bytes in the same allocation; `who` names the caller in errors.
std::shared_ptr<Storage> allocate_inline(std::size_t nbytes, bool zeroed, const char* who) {
  if (nbytes > kMaxStorageBytes) {
    throw ValueError(std::string(who) + ": " + std::to_string(nbytes) + " bytes is more than the " +
                     std::to_string(kMaxStorageBytes) + " byte limit");
  }
  try {
    return std::allocate_shared<Storage>(InlineAllocator<Storage>(nbytes, zeroed), InlineTag{nbytes});
  } catch (const std::bad_alloc&) {
    throw IoError(std::string(who) + ": out of memory allocating " + std::to_string(nbytes) + " bytes");
  }
}

}  // namespace

std::shared_ptr<Storage> Storage::allocate(std::size_t nbytes) {
  return allocate_inline(nbytes, true, "Storage::allocate");
}

std::shared_ptr<Storage> Storage::allocate_uninitialized(std::size_t nbytes) {
  return allocate_inline(nbytes, false, "Storage::allocate_uninitialized");
}

std::shared_ptr<Storage> Storage::borrow(const void* data, std::size_t nbytes, std::shared_ptr<const void> owner,
                                         std::function<void()> check, ReleasePages release) {
  if (!owner) {
    // A borrowed storage must have an owner handle; keep the bytes alive with a no-op one.
    owner = std::shared_ptr<const void>(data, [](const void*) {});
    if (!owner) owner = std::make_shared<int>(0);
  }
  // The bytes are never written through a borrowed storage (see tensor.hpp).
  return std::make_shared<Storage>(const_cast<std::byte*>(static_cast<const std::byte*>(data)),
                                   nbytes, std::move(owner), std::move(check), release);
}

void Storage::run_check() const {
  // One lock for every storage: checks run once per loaded record, so they never contend
  // with anything but each other, and a Storage stays small.
  static std::mutex mu;
  std::lock_guard lock(mu);
  if (checked_.load(std::memory_order_relaxed)) return;
  check_();  // throws: still unchecked, the next data() call tries again
  check_ = nullptr;
  checked_.store(true, std::memory_order_release);
}

// ---------------------------------------------------------------------------------------
// Tensor

namespace {

// Every dim >= 0 and numel * 8 bytes representable; returns numel.
std::int64_t check_shape(const Shape& shape, const char* what) {
  std::int64_t n = 1;
  bool overflow = false;
  for (std::int64_t d : shape) {
    if (d < 0) {
      throw ValueError(std::string(what) + ": negative dimension in shape " + shape.to_string());
    }
    overflow |= __builtin_mul_overflow(n, d, &n);
  }
  if (overflow || n > (std::numeric_limits<std::int64_t>::max() >> 3)) {
    throw ValueError(std::string(what) + ": shape " + shape.to_string() + " is too large");
  }
  return n;
}

template <class T>
inline constexpr bool kHalfLike = std::is_same_v<T, Eigen::half> || std::is_same_v<T, Eigen::bfloat16>;

// Conversions that are defined for every input (float -> int of NaN / out of range is
// undefined behaviour in C++; PyTorch gives INT64_MIN there on x86, so do we). The 16-bit
// floats convert through float, as c10::Half and c10::BFloat16 do.
template <class To, class From>
To convert_value(From v) {
  if constexpr (kHalfLike<From>) {
    return convert_value<To>(static_cast<float>(v));
  } else if constexpr (kHalfLike<To>) {
    return To(static_cast<float>(v));
  } else if constexpr (std::is_same_v<To, bool>) {
    return v != From(0);
  } else if constexpr (std::is_floating_point_v<To>) {
    return static_cast<To>(v);
  } else if constexpr (std::is_floating_point_v<From>) {
    if (!(v >= -9.2233720368547758e18 && v < 9.2233720368547758e18)) {
      return static_cast<To>(static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::min()));
    }
    auto i = static_cast<std::int64_t>(v);
    if constexpr (std::is_unsigned_v<To>) {
      return static_cast<To>(static_cast<std::uint64_t>(i));
    } else {
      return static_cast<To>(i);  // modular, as C++20 defines and PyTorch does
    }
  } else {
    return static_cast<To>(v);
  }
}

// Calls f(T{}) with the C++ element type of `dtype`.
template <class F>
decltype(auto) visit_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::Float32: return f(float{});
    case DType::Float64: return f(double{});
    case DType::Int64: return f(std::int64_t{});
    case DType::Bool: return f(bool{});
    case DType::UInt8: return f(std::uint8_t{});
    case DType::Float16: return f(Eigen::half{});
    case DType::BFloat16: return f(Eigen::bfloat16{});
    case DType::Int32: return f(std::int32_t{});
    case DType::Int8: return f(std::int8_t{});
    case DType::Int16: return f(std::int16_t{});
  }
  throw LookupError("unknown dtype code " + std::to_string(static_cast<int>(dtype)));
}

template <class To, class From>
void convert_loop(const From* src, To* dst, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) dst[i] = convert_value<To>(src[i]);
}

template <class From>
void convert_from(const From* src, Tensor& out, std::int64_t n) {
  visit_dtype(out.dtype(), [&](auto to) { convert_loop(src, out.data<decltype(to)>(), n); });
}

void fill_value(Tensor& t, double value) {
  const std::int64_t n = t.numel();
  visit_dtype(t.dtype(), [&](auto x) {
    using T = decltype(x);
    std::fill_n(t.data<T>(), n, convert_value<T>(value));
  });
}

}  // namespace

Tensor::Tensor(std::shared_ptr<Storage> storage, std::size_t byte_offset, DType dtype, Shape shape)
    : storage_(std::move(storage)), byte_offset_(byte_offset), dtype_(dtype), shape_(shape) {
  check_shape(shape_, "Tensor");
  if (!storage_) throw ValueError("Tensor: null storage");
  const std::size_t need = nbytes();
  if (byte_offset_ > storage_->nbytes() || need > storage_->nbytes() - byte_offset_) {
    throw ValueError("Tensor: shape " + shape_.to_string() + " of " + std::string(dtype_name(dtype_)) +
                " at byte offset " + std::to_string(byte_offset_) + " needs " +
                std::to_string(need) + " bytes, the storage has " +
                std::to_string(storage_->nbytes()));
  }
}

Tensor Tensor::empty(Shape shape, DType dtype) {
  const std::int64_t n = check_shape(shape, "Tensor::empty");
  Tensor t;
  t.storage_ = Storage::allocate(static_cast<std::size_t>(n) * element_size(dtype));
  t.dtype_ = dtype;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::zeros(Shape shape, DType dtype) { return empty(shape, dtype); }

Tensor Tensor::full(Shape shape, double value, DType dtype) {
  Tensor t = empty(shape, dtype);
  fill_value(t, value);
  return t;
}

Tensor Tensor::scalar(double value, DType dtype) { return full(Shape{}, value, dtype); }

Tensor Tensor::from_vector(std::span<const float> values, Shape shape) {
  check_shape(shape, "Tensor::from_vector");
  if (static_cast<std::int64_t>(values.size()) != shape.numel()) {
    throw ValueError("Tensor::from_vector: " + std::to_string(values.size()) +
                " values do not fill shape " + shape.to_string());
  }
  Tensor t = empty(shape, DType::Float32);
  if (!values.empty()) std::memcpy(t.data<float>(), values.data(), values.size_bytes());
  return t;
}

Tensor Tensor::from_vector(std::span<const double> values, Shape shape) {
  check_shape(shape, "Tensor::from_vector");
  if (static_cast<std::int64_t>(values.size()) != shape.numel()) {
    throw ValueError("Tensor::from_vector: " + std::to_string(values.size()) +
                " values do not fill shape " + shape.to_string());
  }
  Tensor t = empty(shape, DType::Float64);
  if (!values.empty()) std::memcpy(t.data<double>(), values.data(), values.size_bytes());
  return t;
}

Tensor Tensor::from_vector(std::span<const std::int64_t> values, Shape shape) {
  check_shape(shape, "Tensor::from_vector");
  if (static_cast<std::int64_t>(values.size()) != shape.numel()) {
    throw ValueError("Tensor::from_vector: " + std::to_string(values.size()) +
                " values do not fill shape " + shape.to_string());
  }
  Tensor t = empty(shape, DType::Int64);
  if (!values.empty()) std::memcpy(t.data<std::int64_t>(), values.data(), values.size_bytes());
  return t;
}

Tensor Tensor::from_bytes(std::span<const std::byte> bytes, Shape shape, DType dtype) {
  check_shape(shape, "Tensor::from_bytes");
  const std::size_t need = static_cast<std::size_t>(shape.numel()) * element_size(dtype);
  if (bytes.size() != need) {
    throw ValueError("Tensor::from_bytes: " + std::to_string(bytes.size()) + " bytes given, shape " +
                shape.to_string() + " of " + std::string(dtype_name(dtype)) + " needs " +
                std::to_string(need));
  }
  Tensor t = empty(shape, dtype);
  if (need) std::memcpy(t.storage_->data(), bytes.data(), need);
  if (dtype == DType::Bool) {
    // Only 0 and 1 are valid bools; normalise anything else.
    auto* b = reinterpret_cast<std::uint8_t*>(t.storage_->data());
    for (std::size_t i = 0; i < need; ++i) b[i] = b[i] ? 1 : 0;
  }
  return t;
}

std::int64_t Tensor::size(std::int64_t d) const {
  const auto n = static_cast<std::int64_t>(dim());
  const std::int64_t i = d < 0 ? d + n : d;
  if (i < 0 || i >= n) {
    throw ValueError("Tensor::size: dimension " + std::to_string(d) + " out of range for a " +
                std::to_string(n) + "-D tensor of shape " + shape_.to_string());
  }
  return shape_[static_cast<std::size_t>(i)];
}

Tensor Tensor::view(Shape shape) const {
  if (!defined()) throw ValueError("Tensor::view: undefined tensor");
  check_shape(shape, "Tensor::view");
  if (shape.numel() != numel()) {
    throw ValueError("Tensor::view: shape " + shape.to_string() + " is invalid for a tensor of " +
                std::to_string(numel()) + " elements (shape " + shape_.to_string() + ")");
  }
  Tensor t;
  t.storage_ = storage_;
  t.byte_offset_ = byte_offset_;
  t.dtype_ = dtype_;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::clone() const {
  if (!defined()) return Tensor();
  Tensor t = empty(shape_, dtype_);
  const std::size_t n = nbytes();
  if (n) std::memcpy(t.storage_->data(), storage_->data() + byte_offset_, n);
  return t;
}

Tensor Tensor::to(DType dtype) const {
  if (!defined()) throw ValueError("Tensor::to: undefined tensor");
  if (dtype == dtype_) return *this;
  Tensor out = empty(shape_, dtype);
  const std::int64_t n = numel();
  visit_dtype(dtype_, [&](auto x) { convert_from(data<decltype(x)>(), out, n); });
  return out;
}

double Tensor::item_at(std::int64_t i) const {
  if (!defined()) throw ValueError("Tensor::item_at: undefined tensor");
  if (i < 0 || i >= numel()) {
    throw ValueError("Tensor::item_at: index " + std::to_string(i) + " out of range for a tensor of " +
                std::to_string(numel()) + " elements");
  }
  return visit_dtype(dtype_, [&](auto x) { return convert_value<double>(data<decltype(x)>()[i]); });
}

double Tensor::item() const {
  if (!defined()) throw ValueError("Tensor::item: undefined tensor");
  if (numel() != 1) {
    throw ValueError("Tensor::item: a tensor with " + std::to_string(numel()) +
                " elements cannot be converted to a scalar");
  }
  return item_at(0);
}

std::vector<double> Tensor::to_doubles() const {
  std::vector<double> v;
  if (!defined()) return v;
  const std::int64_t n = numel();
  v.reserve(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) v.push_back(item_at(i));
  return v;
}

bool allclose(const Tensor& a, const Tensor& b, double rtol, double atol) {
  if (!a.defined() || !b.defined()) throw ValueError("allclose: undefined tensor");
  if (!(a.shape() == b.shape())) {
    throw ValueError("allclose: shapes " + a.shape().to_string() + " and " + b.shape().to_string() +
                " differ");
  }
  const std::int64_t n = a.numel();
  for (std::int64_t i = 0; i < n; ++i) {
    const double x = a.item_at(i), y = b.item_at(i);
    if (x == y) continue;  // equal infinities
    if (std::isnan(x) || std::isnan(y)) return false;
    if (!(std::fabs(x - y) <= atol + rtol * std::fabs(y))) return false;
  }
  return true;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined()) throw ValueError("max_abs_diff: undefined tensor");
  if (!(a.shape() == b.shape())) {
    throw ValueError("max_abs_diff: shapes " + a.shape().to_string() + " and " +
                b.shape().to_string() + " differ");
  }
  double m = 0.0;
  const std::int64_t n = a.numel();
  for (std::int64_t i = 0; i < n; ++i) {
    const double x = a.item_at(i), y = b.item_at(i);
    if (x == y) continue;
    const double d = std::fabs(x - y);
    if (std::isnan(d)) return std::numeric_limits<double>::quiet_NaN();
    m = std::max(m, d);
  }
  return m;
}

// ---------------------------------------------------------------------------------------
// Printing, roughly as torch does: tensor([[1.0000, 2.0000],
//                                          [3.0000, 4.0000]])

namespace {

struct Formatter {
  DType dtype;
  bool int_mode = false;  // floats that are all whole numbers print as "1."
  bool sci_mode = false;
  int width = 0;

  std::string format(double v) const {
    char buf[64];
    if (dtype == DType::Bool) return v != 0.0 ? "True" : "False";
    if (!is_floating(dtype)) {
      std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
      return buf;
    }
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    if (sci_mode) {
      std::snprintf(buf, sizeof buf, "%.4e", v);
    } else if (int_mode) {
      std::snprintf(buf, sizeof buf, "%.0f.", v);
    } else {
      std::snprintf(buf, sizeof buf, "%.4f", v);
    }
    return buf;
  }
};

constexpr std::int64_t kSummarizeThreshold = 1000;
constexpr std::int64_t kEdgeItems = 3;

void print_rec(std::ostream& os, const Tensor& t, const Formatter& f, std::size_t d,
               std::int64_t offset, std::int64_t stride_elems, bool summarize, int indent) {
  const std::int64_t n = t.shape()[d];
  const std::int64_t inner = stride_elems / (n == 0 ? 1 : n);
  auto elem = [&](std::int64_t i) {
    std::string s = f.format(t.item_at(offset + i));
    if (static_cast<int>(s.size()) < f.width) s.insert(0, static_cast<std::size_t>(f.width) - s.size(), ' ');
    return s;
  };
  os << '[';
  const bool skip = summarize && n > 2 * kEdgeItems;
  for (std::int64_t i = 0; i < n; ++i) {
    if (skip && i == kEdgeItems) {
      if (d + 1 == t.dim()) {
        os << "...";
      } else {
        os << "...";
      }
      i = n - kEdgeItems - 1;
      os << (d + 1 == t.dim() ? ", " : ",\n" + std::string(static_cast<std::size_t>(indent + 1), ' '));
      continue;
    }
    if (d + 1 == t.dim()) {
      os << elem(i);
      if (i + 1 < n) os << ", ";
    } else {
      print_rec(os, t, f, d + 1, offset + i * inner, inner, summarize, indent + 1);
      if (i + 1 < n) {
        const std::size_t blank = t.dim() - d - 1;
        os << ',' << std::string(blank, '\n') << std::string(static_cast<std::size_t>(indent + 1), ' ');
      }
    }
  }
  os << ']';
}

}  // namespace

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "tensor(undefined)";
  Formatter f{t.dtype()};
  const std::int64_t n = t.numel();
  if (is_floating(t.dtype())) {
    bool all_int = true;
    double max_abs = 0.0, min_abs = std::numeric_limits<double>::infinity();
    for (std::int64_t i = 0; i < n; ++i) {
      const double v = t.item_at(i);
      if (!std::isfinite(v)) continue;
      if (v != std::nearbyint(v)) all_int = false;
      const double a = std::fabs(v);
      max_abs = std::max(max_abs, a);
      if (a != 0.0) min_abs = std::min(min_abs, a);
    }
    if (all_int) {
      f.int_mode = true;
      if (max_abs >= 1e8) f.sci_mode = true;
    } else if (max_abs > 1e8 || (std::isfinite(min_abs) && (min_abs < 1e-4 || max_abs / min_abs > 1000))) {
      f.sci_mode = true;
    }
  }
  const bool summarize = n > kSummarizeThreshold;
  for (std::int64_t i = 0; i < n; ++i) {
    f.width = std::max(f.width, static_cast<int>(f.format(t.item_at(i)).size()));
  }
  os << "tensor(";
  if (t.dim() == 0) {
    os << f.format(t.item_at(0));
  } else {
    print_rec(os, t, f, 0, 0, n, summarize, 7);
  }
  if ((t.dtype() != DType::Float32 && t.dtype() != DType::Int64 && t.dtype() != DType::Bool) ||
      (n == 0 && t.dtype() != DType::Float32)) {
    os << ", dtype=torch." << dtype_name(t.dtype());
  }
  if (n == 0 && t.dim() > 1) os << ", size=(" << t.shape().to_string().substr(1, t.shape().to_string().size() - 2) << ")";
  return os << ')';
}

}  // namespace fxpack
