// Dense CPU tensors.
//
// A Tensor is a view of a contiguous, row-major block of a Storage: dtype, shape and a byte
// offset into the storage. Storages are reference counted and may own their bytes (heap) or
// borrow them from something else kept alive by an owner handle — e.g. a memory-mapped
// package record, so a loaded weight costs no copy and its pages are read only when touched.
//
// Two tensors that share a Storage alias the same bytes; `same_storage()` tells, and the
// archive writers use it to store a shared storage once. Views (reshape, squeeze; indexing,
// narrow, split when the result is one contiguous block) alias; other ops allocate. Borrowed
// bytes are read-only in spirit: kernels never write into inputs (in-place ops work on fresh copies
// unless the storage is owned).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "fxpack/dtype.hpp"
#include "fxpack/errors.hpp"

namespace fxpack {

// A shape with inline capacity: tensors are created on every op call, so the shape must
// not cost a heap allocation.
class Shape {
 public:
  static constexpr std::size_t kMaxDims = 8;

  Shape() = default;
  Shape(std::initializer_list<std::int64_t> dims);
  explicit Shape(std::span<const std::int64_t> dims);

  std::size_t size() const { return ndim_; }
  bool empty() const { return ndim_ == 0; }
  std::int64_t operator[](std::size_t i) const { return dims_[i]; }
  std::int64_t& operator[](std::size_t i) { return dims_[i]; }
  const std::int64_t* begin() const { return dims_.data(); }
  const std::int64_t* end() const { return dims_.data() + ndim_; }
  void push_back(std::int64_t d);
  std::int64_t numel() const;
  std::vector<std::int64_t> to_vector() const { return {begin(), end()}; }
  std::string to_string() const;  // "[2, 3]"

  friend bool operator==(const Shape& a, const Shape& b);

 private:
  std::array<std::int64_t, kMaxDims> dims_{};
  std::size_t ndim_ = 0;
};

// Gives the memory of `bytes` back to the operating system such that reading them again
// reads the same bytes (Storage::borrow's `release`). Must not throw.
using ReleasePages = void (*)(std::span<const std::byte> bytes) noexcept;

class Storage {
 public:
  // Fresh zero-initialised heap bytes, 64-byte aligned. A large block's pages are not written
  // here (calloc): they become resident when first touched.
  static std::shared_ptr<Storage> allocate(std::size_t nbytes);
  // Fresh heap bytes, 64-byte aligned, left as the allocator gives them (any values): only
  // for a caller that writes every byte before anything reads one — a kernel's output, a
  // reorder's destination, a memcpy of the whole size. It skips allocate()'s zero-fill, a
  // full extra pass over a large fresh block (14% of a plan's first call for resnet18).
  static std::shared_ptr<Storage> allocate_uninitialized(std::size_t nbytes);
  // Borrowed bytes: `owner` keeps them alive (e.g. a memory mapping).
  //
  // With a `check`, the bytes are not trusted until it passes: the first data() call runs it
  // (once: other threads calling data() meanwhile wait for it) and returns only if it
  // returned. If it throws, that data() call throws the same exception, and the next data()
  // call runs it again — no caller ever receives bytes that failed or skipped the check.
  // Loaders use it to check a mapped record's CRC when its tensor is first used, not when
  // the archive is loaded, so loading costs no pass over the weights (package.hpp).
  //
  // With a `release`, the owner can give the bytes' memory back to the operating system
  // and bring the same bytes back when they are next read (a record of a memory-mapped
  // file: its pages are read from the file again); release_pages() calls it.
  static std::shared_ptr<Storage> borrow(const void* data, std::size_t nbytes,
                                         std::shared_ptr<const void> owner,
                                         std::function<void()> check = {}, ReleasePages release = nullptr);

  std::byte* data() {
    if (!checked_.load(std::memory_order_acquire)) [[unlikely]] run_check();
    return data_;
  }
  const std::byte* data() const {
    if (!checked_.load(std::memory_order_acquire)) [[unlikely]] run_check();
    return data_;
  }
  std::size_t nbytes() const { return nbytes_; }
  bool borrowed() const { return owner_ != nullptr; }
  // False while a borrow() check has not passed yet.
  bool checked() const { return checked_.load(std::memory_order_acquire); }
  // Gives the memory of borrowed bytes back to the operating system when their owner can
  // bring them back unchanged (borrow()'s `release`); nothing otherwise. What data() reads is
  // the same before and after: only the memory they take until then changes. For a holder
  // that has copied what it needs (a plan's packed weights) while others may still read them.
  void release_pages() const {
    if (release_) release_({data_, nbytes_});
  }
  // release_pages() for bytes [offset, offset + n) only: for a holder that copies a large
  // record part by part, so the part copied and the part still to copy are not both resident.
  void release_pages(std::size_t offset, std::size_t n) const {
    if (release_ && offset < nbytes_) release_({data_ + offset, std::min(n, nbytes_ - offset)});
  }

  // For allocate() and borrow() only (public for the allocator): with a null owner the
  // bytes live in the same allocation as the Storage, right after it.
  Storage(std::byte* data, std::size_t nbytes, std::shared_ptr<const void> owner,
          std::function<void()> check = {}, ReleasePages release = nullptr)
      : data_(data), nbytes_(nbytes), owner_(std::move(owner)), check_(std::move(check)), checked_(!check_),
        release_(release) {}
  ~Storage() = default;
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

 private:
  void run_check() const;

  std::byte* data_;
  std::size_t nbytes_;
  std::shared_ptr<const void> owner_;  // null: data_ is inline (allocate())
  // Runs before the bytes are first handed out; released once it has passed.
  mutable std::function<void()> check_;
  mutable std::atomic<bool> checked_;
  ReleasePages release_;
};

class Tensor {
 public:
  Tensor() = default;  // undefined tensor: defined() is false
  Tensor(std::shared_ptr<Storage> storage, std::size_t byte_offset, DType dtype, Shape shape);

  static Tensor empty(Shape shape, DType dtype = DType::Float32);
  static Tensor zeros(Shape shape, DType dtype = DType::Float32);
  static Tensor full(Shape shape, double value, DType dtype = DType::Float32);
  static Tensor scalar(double value, DType dtype = DType::Float32);
  static Tensor from_vector(std::span<const float> values, Shape shape);
  static Tensor from_vector(std::span<const double> values, Shape shape);
  static Tensor from_vector(std::span<const std::int64_t> values, Shape shape);
  // Copies `nbytes` raw little-endian bytes (checked against shape and dtype).
  static Tensor from_bytes(std::span<const std::byte> bytes, Shape shape, DType dtype);

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  std::size_t dim() const { return shape_.size(); }
  std::int64_t size(std::int64_t d) const;  // negative d counts from the end
  std::int64_t numel() const { return shape_.numel(); }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel()) * element_size(dtype_); }

  const std::shared_ptr<Storage>& storage() const { return storage_; }
  std::size_t byte_offset() const { return byte_offset_; }
  bool same_storage(const Tensor& other) const { return storage_ == other.storage_; }

  template <class T>
  T* data() {
    return reinterpret_cast<T*>(storage_->data() + byte_offset_);
  }
  template <class T>
  const T* data() const {
    return reinterpret_cast<const T*>(storage_->data() + byte_offset_);
  }
  std::span<const std::byte> bytes() const { return {storage_->data() + byte_offset_, nbytes()}; }

  // A new tensor with the same bytes viewed under another shape (numel must match).
  Tensor view(Shape shape) const;
  // A deep copy with its own storage.
  Tensor clone() const;
  // Converts to another dtype (a copy; returns *this when the dtype already matches).
  Tensor to(DType dtype) const;
  // Element i (flat, row-major) as a double, whatever the dtype.
  double item_at(std::int64_t i) const;
  double item() const;
  std::vector<double> to_doubles() const;

  // Identity, not value equality: the same view of the same storage (use allclose for
  // values). This is what Value equality means for tensors.
  friend bool operator==(const Tensor& a, const Tensor& b) {
    return a.storage_ == b.storage_ && a.byte_offset_ == b.byte_offset_ && a.dtype_ == b.dtype_ &&
           a.shape_ == b.shape_;
  }

 private:
  std::shared_ptr<Storage> storage_;
  std::size_t byte_offset_ = 0;
  DType dtype_ = DType::Float32;
  Shape shape_;
};

// Elementwise |a-b| <= atol + rtol*|b| with equal shapes (torch.allclose).
bool allclose(const Tensor& a, const Tensor& b, double rtol = 1e-5, double atol = 1e-8);
// Largest |a-b| (shapes must match).
double max_abs_diff(const Tensor& a, const Tensor& b);

std::ostream& operator<<(std::ostream& os, const Tensor& t);

}  // namespace fxpack
