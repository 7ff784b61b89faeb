// The Authority service on the wire: our GrpcServer with the authority's own TLS context
// (mint_authority_tls) and our GrpcChannel as the node, over a real TCP socket. AttestNode works
// without a client certificate; the node SVID it returns then authenticates SignWorkloadSvids and
// WatchUpdates over mTLS; the same calls without it are UNAUTHENTICATED; a revocation reaches the
// open watch stream.
#include <gtest/gtest.h>

#include <future>
#include <thread>

#include <asio/executor_work_guard.hpp>

#include "../attest/authority/authority_test_util.h"
#include "attest/authority/authority_service.h"
#include "proxy/authority_tls.h"
#include "proxy/grpc/grpc_channel.h"
#include "proxy/grpc/grpc_server.h"
#include "tests/unit/grpc/loop_thread.h"

namespace portcullis::proxy {
namespace {

namespace authority = attest::authority;
namespace v1 = ::portcullis::authority::v1;
using authority::testing::make_csr;
using namespace std::chrono_literals;

using Loop = ::portcullis::proxy::testing::LoopThread;

std::string pem_chain(const v1::X509Svid& svid) {
  std::string out;
  for (const auto& der : svid.cert_chain()) out += mtls::der_to_pem("CERTIFICATE", der);
  return out;
}

std::string bundle_pem(const v1::Bundle& bundle) {
  std::string out;
  for (const auto& der : bundle.x509_authorities()) out += mtls::der_to_pem("CERTIFICATE", der);
  return out;
}

class AuthorityWireTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tls = mint_authority_tls(*a_.core, 1h);
    ASSERT_TRUE(tls.ok()) << tls.error().message;
    EXPECT_EQ(tls->spiffe_id, "spiffe://example.org/portcullis/authority");
    auto service = std::make_shared<authority::AuthorityService>(a_.core, std::vector<uid_t>{}, a_.stats, nullptr);
    auto registry = std::make_shared<grpc::ServiceRegistry>();
    ASSERT_TRUE(authority::AuthorityService::register_authority(service, *registry).ok());
    auto server = GrpcServer::create({"authority", config::Address{config::SocketAddress{"127.0.0.1", 0}}, {}, tls->context},
                                     registry, a_.stats);
    ASSERT_TRUE(server.ok());
    server_ = std::move(server.value());
    ASSERT_TRUE(server_->bind().ok());
    server_->start({&server_loop_.io});
    std::string bound = server_->bound_address();
    port_ = static_cast<uint32_t>(std::stoul(bound.substr(bound.rfind(':') + 1)));
  }
  void TearDown() override {
    if (server_) server_->stop();
  }

  // channel: the node's view of the authority; with `svid`+`key` it presents its node SVID.
  std::shared_ptr<GrpcChannel> channel(const v1::X509Svid* svid = nullptr, EVP_PKEY* key = nullptr) {
    mtls::TlsContextConfig c;
    c.server = false;
    c.alpn_protocols = {"h2"};
    c.trust_domains.push_back({authority::testing::kTrustDomain, mtls::DataSource{"", bundle_pem(a_.core->bundle())}});
    c.san_matchers.push_back({mtls::SanMatcher::Type::kUri,
                              config::StringMatcher(config::StringMatcher::Kind::kExact,
                                                    "spiffe://example.org/portcullis/authority", false, nullptr)});
    if (svid) {
      c.certificate_chain = mtls::DataSource{"", pem_chain(*svid)};
      bssl::UniquePtr<EVP_PKEY> copy(key);
      EVP_PKEY_up_ref(key);
      mtls::MintedCert holder{nullptr, std::move(copy)};
      c.private_key = mtls::DataSource{"", holder.key_pem()};
    }
    auto ctx = mtls::TlsContext::create(c);
    EXPECT_TRUE(ctx.ok()) << ctx.error().message;
    GrpcChannelOptions o;
    o.address = config::Address{config::SocketAddress{"127.0.0.1", port_}};
    o.tls = ctx.value();
    o.authority = "authority.example.org";
    return GrpcChannel::create(client_loop_.io, std::move(o));
  }

  template <typename Req, typename Resp>
  grpc::GrpcResult<Resp> unary(const std::shared_ptr<GrpcChannel>& ch, const std::string& method, const Req& req) {
    std::promise<grpc::GrpcResult<Resp>> done;
    client_loop_.run([&] {
      grpc::call_unary<Req, Resp>(*ch, "/portcullis.authority.v1.Authority/" + method, req, {},
                                  [&done](grpc::GrpcResult<Resp> r) { done.set_value(std::move(r)); });
      return 0;
    });
    return done.get_future().get();
  }

  authority::testing::TempDir dir_;
  authority::testing::TestAuthority a_{dir_.path()};
  Loop server_loop_, client_loop_;
  std::unique_ptr<GrpcServer> server_;
  uint32_t port_ = 0;
};

TEST_F(AuthorityWireTest, AttestWithoutACertificateThenCallAsTheNode) {
  auto token = a_.core->generate_join_token(0);
  ASSERT_TRUE(token.ok());
  authority::testing::Csr node_key = make_csr();
  v1::AttestNodeRequest attest;
  attest.set_join_token(token->token());
  attest.set_csr(node_key.der);
  auto anonymous = channel();
  auto attested = unary<v1::AttestNodeRequest, v1::AttestNodeResponse>(anonymous, "AttestNode", attest);
  ASSERT_TRUE(attested.ok()) << attested.status().message;
  const v1::X509Svid node = attested.value().svid();

  a_.add_entry("spiffe://example.org/web", {"unix:uid:1000"});
  v1::SignWorkloadSvidsRequest sign;
  auto* w = sign.add_workloads();
  *w->add_selectors() = authority::selector_proto("unix:uid:1000");
  w->add_csrs(make_csr().der);
  auto refused = unary<v1::SignWorkloadSvidsRequest, v1::SignWorkloadSvidsResponse>(anonymous, "SignWorkloadSvids", sign);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code, grpc::StatusCode::kUnauthenticated);

  auto as_node = channel(&node, node_key.key.get());
  auto signed_svids = unary<v1::SignWorkloadSvidsRequest, v1::SignWorkloadSvidsResponse>(as_node, "SignWorkloadSvids", sign);
  ASSERT_TRUE(signed_svids.ok()) << signed_svids.status().message;
  ASSERT_EQ(signed_svids.value().workloads(0).svids_size(), 1);
  EXPECT_EQ(signed_svids.value().workloads(0).svids(0).spiffe_id(), "spiffe://example.org/web");

  // The watch stream: the full set first, then the revocation of the workload's serial.
  std::mutex mu;
  std::condition_variable cv;
  std::vector<v1::AuthorityUpdate> updates;
  client_loop_.run([&] {
    return grpc::call_server_streaming<v1::WatchUpdatesRequest, v1::AuthorityUpdate>(
        *as_node, "/portcullis.authority.v1.Authority/WatchUpdates", {}, {},
        [&](v1::AuthorityUpdate&& u) {
          std::lock_guard lock(mu);
          updates.push_back(std::move(u));
          cv.notify_all();
        },
        [](const grpc::GrpcStatus&) {});
  });
  auto wait_for = [&](size_t n) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, 10s, [&] { return updates.size() >= n; });
  };
  ASSERT_TRUE(wait_for(1));
  EXPECT_TRUE(updates[0].full_revocation_set());
  v1::RevokeSvidsRequest revoke;
  revoke.add_serials(signed_svids.value().workloads(0).svids(0).serial());
  auto revoked = unary<v1::RevokeSvidsRequest, v1::RevokeSvidsResponse>(as_node, "RevokeSvids", revoke);
  ASSERT_TRUE(revoked.ok()) << revoked.status().message;
  EXPECT_EQ(revoked.value().revoked(), 1u);
  ASSERT_TRUE(wait_for(2));
  ASSERT_EQ(updates[1].revocations_size(), 1);
  EXPECT_EQ(updates[1].revocations(0).serial(), revoke.serials(0));
  client_loop_.run([&] {
    as_node->close();
    anonymous->close();
    return 0;
  });
}

}  // namespace
}  // namespace portcullis::proxy
