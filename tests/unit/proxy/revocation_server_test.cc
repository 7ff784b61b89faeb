// Revocation through real Servers: two in-process sidecars on loopback with minted certificates.
// Publishing a revoked serial into a Server's RevocationPublisher refuses new handshakes with it
// and closes live connections whose downstream or upstream peer presented it, well within 1 s.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "config/yaml_file.h"
#include "mtls/cert_minter.h"
#include "proxy/server.h"
#include "tests/unit/mtls/test_certs.h"
#include "tests/unit/proxy/proxy_test_net.h"

namespace portcullis::proxy {
namespace {

using namespace std::chrono_literals;
using mtls::testing::ca_spec;
using mtls::testing::must;
using testing::Client;
using testing::EchoServer;

constexpr auto kRevocationDeadline = 1s;

mtls::MintedCert leaf(const std::string& id, const mtls::MintedCert& ca) {
  mtls::CertSpec s;
  s.uri_sans = {id};
  return must(mtls::mint_certificate(s, &ca));
}

std::string serial_of(const mtls::MintedCert& cert) { return mtls::certificate_details(cert.cert.get(), "").serial_number; }

int64_t unix_now() { return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count(); }

class Pki {
 public:
  Pki() {
    char tmpl[] = "/tmp/portcullis-revocation-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    write("ca.pem", ca.cert_pem());
    for (const auto& [name, cert] : std::initializer_list<std::pair<const char*, const mtls::MintedCert*>>{
             {"backend", &backend}, {"frontend", &frontend}, {"sidecar", &sidecar}}) {
      write(std::string(name) + ".pem", cert->cert_pem());
      write(std::string(name) + ".key", cert->key_pem());
    }
  }
  ~Pki() { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  // tls_context is a transport_socket block (YAML flow) presenting `who`'s SVID and trusting
  // example.org's CA through the SPIFFE validator.
  std::string tls_context(bool downstream, const std::string& who) const {
    std::ostringstream o;
    o << "{name: envoy.transport_sockets.tls, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
      << (downstream ? "DownstreamTlsContext, require_client_certificate: true" : "UpstreamTlsContext")
      << ", common_tls_context: {tls_certificates: [{certificate_chain: {filename: " << path(who + ".pem")
      << "}, private_key: {filename: " << path(who + ".key") << "}}], validation_context: {custom_validator_config: "
      << "{name: envoy.tls.cert_validator.spiffe, typed_config: {\"@type\": "
         "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.SPIFFECertValidatorConfig, "
      << "trust_domains: [{name: example.org, trust_bundle: {filename: " << path("ca.pem") << "}}]}}}}}}";
    return o.str();
  }

  mtls::MintedCert ca = must(mtls::mint_certificate(ca_spec("example.org root", "example.org"), nullptr));
  mtls::MintedCert backend = leaf("spiffe://example.org/backend", ca);    // sidecar A's inbound SVID
  mtls::MintedCert frontend = leaf("spiffe://example.org/frontend", ca);  // a client's SVID
  mtls::MintedCert sidecar = leaf("spiffe://example.org/sidecar", ca);    // sidecar B's outbound SVID

 private:
  void write(const std::string& name, const std::string& text) const { std::ofstream(path(name)) << text; }
  std::string dir_;
};

// Sidecar is one Server on two workers with one tcp_proxy listener named `main`.
class Sidecar {
 public:
  Sidecar(const std::string& listener_tls, uint16_t upstream_port, const std::string& cluster_tls, std::string audit_path)
      : audit_path_(std::move(audit_path)) {
    std::ostringstream y;
    y << "audit: {sinks: [{file: {path: " << audit_path_ << "}}]}\n"
      << "static_resources:\n  listeners:\n  - name: main\n    stat_prefix: main\n"
      << "    address: {socket_address: {address: 127.0.0.1, port_value: 0}}\n    filter_chains:\n    - filters:\n"
      << "      - {name: envoy.filters.network.tcp_proxy, typed_config: {\"@type\": "
         "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: main, cluster: up}}\n";
    if (!listener_tls.empty()) y << "      transport_socket: " << listener_tls << "\n";
    y << "  clusters:\n  - name: up\n    connect_timeout: 1s\n"
      << "    load_assignment: {cluster_name: up, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: "
      << "{address: 127.0.0.1, port_value: " << upstream_port << "}}}}]}]}\n";
    if (!cluster_tls.empty()) y << "    transport_socket: " << cluster_tls << "\n";
    config::ErrorList errors;
    auto root = config::load_yaml_text(y.str(), "sidecar.yaml", errors);
    std::shared_ptr<const ServerConfig> config;
    if (root) config = build_server_config(*root, {}, stats_, errors);
    EXPECT_TRUE(config) << errors.format() << "\n" << y.str();
    if (!config) return;
    ServerOptions options;
    options.concurrency = 2;
    server_ = std::make_unique<Server>(options, stats_, config);
    Status s = server_->start();
    EXPECT_TRUE(s.ok()) << s.error().message;
    if (s.ok()) port_ = server_->listener_endpoint("main")->port();
  }

  uint16_t port() const { return port_; }
  Server& server() { return *server_; }
  int64_t stat(const std::string& name) const { return stats_.value(name).value_or(-1); }
  // wait_stat waits (bounded) for a counter the workers bump after they act, then returns it.
  int64_t wait_stat(const std::string& name, int64_t want) const {
    for (auto deadline = testing::Clock::now() + 2s; stat(name) < want && testing::Clock::now() < deadline;) {
      std::this_thread::sleep_for(2ms);
    }
    return stat(name);
  }
  // audit_text waits until the audit file holds `needle` (the log writes asynchronously).
  std::string audit_text(const std::string& needle) const {
    std::string text;
    for (auto deadline = testing::Clock::now() + 5s; testing::Clock::now() < deadline;) {
      std::ifstream in(audit_path_);
      text.assign(std::istreambuf_iterator<char>(in), {});
      if (text.find(needle) != std::string::npos) break;
      std::this_thread::sleep_for(10ms);
    }
    return text;
  }

 private:
  StatsStore stats_;
  std::string audit_path_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
};

std::shared_ptr<const mtls::TlsContext> client_context(const Pki& pki, const mtls::MintedCert& svid) {
  mtls::TlsContextConfig c;
  c.certificate_chain = mtls::DataSource{"", svid.cert_pem()};
  c.private_key = mtls::DataSource{"", svid.key_pem()};
  c.trust_domains.push_back(mtls::TrustDomainSource{"example.org", mtls::DataSource{"", pki.ca.cert_pem()}});
  auto ctx = mtls::TlsContext::create(c);
  EXPECT_TRUE(ctx.ok()) << ctx.error().message;
  return ctx.value();
}

// Waits for the peer to close `client` and returns how long it took (or the timeout).
std::chrono::milliseconds time_to_close(Client& client, testing::Clock::time_point since) {
  while (!client.closed()) {
    auto r = client.read_some(2s);
    if (!r) break;
  }
  return std::chrono::duration_cast<std::chrono::milliseconds>(testing::Clock::now() - since);
}

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
