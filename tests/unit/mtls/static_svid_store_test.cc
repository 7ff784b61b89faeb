// StaticSvidStore: what a snapshot holds, which files it refuses at load, and rotation with real
// files (atomic rename, Kubernetes symlink swap, broken files keeping the old snapshot).
#include "mtls/static_svid_store.h"

#include <openssl/bytestring.h>

#include <gtest/gtest.h>

#include "identity_files.h"
#include "jwt_test_util.h"
#include "mtls/spiffe_bundle_json.h"

namespace portcullis::mtls {
namespace {

using namespace std::chrono_literals;
using testing::IdentityFiles;
using testing::leaf_for;
using testing::must;
using testing::wait_for_files;

class StaticSvidStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { files_.write_all(files_.leaf, files_.ca); }

  std::unique_ptr<StaticSvidStore> make_store() {
    auto store = StaticSvidStore::create(files_.config(), stats_);
    EXPECT_TRUE(store.ok()) << store.error().message;
    return store.ok() ? std::move(store.value()) : nullptr;
  }
  // load_error returns the message create() fails with ("" when it succeeds).
  std::string load_error(const IdentityConfig& config) {
    auto store = StaticSvidStore::create(config, stats_);
    return store.ok() ? "" : store.error().message;
  }
  int64_t stat(const std::string& name) const { return stats_.value("identity." + name).value_or(-1); }

  IdentityFiles files_;
  StatsStore stats_;
};

TEST_F(StaticSvidStoreTest, SnapshotHoldsTheSvidBundlesAndSigner) {
  auto store = make_store();
  ASSERT_TRUE(store);
  auto snap = store->current();
  ASSERT_TRUE(snap);
  EXPECT_EQ(snap->version, 1u);
  EXPECT_EQ(store->for_caller(CallerInfo{}), snap);
  const X509Svid* svid = snap->default_svid();
  ASSERT_NE(svid, nullptr);
  EXPECT_EQ(svid->spiffe_id, "spiffe://example.org/web");
  EXPECT_EQ(svid->chain_pem(), files_.leaf.cert_pem());
  CBS cbs;
  CBS_init(&cbs, reinterpret_cast<const uint8_t*>(svid->private_key_pkcs8.data()), svid->private_key_pkcs8.size());
  bssl::UniquePtr<EVP_PKEY> key(EVP_parse_private_key(&cbs));
  ASSERT_TRUE(key);
  EXPECT_EQ(EVP_PKEY_cmp(key.get(), files_.leaf.key.get()), 1);
  const TrustBundle* own = snap->own_bundle();
  ASSERT_NE(own, nullptr);
  EXPECT_EQ(own->size(), 1u);
  ASSERT_TRUE(snap->jwt_signer);
  EXPECT_NE(own->find_jwt_authority(snap->jwt_signer->key_id()), nullptr);
  EXPECT_TRUE(snap->federated_bundles().empty());

  // A token minted from the snapshot validates against the same snapshot's bundles.
  auto token = snap->jwt_signer->mint(*SpiffeId::parse(svid->spiffe_id), std::vector<std::string>{"db"}, snap->jwt_svid_ttl);
  ASSERT_TRUE(token.ok());
  JwtSvidClaims claims;
  JwtVerifyError error;
  EXPECT_TRUE(validate_jwt_svid(*token, "db", snap->bundles, snap->jwt_validation, &claims, &error)) << error.message;
  EXPECT_EQ(stat("version"), 1);
  EXPECT_EQ(stat("trust_domains"), 1);
}

TEST_F(StaticSvidStoreTest, FederatedBundlesAndJsonBundlesLoad) {
  auto other = must(mint_certificate(testing::ca_spec("other CA", "other.org"), nullptr));
  files_.write_atomically("other.pem", other.cert_pem());
  auto config = files_.config();
  config.federated_bundles["other.org"] = DataSource{files_.path("other.pem"), ""};
  auto store = StaticSvidStore::create(config, stats_);
  ASSERT_TRUE(store.ok()) << store.error().message;
  auto fed = (*store)->current()->federated_bundles();
  ASSERT_EQ(fed.size(), 1u);
  EXPECT_EQ(fed[0]->trust_domain(), "other.org");
  EXPECT_EQ((*store)->watched_files().size(), 5u);
}

TEST_F(StaticSvidStoreTest, LoadRefusesWhatCannotBeServed) {
  auto other_ca = must(mint_certificate(testing::ca_spec("other", "other.org"), nullptr));
  auto foreign = must(mint_certificate(leaf_for("spiffe://other.org/web"), &other_ca));
  auto stranger = must(mint_certificate(leaf_for("spiffe://example.org/web"), &other_ca));
  CertSpec expired_spec = leaf_for("spiffe://example.org/web");
  expired_spec.not_after = std::chrono::system_clock::now() - 1h;
  auto expired = must(mint_certificate(expired_spec, &files_.ca));
  auto rsa_key = testing::rsa_key();
  MintedCert rsa_jwt{nullptr, std::move(rsa_key)};
  struct Case {
    std::string name;
    std::function<void(IdentityConfig&)> setup;
    std::string expected;  // a substring of the error
  };
  std::vector<Case> cases = {
      {"missing_file", [&](IdentityConfig& c) { c.certificate_chain.filename = files_.path("nope.pem"); }, "cannot read"},
      {"not_pem", [&](IdentityConfig& c) { files_.write_atomically("cert.pem", "garbage"); }, "no PEM certificate"},
      {"foreign_trust_domain", [&](IdentityConfig& c) { files_.write_atomically("cert.pem", foreign.cert_pem()); }, "is not in trust domain example.org"},
      {"unknown_ca", [&](IdentityConfig& c) { files_.write_atomically("cert.pem", stranger.cert_pem()); }, "unknown_ca"},
      {"expired", [&](IdentityConfig& c) { files_.write_atomically("cert.pem", expired.cert_pem()); }, "expired"},
      {"key_mismatch", [&](IdentityConfig& c) { files_.write_atomically("key.pem", files_.jwt.key_pem()); }, "does not match"},
      {"jwt_key_rsa", [&](IdentityConfig& c) { files_.write_atomically("jwt.pem", rsa_jwt.key_pem()); }, "EC P-256"},
      {"jwt_key_is_cert", [&](IdentityConfig& c) { files_.write_atomically("jwt.pem", files_.ca.cert_pem()); }, "no usable PEM private key"},
      {"bundle_not_ca", [&](IdentityConfig& c) { files_.write_atomically("bundle.pem", files_.leaf.cert_pem()); }, "non-CA"},
      {"bundle_json_kid_clash", [&](IdentityConfig& c) {
         std::vector<bssl::UniquePtr<X509>> cas;
         X509_up_ref(files_.ca.cert.get());
         cas.emplace_back(files_.ca.cert.get());
         std::vector<JwtAuthority> jwt;
         jwt.push_back(JwtAuthority{"k1", testing::public_half(files_.leaf.key.get())});
         auto json = to_spiffe_bundle_json(TrustBundle("example.org", std::move(cas), 1, std::move(jwt)));
         files_.write_atomically("bundle.json", json.value());
         c.trust_bundle.filename = files_.path("bundle.json");
         c.jwt_key_id = "k1";
       }, "different key under the signing key's kid"},
  };
  for (const auto& c : cases) {
    files_.write_all(files_.leaf, files_.ca);
    IdentityConfig config = files_.config();
    c.setup(config);
    std::string error = load_error(config);
    EXPECT_NE(error.find(c.expected), std::string::npos) << c.name << ": " << error;
  }
}

}  // namespace
}  // namespace portcullis::mtls

namespace portcullis::mtls {
namespace {

TEST(IdentityStats, NamesAreStable) {
  StatsStore store;
  IdentityStats::create(store);
  EXPECT_EQ(store.render_text(),
            "identity.rotation_failures: 0\nidentity.rotations: 0\nidentity.svid_not_after: 0\n"
            "identity.trust_domains: 0\nidentity.version: 0\n");
}

}  // namespace
}  // namespace portcullis::mtls
