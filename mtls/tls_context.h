#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "mtls/peer_identity.h"
#include "mtls/tls_config.h"
#include "mtls/trust_bundle.h"
#include "mtls/x509_svid_verifier.h"

namespace portcullis::mtls {

// CertificateDetails is what /certs shows of a certificate in use (Envoy's admin shape).
struct CertificateDetails {
  std::string path;
  std::string serial_number;
  std::vector<std::string> uri_sans;
  std::vector<std::string> dns_sans;
  int64_t valid_from = 0;       // Unix seconds
  int64_t expiration_time = 0;  // Unix seconds
};

// TlsContext is one immutable SSL_CTX with its certificate, trust bundles and SAN matchers: a
// snapshot. New connections take the current snapshot; a rotation builds a new one and live
// connections keep theirs. Thread-safe: every worker may create connections from it at once.
class TlsContext {
 public:
  // create reads the certificate, key and bundles the config names and builds the SSL_CTX. Fails
  // (with the file and the reason) if anything is unreadable, malformed, or the key does not
  // match the certificate.
  static Result<std::shared_ptr<const TlsContext>> create(const TlsContextConfig& config);

  SSL_CTX* ssl_ctx() const { return ctx_.get(); }
  bool server() const { return config_.server; }
  // config is the effective config (SDS files resolved); source_config is what the bootstrap said,
  // which a rotation rebuilds from.
  const TlsContextConfig& config() const { return config_; }
  const TlsContextConfig& source_config() const { return source_config_; }
  const std::vector<CertificateDetails>& certificates() const { return certificates_; }
  const TrustBundleSet& bundles() const { return bundles_; }
  // source_digest is the SHA-256 of every certificate, key and bundle text the context was built
  // from: equal digests mean a rebuild would change nothing.
  const std::string& source_digest() const { return source_digest_; }
  // watched_files lists the files the context was built from (for rotation).
  std::vector<std::string> watched_files() const;

  // verify_peer applies the X.509-SVID rules and the SAN matchers to a presented chain.
  bool verify_peer(std::span<X509* const> chain, PeerIdentity* out_identity, SvidVerifyError* out_error) const;
  // verify_presented_chain is verify_peer for the chain `ssl`'s peer sent, answered from the
  // per-thread VerifiedChainCache when this context already verified exactly that chain.
  bool verify_presented_chain(const SSL* ssl, PeerIdentity* out_identity, SvidVerifyError* out_error) const;
  // revoked says whether `identity`'s serial is in the context's current revocation set (false
  // without one), filling *out_error when it is.
  bool revoked(const PeerIdentity& identity, SvidVerifyError* out_error) const;
  // id is unique per context for the life of the process (never 0).
  uint64_t id() const { return id_; }

  // Index of the SSL ex_data slot holding the TlsConnection that owns an SSL.
  static int connection_ex_index();

 private:
  TlsContext(TlsContextConfig source, TlsContextConfig effective)
      : source_config_(std::move(source)), config_(std::move(effective)), id_(next_id()) {}
  static uint64_t next_id();
  Status load_certificate();
  Status load_bundles();
  Status configure_ctx();

  TlsContextConfig source_config_;
  TlsContextConfig config_;
  uint64_t id_;
  bssl::UniquePtr<SSL_CTX> ctx_;
  TrustBundleSet bundles_;
  std::vector<CertificateDetails> certificates_;
  std::string sources_;  // concatenated source texts, hashed into source_digest_ then dropped
  std::string source_digest_;
};

// PeerChain is a peer's presented chain parsed from BoringSSL's buffers, leaf first.
struct PeerChain {
  std::vector<bssl::UniquePtr<X509>> owned;
  std::vector<X509*> certs;  // views of `owned`, for verify_x509_svid
};
PeerChain parse_peer_chain(const SSL* ssl);
// peer_sent_certificates says whether the peer presented any certificate at all.
bool peer_sent_certificates(const SSL* ssl);

// certificate_details extracts the /certs view of a certificate.
CertificateDetails certificate_details(X509* cert, std::string path);

// read_data_source returns the bytes a DataSource names (at most 4 MiB).
Result<std::string> read_data_source(const DataSource& source);

}  // namespace portcullis::mtls
