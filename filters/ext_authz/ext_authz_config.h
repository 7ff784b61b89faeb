#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "config/address.h"
#include "config/node.h"
#include "filters/policy/rbac_engine.h"

namespace portcullis::filters {

// ExtAuthzPolicy is one compiled snapshot of the ext_authz server's rules: what a Check call
// evaluates. Immutable; a reload builds a new one and the service swaps it in atomically.
struct ExtAuthzPolicy {
  std::shared_ptr<const RbacEngine> rules;   // null: no enforcement (every request allowed)
  std::shared_ptr<const RbacEngine> shadow;  // null: no shadow evaluation
};

// ExtAuthzServerConfig is the validated top-level `ext_authz_server:` block:
//
//   ext_authz_server:
//     address: {socket_address: {address: 127.0.0.1, port_value: 9191}}  # or {pipe: {path, mode}}
//     stat_prefix: ingress          # stats under ext_authz_server.<stat_prefix>.; default "default"
//     rules: {action: ALLOW, policies: {...}}   # Envoy config.rbac.v3.RBAC, as in the RBAC filters
//     shadow_rules: {...}           # counted and audited, never enforced
//     limits: {...}                 # GrpcServerLimits; parsed by the caller (filters/ cannot see it)
//
// Immutable once parsed.
struct ExtAuthzServerConfig {
  config::Address address;
  std::string stat_prefix = "default";
  std::shared_ptr<const ExtAuthzPolicy> policy;
  std::optional<config::Node> limits;  // the raw `limits:` node (see parse_ext_authz_server)
  // fixed is the canonical YAML of everything a reload cannot change (address, stat_prefix,
  // limits): equal text means a reload may swap the policy in place.
  std::string fixed;
};

// parse_ext_authz_server validates the block and compiles its rules with the RBAC parser the
// network filter uses, reporting every problem (file:line:col) into `errors`. nullopt after errors.
// `parse_limits`, when given, is called with the `limits:` node (even when other fields have
// errors, so that every problem is reported in one pass).
std::optional<ExtAuthzServerConfig> parse_ext_authz_server(
    const config::Node& node, config::ErrorList& errors,
    const std::function<void(const config::Node& limits)>& parse_limits = nullptr);

}  // namespace portcullis::filters
