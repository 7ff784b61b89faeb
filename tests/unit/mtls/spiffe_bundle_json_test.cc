// SPIFFE bundle JSON: what we write reads back to the same authorities, and the JOSE helpers under
// it are strict.
#include "mtls/spiffe_bundle_json.h"

#include <gtest/gtest.h>

#include "jwt_test_util.h"
#include "mtls/jose.h"
#include "test_certs.h"

namespace portcullis::mtls {
namespace {

using testing::ca_spec;
using testing::ec_key;
using testing::must;
using testing::public_half;
using testing::rsa_key;

TEST(SpiffeBundleJson, RoundTripKeepsX509AndJwtAuthorities) {
  auto root = must(mint_certificate(ca_spec("root", "example.org"), nullptr));
  std::vector<bssl::UniquePtr<X509>> certs;
  X509_up_ref(root.cert.get());
  certs.emplace_back(root.cert.get());
  auto ec = ec_key(NID_X9_62_prime256v1);
  auto rsa = rsa_key();
  std::vector<JwtAuthority> jwt;
  jwt.push_back(JwtAuthority{"ec-1", public_half(ec.get())});
  jwt.push_back(JwtAuthority{"rsa-1", public_half(rsa.get())});
  TrustBundle bundle("example.org", std::move(certs), 7, std::move(jwt), 300);

  auto json = to_spiffe_bundle_json(bundle);
  ASSERT_TRUE(json.ok()) << json.error().message;
  auto doc = nlohmann::json::parse(*json);
  EXPECT_EQ(doc["spiffe_sequence"], 7);
  EXPECT_EQ(doc["spiffe_refresh_hint"], 300);
  ASSERT_EQ(doc["keys"].size(), 3u);
  EXPECT_EQ(doc["keys"][0]["use"], "x509-svid");
  EXPECT_FALSE(doc["keys"][0].contains("kid"));  // the standard forbids a kid on x509-svid keys
  EXPECT_EQ(doc["keys"][0]["crv"], "P-256");
  EXPECT_EQ(doc["keys"][1]["use"], "jwt-svid");
  EXPECT_EQ(doc["keys"][1]["kid"], "ec-1");
  EXPECT_EQ(doc["keys"][2]["kty"], "RSA");

  auto back = TrustBundle::from_spiffe_json("example.org", *json);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ((*back)->sequence(), 7u);
  EXPECT_EQ((*back)->refresh_hint_seconds(), 300);
  ASSERT_EQ((*back)->size(), 1u);
  EXPECT_EQ(X509_cmp((*back)->authorities()[0].get(), root.cert.get()), 0);
  ASSERT_EQ((*back)->jwt_authorities().size(), 2u);
  EXPECT_EQ(EVP_PKEY_cmp((*back)->find_jwt_authority("ec-1")->public_key.get(), ec.get()), 1);
  EXPECT_EQ(EVP_PKEY_cmp((*back)->find_jwt_authority("rsa-1")->public_key.get(), rsa.get()), 1);
  EXPECT_EQ((*back)->authorities_der(), bundle.authorities_der());
  EXPECT_EQ((*back)->authorities_pem(), root.cert_pem());

  auto jwt_only = to_spiffe_bundle_json(bundle, {.keys = BundleKeys::kJwtOnly, .sequence = 9, .refresh_hint = std::nullopt});
  ASSERT_TRUE(jwt_only.ok());
  auto jdoc = nlohmann::json::parse(*jwt_only);
  EXPECT_EQ(jdoc["keys"].size(), 2u);
  EXPECT_EQ(jdoc["spiffe_sequence"], 9);
}

TEST(SpiffeBundleJson, ReaderRefusesBrokenJwtKeys) {
  auto ec = ec_key(NID_X9_62_prime256v1);
  nlohmann::json jwk;
  ASSERT_TRUE(public_key_to_jwk(ec.get(), &jwk).ok());
  jwk["use"] = "jwt-svid";
  // A vector, not a braced json: `{jwk}` is a copy under clang and an array under gcc.
  auto bundle_of = [](std::vector<nlohmann::json> keys) {
    nlohmann::json doc = nlohmann::json::object();
    doc["keys"] = keys;
    return doc.dump();
  };
  nlohmann::json no_kid = jwk;
  EXPECT_FALSE(TrustBundle::from_spiffe_json("example.org", bundle_of({no_kid})).ok());
  jwk["kid"] = "k";
  EXPECT_TRUE(TrustBundle::from_spiffe_json("example.org", bundle_of({jwk})).ok());
  EXPECT_FALSE(TrustBundle::from_spiffe_json("example.org", bundle_of({jwk, jwk})).ok());  // kid twice
  nlohmann::json off_curve = jwk;
  off_curve["y"] = off_curve["x"];
  EXPECT_FALSE(TrustBundle::from_spiffe_json("example.org", bundle_of({off_curve})).ok());
  auto small_rsa = rsa_key(1024);
  nlohmann::json weak;
  ASSERT_TRUE(public_key_to_jwk(small_rsa.get(), &weak).ok());
  weak["use"] = "jwt-svid";
  weak["kid"] = "weak";
  EXPECT_FALSE(TrustBundle::from_spiffe_json("example.org", bundle_of({weak})).ok());
  EXPECT_FALSE(TrustBundle::from_spiffe_json("example.org", R"({"keys": [], "keys": []})").ok());
  EXPECT_FALSE(TrustBundle::from_spiffe_json("example.org", R"({"keys": [], "spiffe_refresh_hint": "x"})").ok());
}

TEST(Jose, Base64UrlIsStrictAndRoundTrips) {
  for (std::string s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba", "foobar", std::string("\0\xff\xfe", 3)}) {
    auto enc = base64url_encode(s);
    EXPECT_EQ(enc.find('='), std::string::npos);
    EXPECT_EQ(base64url_decode(enc), s) << enc;
  }
  EXPECT_EQ(base64url_encode(std::string("\xfb\xff")), "-_8");
  EXPECT_FALSE(base64url_decode("Zg=="));   // padding
  EXPECT_FALSE(base64url_decode("Z"));      // impossible length
  EXPECT_FALSE(base64url_decode("Zh"));     // non-zero unused bits ("f" is "Zg")
  EXPECT_FALSE(base64url_decode("+/8"));    // standard alphabet
  EXPECT_FALSE(base64url_decode("Zm 9v"));  // whitespace
}

TEST(Jose, EcdsaSignatureFormsConvertBothWays) {
  std::string raw(64, '\0');
  raw[31] = 1;
  raw[63] = 2;
  auto der = ecdsa_raw_to_der(std::span(reinterpret_cast<const uint8_t*>(raw.data()), raw.size()));
  ASSERT_TRUE(der);
  EXPECT_EQ(*der, std::string("\x30\x06\x02\x01\x01\x02\x01\x02", 8));
  auto back = ecdsa_der_to_raw(std::span(reinterpret_cast<const uint8_t*>(der->data()), der->size()), 32);
  EXPECT_EQ(back, raw);
  EXPECT_FALSE(ecdsa_raw_to_der(std::span<const uint8_t>()));
  EXPECT_FALSE(ecdsa_der_to_raw(std::span(reinterpret_cast<const uint8_t*>("junk"), 4), 32));
}

}  // namespace
}  // namespace portcullis::mtls
