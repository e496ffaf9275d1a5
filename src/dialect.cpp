// Codegen dialects: names and the process-wide default.
#include "fxpack/dialect.hpp"

#include <atomic>
#include <string>

#include "fxpack/errors.hpp"

namespace fxpack {

namespace {
std::atomic<Dialect> g_default{Dialect::Torch1_13};
}  // namespace

std::string_view dialect_name(Dialect dialect) {
  switch (dialect) {
    case Dialect::Torch1_13: return "torch-1.13";
    case Dialect::Torch2: return "torch-2";
  }
  return "unknown";
}

Dialect parse_dialect(std::string_view name) {
  if (name == "torch-1.13") return Dialect::Torch1_13;
  if (name == "torch-2") return Dialect::Torch2;
  throw LookupError("unknown codegen dialect '" + std::string(name) + "' (expected torch-1.13 or torch-2)");
}

Dialect default_dialect() { return g_default.load(std::memory_order_relaxed); }
void set_default_dialect(Dialect dialect) { g_default.store(dialect, std::memory_order_relaxed); }

}  // namespace fxpack
