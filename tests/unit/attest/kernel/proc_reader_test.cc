// /proc text parsing, and reading a live process through a pinned /proc/PID directory.
#include "attest/kernel/proc_reader.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include "test_process.h"

namespace portcullis::attest::kernel {
namespace {

TEST(ProcReader, StartTimeIsField22CountedAfterTheLastParenthesis) {
  // A command name with spaces and ")" must not shift the fields.
  std::string stat =
      "4242 (evil) 1 2 3) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 12345678 300 "
      "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n";
  auto start = parse_stat_start_time(stat);
  ASSERT_TRUE(start.ok()) << start.error().message;
  EXPECT_EQ(*start, 987654u);
  EXPECT_FALSE(parse_stat_start_time("4242 (x) S 1 2").ok());
  EXPECT_FALSE(parse_stat_start_time("no parenthesis at all").ok());
}

TEST(ProcReader, StatusCredentials) {
  std::string status =
      "Name:\tpython3\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t1000\t1234\t1234\t1234\nGid:\t100\t1235\t1235\t1235\n"
      "FDSize:\t64\nGroups:\t4 24 27 \nNStgid:\t77\n";
  auto c = parse_status_credentials(status);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->real_uid, 1000u);
  EXPECT_EQ(c->effective_uid, 1234u);
  EXPECT_EQ(c->real_gid, 100u);
  EXPECT_EQ(c->effective_gid, 1235u);
  EXPECT_EQ(c->groups, (std::vector<gid_t>{4, 24, 27}));
  EXPECT_FALSE(parse_status_credentials("Name:\tx\nGid:\t1\t1\t1\t1\nGroups:\t\n").ok());  // no Uid
  EXPECT_FALSE(parse_status_credentials("Uid:\t1\tx\nGid:\t1\t1\nGroups:\n").ok());
  EXPECT_FALSE(parse_status_credentials("Uid:\t1\t1\nGid:\t1\t1\nGroups:\t5 six\n").ok());
}

TEST(ProcReader, CgroupV2Line) {
  EXPECT_EQ(parse_cgroup_v2_path("12:memory:/a\n0::/system.slice/x.service\n"), "/system.slice/x.service");
  EXPECT_EQ(parse_cgroup_v2_path("0::/\n"), "/");
  EXPECT_EQ(parse_cgroup_v2_path("4:memory:/only/v1\n"), "");
}

TEST(ProcReader, ReadsThisProcess) {
  auto dir = ProcDir::open(::getpid());
  ASSERT_TRUE(dir.ok()) << dir.error().message;
  auto c = dir->credentials();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->effective_uid, ::geteuid());
  auto exe = dir->exe_path();
  ASSERT_TRUE(exe.ok());
  EXPECT_EQ(*exe, testing::real_path("/proc/self/exe"));
  EXPECT_TRUE(dir->start_time().ok());
  EXPECT_TRUE(dir->open_exe().ok());
}

TEST(ProcReader, APinnedDirectoryFailsOnceItsProcessIsReaped) {
  auto child = testing::TestProcess::spawn({"/usr/bin/sleep", "60"});
  ASSERT_TRUE(child);
  ASSERT_TRUE(child->wait_for_exe("/usr/bin/sleep"));
  auto dir = ProcDir::open(child->pid());
  ASSERT_TRUE(dir.ok());
  ASSERT_TRUE(dir->start_time().ok());
  child->kill_and_reap();
  auto after = dir->start_time();
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.error().code, ErrorCode::kNotFound) << after.error().message;
  EXPECT_FALSE(dir->credentials().ok());
  EXPECT_EQ(ProcDir::open(-5).error().code, ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace portcullis::attest::kernel
