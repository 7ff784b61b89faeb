#include "attest/authority/authority_service.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "attest/authority/authority_messages.h"

namespace portcullis::attest::authority {
namespace {

using grpc::GrpcResult;
using grpc::GrpcStatus;
using grpc::ServerCallContext;
using grpc::StatusCode;

constexpr const char* kAuthorityPrefix = "/portcullis.authority.v1.Authority/";
constexpr const char* kAdminPrefix = "/portcullis.authority.v1.AuthorityAdmin/";

template <typename T>
GrpcResult<T> to_grpc(Result<T> result) {
  if (!result.ok()) return grpc::to_grpc_status(result.error());
  return std::move(result.value());
}

std::string path(const char* prefix, const char* method) { return std::string(prefix) + method; }

// add_admin registers one AuthorityAdmin method: the uid check, then `fn` (on the core).
template <typename Req, typename Resp, typename Fn>
Status add_admin(grpc::ServiceRegistry& registry, const std::shared_ptr<AuthorityService>& self, const char* method,
                 Fn fn) {
  return registry.add_unary<Req, Resp>(path(kAdminPrefix, method),
                                       [self, fn](const ServerCallContext& ctx, const Req& req) -> GrpcResult<Resp> {
                                         if (GrpcStatus denied = self->admin_check(ctx); !denied.ok()) return denied;
                                         return fn(req);
                                       });
}

}  // namespace

AuthorityServiceStats AuthorityServiceStats::create(StatsStore& store) {
  StatScope scope{"authority_service", "", ""};
  return AuthorityServiceStats{PORTCULLIS_AUTHORITY_SERVICE_STATS(PORTCULLIS_MAKE_COUNTER, PORTCULLIS_MAKE_GAUGE)};
}

AuthorityService::AuthorityService(std::shared_ptr<AuthorityCore> core, std::vector<uid_t> admin_uids,
                                   StatsStore& stats, AuditLog* audit)
    : core_(std::move(core)), admin_uids_(std::move(admin_uids)), stats_(AuthorityServiceStats::create(stats)),
      audit_(audit) {}

void AuthorityService::audit_denied(const ServerCallContext& ctx, const std::string& reason) {
  spdlog::debug("authority: {} refused: {}", ctx.method, reason);
  if (!audit_) return;
  AuditRecord r;
  r.listener = ctx.method.starts_with(kAdminPrefix) ? "authority_admin" : "authority";
  r.decision = "deny";
  r.policy = ctx.method;
  r.reason = reason;
  if (ctx.peer) {
    r.peer_address = ctx.peer->address;
    if (ctx.peer->tls) {
      r.peer_spiffe_id = ctx.peer->tls->spiffe_id;
      r.cert_serial = ctx.peer->tls->serial;
    }
    if (ctx.peer->credentials) {
      r.caller_pid = ctx.peer->credentials->pid;
      r.caller_uid = ctx.peer->credentials->uid;
      r.caller_gid = ctx.peer->credentials->gid;
    }
  }
  audit_->record(std::move(r));
}

GrpcResult<std::string> AuthorityService::node_of(const ServerCallContext& ctx) {
  stats_.node_calls.inc();
  if (!ctx.peer || !ctx.peer->tls) {
    stats_.unauthenticated.inc();
    audit_denied(ctx, "no client certificate");
    return GrpcStatus{StatusCode::kUnauthenticated, "this call needs a node SVID (mTLS client certificate); attest first"};
  }
  if (!core_->node_allowed(*ctx.peer->tls)) {
    stats_.node_denied.inc();
    audit_denied(ctx, "not a live node SVID of this authority");
    return GrpcStatus{StatusCode::kPermissionDenied,
                      "the client certificate is not a node SVID issued by this authority, or it was revoked"};
  }
  return ctx.peer->tls->spiffe_id;
}

GrpcStatus AuthorityService::admin_check(const ServerCallContext& ctx) {
  stats_.admin_calls.inc();
  if (!ctx.peer || !ctx.peer->credentials) {
    stats_.admin_denied.inc();
    audit_denied(ctx, "admin call without Unix peer credentials");
    return GrpcStatus{StatusCode::kPermissionDenied, "the admin API is served on the admin Unix socket only"};
  }
  uid_t uid = ctx.peer->credentials->uid;
  if (uid != 0 && std::find(admin_uids_.begin(), admin_uids_.end(), uid) == admin_uids_.end()) {
    stats_.admin_denied.inc();
    audit_denied(ctx, "uid " + std::to_string(uid) + " is not an admin");
    return GrpcStatus{StatusCode::kPermissionDenied,
                      "uid " + std::to_string(uid) + " may not administer this authority (admin_uids)"};
  }
  return GrpcStatus::Ok();
}

void AuthorityService::watch(const v1::WatchUpdatesRequest&, grpc::ServerWriter<v1::AuthorityUpdate> writer) {
  auto node = node_of(writer.context());
  if (!node.ok()) return writer.finish(node.status());
  // The feed holds the call weakly: a stream that ended must not be kept alive by the feed.
  std::weak_ptr<grpc::ServerCall> weak = writer.call();
  // A full revocation set grows with every exit; in one message it would outgrow what sidecars
  // accept, and every reconnect would fail the same way: revocations would stop reaching anyone.
  const size_t max_bytes = core_->options().limits.max_update_bytes;
  auto subscription = core_->watch([weak, max_bytes](const v1::AuthorityUpdate& update) {
    auto call = weak.lock();
    if (!call) return;
    auto pieces = std::make_shared<const std::vector<v1::AuthorityUpdate>>(split_update(update, max_bytes));
    grpc::ServerWriter<v1::AuthorityUpdate>(std::move(call)).post([pieces](const grpc::ServerWriter<v1::AuthorityUpdate>& w) {
      for (const auto& piece : *pieces) {
        if (!w.write(piece)) return;  // the client stopped reading; the transport ended the call
      }
    });
  });
  if (!subscription.ok()) return writer.finish(grpc::to_grpc_status(subscription.error()));
  stats_.watch_streams.inc();
  auto held = std::make_shared<Subscription>(std::move(subscription.value()));
  writer.on_done([held](const GrpcStatus&) { held->reset(); });
}

Status AuthorityService::register_authority(const std::shared_ptr<AuthorityService>& self, grpc::ServiceRegistry& r) {
  using Ctx = ServerCallContext;
  Status s = r.add_unary<v1::AttestNodeRequest, v1::AttestNodeResponse>(
      path(kAuthorityPrefix, "AttestNode"),
      [self](const Ctx&, const v1::AttestNodeRequest& req) { return to_grpc(self->core_->attest_node(req)); });
  if (!s.ok()) return s;
  // The node calls: identity first, then the core with the caller's node ID.
  auto node_call = [&]<typename Req, typename Resp>(const char* method,
                                                    Result<Resp> (AuthorityCore::*fn)(std::string_view, const Req&)) {
    return r.add_unary<Req, Resp>(path(kAuthorityPrefix, method), [self, fn](const Ctx& ctx, const Req& req) -> GrpcResult<Resp> {
      auto node = self->node_of(ctx);
      if (!node.ok()) return node.status();
      return to_grpc(((*self->core_).*fn)(node.value(), req));
    });
  };
  if (s = node_call("RenewNode", &AuthorityCore::renew_node); !s.ok()) return s;
  if (s = node_call("SignWorkloadSvids", &AuthorityCore::sign_workload_svids); !s.ok()) return s;
  if (s = node_call("MintJwtSvid", &AuthorityCore::mint_jwt_svid); !s.ok()) return s;
  if (s = node_call("RevokeSvids", &AuthorityCore::revoke); !s.ok()) return s;
  return r.add_server_streaming<v1::WatchUpdatesRequest, v1::AuthorityUpdate>(
      path(kAuthorityPrefix, "WatchUpdates"),
      [self](const v1::WatchUpdatesRequest& req, grpc::ServerWriter<v1::AuthorityUpdate> w) { self->watch(req, std::move(w)); });
}

Status AuthorityService::register_admin(const std::shared_ptr<AuthorityService>& self, grpc::ServiceRegistry& r) {
  AuthorityCore& core = *self->core_;  // alive as long as `self`, which every handler holds
  Status s = add_admin<v1::CreateEntryRequest, v1::RegistrationEntry>(
      r, self, "CreateEntry", [&core](const v1::CreateEntryRequest& q) { return to_grpc(core.create_entry(q.entry())); });
  if (s.ok()) {
    s = add_admin<v1::UpdateEntryRequest, v1::RegistrationEntry>(
        r, self, "UpdateEntry", [&core](const v1::UpdateEntryRequest& q) { return to_grpc(core.update_entry(q.entry())); });
  }
  if (s.ok()) {
    s = add_admin<v1::DeleteEntryRequest, v1::DeleteEntryResponse>(
        r, self, "DeleteEntry", [&core](const v1::DeleteEntryRequest& q) -> GrpcResult<v1::DeleteEntryResponse> {
          if (Status d = core.delete_entry(q.id()); !d.ok()) return grpc::to_grpc_status(d.error());
          return v1::DeleteEntryResponse{};
        });
  }
  if (s.ok()) {
    s = add_admin<v1::GetEntryRequest, v1::RegistrationEntry>(
        r, self, "GetEntry", [&core](const v1::GetEntryRequest& q) { return to_grpc(core.get_entry(q.id())); });
  }
  if (s.ok()) {
    s = add_admin<v1::ListEntriesRequest, v1::ListEntriesResponse>(
        r, self, "ListEntries", [&core](const v1::ListEntriesRequest&) { return GrpcResult(core.list_entries()); });
  }
  if (s.ok()) {
    s = add_admin<v1::GenerateJoinTokenRequest, v1::GenerateJoinTokenResponse>(
        r, self, "GenerateJoinToken",
        [&core](const v1::GenerateJoinTokenRequest& q) { return to_grpc(core.generate_join_token(q.ttl_seconds())); });
  }
  if (s.ok()) {
    s = add_admin<v1::GetBundleRequest, v1::Bundle>(r, self, "GetBundle",
                                                   [&core](const v1::GetBundleRequest&) { return GrpcResult(core.bundle()); });
  }
  if (s.ok()) {
    s = add_admin<v1::EvictNodeRequest, v1::EvictNodeResponse>(
        r, self, "EvictNode", [&core](const v1::EvictNodeRequest& q) -> GrpcResult<v1::EvictNodeResponse> {
          auto revoked = core.evict_node(q.node_id(), q.reason());
          if (!revoked.ok()) return grpc::to_grpc_status(revoked.error());
          v1::EvictNodeResponse out;
          out.set_revoked(*revoked);
          return out;
        });
  }
  return s;
}

}  // namespace portcullis::attest::authority
