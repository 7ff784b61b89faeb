// The attested-claims extension: canonical encoding, a strict decoder, and what the X.509-SVID
// verifier does with it (claims into PeerIdentity; a malformed extension fails verification).
#include "mtls/attested_claims.h"

#include <gtest/gtest.h>

#include "mtls/cert_minter.h"
#include "mtls/x509_svid_verifier.h"
#include "tests/unit/mtls/test_certs.h"

namespace portcullis::mtls {
namespace {

using testing::ca_spec;
using testing::must;

std::string hex_decode(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return out;
}

// decode_error returns the decoder's message, or "ok" when the bytes decode.
std::string decode_error(std::string_view der, const AttestedClaimsLimits& limits = {}) {
  auto r = decode_attested_claims(der, limits);
  return r.ok() ? "ok" : r.error().message;
}

TEST(AttestedClaims, EncodesSortedDeduplicatedDerAndDecodesBack) {
  auto der = encode_attested_claims({"unix:sha256:ab12", "entry:id:e1", "node:attestation:join_token", "entry:id:e1"});
  ASSERT_TRUE(der.ok()) << der.error().message;
  // SEQUENCE { UTF8String "entry:id:e1", ... } with the tags and lengths spelled out.
  EXPECT_EQ(der->substr(0, 4), hex_decode("303c" "0c0b"));
  EXPECT_EQ(der->substr(4, 11), "entry:id:e1");
  auto back = decode_attested_claims(*der);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, (std::vector<std::string>{"entry:id:e1", "node:attestation:join_token", "unix:sha256:ab12"}));
  // A value may hold colons (SPIFFE IDs) and UTF-8.
  auto id = encode_attested_claims({"node:id:spiffe://td/node/join_token/abc", "unix:path:/opt/caf\xc3\xa9/bin"});
  ASSERT_TRUE(id.ok()) << id.error().message;
  EXPECT_EQ(decode_attested_claims(*id)->at(0), "node:id:spiffe://td/node/join_token/abc");
}

TEST(AttestedClaims, EncoderRefusesWhatTheDecoderWouldRefuse) {
  EXPECT_FALSE(encode_attested_claims({}).ok());
  EXPECT_FALSE(encode_attested_claims({"unix:uid"}).ok());
  EXPECT_FALSE(encode_attested_claims({":uid:1"}).ok());
  EXPECT_FALSE(encode_attested_claims({"Unix:uid:1"}).ok());
  EXPECT_FALSE(encode_attested_claims({"unix:path:/a\nb"}).ok());
  EXPECT_FALSE(encode_attested_claims({"unix:path:\xff"}).ok());
  EXPECT_FALSE(encode_attested_claims({"unix:path:" + std::string(3000, 'a')}).ok());
  std::vector<std::string> many;
  for (int i = 0; i < 65; ++i) many.push_back("k:n:" + std::to_string(i));
  EXPECT_FALSE(encode_attested_claims(many).ok());
}

TEST(AttestedClaims, DecoderIsStrict) {
  const std::string a = hex_decode("0c05") + "a:b:c", b = hex_decode("0c05") + "a:b:d";
  EXPECT_EQ(decode_error(hex_decode("300e") + a + b), "ok");
  EXPECT_EQ(decode_error(hex_decode("300e") + a + b + hex_decode("00")), "attested claims: trailing bytes after the SEQUENCE");
  EXPECT_EQ(decode_error(hex_decode("30810e") + a + b), "attested claims: not a DER SEQUENCE");  // non-minimal length
  EXPECT_EQ(decode_error(hex_decode("3080") + a + b + hex_decode("0000")), "attested claims: not a DER SEQUENCE");  // BER indefinite
  EXPECT_EQ(decode_error(hex_decode("310e") + a + b), "attested claims: not a DER SEQUENCE");  // a SET
  EXPECT_EQ(decode_error(hex_decode("300e") + b + a), "attested claims: claims are not in strictly ascending order");
  EXPECT_EQ(decode_error(hex_decode("300e") + a + a), "attested claims: claims are not in strictly ascending order");
  EXPECT_EQ(decode_error(hex_decode("3000")), "attested claims: empty SEQUENCE (the extension must be omitted instead)");
  EXPECT_EQ(decode_error(hex_decode("3007") + hex_decode("1305") + "a:b:c"), "attested claims: element 0 is not a DER UTF8String");
  EXPECT_EQ(decode_error(hex_decode("3008") + hex_decode("0c06") + "a:b:\x01" "c"), "attested claims: claim 'a:b:\x01" "c' contains a control character");
  EXPECT_EQ(decode_error(hex_decode("3008") + hex_decode("0c06") + "a:b:\xc0\xaf"), "attested claims: claim 'a:b:\xc0\xaf' is not valid UTF-8");  // overlong '/'
  EXPECT_EQ(decode_error(hex_decode("3009") + hex_decode("0c07") + "a:b:\xed\xa0\x80"), "attested claims: claim 'a:b:\xed\xa0\x80' is not valid UTF-8");  // surrogate
  EXPECT_EQ(decode_error(hex_decode("300e") + a + b, AttestedClaimsLimits{.max_claims = 1}), "attested claims: more than 1 claims");
  EXPECT_EQ(decode_error(hex_decode("300e") + a + b, AttestedClaimsLimits{.max_claim_bytes = 4}), "attested claims: claim 0 is longer than 4 bytes");
  EXPECT_EQ(decode_error(hex_decode("300e") + a + b, AttestedClaimsLimits{.max_extension_bytes = 8}),
            "attested claims: extension is 16 bytes, more than 8");
  EXPECT_EQ(decode_error(""), "attested claims: not a DER SEQUENCE");
}

class AttestedClaimsCertTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = must(mint_certificate(ca_spec("example.org root", "example.org"), nullptr));
    X509_up_ref(root_.cert.get());
    std::vector<bssl::UniquePtr<X509>> anchors;
    anchors.emplace_back(root_.cert.get());
    bundles_.add(std::make_shared<TrustBundle>("example.org", std::move(anchors), 0));
  }

  MintedCert leaf_with(std::vector<RawExtension> extensions) {
    CertSpec s;
    s.uri_sans = {"spiffe://example.org/web"};
    s.extra_extensions = std::move(extensions);
    return must(mint_certificate(s, &root_));
  }

  MintedCert root_;
  TrustBundleSet bundles_;
};

TEST_F(AttestedClaimsCertTest, VerifiedPeerCarriesItsClaims) {
  auto der = encode_attested_claims({"entry:id:e1", "unix:sha256:ab12"});
  ASSERT_TRUE(der.ok());
  auto leaf = leaf_with({{kAttestedClaimsOid, false, *der}});
  auto claims = attested_claims_of(leaf.cert.get());
  ASSERT_TRUE(claims.ok()) << claims.error().message;
  EXPECT_EQ(*claims, (std::vector<std::string>{"entry:id:e1", "unix:sha256:ab12"}));
  X509* chain[] = {leaf.cert.get()};
  PeerIdentity id;
  SvidVerifyError err;
  ASSERT_TRUE(verify_x509_svid(chain, bundles_, {}, &id, &err)) << err.message;
  EXPECT_EQ(id.attested_claims, *claims);
}

TEST_F(AttestedClaimsCertTest, NoExtensionMeansNoClaims) {
  auto leaf = leaf_with({});
  auto claims = attested_claims_of(leaf.cert.get());
  ASSERT_TRUE(claims.ok());
  EXPECT_TRUE(claims->empty());
  X509* chain[] = {leaf.cert.get()};
  PeerIdentity id;
  SvidVerifyError err;
  ASSERT_TRUE(verify_x509_svid(chain, bundles_, {}, &id, &err)) << err.message;
  EXPECT_TRUE(id.attested_claims.empty());
}

TEST_F(AttestedClaimsCertTest, MalformedOrDuplicatedExtensionFailsVerification) {
  auto good = encode_attested_claims({"entry:id:e1"});
  ASSERT_TRUE(good.ok());
  for (auto exts : std::vector<std::vector<RawExtension>>{
           {{kAttestedClaimsOid, false, *good + std::string(1, '\0')}},
           {{kAttestedClaimsOid, false, "\x30\x03\x0c\x01x"}},
           {{kAttestedClaimsOid, false, *good}, {kAttestedClaimsOid, false, *good}}}) {
    auto leaf = leaf_with(exts);
    X509* chain[] = {leaf.cert.get()};
    PeerIdentity id;
    SvidVerifyError err;
    EXPECT_FALSE(verify_x509_svid(chain, bundles_, {}, &id, &err));
    EXPECT_EQ(err.reason, SvidRejection::kInvalidAttestedClaims) << err.message;
    EXPECT_STREQ(svid_rejection_name(err.reason), "invalid_attested_claims");
    EXPECT_NE(err.message.find("spiffe://example.org/web: attested claims: "), std::string::npos) << err.message;
  }
}

TEST_F(AttestedClaimsCertTest, VerifierLimitsComeFromVerifyOptions) {
  auto der = encode_attested_claims({"entry:id:e1", "unix:sha256:ab12"});
  auto leaf = leaf_with({{kAttestedClaimsOid, false, *der}});
  X509* chain[] = {leaf.cert.get()};
  PeerIdentity id;
  SvidVerifyError err;
  VerifyOptions options;
  options.claims_limits.max_claims = 1;
  EXPECT_FALSE(verify_x509_svid(chain, bundles_, options, &id, &err));
  EXPECT_EQ(err.reason, SvidRejection::kInvalidAttestedClaims);
}

}  // namespace
}  // namespace portcullis::mtls
