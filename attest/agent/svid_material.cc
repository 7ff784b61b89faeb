#include "attest/agent/svid_material.h"

#include <openssl/bytestring.h>
#include <openssl/ec_key.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/x509.h>

#include "mtls/cert_minter.h"
#include "mtls/peer_identity.h"
#include "mtls/ssl_error.h"
#include "mtls/x509_svid_verifier.h"

namespace portcullis::attest::agent {
namespace {

Error crypto_error(const std::string& what) {
  std::string detail = mtls::drain_ssl_errors();
  return make_error(ErrorCode::kInternal, detail.empty() ? what : what + ": " + detail);
}

Result<std::string> pkcs8_der(EVP_PKEY* key) {
  bssl::ScopedCBB cbb;
  uint8_t* der = nullptr;
  size_t len = 0;
  if (!CBB_init(cbb.get(), 256) || !EVP_marshal_private_key(cbb.get(), key) || !CBB_finish(cbb.get(), &der, &len)) {
    return crypto_error("cannot encode the private key as PKCS#8");
  }
  bssl::UniquePtr<uint8_t> owned(der);
  return std::string(reinterpret_cast<const char*>(der), len);
}

// This BoringSSL has no ASN1_TIME_to_posix; diff against the epoch instead.
bool asn1_time_to_unix(const ASN1_TIME* t, int64_t* out) {
  int days = 0, seconds = 0;
  bssl::UniquePtr<ASN1_TIME> epoch(ASN1_TIME_set(nullptr, 0));
  if (!epoch || !ASN1_TIME_diff(&days, &seconds, epoch.get(), t)) return false;
  *out = static_cast<int64_t>(days) * 86400 + seconds;
  return true;
}

bssl::UniquePtr<X509> up_ref(X509* cert) {
  X509_up_ref(cert);
  return bssl::UniquePtr<X509>(cert);
}

}  // namespace

Result<KeyAndCsr> make_key_and_csr() {
  auto key = mtls::generate_p256_key();
  if (!key.ok()) return key.error();
  bssl::UniquePtr<X509_REQ> req(X509_REQ_new());
  if (!req || !X509_REQ_set_version(req.get(), 0) || !X509_REQ_set_pubkey(req.get(), key->get()) ||
      !X509_REQ_sign(req.get(), key->get(), EVP_sha256())) {
    return crypto_error("cannot build a CSR");
  }
  uint8_t* der = nullptr;
  int len = i2d_X509_REQ(req.get(), &der);
  if (len <= 0) return crypto_error("cannot encode a CSR");
  bssl::UniquePtr<uint8_t> owned(der);
  return KeyAndCsr{std::move(key.value()), std::string(reinterpret_cast<const char*>(der), static_cast<size_t>(len))};
}

Result<mtls::X509Svid> svid_from_response(const ::portcullis::authority::v1::X509Svid& response,
                                          bssl::UniquePtr<EVP_PKEY> key, const mtls::TrustBundleSet& bundles,
                                          std::chrono::system_clock::time_point now) {
  auto bad = [&](const std::string& why) {
    return make_error(ErrorCode::kInvalidArgument, "authority sent an unusable SVID for " + response.spiffe_id() + ": " + why);
  };
  if (response.cert_chain_size() == 0) return bad("empty certificate chain");
  mtls::X509Svid svid;
  std::vector<X509*> chain;
  for (const auto& der : response.cert_chain()) {
    const uint8_t* p = reinterpret_cast<const uint8_t*>(der.data());
    bssl::UniquePtr<X509> cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
    if (!cert || p != reinterpret_cast<const uint8_t*>(der.data()) + der.size()) {
      mtls::drain_ssl_errors();
      return bad("a certificate does not parse");
    }
    chain.push_back(cert.get());
    svid.chain.push_back(std::move(cert));
    svid.certificates_der.push_back(der);
  }
  X509* leaf = chain.front();
  bssl::UniquePtr<EVP_PKEY> leaf_key(X509_get_pubkey(leaf));
  if (!leaf_key || EVP_PKEY_cmp(leaf_key.get(), key.get()) != 1) return bad("the leaf does not carry our public key");
  mtls::PeerIdentity identity;
  mtls::SvidVerifyError error;
  mtls::VerifyOptions options;
  options.now = now;
  if (!mtls::verify_x509_svid(chain, bundles, options, &identity, &error)) {
    return bad(std::string(mtls::svid_rejection_name(error.reason)) + ": " + error.message);
  }
  if (identity.spiffe_id != response.spiffe_id()) return bad("the leaf names " + identity.spiffe_id);
  int64_t not_after = 0;
  if (!asn1_time_to_unix(X509_get0_notAfter(leaf), &not_after)) return bad("unreadable notAfter");
  auto pkcs8 = pkcs8_der(key.get());
  if (!pkcs8.ok()) return pkcs8.error();
  svid.spiffe_id = identity.spiffe_id;
  svid.private_key_pkcs8 = std::move(pkcs8.value());
  svid.private_key = std::move(key);
  svid.not_after = std::chrono::system_clock::time_point(std::chrono::seconds(not_after));
  return svid;
}

mtls::X509Svid clone_svid(const mtls::X509Svid& svid) {
  mtls::X509Svid out;
  out.spiffe_id = svid.spiffe_id;
  out.certificates_der = svid.certificates_der;
  out.private_key_pkcs8 = svid.private_key_pkcs8;
  out.hint = svid.hint;
  for (const auto& c : svid.chain) out.chain.push_back(up_ref(c.get()));
  if (svid.private_key) {
    EVP_PKEY_up_ref(svid.private_key.get());
    out.private_key.reset(svid.private_key.get());
  }
  out.not_after = svid.not_after;
  return out;
}

Result<std::shared_ptr<const mtls::TrustBundle>> bundle_from_proto(const ::portcullis::authority::v1::Bundle& bundle) {
  if (!bundle.spiffe_bundle_json().empty()) {
    auto parsed = mtls::TrustBundle::from_spiffe_json(bundle.trust_domain(), bundle.spiffe_bundle_json());
    if (!parsed.ok() || (*parsed)->sequence() == bundle.sequence_number()) return parsed;
    // The JSON may omit spiffe_sequence; the proto's number is the one that orders updates.
    std::vector<bssl::UniquePtr<X509>> certs;
    for (const auto& c : (*parsed)->authorities()) certs.push_back(up_ref(c.get()));
    std::vector<mtls::JwtAuthority> jwt;
    for (const auto& a : (*parsed)->jwt_authorities()) {
      EVP_PKEY_up_ref(a.public_key.get());
      jwt.push_back(mtls::JwtAuthority{a.key_id, bssl::UniquePtr<EVP_PKEY>(a.public_key.get())});
    }
    return std::make_shared<const mtls::TrustBundle>(bundle.trust_domain(), std::move(certs), bundle.sequence_number(),
                                                     std::move(jwt), (*parsed)->refresh_hint_seconds());
  }
  std::vector<bssl::UniquePtr<X509>> certs;
  for (const auto& der : bundle.x509_authorities()) {
    const uint8_t* p = reinterpret_cast<const uint8_t*>(der.data());
    bssl::UniquePtr<X509> cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
    if (!cert) {
      mtls::drain_ssl_errors();
      return make_error(ErrorCode::kInvalidArgument, "bundle of " + bundle.trust_domain() + ": an authority does not parse");
    }
    certs.push_back(std::move(cert));
  }
  if (certs.empty()) return make_error(ErrorCode::kInvalidArgument, "bundle of " + bundle.trust_domain() + " is empty");
  return std::make_shared<const mtls::TrustBundle>(bundle.trust_domain(), std::move(certs), bundle.sequence_number());
}

}  // namespace portcullis::attest::agent
