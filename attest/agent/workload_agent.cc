#include "attest/agent/workload_agent.h"

#include <random>

#include "attest/agent/authority_jwt_minter.h"
#include "attest/agent/svid_material.h"

namespace portcullis::attest::agent {
namespace {

using Clock = std::chrono::system_clock;

// A transport failure (the authority could not be reached or did not answer) versus an answer.
bool unreachable(const grpc::GrpcStatus& s) {
  return s.code == grpc::StatusCode::kUnavailable || s.code == grpc::StatusCode::kDeadlineExceeded ||
         s.code == grpc::StatusCode::kCancelled;
}

}  // namespace

WorkloadAgent::WorkloadAgent(AgentConfig config, Deps deps)
    : config_(std::move(config)),
      deps_(deps),
      stats_(AgentStats::create(deps.stats)),
      node_backoff_(config_.limits.backoff_initial, config_.limits.backoff_max),
      stream_backoff_(config_.limits.backoff_initial, config_.limits.backoff_max),
      revoke_backoff_(config_.limits.backoff_initial, config_.limits.backoff_max) {
  readiness_.store(std::make_shared<const Readiness>(Readiness{false, "waiting for node attestation"}));
  mint_target_ = std::make_shared<MintTarget>(MintTarget{deps_.loop, deps_.api});
  deps_.store.set_jwt_minter_factory([weak = std::weak_ptr<MintTarget>(mint_target_)](const Selectors& selectors) {
    return std::make_shared<const AuthorityJwtMinter>(weak, selectors);
  });
}

WorkloadAgent::~WorkloadAgent() {
  alive_.reset();
  mint_target_->alive = false;
  stream_.reset();
  for (const auto& [_, p] : processes_) deps_.exits.unwatch(p.watch_id);
}

std::chrono::milliseconds WorkloadAgent::until(Clock::time_point t) const {
  auto d = std::chrono::duration_cast<std::chrono::milliseconds>(t - deps_.timer.now());
  return std::max(d, std::chrono::milliseconds(0));
}

void WorkloadAgent::ensure_workload(const kernel::Attestation& attestation, Done done) {
  const Selectors& selectors = attestation.selectors;
  ProcessKey key{attestation.attributes->pid, attestation.attributes->start_time};
  if (auto pit = processes_.find(key); pit != processes_.end() && pit->second.selectors != selectors) {
    // The same process under other selectors: it exec'd, or changed uid or cgroup. Its old image
    // is gone, as on exit; left registered under the old set, its exit would revoke only that one,
    // and the new set's SVIDs would never be revoked (and be renewed for ever).
    on_process_exit(key);
  }
  auto wit = workloads_.find(selectors);
  if (wit == workloads_.end() && workloads_.size() >= config_.limits.max_workloads) {
    stats_.workloads_rejected.inc();
    deps_.loop.post([done = std::move(done)] { done(nullptr); });
    return;
  }
  Workload& w = workloads_[selectors];
  if (!processes_.contains(key)) {
    auto watch = deps_.exits.watch(attestation.pidfd, [weak = std::weak_ptr<bool>(alive_), loop = &deps_.loop, this, key] {
      // The watcher's thread: only hand over to the loop.
      loop->post([weak, this, key] {
        if (weak.lock()) on_process_exit(key);
      });
    });
    if (!watch.ok()) {
      // A process whose exit we cannot see could never have its SVIDs revoked: refuse it.
      stats_.workloads_rejected.inc();
      if (w.processes.empty() && !w.issued && !w.in_flight) workloads_.erase(selectors);
      deps_.loop.post([done = std::move(done)] { done(nullptr); });
      return;
    }
    processes_.emplace(key, Process{selectors, watch.value()});
    w.processes.insert(key);
    stats_.live_processes.set(static_cast<int64_t>(processes_.size()));
  }
  if (w.issued) {
    deps_.loop.post([done = std::move(done), view = deps_.store.for_caller(mtls::CallerInfo{.selectors = selectors})] {
      done(view);
    });
    return;
  }
  if (!w.in_flight && deps_.timer.now() < w.retry_after) {
    deps_.loop.post([done = std::move(done), view = deps_.store.for_caller(mtls::CallerInfo{.selectors = selectors})] {
      done(view);
    });
    return;
  }
  w.waiting.push_back(std::move(done));
  if (w.in_flight) {
    stats_.requests_deduplicated.inc();
    return;
  }
  if (deps_.store.node_svid()) return request_svids(selectors, config_.limits.initial_csrs);
  // Before node attestation the request waits (attestation kicks every waiting set), but not
  // forever: a caller is refused after call_timeout rather than left hanging.
  deps_.timer.after(std::chrono::duration_cast<std::chrono::milliseconds>(config_.limits.call_timeout),
                    guard([this, selectors] {
                      auto it = workloads_.find(selectors);
                      if (it != workloads_.end() && !it->second.in_flight) answer(it->second, nullptr);
                    }));
}

void WorkloadAgent::request_svids(const Selectors& selectors, uint32_t count) {
  Workload& w = workloads_[selectors];
  w.in_flight = true;
  // Generations are unique across sets: a set erased on exit and re-created by a new process must
  // not accept the answer to the old set's request.
  uint64_t generation = w.generation = ++request_ids_;
  v1::SignWorkloadSvidsRequest req;
  v1::WorkloadCsrs* csrs = req.add_workloads();
  csrs->set_workload_key(std::to_string(generation));
  for (const auto& s : selectors) *csrs->add_selectors() = selector_to_proto(s);
  std::vector<bssl::UniquePtr<EVP_PKEY>> keys;
  for (uint32_t i = 0; i < count; ++i) {
    auto kc = make_key_and_csr();
    if (!kc.ok()) return issuance_failed(selectors, w, kc.error().message);
    csrs->add_csrs(std::move(kc->csr_der));
    keys.push_back(std::move(kc->key));
  }
  deps_.api.sign_workload_svids(
      std::move(req), guard([this, selectors, generation, keys = std::make_shared<decltype(keys)>(std::move(keys))](
                                grpc::GrpcResult<v1::SignWorkloadSvidsResponse> result) mutable {
        on_svids(selectors, generation, std::move(*keys), std::move(result));
      }));
}

void WorkloadAgent::on_svids(const Selectors& selectors, uint64_t generation, std::vector<bssl::UniquePtr<EVP_PKEY>> keys,
                             grpc::GrpcResult<v1::SignWorkloadSvidsResponse> result) {
  auto wit = workloads_.find(selectors);
  // An answer for a set whose last process exited meanwhile is dropped with its keys. Nothing
  // served those SVIDs and their keys never left this process, so they need no revocation.
  if (wit == workloads_.end() || wit->second.generation != generation) return;
  Workload& w = wit->second;
  w.in_flight = false;
  if (!result.ok()) {
    authority_failed(result.status(), "SignWorkloadSvids");
    return issuance_failed(selectors, w, result.status().message);
  }
  authority_ok();
  const auto& resp = result.value();
  if (resp.workloads_size() != 1) {
    stats_.bad_responses.inc();
    return issuance_failed(selectors, w, "authority answered for " + std::to_string(resp.workloads_size()) + " workloads");
  }
  const v1::WorkloadSvids& ws = resp.workloads(0);
  uint32_t wanted = std::min(ws.matched_entries(), config_.limits.max_svids_per_workload);
  if (static_cast<size_t>(ws.svids_size()) < wanted && keys.size() < wanted) {
    // More entries matched than we sent CSRs for: ask again with enough. This batch is dropped
    // with its keys (never served, so nothing to revoke).
    return request_svids(selectors, wanted);
  }
  if (ws.svids_size() == 0) {
    stats_.unmatched_workloads.inc();
    w.retry_after = deps_.timer.now() + config_.limits.unmatched_retry;
    w.issued = false;
    deps_.store.remove_workload(selectors);
    return answer(w, deps_.store.for_caller(mtls::CallerInfo{.selectors = selectors}));
  }
  if (static_cast<size_t>(ws.svids_size()) > keys.size()) {
    stats_.bad_responses.inc();
    return issuance_failed(selectors, w, "authority sent more SVIDs than CSRs");
  }
  mtls::TrustBundleSet bundles;
  if (auto b = deps_.store.bundle()) bundles.add(b);
  std::vector<mtls::X509Svid> svids;
  Clock::time_point earliest = Clock::time_point::max();
  for (int i = 0; i < ws.svids_size(); ++i) {
    auto svid = svid_from_response(ws.svids(i), std::move(keys[i]), bundles, deps_.timer.now());
    if (!svid.ok()) {
      stats_.bad_responses.inc();
      return issuance_failed(selectors, w, svid.error().message);
    }
    earliest = std::min(earliest, svid->not_after);
    w.serials.push_back({ws.svids(i).serial(), svid->spiffe_id, svid->not_after});
    bool renewal = w.issued;
    (renewal ? stats_.svids_renewed : stats_.svids_issued).inc();
    audit(renewal ? "svid_renewed" : "svid_issued", svid->spiffe_id, ws.svids(i).serial(),
          "entry " + ws.svids(i).entry_id());
    svids.push_back(std::move(svid.value()));
  }
  std::erase_if(w.serials, [&](const IssuedSerial& s) { return s.not_after <= deps_.timer.now(); });
  w.issued = true;
  w.backoff.reset();
  deps_.store.set_workload(selectors, std::move(svids));
  schedule_rotation(selectors, w, earliest);
  schedule_expiry();
  answer(w, deps_.store.for_caller(mtls::CallerInfo{.selectors = selectors}));
}

void WorkloadAgent::issuance_failed(const Selectors& selectors, Workload& w, const std::string& why) {
  w.in_flight = false;
  if (!w.backoff) w.backoff = std::make_unique<Backoff>(config_.limits.backoff_initial, config_.limits.backoff_max);
  auto delay = w.backoff->next();
  if (w.issued) {
    // A failed renewal: keep serving what we hold (until its not_after) and try again.
    uint64_t generation = w.generation;
    deps_.timer.after(delay, guard([this, selectors, generation] {
      auto it = workloads_.find(selectors);
      if (it != workloads_.end() && it->second.generation == generation && !it->second.in_flight) renew(selectors);
    }));
  } else {
    // A first issuance: the callers are refused now rather than left hanging; the next
    // connection after the backoff asks again.
    w.retry_after = deps_.timer.now() + delay;
  }
  audit("svid_request_failed", "", "", why);
  answer(w, deps_.store.for_caller(mtls::CallerInfo{.selectors = selectors}));
}

void WorkloadAgent::schedule_rotation(const Selectors& selectors, Workload& w, Clock::time_point not_after) {
  auto ttl = std::chrono::duration_cast<std::chrono::milliseconds>(not_after - deps_.timer.now());
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_real_distribution<double> jitter(-config_.limits.rotate_jitter, config_.limits.rotate_jitter);
  auto delay = std::chrono::milliseconds(static_cast<int64_t>(static_cast<double>(ttl.count()) * config_.rotate_at *
                                                              (1.0 + jitter(rng))));
  uint64_t generation = w.generation;
  deps_.timer.after(delay, guard([this, selectors, generation] {
    auto it = workloads_.find(selectors);
    if (it == workloads_.end() || it->second.generation != generation || it->second.in_flight) return;
    renew(selectors);
  }));
}

void WorkloadAgent::renew(const Selectors& selectors) {
  uint32_t count = 0;
  if (auto view = deps_.store.for_caller(mtls::CallerInfo{.selectors = selectors})) count = view->svids.size();
  request_svids(selectors, std::max(count, config_.limits.initial_csrs));
}

void WorkloadAgent::answer(Workload& w, std::shared_ptr<const mtls::IdentitySnapshot> view) {
  auto waiting = std::move(w.waiting);
  w.waiting.clear();
  for (auto& done : waiting) deps_.loop.post([done = std::move(done), view] { done(view); });
}

void WorkloadAgent::on_process_exit(ProcessKey key) {
  auto pit = processes_.find(key);
  if (pit == processes_.end()) return;
  Selectors selectors = pit->second.selectors;
  deps_.exits.unwatch(pit->second.watch_id);
  processes_.erase(pit);
  stats_.live_processes.set(static_cast<int64_t>(processes_.size()));
  auto wit = workloads_.find(selectors);
  if (wit == workloads_.end()) return;
  Workload& w = wit->second;
  w.processes.erase(key);
  if (!w.processes.empty()) return;  // a sibling with the same selectors still uses the SVIDs
  std::vector<IssuedSerial> serials;
  for (auto& s : w.serials) {
    if (s.not_after > deps_.timer.now()) serials.push_back(std::move(s));
  }
  answer(w, nullptr);
  workloads_.erase(wit);  // an in-flight answer finds no set and revokes what it got
  deps_.store.remove_workload(selectors);
  stats_.svids_revoked_on_exit.inc(serials.size());
  for (const auto& s : serials) audit("svid_revoked", s.spiffe_id, s.serial, "workload exited");
  if (!serials.empty()) revoke(std::move(serials), "workload exited");
}

void WorkloadAgent::revoke(std::vector<IssuedSerial> serials, std::string reason) {
  for (auto& s : serials) pending_revocations_.push_back(std::move(s));
  pending_reason_ = std::move(reason);
  flush_revocations();
}

void WorkloadAgent::flush_revocations() {
  std::erase_if(pending_revocations_, [&](const IssuedSerial& s) { return s.not_after <= deps_.timer.now(); });
  if (revoking_ || pending_revocations_.empty() || !deps_.store.node_svid()) return;
  revoking_ = true;
  auto batch = std::make_shared<std::vector<IssuedSerial>>(std::move(pending_revocations_));
  pending_revocations_.clear();
  v1::RevokeSvidsRequest req;
  for (const auto& s : *batch) req.add_serials(s.serial);
  req.set_reason(pending_reason_);
  deps_.api.revoke_svids(std::move(req), guard([this, batch](grpc::GrpcResult<v1::RevokeSvidsResponse> result) {
    revoking_ = false;
    if (result.ok()) {
      authority_ok();
      revoke_backoff_.reset();
      return flush_revocations();
    }
    authority_failed(result.status(), "RevokeSvids");
    if (!unreachable(result.status())) return flush_revocations();  // refused: retrying cannot help
    for (auto& s : *batch) pending_revocations_.push_back(std::move(s));
    deps_.timer.after(revoke_backoff_.next(), guard([this] { flush_revocations(); }));
  }));
}

void WorkloadAgent::authority_ok() {
  if (!unreachable_since_) return;
  unreachable_since_.reset();
  expired_while_unreachable_ = 0;
  stats_.authority_reachable.set(1);
  update_readiness();
}

void WorkloadAgent::authority_failed(const grpc::GrpcStatus& status, const std::string& what) {
  stats_.authority_errors.inc();
  audit("authority_error", "", "", what + ": " + grpc::status_code_name(status.code) + ": " + status.message);
  if (!unreachable(status) || unreachable_since_) return;
  unreachable_since_ = deps_.timer.now();
  stats_.authority_reachable.set(0);
  update_readiness();
}

void WorkloadAgent::audit(const std::string& decision, const std::string& spiffe_id, const std::string& serial,
                          const std::string& reason) {
  if (!deps_.audit) return;
  AuditRecord r;
  r.listener = "identity";
  r.peer_spiffe_id = spiffe_id;
  r.cert_serial = serial;
  r.decision = decision;
  r.reason = reason;
  deps_.audit->record(std::move(r));
}

}  // namespace portcullis::attest::agent
