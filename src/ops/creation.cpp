// Tensor creation (creation.yaml): zeros/ones/full/empty/rand_like, new_zeros/ones/full/empty,
// fill_, and the dtype conversions (to, float, double, half, ..., type, type_as).
#include <cmath>
#include <cstring>
#include <random>

#include "fxpack/quote.hpp"
#include "kernels.hpp"
#include "util.hpp"

namespace fxpack::ops {

using util::fail;

namespace {

// fxpack tensors live on the CPU: any other device is refused, naming it.
void check_device(const Value& device, const char* op) {
  if (device.is_none()) return;
  std::string type;
  if (device.kind() == Value::Kind::Device) {
    type = device.device().type;
  } else {
    const std::string& s = device.str();
    type = s.substr(0, s.find(':'));
  }
  if (type != "cpu") fail(std::string(op) + ": device '" + type + "' is not available: fxpack runs on the CPU only");
}

void check_layout(const Value& layout, const char* op) {
  if (!layout.is_none() && layout.kind() != Value::Kind::Layout)
    fail(std::string(op) + ": layout must be torch.strided");
}

DType dtype_or(const Value& v, DType fallback) { return v.is_none() ? fallback : v.dtype(); }

// A Scalar argument (number, bool or one-element tensor) as a double.
double scalar_of(const Value& v, const char* op) {
  switch (v.kind()) {
    case Value::Kind::Bool: return v.to_bool() ? 1.0 : 0.0;
    case Value::Kind::Int: return static_cast<double>(v.to_int());
    case Value::Kind::Double: return v.to_double();
    case Value::Kind::Tensor: {
      const Tensor& t = v.tensor();
      if (t.numel() != 1) {
        fail(std::string(op) + ": only supports a 0-dimension value tensor, but got tensor with " +
             std::to_string(t.dim()) + " dimension(s).");
      }
      return t.item();
    }
    default: fail(std::string(op) + ": expected a number, got " + util::kind_str(v));
  }
}

// PyTorch's fill to a bool tensor is `value != 0`; to an integer one truncates.
Tensor filled(const Shape& shape, double value, DType dt) {
  if (dt == DType::Bool) value = value != 0.0 ? 1.0 : 0.0;
  else if (!is_floating(dt)) value = std::trunc(value);
  return Tensor::full(shape, value, dt);
}

Shape shape_arg(const Value& size, const char* op) {
  const std::vector<std::int64_t> dims = size.int_list();
  if (dims.size() > Shape::kMaxDims) {
    fail(std::string(op) + ": " + std::to_string(dims.size()) + " dims exceed fxpack's limit of " +
         std::to_string(Shape::kMaxDims));
  }
  for (std::int64_t d : dims) {
    if (d < 0) fail(std::string(op) + ": Trying to create tensor with negative dimension " + std::to_string(d) + ": " +
                    Shape(std::span<const std::int64_t>(dims)).to_string());
  }
  return Shape(std::span<const std::int64_t>(dims));
}

// ---- *_like(self, *, dtype, layout, device, pin_memory, memory_format) ----------------------

DType like_dtype(std::span<const Value> a, const char* op, std::size_t first_option) {
  check_layout(a[first_option + 1], op);
  check_device(a[first_option + 2], op);
  return dtype_or(a[first_option], a[0].tensor().dtype());
}

Value zeros_like_kernel(std::span<const Value> a) {
  return Value(Tensor::zeros(a[0].tensor().shape(), like_dtype(a, "zeros_like", 1)));
}
Value ones_like_kernel(std::span<const Value> a) {
  return Value(Tensor::full(a[0].tensor().shape(), 1.0, like_dtype(a, "ones_like", 1)));
}
Value full_like_kernel(std::span<const Value> a) {
  return Value(filled(a[0].tensor().shape(), scalar_of(a[1], "full_like"), like_dtype(a, "full_like", 2)));
}
// Uninitialised in PyTorch; zeros here (the same up to what a program may rely on).
Value empty_like_kernel(std::span<const Value> a) {
  return Value(Tensor::zeros(a[0].tensor().shape(), like_dtype(a, "empty_like", 1)));
}

template <class T>
void fill_uniform(T* p, std::int64_t n) {
  thread_local std::mt19937_64 gen{std::random_device{}()};
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (std::int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(u(gen));
}

// Uniform in [0, 1): floating dtypes only, as PyTorch's.
Value rand_like_kernel(std::span<const Value> a) {
  const DType dt = like_dtype(a, "rand_like", 1);
  const Tensor& x = a[0].tensor();
  Tensor out = Tensor::empty(x.shape(), DType::Float64);
  fill_uniform(out.data<double>(), out.numel());
  if (dt != DType::Float32 && dt != DType::Float64 && dt != DType::Float16 && dt != DType::BFloat16)
    fail("rand_like: \"check_uniform_bounds\" not implemented for '" + std::string(dtype_name(dt)) + "'");
  return Value(out.to(dt));
}

// ---- new_*(self, size, [fill_value,] *, dtype, layout, device, pin_memory) ------------------

DType new_dtype(std::span<const Value> a, const char* op, std::size_t first_option) {
  check_layout(a[first_option + 1], op);
  check_device(a[first_option + 2], op);
  return dtype_or(a[first_option], a[0].tensor().dtype());
}

Value new_zeros_kernel(std::span<const Value> a) {
  return Value(Tensor::zeros(shape_arg(a[1], "new_zeros"), new_dtype(a, "new_zeros", 2)));
}
Value new_ones_kernel(std::span<const Value> a) {
  return Value(Tensor::full(shape_arg(a[1], "new_ones"), 1.0, new_dtype(a, "new_ones", 2)));
}
Value new_full_kernel(std::span<const Value> a) {
  return Value(filled(shape_arg(a[1], "new_full"), scalar_of(a[2], "new_full"), new_dtype(a, "new_full", 3)));
}
Value new_empty_kernel(std::span<const Value> a) {
  return Value(Tensor::zeros(shape_arg(a[1], "new_empty"), new_dtype(a, "new_empty", 2)));
}

// fill_(self, value): a fresh tensor of self's shape and dtype.
Value fill_tensor_kernel(std::span<const Value> a) {
  const Tensor& x = a[0].tensor();
  const Tensor& v = a[1].tensor();
  if (v.dim() != 0) {
    fail("fill_: only supports 0-dimension value tensor but got tensor with " + std::to_string(v.dim()) +
         " dimensions.");
  }
  return Value(filled(x.shape(), v.item(), x.dtype()));
}
Value fill_scalar_kernel(std::span<const Value> a) {
  const Tensor& x = a[0].tensor();
  return Value(filled(x.shape(), scalar_of(a[1], "fill_"), x.dtype()));
}

// ---- conversions -------------------------------------------------------------------------------

// x itself when the dtype matches and no copy is asked for (PyTorch returns self), else a copy.
Tensor convert(const Tensor& x, DType dt, bool copy) {
  if (x.dtype() == dt) return copy ? x.clone() : x;
  return x.to(dt);
}

// _to_copy(self, *, dtype, layout, device, pin_memory, non_blocking, memory_format)
Value to_copy_kernel(std::span<const Value> a) {
  check_layout(a[2], "_to_copy");
  check_device(a[3], "_to_copy");
  const Tensor& x = a[0].tensor();
  return Value(convert(x, dtype_or(a[1], x.dtype()), true));
}

// to.dtype_layout(self, *, dtype, layout, device, pin_memory, non_blocking, copy, memory_format)
Value to_dtype_layout_kernel(std::span<const Value> a) {
  check_layout(a[2], "to");
  check_device(a[3], "to");
  const Tensor& x = a[0].tensor();
  return Value(convert(x, dtype_or(a[1], x.dtype()), a[6].to_bool()));
}
// to.device(self, device, dtype, non_blocking, copy, memory_format)
Value to_device_kernel(std::span<const Value> a) {
  check_device(a[1], "to");
  return Value(convert(a[0].tensor(), a[2].dtype(), a[4].to_bool()));
}
// to.dtype(self, dtype, non_blocking, copy, memory_format)
Value to_dtype_kernel(std::span<const Value> a) { return Value(convert(a[0].tensor(), a[1].dtype(), a[3].to_bool())); }
// to.other(self, other, non_blocking, copy, memory_format)
Value to_other_kernel(std::span<const Value> a) {
  return Value(convert(a[0].tensor(), a[1].tensor().dtype(), a[3].to_bool()));
}
// Tensor.to(self, device=None, dtype=None, non_blocking, copy, *, memory_format)
Value to_python_kernel(std::span<const Value> a) {
  check_device(a[1], "to");
  const Tensor& x = a[0].tensor();
  return Value(convert(x, dtype_or(a[2], x.dtype()), a[4].to_bool()));
}

Value type_as_kernel(std::span<const Value> a) { return Value(convert(a[0].tensor(), a[1].tensor().dtype(), false)); }

// The legacy CPU tensor type names of Tensor.type().
constexpr std::pair<DType, const char*> kLegacyTypeNames[] = {
    {DType::Float32, "torch.FloatTensor"},  {DType::Float64, "torch.DoubleTensor"},
    {DType::Float16, "torch.HalfTensor"},   {DType::BFloat16, "torch.BFloat16Tensor"},
    {DType::Int64, "torch.LongTensor"},     {DType::Int32, "torch.IntTensor"},
    {DType::Int16, "torch.ShortTensor"},    {DType::Int8, "torch.CharTensor"},
    {DType::UInt8, "torch.ByteTensor"},     {DType::Bool, "torch.BoolTensor"},
};

Value type_dtype_kernel(std::span<const Value> a) { return Value(convert(a[0].tensor(), a[1].dtype(), false)); }

DType legacy_type(const std::string& name) {
  for (const auto& [dt, n] : kLegacyTypeNames)
    if (name == n) return dt;
  fail("type: invalid type: " + quote(name));
}

Value type_str_kernel(std::span<const Value> a) {
  return Value(convert(a[0].tensor(), legacy_type(a[1].str()), false));
}

Value type_name_kernel(std::span<const Value> a) {
  for (const auto& [dt, n] : kLegacyTypeNames)
    if (dt == a[0].tensor().dtype()) return Value(std::string(n));
  fail("type: no legacy type name for " + std::string(dtype_name(a[0].tensor().dtype())));
}

template <DType D>
Value to_kernel(std::span<const Value> a) {
  return Value(convert(a[0].tensor(), D, false));
}

// ---- factories ---------------------------------------------------------------------------------

DType factory_dtype(std::span<const Value> a, std::size_t first_option, const char* op, DType fallback) {
  check_layout(a[first_option + 1], op);
  check_device(a[first_option + 2], op);
  return dtype_or(a[first_option], fallback);
}

// zeros / ones(size, *, dtype, layout, device, pin_memory)
Value zeros_kernel(std::span<const Value> a) {
  return Value(Tensor::zeros(shape_arg(a[0], "zeros"), factory_dtype(a, 1, "zeros", DType::Float32)));
}
Value ones_kernel(std::span<const Value> a) {
  return Value(Tensor::full(shape_arg(a[0], "ones"), 1.0, factory_dtype(a, 1, "ones", DType::Float32)));
}

// The dtype PyTorch infers from a Python number: bool, int64 or float32 (a tensor: its own).
DType scalar_dtype(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Bool: return DType::Bool;
    case Value::Kind::Int: return DType::Int64;
    case Value::Kind::Tensor: return v.tensor().dtype();
    default: return DType::Float32;
  }
}

// full(size, fill_value, *, dtype, layout, device, pin_memory)
Value full_kernel(std::span<const Value> a) {
  const DType dt = factory_dtype(a, 2, "full", scalar_dtype(a[1]));
  return Value(filled(shape_arg(a[0], "full"), scalar_of(a[1], "full"), dt));
}

// PyTorch's arange: size ceil((end - start) / step) computed in double; element i is
// start + i * step (in the result dtype's arithmetic for integers).
Tensor arange(const Value& start, const Value& end, const Value& step, const Value& dtype) {
  const bool integral = scalar_dtype(start) != DType::Float32 && scalar_dtype(end) != DType::Float32 &&
                        scalar_dtype(step) != DType::Float32;
  const DType dt = dtype_or(dtype, integral ? DType::Int64 : DType::Float32);
  const double s = scalar_of(start, "arange"), e = scalar_of(end, "arange"), st = scalar_of(step, "arange");
  if (st == 0.0) fail("arange: step must be nonzero");
  if (!std::isfinite(s) || !std::isfinite(e)) fail("arange: unsupported range: " + std::to_string(s) + " -> " + std::to_string(e));
  if ((st > 0 && e < s) || (st < 0 && e > s)) fail("arange: upper bound and larger bound inconsistent with step sign");
  const double count = std::ceil((e - s) / st);
  if (count > 1e12) fail("arange: the range holds " + std::to_string(count) + " elements, more than fxpack allocates");
  const auto n = static_cast<std::int64_t>(count);
  Tensor out = Tensor::empty(Shape{n}, DType::Float64);
  double* p = out.data<double>();
  for (std::int64_t i = 0; i < n; ++i) p[i] = s + static_cast<double>(i) * st;
  return out.to(dt);
}

Value arange_kernel(std::span<const Value> a) {
  factory_dtype(a, 1, "arange", DType::Float32);
  return Value(arange(Value(std::int64_t{0}), a[0], Value(std::int64_t{1}), a[1]));
}
Value arange_start_kernel(std::span<const Value> a) {
  factory_dtype(a, 2, "arange", DType::Float32);
  return Value(arange(a[0], a[1], Value(std::int64_t{1}), a[2]));
}
Value arange_step_kernel(std::span<const Value> a) {
  factory_dtype(a, 3, "arange", DType::Float32);
  return Value(arange(a[0], a[1], a[2], a[3]));
}

Tensor eye(std::int64_t n, std::int64_t m, DType dt) {
  if (n < 0) fail("eye: n must be greater or equal to 0, got " + std::to_string(n));
  if (m < 0) fail("eye: m must be greater or equal to 0, got " + std::to_string(m));
  Tensor out = Tensor::zeros(Shape{n, m}, DType::Float64);
  double* p = out.data<double>();
  for (std::int64_t i = 0; i < std::min(n, m); ++i) p[i * m + i] = 1.0;
  return out.to(dt);
}
// eye(n, *, ...) / eye.m(n, m, *, ...)
Value eye_kernel(std::span<const Value> a) {
  return Value(eye(a[0].to_int(), a[0].to_int(), factory_dtype(a, 1, "eye", DType::Float32)));
}
Value eye_m_kernel(std::span<const Value> a) {
  return Value(eye(a[0].to_int(), a[1].to_int(), factory_dtype(a, 2, "eye", DType::Float32)));
}

// linspace(start, end, steps, *, ...): float32 unless dtype; PyTorch fills the first half
// from start and the second half from end, so the last element is end exactly.
Value linspace_kernel(std::span<const Value> a) {
  const DType dt = factory_dtype(a, 3, "linspace", DType::Float32);
  const std::int64_t steps = a[2].to_int();
  if (steps < 0) fail("linspace: number of steps must be non-negative");
  const double s = scalar_of(a[0], "linspace"), e = scalar_of(a[1], "linspace");
  Tensor out = Tensor::empty(Shape{steps}, DType::Float64);
  double* p = out.data<double>();
  if (steps == 1) {
    p[0] = s;
  } else if (steps > 1) {
    const double step = (e - s) / static_cast<double>(steps - 1);
    const std::int64_t half = steps / 2;
    for (std::int64_t i = 0; i < steps; ++i)
      p[i] = i < half ? s + step * static_cast<double>(i) : e - step * static_cast<double>(steps - i - 1);
  }
  return Value(out.to(dt));
}

// ---- make_fx decompositions ---------------------------------------------------------------------

Dict factory_options(DType dt) {
  Dict kw;
  kw.items.emplace_back("dtype", Value(dt));
  kw.items.emplace_back("layout", Value(Layout::Strided));
  kw.items.emplace_back("device", Value(Device{}));
  kw.items.emplace_back("pin_memory", Value(false));
  return kw;
}

// PyTorch 1.13 records the factory with every tensor option spelled out.
Value record_like(OpRecorder& rec, const OpCall& call, const char* overload, std::vector<Value> extra) {
  std::vector<Value> args{call.args[0].sym};
  for (Value& v : extra) args.push_back(std::move(v));
  return rec.record(overload, std::move(args), factory_options(call.result.tensor().dtype()));
}

Value zeros_like_decomposition(OpRecorder& rec, const OpCall& call) {
  return record_like(rec, call, "zeros_like.default", {});
}
Value ones_like_decomposition(OpRecorder& rec, const OpCall& call) {
  return record_like(rec, call, "ones_like.default", {});
}
Value full_like_decomposition(OpRecorder& rec, const OpCall& call) {
  return record_like(rec, call, "full_like.default", {call.args[1].sym});
}
Value empty_like_decomposition(OpRecorder& rec, const OpCall& call) {
  return record_like(rec, call, "empty_like.default", {});
}
Value rand_like_decomposition(OpRecorder& rec, const OpCall& call) {
  return record_like(rec, call, "rand_like.default", {});
}

Value size_list(const Tensor& t) {
  List l;
  for (std::int64_t d : t.shape()) l.items.emplace_back(d);
  return Value(std::move(l));
}

Value new_zeros_decomposition(OpRecorder& rec, const OpCall& call) {
  return record_like(rec, call, "new_zeros.default", {size_list(call.result.tensor())});
}
Value new_ones_decomposition(OpRecorder& rec, const OpCall& call) {
  return record_like(rec, call, "new_ones.default", {size_list(call.result.tensor())});
}
Value new_full_decomposition(OpRecorder& rec, const OpCall& call) {
  return record_like(rec, call, "new_full.default", {size_list(call.result.tensor()), call.args[2].sym});
}
Value new_empty_decomposition(OpRecorder& rec, const OpCall& call) {
  return record_like(rec, call, "new_empty.default", {size_list(call.result.tensor())});
}

// A conversion records nothing when the result is the input itself, else _to_copy with the
// dtype and, per form, the layout and the device.
Value record_conversion(OpRecorder& rec, const OpCall& call, bool copy, bool layout, bool device) {
  const Tensor& x = call.args[0].real.tensor();
  const DType dt = call.result.tensor().dtype();
  if (dt == x.dtype() && !copy) return call.args[0].sym;
  Dict kw;
  kw.items.emplace_back("dtype", Value(dt));
  if (layout) kw.items.emplace_back("layout", Value(Layout::Strided));
  if (device) kw.items.emplace_back("device", Value(Device{}));
  return rec.record("_to_copy.default", {call.args[0].sym}, std::move(kw));
}

Value to_dtype_layout_decomposition(OpRecorder& rec, const OpCall& call) {
  return record_conversion(rec, call, call.args[6].real.to_bool(), !call.args[2].real.is_none(),
                           !call.args[3].real.is_none());
}
Value to_device_decomposition(OpRecorder& rec, const OpCall& call) {
  return record_conversion(rec, call, call.args[4].real.to_bool(), false, true);
}
Value to_dtype_decomposition(OpRecorder& rec, const OpCall& call) {
  return record_conversion(rec, call, call.args[3].real.to_bool(), false, false);
}
Value to_other_decomposition(OpRecorder& rec, const OpCall& call) {
  return record_conversion(rec, call, call.args[3].real.to_bool(), false, true);
}
Value to_python_decomposition(OpRecorder& rec, const OpCall& call) {
  return record_conversion(rec, call, call.args[4].real.to_bool(), false, !call.args[1].real.is_none());
}
Value type_as_decomposition(OpRecorder& rec, const OpCall& call) {
  return record_conversion(rec, call, false, true, true);
}
Value type_dtype_decomposition(OpRecorder& rec, const OpCall& call) {
  return record_conversion(rec, call, false, false, true);
}
Value type_str_decomposition(OpRecorder& rec, const OpCall& call) {
  return record_conversion(rec, call, false, false, true);
}
template <DType>
Value to_decomposition(OpRecorder& rec, const OpCall& call) {
  return record_conversion(rec, call, false, false, false);
}


}  // namespace

#include "creation_table.inc"

}  // namespace fxpack::ops
