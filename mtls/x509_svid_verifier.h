#pragma once

#include <openssl/x509.h>

#include <chrono>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "mtls/attested_claims.h"
#include "mtls/peer_identity.h"
#include "mtls/trust_bundle.h"

namespace portcullis::mtls {

// SvidRejection names why a presented chain is not an acceptable X.509-SVID. Each value has a
// stable snake_case name used in stats, audit records and logs.
enum class SvidRejection {
  kNoCertificate,
  kNoUriSan,
  kMultipleUriSans,
  kInvalidSpiffeId,
  kNoWorkloadPath,
  kLeafIsCa,
  kLeafKeyUsage,
  kUnknownTrustDomain,
  kUnknownCa,
  kIntermediateNotCa,
  kExpired,
  kNotYetValid,
  kBadSignature,
  kChainInvalid,
  kInvalidAttestedClaims,  // the attested-claims extension is present but malformed
  kSanMismatch,  // a valid SVID, but not one the context's SAN matchers accept
  kRevoked,      // a valid SVID whose serial the authority revoked (keep last: stats arrays size by it)
};

const char* svid_rejection_name(SvidRejection r);

// SvidVerifyError carries the rejection and a message with the details (SPIFFE ID, X509 error).
struct SvidVerifyError {
  SvidRejection reason;
  std::string message;
};

struct VerifyOptions {
  std::chrono::seconds clock_skew{30};
  std::chrono::system_clock::time_point now = std::chrono::system_clock::now();
  AttestedClaimsLimits claims_limits;
};

// verify_x509_svid checks `chain` (leaf first, then intermediates as the peer sent them) as an
// X.509-SVID: exactly one URI SAN holding a SPIFFE ID with a workload path, a non-CA leaf with
// digitalSignature and neither keyCertSign nor cRLSign, and an RFC 5280 path to the bundle of
// the ID's own trust domain (so one trust domain's CA cannot vouch for another's IDs), with
// validity checked at `now` allowing `clock_skew`; then the leaf's attested claims, if any, must
// decode (a malformed extension fails the SVID: a peer must not be half-trusted). Thread-safe; allocates only while verifying.
// On failure `*out_error` says why.
bool verify_x509_svid(std::span<X509* const> chain, const TrustBundleSet& bundles, const VerifyOptions& options,
                      PeerIdentity* out_identity, SvidVerifyError* out_error);

// subject_alt_names returns a certificate's SAN entries of one type (GEN_URI or GEN_DNS).
std::vector<std::string> subject_alt_names(X509* cert, int type);

// leaf_spiffe_id returns the SPIFFE ID in a certificate's single URI SAN, if it has exactly one
// that parses. For our own certificates (/certs) and for callers that trust the chain already.
Result<std::string> leaf_spiffe_id(X509* leaf);

}  // namespace portcullis::mtls
