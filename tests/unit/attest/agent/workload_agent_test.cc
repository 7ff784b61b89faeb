// WorkloadAgent end to end in one process: a REAL authority (CA + SQLite in a temp dir) through
// EmbeddedAuthorityApi, real child processes attested by the kernel attestor, the real exit
// watcher, and a real-thread loop. Short TTLs (a few seconds) make rotation and expiry observable.
#include "attest/agent/workload_agent.h"

#include <openssl/bn.h>
#include <openssl/mem.h>

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "attest/agent/embedded_authority_api.h"
#include "attest/kernel/kernel_attestor.h"
#include "attest/workload_api/workload_api_service.h"
#include "common/grpc/fake_server_call.h"
#include "authority_fixture.h"
#include "../kernel/test_process.h"
#include "test_loop.h"

namespace portcullis::attest::agent {
namespace {

using namespace std::chrono_literals;
using kernel::testing::TestProcess;
using testing::Partitionable;
using testing::TestAuthority;
using testing::TestLoop;
using Clock = std::chrono::system_clock;

template <typename F>
bool wait_until(F pred, std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

class AgentTest : public ::testing::Test {
 protected:
  void start(std::chrono::seconds workload_ttl = 60s, std::chrono::seconds node_ttl = 600s, bool down = false) {
    authority_ = TestAuthority::create(authority_stats_, workload_ttl, node_ttl);
    ASSERT_TRUE(authority_);
    auto watcher = kernel::ExitWatcher::create();
    ASSERT_TRUE(watcher.ok());
    exits_ = std::move(watcher.value());
    auto attestor = kernel::KernelAttestor::create({}, stats_);
    ASSERT_TRUE(attestor.ok()) << attestor.error().message;
    attestor_ = std::move(attestor.value());
    store_ = std::make_unique<AttestedSvidStore>(testing::kTrustDomain, mtls::JwtValidateOptions{}, stats_, fallback_);
    revocations_ = std::make_unique<mtls::RevocationPublisher>(stats_);
    embedded_ = std::make_unique<EmbeddedAuthorityApi>(*authority_->core, loop_, "testhost");
    api_ = std::make_unique<Partitionable>(*embedded_, loop_);
    loop_.run_sync([&] { api_->set_down(down); });
    AgentConfig config;
    config.trust_domain = testing::kTrustDomain;
    config.embedded = EmbeddedAuthorityConfig{authority_->dir, ""};
    config.limits.backoff_initial = 50ms;
    config.limits.backoff_max = 200ms;
    config.limits.call_timeout = 1s;
    loop_.run_sync([&] {
      agent_ = std::make_unique<WorkloadAgent>(
          config, WorkloadAgent::Deps{*api_, loop_, loop_, *exits_, *store_, revocations_.get(), stats_, nullptr});
      agent_->start();
    });
  }
  void TearDown() override {
    loop_.run_sync([&] {
      agent_.reset();
      api_.reset();
      embedded_.reset();
    });
  }

  // ensure attests `process` with the kernel and asks the agent for its SVIDs.
  std::shared_ptr<const mtls::IdentitySnapshot> ensure(TestProcess& process, kernel::Attestation* out = nullptr) {
    auto att = attestor_->attest_pidfd(process.pidfd());
    EXPECT_TRUE(att.ok()) << att.error().message;
    if (!att.ok()) return nullptr;
    if (out) *out = att.value();
    std::promise<std::shared_ptr<const mtls::IdentitySnapshot>> got;
    loop_.post([&] { agent_->ensure_workload(att.value(), [&](auto view) { got.set_value(view); }); });
    auto f = got.get_future();
    EXPECT_EQ(f.wait_for(10s), std::future_status::ready);
    return f.get();
  }

  std::unique_ptr<TestProcess> child(unsigned uid) {
    auto p = TestProcess::spawn(kernel::testing::as_uid(
        uid, kernel::testing::python("import sys,time; print('ready', flush=True); time.sleep(600)")));
    if (p) EXPECT_EQ(p->read_line(), "ready");
    return p;
  }

  int64_t stat(const std::string& name) { return stats_.value(name).value_or(-1); }
  Readiness readiness() { return agent_->readiness(); }

  std::string fallback_;  // unattested_fallback, set before start()
  StatsStore stats_, authority_stats_;
  TestLoop loop_;
  std::unique_ptr<TestAuthority> authority_;
  std::unique_ptr<kernel::ExitWatcher> exits_;
  std::unique_ptr<kernel::KernelAttestor> attestor_;
  std::unique_ptr<AttestedSvidStore> store_;
  std::unique_ptr<mtls::RevocationPublisher> revocations_;
  std::unique_ptr<EmbeddedAuthorityApi> embedded_;
  std::unique_ptr<Partitionable> api_;
  std::unique_ptr<WorkloadAgent> agent_;
};

#define REQUIRE_ROOT() \
  if (geteuid() != 0) GTEST_SKIP() << "needs root: children run under other uids via setpriv --reuid"

TEST_F(AgentTest, NodeAttestationGivesTheEmbeddedNodeItsSvidAndTheBundle) {
  start();
  ASSERT_TRUE(wait_until([&] { return readiness().ready; })) << readiness().reason;
  auto node = store_->current();
  ASSERT_TRUE(node);
  ASSERT_EQ(node->svids.size(), 1u);
  EXPECT_EQ(node->svids[0].spiffe_id, "spiffe://example.org/node/embedded/testhost");
  ASSERT_NE(node->own_bundle(), nullptr);
  EXPECT_GT(node->own_bundle()->size(), 0u);
  EXPECT_EQ(readiness().reason, "");
  EXPECT_EQ(stat("agent.node_attestations"), 1);
}

TEST_F(AgentTest, AttestedChildGetsItsEntrysSvidAndAnUnmatchedOneGetsNone) {
  REQUIRE_ROOT();
  start();
  authority_->add_entry("spiffe://example.org/py", {"unix:uid:4242"});
  auto matched = child(4242);
  auto unmatched = child(4343);
  ASSERT_TRUE(matched && unmatched);
  kernel::Attestation att;
  auto view = ensure(*matched, &att);
  ASSERT_TRUE(view);
  ASSERT_EQ(view->svids.size(), 1u);
  EXPECT_EQ(view->svids[0].spiffe_id, "spiffe://example.org/py");
  EXPECT_TRUE(view->svids[0].private_key);
  EXPECT_EQ(store_->for_caller(mtls::CallerInfo{.selectors = att.selectors}), view);

  kernel::Attestation other;
  EXPECT_EQ(ensure(*unmatched, &other), nullptr);
  EXPECT_EQ(store_->for_caller(mtls::CallerInfo{.selectors = other.selectors}), nullptr);
  EXPECT_EQ(stat("agent.svids_issued"), 1);
  EXPECT_EQ(stat("agent.unmatched_workloads"), 1);
}

TEST_F(AgentTest, MoreMatchingEntriesThanFirstCsrsAreAllIssued) {
  REQUIRE_ROOT();
  start();
  // Three entries match; the agent first sends initial_csrs (2) CSRs, learns matched_entries = 3
  // and asks again with three.
  std::vector<std::string> ids = {authority_->add_entry("spiffe://example.org/a", {"unix:uid:4242"}),
                                  authority_->add_entry("spiffe://example.org/b", {"unix:uid:4242"}),
                                  authority_->add_entry("spiffe://example.org/c", {"unix:uid:4242"})};
  auto p = child(4242);
  ASSERT_TRUE(p);
  auto view = ensure(*p);
  ASSERT_TRUE(view);
  ASSERT_EQ(view->svids.size(), 3u);
  std::set<std::string> got;
  for (const auto& s : view->svids) got.insert(s.spiffe_id);
  EXPECT_EQ(got, (std::set<std::string>{"spiffe://example.org/a", "spiffe://example.org/b", "spiffe://example.org/c"}));
  EXPECT_EQ(stat("agent.svids_issued"), 3);
}

TEST_F(AgentTest, ACallerIsNotLeftHangingBeforeNodeAttestation) {
  REQUIRE_ROOT();
  start(60s, 600s, /*down=*/true);
  auto p = child(4242);
  ASSERT_TRUE(p);
  auto begin = std::chrono::steady_clock::now();
  EXPECT_EQ(ensure(*p), nullptr);
  EXPECT_GE(std::chrono::steady_clock::now() - begin, 900ms) << "it waited for node attestation first";
  EXPECT_EQ(readiness().reason.rfind("waiting for node attestation", 0), 0u) << readiness().reason;
}

TEST_F(AgentTest, ConcurrentRequestsForOneWorkloadShareOneIssuance) {
  REQUIRE_ROOT();
  start();
  ASSERT_TRUE(wait_until([&] { return readiness().ready; }));
  authority_->add_entry("spiffe://example.org/py", {"unix:uid:4242"});
  auto p = child(4242);
  ASSERT_TRUE(p);
  auto att = attestor_->attest_pidfd(p->pidfd());
  ASSERT_TRUE(att.ok());
  std::promise<void> all;
  std::atomic<int> answered{0};
  std::vector<std::shared_ptr<const mtls::IdentitySnapshot>> views(5);
  loop_.post([&] {
    for (int i = 0; i < 5; ++i) {
      agent_->ensure_workload(att.value(), [&, i](auto v) {
        views[i] = v;
        if (++answered == 5) all.set_value();
      });
    }
  });
  ASSERT_EQ(all.get_future().wait_for(10s), std::future_status::ready);
  for (const auto& v : views) EXPECT_EQ(v, views[0]);
  ASSERT_TRUE(views[0]);
  EXPECT_EQ(stat("agent.requests_deduplicated"), 4);
  EXPECT_EQ(stat("agent.svids_issued"), 1);
  EXPECT_EQ(authority_stats_.value("authority.workload_svids_issued").value_or(-1), 1);
}

TEST_F(AgentTest, KillingTheChildRevokesItsSerialAtTheAuthorityAndThePushComesBack) {
  REQUIRE_ROOT();
  start();
  authority_->add_entry("spiffe://example.org/py", {"unix:uid:4242"});
  auto p = child(4242);
  ASSERT_TRUE(p);
  kernel::Attestation att;
  auto view = ensure(*p, &att);
  ASSERT_TRUE(view);
  std::string leaf_serial;
  {
    bssl::UniquePtr<BIGNUM> bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(view->svids[0].chain[0].get()), nullptr));
    char* hex = BN_bn2hex(bn.get());
    leaf_serial = hex;
    OPENSSL_free(hex);
  }
  EXPECT_FALSE(revocations_->current()->revoked(leaf_serial));
  p->kill_and_reap();
  ASSERT_TRUE(wait_until([&] { return revocations_->current()->revoked(leaf_serial); }))
      << "the revocation must come back on the update stream";
  EXPECT_EQ(store_->for_caller(mtls::CallerInfo{.selectors = att.selectors}), nullptr);
  auto live = authority_->core->store().live_revocations(
      std::chrono::duration_cast<std::chrono::seconds>(Clock::now().time_since_epoch()).count());
  ASSERT_TRUE(live.ok());
  ASSERT_EQ(live->size(), 1u);
  EXPECT_EQ((*live)[0].spiffe_id, "spiffe://example.org/py");
  EXPECT_EQ((*live)[0].reason, "workload exited");
  EXPECT_EQ(stat("agent.svids_revoked_on_exit"), 1);
  EXPECT_EQ(agent_->live_processes(), 0u);
}

TEST_F(AgentTest, AProcessThatExecsAfterIssuanceHasItsNewSvidsRevokedOnExit) {
  REQUIRE_ROOT();
  start();
  authority_->add_entry("spiffe://example.org/any", {"unix:uid:4242"});
  auto p = TestProcess::spawn(kernel::testing::as_uid(
      4242, kernel::testing::python("import os,time; print('ready', flush=True); time.sleep(1); "
                                    "os.execv('/usr/bin/sleep', ['sleep', '600'])")));
  ASSERT_TRUE(p);
  ASSERT_EQ(p->read_line(), "ready");
  auto serial_of = [](const mtls::IdentitySnapshot& view) {
    bssl::UniquePtr<BIGNUM> bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(view.svids[0].chain[0].get()), nullptr));
    char* hex = BN_bn2hex(bn.get());
    std::string out = hex;
    OPENSSL_free(hex);
    return out;
  };
  kernel::Attestation before, after;
  auto first = ensure(*p, &before);
  ASSERT_TRUE(first);
  ASSERT_TRUE(p->wait_for_exe("/usr/bin/sleep"));
  auto second = ensure(*p, &after);
  ASSERT_TRUE(second);
  ASSERT_NE(before.selectors, after.selectors) << "the exec must change unix:path";
  const std::string old_serial = serial_of(*first), new_serial = serial_of(*second);
  ASSERT_NE(old_serial, new_serial);
  ASSERT_TRUE(wait_until([&] { return revocations_->current()->revoked(old_serial); }))
      << "the pre-exec image's SVIDs die with it";
  EXPECT_EQ(agent_->live_processes(), 1u);
  p->kill_and_reap();
  ASSERT_TRUE(wait_until([&] { return revocations_->current()->revoked(new_serial); }))
      << "the SVIDs issued after the exec must be revoked when the process exits";
  EXPECT_EQ(store_->for_caller(mtls::CallerInfo{.selectors = after.selectors}), nullptr);
  EXPECT_EQ(agent_->live_processes(), 0u);
}

TEST_F(AgentTest, ASiblingWithTheSameSelectorsKeepsTheSvidsAlive) {
  REQUIRE_ROOT();
  start();
  authority_->add_entry("spiffe://example.org/py", {"unix:uid:4242"});
  auto a = child(4242);
  auto b = child(4242);
  ASSERT_TRUE(a && b);
  kernel::Attestation att;
  auto va = ensure(*a, &att);
  auto vb = ensure(*b);
  ASSERT_TRUE(va && vb);
  EXPECT_EQ(va, vb) << "same selectors, same SVIDs";
  a->kill_and_reap();
  ASSERT_TRUE(wait_until([&] { return agent_->live_processes() == 1; }));
  EXPECT_EQ(store_->for_caller(mtls::CallerInfo{.selectors = att.selectors}), va);
  EXPECT_EQ(revocations_->current()->size(), 0u);
  b->kill_and_reap();
  ASSERT_TRUE(wait_until([&] { return revocations_->current()->size() == 1; }));
}

TEST_F(AgentTest, RotationRenewsBeforeRotateAtTimesTtl) {
  REQUIRE_ROOT();
  start();
  authority_->add_entry("spiffe://example.org/py", {"unix:uid:4242"}, 4);
  auto p = child(4242);
  ASSERT_TRUE(p);
  kernel::Attestation att;
  auto first = ensure(*p, &att);
  ASSERT_TRUE(first);
  auto issued_at = Clock::now();
  auto first_not_after = first->svids[0].not_after;
  ASSERT_TRUE(wait_until([&] {
    auto v = store_->for_caller(mtls::CallerInfo{.selectors = att.selectors});
    return v && v->svids[0].not_after != first_not_after;
  }));
  auto renewed_at = Clock::now();
  // rotate_at 0.5 of the remaining lifetime (3-4 s: notAfter has whole seconds) with ±10 %
  // jitter: 1.35-2.2 s after issuance, plus loop latency.
  EXPECT_LT(renewed_at - issued_at, 3s);
  EXPECT_GT(renewed_at - issued_at, 1300ms);
  EXPECT_LT(renewed_at, first_not_after) << "renewed before the old one expired";
  EXPECT_GE(stat("agent.svids_renewed"), 1);
}

TEST_F(AgentTest, WhileTheAuthorityIsDownSvidsAreServedUntilExpiryThenDropped) {
  REQUIRE_ROOT();
  start(60s, 600s);
  authority_->add_entry("spiffe://example.org/py", {"unix:uid:4242"}, 3);
  auto p = child(4242);
  ASSERT_TRUE(p);
  kernel::Attestation att;
  auto view = ensure(*p, &att);
  ASSERT_TRUE(view);
  auto not_after = view->svids[0].not_after;
  loop_.run_sync([&] { api_->set_down(true); });
  ASSERT_TRUE(wait_until([&] { return readiness().reason.find("authority unreachable since") == 0; }))
      << readiness().reason;
  EXPECT_TRUE(readiness().ready) << "unexpired SVIDs are still served";
  // Renewal keeps failing; the SVID is served up to not_after and never after it.
  ASSERT_TRUE(wait_until([&] {
    auto v = store_->for_caller(mtls::CallerInfo{.selectors = att.selectors});
    if (v) EXPECT_LT(Clock::now(), v->svids[0].not_after + 100ms) << "an expired SVID was served";
    return v == nullptr;
  }));
  EXPECT_GE(Clock::now(), not_after - 1s) << "dropped only at expiry";
  ASSERT_TRUE(wait_until([&] { return readiness().reason.find("1 workload(s) expired meanwhile") != std::string::npos; }))
      << "/ready must not read as if every SVID were still valid: " << readiness().reason;
  EXPECT_TRUE(readiness().ready) << "the node SVID is still valid";
  EXPECT_GE(stat("agent.svids_expired"), 1);
  EXPECT_GE(stat("agent.authority_errors"), 1);
  EXPECT_EQ(stat("agent.authority_reachable"), 0);
}

TEST_F(AgentTest, NodeSvidExpiryWhileDownMakesTheSidecarUnready) {
  start(60s, 3s);
  ASSERT_TRUE(wait_until([&] { return readiness().ready; }));
  loop_.run_sync([&] { api_->set_down(true); });
  ASSERT_TRUE(wait_until([&] { return !readiness().ready; }, 8s));
  EXPECT_EQ(readiness().reason, "node SVID expired");
  EXPECT_EQ(store_->current(), nullptr);
  // Back up: the embedded node attests itself again.
  loop_.run_sync([&] { api_->set_down(false); });
  ASSERT_TRUE(wait_until([&] { return readiness().ready; }, 8s)) << readiness().reason;
}

TEST_F(AgentTest, JwtSvidsAreMintedByTheAuthorityForTheWorkloadsView) {
  REQUIRE_ROOT();
  start();
  authority_->add_entry("spiffe://example.org/py", {"unix:uid:4242"});
  auto p = child(4242);
  ASSERT_TRUE(p);
  auto view = ensure(*p);
  ASSERT_TRUE(view && view->jwt_minter);
  std::promise<Result<std::string>> got;
  view->jwt_minter->mint(*mtls::SpiffeId::parse("spiffe://example.org/py"), {"db"},
                         [&](Result<std::string> t) { got.set_value(std::move(t)); });
  auto f = got.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  auto token = f.get();
  ASSERT_TRUE(token.ok()) << token.error().message;
  mtls::JwtSvidClaims claims;
  mtls::JwtVerifyError error;
  ASSERT_TRUE(mtls::validate_jwt_svid(*token, "db", view->bundles, {}, &claims, &error)) << error.message;
  EXPECT_EQ(claims.spiffe_id, "spiffe://example.org/py");
  // A subject the workload's selectors do not entitle is refused by the authority.
  std::promise<Result<std::string>> denied;
  view->jwt_minter->mint(*mtls::SpiffeId::parse("spiffe://example.org/other"), {"db"},
                         [&](Result<std::string> t) { denied.set_value(std::move(t)); });
  auto d = denied.get_future().get();
  EXPECT_FALSE(d.ok());
}

TEST_F(AgentTest, WorkloadApiFetchJwtSvidIsMintedByTheAuthority) {
  REQUIRE_ROOT();
  // The Workload API transport gives no selectors yet (the proxy wires attestation in), so the
  // caller gets the unattested_fallback view: the SVID of the entry under test.
  fallback_ = "spiffe://example.org/py";
  start();
  authority_->add_entry("spiffe://example.org/py", {"unix:uid:4242"});
  auto p = child(4242);
  ASSERT_TRUE(p);
  ASSERT_TRUE(ensure(*p));
  auto service = WorkloadApiService::create(std::shared_ptr<mtls::SvidStore>(store_.get(), [](mtls::SvidStore*) {}),
                                            stats_, nullptr);
  grpc::ServiceRegistry registry;
  ASSERT_TRUE(WorkloadApiService::register_with(service, registry).ok());
  grpc::ServerCallContext ctx;
  ctx.method = "/SpiffeWorkloadAPI/FetchJWTSVID";
  ctx.metadata = {{"workload.spiffe.io", "true"}};
  auto peer = std::make_shared<grpc::PeerInfo>();
  peer->transport = grpc::PeerInfo::Transport::kUnix;
  peer->credentials = grpc::PeerCredentials{p->pid(), 4242, 4242};
  ctx.peer = std::move(peer);
  JWTSVIDRequest req;
  req.add_audience("db");
  auto call = grpc::start_fake_call(registry, "/SpiffeWorkloadAPI/FetchJWTSVID", req.SerializeAsString(), std::move(ctx));
  ASSERT_TRUE(wait_until([&] {
    call->manual_executor()->run();
    return call->done();
  })) << "the reply comes after the authority answered";
  ASSERT_EQ(call->final_status()->code, grpc::StatusCode::kOk) << call->final_status()->message;
  auto resp = call->sent_as<JWTSVIDResponse>(0);
  ASSERT_EQ(resp.svids_size(), 1);
  EXPECT_EQ(resp.svids(0).spiffe_id(), "spiffe://example.org/py");
  mtls::JwtSvidClaims claims;
  mtls::JwtVerifyError error;
  auto view = store_->for_caller({});
  ASSERT_TRUE(view);
  EXPECT_TRUE(mtls::validate_jwt_svid(resp.svids(0).svid(), "db", view->bundles, {}, &claims, &error)) << error.message;
  EXPECT_EQ(*stats_.value("workload_api.jwt_svids_issued"), 1);
}

TEST(EmbeddedAuthority, OpensFromConfigSeedsEntriesAndKeepsItsCaAcrossRestarts) {
  char tmpl[] = "/tmp/portcullis-embedded-XXXXXX";
  ASSERT_TRUE(mkdtemp(tmpl));
  std::string dir = tmpl;
  {
    std::ofstream f(dir + "/entries.yaml");
    f << "entries:\n  - spiffe_id: spiffe://example.org/seeded\n    selectors: [\"unix:uid:4242\"]\n";
  }
  AgentConfig config;
  config.trust_domain = "example.org";
  config.embedded = EmbeddedAuthorityConfig{dir + "/data", dir + "/entries.yaml"};
  StatsStore stats;
  std::string first_bundle;
  {
    auto core = open_embedded_authority(config, stats, nullptr);
    ASSERT_TRUE(core.ok()) << core.error().message;
    auto entries = (*core)->list_entries();
    ASSERT_EQ(entries.entries_size(), 1);
    EXPECT_EQ(entries.entries(0).spiffe_id(), "spiffe://example.org/seeded");
    first_bundle = (*core)->bundle().SerializeAsString();
  }
  auto again = open_embedded_authority(config, stats, nullptr);
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ((*again)->list_entries().entries_size(), 1) << "seeding is idempotent";
  EXPECT_EQ((*again)->bundle().SerializeAsString(), first_bundle) << "the CA is persisted, not regenerated";
  again->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace portcullis::attest::agent
