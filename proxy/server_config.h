#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "attest/agent/agent_config.h"
#include "attest/workload_api/workload_api_config.h"
#include "common/stats.h"
#include "config/bootstrap.h"
#include "config/errors.h"
#include "filters/ext_authz/ext_authz_config.h"
#include "filters/network/filter_chain.h"
#include "mtls/identity_config.h"
#include "mtls/identity_selector.h"
#include "mtls/sds/sds_config.h"
#include "mtls/tls_context.h"
#include "proxy/grpc/grpc_server_limits.h"

namespace portcullis::proxy {

// ServerConfig is one fully validated config: the bootstrap plus every listener's compiled
// filter chain. Immutable; a reload builds a new one and swaps it in only if it is complete.
struct ServerConfig {
  config::Bootstrap bootstrap;
  std::vector<filters::NetworkFilterChain> chains;  // parallel to bootstrap.listeners
  // Downstream TLS per listener (parallel to bootstrap.listeners; null = plaintext) and upstream
  // TLS per cluster name (absent = plaintext).
  std::vector<std::shared_ptr<const mtls::TlsContext>> listener_tls;
  std::map<std::string, std::shared_ptr<const mtls::TlsContext>, std::less<>> cluster_tls;
  // TLS contexts served by the built-in identity (an SdsSecretConfig without sds_config, see
  // mtls::BuiltinSecret), by listener index and cluster name: their listener_tls slot is null and
  // they have no cluster_tls entry. The Server serves each through a BuiltinIdentitySelector.
  std::map<size_t, mtls::TlsContextConfig> listener_builtin_tls;
  std::map<std::string, mtls::TlsContextConfig, std::less<>> cluster_builtin_tls;
  // The selectors serving them, made by the Server (they need its identity store and caller
  // lookup); empty in a config that has not been applied yet.
  std::map<size_t, std::shared_ptr<mtls::IdentitySelector>> listener_tls_selectors;
  std::map<std::string, std::shared_ptr<mtls::IdentitySelector>, std::less<>> cluster_tls_selectors;
  // identity is the validated `identity:` block; its files were read and checked together
  // (load_static_identity) so that --mode validate and a reload catch bad ones. The Server builds
  // the one StaticSvidStore of the process from it.
  std::optional<mtls::IdentityConfig> identity;
  // agent is the attested variant of `identity:` (authority or embedded_authority); set exactly
  // when identity->source is kAttested. Its files are read when the agent starts.
  std::optional<attest::agent::AgentConfig> agent;
  // The top-level `ext_authz_server:` block, when present, and its gRPC server limits.
  std::optional<filters::ExtAuthzServerConfig> ext_authz;
  GrpcServerLimits ext_authz_limits;
  // The top-level `sds:` block, when present (it needs `identity:`), and its gRPC server limits.
  std::optional<mtls::SdsConfig> sds;
  GrpcServerLimits sds_limits;
  // The SPIFFE Workload API endpoint (the `workload_api:` block, or --workload-api-socket) and
  // its gRPC server limits; absent when not served.
  std::optional<attest::WorkloadApiConfig> workload_api;
  GrpcServerLimits workload_api_limits;
};

// ConfigOverrides are the command-line flags that replace config values (Envoy's
// --service-node / --service-cluster).
struct ConfigOverrides {
  std::string service_node;
  std::string service_cluster;
  // The Workload API address as a SPIFFE endpoint URI (unix:///path, tcp://IP:port), from
  // --workload-api-socket and from $SPIFFE_ENDPOINT_SOCKET (read by main).
  attest::WorkloadApiEndpointSources workload_api = {};
};

// build_server_config validates a parsed document (see load_server_config).
std::shared_ptr<const ServerConfig> build_server_config(const config::Node& root, const ConfigOverrides& overrides,
                                                        StatsStore& stats, config::ErrorList& errors);

// load_server_config reads, parses and validates `path`, reporting every problem into `errors`.
// Returns nullptr when anything was wrong. Opens no sockets; safe to call for --mode validate.
std::shared_ptr<const ServerConfig> load_server_config(const std::string& path, size_t max_bytes,
                                                       const ConfigOverrides& overrides, StatsStore& stats,
                                                       config::ErrorList& errors);

}  // namespace portcullis::proxy
