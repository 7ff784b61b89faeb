// The agent against a REMOTE authority over real sockets: the authority's gRPC service on our
// GrpcServer with its own TLS SVID, the agent's RemoteAuthorityApi on a GrpcChannel whose client
// TLS context the proxy's channel factory rebuilds from the node SVID. Node attestation with a
// real join token, mTLS-only calls after it, node renewal (new client certificate), revocation
// pushed back on the WatchUpdates stream.
#include <unistd.h>

#include <future>
#include <thread>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <gtest/gtest.h>

#include "../attest/agent/authority_fixture.h"
#include "../attest/kernel/test_process.h"
#include "attest/agent/remote_authority_api.h"
#include "attest/agent/svid_material.h"
#include "attest/agent/workload_agent.h"
#include "attest/authority/authority_service.h"
#include "attest/kernel/kernel_attestor.h"
#include "proxy/agent_timer.h"
#include "proxy/authority_channel.h"
#include "proxy/grpc/asio_executor.h"
#include "proxy/grpc/grpc_server.h"
#include "tests/unit/grpc/loop_thread.h"

namespace portcullis::proxy {
namespace {

using namespace std::chrono_literals;
using attest::agent::testing::TestAuthority;
using Clock = std::chrono::system_clock;

using Loop = ::portcullis::proxy::testing::LoopThread;

template <typename F>
bool wait_until(F pred, std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

class RemoteAgentTest : public ::testing::Test {
 protected:
  void start(std::chrono::seconds node_ttl = 600s) {
    authority_ = TestAuthority::create(authority_stats_, 60s, node_ttl);
    ASSERT_TRUE(authority_);
    // The authority's server TLS: its own SVID from its CA, client SVIDs optional at the TLS
    // level (AttestNode has none) and checked per call by the service.
    auto cert = authority_->core->ca().issue_server_certificate({}, 600s);
    ASSERT_TRUE(cert.ok()) << cert.error().message;
    std::string bundle_pem;
    const auto authority_bundle = authority_->core->bundle();
    for (const auto& der : authority_bundle.x509_authorities()) bundle_pem += mtls::der_to_pem("CERTIFICATE", der);
    mtls::TlsContextConfig server_tls;
    server_tls.server = true;
    server_tls.certificate_chain = mtls::DataSource{"", cert->certificate_chain_pem};
    server_tls.private_key = mtls::DataSource{"", cert->private_key_pem};
    server_tls.trust_domains.push_back(
        mtls::TrustDomainSource{attest::agent::testing::kTrustDomain, mtls::DataSource{"", bundle_pem}});
    server_tls.alpn_protocols = {"h2"};
    auto tls = mtls::TlsContext::create(server_tls);
    ASSERT_TRUE(tls.ok()) << tls.error().message;
    auto service = std::make_shared<attest::authority::AuthorityService>(authority_->core, std::vector<uid_t>{},
                                                                          authority_stats_, nullptr);
    auto registry = std::make_shared<grpc::ServiceRegistry>();
    ASSERT_TRUE(attest::authority::AuthorityService::register_authority(service, *registry).ok());
    auto server = GrpcServer::create({"authority", config::Address{config::SocketAddress{"127.0.0.1", 0}}, {}, tls.value()},
                                     registry, authority_stats_);
    ASSERT_TRUE(server.ok()) << server.error().message;
    server_ = std::move(server.value());
    ASSERT_TRUE(server_->bind().ok());
    server_->start({&server_loop_.io});
    std::string bound = server_->bound_address();
    endpoint_.address = config::Address{
        config::SocketAddress{"127.0.0.1", static_cast<uint32_t>(std::stoul(bound.substr(bound.rfind(':') + 1)))}};
    endpoint_.server_spiffe_id = attest::agent::default_authority_spiffe_id(attest::agent::testing::kTrustDomain);
    auto bootstrap = attest::agent::bundle_from_proto(authority_->core->bundle());
    ASSERT_TRUE(bootstrap.ok());
    bootstrap_ = bootstrap.value();
    auto token = authority_->core->generate_join_token(600);
    ASSERT_TRUE(token.ok());
    token_ = token->token();
    token_id_ = token->token_id();
    auto watcher = attest::kernel::ExitWatcher::create();
    ASSERT_TRUE(watcher.ok());
    exits_ = std::move(watcher.value());
    auto attestor = attest::kernel::KernelAttestor::create({}, stats_);
    ASSERT_TRUE(attestor.ok());
    attestor_ = std::move(attestor.value());
    store_ = std::make_unique<attest::agent::AttestedSvidStore>(attest::agent::testing::kTrustDomain,
                                                                mtls::JwtValidateOptions{}, stats_);
    revocations_ = std::make_unique<mtls::RevocationPublisher>(stats_);
    client_.run([&] {
      api_ = std::make_unique<attest::agent::RemoteAuthorityApi>(
          make_authority_channel_factory(client_.io, endpoint_, attest::agent::testing::kTrustDomain, bootstrap_),
          executor_, 5000ms);
      attest::agent::AgentConfig config;
      config.trust_domain = attest::agent::testing::kTrustDomain;
      config.authority = endpoint_;
      config.join_token = token_;
      config.limits.backoff_initial = 50ms;
      config.limits.backoff_max = 500ms;
      agent_ = std::make_unique<attest::agent::WorkloadAgent>(
          config, attest::agent::WorkloadAgent::Deps{*api_, timer_, executor_, *exits_, *store_, revocations_.get(),
                                                     stats_, nullptr});
      agent_->start();
      return 0;
    });
  }
  void TearDown() override {
    client_.run([&] {
      agent_.reset();
      api_.reset();
      return 0;
    });
    if (server_) {
      server_->stop();
      server_loop_.run([] { return 0; });
      server_.reset();
    }
  }

  std::shared_ptr<const mtls::IdentitySnapshot> ensure(int pidfd, attest::kernel::Attestation* out = nullptr) {
    auto att = attestor_->attest_pidfd(pidfd);
    EXPECT_TRUE(att.ok());
    if (!att.ok()) return nullptr;
    if (out) *out = att.value();
    std::promise<std::shared_ptr<const mtls::IdentitySnapshot>> got;
    asio::post(client_.io, [&] { agent_->ensure_workload(att.value(), [&](auto v) { got.set_value(v); }); });
    auto f = got.get_future();
    EXPECT_EQ(f.wait_for(10s), std::future_status::ready);
    return f.get();
  }
  int64_t stat(const std::string& name) { return stats_.value(name).value_or(-1); }

  StatsStore stats_, authority_stats_;
  Loop server_loop_, client_;
  AsioExecutor executor_{client_.io};
  AgentTimer timer_{client_.io};
  std::unique_ptr<TestAuthority> authority_;
  std::unique_ptr<GrpcServer> server_;
  attest::agent::AuthorityEndpoint endpoint_;
  std::shared_ptr<const mtls::TrustBundle> bootstrap_;
  std::string token_, token_id_;
  std::unique_ptr<attest::kernel::ExitWatcher> exits_;
  std::unique_ptr<attest::kernel::KernelAttestor> attestor_;
  std::unique_ptr<attest::agent::AttestedSvidStore> store_;
  std::unique_ptr<mtls::RevocationPublisher> revocations_;
  std::unique_ptr<attest::agent::RemoteAuthorityApi> api_;
  std::unique_ptr<attest::agent::WorkloadAgent> agent_;
};

TEST_F(RemoteAgentTest, JoinTokenAttestationThenWorkloadSvidsAndRevocationOverMtls) {
  start();
  ASSERT_TRUE(wait_until([&] { return agent_->readiness().ready; })) << agent_->readiness().reason;
  auto node = store_->current();
  ASSERT_TRUE(node);
  EXPECT_EQ(node->svids[0].spiffe_id, "spiffe://example.org/node/join_token/" + token_id_);
  if (geteuid() != 0) GTEST_SKIP() << "needs root for the workload half (child under another uid via setpriv)";
  authority_->add_entry("spiffe://example.org/py", {"unix:uid:4242"});
  auto child = attest::kernel::testing::TestProcess::spawn(attest::kernel::testing::as_uid(
      4242, attest::kernel::testing::python("import time; print('ready', flush=True); time.sleep(600)")));
  ASSERT_TRUE(child);
  ASSERT_EQ(child->read_line(), "ready");
  attest::kernel::Attestation att;
  auto view = ensure(child->pidfd(), &att);
  ASSERT_TRUE(view) << "SignWorkloadSvids over mTLS with the node SVID";
  EXPECT_EQ(view->svids[0].spiffe_id, "spiffe://example.org/py");
  child->kill_and_reap();
  ASSERT_TRUE(wait_until([&] { return revocations_->current()->size() == 1; }))
      << "RevokeSvids, then the revocation back on WatchUpdates";
  EXPECT_EQ(revocations_->current()->entries()[0].spiffe_id, "spiffe://example.org/py");
}

TEST_F(RemoteAgentTest, NodeRenewalRebuildsTheClientCertificate) {
  start(4s);
  ASSERT_TRUE(wait_until([&] { return agent_->readiness().ready; })) << agent_->readiness().reason;
  auto first = store_->current()->svids[0].not_after;
  ASSERT_TRUE(wait_until([&] {
    auto cur = store_->current();
    return cur && cur->svids[0].not_after != first;
  }));
  EXPECT_GE(stat("agent.node_renewals"), 1);
  // A second renewal only works if the channel presents the renewed certificate: the first one
  // is about to expire and the authority checks every call's node SVID.
  auto second = store_->current()->svids[0].not_after;
  ASSERT_TRUE(wait_until([&] {
    auto cur = store_->current();
    return cur && cur->svids[0].not_after != second;
  }, 6s));
  EXPECT_TRUE(agent_->readiness().ready) << agent_->readiness().reason;
}

TEST_F(RemoteAgentTest, AJoinTokenWorksOnce) {
  start();
  ASSERT_TRUE(wait_until([&] { return agent_->readiness().ready; }));
  // A second sidecar presenting the same token is refused and says why it is not ready.
  attest::agent::AttestedSvidStore store2(attest::agent::testing::kTrustDomain, {}, stats_);
  std::unique_ptr<attest::agent::RemoteAuthorityApi> api2;
  std::unique_ptr<attest::agent::WorkloadAgent> agent2;
  StatsStore stats2;
  client_.run([&] {
    api2 = std::make_unique<attest::agent::RemoteAuthorityApi>(
        make_authority_channel_factory(client_.io, endpoint_, attest::agent::testing::kTrustDomain, bootstrap_),
        executor_, 5000ms);
    attest::agent::AgentConfig config;
    config.trust_domain = attest::agent::testing::kTrustDomain;
    config.authority = endpoint_;
    config.join_token = token_;
    agent2 = std::make_unique<attest::agent::WorkloadAgent>(
        config, attest::agent::WorkloadAgent::Deps{*api2, timer_, executor_, *exits_, store2, nullptr, stats2, nullptr});
    agent2->start();
    return 0;
  });
  ASSERT_TRUE(wait_until([&] { return stats2.value("agent.authority_errors").value_or(0) >= 1; }));
  EXPECT_FALSE(agent2->readiness().ready);
  EXPECT_EQ(agent2->readiness().reason.rfind("waiting for node attestation", 0), 0u) << agent2->readiness().reason;
  client_.run([&] {
    agent2.reset();
    api2.reset();
    return 0;
  });
}

}  // namespace
}  // namespace portcullis::proxy
