#include "attest/agent/attested_svid_store.h"

#include "attest/agent/svid_material.h"

namespace portcullis::attest::agent {

using Snapshot = mtls::IdentitySnapshot;

// State is one publication: every view prebuilt, so a read is a map lookup with no copying.
struct AttestedSvidStore::State {
  std::shared_ptr<const Snapshot> node_view;
  std::map<std::vector<std::string>, std::shared_ptr<const Snapshot>> by_selectors;
  std::shared_ptr<const Snapshot> fallback_view;
};

AttestedSvidStore::AttestedSvidStore(std::string trust_domain, mtls::JwtValidateOptions jwt_validation,
                                     StatsStore& stats, std::string fallback_spiffe_id)
    : trust_domain_(std::move(trust_domain)),
      jwt_validation_(jwt_validation),
      fallback_spiffe_id_(std::move(fallback_spiffe_id)),
      stats_(AttestedStoreStats::create(stats)) {
  state_.store(std::make_shared<const State>());
}

std::shared_ptr<const Snapshot> AttestedSvidStore::current() const { return state_.load()->node_view; }

std::shared_ptr<const Snapshot> AttestedSvidStore::for_caller(const mtls::CallerInfo& caller) const {
  auto state = state_.load();
  auto it = state->by_selectors.find(caller.selectors);
  if (it != state->by_selectors.end()) return it->second;
  return state->fallback_view;
}

bool AttestedSvidStore::update_bundle(std::shared_ptr<const mtls::TrustBundle> bundle) {
  if (bundle_ && bundle->sequence() < bundle_->sequence()) {
    stats_.bundle_regressions.inc();
    return false;
  }
  if (bundle_ && bundle->sequence() == bundle_->sequence()) return true;
  bundle_ = std::move(bundle);
  stats_.bundle_updates.inc();
  publish();
  return true;
}

void AttestedSvidStore::set_node_svid(mtls::X509Svid svid) {
  node_svid_ = std::make_shared<const mtls::X509Svid>(std::move(svid));
  publish();
}

void AttestedSvidStore::set_workload(const std::vector<std::string>& selectors, std::vector<mtls::X509Svid> svids) {
  if (svids.empty()) {
    if (workloads_.erase(selectors) == 0) return;
  } else {
    auto& slot = workloads_[selectors];
    slot.clear();
    for (auto& s : svids) slot.push_back(std::make_shared<const mtls::X509Svid>(std::move(s)));
  }
  publish(&selectors);
}

void AttestedSvidStore::set_jwt_minter_factory(JwtMinterFactory factory) {
  jwt_minter_factory_ = std::move(factory);
  publish();
}

size_t AttestedSvidStore::drop_expired(std::chrono::system_clock::time_point now) {
  size_t dropped = 0;
  if (node_svid_ && node_svid_->not_after <= now) {
    node_svid_.reset();
    ++dropped;
  }
  for (auto it = workloads_.begin(); it != workloads_.end();) {
    auto& svids = it->second;
    size_t before = svids.size();
    std::erase_if(svids, [&](const auto& s) { return s->not_after <= now; });
    dropped += before - svids.size();
    it = svids.empty() ? workloads_.erase(it) : std::next(it);
  }
  if (dropped) {
    stats_.expired_dropped.inc(dropped);
    publish();
  }
  return dropped;
}

std::optional<std::chrono::system_clock::time_point> AttestedSvidStore::next_expiry() const {
  std::optional<std::chrono::system_clock::time_point> out;
  auto consider = [&](const mtls::X509Svid& s) {
    if (!out || s.not_after < *out) out = s.not_after;
  };
  if (node_svid_) consider(*node_svid_);
  for (const auto& [_, svids] : workloads_) {
    for (const auto& s : svids) consider(*s);
  }
  return out;
}

std::shared_ptr<const mtls::TrustBundle> AttestedSvidStore::bundle() const { return bundle_; }
std::shared_ptr<const mtls::X509Svid> AttestedSvidStore::node_svid() const { return node_svid_; }
size_t AttestedSvidStore::workload_count() const { return workloads_.size(); }

void AttestedSvidStore::publish(const std::vector<std::string>* only) {
  ++version_;
  auto now = std::chrono::system_clock::now();
  auto view = [&](const std::vector<const mtls::X509Svid*>& svids, const std::vector<std::string>* selectors) {
    auto snap = std::make_shared<Snapshot>();
    snap->version = version_;
    snap->built_at = now;
    snap->trust_domain = trust_domain_;
    for (const auto* s : svids) snap->svids.push_back(clone_svid(*s));
    if (bundle_) snap->bundles.add(bundle_);
    if (selectors && jwt_minter_factory_) snap->jwt_minter = jwt_minter_factory_(*selectors);
    snap->jwt_validation = jwt_validation_;
    return std::shared_ptr<const Snapshot>(std::move(snap));
  };
  auto build = [&](const std::vector<std::string>& selectors, const auto& svids) {
    std::vector<const mtls::X509Svid*> raw;
    for (const auto& s : svids) raw.push_back(s.get());
    return view(raw, &selectors);
  };
  auto previous = state_.load();
  auto state = std::make_shared<State>();
  // No bundle, no identity: a view that cannot verify peers must not make the sidecar look ready.
  if (node_svid_ && bundle_) state->node_view = view({node_svid_.get()}, nullptr);
  if (bundle_ && only) {
    // One workload changed: every other view is reused as it is (with many workloads, rebuilding
    // them all would make each issuance cost O(workloads)).
    state->by_selectors = previous->by_selectors;
    auto it = workloads_.find(*only);
    if (it == workloads_.end()) state->by_selectors.erase(*only);
    else state->by_selectors.insert_or_assign(*only, build(*only, it->second));
  } else if (bundle_) {
    for (const auto& [selectors, svids] : workloads_) state->by_selectors.emplace(selectors, build(selectors, svids));
  }
  size_t count = 0;
  for (const auto& [selectors, svids] : workloads_) {
    count += svids.size();
    for (const auto& s : svids) {
      if (bundle_ && !state->fallback_view && !fallback_spiffe_id_.empty() && s->spiffe_id == fallback_spiffe_id_) {
        state->fallback_view = view({s.get()}, &selectors);
      }
    }
  }
  stats_.svids.set(static_cast<int64_t>(count));
  stats_.workloads.set(static_cast<int64_t>(workloads_.size()));
  stats_.publications.inc();
  state_.store(std::move(state));
  watchers_.notify(version_);
}

}  // namespace portcullis::attest::agent
