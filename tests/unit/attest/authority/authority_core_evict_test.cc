// Node eviction on a real core (real CA, real SQLite store): the node's own and its workloads'
// serials are revoked and pushed to watchers, every later call of the node is refused, other
// nodes are untouched, and the eviction survives a restart.
#include <gtest/gtest.h>

#include "attest/authority/authority_core.h"
#include "authority_test_util.h"

namespace portcullis::attest::authority {
namespace {

using namespace testing;  // NOLINT: the test helpers

v1::SignWorkloadSvidsRequest one_workload(const std::string& selector) {
  v1::SignWorkloadSvidsRequest req;
  auto* w = req.add_workloads();
  w->set_workload_key("pid-1");
  *w->add_selectors() = selector_proto(selector);
  w->add_csrs(make_csr().der);
  return req;
}

std::vector<std::string> serials_of(const v1::AuthorityUpdate& u) {
  std::vector<std::string> out;
  for (const auto& r : u.revocations()) out.push_back(r.serial());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(AuthorityCoreEviction, RevokesTheNodesAndItsWorkloadsSerialsPushesThemAndRefusesTheNode) {
  TempDir dir;
  TestAuthority a(dir.path());
  a.add_entry("spiffe://example.org/web", {"unix:uid:1000"});
  v1::X509Svid node = a.attest();
  v1::X509Svid other = a.attest();
  v1::RenewNodeRequest renew;
  renew.set_csr(make_csr().der);
  auto renewed = a.core->renew_node(node.spiffe_id(), renew);
  ASSERT_TRUE(renewed.ok()) << renewed.error().message;
  auto workload = a.core->sign_workload_svids(node.spiffe_id(), one_workload("unix:uid:1000"));
  ASSERT_TRUE(workload.ok()) << workload.error().message;
  auto other_workload = a.core->sign_workload_svids(other.spiffe_id(), one_workload("unix:uid:1000"));
  ASSERT_TRUE(other_workload.ok());

  std::vector<v1::AuthorityUpdate> got;
  auto sub = a.core->watch([&](const v1::AuthorityUpdate& u) { got.push_back(u); });
  ASSERT_TRUE(sub.ok()) << sub.error().message;
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].revocations_size(), 0);

  auto evicted = a.core->evict_node(node.spiffe_id(), "stolen laptop");
  ASSERT_TRUE(evicted.ok()) << evicted.error().message;
  std::vector<std::string> expected{node.serial(), renewed->svid().serial(), workload->workloads(0).svids(0).serial()};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(*evicted, 3u);
  ASSERT_EQ(got.size(), 2u) << "the revocations are pushed to watchers";
  EXPECT_FALSE(got[1].full_revocation_set());
  EXPECT_EQ(serials_of(got[1]), expected);
  for (const auto& r : got[1].revocations()) EXPECT_EQ(r.reason(), "node evicted: stolen laptop");
  for (const auto& s : expected) EXPECT_TRUE(*a.core->store().is_revoked(s)) << s;
  EXPECT_FALSE(*a.core->store().is_revoked(other.serial()));
  EXPECT_FALSE(*a.core->store().is_revoked(other_workload->workloads(0).svids(0).serial()));
  EXPECT_EQ(a.stat("authority.nodes_evicted"), 1);
  EXPECT_EQ(a.stat("authority.revocations"), 3);

  // Every later call of the node is refused: its SVIDs no longer authenticate, and the calls
  // themselves (which do not look at serials) refuse the evicted node ID.
  EXPECT_FALSE(a.core->node_allowed(tls_peer(node)));
  EXPECT_FALSE(a.core->node_allowed(tls_peer(renewed->svid())));
  renew.set_csr(make_csr().der);
  auto again = a.core->renew_node(node.spiffe_id(), renew);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ErrorCode::kPermissionDenied);
  auto sign = a.core->sign_workload_svids(node.spiffe_id(), one_workload("unix:uid:1000"));
  ASSERT_FALSE(sign.ok());
  EXPECT_EQ(sign.error().code, ErrorCode::kPermissionDenied);
  v1::MintJwtSvidRequest jwt;
  *jwt.add_selectors() = selector_proto("unix:uid:1000");
  jwt.add_audience("db");
  EXPECT_EQ(a.core->mint_jwt_svid(node.spiffe_id(), jwt).error().code, ErrorCode::kPermissionDenied);
  v1::RevokeSvidsRequest revoke;
  revoke.add_serials(node.serial());
  EXPECT_EQ(a.core->revoke(node.spiffe_id(), revoke).error().code, ErrorCode::kPermissionDenied);
  EXPECT_GE(a.stat("authority.node_evicted_denied"), 6);

  // The other node goes on.
  EXPECT_TRUE(a.core->node_allowed(tls_peer(other)));
  EXPECT_TRUE(a.core->sign_workload_svids(other.spiffe_id(), one_workload("unix:uid:1000")).ok());

  // Evicting again is not an error and revokes nothing new (nothing was issued since).
  auto twice = a.core->evict_node(node.spiffe_id(), "again");
  ASSERT_TRUE(twice.ok()) << twice.error().message;
  EXPECT_EQ(*twice, 0u);
  EXPECT_EQ(got.size(), 2u) << "nothing new to push";
}

TEST(AuthorityCoreEviction, RefusesIdsThatAreNotNodesOfOurTrustDomain) {
  TempDir dir;
  TestAuthority a(dir.path());
  for (const char* bad : {"", "spiffe://example.org/web", "spiffe://other.org/node/join_token/abc",
                          "spiffe://example.org/node/join_token", "not a spiffe id"}) {
    auto r = a.core->evict_node(bad, "");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << bad;
    EXPECT_FALSE(a.core->store().is_evicted(bad));
  }
  EXPECT_EQ(a.core->evict_node("spiffe://example.org/node/join_token/x", std::string(5000, 'r')).error().code,
            ErrorCode::kInvalidArgument)
      << "reason over max_id_bytes";
  EXPECT_EQ(a.stat("authority.nodes_evicted"), 0);
}

TEST(AuthorityCoreEviction, AnEvictionSurvivesARestart) {
  TempDir dir;
  std::string node_id, serial;
  {
    TestAuthority a(dir.path());
    v1::X509Svid node = a.attest();
    node_id = node.spiffe_id();
    serial = node.serial();
    ASSERT_TRUE(a.core->evict_node(node_id, "decommissioned").ok());
  }
  TestAuthority again(dir.path());
  EXPECT_TRUE(again.core->store().is_evicted(node_id));
  v1::X509Svid node;
  node.set_spiffe_id(node_id);
  node.set_serial(serial);
  EXPECT_FALSE(again.core->node_allowed(tls_peer(node)));
  v1::RenewNodeRequest renew;
  renew.set_csr(make_csr().der);
  EXPECT_EQ(again.core->renew_node(node_id, renew).error().code, ErrorCode::kPermissionDenied);
  EXPECT_TRUE(*again.core->store().is_revoked(serial));
}

}  // namespace
}  // namespace portcullis::attest::authority
