#include "fxpack/disable.hpp"

namespace fxpack {

Value DisabledFn::operator()(std::vector<Value> inputs) const {
  for (const Value& v : inputs)
    if (v.contains_node())
      throw DisabledTraceError("a function wrapped by disable() is never traced or compiled");
  if (inner_) return (*inner_)(std::move(inputs));
  if (forward_) return (*forward_)(std::move(inputs));
  if (!fn_) throw GraphError("disable: empty callable");
  return fn_(std::move(inputs));
}

bool DisabledFn::wraps_bound_forward() const {
  return inner_ ? inner_->wraps_bound_forward() : forward_.has_value();
}

DisabledFn disable(BoundForward fn) {
  if (!fn.self()) throw GraphError("disable: bound forward without a module");
  DisabledFn d;
  d.forward_ = std::move(fn);
  return d;
}

DisabledFn disable(const DisabledFn& fn) {
  DisabledFn d;
  d.inner_ = std::make_shared<const DisabledFn>(fn);
  return d;
}

DisabledFn disable(DisabledFn::Fn fn) {
  if (!fn) throw GraphError("disable: empty callable");
  DisabledFn d;
  d.fn_ = std::move(fn);
  return d;
}

BoundForward innermost_fn(const DisabledFn& fn) {
  const DisabledFn* cur = &fn;
  while (cur->inner()) cur = cur->inner();
  if (!cur->forward_) throw GraphError("innermost_fn: the wrapped callable is not a bound forward");
  return *cur->forward_;
}

}  // namespace fxpack
