// NumPy .npy files (format 1.0; 2.0 and 3.0 headers are read too): little-endian arrays in C
// order of every NumPy type a PyTorch dtype has (float32, float64, float16, int64, int32,
// int16, int8, uint8, bool) that this build of fxpack supports. Anything else is refused with
// a message that says what was found.
#pragma once

#include <string>
#include <string_view>

#include "fxpack/tensor.hpp"

namespace fxpack::cli {

// Largest header accepted (numpy itself writes a few hundred bytes at most).
inline constexpr std::size_t kMaxNpyHeader = 65535;

// Parses a whole .npy file's bytes. `where` prefixes messages (the path). Throws FormatError.
Tensor parse_npy(std::string_view bytes, const std::string& where);
// The bytes of a format 1.0 .npy file holding `t`.
std::string to_npy(const Tensor& t);

}  // namespace fxpack::cli
