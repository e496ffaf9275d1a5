// What every libFuzzer harness does with a module it managed to load: everything a user of
// an untrusted archive would do with it — print it, lint it, build its plan, and run it on
// small inputs — so that a hostile graph that loads is exercised too. Any fxpack::Error is
// a fine answer; a crash, hang, sanitizer report or allocation past libFuzzer's limits is a
// finding.
#pragma once

#include <exception>
#include <memory>
#include <vector>

#include "fxpack/fxpack.hpp"

namespace fxpack::fuzz {

inline void exercise(GraphModule& gm) {
  try {
    (void)gm.code();
    (void)gm.print_readable(false);
    gm.lint();
  } catch (const Error&) {
    return;
  }
  std::size_t inputs = 0;
  for (const Node* n : gm.graph()) inputs += n->op() == Op::Placeholder ? 1 : 0;
  if (inputs > 8) return;
  // Two shapes: a vector and a small batch of images (what the reference models take).
  for (const Shape& shape : {Shape{4}, Shape{1, 3, 4, 4}}) {
    std::vector<Value> args;
    for (std::size_t i = 0; i < inputs; ++i) args.emplace_back(Tensor::full(shape, 0.5));
    try {
      (void)gm.forward(args);
    } catch (const Error&) {
    }
  }
}

}  // namespace fxpack::fuzz
