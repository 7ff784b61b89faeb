#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "config/node.h"
#include "mtls/jwt_svid.h"
#include "mtls/tls_config.h"

namespace portcullis::mtls {

// IdentityConfig is the validated top-level `identity:` block: where this sidecar's SPIFFE identity
// comes from. Exactly one source: `static` (files, rotated in place, parsed here), or `authority`
// / `embedded_authority` (the attestation agent: SVIDs per attested workload, issued by an
// authority). mtls/ cannot see attest/, so the attested fields are read by a parser the caller
// hands in (attest::agent::parse_agent_config, wired by proxy/server_config.cc); this struct then
// only records that the source is attested plus the fields common to both (trust domain, jwt_svid).
//
//   identity:
//     trust_domain: example.org
//     static:
//       certificate_chain: {filename: /run/svid/cert.pem}   # leaf first; an X.509-SVID of trust_domain
//       private_key: {filename: /run/svid/key.pem}
//       trust_bundle: {filename: /run/svid/bundle.pem}      # PEM or SPIFFE bundle JSON
//       jwt_signing_key: {filename: /run/svid/jwt.pem}     # optional; EC P-256 (ES256)
//       federated_bundles: {other.org: {filename: /run/svid/other.json}}
//     jwt_svid: {ttl: 300s, key_id: k1, max_token_bytes: 16384, clock_skew: 30s}  # all optional
enum class IdentitySource { kStatic, kAttested };

struct IdentityConfig {
  IdentitySource source = IdentitySource::kStatic;
  std::string trust_domain;
  DataSource certificate_chain;
  DataSource private_key;
  DataSource trust_bundle;
  std::optional<DataSource> jwt_signing_key;
  std::map<std::string, DataSource> federated_bundles;  // by bare trust domain name
  std::string jwt_key_id;  // empty: derived from the key (see JwtSigner::create)
  std::chrono::seconds jwt_svid_ttl = kDefaultJwtSvidTtl;
  size_t jwt_max_token_bytes = kDefaultMaxJwtBytes;
  std::chrono::seconds jwt_clock_skew = kDefaultJwtClockSkew;
  config::Location location;  // of the block, for errors found when the files are read
};

// AttestedIdentityParser reads the attested source's fields (`authority`, `embedded_authority`,
// `node_attestation`, ...) from the identity block's reader, after trust_domain and jwt_svid were
// parsed into `common`; the reader reports whatever neither parser asked for as unknown. It adds
// its problems to the reader's ErrorList.
using AttestedIdentityParser = std::function<void(config::MapReader& identity, const IdentityConfig& common)>;

// parse_identity_config validates the `identity` node, reporting every problem into `errors` with
// file:line:column; nullopt when there was any. Reads no files. A block naming `authority` or
// `embedded_authority` goes to `attested`; without one (e.g. a tool that only knows static
// identities) such a block is an error.
std::optional<IdentityConfig> parse_identity_config(const config::Node& node, config::ErrorList& errors,
                                                    const AttestedIdentityParser& attested = {});

}  // namespace portcullis::mtls
