#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/result.h"
#include "mtls/trust_bundle.h"

namespace portcullis::mtls {

// Which keys a written bundle holds: all of them (a SPIFFE bundle file, SDS), or only the JWT
// authorities (the Workload API's JWTBundlesResponse, as SPIRE serves it).
enum class BundleKeys { kAll, kX509Only, kJwtOnly };

struct BundleJsonOptions {
  BundleKeys keys = BundleKeys::kAll;
  std::optional<uint64_t> sequence;     // default: the bundle's own (written when non-zero)
  std::optional<int64_t> refresh_hint;  // seconds; default: the bundle's own (written when > 0)
};

// to_spiffe_bundle_json writes `bundle` as a SPIFFE bundle (RFC 7517 JWK set): one
// `use: x509-svid` key per X.509 authority (its public key parameters plus x5c with the DER
// certificate, no kid) and one `use: jwt-svid` key per JWT authority (kty/crv/x/y or kty/n/e, kid),
// then spiffe_sequence and spiffe_refresh_hint. TrustBundle::from_spiffe_json reads it back. Fails
// only for an authority whose key type JWK cannot express (e.g. Ed25519 CAs).
Result<std::string> to_spiffe_bundle_json(const TrustBundle& bundle, const BundleJsonOptions& options = {});

}  // namespace portcullis::mtls
