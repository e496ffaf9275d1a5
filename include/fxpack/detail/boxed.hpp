// Boxed<T>: a T held on the heap with value semantics, for the alternatives of
// Value::Variant larger than 8 bytes (Tensor, std::string, List, Tuple, Dict, Slice, Device).
//
// Why: a std::variant is as large as its largest alternative. With a Tensor (104 bytes: an
// inline Shape) in it, every Value was 112 bytes, and with a std::string 40; a graph's
// argument lists — almost all node references and scalars — paid that per argument. Boxed,
// every alternative is at most 8 bytes and a Value is 16 (at 10^6 nodes the argument lists
// went from ~170 MB to ~22 MB); a string, list, tuple or dict argument pays one small
// allocation for its box.
//
// Copying copies the T (a deep copy, as the variant did); moving moves the pointer. A box
// move-constructed from holds nothing and reads as a default T (an undefined Tensor, an
// empty slice), as a moved-from alternative did; a box move-assigned from takes the target's
// previous T (a swap: no allocation), which it releases when it is destroyed or assigned. Tensor boxes are recycled through a small
// per-thread cache (value.cpp), so code that puts a fresh Tensor into a Value per call (a
// plan's steps) does not reach malloc once warm.
#pragma once

#include <memory>
#include <new>
#include <utility>

namespace fxpack {
class Tensor;
}

namespace fxpack::detail {

// Raw memory for a box of T: operator new, except for Tensor (value.cpp: recycled).
template <class T>
struct BoxMemory {
  static void* allocate() { return ::operator new(sizeof(T)); }
  static void release(void* p) noexcept { ::operator delete(p); }
};
template <>
struct BoxMemory<Tensor> {
  static void* allocate();
  static void release(void* p) noexcept;
};

template <class T>
class Boxed {
 public:
  Boxed() = default;
  Boxed(T value) : p_(make(std::move(value))) {}  // NOLINT: implicit, as the variant's T was
  Boxed(const Boxed& other) : p_(other.p_ ? make(*other.p_) : nullptr) {}
  Boxed(Boxed&& other) noexcept : p_(std::exchange(other.p_, nullptr)) {}
  Boxed& operator=(const Boxed& other) {
    if (this != &other) *this = Boxed(other);
    return *this;
  }
  Boxed& operator=(Boxed&& other) noexcept {
    std::swap(p_, other.p_);
    return *this;
  }
  ~Boxed() { destroy(p_); }

  const T& get() const { return p_ ? *p_ : empty(); }
  T& get() {
    if (!p_) p_ = make(T{});
    return *p_;
  }
  friend bool operator==(const Boxed& a, const Boxed& b) { return a.get() == b.get(); }

 private:
  static T* make(T value) {
    void* place = BoxMemory<T>::allocate();
    return new (place) T(std::move(value));  // T's move constructors do not throw
  }
  static void destroy(T* p) noexcept {
    if (!p) return;
    p->~T();
    BoxMemory<T>::release(p);
  }
  static const T& empty() {
    static const T e{};
    return e;
  }
  T* p_ = nullptr;
};

}  // namespace fxpack::detail
