// File-based SDS: secrets named by tls_certificate_sds_secret_configs / validation SDS configs are
// read from a DiscoveryResponse file when the context is built (and rebuilt on rotation).
#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

#include "mtls/cert_minter.h"
#include "mtls/tls_context.h"

namespace portcullis::mtls {
namespace {

std::string indent(const std::string& pem, const std::string& pad) {
  std::string out;
  size_t pos = 0;
  while (pos < pem.size()) {
    size_t nl = pem.find('\n', pos);
    out += pad + pem.substr(pos, nl - pos) + "\n";
    pos = nl + 1;
  }
  return out;
}

class SdsFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CertSpec ca;
    ca.common_name = "root";
    ca.is_ca = true;
    ca.key_usage = kKuKeyCertSign | kKuCrlSign;
    root_ = std::move(mint_certificate(ca, nullptr).value());
    CertSpec leaf;
    leaf.uri_sans = {"spiffe://example.org/sds-served"};
    leaf_ = std::move(mint_certificate(leaf, &root_).value());
    path_ = "/tmp/portcullis-sds-test-" + std::to_string(::getpid()) + ".yaml";
    std::ofstream out(path_);
    out << "resources:\n"
        << "- \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret\n"
        << "  name: server\n"
        << "  tls_certificate:\n"
        << "    certificate_chain:\n      inline_string: |\n" << indent(leaf_.cert_pem(), "        ")
        << "    private_key:\n      inline_string: |\n" << indent(leaf_.key_pem(), "        ")
        << "- \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret\n"
        << "  name: ROOTCA\n"
        << "  validation_context:\n"
        << "    trusted_ca:\n      inline_string: |\n" << indent(root_.cert_pem(), "        ");
  }
  void TearDown() override { ::unlink(path_.c_str()); }

  MintedCert root_, leaf_;
  std::string path_;
};

TEST_F(SdsFileTest, ContextTakesCertificateAndValidationFromTheFile) {
  TlsContextConfig c;
  c.server = true;
  c.require_client_certificate = true;
  c.certificate_sds = SdsFile{"server", path_};
  c.validation_sds = SdsFile{"ROOTCA", path_};
  auto ctx = TlsContext::create(c);
  ASSERT_TRUE(ctx.ok()) << ctx.error().message;
  ASSERT_EQ((*ctx)->certificates().size(), 1u);
  EXPECT_EQ((*ctx)->certificates()[0].uri_sans, std::vector<std::string>{"spiffe://example.org/sds-served"});
  EXPECT_EQ((*ctx)->bundles().size(), 1u);
  auto files = (*ctx)->watched_files();
  EXPECT_NE(std::find(files.begin(), files.end(), path_), files.end());
}

TEST_F(SdsFileTest, MissingSecretOrFileIsALocatedError) {
  TlsContextConfig c;
  c.server = true;
  c.certificate_sds = SdsFile{"nope", path_};
  auto ctx = TlsContext::create(c);
  ASSERT_FALSE(ctx.ok());
  EXPECT_NE(ctx.error().message.find("no secret named 'nope'"), std::string::npos) << ctx.error().message;
  c.certificate_sds = SdsFile{"server", "/nonexistent/sds.yaml"};
  ctx = TlsContext::create(c);
  ASSERT_FALSE(ctx.ok());
  EXPECT_NE(ctx.error().message.find("/nonexistent/sds.yaml: cannot open config"), std::string::npos) << ctx.error().message;
}

}  // namespace
}  // namespace portcullis::mtls
