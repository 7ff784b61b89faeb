#pragma once

// Token-crafting helpers for the JWT-SVID tests: sign arbitrary headers and claims with any
// algorithm, so the tests can build tokens our own minter never would.
#include <openssl/bn.h>
#include <openssl/digest.h>
#include <openssl/ec_key.h>
#include <openssl/nid.h>
#include <openssl/rsa.h>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "mtls/jose.h"
#include "mtls/trust_bundle.h"

namespace portcullis::mtls::testing {

inline bssl::UniquePtr<EVP_PKEY> ec_key(int nid) {
  bssl::UniquePtr<EC_KEY> ec(EC_KEY_new_by_curve_name(nid));
  bssl::UniquePtr<EVP_PKEY> key(EVP_PKEY_new());
  EXPECT_TRUE(ec && key && EC_KEY_generate_key(ec.get()) && EVP_PKEY_set1_EC_KEY(key.get(), ec.get()));
  return key;
}

inline bssl::UniquePtr<EVP_PKEY> rsa_key(int bits = 2048) {
  bssl::UniquePtr<RSA> rsa(RSA_new());
  bssl::UniquePtr<BIGNUM> e(BN_new());
  bssl::UniquePtr<EVP_PKEY> key(EVP_PKEY_new());
  EXPECT_TRUE(rsa && e && key && BN_set_word(e.get(), RSA_F4) && RSA_generate_key_ex(rsa.get(), bits, e.get(), nullptr) &&
              EVP_PKEY_set1_RSA(key.get(), rsa.get()));
  return key;
}

inline bssl::UniquePtr<EVP_PKEY> public_half(EVP_PKEY* key) {
  auto spki = spki_der(key);
  EXPECT_TRUE(spki.ok());
  CBS cbs;
  CBS_init(&cbs, reinterpret_cast<const uint8_t*>(spki->data()), spki->size());
  return bssl::UniquePtr<EVP_PKEY>(EVP_parse_public_key(&cbs));
}

// sign_jws signs base64url(header).base64url(claims) with `alg` (ES*, RS*, PS*) and `key`.
inline std::string sign_jws(const std::string& header, const std::string& claims, const std::string& alg, EVP_PKEY* key) {
  std::string input = base64url_encode(header) + "." + base64url_encode(claims);
  const EVP_MD* md = alg.ends_with("256") ? EVP_sha256() : alg.ends_with("384") ? EVP_sha384() : EVP_sha512();
  bssl::ScopedEVP_MD_CTX ctx;
  EVP_PKEY_CTX* pctx = nullptr;
  EXPECT_TRUE(EVP_DigestSignInit(ctx.get(), &pctx, md, nullptr, key));
  if (alg.starts_with("PS")) {
    EXPECT_TRUE(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) && EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, -1));
  }
  size_t len = 0;
  EXPECT_TRUE(EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const uint8_t*>(input.data()), input.size()));
  std::string sig(len, '\0');
  EXPECT_TRUE(EVP_DigestSign(ctx.get(), reinterpret_cast<uint8_t*>(sig.data()), &len,
                             reinterpret_cast<const uint8_t*>(input.data()), input.size()));
  sig.resize(len);
  if (alg.starts_with("ES")) {
    auto raw = ecdsa_der_to_raw(std::span(reinterpret_cast<const uint8_t*>(sig.data()), sig.size()),
                                (EVP_PKEY_bits(key) + 7) / 8);
    EXPECT_TRUE(raw.has_value());
    sig = raw.value_or("");
  }
  return input + "." + base64url_encode(sig);
}

// bundle_with builds a trust domain's bundle holding only these JWT authorities.
inline std::shared_ptr<const TrustBundle> jwt_bundle(const std::string& td, std::vector<JwtAuthority> keys) {
  return std::make_shared<const TrustBundle>(td, std::vector<bssl::UniquePtr<X509>>{}, 0, std::move(keys));
}

}  // namespace portcullis::mtls::testing
