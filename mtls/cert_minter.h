#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace portcullis::mtls {

// Key usage bits for CertSpec::key_usage (X.509 KeyUsage, RFC 5280 4.2.1.3).
enum KeyUsageBits : uint32_t {
  kKuDigitalSignature = 1u << 0,
  kKuKeyEncipherment = 1u << 2,
  kKuKeyAgreement = 1u << 4,
  kKuKeyCertSign = 1u << 5,
  kKuCrlSign = 1u << 6,
};

// RawExtension is an extension minted as given: an OID (dotted) and its DER value.
struct RawExtension {
  std::string oid;
  bool critical = false;
  std::string der_value;
};

// CertSpec describes a certificate to mint. The defaults make an X.509-SVID leaf; callers set
// fields to make CAs or deliberately broken certificates for tests.
struct CertSpec {
  std::string common_name;
  std::vector<std::string> uri_sans;
  std::vector<std::string> dns_sans;
  bool is_ca = false;
  int path_len = -1;  // -1: no pathLenConstraint
  uint32_t key_usage = kKuDigitalSignature;
  bool server_auth = true;
  bool client_auth = true;
  std::chrono::system_clock::time_point not_before = std::chrono::system_clock::now() - std::chrono::minutes(5);
  std::chrono::system_clock::time_point not_after = std::chrono::system_clock::now() + std::chrono::hours(1);
  // key_identifiers adds subjectKeyIdentifier and (when the issuer has one) authorityKeyIdentifier,
  // so path building picks the right CA when several share a name (CA rotation overlap).
  bool key_identifiers = false;
  std::vector<RawExtension> extra_extensions;
};

// MintedCert owns a certificate and its private key.
struct MintedCert {
  bssl::UniquePtr<X509> cert;
  bssl::UniquePtr<EVP_PKEY> key;

  std::string cert_pem() const;
  std::string key_pem() const;  // PKCS#8
};

// generate_p256_key makes a fresh ECDSA P-256 key.
Result<bssl::UniquePtr<EVP_PKEY>> generate_p256_key();

// mint_certificate signs `spec` (with a fresh P-256 key, or `subject_key` when given) with
// `issuer`/`issuer_key`, or self-signs when issuer is null. Serial numbers are 128 random bits.
Result<MintedCert> mint_certificate(const CertSpec& spec, const MintedCert* issuer,
                                    EVP_PKEY* subject_key = nullptr);

}  // namespace portcullis::mtls
