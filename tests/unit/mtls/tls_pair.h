#pragma once

// Two TlsConnections over a socketpair, driven by hand: a real TLS 1.3 handshake in one thread.
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "mtls/tls_connection.h"
#include "tests/unit/mtls/test_certs.h"

namespace portcullis::mtls::testing {

inline MintedCert make_ca(const std::string& td) { return must(mint_certificate(ca_spec(td + " root", td), nullptr)); }

inline MintedCert make_leaf(const std::string& id, const MintedCert& ca) {
  CertSpec s;
  s.uri_sans = {id};
  return must(mint_certificate(s, &ca));
}

// context_config is an mTLS context presenting `leaf` and trusting `ca` for trust domain `td`.
inline TlsContextConfig context_config(bool server, const MintedCert& leaf, const MintedCert& ca, const std::string& td) {
  TlsContextConfig c;
  c.server = server;
  c.require_client_certificate = server;
  c.certificate_chain = DataSource{"", leaf.cert_pem()};
  c.private_key = DataSource{"", leaf.key_pem()};
  c.trust_domains.push_back(TrustDomainSource{td, DataSource{"", ca.cert_pem()}});
  return c;
}

inline std::shared_ptr<const TlsContext> build(const TlsContextConfig& c) {
  auto ctx = TlsContext::create(c);
  EXPECT_TRUE(ctx.ok()) << (ctx.ok() ? "" : ctx.error().message);
  return ctx.ok() ? ctx.value() : nullptr;
}

struct TlsPair {
  int fds[2] = {-1, -1};
  std::unique_ptr<TlsConnection> client, server;
  TlsPair(std::shared_ptr<const TlsContext> client_ctx, std::shared_ptr<const TlsContext> server_ctx) {
    ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds);
    client = std::move(TlsConnection::create(client_ctx, fds[0]).value());
    server = std::move(TlsConnection::create(server_ctx, fds[1]).value());
  }
  ~TlsPair() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
  // handshake drives both sides until both are done or one fails; returns "ok" or the failure.
  std::string handshake() {
    bool c_done = false, s_done = false;
    for (int i = 0; i < 100 && !(c_done && s_done); ++i) {
      if (!c_done) {
        auto io = client->handshake();
        if (io == TlsConnection::Io::kError) return "client: " + client->error();
        c_done = io == TlsConnection::Io::kDone;
      }
      if (!s_done) {
        auto io = server->handshake();
        if (io == TlsConnection::Io::kError) return "server: " + server->error();
        s_done = io == TlsConnection::Io::kDone;
      }
    }
    return c_done && s_done ? "ok" : "stuck";
  }
};

}  // namespace portcullis::mtls::testing
