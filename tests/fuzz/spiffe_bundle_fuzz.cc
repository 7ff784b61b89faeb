// Fuzzes SPIFFE bundle JSON parsing (federated bundles arrive from other trust domains), and checks
// that whatever parses also survives our writer and parses again to the same authorities.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "mtls/spiffe_bundle_json.h"
#include "mtls/trust_bundle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view json(reinterpret_cast<const char*>(data), size);
  auto bundle = portcullis::mtls::TrustBundle::from_spiffe_json("example.org", json);
  if (!bundle.ok()) return 0;
  auto written = portcullis::mtls::to_spiffe_bundle_json(**bundle);
  if (!written.ok()) return 0;  // an authority JWK cannot express (e.g. an Ed25519 CA)
  auto again = portcullis::mtls::TrustBundle::from_spiffe_json("example.org", *written);
  if (!again.ok() || (*again)->size() != (*bundle)->size() ||
      (*again)->jwt_authorities().size() != (*bundle)->jwt_authorities().size()) {
    std::abort();
  }
  return 0;
}
