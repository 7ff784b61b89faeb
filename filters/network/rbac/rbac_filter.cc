#include "filters/network/rbac/rbac_filter.h"

#include <spdlog/spdlog.h>

namespace portcullis::filters {

RbacStats RbacStats::create(StatsStore& store, const std::string& stat_prefix) {
  StatScope scope{stat_prefix, "", ""};
  const std::string prefix = "rbac.";
  return RbacStats{PORTCULLIS_RBAC_STATS(PORTCULLIS_MAKE_PREFIXED_COUNTER, PORTCULLIS_MAKE_PREFIXED_GAUGE)};
}

RbacInput rbac_input_for(const ConnectionInfo& info) {
  RbacInput in;
  in.tls = info.tls;
  in.authenticated = info.peer != nullptr;
  if (info.peer) {
    in.peer_spiffe_id = info.peer->spiffe_id;
    in.peer_attested_claims = info.peer->attested_claims;
  }
  in.direct_remote_ip = info.remote_ip;
  in.remote_ip = info.remote_ip;
  in.destination_ip = info.local_ip;
  in.destination_port = info.local_port;
  in.requested_server_name = info.requested_server_name;
  return in;
}

FilterStatus NetworkRbacFilter::on_new_connection(const ConnectionInfo& info, FilterVerdict& verdict) const {
  RbacInput input = rbac_input_for(info);
  if (shadow_) {
    RbacDecision d = shadow_->evaluate(input);
    (d.allowed ? stats_.shadow_allowed : stats_.shadow_denied).inc();
  }
  if (!rules_) return FilterStatus::kContinue;
  RbacDecision d = rules_->evaluate(input);
  verdict.policy = d.matched_policy;
  if (rules_->action() == RbacAction::kLog) {
    (d.matched_policy.empty() ? stats_.allowed : stats_.logged).inc();
    verdict.reason = d.matched_policy.empty() ? "rbac LOG: no policy matched" : "rbac LOG: policy matched";
    return FilterStatus::kContinue;
  }
  if (d.allowed) {
    stats_.allowed.inc();
    verdict.reason = rules_->action() == RbacAction::kAllow ? "rbac ALLOW: policy matched" : "rbac DENY: no policy matched";
    return FilterStatus::kContinue;
  }
  stats_.denied.inc();
  verdict.reason = rules_->action() == RbacAction::kAllow ? "rbac ALLOW: no policy matched" : "rbac DENY: policy matched";
  spdlog::debug("rbac: denied connection {} from {} ({}), policy '{}'", info.id, info.remote_address,
                info.peer ? info.peer->spiffe_id : "unauthenticated", d.matched_policy);
  return FilterStatus::kClose;
}

std::shared_ptr<const NetworkFilterConfig> build_network_rbac(const config::Node& typed_config, FilterBuildContext& ctx) {
  size_t before = ctx.errors.size();
  config::MapReader r(typed_config, ctx.errors);
  (void)r.get("@type");
  std::string stat_prefix;
  r.string("stat_prefix", &stat_prefix, true);
  std::shared_ptr<const RbacEngine> rules, shadow;
  if (auto n = r.get("rules")) rules = parse_rbac(*n, ctx.errors);
  if (auto n = r.get("shadow_rules")) shadow = parse_rbac(*n, ctx.errors);
  std::string shadow_prefix, enforcement = "ONE_TIME_ON_FIRST_BYTE";
  r.string("shadow_rules_stat_prefix", &shadow_prefix);
  // Identity and addresses cannot change during a connection, so both modes decide once.
  if (r.string("enforcement_type", &enforcement) && enforcement != "ONE_TIME_ON_FIRST_BYTE" && enforcement != "CONTINUOUS") {
    auto n = r.get("enforcement_type");
    ctx.errors.add(n->location(), n->path(), "enforcement_type must be ONE_TIME_ON_FIRST_BYTE or CONTINUOUS");
  }
  for (const char* unsupported : {"matcher", "shadow_matcher", "delay_deny"}) {
    if (auto n = r.get(unsupported)) ctx.errors.add(n->location(), n->path(), std::string(unsupported) + " is not supported; use rules");
  }
  r.finish();
  if (ctx.errors.size() != before) return nullptr;
  // Envoy accepts header/url_path rules here and evaluates them against an empty header map; so
  // do we, but such a config is almost always a mistake worth a line in the log.
  for (const auto* engine : {rules.get(), shadow.get()}) {
    if (engine && engine->needs_http()) {
      spdlog::warn("{}: network RBAC has no HTTP request: header matchers see no headers and url_path never matches",
                   typed_config.path());
      break;
    }
  }
  return std::make_shared<NetworkRbacFilter>(std::move(rules), std::move(shadow), RbacStats::create(ctx.stats, stat_prefix));
}

}  // namespace portcullis::filters
