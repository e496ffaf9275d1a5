// libFuzzer harness: the restricted unpickler of torch.package archives on arbitrary bytes,
// with the allowlist PackageImporter uses. It must refuse with a FormatError or build a tree
// within its limits; py_repr of any tree must be bounded.
#include <cstddef>
#include <cstdint>
#include <span>

#include "fxpack/errors.hpp"
#include "interop/unpickler.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fxpack::interop::UnpicklerLimits limits;
  limits.max_objects = 1u << 16;
  limits.max_memo = 1u << 16;
  try {
    const auto tree = fxpack::interop::unpickle(std::as_bytes(std::span(data, size)),
                                                fxpack::interop::torch_package_allowlist(), limits, "fuzz");
    if (fxpack::interop::py_repr(tree->root()).size() > (1u << 20)) __builtin_trap();
  } catch (const fxpack::FormatError&) {
  }
  return 0;
}
