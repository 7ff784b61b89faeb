// A real authority for tests: a CertificateAuthority and an AuthorityStore (SQLite) in a fresh
// temp dir, an AuthorityCore over them, and helpers for CSRs and SVID checks.
#pragma once

#include <openssl/mem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "attest/authority/authority_core.h"
#include "mtls/cert_minter.h"
#include "mtls/trust_bundle.h"
#include "mtls/x509_svid_verifier.h"

namespace portcullis::attest::authority::testing {

inline constexpr const char* kTrustDomain = "example.org";

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("pc-authority-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Csr is a fresh P-256 key and a PKCS#10 request for it, as a node or agent makes them.
struct Csr {
  bssl::UniquePtr<EVP_PKEY> key;
  std::string der;
};

inline Csr make_csr() {
  Csr out;
  out.key = std::move(mtls::generate_p256_key().value());
  bssl::UniquePtr<X509_REQ> req(X509_REQ_new());
  EXPECT_TRUE(X509_REQ_set_version(req.get(), 0));
  EXPECT_TRUE(X509_REQ_set_pubkey(req.get(), out.key.get()));
  EXPECT_TRUE(X509_REQ_sign(req.get(), out.key.get(), EVP_sha256()));
  uint8_t* der = nullptr;
  int len = i2d_X509_REQ(req.get(), &der);
  EXPECT_GT(len, 0);
  out.der.assign(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

inline bssl::UniquePtr<X509> parse_der(const std::string& der) {
  const auto* p = reinterpret_cast<const uint8_t*>(der.data());
  return bssl::UniquePtr<X509>(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
}

// verify_svid checks an issued chain against the authority's bundle as a peer would, and
// returns what the peer learns (SPIFFE ID, serial, claims); fails the test otherwise.
inline mtls::PeerIdentity verify_svid(const v1::X509Svid& svid, const v1::Bundle& bundle) {
  std::vector<bssl::UniquePtr<X509>> owned;
  std::vector<X509*> chain;
  for (const auto& der : svid.cert_chain()) {
    owned.push_back(parse_der(der));
    chain.push_back(owned.back().get());
  }
  std::vector<bssl::UniquePtr<X509>> roots;
  for (const auto& der : bundle.x509_authorities()) roots.push_back(parse_der(der));
  mtls::TrustBundleSet bundles;
  bundles.add(std::make_shared<const mtls::TrustBundle>(bundle.trust_domain(), std::move(roots), bundle.sequence_number()));
  mtls::PeerIdentity identity;
  mtls::SvidVerifyError error;
  EXPECT_TRUE(mtls::verify_x509_svid(chain, bundles, {}, &identity, &error)) << error.message;
  return identity;
}

inline grpc::TlsPeer tls_peer(const v1::X509Svid& svid) {
  return grpc::TlsPeer{svid.spiffe_id(), kTrustDomain, svid.serial(), svid.expires_at(), {}};
}

// TestAuthority owns a real core over a real CA and SQLite store in `dir`.
struct TestAuthority {
  explicit TestAuthority(const std::filesystem::path& dir, AuthorityCoreOptions options = {}) {
    if (options.trust_domain.empty()) options.trust_domain = kTrustDomain;
    AuthorityStoreOptions store_options;
    store_options.trust_domain = options.trust_domain;
    auto store = AuthorityStore::open((dir / "authority.db").string(), stats, store_options);
    EXPECT_TRUE(store.ok()) << store.error().message;
    CaOptions ca_options;
    ca_options.trust_domain = options.trust_domain;
    ca_options.data_dir = dir.string();
    auto ca = CertificateAuthority::open(ca_options);
    EXPECT_TRUE(ca.ok()) << ca.error().message;
    core = std::make_shared<AuthorityCore>(std::move(options), std::move(ca.value()), std::move(store.value()), stats,
                                           nullptr);
  }

  // attest runs the join-token flow end to end; returns the node SVID.
  v1::X509Svid attest() {
    auto token = core->generate_join_token(0);
    EXPECT_TRUE(token.ok()) << token.error().message;
    v1::AttestNodeRequest req;
    req.set_join_token(token->token());
    req.set_csr(make_csr().der);
    auto resp = core->attest_node(req);
    EXPECT_TRUE(resp.ok()) << resp.error().message;
    return resp.ok() ? resp->svid() : v1::X509Svid{};
  }

  v1::RegistrationEntry add_entry(const std::string& spiffe_id, std::vector<std::string> selectors,
                                  const std::string& parent_id = "") {
    v1::RegistrationEntry e;
    e.set_spiffe_id(spiffe_id);
    e.set_parent_id(parent_id);
    for (const auto& s : selectors) *e.add_selectors() = selector_proto(s);
    auto created = core->create_entry(e);
    EXPECT_TRUE(created.ok()) << created.error().message;
    return created.ok() ? *created : v1::RegistrationEntry{};
  }

  int64_t stat(const std::string& name) const { return stats.value(name).value_or(-1); }

  StatsStore stats;
  std::shared_ptr<AuthorityCore> core;
};

}  // namespace portcullis::attest::authority::testing
