#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "attest/kernel/kernel_config.h"
#include "config/address.h"
#include "config/node.h"
#include "mtls/identity_config.h"
#include "mtls/tls_config.h"

namespace portcullis::attest::agent {

// The authority's SPIFFE ID when `server_spiffe_id` is not given: spiffe://<td>/portcullis/authority.
std::string default_authority_spiffe_id(const std::string& trust_domain);

// AgentLimits bounds what the agent keeps and how it retries. Every field is a config key under
// `identity.limits`.
struct AgentLimits {
  // Reconnect and retry backoff: capped, jittered exponential (full jitter in [d/2, d]).
  std::chrono::milliseconds backoff_initial{200};
  std::chrono::milliseconds backoff_max{30000};
  std::chrono::seconds call_timeout{10};        // one authority call
  uint32_t max_workloads = 4096;                // distinct selector sets with SVIDs or in flight
  // Entries one workload may hold at once; the authority's max_csrs_per_workload (8) bounds it too.
  uint32_t max_svids_per_workload = 8;
  uint32_t initial_csrs = 2;                    // CSRs sent before the match count is known
  std::chrono::seconds unmatched_retry{10};     // an unmatched workload is asked about again after this
  // How long a connection or call from a workload with no SVIDs yet waits for them to be issued
  // (first contact only; later ones find them rotated ahead of expiry). Bounded because it holds
  // that connection's worker thread: sub-millisecond with the embedded authority, one round trip
  // with a remote one.
  std::chrono::milliseconds caller_wait{2000};
  double rotate_jitter = 0.1;                   // ± fraction of rotate_at × TTL
};

struct AuthorityEndpoint {
  config::Address address;            // Envoy Address: socket_address or pipe
  mtls::DataSource bootstrap_bundle;  // PEM or SPIFFE bundle JSON: trusts the authority before attestation
  std::string server_spiffe_id;       // checked on the authority's certificate
};

struct EmbeddedAuthorityConfig {
  std::string data_dir;      // CA key and SQLite store (0700)
  std::string entries_file;  // optional YAML seed of registration entries
};

// AgentConfig is the attested variant of `identity:` (one of authority / embedded_authority):
//
//   identity:
//     trust_domain: example.org
//     authority:                                   # or embedded_authority: {data_dir, entries_file}
//       address: {socket_address: {address: 10.0.0.5, port_value: 8081}}
//       bootstrap_bundle: {filename: /etc/portcullis/bundle.pem}
//       server_spiffe_id: spiffe://example.org/portcullis/authority   # the default
//     node_attestation: {join_token: {token: 3f9a...}}                # authority only
//     workload_attestation: {kernel: {}}  # limits: attest/kernel/kernel_config.h
//     rotate_at: 0.5                        # renew at this fraction of each SVID's lifetime
//     unattested_fallback: spiffe://example.org/legacy                # optional
//     limits: {backoff_initial: 200ms, backoff_max: 30s, ...}         # see AgentLimits
struct AgentConfig {
  std::string trust_domain;
  std::optional<AuthorityEndpoint> authority;
  std::optional<EmbeddedAuthorityConfig> embedded;
  std::string join_token;  // secret; never logged
  bool kernel_attestation = true;
  kernel::KernelAttestorOptions kernel;  // workload_attestation.kernel: the attestor's limits
  double rotate_at = 0.5;
  std::string unattested_fallback;  // SPIFFE ID served to callers no entry matches; empty: refuse
  AgentLimits limits;
  config::Location location;
};

// parse_agent_config reads the attested fields from the `identity` block's reader (the rest of the
// block, trust_domain and jwt_svid, is mtls::parse_identity_config's, passed in as `common`).
// Every problem goes to identity.errors() with file:line:col; nullopt when there was any.
// Plugs into mtls::parse_identity_config as its AttestedIdentityParser.
std::optional<AgentConfig> parse_agent_config(config::MapReader& identity, const mtls::IdentityConfig& common);

}  // namespace portcullis::attest::agent
