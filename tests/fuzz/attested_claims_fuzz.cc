// Fuzzes the attested-claims extension decoder (the bytes come from a peer's certificate), and
// checks canonical form: whatever decodes re-encodes to exactly the same bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "mtls/attested_claims.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view der(reinterpret_cast<const char*>(data), size);
  auto claims = portcullis::mtls::decode_attested_claims(der);
  if (!claims.ok()) return 0;
  auto again = portcullis::mtls::encode_attested_claims(*claims);
  if (!again.ok() || *again != der) std::abort();
  return 0;
}
