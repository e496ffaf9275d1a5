// doctest's implementation and main(), compiled once and linked into every suite.
//
// A test that cannot run here is a real doctest skip, never a silent pass: its TEST_CASE
// carries `* doctest::skip(!available) * doctest::description("why it needs what it needs")`
// (see skip.hpp), and the listener below prints one line per skipped test case,
//   [doctest] skipped: "<test case>" (<file>): <reason>
// which .ci/run collects from every suite's log.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cstdio>

namespace {

struct SkipReporter : doctest::IReporter {
  explicit SkipReporter(const doctest::ContextOptions&) {}

  void test_case_skipped(const doctest::TestCaseData& tc) override {
    // Test cases left out by command-line filters are skipped too; only decorated ones count.
    if (!tc.m_skip) return;
    std::printf("[doctest] skipped: \"%s\" (%s): %s\n", tc.m_name, doctest::skipPathFromFilename(tc.m_file.c_str()),
                tc.m_description != nullptr ? tc.m_description : "no reason given");
    std::fflush(stdout);
  }

  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData&) override {}
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
};

}  // namespace

DOCTEST_REGISTER_LISTENER("skips", 1, SkipReporter);
