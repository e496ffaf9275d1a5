#include "kept_memory.hpp"

#include <mutex>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace fxpack::detail {

namespace {
struct Registry {
  std::mutex mu;
  std::vector<ReleaseKeptMemory> releases;
};
// Never destroyed, like the caches it lists (BlockCache::for_pickle_trees): a thread still
// running at exit may call release_kept_memory() after static destructors have run.
Registry& registry() {
  static Registry* r = new Registry;
  return *r;
}
}  // namespace

void register_kept_memory(ReleaseKeptMemory release) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  r.releases.push_back(release);
}

void release_kept_memory() noexcept {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  for (ReleaseKeptMemory release : r.releases) release();
#if defined(__GLIBC__)
  // glibc keeps freed heap: the top of the heap beyond M_TRIM_THRESHOLD only, and pages of
  // free chunks between live ones never. Those are what a first call leaves after it frees its
  // own buffers among the packed weights it keeps (vit_b_16: 7 MiB free at the end, 4.7 MiB
  // of it resident).
  malloc_trim(0);
#endif
}

}  // namespace fxpack::detail
