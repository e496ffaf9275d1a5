// Whether a shared object may be reused in place: the caller holds the only reference, and
// what follows is ordered after every other holder's last use of it.
#pragma once

#include <memory>

namespace fxpack::detail {

// True when `p` is the only reference to its object (nobody else can make one: the caller's
// is the last). The other holders let go with release decrements of the count; the copy
// below is an acquire-release update of that count (libstdc++), so it is ordered after them
// and ThreadSanitizer sees that order. A relaxed use_count() read followed by an acquire
// fence orders the same on paper, but ThreadSanitizer does not model fences and reported
// every later reuse as a race with the other holders' reads.
template <class T>
bool sole_owner(const std::shared_ptr<T>& p) {
  if (!p || p.use_count() != 1) return false;
  (void)std::shared_ptr<T>(p);
  return true;
}

}  // namespace fxpack::detail
