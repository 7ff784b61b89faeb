#include "mtls/cert_minter.h"

#include <openssl/bn.h>
#include <openssl/bytestring.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/mem.h>
#include <openssl/obj.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "mtls/ssl_error.h"

namespace portcullis::mtls {
namespace {

Error ssl_failure(const std::string& what) {
  return make_error(ErrorCode::kInternal, what + ": " + drain_ssl_errors());
}

std::string bio_to_string(BIO* bio) {
  const uint8_t* data = nullptr;
  size_t len = 0;
  BIO_mem_contents(bio, &data, &len);
  return std::string(reinterpret_cast<const char*>(data), len);
}

bool add_extension(X509* cert, int nid, bool critical, void* value) {
  return X509_add1_ext_i2d(cert, nid, value, critical ? 1 : 0, X509V3_ADD_DEFAULT) == 1;
}

bool add_sans(X509* cert, const CertSpec& spec) {
  if (spec.uri_sans.empty() && spec.dns_sans.empty()) return true;
  bssl::UniquePtr<GENERAL_NAMES> names(sk_GENERAL_NAME_new_null());
  auto push = [&](int type, const std::string& value) {
    bssl::UniquePtr<GENERAL_NAME> gn(GENERAL_NAME_new());
    bssl::UniquePtr<ASN1_IA5STRING> str(ASN1_IA5STRING_new());
    if (!gn || !str || !ASN1_STRING_set(str.get(), value.data(), static_cast<int>(value.size()))) return false;
    GENERAL_NAME_set0_value(gn.get(), type, str.release());
    return sk_GENERAL_NAME_push(names.get(), gn.release()) != 0;
  };
  for (const auto& u : spec.uri_sans) {
    if (!push(GEN_URI, u)) return false;
  }
  for (const auto& d : spec.dns_sans) {
    if (!push(GEN_DNS, d)) return false;
  }
  // RFC 5280: with an empty subject the SAN extension must be critical.
  return add_extension(cert, NID_subject_alt_name, spec.common_name.empty(), names.get());
}

bool add_key_usage(X509* cert, uint32_t bits) {
  if (bits == 0) return true;
  bssl::UniquePtr<ASN1_BIT_STRING> ku(ASN1_BIT_STRING_new());
  for (int bit = 0; bit < 9; ++bit) {
    if ((bits & (1u << bit)) && !ASN1_BIT_STRING_set_bit(ku.get(), bit, 1)) return false;
  }
  return add_extension(cert, NID_key_usage, true, ku.get());
}

bool add_basic_constraints(X509* cert, const CertSpec& spec) {
  bssl::UniquePtr<BASIC_CONSTRAINTS> bc(BASIC_CONSTRAINTS_new());
  bc->ca = spec.is_ca ? 0xff : 0;
  if (spec.is_ca && spec.path_len >= 0) {
    bc->pathlen = ASN1_INTEGER_new();
    ASN1_INTEGER_set(bc->pathlen, spec.path_len);
  }
  return add_extension(cert, NID_basic_constraints, true, bc.get());
}

bool add_eku(X509* cert, const CertSpec& spec) {
  if (!spec.server_auth && !spec.client_auth) return true;
  bssl::UniquePtr<EXTENDED_KEY_USAGE> eku(sk_ASN1_OBJECT_new_null());
  if (spec.server_auth) sk_ASN1_OBJECT_push(eku.get(), OBJ_nid2obj(NID_server_auth));
  if (spec.client_auth) sk_ASN1_OBJECT_push(eku.get(), OBJ_nid2obj(NID_client_auth));
  return add_extension(cert, NID_ext_key_usage, false, eku.get());
}

bool add_raw_extensions(X509* cert, const CertSpec& spec) {
  for (const RawExtension& e : spec.extra_extensions) {
    bssl::UniquePtr<ASN1_OBJECT> obj(OBJ_txt2obj(e.oid.c_str(), /*dont_search_names=*/1));
    bssl::UniquePtr<ASN1_OCTET_STRING> value(ASN1_OCTET_STRING_new());
    if (!obj || !value ||
        !ASN1_OCTET_STRING_set(value.get(), reinterpret_cast<const uint8_t*>(e.der_value.data()), static_cast<int>(e.der_value.size()))) {
      return false;
    }
    bssl::UniquePtr<X509_EXTENSION> ext(X509_EXTENSION_create_by_OBJ(nullptr, obj.get(), e.critical ? 1 : 0, value.get()));
    if (!ext || !X509_add_ext(cert, ext.get(), -1)) return false;
  }
  return true;
}

// add_key_identifiers: SKID is the SHA-1 of the SubjectPublicKeyInfo (RFC 5280 4.2.1.2 only asks
// for a value unique to the key); AKID copies the issuer's SKID (a self-signed cert's own).
bool add_key_identifiers(X509* cert, X509* issuer) {
  uint8_t digest[SHA_DIGEST_LENGTH];
  unsigned len = 0;
  if (!X509_pubkey_digest(cert, EVP_sha1(), digest, &len)) return false;
  bssl::UniquePtr<ASN1_OCTET_STRING> skid(ASN1_OCTET_STRING_new());
  if (!skid || !ASN1_OCTET_STRING_set(skid.get(), digest, static_cast<int>(len)) ||
      !add_extension(cert, NID_subject_key_identifier, false, skid.get())) {
    return false;
  }
  const ASN1_OCTET_STRING* issuer_skid = issuer ? X509_get0_subject_key_id(issuer) : skid.get();
  if (issuer_skid == nullptr) return true;
  bssl::UniquePtr<AUTHORITY_KEYID> akid(AUTHORITY_KEYID_new());
  if (!akid) return false;
  akid->keyid = ASN1_OCTET_STRING_dup(issuer_skid);
  return akid->keyid && add_extension(cert, NID_authority_key_identifier, false, akid.get());
}

bool set_validity(X509* cert, const CertSpec& spec) {
  auto to_time = [](std::chrono::system_clock::time_point t) { return std::chrono::system_clock::to_time_t(t); };
  bssl::UniquePtr<ASN1_TIME> nb(ASN1_TIME_set(nullptr, to_time(spec.not_before)));
  bssl::UniquePtr<ASN1_TIME> na(ASN1_TIME_set(nullptr, to_time(spec.not_after)));
  return nb && na && X509_set1_notBefore(cert, nb.get()) && X509_set1_notAfter(cert, na.get());
}

bool set_random_serial(X509* cert) {
  uint8_t bytes[16];
  RAND_bytes(bytes, sizeof bytes);
  bytes[0] &= 0x7f;  // positive
  bytes[0] |= 0x01;  // and 16 bytes long
  bssl::UniquePtr<BIGNUM> bn(BN_bin2bn(bytes, sizeof bytes, nullptr));
  return bn && BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) != nullptr;
}

}  // namespace

std::string MintedCert::cert_pem() const {
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert.get());
  return bio_to_string(bio.get());
}

std::string MintedCert::key_pem() const {
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PKCS8PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  return bio_to_string(bio.get());
}

Result<bssl::UniquePtr<EVP_PKEY>> generate_p256_key() {
  bssl::UniquePtr<EC_KEY> ec(EC_KEY_new_by_curve_name(NID_X9_62_prime256v1));
  bssl::UniquePtr<EVP_PKEY> key(EVP_PKEY_new());
  if (!ec || !key || !EC_KEY_generate_key(ec.get()) || !EVP_PKEY_assign_EC_KEY(key.get(), ec.release())) {
    return ssl_failure("generating a P-256 key");
  }
  return key;
}

Result<MintedCert> mint_certificate(const CertSpec& spec, const MintedCert* issuer, EVP_PKEY* subject_key) {
  MintedCert out;
  if (subject_key) {
    EVP_PKEY_up_ref(subject_key);
    out.key.reset(subject_key);
  } else {
    auto key = generate_p256_key();
    if (!key.ok()) return key.error();
    out.key = std::move(key.value());
  }
  out.cert.reset(X509_new());
  X509* cert = out.cert.get();
  bssl::UniquePtr<X509_NAME> name(X509_NAME_new());
  if (!spec.common_name.empty()) {
    X509_NAME_add_entry_by_txt(name.get(), "CN", MBSTRING_UTF8,
                               reinterpret_cast<const uint8_t*>(spec.common_name.data()),
                               static_cast<int>(spec.common_name.size()), -1, 0);
  }
  X509_NAME* issuer_name = issuer ? X509_get_subject_name(issuer->cert.get()) : name.get();
  if (!X509_set_version(cert, X509_VERSION_3) || !set_random_serial(cert) || !X509_set_subject_name(cert, name.get()) ||
      !X509_set_issuer_name(cert, issuer_name) || !set_validity(cert, spec) || !X509_set_pubkey(cert, out.key.get()) ||
      !add_basic_constraints(cert, spec) || !add_key_usage(cert, spec.key_usage) || !add_eku(cert, spec) ||
      !add_sans(cert, spec) || !add_raw_extensions(cert, spec) ||
      (spec.key_identifiers && !add_key_identifiers(cert, issuer ? issuer->cert.get() : nullptr))) {
    return ssl_failure("building certificate");
  }
  EVP_PKEY* signer = issuer ? issuer->key.get() : out.key.get();
  if (!X509_sign(cert, signer, EVP_sha256())) return ssl_failure("signing certificate");
  return out;
}

}  // namespace portcullis::mtls
