// JWT-SVID minting and validation: a round trip, the other allowed algorithms, and one bad token
// per rejection reason.
#include "mtls/jwt_svid.h"

#include <gtest/gtest.h>

#include "jwt_test_util.h"
#include "mtls/cert_minter.h"

namespace portcullis::mtls {
namespace {

using namespace std::chrono_literals;
using testing::ec_key;
using testing::jwt_bundle;
using testing::public_half;
using testing::rsa_key;
using testing::sign_jws;

const auto kNow = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));
const int64_t kNowS = 1'700'000'000;

class JwtSvidTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto key = generate_p256_key();
    ASSERT_TRUE(key.ok());
    auto signer = JwtSigner::create(std::move(key.value()));
    ASSERT_TRUE(signer.ok()) << signer.error().message;
    signer_ = signer.value();
    auto authority = signer_->authority();
    ASSERT_TRUE(authority.ok());
    std::vector<JwtAuthority> keys;
    keys.push_back(std::move(authority.value()));
    bundles_.add(jwt_bundle("example.org", std::move(keys)));
    options_.now = kNow;
  }

  // validate returns the rejection name, or "ok".
  std::string validate(const std::string& token, const std::string& audience = "db") {
    JwtSvidClaims claims;
    JwtVerifyError error;
    if (validate_jwt_svid(token, audience, bundles_, options_, &claims, &error)) return "ok";
    return jwt_rejection_name(error.reason);
  }

  std::string header(const std::string& alg = "ES256") const {
    return nlohmann::json{{"alg", alg}, {"kid", signer_->key_id()}, {"typ", "JWT"}}.dump();
  }
  static std::string claims(const std::string& sub = "spiffe://example.org/web", int64_t exp = kNowS + 300) {
    return nlohmann::json{{"sub", sub}, {"aud", {"db"}}, {"exp", exp}, {"iat", kNowS}}.dump();
  }
  std::string signed_token(const std::string& h, const std::string& c) const { return sign_jws(h, c, "ES256", signer_->key()); }

  std::shared_ptr<const JwtSigner> signer_;
  TrustBundleSet bundles_;
  JwtValidateOptions options_;
};

TEST_F(JwtSvidTest, MintedTokenValidatesAndCarriesTheStandardClaims) {
  auto id = SpiffeId::parse("spiffe://example.org/web");
  ASSERT_TRUE(id.ok());
  std::vector<std::string> aud = {"db", "cache"};
  auto token = signer_->mint(*id, aud, 300s, kNow);
  ASSERT_TRUE(token.ok()) << token.error().message;
  JwtSvidClaims claims;
  JwtVerifyError error;
  ASSERT_TRUE(validate_jwt_svid(*token, "cache", bundles_, options_, &claims, &error)) << error.message;
  EXPECT_EQ(claims.spiffe_id, "spiffe://example.org/web");
  EXPECT_EQ(claims.algorithm, "ES256");
  EXPECT_EQ(claims.key_id, signer_->key_id());
  EXPECT_EQ(claims.claims["exp"], kNowS + 300);
  EXPECT_EQ(claims.claims["iat"], kNowS);
  EXPECT_EQ(claims.claims["aud"], nlohmann::json({"db", "cache"}));
  auto header = nlohmann::json::parse(*base64url_decode(token->substr(0, token->find('.'))));
  EXPECT_EQ(header, nlohmann::json({{"alg", "ES256"}, {"kid", signer_->key_id()}, {"typ", "JWT"}}));
  EXPECT_EQ(signer_->key_id().size(), 43u);  // base64url of a SHA-256
}

TEST_F(JwtSvidTest, MintRefusesWhatTheStandardForbids) {
  auto id = SpiffeId::parse("spiffe://example.org/web");
  EXPECT_FALSE(signer_->mint(*id, std::vector<std::string>{}, 300s, kNow).ok());
  EXPECT_FALSE(signer_->mint(*id, std::vector<std::string>{""}, 300s, kNow).ok());
  EXPECT_FALSE(signer_->mint(*id, std::vector<std::string>{"\xff"}, 300s, kNow).ok());
  EXPECT_FALSE(signer_->mint(*id, std::vector<std::string>{"db"}, 0s, kNow).ok());
  EXPECT_FALSE(JwtSigner::create(rsa_key()).ok());
  EXPECT_FALSE(JwtSigner::create(ec_key(NID_secp384r1)).ok());
  EXPECT_FALSE(JwtSigner::create(public_half(signer_->key())).ok());
}

TEST_F(JwtSvidTest, ConfiguredKeyIdIsUsed) {
  auto key = generate_p256_key();
  auto signer = JwtSigner::create(std::move(key.value()), "k1");
  ASSERT_TRUE(signer.ok());
  EXPECT_EQ((*signer)->key_id(), "k1");
}

TEST_F(JwtSvidTest, OtherAllowedAlgorithmsVerify) {
  struct Case {
    std::string alg;
    bssl::UniquePtr<EVP_PKEY> key;
  };
  std::vector<Case> cases;
  cases.push_back({"ES384", ec_key(NID_secp384r1)});
  cases.push_back({"ES512", ec_key(NID_secp521r1)});
  auto rsa = rsa_key();
  for (const char* alg : {"RS256", "RS512", "PS256", "PS384"}) {
    EVP_PKEY_up_ref(rsa.get());
    cases.push_back({alg, bssl::UniquePtr<EVP_PKEY>(rsa.get())});
  }
  for (auto& c : cases) {
    std::vector<JwtAuthority> keys;
    keys.push_back(JwtAuthority{"other", public_half(c.key.get())});
    TrustBundleSet set;
    set.add(jwt_bundle("example.org", std::move(keys)));
    std::string h = nlohmann::json{{"alg", c.alg}, {"kid", "other"}}.dump();
    JwtSvidClaims out;
    JwtVerifyError error;
    EXPECT_TRUE(validate_jwt_svid(sign_jws(h, claims(), c.alg, c.key.get()), "db", set, options_, &out, &error))
        << c.alg << ": " << error.message;
    // The same key under the other RSA padding must not verify.
    if (c.alg == "PS256") {
      EXPECT_FALSE(validate_jwt_svid(sign_jws(h, claims(), "RS256", c.key.get()), "db", set, options_, &out, &error));
      EXPECT_EQ(error.reason, JwtRejection::kBadSignature);
    }
  }
}

TEST_F(JwtSvidTest, EveryBadTokenIsRejectedForItsOwnReason) {
  std::string good = signed_token(header(), claims());
  ASSERT_EQ(validate(good), "ok");
  std::string h = header();
  auto hdr = [&](nlohmann::json extra) {
    nlohmann::json j = nlohmann::json::parse(h);
    j.update(extra);
    return signed_token(j.dump(), claims());
  };
  std::string sig = good.substr(good.rfind('.') + 1);
  std::string flipped_sig = sig;
  flipped_sig[5] = flipped_sig[5] == 'A' ? 'B' : 'A';
  std::string short_sig = base64url_encode(base64url_decode(sig)->substr(0, 63));
  std::string other_key_token = sign_jws(h, claims(), "ES256", ec_key(NID_X9_62_prime256v1).get());
  struct Case {
    std::string name;
    std::string token;
    std::string audience;
    std::string reason;
  };
  std::vector<Case> cases = {
      {"too_large", good + std::string(options_.max_token_bytes, 'A'), "db", "too_large"},
      {"two_segments", good.substr(0, good.rfind('.')), "db", "malformed"},
      {"four_segments", good + ".AAAA", "db", "malformed"},
      {"jwe_five_segments", "a.b.c.d.e", "db", "malformed"},
      {"padding", good + "=", "db", "bad_encoding"},
      {"standard_alphabet", good.substr(0, good.rfind('.') + 1) + "+/" + sig.substr(2), "db", "bad_encoding"},
      {"whitespace", " " + good, "db", "bad_encoding"},
      {"non_canonical_tail", base64url_encode(h) + "." + base64url_encode(claims()) + "." + sig.substr(0, sig.size() - 1) + "B", "db", "bad_encoding"},
      {"header_not_json", base64url_encode(std::string("nope")) + good.substr(good.find('.')), "db", "bad_header"},
      {"duplicate_alg", signed_token(R"({"alg":"ES256","alg":"none","kid":")" + signer_->key_id() + "\"}", claims()), "db", "bad_header"},
      {"alg_none", base64url_encode(nlohmann::json{{"alg", "none"}, {"kid", signer_->key_id()}}.dump()) + "." + base64url_encode(claims()) + ".", "db", "unsupported_algorithm"},
      {"alg_hs256", hdr({{"alg", "HS256"}}), "db", "unsupported_algorithm"},
      {"alg_eddsa", hdr({{"alg", "EdDSA"}}), "db", "unsupported_algorithm"},
      {"alg_missing", signed_token(nlohmann::json{{"kid", signer_->key_id()}}.dump(), claims()), "db", "unsupported_algorithm"},
      {"typ_other", hdr({{"typ", "at+jwt"}}), "db", "bad_header"},
      {"extra_header_param", hdr({{"jku", "https://evil.example/keys"}}), "db", "bad_header"},
      {"no_kid", signed_token(R"({"alg":"ES256"})", claims()), "db", "missing_key_id"},
      {"claims_not_object", signed_token(h, "[1]"), "db", "bad_claims"},
      {"sub_missing", signed_token(h, R"({"aud":"db","exp":1700000300})"), "db", "invalid_subject"},
      {"sub_not_spiffe", signed_token(h, claims("https://example.org/web")), "db", "invalid_subject"},
      {"foreign_trust_domain", signed_token(h, claims("spiffe://other.org/web")), "db", "unknown_trust_domain"},
      {"wrong_kid", hdr({{"kid", "not-ours"}}), "db", "unknown_key_id"},
      {"key_type_mismatch", hdr({{"alg", "RS256"}}), "db", "key_mismatch"},
      {"curve_mismatch", hdr({{"alg", "ES384"}}), "db", "key_mismatch"},
      {"bad_signature", good.substr(0, good.rfind('.') + 1) + flipped_sig, "db", "bad_signature"},
      {"signed_by_another_key", other_key_token, "db", "bad_signature"},
      {"short_signature", good.substr(0, good.rfind('.') + 1) + short_sig, "db", "bad_signature"},
      {"wrong_audience", good, "web", "audience_mismatch"},
      {"empty_audience", good, "", "audience_mismatch"},
      {"aud_missing", signed_token(h, R"({"sub":"spiffe://example.org/web","exp":1700000300})"), "db", "bad_claims"},
      {"aud_number", signed_token(h, R"({"sub":"spiffe://example.org/web","aud":7,"exp":1700000300})"), "db", "bad_claims"},
      {"exp_missing", signed_token(h, R"({"sub":"spiffe://example.org/web","aud":"db"})"), "db", "bad_claims"},
      {"exp_string", signed_token(h, R"({"sub":"spiffe://example.org/web","aud":"db","exp":"soon"})"), "db", "bad_claims"},
      {"expired", signed_token(h, claims("spiffe://example.org/web", kNowS - 31)), "db", "expired"},
      {"nbf_future", signed_token(h, R"({"sub":"spiffe://example.org/web","aud":"db","exp":1700000300,"nbf":1700000100})"), "db", "not_yet_valid"},
  };
  for (const auto& c : cases) EXPECT_EQ(validate(c.token, c.audience), c.reason) << c.name;
}

TEST_F(JwtSvidTest, ClockSkewAppliesToExpiry) {
  std::string t = signed_token(header(), claims("spiffe://example.org/web", kNowS - 10));
  EXPECT_EQ(validate(t), "ok");
  options_.clock_skew = 0s;
  EXPECT_EQ(validate(t), "expired");
  // A single-string aud is accepted, as RFC 7519 allows.
  EXPECT_EQ(validate(signed_token(header(), R"({"sub":"spiffe://example.org/w","aud":"db","exp":1700000300})")), "ok");
}

}  // namespace
}  // namespace portcullis::mtls
