// validate_jwt_svid: the JWT-SVID standard's validation rules, one distinct rejection per rule.
#include <openssl/digest.h>
#include <openssl/nid.h>
#include <openssl/rsa.h>

#include <array>
#include <cmath>

#include "mtls/jose.h"
#include "mtls/jwt_svid.h"
#include "mtls/ssl_error.h"

namespace portcullis::mtls {
namespace {

enum class KeyKind { kEc, kRsaPkcs1, kRsaPss };

struct Algorithm {
  std::string_view name;
  const EVP_MD* (*md)();
  KeyKind kind;
  int curve_nid;  // for kEc
};

// The JWT-SVID allowlist. `none`, HS* (a shared secret cannot be published in a bundle) and
// anything else are refused by omission.
constexpr std::array<Algorithm, 9> kAlgorithms = {{
    {"ES256", EVP_sha256, KeyKind::kEc, NID_X9_62_prime256v1},
    {"ES384", EVP_sha384, KeyKind::kEc, NID_secp384r1},
    {"ES512", EVP_sha512, KeyKind::kEc, NID_secp521r1},
    {"RS256", EVP_sha256, KeyKind::kRsaPkcs1, NID_undef},
    {"RS384", EVP_sha384, KeyKind::kRsaPkcs1, NID_undef},
    {"RS512", EVP_sha512, KeyKind::kRsaPkcs1, NID_undef},
    {"PS256", EVP_sha256, KeyKind::kRsaPss, NID_undef},
    {"PS384", EVP_sha384, KeyKind::kRsaPss, NID_undef},
    {"PS512", EVP_sha512, KeyKind::kRsaPss, NID_undef},
}};

struct Rejected {
  JwtRejection reason;
  std::string message;
};

const Algorithm* find_algorithm(std::string_view name) {
  for (const auto& a : kAlgorithms) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

bool key_fits(const Algorithm& alg, EVP_PKEY* key) {
  if (alg.kind == KeyKind::kEc) return ec_curve_nid(key) == alg.curve_nid;
  return EVP_PKEY_id(key) == EVP_PKEY_RSA;
}

bool verify_signature(const Algorithm& alg, EVP_PKEY* key, std::string_view input, const std::string& sig) {
  std::string der;
  std::string_view to_check = sig;
  if (alg.kind == KeyKind::kEc) {
    // JWS carries fixed-width r||s (RFC 7518 §3.4); any other length is not a signature of this curve.
    size_t half = (EVP_PKEY_bits(key) + 7) / 8;
    if (sig.size() != 2 * half) return false;
    auto converted = ecdsa_raw_to_der(std::span(reinterpret_cast<const uint8_t*>(sig.data()), sig.size()));
    if (!converted) return false;
    der = std::move(*converted);
    to_check = der;
  }
  bssl::ScopedEVP_MD_CTX ctx;
  EVP_PKEY_CTX* pctx = nullptr;
  if (!EVP_DigestVerifyInit(ctx.get(), &pctx, alg.md(), nullptr, key)) {
    drain_ssl_errors();
    return false;
  }
  // RFC 7518 §3.5: PSS with MGF1 over the same hash and a salt as long as the hash.
  if (alg.kind == KeyKind::kRsaPss && (!EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) ||
                                       !EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, -1))) {
    drain_ssl_errors();
    return false;
  }
  bool ok = EVP_DigestVerify(ctx.get(), reinterpret_cast<const uint8_t*>(to_check.data()), to_check.size(),
                             reinterpret_cast<const uint8_t*>(input.data()), input.size()) == 1;
  drain_ssl_errors();
  return ok;
}

std::optional<Rejected> check_header(const nlohmann::json& header, const Algorithm** out_alg, std::string* out_kid) {
  auto alg = header.find("alg");
  if (alg == header.end() || !alg->is_string()) return Rejected{JwtRejection::kUnsupportedAlgorithm, "header has no alg"};
  *out_alg = find_algorithm(alg->get_ref<const std::string&>());
  if (*out_alg == nullptr) return Rejected{JwtRejection::kUnsupportedAlgorithm, "alg " + alg->dump() + " is not allowed for JWT-SVIDs"};
  for (const auto& [name, value] : header.items()) {
    if (name != "alg" && name != "kid" && name != "typ") {
      return Rejected{JwtRejection::kBadHeader, "header parameter '" + name + "' is not allowed in a JWT-SVID"};
    }
  }
  if (auto typ = header.find("typ"); typ != header.end() && *typ != "JWT" && *typ != "JOSE") {
    return Rejected{JwtRejection::kBadHeader, "typ must be JWT or JOSE, got " + typ->dump()};
  }
  auto kid = header.find("kid");
  if (kid == header.end() || !kid->is_string() || kid->get_ref<const std::string&>().empty()) {
    return Rejected{JwtRejection::kMissingKeyId, "header has no kid"};
  }
  *out_kid = kid->get<std::string>();
  return std::nullopt;
}

// numeric_date reads an optional NumericDate claim (RFC 7519: seconds, maybe fractional).
std::optional<Rejected> numeric_date(const nlohmann::json& claims, const char* name, bool required,
                                     std::optional<double>* out) {
  auto it = claims.find(name);
  if (it == claims.end()) {
    if (required) return Rejected{JwtRejection::kBadClaims, std::string("claim '") + name + "' is required"};
    return std::nullopt;
  }
  if (!it->is_number() || !std::isfinite(it->get<double>())) {
    return Rejected{JwtRejection::kBadClaims, std::string("claim '") + name + "' must be a NumericDate"};
  }
  *out = it->get<double>();
  return std::nullopt;
}

std::optional<Rejected> check_audience(const nlohmann::json& claims, std::string_view audience) {
  auto aud = claims.find("aud");
  if (aud == claims.end()) return Rejected{JwtRejection::kBadClaims, "claim 'aud' is required"};
  std::vector<std::string_view> values;
  if (aud->is_string()) values.push_back(aud->get_ref<const std::string&>());
  if (aud->is_array()) {
    for (const auto& v : *aud) {
      if (!v.is_string()) return Rejected{JwtRejection::kBadClaims, "claim 'aud' must hold strings"};
      values.push_back(v.get_ref<const std::string&>());
    }
  }
  if (values.empty()) return Rejected{JwtRejection::kBadClaims, "claim 'aud' must be a string or a non-empty array"};
  for (auto v : values) {
    if (!audience.empty() && v == audience) return std::nullopt;
  }
  return Rejected{JwtRejection::kAudienceMismatch, "audience '" + std::string(audience) + "' is not in aud"};
}

std::optional<Rejected> check_times(const nlohmann::json& claims, const JwtValidateOptions& o) {
  std::optional<double> exp, nbf, iat;
  if (auto r = numeric_date(claims, "exp", true, &exp)) return r;
  if (auto r = numeric_date(claims, "nbf", false, &nbf)) return r;
  if (auto r = numeric_date(claims, "iat", false, &iat)) return r;
  double now = std::chrono::duration<double>(o.now.time_since_epoch()).count();
  double skew = static_cast<double>(o.clock_skew.count());
  if (*exp + skew <= now) return Rejected{JwtRejection::kExpired, "token expired at " + std::to_string(static_cast<int64_t>(*exp))};
  for (const auto& t : {nbf, iat}) {
    if (t && *t > now + skew) return Rejected{JwtRejection::kNotYetValid, "token is not valid before " + std::to_string(static_cast<int64_t>(*t))};
  }
  return std::nullopt;
}

std::optional<Rejected> validate(std::string_view token, std::string_view audience, const TrustBundleSet& bundles,
                                 const JwtValidateOptions& options, JwtSvidClaims* out) {
  if (token.size() > options.max_token_bytes) {
    return Rejected{JwtRejection::kTooLarge, "token is " + std::to_string(token.size()) + " bytes, limit " + std::to_string(options.max_token_bytes)};
  }
  size_t dot1 = token.find('.');
  size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return Rejected{JwtRejection::kMalformed, "a JWT-SVID is exactly three dot-separated segments"};
  }
  auto header_text = base64url_decode(token.substr(0, dot1));
  auto claims_text = base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  auto signature = base64url_decode(token.substr(dot2 + 1));
  if (!header_text || !claims_text || !signature) return Rejected{JwtRejection::kBadEncoding, "a segment is not strict base64url"};
  auto header = parse_strict_json(*header_text);
  if (!header || !header->is_object()) return Rejected{JwtRejection::kBadHeader, "header is not a JSON object without duplicate members"};
  const Algorithm* alg = nullptr;
  if (auto r = check_header(*header, &alg, &out->key_id)) return r;
  auto claims = parse_strict_json(*claims_text);
  if (!claims || !claims->is_object()) return Rejected{JwtRejection::kBadClaims, "claims are not a JSON object without duplicate members"};
  auto sub = claims->find("sub");
  if (sub == claims->end() || !sub->is_string()) return Rejected{JwtRejection::kInvalidSubject, "claim 'sub' is required"};
  auto id = SpiffeId::parse(sub->get_ref<const std::string&>());
  if (!id.ok()) return Rejected{JwtRejection::kInvalidSubject, "sub is not a SPIFFE ID: " + id.error().message};
  auto bundle = bundles.bundles().find(id->trust_domain());
  if (bundle == bundles.bundles().end()) {
    return Rejected{JwtRejection::kUnknownTrustDomain, "no bundle for trust domain '" + std::string(id->trust_domain()) + "'"};
  }
  const JwtAuthority* authority = bundle->second->find_jwt_authority(out->key_id);
  if (authority == nullptr) {
    return Rejected{JwtRejection::kUnknownKeyId, "trust domain '" + bundle->first + "' has no JWT authority '" + out->key_id + "'"};
  }
  if (!key_fits(*alg, authority->public_key.get())) {
    return Rejected{JwtRejection::kKeyMismatch, "key '" + out->key_id + "' cannot verify " + std::string(alg->name)};
  }
  if (!verify_signature(*alg, authority->public_key.get(), token.substr(0, dot2), *signature)) {
    return Rejected{JwtRejection::kBadSignature, "signature does not verify with key '" + out->key_id + "'"};
  }
  if (auto r = check_audience(*claims, audience)) return r;
  if (auto r = check_times(*claims, options)) return r;
  out->spiffe_id = id->str();
  out->algorithm = std::string(alg->name);
  out->claims = std::move(*claims);
  return std::nullopt;
}

}  // namespace

bool validate_jwt_svid(std::string_view token, std::string_view audience, const TrustBundleSet& bundles,
                       const JwtValidateOptions& options, JwtSvidClaims* out_claims, JwtVerifyError* out_error) {
  JwtSvidClaims claims;
  if (auto rejected = validate(token, audience, bundles, options, &claims)) {
    *out_error = JwtVerifyError{rejected->reason, std::move(rejected->message)};
    return false;
  }
  *out_claims = std::move(claims);
  return true;
}

}  // namespace portcullis::mtls
