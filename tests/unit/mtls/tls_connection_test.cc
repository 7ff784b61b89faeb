// Real TLS 1.3 handshakes between two TlsContexts over a socketpair.
#include "mtls/tls_connection.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vector>

#include <gtest/gtest.h>

#include "mtls/attested_claims.h"
#include "mtls/cert_minter.h"
#include "tests/unit/mtls/test_certs.h"
#include "tests/unit/mtls/tls_pair.h"

namespace portcullis::mtls {
namespace {

using namespace std::chrono_literals;

using testing::ca_spec;
using testing::must;

using testing::build;
using testing::context_config;
using testing::make_ca;
using testing::make_leaf;
using Pair = testing::TlsPair;

class TlsConnectionTest : public ::testing::Test {
 protected:
  MintedCert ca_ = make_ca("example.org");
  MintedCert server_leaf_ = make_leaf("spiffe://example.org/server", ca_);
  MintedCert client_leaf_ = make_leaf("spiffe://example.org/client", ca_);
};

TEST_F(TlsConnectionTest, MutualHandshakeYieldsBothIdentitiesAndCarriesData) {
  Pair p(build(context_config(false, client_leaf_, ca_, "example.org")),
         build(context_config(true, server_leaf_, ca_, "example.org")));
  ASSERT_EQ(p.handshake(), "ok");
  ASSERT_TRUE(p.server->peer());
  EXPECT_EQ(p.server->peer()->spiffe_id, "spiffe://example.org/client");
  ASSERT_TRUE(p.client->peer());
  EXPECT_EQ(p.client->peer()->spiffe_id, "spiffe://example.org/server");
  EXPECT_EQ(p.client->version(), "TLSv1.3");
  EXPECT_EQ(p.client->cipher(), "TLS_AES_128_GCM_SHA256");

  std::string msg = "hello through TLS";
  size_t n = 0;
  ASSERT_EQ(p.client->write(reinterpret_cast<const uint8_t*>(msg.data()), msg.size(), &n), TlsConnection::Io::kDone);
  uint8_t buf[64];
  ASSERT_EQ(p.server->read(buf, sizeof buf, &n), TlsConnection::Io::kDone);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(buf), n), msg);

  // Half-close: the client's close_notify is EOF for the server, which can still answer.
  p.client->close_notify();
  EXPECT_EQ(p.server->read(buf, sizeof buf, &n), TlsConnection::Io::kEof);
  ASSERT_EQ(p.server->write(reinterpret_cast<const uint8_t*>("late"), 4, &n), TlsConnection::Io::kDone);
  ASSERT_EQ(p.client->read(buf, sizeof buf, &n), TlsConnection::Io::kDone);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(buf), n), "late");
}

TEST_F(TlsConnectionTest, ServerRejectsClientSignedByAnImpostorCaOfTheSameName) {
  MintedCert stranger = make_ca("example.org");  // same subject name as the real root, other key
  MintedCert forged = make_leaf("spiffe://example.org/client", stranger);
  Pair p(build(context_config(false, forged, ca_, "example.org")),
         build(context_config(true, server_leaf_, ca_, "example.org")));
  std::string result = p.handshake();
  EXPECT_NE(result, "ok");
  ASSERT_TRUE(p.server->verify_error());
  EXPECT_EQ(p.server->verify_error()->reason, SvidRejection::kBadSignature);
  EXPECT_FALSE(p.server->peer());
}

TEST_F(TlsConnectionTest, PeerIdentityCarriesAttestedClaimsAndMalformedClaimsFailTheHandshake) {
  auto claims = encode_attested_claims({"entry:id:e1", "unix:sha256:ab12"});
  ASSERT_TRUE(claims.ok());
  CertSpec s;
  s.uri_sans = {"spiffe://example.org/client"};
  s.extra_extensions = {{kAttestedClaimsOid, false, *claims}};
  MintedCert attested = must(mint_certificate(s, &ca_));
  auto server_ctx = build(context_config(true, server_leaf_, ca_, "example.org"));
  auto client_ctx = build(context_config(false, attested, ca_, "example.org"));
  // Twice: the second handshake's identity comes from the verified-chain cache and must keep them.
  for (int i = 0; i < 2; ++i) {
    Pair p(client_ctx, server_ctx);
    ASSERT_EQ(p.handshake(), "ok");
    ASSERT_TRUE(p.server->peer());
    EXPECT_EQ(p.server->peer()->attested_claims, (std::vector<std::string>{"entry:id:e1", "unix:sha256:ab12"}));
    EXPECT_TRUE(p.client->peer()->attested_claims.empty());
  }
  s.extra_extensions = {{kAttestedClaimsOid, false, *claims + "x"}};
  MintedCert broken = must(mint_certificate(s, &ca_));
  Pair p(build(context_config(false, broken, ca_, "example.org")), server_ctx);
  EXPECT_NE(p.handshake(), "ok");
  ASSERT_TRUE(p.server->verify_error());
  EXPECT_EQ(p.server->verify_error()->reason, SvidRejection::kInvalidAttestedClaims);
  EXPECT_FALSE(p.server->peer());
}

TEST_F(TlsConnectionTest, ServerRequiresAClientCertificate) {
  TlsContextConfig client = context_config(false, client_leaf_, ca_, "example.org");
  client.certificate_chain.reset();
  client.private_key.reset();
  Pair p(build(client), build(context_config(true, server_leaf_, ca_, "example.org")));
  EXPECT_NE(p.handshake(), "ok");
  EXPECT_FALSE(p.server->peer());
}

TEST_F(TlsConnectionTest, ClientEnforcesServerSanMatcher) {
  TlsContextConfig client = context_config(false, client_leaf_, ca_, "example.org");
  config::ErrorList errors;
  config::Node n(YAML::Load("{exact: spiffe://example.org/someone-else}"), "m", std::make_shared<const std::string>("t"));
  client.san_matchers.push_back(SanMatcher{SanMatcher::Type::kUri, *config::parse_string_matcher(n, errors)});
  Pair p(build(client), build(context_config(true, server_leaf_, ca_, "example.org")));
  EXPECT_NE(p.handshake(), "ok");
  ASSERT_TRUE(p.client->verify_error());
  EXPECT_EQ(p.client->verify_error()->reason, SvidRejection::kSanMismatch);
}

TEST_F(TlsConnectionTest, MismatchedKeyIsRejectedAtContextCreation) {
  TlsContextConfig c = context_config(true, server_leaf_, ca_, "example.org");
  c.private_key = DataSource{"", client_leaf_.key_pem()};
  auto ctx = TlsContext::create(c);
  ASSERT_FALSE(ctx.ok());
  EXPECT_NE(ctx.error().message.find("does not match"), std::string::npos) << ctx.error().message;
}

TEST_F(TlsConnectionTest, ContextReportsItsCertificateForCertsEndpoint) {
  auto ctx = build(context_config(true, server_leaf_, ca_, "example.org"));
  ASSERT_EQ(ctx->certificates().size(), 1u);
  const auto& d = ctx->certificates()[0];
  EXPECT_EQ(d.uri_sans, std::vector<std::string>{"spiffe://example.org/server"});
  EXPECT_EQ(d.serial_number.size(), 32u);
  EXPECT_GT(d.expiration_time, d.valid_from);
}

// A resumed session skips BoringSSL's server-side verify callback; the server must still know (and
// re-check) who the client is, or identity-based RBAC sees an unauthenticated peer.
TEST_F(TlsConnectionTest, ResumedSessionStillYieldsTheClientIdentityOnTheServer) {
  auto client_ctx = build(context_config(false, client_leaf_, ca_, "example.org"));
  auto server_ctx = build(context_config(true, server_leaf_, ca_, "example.org"));
  ClientSessionCache cache;
  {
    Pair first(client_ctx, server_ctx);
    first.client->use_session_cache(&cache);
    ASSERT_EQ(first.handshake(), "ok");
    EXPECT_FALSE(first.server->session_reused());
    // TLS 1.3 tickets follow the handshake; the client takes them in while reading.
    size_t n = 0;
    uint8_t buf[16];
    ASSERT_EQ(first.server->write(reinterpret_cast<const uint8_t*>("t"), 1, &n), TlsConnection::Io::kDone);
    ASSERT_EQ(first.client->read(buf, sizeof buf, &n), TlsConnection::Io::kDone);
    ASSERT_NE(cache.get(client_ctx), nullptr);
  }
  Pair second(client_ctx, server_ctx);
  second.client->use_session_cache(&cache);
  ASSERT_EQ(second.handshake(), "ok");
  ASSERT_TRUE(second.server->session_reused());
  ASSERT_TRUE(second.server->peer());
  EXPECT_EQ(second.server->peer()->spiffe_id, "spiffe://example.org/client");
  EXPECT_FALSE(second.server->verify_error());
}

}  // namespace
// A small socket buffer makes batched writes stop part-way: the held ciphertext must leave, in
// order, before anything else, and every byte must arrive intact.
TEST_F(TlsConnectionTest, BatchedWritesThatDoNotFitAreHeldAndDeliveredInOrder) {
  Pair p(build(context_config(false, client_leaf_, ca_, "example.org")),
         build(context_config(true, server_leaf_, ca_, "example.org")));
  ASSERT_EQ(p.handshake(), "ok");
  int small = 16 * 1024;
  setsockopt(p.fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);

  std::string sent(3 * 1024 * 1024 + 7, '\0');
  for (size_t i = 0; i < sent.size(); ++i) sent[i] = static_cast<char>((i * 131) ^ (i >> 9));
  std::string received;
  size_t offset = 0;
  bool saw_held_output = false;
  std::vector<uint8_t> buf(100000);
  for (int round = 0; round < 100000 && received.size() < sent.size(); ++round) {
    size_t n = 0;
    if (p.client->has_pending_output()) {
      saw_held_output = true;
      auto io = p.client->flush_output();
      ASSERT_NE(io, TlsConnection::Io::kError) << p.client->error();
    } else if (offset < sent.size()) {
      auto io = p.client->write(reinterpret_cast<const uint8_t*>(sent.data()) + offset, sent.size() - offset, &n);
      ASSERT_NE(io, TlsConnection::Io::kError) << p.client->error();
      if (io == TlsConnection::Io::kDone) offset += n;
    }
    for (;;) {
      auto io = p.server->read(buf.data(), buf.size(), &n);
      if (io != TlsConnection::Io::kDone) {
        ASSERT_EQ(io, TlsConnection::Io::kWantRead) << p.server->error();
        break;
      }
      received.append(reinterpret_cast<const char*>(buf.data()), n);
    }
  }
  EXPECT_TRUE(saw_held_output);
  ASSERT_EQ(received.size(), sent.size());
  EXPECT_TRUE(received == sent);
}

}  // namespace portcullis::mtls
