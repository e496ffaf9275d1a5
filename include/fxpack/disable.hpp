// disable / innermost_fn: callables that compile never compiles through.
//
// PyTorch's torch._dynamo.disable(fn) and torch._dynamo.eval_frame.innermost_fn. `disable(f)`
// wraps a callable so that compile() runs it as is: compile(disable(f)) calls f eagerly on
// every call, and a forward body that calls a disabled function while compile captures it
// makes compile run that whole body eagerly for the signature (the C++ form of a graph
// break: there is no frame to resume after the call). Wrappers stack:
// disable(disable(f)) is fine, and innermost_fn unwraps any number of them, returning the
// original bound forward — which still reports its module through self() (the `__self__`
// of the PyTorch test), for eager and lazy modules alike.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "fxpack/errors.hpp"
#include "fxpack/graph_module.hpp"

namespace fxpack {

// Thrown when a disabled function is reached while compile traces: compile catches it and
// runs the target eagerly instead.
class DisabledTraceError : public GraphError {
 public:
  using GraphError::GraphError;
};

class DisabledFn {
 public:
  using Fn = std::function<Value(std::vector<Value>)>;

  // Runs the wrapped callable. Under a symbolic trace (inputs holding Node references) it
  // refuses with DisabledTraceError: a disabled function is never traced.
  Value operator()(std::vector<Value> inputs) const;
  template <class... A>
  Value operator()(A&&... inputs) const {
    return (*this)(std::vector<Value>{Value(std::forward<A>(inputs))...});
  }

  // The next wrapper down, or nullptr when this one wraps the original callable.
  const DisabledFn* inner() const { return inner_.get(); }
  // Number of stacked disable() wrappers, this one included.
  std::size_t depth() const { return inner_ ? inner_->depth() + 1 : 1; }
  // The original callable is a bound forward (innermost_fn can return it).
  bool wraps_bound_forward() const;

 private:
  friend DisabledFn disable(BoundForward fn);
  friend DisabledFn disable(const DisabledFn& fn);
  friend DisabledFn disable(Fn fn);
  friend BoundForward innermost_fn(const DisabledFn& fn);
  DisabledFn() = default;

  std::shared_ptr<const DisabledFn> inner_;  // set when wrapping another wrapper
  std::optional<BoundForward> forward_;      // the original, when a bound forward
  Fn fn_;                                    // the original, otherwise
};

DisabledFn disable(BoundForward fn);
DisabledFn disable(const DisabledFn& fn);
DisabledFn disable(DisabledFn::Fn fn);

// The original bound forward under any stack of disable() wrappers. Throws GraphError when
// the original callable is not a bound forward.
BoundForward innermost_fn(const DisabledFn& fn);
inline BoundForward innermost_fn(const BoundForward& fn) { return fn; }

}  // namespace fxpack
