#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "config/address.h"
#include "config/bootstrap.h"
#include "config/errors.h"
#include "config/node.h"
#include "mtls/tls_config.h"

namespace portcullis::attest::authority {

// AuthorityLimits bound what one caller can make the authority do in one request or hold open.
// Every value is a config field under `authority.limits` with these defaults.
struct AuthorityLimits {
  uint32_t max_workloads_per_request = 256;    // SignWorkloadSvids.workloads
  uint32_t max_csrs_per_workload = 8;          // WorkloadCsrs.csrs
  uint32_t max_csr_bytes = 8192;               // one PKCS#10 DER (a P-256 CSR is ~300 bytes)
  uint32_t max_selectors_per_workload = 64;    // WorkloadCsrs.selectors, MintJwtSvid.selectors
  uint32_t max_selector_bytes = 1024;          // one "type:key:value"
  uint32_t max_serials_per_revoke = 1024;      // RevokeSvids.serials
  uint32_t max_audiences = 16;                 // MintJwtSvid.audience
  uint32_t max_audience_bytes = 512;
  uint32_t max_watchers = 10000;               // concurrent WatchUpdates streams
  uint32_t max_entries = 100000;               // registration entries in the store
  uint32_t max_selectors_per_entry = 32;
  uint32_t max_dns_names_per_entry = 32;
  uint32_t max_id_bytes = 2048;                // SPIFFE IDs, entry IDs, reasons
  // One WatchUpdates message. A larger update (a big revocation set, a sidecar's first message)
  // goes out in several; sidecars accept 4 MiB per message by default.
  uint32_t max_update_bytes = 1 << 20;
  std::chrono::seconds max_join_token_ttl{24 * 3600};
  std::chrono::seconds max_svid_ttl{30 * 24 * 3600};  // an entry's TTLs may not exceed this
};

// JoinTokenAttestorConfig is `node_attestors.join_token`: one-time tokens from
// `portcullis token generate`. No options yet (limits cover the token TTL).
struct JoinTokenAttestorConfig {};

struct NodeAttestorsConfig {
  std::optional<JoinTokenAttestorConfig> join_token;
};

// CaSourceConfig is `authority.ca`: `{}` generates (once) a self-signed root kept in data_dir;
// `upstream: {certificate_chain, private_key}` signs with an intermediate from elsewhere.
struct CaSourceConfig {
  std::optional<mtls::DataSource> upstream_certificate_chain;
  std::optional<mtls::DataSource> upstream_private_key;
  std::optional<std::chrono::seconds> ttl;  // of a generated CA; unset: the CA library's default
  bool upstream() const { return upstream_certificate_chain.has_value(); }
};

// AuthorityConfig is the validated `authority:` block of authority.yaml (plus the optional
// top-level `audit:` and `admin:` blocks, in the sidecar's shapes):
//
//   authority:
//     trust_domain: example.org
//     listen: {socket_address: {address: 0.0.0.0, port_value: 8081}}   # or {pipe: {path}}
//     admin_socket: {pipe: {path: /run/portcullis/authority-admin.sock, mode: 384}}  # 0600 default
//     admin_uids: [1000]          # uid 0 is always allowed
//     data_dir: /var/lib/portcullis/authority
//     ca: {}                      # or {upstream: {certificate_chain: {filename}, private_key: {filename}}}
//     default_x509_svid_ttl: 1h
//     default_jwt_svid_ttl: 5m
//     node_svid_ttl: 1h
//     server_svid_ttl: 24h        # the authority's own TLS certificate; renewed at half-life
//     node_attestors: {join_token: {}}
//     entries_file: /etc/portcullis/entries.yaml   # optional seed
//     limits: {max_workloads_per_request: 256, ...}
//     grpc_limits: {...}          # GrpcServerLimits of both servers; proxy/ parses it
//
// Immutable once parsed.
struct AuthorityConfig {
  std::string trust_domain;
  config::Address listen;
  config::PipeAddress admin_socket;
  std::vector<uid_t> admin_uids;
  std::string data_dir;
  CaSourceConfig ca;
  std::chrono::seconds default_x509_svid_ttl{3600};
  std::chrono::seconds default_jwt_svid_ttl{300};
  std::chrono::seconds node_svid_ttl{3600};
  std::chrono::seconds server_svid_ttl{24 * 3600};
  NodeAttestorsConfig node_attestors;
  std::string entries_file;
  AuthorityLimits limits;
  std::optional<config::Node> grpc_limits;
  std::optional<config::AuditConfig> audit;
  // admin: the top-level `admin:` block (Envoy's shape: {address: {socket_address}}): /ready,
  // /stats and /stats/prometheus over HTTP, for probes and scrapers. Optional.
  std::optional<config::AdminConfig> admin;

  // admin_uid_allowed: root, or a uid listed in admin_uids.
  bool admin_uid_allowed(uid_t uid) const;
};

// kDefaultAdminSocketMode: only the owner (root) may connect unless the config says otherwise;
// the per-call SO_PEERCRED check still applies to whoever can.
inline constexpr uint32_t kDefaultAdminSocketMode = 0600;

// parse_authority_config validates a whole authority.yaml document (`authority:` required, plus
// optional `audit:` and `admin:`; nothing else), reporting every problem with file:line:column into `errors`.
// `parse_grpc_limits` is called with the `grpc_limits` node (its type lives in proxy/).
// nullopt when anything was wrong. Reads no files.
std::optional<AuthorityConfig> parse_authority_config(
    const config::Node& root, config::ErrorList& errors,
    const std::function<void(const config::Node& limits)>& parse_grpc_limits = nullptr);

// load_authority_config reads at most `max_bytes` of `path`, then parse_authority_config.
std::optional<AuthorityConfig> load_authority_config(
    const std::string& path, size_t max_bytes, config::ErrorList& errors,
    const std::function<void(const config::Node& limits)>& parse_grpc_limits = nullptr);

}  // namespace portcullis::attest::authority
