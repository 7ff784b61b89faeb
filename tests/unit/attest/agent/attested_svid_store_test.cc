// AttestedSvidStore with real certificates minted by a throwaway CA (BoringSSL).
#include "attest/agent/attested_svid_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "attest/agent/svid_material.h"
#include "mtls/cert_minter.h"

namespace portcullis::attest::agent {
namespace {

using std::chrono::hours;
using std::chrono::system_clock;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mtls::CertSpec ca_spec;
    ca_spec.common_name = "test CA";
    ca_spec.is_ca = true;
    ca_spec.key_usage = mtls::kKuKeyCertSign | mtls::kKuCrlSign;
    auto ca = mtls::mint_certificate(ca_spec, nullptr);
    ASSERT_TRUE(ca.ok()) << ca.error().message;
    ca_ = std::move(ca.value());
  }

  mtls::X509Svid svid(const std::string& id, system_clock::time_point not_after = system_clock::now() + hours(1)) {
    mtls::CertSpec spec;
    spec.uri_sans = {id};
    spec.not_after = not_after;
    auto leaf = mtls::mint_certificate(spec, &ca_);
    EXPECT_TRUE(leaf.ok());
    mtls::X509Svid out;
    out.spiffe_id = id;
    out.not_after = not_after;
    out.chain.push_back(std::move(leaf->cert));
    out.private_key = std::move(leaf->key);
    return out;
  }

  std::shared_ptr<const mtls::TrustBundle> bundle(uint64_t sequence) {
    std::vector<bssl::UniquePtr<X509>> certs;
    X509_up_ref(ca_.cert.get());
    certs.emplace_back(ca_.cert.get());
    return std::make_shared<const mtls::TrustBundle>("example.org", std::move(certs), sequence);
  }

  static mtls::CallerInfo caller(std::vector<std::string> selectors) {
    mtls::CallerInfo c;
    c.selectors = std::move(selectors);
    return c;
  }

  mtls::MintedCert ca_;
  StatsStore stats_;
};

TEST_F(StoreTest, ForCallerServesOnlyTheCallersSelectorSet) {
  AttestedSvidStore store("example.org", {}, stats_);
  store.update_bundle(bundle(1));
  const std::vector<std::string> a{"unix:uid:1000"}, b{"unix:gid:5", "unix:uid:1001"};
  std::vector<mtls::X509Svid> svids_a;
  svids_a.push_back(svid("spiffe://example.org/a"));
  svids_a.push_back(svid("spiffe://example.org/a2"));
  store.set_workload(a, std::move(svids_a));
  std::vector<mtls::X509Svid> svids_b;
  svids_b.push_back(svid("spiffe://example.org/b"));
  store.set_workload(b, std::move(svids_b));

  auto va = store.for_caller(caller(a));
  ASSERT_TRUE(va);
  ASSERT_EQ(va->svids.size(), 2);
  EXPECT_EQ(va->default_svid()->spiffe_id, "spiffe://example.org/a");
  ASSERT_NE(va->own_bundle(), nullptr);
  auto vb = store.for_caller(caller(b));
  ASSERT_TRUE(vb);
  ASSERT_EQ(vb->svids.size(), 1);
  EXPECT_EQ(vb->svids[0].spiffe_id, "spiffe://example.org/b");
  // A subset or another set is a different workload: nothing.
  EXPECT_EQ(store.for_caller(caller({"unix:uid:1001"})), nullptr);
  EXPECT_EQ(store.for_caller(caller({})), nullptr);
  // No node SVID yet: the sidecar's own identity is not there.
  EXPECT_EQ(store.current(), nullptr);
  store.remove_workload(a);
  EXPECT_EQ(store.for_caller(caller(a)), nullptr);
  EXPECT_EQ(*stats_.value("identity.attested.workloads"), 1);
}

TEST_F(StoreTest, CurrentIsTheNodeIdentityWithBundles) {
  AttestedSvidStore store("example.org", {}, stats_);
  store.set_node_svid(svid("spiffe://example.org/node/embedded/h"));
  EXPECT_EQ(store.current(), nullptr) << "a node SVID without a bundle must not look ready";
  store.update_bundle(bundle(1));
  auto cur = store.current();
  ASSERT_TRUE(cur);
  ASSERT_EQ(cur->svids.size(), 1);
  EXPECT_EQ(cur->svids[0].spiffe_id, "spiffe://example.org/node/embedded/h");
  EXPECT_EQ(cur->bundles.size(), 1);
}

TEST_F(StoreTest, BundleSequenceNeverGoesBackwards) {
  AttestedSvidStore store("example.org", {}, stats_);
  EXPECT_TRUE(store.update_bundle(bundle(5)));
  EXPECT_FALSE(store.update_bundle(bundle(4)));
  EXPECT_EQ(store.bundle()->sequence(), 5u);
  EXPECT_TRUE(store.update_bundle(bundle(5)));  // same: no-op
  EXPECT_TRUE(store.update_bundle(bundle(6)));
  EXPECT_EQ(store.bundle()->sequence(), 6u);
  EXPECT_EQ(*stats_.value("identity.attested.bundle_regressions"), 1);
  EXPECT_EQ(*stats_.value("identity.attested.bundle_updates"), 2);
}

TEST_F(StoreTest, ExpiredSvidsAreDroppedAndWatchersTold) {
  AttestedSvidStore store("example.org", {}, stats_);
  store.update_bundle(bundle(1));
  std::vector<uint64_t> versions;
  auto sub = store.subscribe([&](uint64_t v) { versions.push_back(v); });
  auto soon = system_clock::now() + std::chrono::seconds(10);
  std::vector<mtls::X509Svid> s;
  s.push_back(svid("spiffe://example.org/short", soon));
  s.push_back(svid("spiffe://example.org/long"));
  store.set_workload({"unix:uid:7"}, std::move(s));
  ASSERT_EQ(store.next_expiry(), soon);
  EXPECT_EQ(store.drop_expired(soon - std::chrono::seconds(1)), 0u);
  EXPECT_EQ(store.drop_expired(soon), 1);
  auto view = store.for_caller(caller({"unix:uid:7"}));
  ASSERT_TRUE(view);
  ASSERT_EQ(view->svids.size(), 1);
  EXPECT_EQ(view->svids[0].spiffe_id, "spiffe://example.org/long");
  ASSERT_EQ(versions.size(), 2);
  EXPECT_LT(versions[0], versions[1]);
  EXPECT_EQ(view->version, versions[1]);
}

TEST_F(StoreTest, FallbackServesTheNamedSvidToUnmatchedCallers) {
  AttestedSvidStore store("example.org", {}, stats_, "spiffe://example.org/legacy");
  store.update_bundle(bundle(1));
  EXPECT_EQ(store.for_caller(caller({"unix:uid:1"})), nullptr);
  std::vector<mtls::X509Svid> s;
  s.push_back(svid("spiffe://example.org/legacy"));
  store.set_workload({"unix:uid:2"}, std::move(s));
  auto v = store.for_caller(caller({"unix:uid:1"}));
  ASSERT_TRUE(v);
  EXPECT_EQ(v->default_svid()->spiffe_id, "spiffe://example.org/legacy");
}

TEST_F(StoreTest, AWorkloadChangeRebuildsOnlyThatView) {
  AttestedSvidStore store("example.org", {}, stats_);
  store.update_bundle(bundle(1));
  std::vector<mtls::X509Svid> a, b, b2;
  a.push_back(svid("spiffe://example.org/a"));
  b.push_back(svid("spiffe://example.org/b"));
  b2.push_back(svid("spiffe://example.org/b"));
  store.set_workload({"unix:uid:1"}, std::move(a));
  store.set_workload({"unix:uid:2"}, std::move(b));
  auto va = store.for_caller(caller({"unix:uid:1"}));
  auto vb = store.for_caller(caller({"unix:uid:2"}));
  store.set_workload({"unix:uid:2"}, std::move(b2));
  EXPECT_EQ(store.for_caller(caller({"unix:uid:1"})), va) << "untouched view reused";
  EXPECT_NE(store.for_caller(caller({"unix:uid:2"})), vb);
  store.update_bundle(bundle(2));
  auto va2 = store.for_caller(caller({"unix:uid:1"}));
  ASSERT_TRUE(va2);
  EXPECT_NE(va2, va) << "a new bundle reaches every view";
  EXPECT_EQ(va2->own_bundle()->sequence(), 2u);
}

TEST_F(StoreTest, ReadersNeverSeeATornView) {
  AttestedSvidStore store("example.org", {}, stats_);
  store.update_bundle(bundle(1));
  const std::vector<std::string> sel{"unix:uid:1000"};
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> reads{0}, bad{0};
  std::thread reader([&] {
    while (!stop) {
      auto v = store.for_caller(caller(sel));
      if (v && (v->svids.size() != 2 || v->svids[0].spiffe_id != "spiffe://example.org/x")) ++bad;
      ++reads;
    }
  });
  for (int i = 0; i < 200; ++i) {
    std::vector<mtls::X509Svid> s;
    s.push_back(svid("spiffe://example.org/x"));
    s.push_back(svid("spiffe://example.org/y"));
    store.set_workload(sel, std::move(s));
    if (i % 2) store.remove_workload(sel);
  }
  stop = true;
  reader.join();
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_GT(reads.load(), 0u);
}

TEST(SvidMaterial, CsrCarriesTheKeyAndVerifies) {
  auto kc = make_key_and_csr();
  ASSERT_TRUE(kc.ok()) << kc.error().message;
  const uint8_t* p = reinterpret_cast<const uint8_t*>(kc->csr_der.data());
  bssl::UniquePtr<X509_REQ> req(d2i_X509_REQ(nullptr, &p, static_cast<long>(kc->csr_der.size())));
  ASSERT_TRUE(req);
  bssl::UniquePtr<EVP_PKEY> pub(X509_REQ_get_pubkey(req.get()));
  EXPECT_EQ(EVP_PKEY_cmp(pub.get(), kc->key.get()), 1);
  EXPECT_EQ(X509_REQ_verify(req.get(), pub.get()), 1);
}

}  // namespace
}  // namespace portcullis::attest::agent
