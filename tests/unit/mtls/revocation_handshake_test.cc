// Real TLS 1.3 handshakes against a context that checks a RevocationPublisher: a revoked serial is
// refused on either side, also when the chain's verdict is already in the VerifiedChainCache.
#include <ctime>

#include <gtest/gtest.h>

#include "mtls/revocation_set.h"
#include "tests/unit/mtls/tls_pair.h"

namespace portcullis::mtls {
namespace {

using testing::build;
using testing::context_config;
using testing::make_ca;
using testing::make_leaf;
using testing::TlsPair;

std::string serial_of(const MintedCert& cert) {
  return certificate_details(cert.cert.get(), "").serial_number;
}

int64_t now() { return static_cast<int64_t>(std::time(nullptr)); }

class RevocationHandshakeTest : public ::testing::Test {
 protected:
  std::shared_ptr<const TlsContext> server_ctx() {
    auto c = context_config(true, server_leaf_, ca_, "example.org");
    c.revocations = publisher_;
    return build(c);
  }
  std::shared_ptr<const TlsContext> client_ctx(bool check = false) {
    auto c = context_config(false, client_leaf_, ca_, "example.org");
    if (check) c.revocations = publisher_;
    return build(c);
  }

  StatsStore stats_;
  std::shared_ptr<RevocationPublisher> publisher_ = std::make_shared<RevocationPublisher>(stats_);
  MintedCert ca_ = make_ca("example.org");
  MintedCert server_leaf_ = make_leaf("spiffe://example.org/server", ca_);
  MintedCert client_leaf_ = make_leaf("spiffe://example.org/client", ca_);
};

TEST_F(RevocationHandshakeTest, RevokedClientIsRefusedEvenWhenItsChainVerdictIsCached) {
  auto server = server_ctx();
  auto client = client_ctx();
  {
    TlsPair p(client, server);
    ASSERT_EQ(p.handshake(), "ok");  // the verdict for this chain is now cached on this thread
    ASSERT_TRUE(p.server->peer());
    EXPECT_EQ(p.server->peer()->serial, serial_of(client_leaf_));
  }
  // Upper case with a leading zero: the authority's spelling need not match ours.
  std::string serial = serial_of(client_leaf_);
  for (char& c : serial) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  ASSERT_TRUE(publisher_->add({{"0" + serial, now() + 3600, "spiffe://example.org/client"}}, now()).ok());
  {
    TlsPair p(client, server);
    EXPECT_NE(p.handshake(), "ok");
    ASSERT_TRUE(p.server->verify_error());
    EXPECT_EQ(p.server->verify_error()->reason, SvidRejection::kRevoked);
    EXPECT_NE(p.server->verify_error()->message.find(serial_of(client_leaf_)), std::string::npos);
    EXPECT_FALSE(p.server->peer());
  }
  // Lifting it (a full set without the serial) lets the same context accept the peer again.
  ASSERT_TRUE(publisher_->replace({}, now()).ok());
  TlsPair p(client, server);
  EXPECT_EQ(p.handshake(), "ok");
}

TEST_F(RevocationHandshakeTest, ClientRefusesARevokedServer) {
  ASSERT_TRUE(publisher_->add({{serial_of(server_leaf_), now() + 3600, ""}}, now()).ok());
  TlsPair p(client_ctx(true), server_ctx());
  EXPECT_NE(p.handshake(), "ok");
  ASSERT_TRUE(p.client->verify_error());
  EXPECT_EQ(p.client->verify_error()->reason, SvidRejection::kRevoked);
  EXPECT_STREQ(svid_rejection_name(SvidRejection::kRevoked), "revoked");
}

TEST_F(RevocationHandshakeTest, OtherSerialsAndExpiredRevocationsDoNotRefuse) {
  MintedCert other = make_leaf("spiffe://example.org/client", ca_);  // same ID, new serial
  ASSERT_TRUE(publisher_->add({{serial_of(other), now() + 3600, ""}, {serial_of(client_leaf_), now() - 1, ""}}, now()).ok());
  TlsPair p(client_ctx(), server_ctx());
  EXPECT_EQ(p.handshake(), "ok");
}

TEST_F(RevocationHandshakeTest, ContextWithoutAPublisherChecksNothing) {
  ASSERT_TRUE(publisher_->add({{serial_of(client_leaf_), now() + 3600, ""}}, now()).ok());
  TlsPair p(client_ctx(), build(context_config(true, server_leaf_, ca_, "example.org")));
  EXPECT_EQ(p.handshake(), "ok");
}

}  // namespace
}  // namespace portcullis::mtls
