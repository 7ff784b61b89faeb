#pragma once

#include <openssl/x509.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace portcullis::mtls {

// kAttestedClaimsOid is the dotted OID of the attested-claims X.509 extension: the verified
// attributes the authority relied on when it issued the certificate ("TYPE:KEY:VALUE" strings such
// as "node:attestation:join_token" or "unix:sha256:<hex>"). Provisional, see docs/attested-claims.md.
extern const char kAttestedClaimsOid[];

// AttestedClaimsLimits bounds what decode_attested_claims accepts from a peer's certificate. The
// defaults fit the authority's own claims (node, entry, a handful of selectors) with a wide margin.
struct AttestedClaimsLimits {
  size_t max_claims = 64;
  size_t max_claim_bytes = 2048 + 64;  // a 2048-byte SPIFFE ID plus its "TYPE:KEY:" prefix
  size_t max_extension_bytes = 32 * 1024;
};

// attested_claim_problem checks one claim's syntax: "TYPE:KEY:VALUE" with TYPE and KEY non-empty
// and made of [a-z0-9_.-], VALUE any UTF-8 text without control characters (it may hold ':').
// Returns an empty string when valid, otherwise the reason.
std::string attested_claim_problem(std::string_view claim);

// encode_attested_claims returns the extension value (DER SEQUENCE OF UTF8String) for `claims`,
// sorted and deduplicated so equal sets encode identically. Fails on an empty list or a claim
// that attested_claim_problem rejects, or when the result exceeds the default limits.
Result<std::string> encode_attested_claims(const std::vector<std::string>& claims);

// decode_attested_claims parses an extension value strictly: DER only, one SEQUENCE with no
// trailing bytes, 1..max_claims UTF8Strings in strictly ascending byte order (the canonical form
// the encoder writes), each a valid claim of at most max_claim_bytes. Pure; never crashes on any
// input (fuzzed by tests/fuzz/attested_claims_fuzz.cc).
Result<std::vector<std::string>> decode_attested_claims(std::string_view der, const AttestedClaimsLimits& limits = {});

// attested_claims_of returns the decoded claims of `leaf`'s attested-claims extension, an empty
// list when the certificate has none, and an error when it is malformed or present twice.
Result<std::vector<std::string>> attested_claims_of(const X509* leaf, const AttestedClaimsLimits& limits = {});

// attested_claims_object returns the extension's OID as an ASN1_OBJECT (built once, immutable,
// never freed), for code that adds the extension to a certificate.
const ASN1_OBJECT* attested_claims_object();

}  // namespace portcullis::mtls
