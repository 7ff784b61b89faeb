// The node half of WorkloadAgent: node attestation and renewal, the update stream, expiry and
// readiness. The workload half is workload_agent.cc.
#include <ctime>
#include <random>

#include "attest/agent/svid_material.h"
#include "attest/agent/workload_agent.h"

namespace portcullis::attest::agent {
namespace {

using Clock = std::chrono::system_clock;

std::string utc(Clock::time_point t) {
  std::time_t tt = Clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

void WorkloadAgent::start() {
  stats_.authority_reachable.set(1);
  attest_node();
}

void WorkloadAgent::attest_node() {
  if (node_attesting_) return;
  auto kc = make_key_and_csr();
  if (!kc.ok()) {
    node_error_ = kc.error().message;
    update_readiness();
    deps_.timer.after(node_backoff_.next(), guard([this] { attest_node(); }));
    return;
  }
  node_attesting_ = true;
  v1::AttestNodeRequest req;
  if (deps_.api.needs_join_token()) req.set_join_token(config_.join_token);
  req.set_csr(std::move(kc->csr_der));
  auto key = std::make_shared<bssl::UniquePtr<EVP_PKEY>>(std::move(kc->key));
  deps_.api.attest_node(std::move(req), guard([this, key](grpc::GrpcResult<v1::AttestNodeResponse> result) {
    node_attesting_ = false;
    if (!result.ok()) {
      authority_failed(result.status(), "AttestNode");
      node_error_ = result.status().message;
      update_readiness();
      deps_.timer.after(node_backoff_.next(), guard([this] { attest_node(); }));
      return;
    }
    authority_ok();
    if (!apply_bundle(result.value().bundle())) {
      node_error_ = "authority sent an unusable bundle";
      update_readiness();
      deps_.timer.after(node_backoff_.next(), guard([this] { attest_node(); }));
      return;
    }
    stats_.node_attestations.inc();
    on_node_svid(result.value().svid(), std::move(*key), false);
  }));
}

void WorkloadAgent::on_node_svid(const v1::X509Svid& svid, bssl::UniquePtr<EVP_PKEY> key, bool renewal) {
  mtls::TrustBundleSet bundles;
  if (auto b = deps_.store.bundle()) bundles.add(b);
  auto parsed = svid_from_response(svid, std::move(key), bundles, deps_.timer.now());
  if (!parsed.ok()) {
    stats_.bad_responses.inc();
    node_error_ = parsed.error().message;
    update_readiness();
    deps_.timer.after(node_backoff_.next(), guard([this, renewal] { renewal ? renew_node() : attest_node(); }));
    return;
  }
  node_backoff_.reset();
  node_error_.clear();
  node_expired_ = false;
  auto not_after = parsed->not_after;
  stats_.node_svid_not_after.set(std::chrono::duration_cast<std::chrono::seconds>(not_after.time_since_epoch()).count());
  audit(renewal ? "node_svid_renewed" : "node_attested", parsed->spiffe_id, svid.serial(), "");
  auto creds = std::make_shared<NodeCredentials>();
  creds->node_svid = std::make_shared<const mtls::X509Svid>(clone_svid(*parsed));
  creds->authority_bundle = deps_.store.bundle();
  creds->server_spiffe_id = config_.authority ? config_.authority->server_spiffe_id : "";
  deps_.store.set_node_svid(std::move(parsed.value()));
  deps_.api.set_credentials(std::move(creds));
  ++node_generation_;
  schedule_node_renewal();
  schedule_expiry();
  update_readiness();
  if (!stream_) open_stream();
  flush_revocations();
  // Workloads that connected before the node was attested have been waiting for this.
  for (auto& [selectors, w] : workloads_) {
    if (!w.in_flight && !w.waiting.empty()) request_svids(selectors, config_.limits.initial_csrs);
  }
}

void WorkloadAgent::schedule_node_renewal() {
  auto svid = deps_.store.node_svid();
  if (!svid) return;
  auto ttl = std::chrono::duration_cast<std::chrono::milliseconds>(svid->not_after - deps_.timer.now());
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_real_distribution<double> jitter(-config_.limits.rotate_jitter, config_.limits.rotate_jitter);
  auto delay = std::chrono::milliseconds(
      static_cast<int64_t>(static_cast<double>(ttl.count()) * config_.rotate_at * (1.0 + jitter(rng))));
  uint64_t generation = node_generation_;
  deps_.timer.after(delay, guard([this, generation] {
    if (generation == node_generation_) renew_node();
  }));
}

void WorkloadAgent::renew_node() {
  if (!deps_.store.node_svid()) return attest_node();
  auto kc = make_key_and_csr();
  if (!kc.ok()) {
    deps_.timer.after(node_backoff_.next(), guard([this] { renew_node(); }));
    return;
  }
  v1::RenewNodeRequest req;
  req.set_csr(std::move(kc->csr_der));
  auto key = std::make_shared<bssl::UniquePtr<EVP_PKEY>>(std::move(kc->key));
  uint64_t generation = node_generation_;
  deps_.api.renew_node(std::move(req), guard([this, key, generation](grpc::GrpcResult<v1::RenewNodeResponse> result) {
    if (generation != node_generation_) return;
    if (!result.ok()) {
      authority_failed(result.status(), "RenewNode");
      node_error_ = result.status().message;
      deps_.timer.after(node_backoff_.next(), guard([this, generation] {
        if (generation == node_generation_) renew_node();
      }));
      return;
    }
    authority_ok();
    stats_.node_renewals.inc();
    on_node_svid(result.value().svid(), std::move(*key), true);
  }));
}

void WorkloadAgent::open_stream() {
  v1::WatchUpdatesRequest req;
  if (auto b = deps_.store.bundle()) req.set_known_bundle_sequence(b->sequence());
  stream_ = deps_.api.watch_updates(
      std::move(req), guard([this](v1::AuthorityUpdate update) { on_update(std::move(update)); }),
      guard([this](const grpc::GrpcStatus& status) { on_stream_end(status); }));
}

void WorkloadAgent::on_update(v1::AuthorityUpdate update) {
  authority_ok();
  stream_backoff_.reset();
  auto before = deps_.store.bundle();
  if (update.has_bundle() && apply_bundle(update.bundle()) && deps_.store.bundle() != before) {
    // The authority is verified by the bundle too: a CA rotation must reach the connection.
    auto creds = std::make_shared<NodeCredentials>();
    if (auto svid = deps_.store.node_svid()) creds->node_svid = std::make_shared<const mtls::X509Svid>(clone_svid(*svid));
    creds->authority_bundle = deps_.store.bundle();
    creds->server_spiffe_id = config_.authority ? config_.authority->server_spiffe_id : "";
    deps_.api.set_credentials(std::move(creds));
  }
  if (!deps_.revocations || (update.revocations_size() == 0 && !update.full_revocation_set())) return;
  std::vector<mtls::RevokedSerial> entries;
  for (const auto& r : update.revocations()) entries.push_back({r.serial(), r.expires_at(), r.spiffe_id()});
  int64_t now = std::chrono::duration_cast<std::chrono::seconds>(deps_.timer.now().time_since_epoch()).count();
  // Even a full set is added, not swapped in: it may arrive in several messages (the authority
  // splits big ones), and a swap would unrevoke the later pieces' serials until they came. The
  // authority never withdraws a revocation; what we hold leaves when its certificate expires.
  Status s = deps_.revocations->add(std::move(entries), now);
  if (!s.ok()) {
    stats_.bad_responses.inc();
    audit("authority_error", "", "", "revocation update rejected: " + s.error().message);
    return;
  }
  stats_.revocation_updates.inc();
}

void WorkloadAgent::on_stream_end(const grpc::GrpcStatus& status) {
  authority_failed(status.ok() ? grpc::GrpcStatus{grpc::StatusCode::kUnavailable, "stream ended"} : status,
                   "WatchUpdates");
  // Destroying the stream inside its own callback is not allowed: hand it to a posted task.
  deps_.loop.post([s = std::shared_ptr<UpdateStream>(std::move(stream_))] {});
  deps_.timer.after(stream_backoff_.next(), guard([this] {
    if (stream_ || !deps_.store.node_svid()) return;
    stats_.stream_reconnects.inc();
    open_stream();
  }));
}

bool WorkloadAgent::apply_bundle(const v1::Bundle& proto) {
  auto bundle = bundle_from_proto(proto);
  if (!bundle.ok() || (*bundle)->trust_domain() != config_.trust_domain) {
    stats_.bad_responses.inc();
    audit("authority_error", "", "", bundle.ok() ? "bundle for another trust domain" : bundle.error().message);
    return false;
  }
  auto current = deps_.store.bundle();
  if (current && (*bundle)->sequence() == current->sequence()) return true;
  if (!deps_.store.update_bundle(std::move(bundle.value()))) return false;  // older: kept ours
  stats_.bundle_updates.inc();
  return true;
}

void WorkloadAgent::schedule_expiry() {
  auto next = deps_.store.next_expiry();
  if (!next || (expiry_armed_ && *expiry_armed_ <= *next)) return;
  expiry_armed_ = *next;
  deps_.timer.after(until(*next), guard([this] {
    expiry_armed_.reset();
    on_expiry_timer();
  }));
}

void WorkloadAgent::on_expiry_timer() {
  size_t dropped = deps_.store.drop_expired(deps_.timer.now());
  stats_.svids_expired.inc(dropped);
  for (auto& [selectors, w] : workloads_) {
    if (w.issued && !deps_.store.for_caller(mtls::CallerInfo{.selectors = selectors})) {
      w.issued = false;
      if (unreachable_since_) ++expired_while_unreachable_;
    }
  }
  if (!deps_.store.node_svid() && !node_expired_ && !node_attesting_ && stats_.node_attestations.value() > 0) {
    node_expired_ = true;
    ++node_generation_;
    // The embedded authority attests its node again by being in-process; a join token is
    // one-time, so a remote node stays unready until an operator gives it a new one.
    if (!deps_.api.needs_join_token()) attest_node();
  }
  update_readiness();
  schedule_expiry();
}

void WorkloadAgent::update_readiness() {
  Readiness r;
  auto node = deps_.store.node_svid();
  if (node_expired_ && !node) {
    r.reason = "node SVID expired";
  } else if (!node) {
    r.reason = "waiting for node attestation" + (node_error_.empty() ? std::string() : ": " + node_error_);
  } else {
    r.ready = true;
    if (unreachable_since_) {
      auto until_t = deps_.store.next_expiry();
      r.reason = "authority unreachable since " + utc(*unreachable_since_) + ", SVIDs valid until " +
                 (until_t ? utc(*until_t) : std::string("-"));
      // The node SVID keeps the sidecar ready, but callers whose SVIDs ran out are refused: an
      // operator reading "valid until" must not take that for all of them.
      if (expired_while_unreachable_ > 0) {
        r.reason += "; the SVIDs of " + std::to_string(expired_while_unreachable_) +
                    " workload(s) expired meanwhile: their callers are refused until the authority is back";
      }
    }
  }
  readiness_.store(std::make_shared<const Readiness>(std::move(r)));
}

}  // namespace portcullis::attest::agent
