// Element types and devices.
//
// fxpack tensors are dense, contiguous and on the CPU. DType names follow PyTorch
// (`torch.float32` is printed for Float32 in generated code; `float32` is the short name
// used in archives and manifests). The enumerator values are part of the archive format:
// never renumber them, only append.
//
// Float16 and BFloat16 elements are IEEE binary16 / bfloat16 bit patterns (2 bytes, as
// PyTorch stores them); Tensor::to converts every dtype to every other (through float for
// the 16-bit floats, rounding to nearest even, as PyTorch's c10::Half/BFloat16 do).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace fxpack {

enum class DType : std::uint8_t {
  Float32 = 0,
  Float64 = 1,
  Int64 = 2,
  Bool = 3,
  UInt8 = 4,
  Float16 = 5,
  BFloat16 = 6,
  Int32 = 7,
  Int8 = 8,
  Int16 = 9,
};

inline constexpr int kDTypeCount = 10;

// Bytes per element.
std::size_t element_size(DType dtype);
// Short name: "float32", "float64", "int64", "bool", "uint8", "float16", "bfloat16",
// "int32", "int8", "int16" (PyTorch's torch.<name>).
std::string_view dtype_name(DType dtype);
// Parses a short name; throws fxpack::Error naming the unknown string.
DType parse_dtype(std::string_view name);
bool is_floating(DType dtype);

// Only the CPU exists today; the type is kept so graphs that mention `device(type='cpu')`
// round-trip exactly, and so a CUDA device can be rejected with a clear message.
struct Device {
  std::string type = "cpu";
  std::int64_t index = -1;  // -1: no index, printed as device(type='cpu')
  friend bool operator==(const Device&, const Device&) = default;
};

// torch.strided / torch.contiguous_format appear as arguments of make_fx graphs.
enum class Layout : std::uint8_t { Strided = 0 };
enum class MemoryFormat : std::uint8_t { Contiguous = 0, Preserve = 1, ChannelsLast = 2 };

}  // namespace fxpack
