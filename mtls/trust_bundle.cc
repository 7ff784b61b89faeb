#include "mtls/trust_bundle.h"

#include <openssl/base64.h>
#include <openssl/mem.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>

#include "mtls/jose.h"
#include "mtls/ssl_error.h"
#include "mtls/spiffe_id.h"

namespace portcullis::mtls {
namespace {

constexpr size_t kMaxBundleBytes = 4 * 1024 * 1024;

Error invalid(std::string message) { return make_error(ErrorCode::kInvalidArgument, std::move(message)); }

Result<bssl::UniquePtr<X509>> parse_der_base64(const std::string& b64) {
  size_t max_len = 0;
  if (!EVP_DecodedLength(&max_len, b64.size())) return invalid("x5c entry is not valid base64");
  std::vector<uint8_t> der(max_len);
  size_t len = 0;
  if (!EVP_DecodeBase64(der.data(), &len, der.size(), reinterpret_cast<const uint8_t*>(b64.data()), b64.size())) {
    return invalid("x5c entry is not valid base64");
  }
  const uint8_t* p = der.data();
  bssl::UniquePtr<X509> cert(d2i_X509(nullptr, &p, static_cast<long>(len)));
  if (!cert || p != der.data() + len) {
    drain_ssl_errors();
    return invalid("x5c entry is not a DER certificate");
  }
  return cert;
}

// read_jwt_authority reads one `use: jwt-svid` JWK. nullopt: a kty we do not know, skipped.
Result<std::optional<JwtAuthority>> read_jwt_authority(const nlohmann::json& key, const std::string& trust_domain) {
  auto kid = key.find("kid");
  if (kid == key.end() || !kid->is_string() || kid->get_ref<const std::string&>().empty()) {
    return invalid("SPIFFE bundle for " + trust_domain + " has a jwt-svid key without a kid");
  }
  auto public_key = jwk_to_public_key(key);
  if (!public_key.ok() && public_key.error().code == ErrorCode::kNotFound) return std::optional<JwtAuthority>();
  if (!public_key.ok()) {
    return invalid("SPIFFE bundle for " + trust_domain + ": jwt-svid key " + kid->dump() + ": " + public_key.error().message);
  }
  return std::optional<JwtAuthority>(JwtAuthority{kid->get<std::string>(), std::move(public_key.value())});
}

Result<uint64_t> read_uint_member(const nlohmann::json& doc, const char* name) {
  auto it = doc.find(name);
  if (it == doc.end()) return uint64_t{0};
  if (!it->is_number_unsigned()) return invalid(std::string(name) + " must be a non-negative integer");
  return it->get<uint64_t>();
}

}  // namespace

Result<std::vector<bssl::UniquePtr<X509>>> parse_pem_certificates(std::string_view pem) {
  std::vector<bssl::UniquePtr<X509>> out;
  if (pem.size() > kMaxBundleBytes) return invalid("PEM input is larger than 4 MiB");
  bssl::UniquePtr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  for (;;) {
    bssl::UniquePtr<X509> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) break;
    out.push_back(std::move(cert));
  }
  // Reaching the end of the input leaves a PEM "no start line" error behind; anything else is a
  // real parse error in a block.
  uint32_t err = ERR_peek_last_error();
  if (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE) {
    ERR_clear_error();
  } else if (err != 0) {
    return invalid("malformed PEM certificate: " + drain_ssl_errors());
  }
  return out;
}

TrustBundle::TrustBundle(std::string trust_domain, std::vector<bssl::UniquePtr<X509>> authorities, uint64_t sequence,
                         std::vector<JwtAuthority> jwt_authorities, int64_t refresh_hint_seconds)
    : trust_domain_(std::move(trust_domain)), authorities_(std::move(authorities)),
      anchors_(sk_X509_new_null()), store_(X509_STORE_new()), sequence_(sequence),
      jwt_authorities_(std::move(jwt_authorities)), refresh_hint_(refresh_hint_seconds) {
  for (const auto& cert : authorities_) {
    X509_up_ref(cert.get());
    sk_X509_push(anchors_.get(), cert.get());
  }
}

Result<std::shared_ptr<const TrustBundle>> TrustBundle::from_pem(std::string trust_domain, std::string_view pem) {
  if (trust_domain != TrustBundleSet::kAnyTrustDomain) {
    if (Status s = validate_trust_domain_name(trust_domain); !s.ok()) return s.error();
  }
  auto certs = parse_pem_certificates(pem);
  if (!certs.ok()) return certs.error();
  if (certs->empty()) return invalid("trust bundle for " + trust_domain + " holds no PEM certificate");
  for (auto& c : *certs) {
    if (X509_check_ca(c.get()) == 0) return invalid("trust bundle for " + trust_domain + " holds a non-CA certificate");
  }
  return std::make_shared<const TrustBundle>(std::move(trust_domain), std::move(certs.value()), 0);
}

Result<std::shared_ptr<const TrustBundle>> TrustBundle::from_spiffe_json(std::string trust_domain,
                                                                        std::string_view json) {
  if (Status s = validate_trust_domain_name(trust_domain); !s.ok()) return s.error();
  auto parsed = parse_strict_json(json);
  if (!parsed || !parsed->is_object()) return invalid("SPIFFE bundle is not a JSON object (or repeats a member name)");
  const nlohmann::json& doc = *parsed;
  auto keys = doc.find("keys");
  if (keys == doc.end() || !keys->is_array()) return invalid("SPIFFE bundle has no 'keys' array");
  auto sequence = read_uint_member(doc, "spiffe_sequence");
  if (!sequence.ok()) return sequence.error();
  auto refresh_hint = read_uint_member(doc, "spiffe_refresh_hint");
  if (!refresh_hint.ok()) return refresh_hint.error();
  std::vector<bssl::UniquePtr<X509>> certs;
  std::vector<JwtAuthority> jwt;
  for (const auto& key : *keys) {
    if (!key.is_object() || !key.contains("kty") || !key.contains("use")) continue;
    if (key["use"] == "jwt-svid") {
      auto authority = read_jwt_authority(key, trust_domain);
      if (!authority.ok()) return authority.error();
      if (!authority->has_value()) continue;
      for (const auto& other : jwt) {
        if (other.key_id == (*authority)->key_id) return invalid("SPIFFE bundle for " + trust_domain + " repeats kid " + other.key_id);
      }
      jwt.push_back(std::move(**authority));
      continue;
    }
    if (key["use"] != "x509-svid") continue;
    auto x5c = key.find("x5c");
    if (x5c == key.end() || !x5c->is_array() || x5c->empty() || !(*x5c)[0].is_string()) continue;
    auto cert = parse_der_base64((*x5c)[0].get<std::string>());
    if (!cert.ok()) return cert.error();
    if (X509_check_ca(cert->get()) == 0) return invalid("SPIFFE bundle for " + trust_domain + " holds a non-CA certificate");
    certs.push_back(std::move(cert.value()));
  }
  // Clamped: a hint is a duration in seconds, and no sane one is near 2^63.
  int64_t hint = static_cast<int64_t>(std::min<uint64_t>(*refresh_hint, uint64_t{1} << 40));
  return std::make_shared<const TrustBundle>(std::move(trust_domain), std::move(certs), *sequence, std::move(jwt), hint);
}

Result<std::shared_ptr<const TrustBundle>> TrustBundle::from_file(std::string trust_domain, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(ErrorCode::kIo, "cannot read trust bundle " + path);
  std::string text(kMaxBundleBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxBundleBytes) return invalid("trust bundle " + path + " is larger than 4 MiB");
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '{') return from_spiffe_json(std::move(trust_domain), text);
  return from_pem(std::move(trust_domain), text);
}

const JwtAuthority* TrustBundle::find_jwt_authority(std::string_view key_id) const {
  for (const auto& a : jwt_authorities_) {
    if (a.key_id == key_id) return &a;
  }
  return nullptr;
}

namespace {

// each_authority_der calls `fn` with every X.509 authority's DER encoding.
template <typename Fn>
void each_authority_der(const std::vector<bssl::UniquePtr<X509>>& authorities, Fn fn) {
  for (const auto& cert : authorities) {
    uint8_t* der = nullptr;
    int len = i2d_X509(cert.get(), &der);
    if (len <= 0) {  // a parsed certificate always re-encodes; skip rather than emit half a bundle
      drain_ssl_errors();
      continue;
    }
    bssl::UniquePtr<uint8_t> owned(der);
    fn(std::string_view(reinterpret_cast<const char*>(der), static_cast<size_t>(len)));
  }
}

}  // namespace

std::string TrustBundle::authorities_der() const {
  std::string out;
  each_authority_der(authorities_, [&](std::string_view der) { out += der; });
  return out;
}

std::string TrustBundle::authorities_pem() const {
  std::string out;
  each_authority_der(authorities_, [&](std::string_view der) { out += der_to_pem("CERTIFICATE", der); });
  return out;
}

std::string der_to_pem(std::string_view label, std::string_view der) {
  std::string b64 = base64_std_encode(std::span(reinterpret_cast<const uint8_t*>(der.data()), der.size()));
  std::string out = "-----BEGIN " + std::string(label) + "-----\n";
  for (size_t i = 0; i < b64.size(); i += 64) out += b64.substr(i, 64) + "\n";
  return out + "-----END " + std::string(label) + "-----\n";
}

const TrustBundle* TrustBundleSet::find(std::string_view trust_domain) const {
  auto it = bundles_.find(trust_domain);
  if (it == bundles_.end()) it = bundles_.find(kAnyTrustDomain);
  return it == bundles_.end() ? nullptr : it->second.get();
}

}  // namespace portcullis::mtls
