#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/audit.h"
#include "common/grpc/service_registry.h"
#include "common/stats.h"
#include "common/stats_macros.h"
#include "mtls/caller_resolver.h"
#include "mtls/svid_store.h"
#include "spiffe/workload/workload.pb.h"

namespace portcullis::attest {

// `workload_api.` stats. Calls are counted per method on arrival; the rest by outcome.
#define PORTCULLIS_WORKLOAD_API_STATS(COUNTER, GAUGE) \
  COUNTER(fetch_jwt_bundles)                          \
  COUNTER(fetch_jwt_svid)                             \
  COUNTER(fetch_x509_bundles)                         \
  COUNTER(fetch_x509_svid)                            \
  COUNTER(invalid_argument)                           \
  COUNTER(jwt_svids_issued)                           \
  COUNTER(jwt_validation_failed)                      \
  COUNTER(permission_denied)                          \
  COUNTER(pushes)                                     \
  COUNTER(pushes_skipped)                             \
  COUNTER(security_header_missing)                    \
  COUNTER(unavailable)                                \
  COUNTER(validate_jwt_svid)                          \
  COUNTER(x509_svids_issued)                          \
  GAUGE(streams_active)

struct WorkloadApiStats {
  PORTCULLIS_WORKLOAD_API_STATS(PORTCULLIS_DECLARE_COUNTER, PORTCULLIS_DECLARE_GAUGE)
  static WorkloadApiStats create(StatsStore& store);
};

// WorkloadApiService is the SPIFFE Workload API (`SpiffeWorkloadAPI`, no package; wire facts §4)
// served from an SvidStore:
//  - every call needs exactly one `workload.spiffe.io: true` header, else INVALID_ARGUMENT;
//  - the caller is the peer process of the call's connection (SO_PEERCRED pid/uid/gid), and
//    gets store.for_caller(caller): none -> PERMISSION_DENIED "no identity issued", store not
//    ready -> UNAVAILABLE;
//  - the three streams send the full state at once, then again on every store publication
//    whose result for this caller differs (proto-equal pushes are skipped, as SPIRE does); a
//    caller whose identity is withdrawn gets PERMISSION_DENIED and the stream ends;
//  - every X.509-SVID sent and JWT-SVID minted is an audit record naming the caller.
//
// Threading: handlers run on the call's loop; store callbacks (main thread) only post to the
// streams' loops. Lifetime: shared; open streams keep the service alive, and stop following the
// store when they end. The store and audit log must outlive the service and its calls.
class WorkloadApiService : public std::enable_shared_from_this<WorkloadApiService> {
 public:
  static constexpr std::string_view kServiceName = "SpiffeWorkloadAPI";
  static constexpr std::string_view kSecurityHeader = "workload.spiffe.io";

  // `audit` may be null (no audit block).
  // `resolve_caller` attests each call's peer (null: SO_PEERCRED only, enough for a static store).
  static std::shared_ptr<WorkloadApiService> create(std::shared_ptr<mtls::SvidStore> store, StatsStore& stats,
                                                    AuditLog* audit, mtls::CallerResolver resolve_caller = nullptr);
  // register_with adds the five methods to `registry`.
  static Status register_with(const std::shared_ptr<WorkloadApiService>& self, grpc::ServiceRegistry& registry);

  const WorkloadApiStats& stats() const { return stats_; }

  WorkloadApiService(std::shared_ptr<mtls::SvidStore> store, WorkloadApiStats stats, AuditLog* audit,
                     mtls::CallerResolver resolve_caller = nullptr)
      : store_(std::move(store)), stats_(stats), audit_(audit), resolve_caller_(std::move(resolve_caller)) {}

 private:
  // caller attests the call's peer (the installed resolver, or SO_PEERCRED).
  mtls::CallerInfo caller(const grpc::ServerCallContext& ctx) const;
  template <typename Resp>
  struct Stream;
  template <typename Resp>
  using Builder = grpc::GrpcResult<Resp> (*)(const mtls::IdentitySnapshot&);

  // check_header: exactly one `workload.spiffe.io: true`, else INVALID_ARGUMENT (counted).
  grpc::GrpcStatus check_header(const grpc::ServerCallContext& ctx) const;
  // check_call verifies the security header, then resolves the caller's view of the store.
  grpc::GrpcResult<std::shared_ptr<const mtls::IdentitySnapshot>> check_call(const grpc::ServerCallContext& ctx) const;
  grpc::GrpcResult<std::shared_ptr<const mtls::IdentitySnapshot>> view_for(const grpc::ServerCallContext& ctx) const;
  grpc::GrpcStatus count(grpc::GrpcStatus status) const;

  template <typename Resp>
  void serve_stream(grpc::ServerWriter<Resp> writer, Builder<Resp> build);
  template <typename Resp>
  void push(const std::shared_ptr<Stream<Resp>>& stream);
  template <typename Resp>
  bool send(Stream<Resp>& stream, const grpc::ServerWriter<Resp>& writer, Resp response);

  // fetch_jwt_svid mints with the view's jwt_signer inline, or asks its jwt_minter (the
  // authority) and replies when every token is back.
  void fetch_jwt_svid(const grpc::ServerCallContext& ctx, const JWTSVIDRequest& req,
                      grpc::UnaryReply<JWTSVIDResponse> reply);
  void mint_remotely(const grpc::ServerCallContext& ctx, const mtls::IdentitySnapshot& snap,
                     const std::vector<const mtls::X509Svid*>& subjects, std::vector<std::string> audience,
                     std::string reason, grpc::UnaryReply<JWTSVIDResponse> reply);
  grpc::GrpcResult<ValidateJWTSVIDResponse> validate_jwt_svid(const grpc::ServerCallContext& ctx,
                                                             const ValidateJWTSVIDRequest& req);
  void audit_issue(const grpc::ServerCallContext& ctx, const std::string& spiffe_id, const std::string& serial,
                   const char* kind, std::string reason) const;

  std::shared_ptr<mtls::SvidStore> store_;
  WorkloadApiStats stats_;
  AuditLog* audit_;
  mtls::CallerResolver resolve_caller_;
};

// caller_of returns the CallerInfo of a call's peer: pid/uid/gid for Unix-socket peers, empty
// for TCP ones.
mtls::CallerInfo caller_of(const grpc::ServerCallContext& ctx);

}  // namespace portcullis::attest
