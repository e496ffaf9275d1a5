// Tests that need something this machine may not have (a program, the right to drop root
// privileges) say so, and doctest skips them with the reason instead of passing silently:
//
//   TEST_CASE("zip: unzip -t accepts the writer's output" *
//             skip_unless(have_program("unzip"), "the unzip program is not installed"))
//
// The listener in test_main.cpp prints each skipped test case with its reason, and .ci/run
// lists them at the end of the run.
#pragma once

#include <doctest/doctest.h>
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace fxpack::testing {

// A doctest decorator: skip the test case unless `available`, giving `reason` (a string
// literal) as why.
class skip_unless {
 public:
  skip_unless(bool available, const char* reason) : available_(available), reason_(reason) {}
  void fill(doctest::detail::TestCase& tc) const {
    if (!available_) {
      tc.m_skip = true;
      tc.m_description = reason_;
    }
  }

 private:
  bool available_;
  const char* reason_;
};

// True if `name` is a program on PATH.
inline bool have_program(const std::string& name) {
  return std::system(("command -v '" + name + "' >/dev/null 2>&1").c_str()) == 0;
}

// The unprivileged user a root test process drops to for checks that root would bypass.
inline constexpr uid_t kNobody = 65534;

// In a forked child: become `nobody` if running as root. False if that is not allowed.
inline bool drop_root() {
  if (::geteuid() != 0) return true;
  return ::setgroups(0, nullptr) == 0 && ::setgid(kNobody) == 0 && ::setuid(kNobody) == 0;
}

// True if permission checks can be tested here: not root, or root that may drop to nobody.
inline bool can_test_permissions() {
  if (::geteuid() != 0) return true;
  const pid_t pid = ::fork();
  if (pid < 0) return false;
  if (pid == 0) ::_exit(drop_root() && ::geteuid() != 0 ? 0 : 1);
  int status = 0;
  return ::waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace fxpack::testing
