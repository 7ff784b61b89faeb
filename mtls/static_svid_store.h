#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/stats.h"
#include "common/stats_macros.h"
#include "mtls/identity_config.h"
#include "mtls/svid_store.h"

namespace portcullis::mtls {

// `identity.` stats of the static identity source.
#define PORTCULLIS_IDENTITY_STATS(COUNTER, GAUGE) \
  COUNTER(rotation_failures)                      \
  COUNTER(rotations)                              \
  GAUGE(svid_not_after)                           \
  GAUGE(trust_domains)                            \
  GAUGE(version)

struct IdentityStats {
  PORTCULLIS_IDENTITY_STATS(PORTCULLIS_DECLARE_COUNTER, PORTCULLIS_DECLARE_GAUGE)
  static IdentityStats create(StatsStore& store) {
    StatScope scope{"identity", "", ""};
    return IdentityStats{PORTCULLIS_IDENTITY_STATS(PORTCULLIS_MAKE_COUNTER, PORTCULLIS_MAKE_GAUGE)};
  }
};

// StaticSvidStore is the SvidStore of `identity: {static: ...}`: one SVID, its bundles and the JWT
// signer, all from files. Every caller gets the same snapshot.
//
// Rotation works as for the TLS files: the owner watches watched_files() with a
// config::FileWatcher (directories, so atomic renames and Kubernetes' `..data` symlink swaps are
// seen), debounces the events on its loop and calls reload(). A reload that reads the same bytes
// publishes nothing; a broken or mismatched set of files keeps the current snapshot, counts
// `identity.rotation_failures` and logs, once per distinct error (a half-written pair fails the
// same way on every event until the second file lands).
class StaticSvidStore final : public SvidStore {
 public:
  // create loads and validates every file (see load_static_identity); fails with the file and the
  // reason, so a sidecar never starts with an identity it cannot serve.
  static Result<std::unique_ptr<StaticSvidStore>> create(IdentityConfig config, StatsStore& stats);

  std::shared_ptr<const IdentitySnapshot> current() const override { return snapshot_.load(); }
  std::shared_ptr<const IdentitySnapshot> for_caller(const CallerInfo&) const override { return snapshot_.load(); }
  SvidSubscription subscribe(Callback callback) override { return watchers_.subscribe(std::move(callback)); }

  // reload re-reads the files. Returns true when it published a new snapshot (and notified every
  // watcher, on this thread, before returning); false when nothing changed or the files were
  // rejected (last_error() says why). Call from one thread at a time: the main thread.
  bool reload();
  const std::string& last_error() const { return last_error_; }
  std::vector<std::string> watched_files() const;
  const IdentityConfig& config() const { return config_; }
  size_t watcher_count() const { return watchers_.size(); }

 private:
  StaticSvidStore(IdentityConfig config, IdentityStats stats) : config_(std::move(config)), stats_(stats) {}
  void publish(std::shared_ptr<IdentitySnapshot> snapshot, std::string digest);

  IdentityConfig config_;
  IdentityStats stats_;
  SvidWatchers watchers_;
  std::atomic<std::shared_ptr<const IdentitySnapshot>> snapshot_;
  std::string digest_;      // of the published snapshot's sources; main thread only
  std::string last_error_;  // main thread only
  uint64_t version_ = 0;
};

}  // namespace portcullis::mtls
