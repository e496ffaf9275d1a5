// The library's version: the project version meson builds (`meson.build`), so the
// command, `fxpack.pc`, the CMake package and the code all report the same string.
#pragma once

namespace fxpack {

// "MAJOR.MINOR.PATCH", e.g. "0.1.0".
const char* version();

}  // namespace fxpack
