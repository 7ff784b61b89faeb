#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "attest/agent/agent_config.h"
#include "attest/agent/attested_svid_store.h"
#include "attest/agent/authority_jwt_minter.h"
#include "attest/agent/authority_api.h"
#include "attest/agent/backoff.h"
#include "attest/agent/timer.h"
#include "attest/kernel/exit_watcher.h"
#include "attest/kernel/kernel_attestor.h"
#include "common/audit.h"
#include "common/grpc/call_context.h"
#include "common/stats.h"
#include "common/stats_macros.h"
#include "mtls/revocation_set.h"

namespace portcullis::attest::agent {

// `agent.` stats.
#define PORTCULLIS_AGENT_STATS(COUNTER, GAUGE) \
  COUNTER(authority_errors)                    \
  GAUGE(authority_reachable)                   \
  COUNTER(bad_responses)                       \
  COUNTER(bundle_updates)                      \
  GAUGE(live_processes)                        \
  COUNTER(node_attestations)                   \
  COUNTER(node_renewals)                       \
  GAUGE(node_svid_not_after)                   \
  COUNTER(requests_deduplicated)               \
  COUNTER(revocation_updates)                  \
  COUNTER(stream_reconnects)                   \
  COUNTER(svids_expired)                       \
  COUNTER(svids_issued)                        \
  COUNTER(svids_renewed)                       \
  COUNTER(svids_revoked_on_exit)               \
  COUNTER(unmatched_workloads)                 \
  COUNTER(workloads_rejected)

struct AgentStats {
  PORTCULLIS_AGENT_STATS(PORTCULLIS_DECLARE_COUNTER, PORTCULLIS_DECLARE_GAUGE)
  static AgentStats create(StatsStore& store) {
    StatScope scope{"agent", "", ""};
    return AgentStats{PORTCULLIS_AGENT_STATS(PORTCULLIS_MAKE_COUNTER, PORTCULLIS_MAKE_GAUGE)};
  }
};

// Readiness is what /ready reports for the attested identity. `ready` is false until the node is
// attested and after its SVID expired; while the authority is unreachable the sidecar stays ready
// (it serves unexpired SVIDs) and `reason` says since when and until when that holds.
struct Readiness {
  bool ready = false;
  std::string reason;  // empty when ready and nothing to report
};

// WorkloadAgent is the sidecar half of identity issuance.
//
//  - start(): node attestation (a fresh in-memory key; join token for a remote authority), then
//    the WatchUpdates stream (bundle updates → the store; revocations → `revocations`) and node
//    SVID renewal. Failures retry with capped, jittered exponential backoff.
//  - ensure_workload(attestation): the SVIDs of the attested process's selector set, fetched once
//    per selector set (concurrent requests for the same set share one SignWorkloadSvids call) with
//    fresh in-memory keys, stored in the AttestedSvidStore, renewed at rotate_at × TTL (± jitter)
//    and dropped at not_after if renewal keeps failing. Each process is remembered by its pidfd
//    (pid + start time), and its exit is watched; a process whose pidfd cannot be watched is
//    refused (its SVIDs could never be revoked). An unmatched set is answered from memory for
//    limits.unmatched_retry; a caller arriving before node attestation waits at most
//    limits.call_timeout.
//  - Exit: when the LAST live process of a selector set exits, every unexpired serial issued for
//    that set is revoked at the authority ("workload exited") and the set leaves the store. While
//    another process with the same selectors lives, the SVIDs stay: the two are indistinguishable
//    to attestation, hold the same SVIDs, and revoking would cut the survivor's live connections.
//
// Threading: every method, and every callback it receives, runs on `loop` (the main thread);
// readiness() is also callable from any thread. The agent must be destroyed on the loop; callbacks
// that arrive later are ignored. The ExitWatcher's thread only posts to `loop`.
class WorkloadAgent {
 public:
  struct Deps {
    AuthorityApi& api;
    Timer& timer;
    grpc::Executor& loop;
    kernel::ExitWatcher& exits;
    AttestedSvidStore& store;
    mtls::RevocationPublisher* revocations = nullptr;  // null: revocations are not applied locally
    StatsStore& stats;
    AuditLog* audit = nullptr;
  };
  // Done receives the caller's view: its SVIDs, or the fallback view, or null (no entry matched,
  // or the authority could not be asked; the caller is refused).
  using Done = std::function<void(std::shared_ptr<const mtls::IdentitySnapshot>)>;

  WorkloadAgent(AgentConfig config, Deps deps);
  ~WorkloadAgent();
  WorkloadAgent(const WorkloadAgent&) = delete;
  WorkloadAgent& operator=(const WorkloadAgent&) = delete;

  void start();
  // ensure_workload: `done` runs on the loop, never inline.
  void ensure_workload(const kernel::Attestation& attestation, Done done);
  Readiness readiness() const { return *readiness_.load(); }
  // live_processes: attested processes being watched (any thread).
  size_t live_processes() const { return static_cast<size_t>(stats_.live_processes.value()); }

 private:
  using Selectors = std::vector<std::string>;
  using ProcessKey = std::pair<pid_t, uint64_t>;  // pid + start time: unique for the boot
  struct IssuedSerial {
    std::string serial;
    std::string spiffe_id;
    std::chrono::system_clock::time_point not_after;
  };
  struct Workload {
    std::set<ProcessKey> processes;
    std::vector<Done> waiting;
    std::vector<IssuedSerial> serials;  // every unexpired serial ever issued to this set
    bool in_flight = false;
    bool issued = false;  // holds SVIDs in the store
    std::chrono::system_clock::time_point retry_after{};  // unmatched or failed: answer null until
    uint64_t generation = 0;  // bumped per issuance; stale rotation timers compare it
    std::unique_ptr<Backoff> backoff;
  };
  struct Process {
    Selectors selectors;
    uint64_t watch_id = 0;
  };

  // Node (agent_node.cc).
  void attest_node();
  void on_node_svid(const v1::X509Svid& svid, bssl::UniquePtr<EVP_PKEY> key, bool renewal);
  void renew_node();
  void schedule_node_renewal();
  void open_stream();
  void on_update(v1::AuthorityUpdate update);
  void on_stream_end(const grpc::GrpcStatus& status);
  bool apply_bundle(const v1::Bundle& bundle);
  void on_expiry_timer();
  void schedule_expiry();
  // Workloads (workload_agent.cc).
  void request_svids(const Selectors& selectors, uint32_t count);
  void on_svids(const Selectors& selectors, uint64_t generation, std::vector<bssl::UniquePtr<EVP_PKEY>> keys,
                grpc::GrpcResult<v1::SignWorkloadSvidsResponse> result);
  void issuance_failed(const Selectors& selectors, Workload& w, const std::string& why);
  void renew(const Selectors& selectors);
  void schedule_rotation(const Selectors& selectors, Workload& w, std::chrono::system_clock::time_point not_after);
  void answer(Workload& w, std::shared_ptr<const mtls::IdentitySnapshot> view);
  void on_process_exit(ProcessKey key);
  void revoke(std::vector<IssuedSerial> serials, std::string reason);
  void flush_revocations();
  // Shared.
  void authority_ok();
  void authority_failed(const grpc::GrpcStatus& status, const std::string& what);
  void update_readiness();
  void audit(const std::string& decision, const std::string& spiffe_id, const std::string& serial,
             const std::string& reason);
  // guard wraps a callback so it does nothing once the agent is gone.
  template <typename F>
  auto guard(F fn) {
    return [weak = std::weak_ptr<bool>(alive_), fn = std::move(fn)](auto&&... args) mutable {
      if (weak.lock()) fn(std::forward<decltype(args)>(args)...);
    };
  }
  std::chrono::milliseconds until(std::chrono::system_clock::time_point t) const;

  AgentConfig config_;
  Deps deps_;
  AgentStats stats_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::atomic<std::shared_ptr<const Readiness>> readiness_;

  // Node state.
  bool node_attesting_ = false;
  bool node_expired_ = false;
  std::string node_error_;
  uint64_t node_generation_ = 0;
  Backoff node_backoff_;
  std::unique_ptr<UpdateStream> stream_;
  Backoff stream_backoff_;
  std::optional<std::chrono::system_clock::time_point> unreachable_since_;
  size_t expired_while_unreachable_ = 0;  // workload sets whose SVIDs ran out during this outage (/ready)
  std::optional<std::chrono::system_clock::time_point> expiry_armed_;

  std::map<Selectors, Workload> workloads_;
  std::map<ProcessKey, Process> processes_;
  std::vector<IssuedSerial> pending_revocations_;  // RevokeSvids that failed; retried with backoff
  std::string pending_reason_;
  bool revoking_ = false;
  Backoff revoke_backoff_;
  uint64_t request_ids_ = 0;
  std::shared_ptr<MintTarget> mint_target_;  // JWT minters of the store's views reach the api through it
};

}  // namespace portcullis::attest::agent
