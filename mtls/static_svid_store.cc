#include "mtls/static_svid_store.h"

#include <spdlog/spdlog.h>

#include "mtls/static_identity.h"

namespace portcullis::mtls {

Result<std::unique_ptr<StaticSvidStore>> StaticSvidStore::create(IdentityConfig config, StatsStore& stats) {
  auto loaded = load_static_identity(config);
  if (!loaded.ok()) return loaded.error();
  std::unique_ptr<StaticSvidStore> store(new StaticSvidStore(std::move(config), IdentityStats::create(stats)));
  store->publish(std::move(loaded->snapshot), std::move(loaded->source_digest));
  spdlog::info("identity: {} from static files", store->current()->default_svid()->spiffe_id);
  return store;
}

bool StaticSvidStore::reload() {
  auto loaded = load_static_identity(config_);
  if (!loaded.ok()) {
    // Several file events for one broken state fail the same way: count and log it once.
    if (loaded.error().message != last_error_) {
      stats_.rotation_failures.inc();
      spdlog::error("identity rotation kept the previous SVID: {}", loaded.error().message);
    }
    last_error_ = loaded.error().message;
    return false;
  }
  last_error_.clear();
  if (loaded->source_digest == digest_) return false;
  publish(std::move(loaded->snapshot), std::move(loaded->source_digest));
  stats_.rotations.inc();
  spdlog::info("identity rotated: {} version {}", current()->default_svid()->spiffe_id, version_);
  watchers_.notify(version_);
  return true;
}

void StaticSvidStore::publish(std::shared_ptr<IdentitySnapshot> snapshot, std::string digest) {
  snapshot->version = ++version_;
  snapshot->built_at = std::chrono::system_clock::now();
  stats_.version.set(static_cast<int64_t>(version_));
  stats_.trust_domains.set(static_cast<int64_t>(snapshot->bundles.size()));
  stats_.svid_not_after.set(std::chrono::duration_cast<std::chrono::seconds>(
                                snapshot->default_svid()->not_after.time_since_epoch()).count());
  snapshot_.store(std::move(snapshot));
  digest_ = std::move(digest);
}

std::vector<std::string> StaticSvidStore::watched_files() const {
  std::vector<std::string> out;
  auto add = [&](const DataSource& ds) {
    if (ds.is_file()) out.push_back(ds.filename);
  };
  add(config_.certificate_chain);
  add(config_.private_key);
  add(config_.trust_bundle);
  if (config_.jwt_signing_key) add(*config_.jwt_signing_key);
  for (const auto& [td, ds] : config_.federated_bundles) add(ds);
  return out;
}

}  // namespace portcullis::mtls
