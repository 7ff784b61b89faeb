#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "attest/authority/authority_core.h"
#include "common/audit.h"
#include "common/grpc/service_registry.h"
#include "common/stats.h"
#include "common/stats_macros.h"

namespace portcullis::attest::authority {

// `authority_service.` stats: calls refused before reaching the core.
//  unauthenticated: an Authority call without a verified client SVID;
//  node_denied: a client SVID that is not a live node SVID of ours;
//  admin_denied: an AuthorityAdmin call from a uid not in {0} ∪ admin_uids (or not over a
//  Unix socket).
#define PORTCULLIS_AUTHORITY_SERVICE_STATS(COUNTER, GAUGE) \
  COUNTER(admin_calls)                                     \
  COUNTER(admin_denied)                                    \
  COUNTER(node_calls)                                      \
  COUNTER(node_denied)                                     \
  COUNTER(unauthenticated)                                 \
  COUNTER(watch_streams)

struct AuthorityServiceStats {
  PORTCULLIS_AUTHORITY_SERVICE_STATS(PORTCULLIS_DECLARE_COUNTER, PORTCULLIS_DECLARE_GAUGE)
  static AuthorityServiceStats create(StatsStore& store);
};

// AuthorityService puts an AuthorityCore on the wire: portcullis.authority.v1.Authority (served on
// the authority's TLS `listen` address) and portcullis.authority.v1.AuthorityAdmin (served on the
// admin Unix socket). It decides who the caller is; the core decides what the caller may have.
//
//  - Authority: AttestNode is open (it carries its own evidence). Every other call needs the
//    connection's verified client SVID (ServerCallContext::peer->tls) to be a node SVID the core
//    accepts (node_allowed): none -> UNAUTHENTICATED, not ours / not a node / revoked ->
//    PERMISSION_DENIED. The node ID passed to the core is that SVID's SPIFFE ID.
//  - AuthorityAdmin: the caller's SO_PEERCRED uid must be 0 or in `admin_uids`, else
//    PERMISSION_DENIED (audited with the uid and pid).
//
// Requests are validated by the core (INVALID_ARGUMENT). Handlers run on the call's loop and
// call the core synchronously (bounded by the request limits). Thread-safe; the registries'
// handlers keep the service alive, and it keeps the core alive. `audit` may be null and must
// outlive the service.
class AuthorityService : public std::enable_shared_from_this<AuthorityService> {
 public:
  static constexpr const char* kAuthorityServiceName = "portcullis.authority.v1.Authority";
  static constexpr const char* kAdminServiceName = "portcullis.authority.v1.AuthorityAdmin";

  AuthorityService(std::shared_ptr<AuthorityCore> core, std::vector<uid_t> admin_uids, StatsStore& stats,
                   AuditLog* audit);

  static Status register_authority(const std::shared_ptr<AuthorityService>& service, grpc::ServiceRegistry& registry);
  static Status register_admin(const std::shared_ptr<AuthorityService>& service, grpc::ServiceRegistry& registry);

  // node_of checks the call's node identity; the node ID, or the status to fail the call with.
  grpc::GrpcResult<std::string> node_of(const grpc::ServerCallContext& ctx);
  // admin_check: OK when the caller may use the admin API.
  grpc::GrpcStatus admin_check(const grpc::ServerCallContext& ctx);

  AuthorityCore& core() { return *core_; }

 private:
  void watch(const v1::WatchUpdatesRequest& request, grpc::ServerWriter<v1::AuthorityUpdate> writer);
  void audit_denied(const grpc::ServerCallContext& ctx, const std::string& reason);

  std::shared_ptr<AuthorityCore> core_;
  std::vector<uid_t> admin_uids_;
  AuthorityServiceStats stats_;
  AuditLog* audit_;
};

}  // namespace portcullis::attest::authority
