#include "util.hpp"

#include <cmath>

namespace fxpack::ops::util {

void fail(const std::string& message) { throw OpError(message); }

const char* scalar_type_name(DType d) {
  switch (d) {
    case DType::Float32: return "Float";
    case DType::Float64: return "Double";
    case DType::Int64: return "Long";
    case DType::Bool: return "Bool";
    case DType::UInt8: return "Byte";
    case DType::Float16: return "Half";
    case DType::BFloat16: return "BFloat16";
    case DType::Int32: return "Int";
    case DType::Int8: return "Char";
    case DType::Int16: return "Short";
  }
  return "?";
}

std::string kind_str(const Value& v) {
  if (const Tensor* t = v.if_tensor()) {
    return "Tensor(" + std::string(dtype_name(t->dtype())) + ", " + t->shape().to_string() + ")";
  }
  return kind_name(v.kind());
}

namespace {
[[noreturn]] void bad_arg(const char* op, const char* name, const char* expected, const Value& v) {
  fail(std::string(op) + ": argument '" + name + "' must be " + expected + ", got " + kind_str(v));
}
const Value& at(std::span<const Value> args, std::size_t i, const char* op, const char* name) {
  if (i >= args.size()) {
    fail(std::string(op) + ": missing argument '" + name + "' (" + std::to_string(args.size()) +
         " bound arguments)");
  }
  return args[i];
}
}  // namespace

const Tensor& tensor_arg(std::span<const Value> args, std::size_t i, const char* op, const char* name) {
  const Value& v = at(args, i, op, name);
  const Tensor* t = v.if_tensor();
  if (!t) bad_arg(op, name, "a Tensor", v);
  if (!t->defined()) fail(std::string(op) + ": argument '" + name + "' is an undefined tensor");
  return *t;
}

const Tensor* optional_tensor_arg(std::span<const Value> args, std::size_t i, const char* op,
                                  const char* name) {
  const Value& v = at(args, i, op, name);
  if (v.is_none()) return nullptr;
  const Tensor* t = v.if_tensor();
  if (!t) bad_arg(op, name, "a Tensor or None", v);
  if (!t->defined()) return nullptr;
  return t;
}

std::int64_t int_arg(std::span<const Value> args, std::size_t i, const char* op, const char* name) {
  const Value& v = at(args, i, op, name);
  if (const auto* x = std::get_if<std::int64_t>(&v.variant())) return *x;
  if (const auto* b = std::get_if<bool>(&v.variant())) return *b ? 1 : 0;
  bad_arg(op, name, "an int", v);
}

bool bool_arg(std::span<const Value> args, std::size_t i, const char* op, const char* name) {
  const Value& v = at(args, i, op, name);
  if (const auto* b = std::get_if<bool>(&v.variant())) return *b;
  if (const auto* x = std::get_if<std::int64_t>(&v.variant())) {
    if (*x == 0 || *x == 1) return *x == 1;
  }
  bad_arg(op, name, "a bool", v);
}

double double_arg(std::span<const Value> args, std::size_t i, const char* op, const char* name) {
  const Value& v = at(args, i, op, name);
  if (const auto* d = std::get_if<double>(&v.variant())) return *d;
  if (const auto* x = std::get_if<std::int64_t>(&v.variant())) return static_cast<double>(*x);
  if (const auto* b = std::get_if<bool>(&v.variant())) return *b ? 1.0 : 0.0;
  bad_arg(op, name, "a number", v);
}

std::vector<std::int64_t> int_list_arg(const Value& v, const char* op, const char* name) {
  if (const auto* x = std::get_if<std::int64_t>(&v.variant())) return {*x};
  const std::vector<Value>* items = nullptr;
  if (const auto* l = v.if_list()) items = &l->items;
  if (const auto* t = v.if_tuple()) items = &t->items;
  if (!items) bad_arg(op, name, "an int or a list/tuple of ints", v);
  std::vector<std::int64_t> out;
  out.reserve(items->size());
  for (const Value& it : *items) {
    const auto* x = std::get_if<std::int64_t>(&it.variant());
    if (!x) {
      fail(std::string(op) + ": argument '" + name + "' must be a list/tuple of ints, found " +
           kind_str(it) + " in it");
    }
    out.push_back(*x);
  }
  return out;
}

std::int64_t wrap_dim(std::int64_t d, std::int64_t ndim, const char* op) {
  const std::int64_t n = ndim == 0 ? 1 : ndim;  // a 0-d tensor accepts dims 0 and -1
  if (d < -n || d >= n) {
    fail(std::string(op) + ": Dimension out of range (expected to be in range of [" +
         std::to_string(-n) + ", " + std::to_string(n - 1) + "], but got " + std::to_string(d) + ")");
  }
  return d < 0 ? d + n : d;
}

void contiguous_strides(const Shape& s, std::int64_t* strides) {
  std::int64_t st = 1;
  for (std::size_t i = s.size(); i-- > 0;) {
    strides[i] = st;
    st *= s[i];
  }
}

}  // namespace fxpack::ops::util
