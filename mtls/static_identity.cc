#include "mtls/static_identity.h"

#include <openssl/bio.h>
#include <openssl/bytestring.h>
#include <openssl/mem.h>
#include <openssl/pem.h>

#include "common/digest.h"
#include "mtls/spiffe_id.h"
#include "mtls/ssl_error.h"
#include "mtls/tls_context.h"
#include "mtls/x509_svid_verifier.h"

namespace portcullis::mtls {
namespace {

Error invalid(const DataSource& src, const std::string& what) {
  std::string detail = drain_ssl_errors();
  return make_error(ErrorCode::kInvalidArgument, src.describe() + ": " + (detail.empty() ? what : what + ": " + detail));
}

// Sources accumulates every text read, so one digest says whether anything changed.
struct Sources {
  std::string all;
  Result<std::string> read(const DataSource& src) {
    auto text = read_data_source(src);
    if (text.ok()) all += src.describe() + '\0' + *text + '\0';
    return text;
  }
};

Result<std::shared_ptr<const TrustBundle>> load_bundle(Sources& sources, const std::string& td, const DataSource& src) {
  auto text = sources.read(src);
  if (!text.ok()) return text.error();
  size_t first = text->find_first_not_of(" \t\r\n");
  auto bundle = first != std::string::npos && (*text)[first] == '{' ? TrustBundle::from_spiffe_json(td, *text)
                                                                    : TrustBundle::from_pem(td, *text);
  if (!bundle.ok()) return make_error(ErrorCode::kInvalidArgument, src.describe() + ": " + bundle.error().message);
  return bundle;
}

Result<std::string> pkcs8_der(EVP_PKEY* key, const DataSource& src) {
  bssl::ScopedCBB cbb;
  uint8_t* der = nullptr;
  size_t len = 0;
  if (!CBB_init(cbb.get(), 256) || !EVP_marshal_private_key(cbb.get(), key) || !CBB_finish(cbb.get(), &der, &len)) {
    return invalid(src, "cannot encode the private key as PKCS#8");
  }
  bssl::UniquePtr<uint8_t> owned(der);
  return std::string(reinterpret_cast<const char*>(der), len);
}

// load_svid reads the chain and key and checks the leaf against the own trust domain's bundle.
Result<X509Svid> load_svid(Sources& sources, const IdentityConfig& config, const TrustBundleSet& own) {
  auto chain_pem = sources.read(config.certificate_chain);
  if (!chain_pem.ok()) return chain_pem.error();
  auto key_pem = sources.read(config.private_key);
  if (!key_pem.ok()) return key_pem.error();
  auto certs = parse_pem_certificates(*chain_pem);
  if (!certs.ok()) return invalid(config.certificate_chain, certs.error().message);
  if (certs->empty()) return invalid(config.certificate_chain, "no PEM certificate");
  bssl::UniquePtr<BIO> bio(BIO_new_mem_buf(key_pem->data(), static_cast<int>(key_pem->size())));
  bssl::UniquePtr<EVP_PKEY> key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) return invalid(config.private_key, "no usable PEM private key");
  X509* leaf = (*certs)[0].get();
  auto id_text = leaf_spiffe_id(leaf);
  if (!id_text.ok()) return invalid(config.certificate_chain, "the leaf is not an X.509-SVID: " + id_text.error().message);
  auto id = SpiffeId::parse(*id_text);
  if (!id.ok() || !id->member_of(config.trust_domain)) {
    return invalid(config.certificate_chain, "the leaf's SPIFFE ID " + *id_text + " is not in trust domain " + config.trust_domain);
  }
  std::vector<X509*> chain;
  for (const auto& c : *certs) chain.push_back(c.get());
  PeerIdentity identity;
  SvidVerifyError error;
  if (!verify_x509_svid(chain, own, VerifyOptions{}, &identity, &error)) {
    return invalid(config.certificate_chain, std::string("not a valid X.509-SVID (") + svid_rejection_name(error.reason) +
                                                 "): " + error.message);
  }
  bssl::UniquePtr<EVP_PKEY> leaf_key(X509_get_pubkey(leaf));
  if (!leaf_key || EVP_PKEY_cmp(leaf_key.get(), key.get()) != 1) {
    return invalid(config.private_key, "the private key does not match the certificate " + config.certificate_chain.describe());
  }
  X509Svid svid;
  svid.spiffe_id = id->str();
  for (const auto& c : *certs) {
    uint8_t* der = nullptr;
    int len = i2d_X509(c.get(), &der);
    if (len <= 0) return invalid(config.certificate_chain, "cannot re-encode a certificate");
    bssl::UniquePtr<uint8_t> owned(der);
    svid.certificates_der.emplace_back(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
  }
  auto pkcs8 = pkcs8_der(key.get(), config.private_key);
  if (!pkcs8.ok()) return pkcs8.error();
  svid.private_key_pkcs8 = std::move(pkcs8.value());
  svid.not_after = std::chrono::system_clock::time_point(
      std::chrono::seconds(certificate_details(leaf, config.certificate_chain.describe()).expiration_time));
  svid.chain = std::move(certs.value());
  svid.private_key = std::move(key);
  return svid;
}

// with_signer returns `bundle` plus the signer's public key among its JWT authorities, so tokens we
// mint validate against our own bundle even when the bundle file is PEM (which has no JWT keys).
Result<std::shared_ptr<const TrustBundle>> with_signer(const TrustBundle& bundle, const JwtSigner& signer,
                                                      const DataSource& src) {
  auto ours = signer.authority();
  if (!ours.ok()) return ours.error();
  std::vector<JwtAuthority> jwt;
  for (const auto& a : bundle.jwt_authorities()) {
    if (a.key_id == ours->key_id && EVP_PKEY_cmp(a.public_key.get(), ours->public_key.get()) != 1) {
      return invalid(src, "the trust bundle holds a different key under the signing key's kid '" + a.key_id + "'");
    }
    if (a.key_id == ours->key_id) continue;
    if (!EVP_PKEY_up_ref(a.public_key.get())) return invalid(src, "EVP_PKEY_up_ref");
    jwt.push_back(JwtAuthority{a.key_id, bssl::UniquePtr<EVP_PKEY>(a.public_key.get())});
  }
  jwt.push_back(std::move(ours.value()));
  std::vector<bssl::UniquePtr<X509>> x509;
  for (const auto& c : bundle.authorities()) {
    if (!X509_up_ref(c.get())) return invalid(src, "X509_up_ref");
    x509.emplace_back(c.get());
  }
  return std::make_shared<const TrustBundle>(bundle.trust_domain(), std::move(x509), bundle.sequence(), std::move(jwt),
                                             bundle.refresh_hint_seconds());
}

}  // namespace

Result<LoadedIdentity> load_static_identity(const IdentityConfig& config) {
  Sources sources;
  auto own = load_bundle(sources, config.trust_domain, config.trust_bundle);
  if (!own.ok()) return own.error();
  TrustBundleSet own_only;
  own_only.add(own.value());
  auto svid = load_svid(sources, config, own_only);
  if (!svid.ok()) return svid.error();
  auto snapshot = std::make_shared<IdentitySnapshot>();
  snapshot->trust_domain = config.trust_domain;
  snapshot->svids.push_back(std::move(svid.value()));
  snapshot->jwt_svid_ttl = config.jwt_svid_ttl;
  snapshot->jwt_validation.max_token_bytes = config.jwt_max_token_bytes;
  snapshot->jwt_validation.clock_skew = config.jwt_clock_skew;
  std::shared_ptr<const TrustBundle> own_bundle = own.value();
  if (config.jwt_signing_key) {
    auto pem = sources.read(*config.jwt_signing_key);
    if (!pem.ok()) return pem.error();
    auto signer = JwtSigner::from_pem(*pem, config.jwt_key_id);
    if (!signer.ok()) return invalid(*config.jwt_signing_key, signer.error().message);
    auto merged = with_signer(*own_bundle, **signer, config.trust_bundle);
    if (!merged.ok()) return merged.error();
    own_bundle = merged.value();
    snapshot->jwt_signer = signer.value();
  }
  snapshot->bundles.add(own_bundle);
  for (const auto& [td, src] : config.federated_bundles) {
    auto bundle = load_bundle(sources, td, src);
    if (!bundle.ok()) return bundle.error();
    snapshot->bundles.add(bundle.value());
  }
  return LoadedIdentity{std::move(snapshot), sha256_hex(sources.all)};
}

}  // namespace portcullis::mtls
