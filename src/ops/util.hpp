// Helpers shared by the kernel sources: argument access with messages that name the op,
// dimension wrapping; and the op table's types, for the generated table each family's .cpp
// includes. Internal to src/ops.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "fxpack/errors.hpp"
#include "fxpack/ops.hpp"
#include "fxpack/tensor.hpp"
#include "fxpack/value.hpp"
#include "op_table.hpp"

namespace fxpack::ops::util {

[[noreturn]] void fail(const std::string& message);

// "Tensor", "int", ... for messages.
std::string kind_str(const Value& v);

// PyTorch's name of a dtype in its kernel messages ("Float", "Long", "Bool", ...).
const char* scalar_type_name(DType d);

// The i-th bound argument as a Tensor / int / ... ; throws OpError "op: argument 'name' must be ...".
const Tensor& tensor_arg(std::span<const Value> args, std::size_t i, const char* op, const char* name);
// nullptr for None.
const Tensor* optional_tensor_arg(std::span<const Value> args, std::size_t i, const char* op, const char* name);
std::int64_t int_arg(std::span<const Value> args, std::size_t i, const char* op, const char* name);
bool bool_arg(std::span<const Value> args, std::size_t i, const char* op, const char* name);
double double_arg(std::span<const Value> args, std::size_t i, const char* op, const char* name);
// An int or a list/tuple of ints.
std::vector<std::int64_t> int_list_arg(const Value& v, const char* op, const char* name);

// Wraps a possibly negative dim into [0, ndim); PyTorch's message when out of range.
std::int64_t wrap_dim(std::int64_t d, std::int64_t ndim, const char* op);

// Row-major strides (in elements) of a shape.
void contiguous_strides(const Shape& s, std::int64_t* strides);

}  // namespace fxpack::ops::util
