#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/stats.h"
#include "common/stats_macros.h"
#include "mtls/svid_store.h"

namespace portcullis::attest::agent {

// `identity.attested.` stats of the store.
#define PORTCULLIS_ATTESTED_STORE_STATS(COUNTER, GAUGE) \
  COUNTER(bundle_regressions)                           \
  COUNTER(bundle_updates)                               \
  COUNTER(expired_dropped)                              \
  COUNTER(publications)                                 \
  GAUGE(svids)                                          \
  GAUGE(workloads)

struct AttestedStoreStats {
  PORTCULLIS_ATTESTED_STORE_STATS(PORTCULLIS_DECLARE_COUNTER, PORTCULLIS_DECLARE_GAUGE)
  static AttestedStoreStats create(StatsStore& store) {
    StatScope scope{"identity.attested", "", ""};
    return AttestedStoreStats{PORTCULLIS_ATTESTED_STORE_STATS(PORTCULLIS_MAKE_COUNTER, PORTCULLIS_MAKE_GAUGE)};
  }
};

// AttestedSvidStore is the SvidStore of an attested identity: the SVIDs of many local workloads
// at once, each keyed by the selector set kernel attestation gave its processes (sorted, unique
// strings "unix:uid:1000", ...), plus the node's own SVID and the trust bundle.
//
// Views:
//  - for_caller(c) is the view of the workload whose selector set equals c.selectors: its SVIDs
//    (first = default, in entry-id order as the authority answered) and the bundles; null when the
//    agent holds no SVID for that set (not attested yet, no entry matched, or all expired). When
//    `fallback_spiffe_id` is set and held by some workload, an unmatched caller gets a view with
//    that one SVID instead (`identity.unattested_fallback`).
//  - current() is the NODE's own identity: the node SVID and the bundles (null before node
//    attestation). It is what the sidecar presents where no local workload is involved (its own
//    admin/authority connections, SDS `default` with no attested caller) and what readiness and
//    trust anchors read; per-workload TLS goes through for_caller().
// Every view holds only SVIDs whose not_after is in the future when it was built; the writer
// (WorkloadAgent) calls drop_expired() at each not_after, so an expired SVID is never served.
//
// Threading: reads are lock-free (one atomic shared_ptr load of an immutable State holding every
// prebuilt view) and callable from any thread. Writers are the agent's loop only (the main
// thread); each write builds a new State, publishes it, then notifies watchers on that thread.
class AttestedSvidStore final : public mtls::SvidStore {
 public:
  AttestedSvidStore(std::string trust_domain, mtls::JwtValidateOptions jwt_validation, StatsStore& stats,
                    std::string fallback_spiffe_id = "");

  std::shared_ptr<const mtls::IdentitySnapshot> current() const override;
  std::shared_ptr<const mtls::IdentitySnapshot> for_caller(const mtls::CallerInfo& caller) const override;
  mtls::SvidSubscription subscribe(Callback callback) override { return watchers_.subscribe(std::move(callback)); }

  // Writers (agent loop only). Each publishes a new version and notifies when something changed.
  //
  // update_bundle installs the own trust domain's bundle unless its sequence number is below the
  // current one (kept; counted as bundle_regressions, returns false). An equal sequence is a no-op.
  bool update_bundle(std::shared_ptr<const mtls::TrustBundle> bundle);
  void set_node_svid(mtls::X509Svid svid);
  // set_workload replaces the SVIDs of one selector set (empty `svids` removes it).
  void set_workload(const std::vector<std::string>& selectors, std::vector<mtls::X509Svid> svids);
  void remove_workload(const std::vector<std::string>& selectors) { set_workload(selectors, {}); }
  // JwtMinterFactory makes the minter of one workload's view (it mints for that selector set).
  using JwtMinterFactory = std::function<std::shared_ptr<const mtls::JwtMinter>(const std::vector<std::string>& selectors)>;
  // set_jwt_minter_factory: how Workload API callers get JWT-SVIDs (unset: they cannot).
  void set_jwt_minter_factory(JwtMinterFactory factory);
  // drop_expired removes every SVID with not_after <= now (node included); returns how many.
  size_t drop_expired(std::chrono::system_clock::time_point now);
  // next_expiry is the earliest not_after held, if any.
  std::optional<std::chrono::system_clock::time_point> next_expiry() const;

  // The writer's own state (agent loop only, like the writers).
  std::shared_ptr<const mtls::TrustBundle> bundle() const;
  std::shared_ptr<const mtls::X509Svid> node_svid() const;
  size_t workload_count() const;

 private:
  struct State;
  // publish builds and publishes a new State: only the view of `only` is rebuilt when given, every
  // view otherwise (the bundle, the node SVID, the minter or several workloads changed).
  void publish(const std::vector<std::string>* only = nullptr);

  const std::string trust_domain_;
  const mtls::JwtValidateOptions jwt_validation_;
  const std::string fallback_spiffe_id_;
  AttestedStoreStats stats_;
  mtls::SvidWatchers watchers_;
  std::atomic<std::shared_ptr<const State>> state_;
  // The writer's sources; the agent loop only.
  std::shared_ptr<const mtls::TrustBundle> bundle_;
  std::shared_ptr<const mtls::X509Svid> node_svid_;
  std::map<std::vector<std::string>, std::vector<std::shared_ptr<const mtls::X509Svid>>> workloads_;
  JwtMinterFactory jwt_minter_factory_;
  uint64_t version_ = 0;
};

}  // namespace portcullis::attest::agent
