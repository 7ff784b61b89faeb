// AuthorityCore over a real CA and a real SQLite store: join tokens, node SVIDs, entry matching,
// revocation by the issuing node only, and the watch feed (full first, then deltas).
#include "attest/authority/authority_core.h"

#include <gtest/gtest.h>

#include "authority_test_util.h"
#include "mtls/jwt_svid.h"

namespace portcullis::attest::authority {
namespace {

using namespace testing;  // NOLINT: the test helpers

class AuthorityCoreTest : public ::testing::Test {
 protected:
  TempDir dir_;
  TestAuthority a_{dir_.path()};
};

TEST_F(AuthorityCoreTest, JoinTokenAttestsOnceAndNamesTheNode) {
  auto token = a_.core->generate_join_token(600);
  ASSERT_TRUE(token.ok()) << token.error().message;
  EXPECT_EQ(a_.stat("authority.join_tokens_created"), 1);
  v1::AttestNodeRequest req;
  req.set_join_token(token->token());
  req.set_csr(make_csr().der);
  auto first = a_.core->attest_node(req);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first->svid().spiffe_id(), "spiffe://example.org/node/join_token/" + token->token_id());
  EXPECT_EQ(first->bundle().trust_domain(), kTrustDomain);
  EXPECT_GT(first->bundle().x509_authorities_size(), 0);

  req.set_csr(make_csr().der);
  auto again = a_.core->attest_node(req);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ErrorCode::kPermissionDenied);
  EXPECT_EQ(again.error().message.find(token->token()), std::string::npos) << "the secret must not be echoed";

  req.set_join_token(std::string(64, 'a'));
  auto unknown = a_.core->attest_node(req);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, ErrorCode::kPermissionDenied) << "unknown and used look the same";
  EXPECT_EQ(unknown.error().message, again.error().message);
  req.set_join_token("not-a-token");
  auto malformed = a_.core->attest_node(req);
  ASSERT_FALSE(malformed.ok());
  EXPECT_EQ(malformed.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(a_.stat("authority.node_attested"), 1);
  EXPECT_EQ(a_.stat("authority.node_attest_denied"), 2);
  EXPECT_EQ(a_.stat("authority.node_attest_invalid"), 1);
}

TEST_F(AuthorityCoreTest, BadCsrIsRefusedBeforeTheTokenIsSpent) {
  auto token = a_.core->generate_join_token(0);
  ASSERT_TRUE(token.ok());
  v1::AttestNodeRequest req;
  req.set_join_token(token->token());
  std::string csr = make_csr().der;
  csr[csr.size() - 3] ^= 0x55;  // break the signature
  req.set_csr(csr);
  auto bad = a_.core->attest_node(req);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(a_.stat("authority.node_attest_invalid"), 1);
  req.set_csr(make_csr().der);
  EXPECT_TRUE(a_.core->attest_node(req).ok());
}

TEST_F(AuthorityCoreTest, NodeSvidVerifiesAndIsAnAllowedNode) {
  v1::X509Svid node = a_.attest();
  mtls::PeerIdentity peer = verify_svid(node, a_.core->bundle());
  EXPECT_EQ(peer.spiffe_id, node.spiffe_id());
  EXPECT_EQ(peer.serial, node.serial());
  EXPECT_EQ(peer.attested_claims, std::vector<std::string>{"node:attestation:join_token"});
  EXPECT_TRUE(a_.core->node_allowed(tls_peer(node)));

  grpc::TlsPeer forged = tls_peer(node);
  forged.serial = "00ff";
  EXPECT_FALSE(a_.core->node_allowed(forged)) << "a serial we never issued";
  grpc::TlsPeer other = tls_peer(node);
  other.spiffe_id = "spiffe://example.org/node/join_token/someone-else";
  EXPECT_FALSE(a_.core->node_allowed(other)) << "our serial, but not this node's ID";
  other = tls_peer(node);
  other.trust_domain = "evil.org";
  EXPECT_FALSE(a_.core->node_allowed(other));
  EXPECT_EQ(a_.stat("authority.node_identity_rejected"), 3);
}

TEST_F(AuthorityCoreTest, WorkloadSvidIsNotANode) {
  v1::X509Svid node = a_.attest();
  a_.add_entry("spiffe://example.org/web", {"unix:uid:1000"});
  v1::SignWorkloadSvidsRequest req;
  auto* w = req.add_workloads();
  *w->add_selectors() = selector_proto("unix:uid:1000");
  w->add_csrs(make_csr().der);
  auto resp = a_.core->sign_workload_svids(node.spiffe_id(), req);
  ASSERT_TRUE(resp.ok()) << resp.error().message;
  ASSERT_EQ(resp->workloads(0).svids_size(), 1);
  EXPECT_FALSE(a_.core->node_allowed(tls_peer(resp->workloads(0).svids(0))));
}

TEST_F(AuthorityCoreTest, WorkloadSigningFollowsEntriesSelectorsAndParents) {
  v1::X509Svid node1 = a_.attest();
  v1::X509Svid node2 = a_.attest();
  auto any = a_.add_entry("spiffe://example.org/any-node-uid-1000", {"unix:uid:1000"});
  auto hashed = a_.add_entry("spiffe://example.org/node1-hashed", {"unix:uid:1000", "unix:sha256:abcd"}, node1.spiffe_id());
  a_.add_entry("spiffe://example.org/uid-2000", {"unix:uid:2000"});
  a_.add_entry("spiffe://example.org/node2-only", {"unix:uid:1000"}, node2.spiffe_id());

  v1::SignWorkloadSvidsRequest req;
  auto* w = req.add_workloads();
  w->set_workload_key("pid-42");
  for (const char* s : {"unix:uid:1000", "unix:gid:5", "unix:sha256:abcd"}) *w->add_selectors() = selector_proto(s);
  for (int i = 0; i < 3; ++i) w->add_csrs(make_csr().der);
  auto* stranger = req.add_workloads();
  stranger->set_workload_key("pid-43");
  *stranger->add_selectors() = selector_proto("unix:uid:3000");
  stranger->add_csrs(make_csr().der);

  auto resp = a_.core->sign_workload_svids(node1.spiffe_id(), req);
  ASSERT_TRUE(resp.ok()) << resp.error().message;
  const auto& got = resp->workloads(0);
  EXPECT_EQ(got.workload_key(), "pid-42");
  EXPECT_EQ(got.matched_entries(), 2u);
  ASSERT_EQ(got.svids_size(), 2);  // three CSRs, two matching entries
  std::vector<std::pair<std::string, std::string>> expected{{any.id(), any.spiffe_id()}, {hashed.id(), hashed.spiffe_id()}};
  std::sort(expected.begin(), expected.end());  // in entry-id order
  for (int i = 0; i < 2; ++i) {
    const auto& svid = got.svids(i);
    EXPECT_EQ(svid.entry_id(), expected[i].first);
    EXPECT_EQ(svid.spiffe_id(), expected[i].second);
    mtls::PeerIdentity peer = verify_svid(svid, a_.core->bundle());
    EXPECT_EQ(peer.spiffe_id, svid.spiffe_id());
    std::vector<std::string> claims{"entry:id:" + svid.entry_id(), "node:attestation:join_token",
                                    "node:id:" + node1.spiffe_id(), "unix:sha256:abcd"};
    std::sort(claims.begin(), claims.end());
    EXPECT_EQ(peer.attested_claims, claims);
  }
  EXPECT_EQ(resp->workloads(1).matched_entries(), 0u);
  EXPECT_EQ(resp->workloads(1).svids_size(), 0);
  EXPECT_EQ(a_.stat("authority.workload_svids_issued"), 2);
  EXPECT_EQ(a_.stat("authority.workloads_unmatched"), 1);

  // The same workload on node2: the node1-only entry does not apply, node2's does.
  auto on_node2 = a_.core->sign_workload_svids(node2.spiffe_id(), req);
  ASSERT_TRUE(on_node2.ok());
  std::vector<std::string> ids;
  for (const auto& s : on_node2->workloads(0).svids()) ids.push_back(s.spiffe_id());
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::string>{"spiffe://example.org/any-node-uid-1000", "spiffe://example.org/node2-only"}));
}

TEST_F(AuthorityCoreTest, EntryTtlOrTheDefault) {
  v1::X509Svid node = a_.attest();
  v1::RegistrationEntry e;
  e.set_spiffe_id("spiffe://example.org/short");
  *e.add_selectors() = selector_proto("unix:uid:7");
  e.set_x509_svid_ttl_seconds(120);
  ASSERT_TRUE(a_.core->create_entry(e).ok());
  a_.add_entry("spiffe://example.org/default", {"unix:uid:7"});
  v1::SignWorkloadSvidsRequest req;
  auto* w = req.add_workloads();
  *w->add_selectors() = selector_proto("unix:uid:7");
  w->add_csrs(make_csr().der);
  w->add_csrs(make_csr().der);
  auto resp = a_.core->sign_workload_svids(node.spiffe_id(), req);
  ASSERT_TRUE(resp.ok());
  int64_t now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  for (const auto& svid : resp->workloads(0).svids()) {
    int64_t want = svid.spiffe_id().ends_with("/short") ? 120 : 3600;
    EXPECT_NEAR(svid.expires_at() - now, want, 5) << svid.spiffe_id();
  }
}

TEST_F(AuthorityCoreTest, OnlyTheIssuingNodeRevokes) {
  v1::X509Svid node1 = a_.attest();
  v1::X509Svid node2 = a_.attest();
  a_.add_entry("spiffe://example.org/web", {"unix:uid:1000"});
  v1::SignWorkloadSvidsRequest req;
  auto* w = req.add_workloads();
  *w->add_selectors() = selector_proto("unix:uid:1000");
  w->add_csrs(make_csr().der);
  auto issued = a_.core->sign_workload_svids(node1.spiffe_id(), req);
  ASSERT_TRUE(issued.ok());
  std::string serial = issued->workloads(0).svids(0).serial();

  v1::RevokeSvidsRequest revoke;
  revoke.add_serials(serial);
  revoke.set_reason("workload exited");
  auto by_other = a_.core->revoke(node2.spiffe_id(), revoke);
  ASSERT_TRUE(by_other.ok());
  EXPECT_EQ(by_other->revoked(), 0u);
  EXPECT_EQ(a_.stat("authority.revoke_denied"), 1);
  EXPECT_FALSE(*a_.core->store().is_revoked(serial));

  auto by_owner = a_.core->revoke(node1.spiffe_id(), revoke);
  ASSERT_TRUE(by_owner.ok());
  EXPECT_EQ(by_owner->revoked(), 1u);
  EXPECT_TRUE(*a_.core->store().is_revoked(serial));
  auto live = a_.core->store().live_revocations(0);
  ASSERT_TRUE(live.ok());
  ASSERT_EQ(live->size(), 1u);
  EXPECT_EQ((*live)[0].reason, "workload exited");
  EXPECT_EQ((*live)[0].expires_at, issued->workloads(0).svids(0).expires_at());
  EXPECT_EQ(a_.core->revoke(node1.spiffe_id(), revoke)->revoked(), 0u) << "already revoked";
}

TEST_F(AuthorityCoreTest, ARevokedNodeIsNoLongerAllowed) {
  v1::X509Svid node = a_.attest();
  ASSERT_TRUE(a_.core->node_allowed(tls_peer(node)));
  v1::RevokeSvidsRequest revoke;
  revoke.add_serials(node.serial());
  ASSERT_EQ(a_.core->revoke(node.spiffe_id(), revoke)->revoked(), 1u);
  EXPECT_FALSE(a_.core->node_allowed(tls_peer(node)));
}

TEST_F(AuthorityCoreTest, RenewKeepsTheNodeId) {
  v1::X509Svid node = a_.attest();
  v1::RenewNodeRequest req;
  req.set_csr(make_csr().der);
  auto renewed = a_.core->renew_node(node.spiffe_id(), req);
  ASSERT_TRUE(renewed.ok()) << renewed.error().message;
  EXPECT_EQ(renewed->svid().spiffe_id(), node.spiffe_id());
  EXPECT_NE(renewed->svid().serial(), node.serial());
  EXPECT_TRUE(a_.core->node_allowed(tls_peer(renewed->svid())));
  EXPECT_EQ(verify_svid(renewed->svid(), a_.core->bundle()).attested_claims,
            std::vector<std::string>{"node:attestation:join_token"});
}

TEST_F(AuthorityCoreTest, WatchGetsTheFullSetThenDeltas) {
  v1::X509Svid node = a_.attest();
  v1::RevokeSvidsRequest before;
  before.add_serials(node.serial());
  ASSERT_EQ(a_.core->revoke(node.spiffe_id(), before)->revoked(), 1u);

  std::vector<v1::AuthorityUpdate> got;
  auto sub = a_.core->watch([&](const v1::AuthorityUpdate& u) { got.push_back(u); });
  ASSERT_TRUE(sub.ok()) << sub.error().message;
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].full_revocation_set());
  EXPECT_TRUE(got[0].has_bundle());
  EXPECT_EQ(got[0].bundle().sequence_number(), a_.core->bundle().sequence_number());
  ASSERT_EQ(got[0].revocations_size(), 1);
  EXPECT_EQ(got[0].revocations(0).serial(), node.serial());
  EXPECT_EQ(a_.stat("authority.watchers"), 1);

  v1::X509Svid node2 = a_.attest();
  v1::RevokeSvidsRequest later;
  later.add_serials(node2.serial());
  ASSERT_EQ(a_.core->revoke(node2.spiffe_id(), later)->revoked(), 1u);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_FALSE(got[1].full_revocation_set());
  EXPECT_FALSE(got[1].has_bundle()) << "the bundle did not change";
  ASSERT_EQ(got[1].revocations_size(), 1);
  EXPECT_EQ(got[1].revocations(0).serial(), node2.serial());

  EXPECT_FALSE(a_.core->publish_bundle()) << "same sequence: nothing to push";
  sub->reset();
  EXPECT_EQ(a_.stat("authority.watchers"), 0);
  v1::X509Svid node3 = a_.attest();
  later.set_serials(0, node3.serial());
  ASSERT_EQ(a_.core->revoke(node3.spiffe_id(), later)->revoked(), 1u);
  EXPECT_EQ(got.size(), 2u) << "unsubscribed";
}

TEST(AuthorityCoreLimits, WatchersAreBounded) {
  TempDir dir;
  AuthorityCoreOptions options;
  options.limits.max_watchers = 1;
  TestAuthority a(dir.path(), options);
  auto first = a.core->watch([](const v1::AuthorityUpdate&) {});
  ASSERT_TRUE(first.ok());
  auto second = a.core->watch([](const v1::AuthorityUpdate&) {});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, ErrorCode::kResourceExhausted);
  first->reset();
  EXPECT_TRUE(a.core->watch([](const v1::AuthorityUpdate&) {}).ok());
}

TEST(AuthorityCoreLimits, OversizedRequestsAreInvalid) {
  TempDir dir;
  AuthorityCoreOptions options;
  options.limits.max_workloads_per_request = 2;
  options.limits.max_csrs_per_workload = 1;
  options.limits.max_serials_per_revoke = 2;
  TestAuthority a(dir.path(), options);
  v1::X509Svid node = a.attest();
  v1::SignWorkloadSvidsRequest req;
  for (int i = 0; i < 3; ++i) *req.add_workloads()->add_selectors() = selector_proto("unix:uid:1");
  auto r = a.core->sign_workload_svids(node.spiffe_id(), req);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message.find("max_workloads_per_request"), std::string::npos) << r.error().message;

  req.mutable_workloads()->RemoveLast();
  req.mutable_workloads(0)->add_csrs(make_csr().der);
  req.mutable_workloads(0)->add_csrs(make_csr().der);
  r = a.core->sign_workload_svids(node.spiffe_id(), req);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("workloads[0].csrs"), std::string::npos) << r.error().message;

  req.mutable_workloads(0)->mutable_csrs()->RemoveLast();
  *req.mutable_workloads(1)->add_selectors() = selector_proto("nocolons");
  r = a.core->sign_workload_svids(node.spiffe_id(), req);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("workloads[1].selectors[1]"), std::string::npos) << r.error().message;

  v1::RevokeSvidsRequest revoke;
  for (const char* s : {"01", "02", "03"}) revoke.add_serials(s);
  EXPECT_EQ(a.core->revoke(node.spiffe_id(), revoke).error().code, ErrorCode::kInvalidArgument);
  revoke.clear_serials();
  revoke.add_serials("NOT-HEX");
  EXPECT_EQ(a.core->revoke(node.spiffe_id(), revoke).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(a.stat("authority.requests_invalid"), 5);
  EXPECT_EQ(a.core->generate_join_token(-1).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(a.core->generate_join_token(365LL * 24 * 3600).error().code, ErrorCode::kInvalidArgument);
}

TEST_F(AuthorityCoreTest, JwtSvidForAnEntitledIdOnly) {
  v1::X509Svid node = a_.attest();
  a_.add_entry("spiffe://example.org/api", {"unix:uid:1000"});
  v1::MintJwtSvidRequest req;
  *req.add_selectors() = selector_proto("unix:uid:1000");
  req.add_audience("spiffe://example.org/db");
  auto minted = a_.core->mint_jwt_svid(node.spiffe_id(), req);
  ASSERT_TRUE(minted.ok()) << minted.error().message;
  EXPECT_EQ(minted->spiffe_id(), "spiffe://example.org/api");
  auto bundle = mtls::TrustBundle::from_spiffe_json(kTrustDomain, a_.core->bundle().spiffe_bundle_json());
  ASSERT_TRUE(bundle.ok()) << bundle.error().message;
  mtls::TrustBundleSet bundles;
  bundles.add(*bundle);
  mtls::JwtSvidClaims claims;
  mtls::JwtVerifyError error;
  EXPECT_TRUE(mtls::validate_jwt_svid(minted->token(), "spiffe://example.org/db", bundles, {}, &claims, &error))
      << error.message;
  EXPECT_EQ(claims.spiffe_id, "spiffe://example.org/api");

  req.set_spiffe_id("spiffe://example.org/admin");
  auto denied = a_.core->mint_jwt_svid(node.spiffe_id(), req);
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.error().code, ErrorCode::kPermissionDenied);
  EXPECT_EQ(a_.stat("authority.jwt_svid_denied"), 1);
}

TEST(AuthorityCorePersistence, EntriesAndTheCaSurviveARestart) {
  TempDir dir;
  std::string entry_id, bundle_der;
  {
    TestAuthority a(dir.path());
    entry_id = a.add_entry("spiffe://example.org/web", {"unix:uid:1000"}).id();
    bundle_der = a.core->bundle().x509_authorities(0);
  }
  TestAuthority again(dir.path());
  auto entry = again.core->get_entry(entry_id);
  ASSERT_TRUE(entry.ok()) << entry.error().message;
  EXPECT_EQ(entry->spiffe_id(), "spiffe://example.org/web");
  EXPECT_EQ(again.core->bundle().x509_authorities(0), bundle_der) << "the CA is loaded, not regenerated";
}

TEST(NodeAttestationOf, OnlyNodePathsOfOurTrustDomain) {
  EXPECT_EQ(node_attestation_of("spiffe://example.org/node/join_token/abc", "example.org"), "join_token");
  EXPECT_EQ(node_attestation_of("spiffe://example.org/node/embedded/host-1", "example.org"), "embedded");
  EXPECT_EQ(node_attestation_of("spiffe://example.org/node/join_token", "example.org"), "");
  EXPECT_EQ(node_attestation_of("spiffe://other.org/node/join_token/abc", "example.org"), "");
  EXPECT_EQ(node_attestation_of("spiffe://example.org/web/node/x/y", "example.org"), "");
  EXPECT_EQ(node_attestation_of("not a spiffe id", "example.org"), "");
}

}  // namespace
}  // namespace portcullis::attest::authority
