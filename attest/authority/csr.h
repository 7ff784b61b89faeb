#pragma once

#include <openssl/evp.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace portcullis::attest::authority {

// CsrRejection names why a PKCS#10 request is refused; each has a stable snake_case name for the
// `authority.ca.csr_rejected_<reason>` stats.
enum class CsrRejection { kTooLarge, kMalformed, kUnsupportedKey, kWeakKey, kBadSignature };

const char* csr_rejection_name(CsrRejection r);

struct CsrLimits {
  size_t max_csr_bytes = 16 * 1024;
  // RSA bounds: below the minimum is forgeable in practice; above the maximum, verifying the CSR
  // (and every handshake with the key) costs a caller-chosen amount of CPU.
  unsigned min_rsa_bits = 2048;
  unsigned max_rsa_bits = 8192;
};

struct CsrError {
  CsrRejection reason;
  std::string message;
};

// csr_public_key parses a DER PKCS#10 request (exactly one, no trailing bytes), accepts only an
// EC P-256/P-384 key or an RSA key within the limits, verifies the request's self-signature
// (proof that the caller holds the private key) and returns the public key. Everything else in
// the request (subject, requested extensions) is ignored: the authority decides names. Pure and
// thread-safe. Null with `*out_error` set on refusal.
bssl::UniquePtr<EVP_PKEY> csr_public_key(std::string_view der, const CsrLimits& limits, CsrError* out_error);

}  // namespace portcullis::attest::authority
