// The per-process attestation cache: bounded, emptied by process exit, re-attests after an exec,
// and safe under concurrent callers.
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "attest/kernel/kernel_attestor.h"
#include "test_process.h"

namespace portcullis::attest::kernel {
namespace {

using namespace std::chrono_literals;

class AttestorCacheTest : public ::testing::Test {
 protected:
  std::unique_ptr<KernelAttestor> make(KernelAttestorOptions options = {}) {
    auto a = KernelAttestor::create(std::move(options), stats_);
    EXPECT_TRUE(a.ok());
    return a.ok() ? std::move(*a) : nullptr;
  }
  int64_t stat(const std::string& leaf) { return stats_.value("workload_attestation.kernel." + leaf).value_or(-1); }
  StatsStore stats_;
};

TEST_F(AttestorCacheTest, EntryLeavesWhenTheProcessExits) {
  auto attestor = make();
  auto child = testing::TestProcess::spawn({"/usr/bin/sleep", "60"});
  ASSERT_TRUE(child->wait_for_exe("/usr/bin/sleep"));
  auto a = attestor->attest_pidfd(child->pidfd());
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(attestor->cached_processes(), 1u);
  EXPECT_EQ(stat("cached_processes"), 1);
  ::kill(child->pid(), SIGKILL);
  auto deadline = std::chrono::steady_clock::now() + 2s;
  while (attestor->cached_processes() != 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(2ms);
  EXPECT_EQ(attestor->cached_processes(), 0u);
  EXPECT_EQ(stat("cached_processes"), 0);
}

TEST_F(AttestorCacheTest, IsBounded) {
  KernelAttestorOptions options;
  options.cache_size = 2;
  auto attestor = make(options);
  std::vector<std::unique_ptr<testing::TestProcess>> children;
  for (int i = 0; i < 3; ++i) {
    children.push_back(testing::TestProcess::spawn({"/usr/bin/sleep", "60"}));
    ASSERT_TRUE(children.back()->wait_for_exe("/usr/bin/sleep"));
    ASSERT_TRUE(attestor->attest_pidfd(children.back()->pidfd()).ok());
  }
  EXPECT_EQ(attestor->cached_processes(), 2u);
  EXPECT_EQ(stat("cache_evictions"), 1);
}

TEST_F(AttestorCacheTest, ExecAfterAttestationIsAttestedAfresh) {
  // Same PID, same start time, new executable: the cached identity must not be reused.
  auto attestor = make();
  auto child = testing::TestProcess::spawn(testing::python(
      "import os, signal\nsignal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])\nprint('ok', flush=True)\n"
      "signal.sigwait([signal.SIGUSR1])\nos.execv('/usr/bin/sleep', ['sleep', '60'])"));
  ASSERT_EQ(child->read_line(), "ok");
  auto before = attestor->attest_pidfd(child->pidfd());
  ASSERT_TRUE(before.ok()) << before.error().message;
  EXPECT_EQ(before->attributes->exe_path, testing::real_path(testing::kPython));
  ::kill(child->pid(), SIGUSR1);
  ASSERT_TRUE(child->wait_for_exe("/usr/bin/sleep"));
  auto after = attestor->attest_pidfd(child->pidfd());
  ASSERT_TRUE(after.ok()) << after.error().message;
  EXPECT_EQ(after->attributes->start_time, before->attributes->start_time);
  EXPECT_EQ(after->attributes->exe_path, "/usr/bin/sleep");
  EXPECT_NE(after->attributes->exe_sha256, before->attributes->exe_sha256);
  EXPECT_EQ(stat("cache_stale"), 1);
  EXPECT_EQ(stat("cache_hits"), 0);
  EXPECT_EQ(attestor->cached_processes(), 1u);
}

TEST_F(AttestorCacheTest, ConcurrentCallersAgreeOnOneProcess) {
  auto attestor = make();
  auto child = testing::TestProcess::spawn({"/usr/bin/sleep", "60"});
  ASSERT_TRUE(child->wait_for_exe("/usr/bin/sleep"));
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  std::vector<std::shared_ptr<const ProcessAttributes>> seen(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        auto a = attestor->attest_pidfd(child->pidfd());
        if (!a.ok() || a->attributes->pid != child->pid()) failures++;
        if (a.ok()) seen[t] = a->attributes;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(attestor->cached_processes(), 1u);
  EXPECT_GE(stat("cache_hits"), 196);  // at most one miss per thread while the first entry lands
  for (const auto& a : seen) EXPECT_EQ(a->exe_path, "/usr/bin/sleep");
}

}  // namespace
}  // namespace portcullis::attest::kernel
