// Running part of a test in a child process: for what must not take the test binary down
// with it (a crash such as SIGBUS, a deadlock, a memory peak to measure) and for dropping
// privileges. The child must not run oneDNN kernels: their OpenMP runtime (libgomp) does not
// survive fork once the parent has used it, and the child hangs.
#pragma once

#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <fstream>
#include <functional>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace fxpack::testing {

// Runs `body` in a forked child and says how it ended: "exit N" with the value `body`
// returned (4 if it threw), "killed by signal N", or "timed out" after `seconds` (the child
// is then killed).
inline std::string in_child(const std::function<int()>& body, int seconds = 60) {
  // Flush first: the child would otherwise inherit, and some runtimes flush, what the test
  // binary has buffered, printing it twice.
  std::cout.flush();
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int rc = 3;
    try {
      rc = body();
    } catch (...) {
      rc = 4;
    }
    ::_exit(rc);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return "timed out";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "exit " + std::to_string(WEXITSTATUS(status));
}

// This process's resident set size and its peak since the last reset_peak_rss(), in KiB
// (from /proc/self/status; -1 if unavailable).
inline long rss_kib(const char* field = "VmRSS:") {
  std::ifstream in("/proc/self/status");
  std::string key;
  long value = -1;
  while (in >> key) {
    if (key == field) {
      in >> value;
      return value;
    }
    in.ignore(1 << 16, '\n');
  }
  return -1;
}
inline long peak_rss_kib() { return rss_kib("VmHWM:"); }
// Resets the peak (Linux >= 4.0: "5" to /proc/self/clear_refs). False if it cannot.
inline bool reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

// How many bytes of the pages `bytes` lies on are mapped into this process now (the
// "present" bit of /proc/self/pagemap); -1 if unavailable. Unlike the resident set size it
// says which pages: a released mapping's, not the process's whole.
inline long resident_bytes(std::span<const std::byte> bytes) {
  if (bytes.empty()) return 0;
  const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto first = reinterpret_cast<std::uintptr_t>(bytes.data()) / page;
  const auto last = (reinterpret_cast<std::uintptr_t>(bytes.data()) + bytes.size() - 1) / page;
  std::vector<std::uint64_t> entries(last - first + 1);  // one per page
  const ssize_t got = ::pread(fd, entries.data(), entries.size() * 8, static_cast<off_t>(first * 8));
  ::close(fd);
  if (got != static_cast<ssize_t>(entries.size() * 8)) return -1;
  long present = 0;
  for (const std::uint64_t e : entries) present += static_cast<long>(e >> 63);
  return present * static_cast<long>(page);
}

}  // namespace fxpack::testing
