// ExeHasher: content hashes cached by file version, refused above the size limit.
#include "attest/kernel/exe_hasher.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <sys/stat.h>

#include "attest/kernel/pidfd.h"
#include "common/digest.h"

namespace portcullis::attest::kernel {
namespace {

class ExeHasherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/exe_hasher.XXXXXX";
    int fd = ::mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    ::close(fd);
    path_ = tmpl;
  }
  void TearDown() override { ::unlink(path_.c_str()); }

  // rewrite replaces the contents in place (same inode) and returns an fd open on it.
  UniqueFd rewrite(const std::string& contents) {
    int fd = ::open(path_.c_str(), O_RDWR | O_TRUNC | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::write(fd, contents.data(), contents.size()), static_cast<ssize_t>(contents.size()));
    return UniqueFd(fd);
  }
  int64_t stat(const std::string& leaf) { return stats_.value("workload_attestation.kernel." + leaf).value_or(-1); }

  std::string path_;
  StatsStore stats_;
  KernelAttestStats kstats_ = KernelAttestStats::create(stats_);
};

TEST_F(ExeHasherTest, HashesContentsAndCachesByFileVersion) {
  ExeHasher hasher(1 << 20, 8, kstats_);
  UniqueFd v1 = rewrite("first version");
  auto h1 = hasher.hash(v1.get());
  ASSERT_TRUE(h1.ok()) << h1.error().message;
  EXPECT_EQ(*h1, sha256_hex("first version"));
  ASSERT_TRUE(hasher.hash(v1.get()).ok());
  EXPECT_EQ(stat("exe_hash_computations"), 1);
  EXPECT_EQ(stat("exe_hash_cache_hits"), 1);

  UniqueFd v2 = rewrite("second version, same inode");
  auto h2 = hasher.hash(v2.get());
  ASSERT_TRUE(h2.ok());
  EXPECT_EQ(*h2, sha256_hex("second version, same inode"));
  EXPECT_EQ(stat("exe_hash_computations"), 2);
}

TEST_F(ExeHasherTest, SameSizeRewriteWithMtimeRestoredIsStillSeen) {
  ExeHasher hasher(1 << 20, 8, kstats_);
  UniqueFd v1 = rewrite("AAAA");
  struct stat before {};
  ASSERT_EQ(::fstat(v1.get(), &before), 0);
  ASSERT_TRUE(hasher.hash(v1.get()).ok());
  UniqueFd v2 = rewrite("BBBB");
  timespec times[2] = {before.st_atim, before.st_mtim};  // put mtime back, as `touch -d` would
  ASSERT_EQ(::futimens(v2.get(), times), 0);
  auto h = hasher.hash(v2.get());
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(*h, sha256_hex("BBBB")) << "ctime is part of the key";
}

TEST_F(ExeHasherTest, RefusesFilesAboveTheLimitAndNonRegularFiles) {
  ExeHasher hasher(10, 8, kstats_);
  UniqueFd big = rewrite("eleven byte");
  auto h = hasher.hash(big.get());
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.error().code, ErrorCode::kResourceExhausted);
  EXPECT_NE(h.error().message.find("max_exe_hash_bytes"), std::string::npos);
  EXPECT_EQ(stat("exe_hash_too_large"), 1);
  UniqueFd dir(::open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  EXPECT_FALSE(hasher.hash(dir.get()).ok());
  EXPECT_EQ(stat("exe_hash_failures"), 1);
}

TEST_F(ExeHasherTest, CacheIsBounded) {
  ExeHasher hasher(1 << 20, 2, kstats_);
  for (int i = 0; i < 5; ++i) {
    UniqueFd fd = rewrite("version " + std::to_string(i));
    ASSERT_TRUE(hasher.hash(fd.get()).ok());
  }
  EXPECT_EQ(hasher.cached(), 2u);
}

}  // namespace
}  // namespace portcullis::attest::kernel
