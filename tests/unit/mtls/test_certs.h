#pragma once

// Certificate helpers shared by the mtls unit tests.
#include <gtest/gtest.h>

#include "mtls/cert_minter.h"

namespace portcullis::mtls::testing {

// must unwraps a minted certificate, failing the test (not crashing) on error.
inline MintedCert must(Result<MintedCert> r) {
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? std::move(r.value()) : MintedCert{};
}

// ca_spec describes a trust domain's root CA (CA:TRUE, keyCertSign + cRLSign, valid for a day).
inline CertSpec ca_spec(const std::string& common_name, const std::string& trust_domain) {
  CertSpec s;
  s.common_name = common_name;
  s.uri_sans = {"spiffe://" + trust_domain};
  s.is_ca = true;
  s.key_usage = kKuKeyCertSign | kKuCrlSign;
  s.server_auth = s.client_auth = false;
  s.not_after = std::chrono::system_clock::now() + std::chrono::hours(24);
  return s;
}

}  // namespace portcullis::mtls::testing
