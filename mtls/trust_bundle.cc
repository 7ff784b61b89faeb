#include "mtls/trust_bundle.h"

#include <openssl/base64.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

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

TrustBundle::TrustBundle(std::string trust_domain, std::vector<bssl::UniquePtr<X509>> authorities, uint64_t sequence)
    : trust_domain_(std::move(trust_domain)), authorities_(std::move(authorities)),
      anchors_(sk_X509_new_null()), store_(X509_STORE_new()), sequence_(sequence) {
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
  nlohmann::json doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return invalid("SPIFFE bundle is not a JSON object");
  auto keys = doc.find("keys");
  if (keys == doc.end() || !keys->is_array()) return invalid("SPIFFE bundle has no 'keys' array");
  uint64_t sequence = 0;
  if (auto seq = doc.find("spiffe_sequence"); seq != doc.end()) {
    if (!seq->is_number_unsigned()) return invalid("spiffe_sequence must be a non-negative integer");
    sequence = seq->get<uint64_t>();
  }
  std::vector<bssl::UniquePtr<X509>> certs;
  for (const auto& key : *keys) {
    if (!key.is_object() || !key.contains("kty") || !key.contains("use")) continue;
    if (key["use"] != "x509-svid") continue;
    auto x5c = key.find("x5c");
    if (x5c == key.end() || !x5c->is_array() || x5c->empty() || !(*x5c)[0].is_string()) continue;
    auto cert = parse_der_base64((*x5c)[0].get<std::string>());
    if (!cert.ok()) return cert.error();
    if (X509_check_ca(cert->get()) == 0) return invalid("SPIFFE bundle for " + trust_domain + " holds a non-CA certificate");
    certs.push_back(std::move(cert.value()));
  }
  return std::make_shared<const TrustBundle>(std::move(trust_domain), std::move(certs), sequence);
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

const TrustBundle* TrustBundleSet::find(std::string_view trust_domain) const {
  auto it = bundles_.find(trust_domain);
  if (it == bundles_.end()) it = bundles_.find(kAnyTrustDomain);
  return it == bundles_.end() ? nullptr : it->second.get();
}

}  // namespace portcullis::mtls
