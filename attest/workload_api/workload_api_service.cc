#include "attest/workload_api/workload_api_service.h"

#include <google/protobuf/util/message_differencer.h>
#include <spdlog/spdlog.h>

#include <optional>
#include <type_traits>

#include "attest/workload_api/workload_api_messages.h"
#include "mtls/spiffe_id.h"

namespace portcullis::attest {

using grpc::GrpcResult;
using grpc::GrpcStatus;
using grpc::ServerCallContext;
using grpc::ServerWriter;
using grpc::StatusCode;
using SnapshotPtr = std::shared_ptr<const mtls::IdentitySnapshot>;

namespace {

constexpr const char* kNoIdentity = "no identity issued";

GrpcResult<X509SVIDResponse> build_x509_svid(const mtls::IdentitySnapshot& s) { return x509_svid_response(s); }
GrpcResult<X509BundlesResponse> build_x509_bundles(const mtls::IdentitySnapshot& s) { return x509_bundles_response(s); }
GrpcResult<JWTBundlesResponse> build_jwt_bundles(const mtls::IdentitySnapshot& s) {
  auto out = jwt_bundles_response(s);
  if (!out.ok()) return GrpcStatus{StatusCode::kInternal, "cannot encode JWT bundles: " + out.error().message};
  return std::move(*out);
}

}  // namespace

// Stream is one open server stream and what it last sent. Owned by the call's on_done callback
// (so it lives exactly as long as the call) and referring to the call weakly, so that the two
// never form a cycle; the store callback only holds a weak reference to it.
template <typename Resp>
struct WorkloadApiService::Stream {
  Stream(const ServerWriter<Resp>& w, Builder<Resp> b) : call(w.call()), build(b) {}
  // writer is the live call's writer, or nullopt once the call is gone or done.
  std::optional<ServerWriter<Resp>> writer() const {
    auto c = call.lock();
    if (!c || c->done()) return std::nullopt;
    return ServerWriter<Resp>(std::move(c));
  }
  std::weak_ptr<grpc::ServerCall> call;
  Builder<Resp> build;
  std::optional<Resp> last;
  mtls::SvidSubscription subscription;
};

WorkloadApiStats WorkloadApiStats::create(StatsStore& store) {
  StatScope scope{"workload_api", "", ""};
  return WorkloadApiStats{PORTCULLIS_WORKLOAD_API_STATS(PORTCULLIS_MAKE_COUNTER, PORTCULLIS_MAKE_GAUGE)};
}

std::shared_ptr<WorkloadApiService> WorkloadApiService::create(std::shared_ptr<mtls::SvidStore> store,
                                                               StatsStore& stats, AuditLog* audit,
                                                               mtls::CallerResolver resolve_caller) {
  return std::make_shared<WorkloadApiService>(std::move(store), WorkloadApiStats::create(stats), audit,
                                              std::move(resolve_caller));
}

mtls::CallerInfo caller_of(const ServerCallContext& ctx) { return mtls::credentials_caller(ctx); }

mtls::CallerInfo WorkloadApiService::caller(const ServerCallContext& ctx) const {
  return resolve_caller_ ? resolve_caller_(ctx) : mtls::credentials_caller(ctx);
}

Status WorkloadApiService::register_with(const std::shared_ptr<WorkloadApiService>& self,
                                         grpc::ServiceRegistry& registry) {
  const std::string prefix = "/" + std::string(kServiceName) + "/";
  Status s = registry.add_server_streaming<X509SVIDRequest, X509SVIDResponse>(
      prefix + "FetchX509SVID", [self](const X509SVIDRequest&, ServerWriter<X509SVIDResponse> w) {
        self->stats_.fetch_x509_svid.inc();
        self->serve_stream(std::move(w), &build_x509_svid);
      });
  if (s.ok()) {
    s = registry.add_server_streaming<X509BundlesRequest, X509BundlesResponse>(
        prefix + "FetchX509Bundles", [self](const X509BundlesRequest&, ServerWriter<X509BundlesResponse> w) {
          self->stats_.fetch_x509_bundles.inc();
          self->serve_stream(std::move(w), &build_x509_bundles);
        });
  }
  if (s.ok()) {
    s = registry.add_server_streaming<JWTBundlesRequest, JWTBundlesResponse>(
        prefix + "FetchJWTBundles", [self](const JWTBundlesRequest&, ServerWriter<JWTBundlesResponse> w) {
          self->stats_.fetch_jwt_bundles.inc();
          self->serve_stream(std::move(w), &build_jwt_bundles);
        });
  }
  if (s.ok()) {
    s = registry.add_unary_async<JWTSVIDRequest, JWTSVIDResponse>(
        prefix + "FetchJWTSVID", [self](const ServerCallContext& ctx, const JWTSVIDRequest& req,
                                        grpc::UnaryReply<JWTSVIDResponse> reply) {
          self->fetch_jwt_svid(ctx, req, std::move(reply));
        });
  }
  if (s.ok()) {
    s = registry.add_unary<ValidateJWTSVIDRequest, ValidateJWTSVIDResponse>(
        prefix + "ValidateJWTSVID", [self](const ServerCallContext& ctx, const ValidateJWTSVIDRequest& req) {
          return self->validate_jwt_svid(ctx, req);
        });
  }
  return s;
}

GrpcStatus WorkloadApiService::count(GrpcStatus status) const {
  switch (status.code) {
    case StatusCode::kInvalidArgument: stats_.invalid_argument.inc(); break;
    case StatusCode::kPermissionDenied: stats_.permission_denied.inc(); break;
    case StatusCode::kUnavailable: stats_.unavailable.inc(); break;
    default: break;
  }
  return status;
}

GrpcStatus WorkloadApiService::check_header(const ServerCallContext& ctx) const {
  // SPIRE's rule: exactly one value, exactly "true" (case-sensitive).
  if (ctx.header_count(kSecurityHeader) == 1 && *ctx.header(kSecurityHeader) == "true") return GrpcStatus::Ok();
  stats_.security_header_missing.inc();
  return count(GrpcStatus{StatusCode::kInvalidArgument, "security header missing from request"});
}

GrpcResult<SnapshotPtr> WorkloadApiService::check_call(const ServerCallContext& ctx) const {
  if (GrpcStatus s = check_header(ctx); !s.ok()) return s;
  return view_for(ctx);
}

GrpcResult<SnapshotPtr> WorkloadApiService::view_for(const ServerCallContext& ctx) const {
  if (!store_->current()) return count(GrpcStatus{StatusCode::kUnavailable, "identity not ready yet"});
  SnapshotPtr view = store_->for_caller(caller(ctx));
  if (!view || view->svids.empty()) return count(GrpcStatus{StatusCode::kPermissionDenied, kNoIdentity});
  return view;
}

template <typename Resp>
void WorkloadApiService::serve_stream(ServerWriter<Resp> writer, Builder<Resp> build) {
  const ServerCallContext& ctx = writer.context();
  if (GrpcStatus s = check_header(ctx); !s.ok()) return writer.finish(std::move(s));
  auto stream = std::make_shared<Stream<Resp>>(writer, build);
  // Subscribe before reading the view, so a publication in between is not lost (at worst it
  // causes one proto-equal push, which is skipped).
  std::weak_ptr<Stream<Resp>> weak = stream;
  std::weak_ptr<WorkloadApiService> weak_self = weak_from_this();
  stream->subscription = store_->subscribe([executor = ctx.executor, weak, weak_self](uint64_t) {
    executor->post([weak, weak_self] {
      auto s = weak.lock();
      auto self = weak_self.lock();
      if (s && self) self->push(s);
    });
  });
  auto view = view_for(ctx);
  if (!view.ok()) return writer.finish(view.status());
  auto built = build(*view.value());
  if (!built.ok()) return writer.finish(built.status());
  stats_.streams_active.inc();
  writer.on_done([stream, self = shared_from_this()](const GrpcStatus&) {
    stream->subscription.reset();
    self->stats_.streams_active.dec();
  });
  send(*stream, writer, std::move(built.value()));
}

template <typename Resp>
void WorkloadApiService::push(const std::shared_ptr<Stream<Resp>>& stream) {
  auto writer = stream->writer();
  if (!writer) return;
  auto view = view_for(writer->context());
  if (!view.ok()) {
    // A withdrawn identity ends the stream (clients then drop the SVIDs); not-ready is transient.
    if (view.status().code == StatusCode::kPermissionDenied) writer->finish(view.status());
    return;
  }
  auto built = stream->build(*view.value());
  if (!built.ok()) {
    spdlog::warn("workload_api: cannot build an update for {}: {}", writer->context().method,
                 built.status().message);
    return;
  }
  if (send(*stream, *writer, std::move(built.value()))) stats_.pushes.inc();
}

template <typename Resp>
bool WorkloadApiService::send(Stream<Resp>& stream, const ServerWriter<Resp>& writer, Resp response) {
  if (stream.last && google::protobuf::util::MessageDifferencer::Equals(*stream.last, response)) {
    stats_.pushes_skipped.inc();
    return false;
  }
  if (!writer.write(response)) return false;  // the call is done (client gone, or too slow)
  if constexpr (std::is_same_v<Resp, X509SVIDResponse>) {
    for (const auto& svid : response.svids()) {
      stats_.x509_svids_issued.inc();
      audit_issue(writer.context(), svid.spiffe_id(), leaf_serial_hex(svid.x509_svid()), "x509_svid",
                  stream.last ? "FetchX509SVID update" : "FetchX509SVID");
    }
  }
  stream.last = std::move(response);
  return true;
}

void WorkloadApiService::fetch_jwt_svid(const ServerCallContext& ctx, const JWTSVIDRequest& req,
                                        grpc::UnaryReply<JWTSVIDResponse> reply) {
  stats_.fetch_jwt_svid.inc();
  auto view = check_call(ctx);
  if (!view.ok()) return reply(view.status());
  if (req.audience_size() == 0) return reply(count(GrpcStatus{StatusCode::kInvalidArgument, "audience must be specified"}));
  const mtls::IdentitySnapshot& snap = *view.value();
  if (!req.spiffe_id().empty()) {
    if (auto id = mtls::SpiffeId::parse(req.spiffe_id()); !id.ok()) {
      return reply(count(GrpcStatus{StatusCode::kInvalidArgument, "invalid requested SPIFFE ID: " + id.error().message}));
    }
  }
  if (!snap.jwt_signer && !snap.jwt_minter) {
    return reply(count(GrpcStatus{StatusCode::kUnavailable, "no JWT-SVID signing key configured"}));
  }
  std::vector<std::string> audience(req.audience().begin(), req.audience().end());
  std::string reason = "FetchJWTSVID aud=";
  for (size_t i = 0; i < audience.size(); ++i) reason += (i ? "," : "") + audience[i];
  std::vector<const mtls::X509Svid*> subjects;
  for (const auto& svid : snap.svids) {
    if (req.spiffe_id().empty() || svid.spiffe_id == req.spiffe_id()) subjects.push_back(&svid);
  }
  if (subjects.empty()) return reply(count(GrpcStatus{StatusCode::kPermissionDenied, kNoIdentity}));
  if (snap.jwt_minter) return mint_remotely(ctx, snap, subjects, std::move(audience), std::move(reason), std::move(reply));
  JWTSVIDResponse out;
  for (const auto* svid : subjects) {
    auto id = mtls::SpiffeId::parse(svid->spiffe_id);
    if (!id.ok()) return reply(GrpcStatus{StatusCode::kInternal, "stored SVID has a bad SPIFFE ID"});
    auto token = snap.jwt_signer->mint(*id, audience, snap.jwt_svid_ttl);
    if (!token.ok()) return reply(count(GrpcStatus{StatusCode::kInvalidArgument, token.error().message}));
    JWTSVID* j = out.add_svids();
    j->set_spiffe_id(svid->spiffe_id);
    j->set_svid(std::move(*token));
    j->set_hint(svid->hint);
    stats_.jwt_svids_issued.inc();
    audit_issue(ctx, svid->spiffe_id, "", "jwt_svid", reason);
  }
  reply(out);
}

// mint_remotely asks the snapshot's minter (the authority) for one token per subject and answers
// when all are back, on the call's loop. Any refusal fails the whole call, as a local failure would.
void WorkloadApiService::mint_remotely(const ServerCallContext& ctx, const mtls::IdentitySnapshot& snap,
                                       const std::vector<const mtls::X509Svid*>& subjects, std::vector<std::string> audience,
                                       std::string reason, grpc::UnaryReply<JWTSVIDResponse> reply) {
  struct Pending {
    JWTSVIDResponse out;
    size_t remaining;
    bool failed = false;
  };
  auto pending = std::make_shared<Pending>();
  pending->remaining = subjects.size();
  for (const auto* svid : subjects) {
    JWTSVID* j = pending->out.add_svids();
    j->set_spiffe_id(svid->spiffe_id);
    j->set_hint(svid->hint);
  }
  auto self = shared_from_this();
  for (size_t i = 0; i < subjects.size(); ++i) {
    auto id = mtls::SpiffeId::parse(subjects[i]->spiffe_id);
    if (!id.ok()) return reply(GrpcStatus{StatusCode::kInternal, "stored SVID has a bad SPIFFE ID"});
    snap.jwt_minter->mint(*id, audience, [self, i, pending, reply, reason, executor = ctx.executor](Result<std::string> token) {
      executor->post([self, i, pending, reply, reason, token = std::move(token)]() mutable {
        if (pending->failed) return;
        if (!token.ok()) {
          pending->failed = true;
          StatusCode code = token.error().code == ErrorCode::kPermissionDenied ? StatusCode::kPermissionDenied
                                                                               : StatusCode::kUnavailable;
          return reply(self->count(GrpcStatus{code, token.error().message}));
        }
        pending->out.mutable_svids(static_cast<int>(i))->set_svid(std::move(token.value()));
        self->stats_.jwt_svids_issued.inc();
        self->audit_issue(reply.context(), pending->out.svids(static_cast<int>(i)).spiffe_id(), "", "jwt_svid", reason);
        if (--pending->remaining == 0) reply(pending->out);
      });
    });
  }
}

GrpcResult<ValidateJWTSVIDResponse> WorkloadApiService::validate_jwt_svid(const ServerCallContext& ctx,
                                                                         const ValidateJWTSVIDRequest& req) {
  stats_.validate_jwt_svid.inc();
  auto view = check_call(ctx);
  if (!view.ok()) return view.status();
  if (req.audience().empty()) return count(GrpcStatus{StatusCode::kInvalidArgument, "audience must be specified"});
  if (req.svid().empty()) return count(GrpcStatus{StatusCode::kInvalidArgument, "svid must be specified"});
  const mtls::IdentitySnapshot& snap = *view.value();
  mtls::JwtValidateOptions options = snap.jwt_validation;
  options.now = std::chrono::system_clock::now();
  mtls::JwtSvidClaims claims;
  mtls::JwtVerifyError error;
  if (!mtls::validate_jwt_svid(req.svid(), req.audience(), snap.bundles, options, &claims, &error)) {
    stats_.jwt_validation_failed.inc();
    return count(GrpcStatus{StatusCode::kInvalidArgument, std::string("invalid JWT-SVID: ") +
                                                              mtls::jwt_rejection_name(error.reason) + ": " +
                                                              error.message});
  }
  auto claims_struct = json_to_struct(claims.claims);
  if (!claims_struct.ok()) return GrpcStatus{StatusCode::kInternal, claims_struct.error().message};
  ValidateJWTSVIDResponse out;
  out.set_spiffe_id(claims.spiffe_id);
  *out.mutable_claims() = std::move(*claims_struct);
  return out;
}

void WorkloadApiService::audit_issue(const ServerCallContext& ctx, const std::string& spiffe_id,
                                     const std::string& serial, const char* kind, std::string reason) const {
  if (!audit_) return;
  AuditRecord r;
  r.listener = "workload_api";
  r.peer_address = ctx.peer ? ctx.peer->address : "";
  r.peer_spiffe_id = spiffe_id;
  r.cert_serial = serial;
  r.decision = "issue";
  r.policy = kind;
  r.reason = std::move(reason);
  mtls::CallerInfo caller = mtls::credentials_caller(ctx);  // who asked; attestation ran already
  r.caller_pid = caller.pid;
  r.caller_uid = caller.uid;
  r.caller_gid = caller.gid;
  audit_->record(std::move(r));
}

}  // namespace portcullis::attest
