// Fuzzes the authority's CSR check (the bytes come from any node that can reach the authority):
// never crash, and whatever is accepted has a key the SVID rules allow.
#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "attest/authority/csr.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace portcullis::attest::authority;
  CsrError error;
  CsrLimits limits;
  bssl::UniquePtr<EVP_PKEY> key = csr_public_key(std::string_view(reinterpret_cast<const char*>(data), size), limits, &error);
  if (!key) return 0;
  int type = EVP_PKEY_id(key.get());
  unsigned bits = EVP_PKEY_bits(key.get());
  bool ok = (type == EVP_PKEY_EC && (bits == 256 || bits == 384)) ||
            (type == EVP_PKEY_RSA && bits >= limits.min_rsa_bits && bits <= limits.max_rsa_bits);
  if (!ok) std::abort();
  return 0;
}
