#include "attest/authority/csr.h"

#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/nid.h>
#include <openssl/x509.h>

#include "mtls/ssl_error.h"

namespace portcullis::attest::authority {
namespace {

bssl::UniquePtr<EVP_PKEY> refuse(CsrError* out, CsrRejection reason, std::string message) {
  mtls::drain_ssl_errors();
  *out = CsrError{reason, "CSR rejected (" + std::string(csr_rejection_name(reason)) + "): " + std::move(message)};
  return nullptr;
}

// key_problem returns why `key` is not acceptable for an SVID, or "" when it is.
std::string key_problem(EVP_PKEY* key, const CsrLimits& limits, CsrRejection* out_reason) {
  *out_reason = CsrRejection::kUnsupportedKey;
  switch (EVP_PKEY_id(key)) {
    case EVP_PKEY_EC: {
      const EC_GROUP* group = EC_KEY_get0_group(EVP_PKEY_get0_EC_KEY(key));
      int nid = group ? EC_GROUP_get_curve_name(group) : NID_undef;
      if (nid == NID_X9_62_prime256v1 || nid == NID_secp384r1) return "";
      return std::string("EC curve ") + (nid == NID_undef ? "(explicit parameters)" : OBJ_nid2sn(nid)) + " (want P-256 or P-384)";
    }
    case EVP_PKEY_RSA: {
      unsigned bits = EVP_PKEY_bits(key);
      if (bits >= limits.min_rsa_bits && bits <= limits.max_rsa_bits) return "";
      if (bits < limits.min_rsa_bits) *out_reason = CsrRejection::kWeakKey;
      return "RSA key of " + std::to_string(bits) + " bits (want " + std::to_string(limits.min_rsa_bits) + " to " +
             std::to_string(limits.max_rsa_bits) + ")";
    }
    default: return "key type " + std::to_string(EVP_PKEY_id(key)) + " (want EC P-256/P-384 or RSA)";
  }
}

}  // namespace

const char* csr_rejection_name(CsrRejection r) {
  switch (r) {
    case CsrRejection::kTooLarge: return "too_large";
    case CsrRejection::kMalformed: return "malformed";
    case CsrRejection::kUnsupportedKey: return "unsupported_key";
    case CsrRejection::kWeakKey: return "weak_key";
    case CsrRejection::kBadSignature: return "bad_signature";
  }
  return "unknown";
}

bssl::UniquePtr<EVP_PKEY> csr_public_key(std::string_view der, const CsrLimits& limits, CsrError* out_error) {
  if (der.size() > limits.max_csr_bytes) {
    return refuse(out_error, CsrRejection::kTooLarge, std::to_string(der.size()) + " bytes, more than " + std::to_string(limits.max_csr_bytes));
  }
  const uint8_t* p = reinterpret_cast<const uint8_t*>(der.data());
  bssl::UniquePtr<X509_REQ> req(d2i_X509_REQ(nullptr, &p, static_cast<long>(der.size())));
  if (!req) return refuse(out_error, CsrRejection::kMalformed, "not a DER PKCS#10 request: " + mtls::drain_ssl_errors());
  if (p != reinterpret_cast<const uint8_t*>(der.data()) + der.size()) {
    return refuse(out_error, CsrRejection::kMalformed, "trailing bytes after the request");
  }
  bssl::UniquePtr<EVP_PKEY> key(X509_REQ_get_pubkey(req.get()));
  if (!key) return refuse(out_error, CsrRejection::kUnsupportedKey, "public key does not parse: " + mtls::drain_ssl_errors());
  // Key checks first: a huge RSA key would make the signature check itself the attack.
  CsrRejection reason;
  if (std::string problem = key_problem(key.get(), limits, &reason); !problem.empty()) return refuse(out_error, reason, problem);
  if (X509_REQ_verify(req.get(), key.get()) != 1) {
    return refuse(out_error, CsrRejection::kBadSignature, "the request's signature does not verify with its own key");
  }
  mtls::drain_ssl_errors();
  return key;
}

}  // namespace portcullis::attest::authority
