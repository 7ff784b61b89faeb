// JwtSigner: minting ES256 JWT-SVIDs.
#include "mtls/jwt_svid.h"

#include <openssl/bio.h>
#include <openssl/digest.h>
#include <openssl/ec_key.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include <vector>

#include "mtls/jose.h"
#include "mtls/ssl_error.h"

namespace portcullis::mtls {
namespace {

constexpr size_t kP256HalfLen = 32;

Error failure(ErrorCode code, const std::string& what) {
  std::string detail = drain_ssl_errors();
  return make_error(code, detail.empty() ? what : what + ": " + detail);
}

// valid_utf8 refuses what nlohmann could not serialize, and overlong or surrogate forms.
bool valid_utf8(std::string_view s) {
  static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xe ? 2 : (c >> 3) == 0x1e ? 3 : 4;
    if (n == 4 || s.size() - i <= n) return false;
    uint32_t cp = n == 0 ? c : c & (0x3fu >> n);
    for (size_t k = 1; k <= n; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

}  // namespace

Result<std::shared_ptr<const JwtSigner>> JwtSigner::create(bssl::UniquePtr<EVP_PKEY> key, std::string key_id) {
  if (!key || ec_curve_nid(key.get()) != NID_X9_62_prime256v1) {
    return make_error(ErrorCode::kInvalidArgument, "the JWT signing key must be an EC P-256 private key (ES256)");
  }
  if (EC_KEY_get0_private_key(EVP_PKEY_get0_EC_KEY(key.get())) == nullptr) {
    return make_error(ErrorCode::kInvalidArgument, "the JWT signing key has no private part");
  }
  if (!valid_utf8(key_id)) return make_error(ErrorCode::kInvalidArgument, "the JWT key id must be UTF-8");
  if (key_id.empty()) {
    auto spki = spki_der(key.get());
    if (!spki.ok()) return spki.error();
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const uint8_t*>(spki->data()), spki->size(), digest);
    key_id = base64url_encode(std::span<const uint8_t>(digest, sizeof digest));
  }
  return std::make_shared<const JwtSigner>(std::move(key), std::move(key_id));
}

Result<std::shared_ptr<const JwtSigner>> JwtSigner::from_pem(std::string_view pem, std::string key_id) {
  bssl::UniquePtr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return failure(ErrorCode::kInternal, "BIO_new_mem_buf");
  bssl::UniquePtr<EVP_PKEY> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return failure(ErrorCode::kInvalidArgument, "no usable PEM private key");
  return create(std::move(key), std::move(key_id));
}

Result<JwtAuthority> JwtSigner::authority() const {
  auto spki = spki_der(key_.get());
  if (!spki.ok()) return spki.error();
  CBS cbs;
  CBS_init(&cbs, reinterpret_cast<const uint8_t*>(spki->data()), spki->size());
  bssl::UniquePtr<EVP_PKEY> pub(EVP_parse_public_key(&cbs));
  if (!pub) return failure(ErrorCode::kInternal, "re-reading the JWT public key");
  return JwtAuthority{key_id_, std::move(pub)};
}

Result<std::string> JwtSigner::mint(const SpiffeId& subject, std::span<const std::string> audience,
                                    std::chrono::seconds ttl, std::chrono::system_clock::time_point now) const {
  if (audience.empty()) return make_error(ErrorCode::kInvalidArgument, "a JWT-SVID needs at least one audience");
  for (const auto& a : audience) {
    if (a.empty() || !valid_utf8(a)) return make_error(ErrorCode::kInvalidArgument, "an audience must be non-empty UTF-8");
  }
  if (ttl.count() <= 0) return make_error(ErrorCode::kInvalidArgument, "JWT-SVID TTL must be positive");
  int64_t iat = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  nlohmann::json header = {{"alg", "ES256"}, {"kid", key_id_}, {"typ", "JWT"}};
  nlohmann::json claims = {{"sub", subject.str()}, {"aud", audience}, {"exp", iat + ttl.count()}, {"iat", iat}};
  std::string input = base64url_encode(header.dump()) + "." + base64url_encode(claims.dump());

  bssl::ScopedEVP_MD_CTX ctx;
  size_t der_len = 0;
  if (!EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) ||
      !EVP_DigestSign(ctx.get(), nullptr, &der_len, reinterpret_cast<const uint8_t*>(input.data()), input.size())) {
    return failure(ErrorCode::kInternal, "ES256 signing setup");
  }
  std::vector<uint8_t> der(der_len);
  if (!EVP_DigestSign(ctx.get(), der.data(), &der_len, reinterpret_cast<const uint8_t*>(input.data()), input.size())) {
    return failure(ErrorCode::kInternal, "ES256 signing");
  }
  auto raw = ecdsa_der_to_raw(std::span(der.data(), der_len), kP256HalfLen);
  if (!raw) return make_error(ErrorCode::kInternal, "ES256 signature conversion");
  return input + "." + base64url_encode(*raw);
}

const char* jwt_rejection_name(JwtRejection r) {
  switch (r) {
    case JwtRejection::kTooLarge: return "too_large";
    case JwtRejection::kMalformed: return "malformed";
    case JwtRejection::kBadEncoding: return "bad_encoding";
    case JwtRejection::kBadHeader: return "bad_header";
    case JwtRejection::kUnsupportedAlgorithm: return "unsupported_algorithm";
    case JwtRejection::kMissingKeyId: return "missing_key_id";
    case JwtRejection::kBadClaims: return "bad_claims";
    case JwtRejection::kInvalidSubject: return "invalid_subject";
    case JwtRejection::kUnknownTrustDomain: return "unknown_trust_domain";
    case JwtRejection::kUnknownKeyId: return "unknown_key_id";
    case JwtRejection::kKeyMismatch: return "key_mismatch";
    case JwtRejection::kBadSignature: return "bad_signature";
    case JwtRejection::kAudienceMismatch: return "audience_mismatch";
    case JwtRejection::kExpired: return "expired";
    case JwtRejection::kNotYetValid: return "not_yet_valid";
  }
  return "unknown";
}

}  // namespace portcullis::mtls
