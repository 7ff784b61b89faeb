// Fuzzes JWT-SVID validation. The first byte picks the mode: even, the rest is a token as an
// attacker would send it; odd, the rest is `header\nclaims`, which the harness signs with a fixed
// ES256 key so the fuzzer reaches the header and claims checks that follow the signature.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include <openssl/digest.h>

#include "mtls/jose.h"
#include "mtls/jwt_svid.h"

namespace {

using namespace portcullis::mtls;

// A throwaway test key, fixed so corpus entries stay meaningful across runs.
constexpr char kKeyPem[] = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgnaPKSQkQZ1s1aq+C
TMipV1KlwF/tx931FxcdXxQht/6hRANCAATCW0bioXA/OaoaApyGSTZHHvdG5t9z
p890KMKQtqlcPufKIBp1s/4onTibJ0FhrB62a9mo55ZHsOG9lkV6QFZ6
-----END PRIVATE KEY-----
)";

struct Fixture {
  std::shared_ptr<const JwtSigner> signer;
  TrustBundleSet bundles;
};

const Fixture& fixture() {
  static const Fixture f = [] {
    Fixture out;
    auto signer = JwtSigner::from_pem(kKeyPem, "k1");
    if (!signer.ok()) std::abort();
    out.signer = signer.value();
    auto authority = out.signer->authority();
    if (!authority.ok()) std::abort();
    std::vector<JwtAuthority> keys;
    keys.push_back(std::move(authority.value()));
    out.bundles.add(std::make_shared<const TrustBundle>("example.org", std::vector<bssl::UniquePtr<X509>>{}, 0, std::move(keys)));
    return out;
  }();
  return f;
}

// sign builds a compact JWS over arbitrary header and claims bytes with the fixture's key (mint()
// only signs the header and claims it builds itself).
std::string sign(const std::string& header, const std::string& claims) {
  std::string input = base64url_encode(header) + "." + base64url_encode(claims);
  bssl::ScopedEVP_MD_CTX ctx;
  size_t len = 0;
  EVP_PKEY* key = fixture().signer->key();
  if (!EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) ||
      !EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const uint8_t*>(input.data()), input.size())) {
    std::abort();
  }
  std::string der(len, '\0');
  if (!EVP_DigestSign(ctx.get(), reinterpret_cast<uint8_t*>(der.data()), &len, reinterpret_cast<const uint8_t*>(input.data()),
                      input.size())) {
    std::abort();
  }
  auto raw = ecdsa_der_to_raw(std::span(reinterpret_cast<const uint8_t*>(der.data()), len), 32);
  if (!raw) std::abort();
  return input + "." + base64url_encode(*raw);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string token = rest;
  if (data[0] % 2 == 1) {
    size_t nl = rest.find('\n');
    if (nl == std::string::npos) return 0;
    token = sign(rest.substr(0, nl), rest.substr(nl + 1));
  }
  JwtValidateOptions options;
  options.now = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));
  JwtSvidClaims claims;
  JwtVerifyError error;
  if (validate_jwt_svid(token, "db", fixture().bundles, options, &claims, &error)) {
    (void)claims.claims.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else {
    (void)jwt_rejection_name(error.reason);
  }
  return 0;
}
