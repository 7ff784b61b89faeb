#pragma once

#include <openssl/evp.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "mtls/spiffe_id.h"
#include "mtls/trust_bundle.h"

namespace portcullis::mtls {

// The default: JWT-SVIDs are bearer tokens, so they live minutes, not hours.
inline constexpr std::chrono::seconds kDefaultJwtSvidTtl{300};
// An ES256 JWT-SVID with one audience is ~450 bytes and an RS512 one signed by a 4096-bit key
// ~1.2 KiB; 16 KiB leaves room for long IDs and extra claims while bounding the base64 and JSON
// work one unauthenticated ValidateJWTSVID call can cause (and stays under common header limits).
inline constexpr size_t kDefaultMaxJwtBytes = 16 * 1024;
// The same leeway the X.509-SVID verifier allows for clocks that disagree.
inline constexpr std::chrono::seconds kDefaultJwtClockSkew{30};

// JwtSigner mints JWT-SVIDs with one ES256 (ECDSA P-256, SHA-256) private key. Immutable and
// thread-safe: any thread may mint at once (BoringSSL does not mutate a key while signing).
class JwtSigner {
 public:
  // create takes an EC P-256 private key. An empty `key_id` derives one: base64url(SHA-256 of the
  // key's DER SubjectPublicKeyInfo), so the kid is stable across restarts and rotations of the
  // same key and changes exactly when the key does.
  static Result<std::shared_ptr<const JwtSigner>> create(bssl::UniquePtr<EVP_PKEY> key, std::string key_id = "");
  // from_pem reads a PKCS#8 or SEC1 PEM private key, then as create().
  static Result<std::shared_ptr<const JwtSigner>> from_pem(std::string_view pem, std::string key_id = "");

  const std::string& key_id() const { return key_id_; }
  EVP_PKEY* key() const { return key_.get(); }
  // authority returns the public half as a bundle entry (for our own trust domain's JWKS).
  Result<JwtAuthority> authority() const;

  // mint returns a compact JWS: header {alg: ES256, kid, typ: JWT}, claims {sub, aud (array),
  // exp = now + ttl, iat = now}. Fails on an empty audience list, an empty or non-UTF-8 audience,
  // or ttl <= 0.
  Result<std::string> mint(const SpiffeId& subject, std::span<const std::string> audience, std::chrono::seconds ttl,
                           std::chrono::system_clock::time_point now = std::chrono::system_clock::now()) const;

  JwtSigner(bssl::UniquePtr<EVP_PKEY> key, std::string key_id) : key_(std::move(key)), key_id_(std::move(key_id)) {}

 private:
  bssl::UniquePtr<EVP_PKEY> key_;
  std::string key_id_;
};

// JwtRejection names why a token is not an acceptable JWT-SVID. Each value has a stable
// snake_case name (jwt_rejection_name) for stats, audit records and gRPC messages.
enum class JwtRejection {
  kTooLarge,             // longer than max_token_bytes
  kMalformed,            // not three dot-separated segments (JWE, JSON serialization, junk)
  kBadEncoding,          // a segment is not strict unpadded base64url
  kBadHeader,            // header not a JSON object, duplicate members, bad typ, extra parameters
  kUnsupportedAlgorithm, // alg outside the JWT-SVID list (none, HS*, EdDSA, ...)
  kMissingKeyId,         // no kid: bundle keys are looked up by kid only
  kBadClaims,            // claims not a JSON object, or exp/aud/iat/nbf missing or mistyped
  kInvalidSubject,       // sub absent or not a SPIFFE ID
  kUnknownTrustDomain,   // no bundle for sub's trust domain
  kUnknownKeyId,         // sub's trust domain has no JWT authority with that kid
  kKeyMismatch,          // the authority's key type or curve does not fit alg
  kBadSignature,
  kAudienceMismatch,
  kExpired,
  kNotYetValid,          // nbf or iat in the future (beyond the clock skew)
};

const char* jwt_rejection_name(JwtRejection r);

struct JwtVerifyError {
  JwtRejection reason;
  std::string message;
};

struct JwtValidateOptions {
  size_t max_token_bytes = kDefaultMaxJwtBytes;
  std::chrono::seconds clock_skew = kDefaultJwtClockSkew;
  std::chrono::system_clock::time_point now = std::chrono::system_clock::now();
};

// JwtSvidClaims is what a valid token proves.
struct JwtSvidClaims {
  std::string spiffe_id;
  std::string key_id;
  std::string algorithm;
  nlohmann::json claims;  // the whole claims object, for ValidateJWTSVIDResponse.claims
};

// validate_jwt_svid checks `token` as a JWT-SVID for `audience`: compact form and size, strict
// base64url, header (alg in {RS,PS,ES}{256,384,512}, kid, typ JWT/JOSE if present, nothing
// else), sub a SPIFFE ID whose trust domain has a bundle in `bundles` (exact name; the "*" entry
// does not apply to JWTs), the kid found among that bundle's JWT authorities, the signature,
// `audience` among aud, and exp/nbf/iat against `options.now` with the skew. Thread-safe. On
// failure `*out_error` says why.
bool validate_jwt_svid(std::string_view token, std::string_view audience, const TrustBundleSet& bundles,
                       const JwtValidateOptions& options, JwtSvidClaims* out_claims, JwtVerifyError* out_error);

}  // namespace portcullis::mtls
