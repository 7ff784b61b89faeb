// ExitWatcher against real processes: fires promptly on a kill, once, and never after unwatch.
#include "attest/kernel/exit_watcher.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

#include "test_process.h"

namespace portcullis::attest::kernel {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::shared_ptr<const UniquePidfd> pidfd_of(const testing::TestProcess& p) {
  auto fd = dup_pidfd(p.pidfd());
  EXPECT_TRUE(fd.ok());
  return std::make_shared<const UniquePidfd>(std::move(*fd));
}

struct Latch {
  std::mutex mu;
  std::condition_variable cv;
  int fired = 0;
  Clock::time_point at;
  void hit() {
    std::lock_guard lock(mu);
    ++fired;
    at = Clock::now();
    cv.notify_all();
  }
  bool wait(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, timeout, [&] { return fired > 0; });
  }
};

TEST(ExitWatcher, FiresWithin100msOfAKill) {
  auto watcher = ExitWatcher::create();
  ASSERT_TRUE(watcher.ok()) << watcher.error().message;
  auto child = testing::TestProcess::spawn({"/usr/bin/sleep", "60"});
  ASSERT_TRUE(child);
  Latch latch;
  auto id = (*watcher)->watch(pidfd_of(*child), [&] { latch.hit(); });
  ASSERT_TRUE(id.ok());
  EXPECT_NE(*id, 0u);
  EXPECT_FALSE(latch.wait(50ms)) << "fired while the process lives";
  auto killed_at = Clock::now();
  ::kill(child->pid(), SIGKILL);  // not reaped: a zombie's pidfd is readable too
  ASSERT_TRUE(latch.wait(2s));
  auto latency = std::chrono::duration_cast<std::chrono::milliseconds>(latch.at - killed_at);
  EXPECT_LT(latency.count(), 100) << "exit seen after " << latency.count() << " ms";
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(latch.fired, 1);
  EXPECT_EQ((*watcher)->size(), 0u);
}

TEST(ExitWatcher, UnwatchedNeverFiresAndOthersStillDo) {
  auto watcher = ExitWatcher::create();
  ASSERT_TRUE(watcher.ok());
  auto a = testing::TestProcess::spawn({"/usr/bin/sleep", "60"});
  auto b = testing::TestProcess::spawn({"/usr/bin/sleep", "60"});
  ASSERT_TRUE(a && b);
  Latch la, lb, lb2;
  auto ida = (*watcher)->watch(pidfd_of(*a), [&] { la.hit(); });
  auto idb = (*watcher)->watch(pidfd_of(*b), [&] { lb.hit(); });
  auto idb2 = (*watcher)->watch(pidfd_of(*b), [&] { lb2.hit(); });  // two watches of one process
  ASSERT_TRUE(ida.ok() && idb.ok() && idb2.ok());
  (*watcher)->unwatch(*ida);
  a->kill_and_reap();
  b->kill_and_reap();
  EXPECT_TRUE(lb.wait(2s));
  EXPECT_TRUE(lb2.wait(2s));
  EXPECT_FALSE(la.wait(100ms));
  (*watcher)->unwatch(*idb);  // already fired: ignored
  (*watcher)->unwatch(12345);
}

TEST(ExitWatcher, AnAlreadyExitedProcessFiresAtOnce) {
  auto watcher = ExitWatcher::create();
  ASSERT_TRUE(watcher.ok());
  auto child = testing::TestProcess::spawn({"/usr/bin/true"});
  ASSERT_TRUE(child);
  auto fd = pidfd_of(*child);
  child->kill_and_reap();
  Latch latch;
  ASSERT_TRUE((*watcher)->watch(fd, [&] { latch.hit(); }).ok());
  EXPECT_TRUE(latch.wait(1s));
}

TEST(ExitWatcher, CallbackMayUnwatchAndDestructorDropsPendingWatches) {
  std::atomic<int> fired{0};
  auto live = testing::TestProcess::spawn({"/usr/bin/sleep", "60"});
  auto dying = testing::TestProcess::spawn({"/usr/bin/sleep", "60"});
  ASSERT_TRUE(live && dying);
  {
    auto watcher = ExitWatcher::create();
    ASSERT_TRUE(watcher.ok());
    ExitWatcher* w = watcher->get();
    Latch latch;
    uint64_t self_id = 0;
    auto id = w->watch(pidfd_of(*dying), [&] {
      w->unwatch(self_id);  // from the watcher thread: must not deadlock
      latch.hit();
    });
    ASSERT_TRUE(id.ok());
    self_id = *id;
    ASSERT_TRUE(w->watch(pidfd_of(*live), [&] { fired++; }).ok());
    dying->kill_and_reap();
    ASSERT_TRUE(latch.wait(2s));
  }
  live->kill_and_reap();
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(fired.load(), 0);
}

TEST(ExitWatcher, RejectsAMissingPidfd) {
  auto watcher = ExitWatcher::create();
  ASSERT_TRUE(watcher.ok());
  EXPECT_FALSE((*watcher)->watch(nullptr, [] {}).ok());
  EXPECT_FALSE((*watcher)->watch(std::make_shared<const UniquePidfd>(), [] {}).ok());
}

}  // namespace
}  // namespace portcullis::attest::kernel
