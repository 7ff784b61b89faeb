#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/address.h"
#include "config/node.h"

namespace portcullis::config {

// Documented defaults for every limit the bootstrap carries (see README "Limits").
inline constexpr uint32_t kDefaultBufferLimitBytes = 64 * 1024;
inline constexpr uint32_t kDefaultTcpBacklog = 1024;
inline constexpr uint64_t kDefaultListenerConnectionLimit = 100000;
inline constexpr uint64_t kDefaultGlobalConnectionLimit = 200000;
inline constexpr std::chrono::seconds kDefaultConnectTimeout{5};

// TypedExtension is one `{name, typed_config: {'@type': ..., ...}}` entry whose contents a
// module above config/ (filters/, mtls/) interprets. Kept as a located node so that module's
// errors point into the same file.
struct TypedExtension {
  std::string name;
  std::string type_url;
  Node typed_config;  // the whole typed_config map, '@type' included
  Node node;          // the entry itself
};

inline constexpr std::chrono::seconds kDefaultTransportSocketConnectTimeout{10};

struct FilterChainConfig {
  std::vector<TypedExtension> filters;
  std::optional<TypedExtension> transport_socket;  // interpreted by mtls/
  // How long the transport (TLS) handshake may take; Envoy's field, our default 10 s.
  std::chrono::nanoseconds transport_socket_connect_timeout = kDefaultTransportSocketConnectTimeout;
  Node node;
};

struct ListenerConfig {
  std::string name;
  SocketAddress address;
  std::string stat_prefix;  // empty: Envoy's default `ip_port`
  std::vector<FilterChainConfig> filter_chains;
  uint32_t per_connection_buffer_limit_bytes = kDefaultBufferLimitBytes;
  uint32_t tcp_backlog_size = kDefaultTcpBacklog;
  // canonical is the listener's YAML re-emitted; equal text means "unchanged" across reloads.
  std::string canonical;
};

struct ClusterConfig {
  std::string name;
  std::chrono::nanoseconds connect_timeout = kDefaultConnectTimeout;
  std::vector<SocketAddress> endpoints;
  uint32_t per_connection_buffer_limit_bytes = kDefaultBufferLimitBytes;
  std::optional<TypedExtension> transport_socket;  // interpreted by mtls/
  std::string canonical;
};

struct AdminConfig {
  SocketAddress address{"127.0.0.1", 9901};
  uint32_t max_request_bytes = 64 * 1024;
};

// AuditConfig is our top-level `audit:` block: where access decisions are written.
struct AuditConfig {
  struct Sink {
    bool stdout_sink = false;
    std::string path;  // file sink
    bool operator==(const Sink&) const = default;
  };
  std::vector<Sink> sinks;
  uint32_t queue_size = 65536;  // records buffered before new ones are dropped (and counted)
  bool operator==(const AuditConfig&) const = default;
};

// Limits that Envoy reads from `layered_runtime` static layers, under Envoy's own key names:
// `envoy.resource_limits.listener.<listener name>.connection_limit` and
// `overload.global_downstream_max_connections`.
struct RuntimeLimits {
  uint64_t global_max_connections = kDefaultGlobalConnectionLimit;
  std::map<std::string, uint64_t, std::less<>> listener_connection_limit;

  uint64_t connection_limit_for(const std::string& listener) const;
};

// Bootstrap is the validated, typed form of the config file for the parts config/ owns. The
// typed_configs of filters stay as nodes for their modules. Immutable once parsed.
struct Bootstrap {
  std::string path;
  std::string node_id;
  std::string node_cluster;
  std::optional<AdminConfig> admin;
  std::vector<ListenerConfig> listeners;
  std::vector<ClusterConfig> clusters;
  RuntimeLimits limits;
  std::optional<AuditConfig> audit;
  // workload_api: the raw top-level block; attest/ validates it (see proxy/server_config).
  std::optional<Node> workload_api;
  // identity is the top-level `identity:` block, interpreted by mtls/ (parse_identity_config) like
  // a transport socket: kept as a located node so its errors point into this file.
  std::optional<Node> identity;
  // ext_authz_server: the raw top-level block; filters/ext_authz validates it (see server_config).
  std::optional<Node> ext_authz_server;
  // sds: the raw top-level block; mtls/sds validates it (see proxy/server_config).
  std::optional<Node> sds;
  Node document;  // the whole file, for /config_dump

  const ClusterConfig* find_cluster(std::string_view name) const;
};

// parse_typed_extension reads a `{name, typed_config: {'@type': ...}}` entry.
TypedExtension parse_typed_extension(const Node& node, ErrorList& errors);

// parse_audit_config reads an `audit:` block (the authority's config file has one too).
AuditConfig parse_audit_config(const Node& node, ErrorList& errors);

// parse_bootstrap checks the whole document and reports every problem into `errors`; the result
// is only meaningful when `errors` stayed empty.
Bootstrap parse_bootstrap(const Node& root, ErrorList& errors);

}  // namespace portcullis::config
