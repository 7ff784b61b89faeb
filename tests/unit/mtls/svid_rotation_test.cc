// Rotation of a static identity with real files and inotify, the way the proxy drives it: wait for
// the watcher's fd, let the burst settle, reload(), and see watchers notified once per change.
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "identity_files.h"
#include "mtls/static_svid_store.h"

namespace portcullis::mtls {
namespace {

using namespace std::chrono_literals;
using testing::IdentityFiles;
using testing::leaf_for;
using testing::must;
using testing::wait_for_files;

constexpr auto kEventTimeout = 5s;

class SvidRotationTest : public ::testing::Test {
 protected:
  void start(const IdentityConfig& config) {
    auto store = StaticSvidStore::create(config, stats_);
    ASSERT_TRUE(store.ok()) << store.error().message;
    store_ = std::move(store.value());
    auto watcher = config::FileWatcher::create(store_->watched_files());
    ASSERT_TRUE(watcher.ok());
    watcher_.emplace(std::move(watcher.value()));
    subscription_ = store_->subscribe([this](uint64_t version) {
      notified_.fetch_add(1);
      last_version_ = version;
    });
  }
  // rotate waits for the file events, then reloads as the proxy's timer would.
  bool rotate() {
    EXPECT_TRUE(wait_for_files(*watcher_, kEventTimeout));
    return store_->reload();
  }
  int64_t stat(const std::string& name) const { return stats_.value("identity." + name).value_or(-1); }
  std::string serving() const { return store_->current()->default_svid()->chain_pem(); }

  IdentityFiles files_;
  StatsStore stats_;
  std::unique_ptr<StaticSvidStore> store_;
  std::optional<config::FileWatcher> watcher_;
  SvidSubscription subscription_;
  std::atomic<int> notified_{0};
  uint64_t last_version_ = 0;
};

TEST_F(SvidRotationTest, AtomicRenamePublishesOnceAndBrokenFilesKeepTheOldSnapshot) {
  files_.write_all(files_.leaf, files_.ca);
  start(files_.config());
  auto next = must(mint_certificate(leaf_for("spiffe://example.org/web"), &files_.ca));
  files_.write_atomically("cert.pem", next.cert_pem());
  files_.write_atomically("key.pem", next.key_pem());
  ASSERT_TRUE(rotate()) << store_->last_error();
  EXPECT_EQ(serving(), next.cert_pem());
  EXPECT_EQ(notified_.load(), 1);
  EXPECT_EQ(last_version_, 2u);
  EXPECT_EQ(stat("rotations"), 1);

  // Touching a file without changing it publishes nothing.
  files_.write_atomically("bundle.pem", files_.ca.cert_pem());
  EXPECT_FALSE(rotate());
  EXPECT_EQ(notified_.load(), 1);

  // A broken certificate keeps the previous snapshot; the same breakage is counted once.
  files_.write_atomically("cert.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
  EXPECT_FALSE(rotate());
  EXPECT_EQ(serving(), next.cert_pem());
  EXPECT_EQ(stat("rotation_failures"), 1);
  files_.write_atomically("bundle.pem", files_.ca.cert_pem());
  EXPECT_FALSE(rotate());
  EXPECT_EQ(stat("rotation_failures"), 1);

  // A new certificate whose key has not arrived yet is a mismatch: kept, counted, then healed.
  auto third = must(mint_certificate(leaf_for("spiffe://example.org/web"), &files_.ca));
  files_.write_atomically("cert.pem", third.cert_pem());
  EXPECT_FALSE(rotate());
  EXPECT_NE(store_->last_error().find("does not match"), std::string::npos) << store_->last_error();
  EXPECT_EQ(stat("rotation_failures"), 2);
  files_.write_atomically("key.pem", third.key_pem());
  ASSERT_TRUE(rotate()) << store_->last_error();
  EXPECT_EQ(serving(), third.cert_pem());
  EXPECT_EQ(notified_.load(), 2);
  EXPECT_EQ(store_->current()->version, 3u);
}

// Kubernetes projects a secret as `dir/..data -> ..<timestamp>/` plus `dir/cert.pem ->
// ..data/cert.pem`, and updates it by pointing `..data` at a new directory with one rename.
TEST_F(SvidRotationTest, KubernetesSymlinkSwapIsOneRotation) {
  namespace fs = std::filesystem;
  auto project = [&](const std::string& version, const MintedCert& svid) {
    fs::create_directory(files_.path(version));
    files_.write_atomically(version + "/cert.pem", svid.cert_pem());
    files_.write_atomically(version + "/key.pem", svid.key_pem());
    files_.write_atomically(version + "/bundle.pem", files_.ca.cert_pem());
    files_.write_atomically(version + "/jwt.pem", files_.jwt.key_pem());
    fs::create_symlink(version, files_.path("..data_tmp"));
    fs::rename(files_.path("..data_tmp"), files_.path("..data"));
  };
  project("..v1", files_.leaf);
  for (const char* f : {"cert.pem", "key.pem", "bundle.pem", "jwt.pem"}) {
    fs::create_symlink(std::string("..data/") + f, files_.path(f));
  }
  start(files_.config());
  auto next = must(mint_certificate(leaf_for("spiffe://example.org/web"), &files_.ca));
  project("..v2", next);
  ASSERT_TRUE(rotate()) << store_->last_error();
  EXPECT_EQ(serving(), next.cert_pem());
  EXPECT_EQ(notified_.load(), 1);
  EXPECT_EQ(stat("rotation_failures"), 0);
}

TEST_F(SvidRotationTest, SubscriptionEndsWithItsHandle) {
  files_.write_all(files_.leaf, files_.ca);
  start(files_.config());
  int second = 0;
  SvidSubscription self_ending;
  self_ending = store_->subscribe([&](uint64_t) {
    ++second;
    self_ending.reset();  // a callback may end its own subscription
  });
  EXPECT_EQ(store_->watcher_count(), 2u);
  auto next = must(mint_certificate(leaf_for("spiffe://example.org/web"), &files_.ca));
  files_.write_atomically("cert.pem", next.cert_pem());
  files_.write_atomically("key.pem", next.key_pem());
  ASSERT_TRUE(rotate());
  EXPECT_EQ(second, 1);
  EXPECT_EQ(store_->watcher_count(), 1u);
  subscription_.reset();
  EXPECT_EQ(store_->watcher_count(), 0u);
  auto third = must(mint_certificate(leaf_for("spiffe://example.org/web"), &files_.ca));
  files_.write_atomically("cert.pem", third.cert_pem());
  files_.write_atomically("key.pem", third.key_pem());
  ASSERT_TRUE(rotate());
  EXPECT_EQ(notified_.load(), 1);
  EXPECT_EQ(second, 1);
}

}  // namespace
}  // namespace portcullis::mtls
