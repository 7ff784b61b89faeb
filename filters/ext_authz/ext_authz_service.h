#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "common/audit.h"
#include "common/grpc/service_registry.h"
#include "common/stats.h"
#include "common/stats_macros.h"
#include "envoy/service/auth/v3/external_auth.pb.h"
#include "filters/ext_authz/ext_authz_config.h"

namespace portcullis::filters {

// Stats of the ext_authz server, under `ext_authz_server.<stat_prefix>.` (Prometheus label
// envoy_ext_authz_server_prefix). allowed/denied/logged count enforced decisions as the network
// RBAC filter does (LOG: `logged` when a policy matched, else `allowed`); malformed_requests are
// also counted in `denied`; policy_updates counts rule snapshots swapped in by a reload.
#define PORTCULLIS_EXT_AUTHZ_SERVER_STATS(COUNTER, GAUGE) \
  COUNTER(allowed)                                        \
  COUNTER(denied)                                         \
  COUNTER(logged)                                         \
  COUNTER(malformed_requests)                             \
  COUNTER(policy_updates)                                 \
  COUNTER(shadow_allowed)                                 \
  COUNTER(shadow_denied)

struct ExtAuthzServerStats {
  PORTCULLIS_EXT_AUTHZ_SERVER_STATS(PORTCULLIS_DECLARE_COUNTER, PORTCULLIS_DECLARE_GAUGE)
  static ExtAuthzServerStats create(StatsStore& store, const std::string& stat_prefix);
};

// ExtAuthzService is Envoy's `envoy.service.auth.v3.Authorization/Check`: it evaluates the
// compiled RBAC policy against CheckRequest.attributes (source.principal as the authenticated
// SPIFFE ID, source/destination socket addresses, tls_session.sni, and the HTTP request through
// the engine's HTTP view) and answers
//   allowed -> status.code 0 (OK) with an empty ok_response;
//   denied  -> status.code 7 (PERMISSION_DENIED), denied_response {403, "RBAC: access denied"}.
// A CheckRequest that does not parse, or carries no attributes, is denied the same way but with
// status.code 3 (INVALID_ARGUMENT) and counted in malformed_requests. It is deliberately a
// CheckResponse and not a gRPC error: Envoy treats a failed RPC as an error, which
// `failure_mode_allow: true` turns into ALLOW, whereas a non-zero status.code is always a DENY
// (wire facts §2.4) — garbage must fail closed.
//
// Every decision bumps a stat and, when an AuditLog is given, writes an audit record.
// Thread-safe: check() runs on any worker; update() swaps the policy snapshot atomically (calls
// already evaluating keep the snapshot they loaded). `audit` must outlive the service.
class ExtAuthzService {
 public:
  static constexpr const char* kServiceName = "envoy.service.auth.v3.Authorization";
  static constexpr const char* kCheckPath = "/envoy.service.auth.v3.Authorization/Check";
  static constexpr const char* kDeniedBody = "RBAC: access denied";

  ExtAuthzService(std::string stat_prefix, std::shared_ptr<const ExtAuthzPolicy> policy, StatsStore& stats,
                  AuditLog* audit);

  // check decides one request (a parsed CheckRequest; nullptr = it did not parse).
  ::envoy::service::auth::v3::CheckResponse check(const ::envoy::service::auth::v3::CheckRequest* request) const;
  // update publishes a new policy for calls that start from now on.
  void update(std::shared_ptr<const ExtAuthzPolicy> policy);
  std::shared_ptr<const ExtAuthzPolicy> policy() const { return policy_.load(std::memory_order_acquire); }

  // register_with adds Check to `registry`; the handler keeps `service` alive.
  static Status register_with(const std::shared_ptr<ExtAuthzService>& service, grpc::ServiceRegistry& registry);

 private:
  struct Outcome;
  Outcome decide(const ::envoy::service::auth::v3::AttributeContext& attributes, const ExtAuthzPolicy& policy) const;
  void audit(const ::envoy::service::auth::v3::CheckRequest* request, const Outcome& outcome) const;

  std::string listener_name_;  // "ext_authz_server.<stat_prefix>", the audit records' `listener`
  std::atomic<std::shared_ptr<const ExtAuthzPolicy>> policy_;
  ExtAuthzServerStats stats_;
  AuditLog* audit_;
  mutable std::atomic<uint64_t> next_check_id_{1};
};

}  // namespace portcullis::filters
