// X.509-SVID rules, with every certificate minted here by a helper CA.
#include "mtls/x509_svid_verifier.h"

#include <openssl/base64.h>
#include <openssl/mem.h>

#include <gtest/gtest.h>

#include "mtls/cert_minter.h"
#include "tests/unit/mtls/test_certs.h"

namespace portcullis::mtls {
namespace {

using namespace std::chrono_literals;

using testing::ca_spec;
using testing::must;

CertSpec leaf_spec(const std::string& id) {
  CertSpec s;
  s.uri_sans = {id};
  return s;
}

class X509SvidTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = must(mint_certificate(ca_spec("example.org root", "example.org"), nullptr));
    other_root_ = must(mint_certificate(ca_spec("other.org root", "other.org"), nullptr));
    bundles_.add(std::make_shared<TrustBundle>("example.org", clone(root_), 0));
    bundles_.add(std::make_shared<TrustBundle>("other.org", clone(other_root_), 0));
  }

  static std::vector<bssl::UniquePtr<X509>> clone(const MintedCert& c) {
    std::vector<bssl::UniquePtr<X509>> v;
    X509_up_ref(c.cert.get());
    v.emplace_back(c.cert.get());
    return v;
  }

  // verify returns the rejection name, or "ok:<spiffe id>".
  std::string verify(std::vector<X509*> chain, VerifyOptions options = {}) {
    PeerIdentity id;
    SvidVerifyError err;
    if (verify_x509_svid(chain, bundles_, options, &id, &err)) return "ok:" + id.spiffe_id;
    last_message_ = err.message;
    return svid_rejection_name(err.reason);
  }

  MintedCert root_, other_root_;
  TrustBundleSet bundles_;
  std::string last_message_;
};

TEST_F(X509SvidTest, AcceptsAGoodSvidAndReportsItsIdentity) {
  auto leaf = must(mint_certificate(leaf_spec("spiffe://example.org/ns/default/sa/web"), &root_));
  PeerIdentity id;
  SvidVerifyError err;
  X509* chain[] = {leaf.cert.get()};
  ASSERT_TRUE(verify_x509_svid(chain, bundles_, {}, &id, &err)) << err.message;
  EXPECT_EQ(id.spiffe_id, "spiffe://example.org/ns/default/sa/web");
  EXPECT_EQ(id.trust_domain, "example.org");
  EXPECT_EQ(id.serial.size(), 32u);
  int64_t expected = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now() + 1h);
  EXPECT_NEAR(static_cast<double>(id.not_after), static_cast<double>(expected), 5);
}

TEST_F(X509SvidTest, AcceptsAChainThroughAnIntermediateCa) {
  auto intermediate = must(mint_certificate(ca_spec("intermediate", "example.org"), &root_));
  auto leaf = must(mint_certificate(leaf_spec("spiffe://example.org/w"), &intermediate));
  EXPECT_EQ(verify({leaf.cert.get(), intermediate.cert.get()}), "ok:spiffe://example.org/w");
  EXPECT_EQ(verify({leaf.cert.get()}), "unknown_ca");  // intermediate withheld
}

TEST_F(X509SvidTest, RejectsIntermediateThatIsNotACa) {
  CertSpec not_ca = leaf_spec("spiffe://example.org/fake-intermediate");
  not_ca.key_usage = kKuDigitalSignature | kKuKeyCertSign;
  auto intermediate = must(mint_certificate(not_ca, &root_));
  auto leaf = must(mint_certificate(leaf_spec("spiffe://example.org/w"), &intermediate));
  EXPECT_EQ(verify({leaf.cert.get(), intermediate.cert.get()}), "intermediate_not_ca") << last_message_;
}

TEST_F(X509SvidTest, RejectsExpiredAndNotYetValidButAllowsClockSkew) {
  CertSpec expired = leaf_spec("spiffe://example.org/w");
  expired.not_before = std::chrono::system_clock::now() - 2h;
  expired.not_after = std::chrono::system_clock::now() - 10s;
  auto e = must(mint_certificate(expired, &root_));
  EXPECT_EQ(verify({e.cert.get()}, VerifyOptions{0s}), "expired");
  EXPECT_EQ(verify({e.cert.get()}, VerifyOptions{30s}), "ok:spiffe://example.org/w");

  CertSpec future = leaf_spec("spiffe://example.org/w");
  future.not_before = std::chrono::system_clock::now() + 10s;
  auto f = must(mint_certificate(future, &root_));
  EXPECT_EQ(verify({f.cert.get()}, VerifyOptions{0s}), "not_yet_valid");
  EXPECT_EQ(verify({f.cert.get()}, VerifyOptions{30s}), "ok:spiffe://example.org/w");

  future.not_before = std::chrono::system_clock::now() + 1h;
  future.not_after = std::chrono::system_clock::now() + 2h;
  auto far = must(mint_certificate(future, &root_));
  EXPECT_EQ(verify({far.cert.get()}, VerifyOptions{30s}), "not_yet_valid");
}

TEST_F(X509SvidTest, RejectsLeafWithCaTrue) {
  CertSpec s = leaf_spec("spiffe://example.org/w");
  s.is_ca = true;
  auto leaf = must(mint_certificate(s, &root_));
  EXPECT_EQ(verify({leaf.cert.get()}), "leaf_is_ca");
}

TEST_F(X509SvidTest, RejectsZeroOrSeveralUriSansAndDnsOnly) {
  CertSpec two = leaf_spec("spiffe://example.org/a");
  two.uri_sans.push_back("spiffe://example.org/b");
  EXPECT_EQ(verify({must(mint_certificate(two, &root_)).cert.get()}), "multiple_uri_sans");
  CertSpec none = leaf_spec("");
  none.uri_sans.clear();
  none.common_name = "no-san";
  EXPECT_EQ(verify({must(mint_certificate(none, &root_)).cert.get()}), "no_uri_san");
  CertSpec dns = none;
  dns.dns_sans = {"web.example.org"};
  EXPECT_EQ(verify({must(mint_certificate(dns, &root_)).cert.get()}), "no_uri_san");
  CertSpec dns_plus_uri = leaf_spec("spiffe://example.org/w");
  dns_plus_uri.dns_sans = {"web.example.org"};  // other SAN types are allowed
  EXPECT_EQ(verify({must(mint_certificate(dns_plus_uri, &root_)).cert.get()}), "ok:spiffe://example.org/w");
}

TEST_F(X509SvidTest, RejectsBadIdsAndTrustDomainIds) {
  EXPECT_EQ(verify({must(mint_certificate(leaf_spec("https://example.org/w"), &root_)).cert.get()}),
            "invalid_spiffe_id");
  EXPECT_EQ(verify({must(mint_certificate(leaf_spec("spiffe://example.org/a/../b"), &root_)).cert.get()}),
            "invalid_spiffe_id");
  EXPECT_EQ(verify({must(mint_certificate(leaf_spec("spiffe://example.org"), &root_)).cert.get()}),
            "no_workload_path");
}

TEST_F(X509SvidTest, RejectsWrongKeyUsage) {
  CertSpec no_ds = leaf_spec("spiffe://example.org/w");
  no_ds.key_usage = kKuKeyEncipherment;
  EXPECT_EQ(verify({must(mint_certificate(no_ds, &root_)).cert.get()}), "leaf_key_usage");
  CertSpec cert_sign = leaf_spec("spiffe://example.org/w");
  cert_sign.key_usage = kKuDigitalSignature | kKuKeyCertSign;
  EXPECT_EQ(verify({must(mint_certificate(cert_sign, &root_)).cert.get()}), "leaf_key_usage");
  CertSpec crl_sign = leaf_spec("spiffe://example.org/w");
  crl_sign.key_usage = kKuDigitalSignature | kKuCrlSign;
  EXPECT_EQ(verify({must(mint_certificate(crl_sign, &root_)).cert.get()}), "leaf_key_usage");
  CertSpec no_ku = leaf_spec("spiffe://example.org/w");
  no_ku.key_usage = 0;
  EXPECT_EQ(verify({must(mint_certificate(no_ku, &root_)).cert.get()}), "leaf_key_usage");
}

TEST_F(X509SvidTest, RejectsUnknownCaAndUnknownTrustDomain) {
  auto stranger = must(mint_certificate(ca_spec("stranger", "example.org"), nullptr));
  EXPECT_EQ(verify({must(mint_certificate(leaf_spec("spiffe://example.org/w"), &stranger)).cert.get()}),
            "unknown_ca");
  EXPECT_EQ(verify({must(mint_certificate(leaf_spec("spiffe://nowhere.org/w"), &root_)).cert.get()}),
            "unknown_trust_domain");
}

TEST_F(X509SvidTest, AnotherTrustDomainsCaCannotVouchForThisTrustDomain) {
  // other.org is trusted (federation), but only for other.org IDs.
  auto forged = must(mint_certificate(leaf_spec("spiffe://example.org/ns/default/sa/admin"), &other_root_));
  EXPECT_EQ(verify({forged.cert.get()}), "unknown_ca") << last_message_;
  auto legit = must(mint_certificate(leaf_spec("spiffe://other.org/ns/x"), &other_root_));
  EXPECT_EQ(verify({legit.cert.get()}), "ok:spiffe://other.org/ns/x");
}

TEST_F(X509SvidTest, RejectsEmptyChain) { EXPECT_EQ(verify({}), "no_certificate"); }

TEST(TrustBundle, LoadsPemAndSpiffeJsonAndSkipsUnknownKeys) {
  auto root = must(mint_certificate(ca_spec("r", "example.org"), nullptr));
  auto pem = TrustBundle::from_pem("example.org", root.cert_pem() + root.cert_pem());
  ASSERT_TRUE(pem.ok()) << pem.error().message;
  EXPECT_EQ((*pem)->size(), 2u);

  uint8_t* der = nullptr;
  int der_len = i2d_X509(root.cert.get(), &der);
  size_t b64_len = 0;
  EVP_EncodedLength(&b64_len, static_cast<size_t>(der_len));
  std::string b64(b64_len, '\0');
  b64.resize(EVP_EncodeBlock(reinterpret_cast<uint8_t*>(b64.data()), der, static_cast<size_t>(der_len)));
  OPENSSL_free(der);
  std::string json = R"({"spiffe_sequence": 42, "keys": [
      {"kty": "EC", "use": "x509-svid", "x5c": [")" + b64 + R"("]},
      {"kty": "OKP", "use": "jwt-svid", "kid": "k1", "crv": "Ed25519", "x": "a"},
      {"kty": "EC", "use": "something-new", "x5c": ["!!"]},
      {"kty": "EC", "use": "x509-svid", "x5c": []}]})";
  auto bundle = TrustBundle::from_spiffe_json("example.org", json);
  ASSERT_TRUE(bundle.ok()) << bundle.error().message;
  EXPECT_EQ((*bundle)->size(), 1u);
  EXPECT_EQ((*bundle)->sequence(), 42u);

  auto empty = TrustBundle::from_spiffe_json("example.org", R"({"keys": []})");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ((*empty)->size(), 0u);
}

TEST(TrustBundle, RejectsBrokenInput) {
  EXPECT_FALSE(TrustBundle::from_pem("example.org", "").ok());
  EXPECT_FALSE(TrustBundle::from_pem("example.org", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").ok());
  EXPECT_FALSE(TrustBundle::from_pem("Bad.TD", "").ok());
  auto leaf_only = must(mint_certificate(leaf_spec("spiffe://example.org/w"), nullptr));
  EXPECT_FALSE(TrustBundle::from_pem("example.org", leaf_only.cert_pem()).ok());
  EXPECT_FALSE(TrustBundle::from_spiffe_json("example.org", "not json").ok());
  EXPECT_FALSE(TrustBundle::from_spiffe_json("example.org", R"({"keys": 3})").ok());
  EXPECT_FALSE(TrustBundle::from_spiffe_json("example.org", R"({"keys": [{"kty":"EC","use":"x509-svid","x5c":["@@@"]}]})").ok());
  EXPECT_FALSE(TrustBundle::from_spiffe_json("example.org", R"({"spiffe_sequence": -1, "keys": []})").ok());
  // A JWT key of a kty we know must be well-formed; a skipped one would silently untrust tokens.
  EXPECT_FALSE(TrustBundle::from_spiffe_json("example.org", R"({"keys": [{"kty":"EC","use":"jwt-svid","kid":"k","crv":"P-256","x":"a","y":"b"}]})").ok());
}

}  // namespace
}  // namespace portcullis::mtls
