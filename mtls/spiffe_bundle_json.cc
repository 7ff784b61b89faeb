#include "mtls/spiffe_bundle_json.h"

#include <openssl/mem.h>

#include <nlohmann/json.hpp>

#include "mtls/jose.h"
#include "mtls/ssl_error.h"

namespace portcullis::mtls {
namespace {

Result<nlohmann::json> x509_key(X509* cert) {
  bssl::UniquePtr<EVP_PKEY> key(X509_get_pubkey(cert));
  uint8_t* der = nullptr;
  int len = i2d_X509(cert, &der);
  bssl::UniquePtr<uint8_t> owned(der);
  if (!key || len <= 0) return make_error(ErrorCode::kInvalidArgument, "unreadable CA certificate: " + drain_ssl_errors());
  nlohmann::json jwk = nlohmann::json::object();
  if (Status s = public_key_to_jwk(key.get(), &jwk); !s.ok()) return s.error();
  jwk["use"] = "x509-svid";
  jwk["x5c"] = nlohmann::json::array({base64_std_encode(std::span(der, static_cast<size_t>(len)))});
  return jwk;
}

}  // namespace

Result<std::string> to_spiffe_bundle_json(const TrustBundle& bundle, const BundleJsonOptions& options) {
  nlohmann::json keys = nlohmann::json::array();
  if (options.keys != BundleKeys::kJwtOnly) {
    for (const auto& cert : bundle.authorities()) {
      auto jwk = x509_key(cert.get());
      if (!jwk.ok()) return jwk.error();
      keys.push_back(std::move(jwk.value()));
    }
  }
  if (options.keys != BundleKeys::kX509Only) {
    for (const auto& authority : bundle.jwt_authorities()) {
      nlohmann::json jwk = nlohmann::json::object();
      if (Status s = public_key_to_jwk(authority.public_key.get(), &jwk); !s.ok()) return s.error();
      jwk["use"] = "jwt-svid";
      jwk["kid"] = authority.key_id;
      keys.push_back(std::move(jwk));
    }
  }
  nlohmann::json doc = {{"keys", std::move(keys)}};
  uint64_t sequence = options.sequence.value_or(bundle.sequence());
  int64_t refresh_hint = options.refresh_hint.value_or(bundle.refresh_hint_seconds());
  if (sequence != 0) doc["spiffe_sequence"] = sequence;
  if (refresh_hint > 0) doc["spiffe_refresh_hint"] = refresh_hint;
  // kid values come from bundles we parsed (valid UTF-8) or from config; replace rather than throw.
  return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace portcullis::mtls
