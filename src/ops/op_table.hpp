// The op table as the generator writes it (src/ops/gen_op_table.py): one Family per YAML
// file, built by the `<family>_table.inc` that the family's .cpp includes as its last line,
// and the list of all families in the generated op_table.cpp. OpRegistry::global() reads
// them once (ops.cpp). Internal to the library.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "fxpack/ops.hpp"

namespace fxpack::op_table {

// One op entry of a YAML file (docs/design.md §5.2), with the C++ it names resolved.
struct OpEntry {
  std::string source;  // "src/ops/elementwise.yaml:12"
  bool aten = false;
  std::string schema;
  std::vector<std::string> functions, methods;
  std::string op;  // the operator target, "" for none
  std::size_t op_operands = 0;  // 1 (operator.neg) or 2 (operator.add)
  std::string reflected_aten;
  DecomposeFn reflected = nullptr;
  KernelFn kernel = nullptr;
  std::optional<ElementwiseFunctor> functor;
  std::vector<Promotion> promotion;
  std::optional<Purity> purity;
  Fusion fusion = Fusion::None;
  bool numbers_as_tensors = false;
  bool saves_result = false;
  bool metadata = false;
  bool assertion = false;
  std::string make_fx_aten;
  DecomposeFn make_fx = nullptr;
  std::vector<std::string> examples;
};

// One leaf module kind (docs/design.md §6.2).
struct ModuleEntry {
  std::string source;
  std::string name;
  std::vector<std::string> classes;
  std::string constructor, attributes;  // parameter lists
  std::vector<std::string> parameters, buffers, inputs;
  std::string input_params;  // forward's parameter list, when declared with types and defaults
  void (*init)(Module&, std::span<const Value>) = nullptr;
  Value (*forward)(const Module&, std::span<const Value>) = nullptr;
  std::string call;
  Value (*make_fx)(OpRecorder&, const Module&, const OpCall&) = nullptr;
  std::string extra_repr_format;
  std::string (*extra_repr)(const Module&) = nullptr;
  void (*validate)(const Module&) = nullptr;
  std::vector<std::pair<std::string, Value>> (*private_attributes)(const Module&) = nullptr;
  bool container = false;
  std::vector<std::pair<std::string, std::string>> examples;  // (init, input)
};

struct Family {
  std::string file;  // "src/ops/elementwise.yaml"
  std::vector<OpEntry> ops;
  std::vector<ModuleEntry> modules;
};

// Every family, in the order of the generator's command line (generated op_table.cpp).
std::vector<const Family*> families();

}  // namespace fxpack::op_table
