// AuthorityService on fake calls over a real core: who may call what (node SVIDs, admin uids),
// and the WatchUpdates stream.
#include "attest/authority/authority_service.h"

#include <set>

#include <gtest/gtest.h>

#include "attest/authority/authority_messages.h"
#include "authority_test_util.h"
#include "common/grpc/fake_server_call.h"

namespace portcullis::attest::authority {
namespace {

using namespace testing;  // NOLINT: the test helpers
using grpc::StatusCode;

constexpr const char* kAuthority = "/portcullis.authority.v1.Authority/";
constexpr const char* kAdmin = "/portcullis.authority.v1.AuthorityAdmin/";

class AuthorityServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    core_ = a_.core;
    service_ = std::make_shared<AuthorityService>(core_, std::vector<uid_t>{1000}, a_.stats, nullptr);
    ASSERT_TRUE(AuthorityService::register_authority(service_, node_registry_).ok());
    ASSERT_TRUE(AuthorityService::register_admin(service_, admin_registry_).ok());
  }

  static grpc::ServerCallContext unix_caller(uid_t uid) {
    auto peer = std::make_shared<grpc::PeerInfo>();
    peer->transport = grpc::PeerInfo::Transport::kUnix;
    peer->credentials = grpc::PeerCredentials{4242, uid, uid};
    grpc::ServerCallContext ctx;
    ctx.peer = std::move(peer);
    return ctx;
  }
  static grpc::ServerCallContext tls_caller(std::optional<grpc::TlsPeer> tls) {
    auto peer = std::make_shared<grpc::PeerInfo>();
    peer->tls = std::move(tls);
    grpc::ServerCallContext ctx;
    ctx.peer = std::move(peer);
    return ctx;
  }
  template <typename M>
  std::shared_ptr<grpc::FakeServerCall> call(const grpc::ServiceRegistry& r, const std::string& path, const M& req,
                                             grpc::ServerCallContext ctx) {
    std::string bytes;
    req.SerializeToString(&bytes);
    return grpc::start_fake_call(r, path, std::move(bytes), std::move(ctx));
  }

  TempDir dir_;
  TestAuthority a_{dir_.path()};
  std::shared_ptr<AuthorityCore> core_;
  std::shared_ptr<AuthorityService> service_;
  grpc::ServiceRegistry node_registry_, admin_registry_;
};

TEST_F(AuthorityServiceTest, AdminCallsNeedAnAdminUid) {
  v1::GenerateJoinTokenRequest req;
  for (uid_t uid : {0u, 1000u}) {
    auto ok = call(admin_registry_, std::string(kAdmin) + "GenerateJoinToken", req, unix_caller(uid));
    ASSERT_TRUE(ok->final_status()) << uid;
    EXPECT_TRUE(ok->final_status()->ok()) << ok->final_status()->message;
    EXPECT_FALSE(ok->sent_as<v1::GenerateJoinTokenResponse>(0).token().empty());
  }
  auto denied = call(admin_registry_, std::string(kAdmin) + "GenerateJoinToken", req, unix_caller(1234));
  EXPECT_EQ(denied->final_status()->code, StatusCode::kPermissionDenied);
  EXPECT_NE(denied->final_status()->message.find("uid 1234"), std::string::npos);
  EXPECT_TRUE(denied->sent().empty());
  auto no_creds = call(admin_registry_, std::string(kAdmin) + "ListEntries", v1::ListEntriesRequest{}, tls_caller({}));
  EXPECT_EQ(no_creds->final_status()->code, StatusCode::kPermissionDenied);
  EXPECT_EQ(a_.stat("authority_service.admin_denied"), 2);
  EXPECT_EQ(a_.stat("authority.join_tokens_created"), 2);
}

TEST_F(AuthorityServiceTest, AdminEntryLifecycleAndErrors) {
  v1::CreateEntryRequest create;
  create.mutable_entry()->set_spiffe_id("spiffe://example.org/web");
  *create.mutable_entry()->add_selectors() = selector_proto("unix:uid:1000");
  auto created = call(admin_registry_, std::string(kAdmin) + "CreateEntry", create, unix_caller(0));
  ASSERT_TRUE(created->final_status()->ok()) << created->final_status()->message;
  std::string id = created->sent_as<v1::RegistrationEntry>(0).id();

  auto dup = call(admin_registry_, std::string(kAdmin) + "CreateEntry", create, unix_caller(0));
  EXPECT_EQ(dup->final_status()->code, StatusCode::kAlreadyExists);
  create.mutable_entry()->set_spiffe_id("not-a-spiffe-id");
  auto bad = call(admin_registry_, std::string(kAdmin) + "CreateEntry", create, unix_caller(0));
  EXPECT_EQ(bad->final_status()->code, StatusCode::kInvalidArgument);

  v1::DeleteEntryRequest del;
  del.set_id(id);
  EXPECT_TRUE(call(admin_registry_, std::string(kAdmin) + "DeleteEntry", del, unix_caller(0))->final_status()->ok());
  v1::GetEntryRequest get;
  get.set_id(id);
  EXPECT_EQ(call(admin_registry_, std::string(kAdmin) + "GetEntry", get, unix_caller(0))->final_status()->code,
            StatusCode::kNotFound);
}

TEST_F(AuthorityServiceTest, EvictNodeIsAdminOnlyAndCutsTheNodeOff) {
  v1::X509Svid node = a_.attest();
  v1::RenewNodeRequest renew;
  renew.set_csr(make_csr().der);
  ASSERT_TRUE(call(node_registry_, std::string(kAuthority) + "RenewNode", renew, tls_caller(tls_peer(node)))
                  ->final_status()
                  ->ok());
  v1::EvictNodeRequest evict;
  evict.set_node_id(node.spiffe_id());
  evict.set_reason("stolen");
  auto stranger = call(admin_registry_, std::string(kAdmin) + "EvictNode", evict, unix_caller(1234));
  EXPECT_EQ(stranger->final_status()->code, StatusCode::kPermissionDenied);
  EXPECT_FALSE(core_->store().is_evicted(node.spiffe_id()));

  auto evicted = call(admin_registry_, std::string(kAdmin) + "EvictNode", evict, unix_caller(1000));
  ASSERT_TRUE(evicted->final_status()->ok()) << evicted->final_status()->message;
  EXPECT_EQ(evicted->sent_as<v1::EvictNodeResponse>(0).revoked(), 2u) << "the node SVID and its renewal";
  auto after = call(node_registry_, std::string(kAuthority) + "RenewNode", renew, tls_caller(tls_peer(node)));
  EXPECT_EQ(after->final_status()->code, StatusCode::kPermissionDenied);

  evict.set_node_id("spiffe://example.org/web");
  auto bad = call(admin_registry_, std::string(kAdmin) + "EvictNode", evict, unix_caller(0));
  EXPECT_EQ(bad->final_status()->code, StatusCode::kInvalidArgument);
}

TEST_F(AuthorityServiceTest, NodeCallsNeedALiveNodeSvid) {
  v1::RenewNodeRequest renew;
  renew.set_csr(make_csr().der);
  auto anonymous = call(node_registry_, std::string(kAuthority) + "RenewNode", renew, tls_caller(std::nullopt));
  EXPECT_EQ(anonymous->final_status()->code, StatusCode::kUnauthenticated);

  // A workload SVID of ours is a valid certificate but not a node.
  v1::X509Svid node = a_.attest();
  a_.add_entry("spiffe://example.org/web", {"unix:uid:1000"});
  v1::SignWorkloadSvidsRequest sign;
  auto* w = sign.add_workloads();
  *w->add_selectors() = selector_proto("unix:uid:1000");
  w->add_csrs(make_csr().der);
  auto signed_call = call(node_registry_, std::string(kAuthority) + "SignWorkloadSvids", sign, tls_caller(tls_peer(node)));
  ASSERT_TRUE(signed_call->final_status()->ok()) << signed_call->final_status()->message;
  v1::X509Svid workload = signed_call->sent_as<v1::SignWorkloadSvidsResponse>(0).workloads(0).svids(0);
  auto as_workload = call(node_registry_, std::string(kAuthority) + "RenewNode", renew, tls_caller(tls_peer(workload)));
  EXPECT_EQ(as_workload->final_status()->code, StatusCode::kPermissionDenied);

  auto renewed = call(node_registry_, std::string(kAuthority) + "RenewNode", renew, tls_caller(tls_peer(node)));
  ASSERT_TRUE(renewed->final_status()->ok());
  EXPECT_EQ(renewed->sent_as<v1::RenewNodeResponse>(0).svid().spiffe_id(), node.spiffe_id());
  EXPECT_EQ(a_.stat("authority_service.unauthenticated"), 1);
  EXPECT_EQ(a_.stat("authority_service.node_denied"), 1);

  // AttestNode is open: its evidence is in the request.
  v1::AttestNodeRequest attest;
  attest.set_join_token(std::string(64, '0'));
  attest.set_csr(make_csr().der);
  EXPECT_EQ(call(node_registry_, std::string(kAuthority) + "AttestNode", attest, tls_caller(std::nullopt))
                ->final_status()
                ->code,
            StatusCode::kPermissionDenied);
}

TEST_F(AuthorityServiceTest, WatchStreamsFullThenDeltasUntilItEnds) {
  v1::X509Svid node = a_.attest();
  auto stream = call(node_registry_, std::string(kAuthority) + "WatchUpdates", v1::WatchUpdatesRequest{},
                     tls_caller(tls_peer(node)));
  EXPECT_FALSE(stream->done());
  stream->manual_executor()->run();
  ASSERT_EQ(stream->sent().size(), 1u);
  auto first = stream->sent_as<v1::AuthorityUpdate>(0);
  EXPECT_TRUE(first.full_revocation_set());
  EXPECT_TRUE(first.has_bundle());

  v1::X509Svid other = a_.attest();
  v1::RevokeSvidsRequest revoke;
  revoke.add_serials(other.serial());
  ASSERT_EQ(core_->revoke(other.spiffe_id(), revoke)->revoked(), 1u);
  stream->manual_executor()->run();
  ASSERT_EQ(stream->sent().size(), 2u);
  EXPECT_EQ(stream->sent_as<v1::AuthorityUpdate>(1).revocations(0).serial(), other.serial());

  EXPECT_EQ(a_.stat("authority.watchers"), 1);
  stream->cancel();
  stream->manual_executor()->run();
  EXPECT_EQ(a_.stat("authority.watchers"), 0) << "an ended stream unsubscribes";

  auto anonymous = call(node_registry_, std::string(kAuthority) + "WatchUpdates", v1::WatchUpdatesRequest{},
                        tls_caller(std::nullopt));
  EXPECT_EQ(anonymous->final_status()->code, StatusCode::kUnauthenticated);
}

// A full revocation set larger than one message would fail every sidecar's stream on every
// reconnect (they cap messages at 4 MiB), and revocations would stop propagating: it goes in pieces.
TEST(AuthorityServiceWatch, ABigFullSetGoesInPiecesWithinTheLimit) {
  TempDir dir;
  AuthorityCoreOptions options;
  options.limits.max_update_bytes = 64 << 10;
  TestAuthority a{dir.path(), options};
  auto service = std::make_shared<AuthorityService>(a.core, std::vector<uid_t>{}, a.stats, nullptr);
  grpc::ServiceRegistry registry;
  ASSERT_TRUE(AuthorityService::register_authority(service, registry).ok());
  std::set<std::string> revoked;
  for (int i = 0; i < 48; ++i) {  // ~2 KiB each: about 100 KiB in all
    v1::X509Svid node = a.attest();
    v1::RevokeSvidsRequest req;
    req.add_serials(node.serial());
    req.set_reason(std::string(2000, 'r'));
    auto r = a.core->revoke(node.spiffe_id(), req);
    ASSERT_TRUE(r.ok()) << r.error().message;
    revoked.insert(node.serial());
  }
  v1::X509Svid watcher = a.attest();
  std::string bytes;
  v1::WatchUpdatesRequest{}.SerializeToString(&bytes);
  grpc::ServerCallContext ctx;
  auto peer = std::make_shared<grpc::PeerInfo>();
  peer->tls = tls_peer(watcher);
  ctx.peer = std::move(peer);
  auto stream = grpc::start_fake_call(registry, std::string(kAuthority) + "WatchUpdates", std::move(bytes), std::move(ctx));
  stream->manual_executor()->run();
  ASSERT_GE(stream->sent().size(), 2u);
  std::set<std::string> got;
  for (size_t i = 0; i < stream->sent().size(); ++i) {
    EXPECT_LE(stream->sent()[i].size(), size_t{64 << 10}) << "message " << i;
    auto update = stream->sent_as<v1::AuthorityUpdate>(i);
    EXPECT_EQ(update.has_bundle(), i == 0);
    EXPECT_EQ(update.full_revocation_set(), i == 0);
    for (const auto& r : update.revocations()) got.insert(r.serial());
  }
  EXPECT_EQ(got, revoked);
  stream->cancel();
  stream->manual_executor()->run();
}

TEST(SplitUpdate, SmallUpdatesStayWholeAndAnOversizedRevocationGoesAlone) {
  v1::AuthorityUpdate update;
  update.set_full_revocation_set(true);
  update.add_revocations()->set_serial("0a");
  auto whole = split_update(update, 1024);
  ASSERT_EQ(whole.size(), 1u);
  EXPECT_EQ(whole[0].SerializeAsString(), update.SerializeAsString());

  update.add_revocations()->set_reason(std::string(4096, 'x'));
  update.add_revocations()->set_serial("0c");
  auto pieces = split_update(update, 1024);
  ASSERT_EQ(pieces.size(), 3u);
  EXPECT_TRUE(pieces[0].full_revocation_set());
  EXPECT_EQ(pieces[0].revocations(0).serial(), "0a");
  EXPECT_EQ(pieces[1].revocations_size(), 1);
  EXPECT_EQ(pieces[2].revocations(0).serial(), "0c");
}

}  // namespace
}  // namespace portcullis::attest::authority
