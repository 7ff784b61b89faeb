#include "filters/ext_authz/ext_authz_service.h"

#include <spdlog/spdlog.h>

#include "filters/policy/rbac_input.h"

namespace portcullis::filters {

namespace auth = ::envoy::service::auth::v3;

namespace {

constexpr int kGrpcOk = 0;
constexpr int kGrpcInvalidArgument = 3;
constexpr int kGrpcPermissionDenied = 7;
constexpr int kHttpForbidden = 403;  // envoy.type.v3.StatusCode Forbidden

// ProtoHeaderLookup reads CheckRequest's header map in place (Envoy has lower-cased the keys and
// merged duplicates with ","): a linear scan, no allocation.
class ProtoHeaderLookup final : public HttpHeaderLookup {
 public:
  explicit ProtoHeaderLookup(const google::protobuf::Map<std::string, std::string>& map) : map_(map) {}
  void values(std::string_view lower_name, HeaderValueSink& out) const override {
    for (const auto& [name, value] : map_) {
      if (name == lower_name) out.add(value);
    }
  }

 private:
  const google::protobuf::Map<std::string, std::string>& map_;
};

// set_socket copies an Envoy Address's IP and port into the engine's input; pipes leave them unset.
void set_socket(const ::envoy::config::core::v3::Address& address, IpAddress* out_ip, uint16_t* out_port) {
  if (!address.has_socket_address()) return;
  const auto& sa = address.socket_address();
  (void)out_ip->parse(sa.address());
  if (out_port && sa.port_value() <= 65535) *out_port = static_cast<uint16_t>(sa.port_value());
}

std::string socket_text(const auth::AttributeContext::Peer& peer) {
  if (peer.address().has_pipe()) return "unix:" + peer.address().pipe().path();
  if (!peer.address().has_socket_address()) return "";
  const auto& sa = peer.address().socket_address();
  bool v6 = sa.address().find(':') != std::string::npos;
  return (v6 ? "[" + sa.address() + "]" : sa.address()) + ":" + std::to_string(sa.port_value());
}

}  // namespace

ExtAuthzServerStats ExtAuthzServerStats::create(StatsStore& store, const std::string& stat_prefix) {
  StatScope scope{"ext_authz_server", "envoy_ext_authz_server_prefix", stat_prefix};
  return ExtAuthzServerStats{PORTCULLIS_EXT_AUTHZ_SERVER_STATS(PORTCULLIS_MAKE_COUNTER, PORTCULLIS_MAKE_GAUGE)};
}

struct ExtAuthzService::Outcome {
  bool allowed = false;
  bool malformed = false;
  std::string policy;  // the matched policy's name, empty when none matched
  const char* reason = "";
};

ExtAuthzService::ExtAuthzService(std::string stat_prefix, std::shared_ptr<const ExtAuthzPolicy> policy,
                                 StatsStore& stats, AuditLog* audit)
    : listener_name_("ext_authz_server." + stat_prefix),
      policy_(std::move(policy)),
      stats_(ExtAuthzServerStats::create(stats, stat_prefix)),
      audit_(audit) {}

void ExtAuthzService::update(std::shared_ptr<const ExtAuthzPolicy> policy) {
  policy_.store(std::move(policy), std::memory_order_release);
  stats_.policy_updates.inc();
}

ExtAuthzService::Outcome ExtAuthzService::decide(const auth::AttributeContext& a, const ExtAuthzPolicy& policy) const {
  RbacInput in;
  const std::string& principal = a.source().principal();
  in.authenticated = !principal.empty();
  in.tls = in.authenticated || a.has_tls_session();
  in.peer_spiffe_id = principal;
  set_socket(a.source().address(), &in.direct_remote_ip, nullptr);
  in.remote_ip = in.direct_remote_ip;
  set_socket(a.destination().address(), &in.destination_ip, &in.destination_port);
  in.requested_server_name = a.tls_session().sni();

  HttpRequestView http;
  ProtoHeaderLookup headers(a.request().http().headers());
  if (a.has_request() && a.request().has_http()) {
    const auto& h = a.request().http();
    http = HttpRequestView{h.method(), h.path(), h.host(), h.scheme(), &headers};
    in.http = &http;
  }

  if (policy.shadow) {
    RbacDecision d = policy.shadow->evaluate(in);
    (d.allowed ? stats_.shadow_allowed : stats_.shadow_denied).inc();
  }
  Outcome out;
  if (!policy.rules) {
    stats_.allowed.inc();
    out.allowed = true;
    out.reason = "no rules configured";
    return out;
  }
  RbacDecision d = policy.rules->evaluate(in);
  if (policy.rules->action() == RbacAction::kLog) d.allowed = true;
  out.allowed = d.allowed;
  out.policy = std::move(d.matched_policy);
  const bool allow_action = policy.rules->action() == RbacAction::kAllow;
  if (policy.rules->action() == RbacAction::kLog) {
    (d.matched_policy.empty() ? stats_.allowed : stats_.logged).inc();
    out.reason = d.matched_policy.empty() ? "rbac LOG: no policy matched" : "rbac LOG: policy matched";
  } else if (d.allowed) {
    stats_.allowed.inc();
    out.reason = allow_action ? "rbac ALLOW: policy matched" : "rbac DENY: no policy matched";
  } else {
    stats_.denied.inc();
    out.reason = allow_action ? "rbac ALLOW: no policy matched" : "rbac DENY: policy matched";
  }
  return out;
}

auth::CheckResponse ExtAuthzService::check(const auth::CheckRequest* request) const {
  Outcome outcome;
  if (request == nullptr || !request->has_attributes()) {
    stats_.malformed_requests.inc();
    stats_.denied.inc();
    outcome.malformed = true;
    outcome.reason = request ? "malformed CheckRequest: no attributes" : "malformed CheckRequest: does not parse";
  } else {
    std::shared_ptr<const ExtAuthzPolicy> snapshot = policy();
    outcome = decide(request->attributes(), *snapshot);
  }
  audit(request, outcome);

  auth::CheckResponse response;
  if (outcome.allowed) {
    response.mutable_status()->set_code(kGrpcOk);
    response.mutable_ok_response();
    return response;
  }
  response.mutable_status()->set_code(outcome.malformed ? kGrpcInvalidArgument : kGrpcPermissionDenied);
  auto* denied = response.mutable_denied_response();
  denied->mutable_status()->set_code(static_cast<::envoy::type::v3::StatusCode>(kHttpForbidden));
  denied->set_body(kDeniedBody);
  return response;
}

void ExtAuthzService::audit(const auth::CheckRequest* request, const Outcome& outcome) const {
  if (!audit_) return;
  AuditRecord r;
  r.connection_id = next_check_id_.fetch_add(1, std::memory_order_relaxed);
  r.listener = listener_name_;
  r.decision = outcome.allowed ? "allow" : "deny";
  r.policy = outcome.policy;
  r.reason = outcome.reason;
  if (request && request->has_attributes()) {
    const auto& a = request->attributes();
    r.peer_address = socket_text(a.source());
    r.peer_spiffe_id = a.source().principal();
    // The destination, and for HTTP the method, authority and path without its query string
    // (queries often carry tokens; audit records must not).
    r.reason += "; destination " + socket_text(a.destination());
    if (a.request().has_http()) {
      const auto& h = a.request().http();
      std::string_view path = h.path();
      path = path.substr(0, path.find_first_of("?#"));
      r.reason += "; " + h.method() + " " + h.host();
      r.reason.append(path);
    }
  }
  audit_->record(std::move(r));
}

Status ExtAuthzService::register_with(const std::shared_ptr<ExtAuthzService>& service, grpc::ServiceRegistry& registry) {
  // A raw handler rather than add_unary: a request that does not parse must still get a deny
  // CheckResponse (see the class comment), not add_unary's INTERNAL error.
  return registry.add(kCheckPath, {grpc::MethodKind::kUnary, [service](std::shared_ptr<grpc::ServerCall> call,
                                                                       std::string bytes) {
                                     auth::CheckRequest request;
                                     bool parsed = request.ParseFromString(bytes);
                                     auth::CheckResponse response = service->check(parsed ? &request : nullptr);
                                     std::string out;
                                     response.SerializeToString(&out);
                                     call->send_message(std::move(out));
                                     call->finish(grpc::GrpcStatus::Ok());
                                   }});
}

}  // namespace portcullis::filters
