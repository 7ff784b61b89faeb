#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "attest/authority/authority_core.h"
#include "common/result.h"
#include "mtls/tls_context.h"

namespace portcullis::proxy {

// AuthorityTls is the authority's own server TLS material: an SVID for
// spiffe://<td>/portcullis/authority signed by its own CA from a key that never leaves memory,
// and the trust bundle that client (node) certificates are verified against. Client
// certificates are optional at the TLS level (AttestNode comes without one); the Authority
// service enforces them per call. Immutable.
struct AuthorityTls {
  std::shared_ptr<const mtls::TlsContext> context;
  std::string spiffe_id;
  std::string serial;
  std::chrono::system_clock::time_point not_before, not_after;
  uint64_t bundle_sequence = 0;  // of the bundle the context trusts

  // renew_at is half-way through the certificate's life: a failed renewal has the other half
  // to succeed in.
  std::chrono::system_clock::time_point renew_at() const { return not_before + (not_after - not_before) / 2; }
};

// mint_authority_tls has the core's CA issue a server SVID (fresh in-memory key) for `ttl` and
// builds the server TlsContext (ALPN h2, SPIFFE validation of client SVIDs against the current bundle). Errors name
// the step that failed.
Result<AuthorityTls> mint_authority_tls(attest::authority::AuthorityCore& core, std::chrono::seconds ttl);

}  // namespace portcullis::proxy
