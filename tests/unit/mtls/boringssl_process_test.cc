// The process must run on BoringSSL alone: OpenSSL 3 in the same process binds BoringSSL's
// unversioned symbols into its own calls and corrupts memory (see shared/spec/platform-notes.md).
#include <openssl/base.h>
#include <openssl/ssl.h>

#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "mtls/boringssl_info.h"

namespace {

TEST(BoringSsl, HeadersAreBoringSsl) {
#ifdef OPENSSL_IS_BORINGSSL
  SUCCEED();
#else
  FAIL() << "compiled against non-BoringSSL headers";
#endif
  EXPECT_TRUE(portcullis::mtls::is_boringssl());
  EXPECT_NE(portcullis::mtls::boringssl_version().find("BoringSSL"), std::string::npos);
}

TEST(BoringSsl, OpenSsl3IsNotMappedButBoringSslIs) {
  // Touch libssl so it is certainly loaded before we look.
  bssl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_method()));
  ASSERT_NE(ctx, nullptr);
  std::ifstream maps("/proc/self/maps");
  ASSERT_TRUE(maps.good());
  std::string line;
  bool boring_ssl = false, boring_crypto = false;
  while (std::getline(maps, line)) {
    EXPECT_EQ(line.find("libssl.so.3"), std::string::npos) << line;
    EXPECT_EQ(line.find("libcrypto.so.3"), std::string::npos) << line;
    if (line.find("android/libssl.so.0") != std::string::npos) boring_ssl = true;
    if (line.find("android/libcrypto.so.0") != std::string::npos) boring_crypto = true;
  }
  EXPECT_TRUE(boring_ssl);
  EXPECT_TRUE(boring_crypto);
}

}  // namespace
