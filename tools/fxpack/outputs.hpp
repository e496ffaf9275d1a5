// What a module returned, written as files: `outputs.json` describing the structure plus one
// .npy per tensor (output_0.npy, output_1.npy, ... in depth-first order). The format is the one
// test/python/fxpack_outputs.py reads and fixtures/torch_models/ uses for PyTorch's outputs,
// described in docs/cli.md:
//
//   {"format": "fxpack-outputs", "version": 1, "output": NODE}
//   NODE: {"tensor": "output_0.npy", "dtype": "float32", "shape": [2, 3]} | {"tuple": [NODE...]}
//       | {"list": [NODE...]} | {"dict": [["key", NODE]...]} | {"int": 3}
//       | {"float": 0.5 or "inf" / "-inf" / "nan"} | {"bool": true} | {"none": null} | {"str": "s"}
//
// bfloat16 tensors, which NumPy cannot hold, are written as float32 values (the node keeps
// dtype "bfloat16"). Any other kind of value (a dtype, a device, a slice) is refused by name.
#pragma once

#include <string>
#include <vector>

#include "fxpack/value.hpp"

namespace fxpack::cli {

// Writes `output` into `dir` (created if missing; files of the same names are replaced
// atomically). Returns the paths written, outputs.json last.
std::vector<std::string> write_outputs(const Value& output, const std::string& dir);

}  // namespace fxpack::cli
