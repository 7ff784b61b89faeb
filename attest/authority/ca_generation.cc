#include "attest/authority/ca_generation.h"

#include <openssl/bn.h>
#include <openssl/mem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <unistd.h>

#include <algorithm>
#include <cctype>

#include "attest/authority/ca_files.h"
#include "mtls/ssl_error.h"
#include "mtls/trust_bundle.h"

namespace portcullis::attest::authority {
namespace {

using Clock = std::chrono::system_clock;

Error invalid(std::string message) { return make_error(ErrorCode::kInvalidArgument, std::move(message)); }

std::string file(const std::string& dir, const char* prefix, uint64_t id, const char* suffix) {
  return dir + "/" + prefix + std::to_string(id) + suffix;
}

std::string random_hex(size_t bytes) {
  std::vector<uint8_t> b(bytes);
  RAND_bytes(b.data(), b.size());
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (uint8_t x : b) out += {kHex[x >> 4], kHex[x & 15]};
  return out;
}

bool is_ca_cert(X509* cert) {
  uint32_t flags = X509_get_extension_flags(cert);
  if (!(flags & EXFLAG_CA) || (flags & EXFLAG_INVALID)) return false;
  return !(flags & EXFLAG_KUSAGE) || (X509_get_key_usage(cert) & KU_KEY_CERT_SIGN);
}

bool key_matches(X509* cert, EVP_PKEY* key) {
  bssl::UniquePtr<EVP_PKEY> pub(X509_get_pubkey(cert));
  bool ok = pub && EVP_PKEY_cmp(pub.get(), key) == 1;
  mtls::drain_ssl_errors();
  return ok;
}

Result<std::shared_ptr<const CaSigner>> create_root(const std::string& dir, const NewGeneration& spec) {
  mtls::CertSpec cert;
  // A distinct name per generation: during an overlap two roots are trusted at once, and path
  // building matches issuers by name (and key identifier) before it checks signatures.
  cert.common_name = "Portcullis CA " + spec.trust_domain + " " + std::to_string(spec.id) + "-" + random_hex(4);
  cert.uri_sans = {"spiffe://" + spec.trust_domain};
  cert.is_ca = true;
  cert.key_usage = mtls::kKuKeyCertSign | mtls::kKuCrlSign;
  cert.server_auth = cert.client_auth = false;
  cert.not_before = spec.now - spec.backdate;
  cert.not_after = spec.not_after;
  cert.key_identifiers = true;
  auto root = mtls::mint_certificate(cert, nullptr);
  if (!root.ok()) return root.error();
  auto key_pem = private_key_pem(root->key.get());
  if (!key_pem.ok()) return key_pem.error();
  auto anchor = certificate_der(root->cert.get());
  if (!anchor.ok()) return anchor.error();
  if (Status s = write_file_atomic(file(dir, "ca-", spec.id, ".key"), *key_pem, 0600); !s.ok()) return s.error();
  if (Status s = write_file_atomic(file(dir, "ca-", spec.id, ".crt"), root->cert_pem(), 0644); !s.ok()) return s.error();
  auto signer = std::make_shared<CaSigner>();
  signer->not_after = asn1_time_point(X509_get0_notAfter(root->cert.get()));
  signer->ca = std::move(root.value());
  signer->anchor_der = std::move(anchor.value());
  return std::shared_ptr<const CaSigner>(std::move(signer));
}

Result<std::shared_ptr<const CaSigner>> load_root(const std::string& dir, uint64_t id) {
  const std::string crt = file(dir, "ca-", id, ".crt"), key_file = file(dir, "ca-", id, ".key");
  auto pem = read_small_file(crt);
  if (!pem.ok()) return pem.error();
  auto certs = mtls::parse_pem_certificates(*pem);
  if (!certs.ok() || certs->size() != 1) return invalid(crt + ": not exactly one PEM certificate");
  auto key = read_private_key_file(key_file);
  if (!key.ok()) return key.error();
  if (!key_matches((*certs)[0].get(), key->get())) return invalid(key_file + " does not match " + crt);
  auto signer = std::make_shared<CaSigner>();
  signer->ca.cert = std::move((*certs)[0]);
  signer->ca.key = std::move(key.value());
  auto anchor = certificate_der(signer->ca.cert.get());
  if (!anchor.ok()) return anchor.error();
  signer->anchor_der = std::move(anchor.value());
  signer->not_after = asn1_time_point(X509_get0_notAfter(signer->ca.cert.get()));
  return std::shared_ptr<const CaSigner>(std::move(signer));
}

}  // namespace

Result<std::string> certificate_der(X509* cert) {
  uint8_t* der = nullptr;
  int len = i2d_X509(cert, &der);
  if (len <= 0) return make_error(ErrorCode::kInternal, "encoding a certificate: " + mtls::drain_ssl_errors());
  bssl::UniquePtr<uint8_t> owned(der);
  return std::string(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
}

std::string serial_hex(X509* cert) {
  bssl::UniquePtr<BIGNUM> bn(ASN1_INTEGER_to_BN(X509_get_serialNumber(cert), nullptr));
  bssl::UniquePtr<char> hex(bn ? BN_bn2hex(bn.get()) : nullptr);
  std::string out = hex ? hex.get() : "";
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

Clock::time_point asn1_time_point(const ASN1_TIME* t) {
  int days = 0, seconds = 0;
  bssl::UniquePtr<ASN1_TIME> epoch(ASN1_TIME_set(nullptr, 0));
  ASN1_TIME_diff(&days, &seconds, epoch.get(), t);
  return Clock::time_point(std::chrono::seconds(static_cast<int64_t>(days) * 86400 + seconds));
}

Result<std::shared_ptr<const CaGeneration>> create_generation(const std::string& data_dir, const NewGeneration& spec) {
  auto g = std::make_shared<CaGeneration>();
  g->id = spec.id;
  g->not_after = spec.not_after;
  if (spec.with_root) {
    auto root = create_root(data_dir, spec);
    if (!root.ok()) return root.error();
    g->own_ca = std::move(root.value());
    g->not_after = g->own_ca->not_after;
  }
  auto jwt_key = mtls::generate_p256_key();
  if (!jwt_key.ok()) return jwt_key.error();
  auto jwt_pem = private_key_pem(jwt_key->get());
  if (!jwt_pem.ok()) return jwt_pem.error();
  if (Status s = write_file_atomic(file(data_dir, "jwt-", spec.id, ".key"), *jwt_pem, 0600); !s.ok()) return s.error();
  auto jwt = mtls::JwtSigner::create(std::move(jwt_key.value()), spec.jwt_key_id);
  if (!jwt.ok()) return jwt.error();
  g->jwt = std::move(jwt.value());
  return std::shared_ptr<const CaGeneration>(std::move(g));
}

Result<std::shared_ptr<const CaGeneration>> load_generation(const std::string& data_dir, uint64_t id,
                                                            const std::string& jwt_key_id, int64_t not_after) {
  auto g = std::make_shared<CaGeneration>();
  g->id = id;
  g->not_after = Clock::time_point(std::chrono::seconds(not_after));
  if (::access(file(data_dir, "ca-", id, ".crt").c_str(), F_OK) == 0) {
    auto root = load_root(data_dir, id);
    if (!root.ok()) return root.error();
    g->own_ca = std::move(root.value());
    g->not_after = g->own_ca->not_after;
  }
  const std::string jwt_file = file(data_dir, "jwt-", id, ".key");
  auto jwt_key = read_private_key_file(jwt_file);
  if (!jwt_key.ok()) return jwt_key.error();
  auto jwt = mtls::JwtSigner::create(std::move(jwt_key.value()), jwt_key_id);
  if (!jwt.ok()) return make_error(jwt.error().code, jwt_file + ": " + jwt.error().message);
  g->jwt = std::move(jwt.value());
  return std::shared_ptr<const CaGeneration>(std::move(g));
}

void remove_generation_files(const std::string& data_dir, uint64_t id) {
  ::unlink(file(data_dir, "ca-", id, ".crt").c_str());
  ::unlink(file(data_dir, "ca-", id, ".key").c_str());
  ::unlink(file(data_dir, "jwt-", id, ".key").c_str());
}

Result<std::shared_ptr<const CaSigner>> load_upstream_ca(const std::pair<mtls::DataSource, mtls::DataSource>& upstream) {
  auto read = [](const mtls::DataSource& ds) { return ds.is_file() ? read_small_file(ds.filename) : Result<std::string>(ds.inline_string); };
  const std::string where = "upstream certificate_chain " + upstream.first.describe();
  auto chain_pem = read(upstream.first);
  if (!chain_pem.ok()) return chain_pem.error();
  auto key_pem = read(upstream.second);
  if (!key_pem.ok()) return key_pem.error();
  auto certs = mtls::parse_pem_certificates(*chain_pem);
  if (!certs.ok()) return invalid(where + ": " + certs.error().message);
  if (certs->empty()) return invalid(where + ": no PEM certificate");
  auto key = parse_private_key_pem(*key_pem, "upstream private_key " + upstream.second.describe());
  if (!key.ok()) return key.error();
  auto s = std::make_shared<CaSigner>();
  s->not_after = Clock::time_point::max();
  for (size_t i = 0; i < certs->size(); ++i) {
    X509* c = (*certs)[i].get();
    const bool last = i + 1 == certs->size();
    if (!is_ca_cert(c)) return invalid(where + ": certificate " + std::to_string(i) + " is not a CA with keyCertSign");
    // Each link must verify; the last certificate is checked against itself only if self-issued
    // (a trust anchor need not be a self-signed root).
    X509* issuer = last ? c : (*certs)[i + 1].get();
    if (!last || X509_check_issued(c, c) == X509_V_OK) {
      bssl::UniquePtr<EVP_PKEY> issuer_key(X509_get_pubkey(issuer));
      if (!issuer_key || X509_verify(c, issuer_key.get()) != 1) {
        mtls::drain_ssl_errors();
        return invalid(where + ": certificate " + std::to_string(i) + " is not signed by the next one");
      }
    }
    s->not_after = std::min(s->not_after, asn1_time_point(X509_get0_notAfter(c)));
    auto der = certificate_der(c);
    if (!der.ok()) return der.error();
    if (!last) s->intermediates_der.push_back(std::move(der.value()));
    else s->anchor_der = std::move(der.value());
  }
  if (!key_matches((*certs)[0].get(), key->get())) {
    return invalid("upstream private_key " + upstream.second.describe() + " does not match the first certificate of " + where);
  }
  s->ca.cert = std::move((*certs)[0]);
  s->ca.key = std::move(key.value());
  return std::shared_ptr<const CaSigner>(std::move(s));
}

}  // namespace portcullis::attest::authority
