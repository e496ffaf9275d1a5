// libFuzzer harness: the parser of fx-generated Python on arbitrary text. It must refuse
// with a FormatError or build a graph that lints and prints. (Findings here go to the
// owner of src/interop/fx_code_parser.cpp.)
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fxpack/fxpack.hpp"
#include "interop/fx_code_parser.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::shared_ptr<fxpack::Graph> graph;
  try {
    graph = fxpack::interop::parse_fx_code(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  } catch (const fxpack::FormatError&) {
    return 0;
  }
  try {
    graph->lint();
    (void)fxpack::python_code(*graph);
  } catch (const fxpack::Error&) {
  }
  return 0;
}
