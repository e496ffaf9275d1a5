// libFuzzer harness: pickle::loads in every format (the header line picks it: portable
// binary, JSON, Boost text, binary and xml), then whatever a user does with the module.
// loads() promises to throw only FormatError.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "exercise.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fxpack::pickle::LoadOptions options;
  options.limits.max_nodes = 10'000;
  options.limits.max_string_length = 1u << 16;
  options.limits.max_tensor_bytes = 1u << 24;
  options.limits.max_items = 10'000;
  options.on_warning = [](const std::string&) {};
  std::shared_ptr<fxpack::GraphModule> gm;
  try {
    gm = fxpack::pickle::loads(std::string_view(reinterpret_cast<const char*>(data), size), options);
  } catch (const fxpack::FormatError&) {
    return 0;
  }
  fxpack::fuzz::exercise(*gm);
  return 0;
}
