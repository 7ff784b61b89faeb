#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/result.h"

// JOSE building blocks shared by JWT-SVIDs and SPIFFE bundles (RFC 7515, 7517, 7518). All
// functions are pure and thread-safe.
namespace portcullis::mtls {

// base64url_encode writes RFC 4648 §5 base64url without padding (JWS's form).
std::string base64url_encode(std::span<const uint8_t> data);
inline std::string base64url_encode(std::string_view data) {
  return base64url_encode(std::span(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
}
// base64url_decode is strict: only [A-Za-z0-9_-], no padding, no whitespace, and the unused low
// bits of the last character must be zero, so every byte string has exactly one accepted
// encoding (a token cannot be re-encoded into a second valid form). nullopt on any violation.
std::optional<std::string> base64url_decode(std::string_view text);

// base64_std_encode writes standard base64 with padding (x5c entries, RFC 7517 §4.7).
std::string base64_std_encode(std::span<const uint8_t> data);

// parse_strict_json parses `text` as JSON and rejects duplicate member names at any depth (RFC
// 7515 §4: a JOSE header with duplicates must be rejected; the SPIFFE bundle spec asks the same).
// nlohmann keeps the last duplicate silently, which would let "alg" say two things at once.
std::optional<nlohmann::json> parse_strict_json(std::string_view text);

// jwk_to_public_key reads the key parameters of an EC or RSA JWK. Returns kNotFound for a kty we
// do not support (callers skip those, as the SPIFFE bundle spec says) and kInvalidArgument for a
// malformed key of a supported kty. RSA keys under 2048 bits are refused (RFC 7518 §3.3).
Result<bssl::UniquePtr<EVP_PKEY>> jwk_to_public_key(const nlohmann::json& jwk);

// public_key_to_jwk writes the kty/crv/x/y (EC) or kty/n/e (RSA) members of `key` into `*out`.
Status public_key_to_jwk(EVP_PKEY* key, nlohmann::json* out);

// spki_der returns a key's DER SubjectPublicKeyInfo.
Result<std::string> spki_der(EVP_PKEY* key);

// ec_curve_nid returns the curve NID of an EC key (NID_undef for other keys).
int ec_curve_nid(const EVP_PKEY* key);

// ecdsa_der_to_raw converts a DER ECDSA-Sig-Value into JWS's fixed-width r||s (RFC 7518 §3.4),
// each half `half_len` bytes; ecdsa_raw_to_der does the reverse (nullopt on a malformed input).
std::optional<std::string> ecdsa_der_to_raw(std::span<const uint8_t> der, size_t half_len);
std::optional<std::string> ecdsa_raw_to_der(std::span<const uint8_t> raw);

}  // namespace portcullis::mtls
