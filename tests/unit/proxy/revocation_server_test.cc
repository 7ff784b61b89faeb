// Revocation through real Servers: two in-process sidecars on loopback with minted certificates.
// Publishing a revoked serial into a Server's RevocationPublisher refuses new handshakes with it
// and closes live connections whose downstream or upstream peer presented it, well within 1 s.
#include <csignal>

#include <gtest/gtest.h>

#include "tests/unit/proxy/sidecar_harness.h"

namespace portcullis::proxy {
namespace {

using namespace std::chrono_literals;
using testing::Client;
using testing::client_context;
using testing::EchoServer;
using testing::leaf;
using testing::Pki;
using testing::serial_of;
using testing::sidecar_yaml;
using testing::time_to_close;
using testing::unix_now;

constexpr auto kRevocationDeadline = 1s;

// Sidecar is the harness's sidecar with the one-listener, one-cluster config.
class Sidecar : public testing::Sidecar {
 public:
  Sidecar(const std::string& listener_tls, uint16_t upstream_port, const std::string& cluster_tls, const std::string& audit)
      : testing::Sidecar(sidecar_yaml(listener_tls, upstream_port, cluster_tls, audit), audit) {}
};

class RevocationServerTest : public ::testing::Test {
 protected:
  Pki pki_;
  EchoServer echo_;
};

TEST_F(RevocationServerTest, RevokedClientIsClosedAndRefused) {
  Sidecar a(pki_.tls_context(true, "backend"), echo_.port(), "", pki_.path("audit-a.log"));
  auto frontend = client_context(pki_, pki_.frontend);
  auto other = client_context(pki_, leaf("spiffe://example.org/frontend", pki_.ca));  // same ID, other serial
  Client revoked(a.port(), frontend), kept(a.port(), other);
  ASSERT_EQ(revoked.handshake(), "ok");
  ASSERT_EQ(kept.handshake(), "ok");
  ASSERT_EQ(revoked.echo("before"), "before");
  ASSERT_EQ(kept.echo("before"), "before");

  auto published = testing::Clock::now();
  ASSERT_TRUE(a.server().revocations()->add({{serial_of(pki_.frontend), unix_now() + 3600, "spiffe://example.org/frontend"}},
                                            unix_now()).ok());
  EXPECT_LT(time_to_close(revoked, published), kRevocationDeadline);
  EXPECT_TRUE(revoked.closed());
  EXPECT_EQ(kept.echo("after"), "after");  // another serial of the same SPIFFE ID is untouched
  EXPECT_EQ(a.wait_stat("revocation.connections_closed", 1), 1);

  std::string audit = a.audit_text("\"revoked\"");
  EXPECT_NE(audit.find("\"decision\":\"revoked\""), std::string::npos) << audit;
  EXPECT_NE(audit.find(serial_of(pki_.frontend)), std::string::npos) << audit;
  EXPECT_NE(audit.find("spiffe://example.org/frontend"), std::string::npos) << audit;

  // A new handshake with the revoked SVID fails: the verdict cached by the first is not reused.
  Client again(a.port(), frontend);
  std::string result = again.handshake();
  if (result == "ok") EXPECT_FALSE(again.echo("x") == "x");  // TLS 1.3: the server's refusal may come after the client's Finished
  EXPECT_EQ(a.wait_stat("listener.main.ssl.fail_verify_spiffe.revoked", 1), 1);
  EXPECT_NE(a.audit_text("handshake_failed").find("revoked: spiffe://example.org/frontend"), std::string::npos);
}

TEST_F(RevocationServerTest, ConnectionWhoseUpstreamServerIsRevokedIsClosed) {
  // Client --plain--> sidecar B --mTLS (B presents `sidecar`)--> sidecar A (presents `backend`) --> echo.
  Sidecar a(pki_.tls_context(true, "backend"), echo_.port(), "", pki_.path("audit-a.log"));
  Sidecar b("", a.port(), pki_.tls_context(false, "sidecar"), pki_.path("audit-b.log"));
  Client client(b.port());
  ASSERT_EQ(client.handshake(), "ok");
  ASSERT_EQ(client.echo("through two sidecars"), "through two sidecars");

  // B revokes A's server serial: B's upstream peer.
  auto published = testing::Clock::now();
  ASSERT_TRUE(b.server().revocations()->add({{serial_of(pki_.backend), unix_now() + 3600, ""}}, unix_now()).ok());
  EXPECT_LT(time_to_close(client, published), kRevocationDeadline);
  EXPECT_EQ(b.wait_stat("revocation.connections_closed", 1), 1);
  std::string audit = b.audit_text("upstream peer");
  EXPECT_NE(audit.find("upstream peer certificate serial " + serial_of(pki_.backend) + " was revoked"), std::string::npos) << audit;
  EXPECT_NE(audit.find("spiffe://example.org/backend"), std::string::npos) << audit;

  // New connections through B fail at the upstream handshake.
  Client refused(b.port());
  ASSERT_EQ(refused.handshake(), "ok");
  refused.send_all("x");
  while (!refused.closed() && refused.read_some(2s)) {
  }
  EXPECT_TRUE(refused.closed());
  EXPECT_EQ(b.wait_stat("cluster.up.ssl.fail_verify_spiffe.revoked", 1), 1);

  // A revoking B's client serial closes A's side of a fresh connection (its downstream peer).
  ASSERT_TRUE(b.server().revocations()->replace({}, unix_now()).ok());
  Client second(b.port());
  ASSERT_EQ(second.handshake(), "ok");
  ASSERT_EQ(second.echo("again"), "again");
  published = testing::Clock::now();
  ASSERT_TRUE(a.server().revocations()->add({{serial_of(pki_.sidecar), unix_now() + 3600, ""}}, unix_now()).ok());
  EXPECT_LT(time_to_close(second, published), kRevocationDeadline);
  EXPECT_EQ(a.wait_stat("revocation.connections_closed", 1), 1);
}

}  // namespace
}  // namespace portcullis::proxy

namespace portcullis::proxy {
namespace {

// The main loop drops revocations once their certificates would have expired, with no further
// update arriving. Runs the real main loop and stops it the way a pod is stopped (SIGTERM).
TEST_F(RevocationServerTest, ExpiredRevocationsArePrunedByTheMainLoop) {
  Sidecar a(pki_.tls_context(true, "backend"), echo_.port(), "", pki_.path("audit-a.log"));
  std::thread main_loop([&] { a.server().run(); });
  const int64_t now = unix_now();
  ASSERT_TRUE(a.server().revocations()->add({{"abcd", now + 2, ""}, {"ef01", now + 3600, ""}}, now).ok());
  EXPECT_EQ(a.stat("revocation.serials"), 2);
  for (auto deadline = testing::Clock::now() + 6s; a.stat("revocation.serials") != 1 && testing::Clock::now() < deadline;) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(a.stat("revocation.serials"), 1);
  EXPECT_FALSE(a.server().revocations()->current()->revoked("abcd"));
  EXPECT_TRUE(a.server().revocations()->current()->revoked("ef01"));
  EXPECT_EQ(a.stat("revocation.pruned"), 1);
  ::raise(SIGTERM);  // drains (no connections) and stops the loop
  main_loop.join();
}

}  // namespace
}  // namespace portcullis::proxy
