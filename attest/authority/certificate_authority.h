#pragma once

#include <openssl/evp.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "attest/authority/csr.h"
#include "common/result.h"
#include "common/stats.h"
#include "common/stats_macros.h"
#include "mtls/tls_config.h"
#include "mtls/trust_bundle.h"

namespace portcullis::attest::authority {

// `authority.ca.` stats.
#define PORTCULLIS_AUTHORITY_CA_STATS(COUNTER, GAUGE) \
  COUNTER(csr_rejected_bad_signature)                 \
  COUNTER(csr_rejected_malformed)                     \
  COUNTER(csr_rejected_too_large)                     \
  COUNTER(csr_rejected_unsupported_key)               \
  COUNTER(csr_rejected_weak_key)                      \
  COUNTER(invalid_requests)                           \
  COUNTER(jwt_svids_signed)                           \
  COUNTER(rotations_activated)                        \
  COUNTER(rotations_prepared)                         \
  COUNTER(server_certificates_issued)                 \
  COUNTER(sign_failures)                              \
  COUNTER(x509_svids_signed)                          \
  GAUGE(bundle_sequence)                              \
  GAUGE(signing_ca_not_after)

struct CaStats {
  PORTCULLIS_AUTHORITY_CA_STATS(PORTCULLIS_DECLARE_COUNTER, PORTCULLIS_DECLARE_GAUGE)
  static CaStats create(StatsStore& store) {
    StatScope scope{"authority", "", ""};
    const std::string prefix = "ca.";
    return CaStats{PORTCULLIS_AUTHORITY_CA_STATS(PORTCULLIS_MAKE_PREFIXED_COUNTER, PORTCULLIS_MAKE_PREFIXED_GAUGE)};
  }
  void count_csr_rejection(CsrRejection reason) const;
};

// The SPIFFE ID of the authority's own server certificate is spiffe://<td> + this path.
inline constexpr std::string_view kAuthorityServerPath = "/portcullis/authority";

struct CaOptions {
  std::string trust_domain;
  std::string data_dir;  // created 0700; holds the CA keys (0600) and ca-state.json
  // upstream: {certificate_chain, private_key}. The chain is the signing CA first and its root
  // last (one self-signed certificate is both); SVIDs are signed with the upstream key and carry
  // the chain minus its root; the bundle trusts the root.
  std::optional<std::pair<mtls::DataSource, mtls::DataSource>> upstream;
  // ca_ttl: lifetime of a generated root (and of a JWT key in upstream mode).
  std::chrono::seconds ca_ttl{std::chrono::hours(24 * 365)};
  // jwt_key_id: the kid of the first JWT key; empty derives it from the key (base64url SHA-256 of
  // its public key). Keys created by rotation always get derived kids, so two never share one.
  std::string jwt_key_id;
  // backdate: SVIDs are valid from now - backdate, so a peer whose clock is a little behind
  // accepts a fresh SVID.
  std::chrono::seconds backdate{60};
  CsrLimits csr_limits;
  StatsStore* stats = nullptr;  // where `authority.ca.*` live; null: a store owned by the CA
  // now is the clock (tests simulate expiry with it). Called from any thread.
  std::function<std::chrono::system_clock::time_point()> now = [] { return std::chrono::system_clock::now(); };
};

struct X509SvidRequest {
  std::string csr_der;
  std::string spiffe_id;  // must be in the CA's trust domain and have a path
  std::vector<std::string> dns_names;
  std::chrono::seconds ttl{std::chrono::hours(1)};  // capped at the signing CA's expiry
  std::vector<std::string> claims;                   // attested claims ("TYPE:KEY:VALUE"); may be empty
};

struct SignedX509Svid {
  std::string spiffe_id;
  std::vector<std::string> chain_der;  // leaf first, then the upstream intermediates (never the root)
  std::string serial_hex;              // lowercase, as mtls::PeerIdentity::serial
  std::chrono::system_clock::time_point not_after;
};

// ServerCertificate is the authority's own TLS identity, with its private key (in memory only).
struct ServerCertificate {
  std::string spiffe_id;
  std::vector<std::string> chain_der;
  std::string certificate_chain_pem;
  std::string private_key_pem;  // PKCS#8
  std::chrono::system_clock::time_point not_after;
};

struct JwtAuthorityInfo {
  std::string key_id;
  std::string public_key_der;  // SubjectPublicKeyInfo
};

// BundleSnapshot is one published state of the trust domain's bundle. Immutable.
struct BundleSnapshot {
  std::string trust_domain;
  uint64_t sequence_number = 0;  // persisted; bumped on every change of the authorities
  std::vector<std::string> x509_authorities_der;
  std::vector<JwtAuthorityInfo> jwt_authorities;
  std::string spiffe_bundle_json;  // with spiffe_sequence = sequence_number
  std::shared_ptr<const mtls::TrustBundle> trust_bundle;  // the same, for verifiers and PEM output
};

// CertificateAuthority is the trust domain's ECDSA P-256 CA: it signs X.509-SVIDs from CSRs and
// JWT-SVIDs (ES256), and publishes the trust bundle. Thread-safe: signing runs lock-free on an
// immutable snapshot from any number of threads; rotation and pruning serialize on a mutex and
// publish a new snapshot. Keys and state persist in data_dir, so a restart keeps the same root.
//
// Rotation keeps an overlap: prepare_rotation() creates the next CA and JWT key and adds them to
// the bundle (sequence + 1) while the current ones keep signing; activate_prepared() switches
// signing once the new bundle has reached every peer; a retired CA stays in the bundle until it
// expires (prune_expired()). In upstream mode the X.509 signer is the upstream CA and only the JWT
// key rotates.
class CertificateAuthority {
 public:
  // open loads the CA from data_dir, or creates it (root key and JWT key 0600, state file) on
  // first start. Fails with a clear message on unreadable, tampered or loosely permitted files, a
  // bad upstream chain, or a key that does not match its certificate.
  static Result<std::unique_ptr<CertificateAuthority>> open(CaOptions options);

  // sign_x509_svid verifies the CSR (csr.h), then issues an X.509-SVID per the SPIFFE standard:
  // the one URI SAN `spiffe_id`, `dns_names`, CA:FALSE, keyUsage digitalSignature (+
  // keyEncipherment for RSA keys), EKU serverAuth+clientAuth, 128-bit random serial, valid from
  // now - backdate to min(now + ttl, signing CA expiry), and the attested-claims extension when
  // `claims` is non-empty. Refusals are kInvalidArgument and counted.
  Result<SignedX509Svid> sign_x509_svid(const X509SvidRequest& request) const;

  // sign_jwt_svid mints an ES256 JWT-SVID (kid = the active JWT key's) for `spiffe_id` in this
  // trust domain; exp is capped at the active generation's expiry.
  Result<std::string> sign_jwt_svid(std::string_view spiffe_id, const std::vector<std::string>& audience,
                                    std::chrono::seconds ttl) const;

  // issue_server_certificate issues a TLS server SVID for spiffe://<td>/portcullis/authority
  // (+ `dns_names`) with a fresh P-256 key that never touches disk.
  Result<ServerCertificate> issue_server_certificate(const std::vector<std::string>& dns_names,
                                                     std::chrono::seconds ttl) const;

  std::shared_ptr<const BundleSnapshot> bundle() const;

  // prepare_rotation creates and persists the next CA generation and publishes a bundle holding
  // it. Fails with kFailedPrecondition when one is already prepared.
  Status prepare_rotation();
  // activate_prepared makes the prepared generation the signer. kFailedPrecondition without one.
  Status activate_prepared();
  // prune_expired drops retired generations whose CA has expired from the bundle (and deletes
  // their files). Returns whether the bundle changed. Call periodically.
  Result<bool> prune_expired();

  // signing_ca_der is the certificate that signs SVIDs now (tests, diagnostics).
  std::string signing_ca_der() const;
  bool has_prepared_rotation() const;
  const CaStats& stats() const { return stats_; }

  ~CertificateAuthority();

  struct Signer;
  struct Generation;
  struct State;
  struct Snapshot;

 private:
  CertificateAuthority(CaOptions options, std::unique_ptr<StatsStore> own_stats);
  Status load_locked();
  Status commit_locked(State next);
  Status ensure_usable_active(State& state);
  Result<std::shared_ptr<const Generation>> create_generation(uint64_t id, std::string jwt_key_id) const;
  Result<std::shared_ptr<const Generation>> load_generation(uint64_t id, const std::string& jwt_key_id, int64_t not_after) const;
  Result<std::pair<std::string, std::string>> mint_leaf(const Signer& signer, const std::string& spiffe_id,
                                                        const std::vector<std::string>& dns_names, std::chrono::seconds ttl,
                                                        const std::string& claims_der, EVP_PKEY* subject_key,
                                                        std::chrono::system_clock::time_point* out_not_after) const;
  std::string path(std::string_view name) const;
  std::chrono::system_clock::time_point now() const { return options_.now(); }

  CaOptions options_;
  std::unique_ptr<StatsStore> own_stats_;
  CaStats stats_;
  mutable std::mutex mutex_;                 // serializes rotation, pruning and persistence
  std::unique_ptr<State> persisted_;         // guarded by mutex_
  std::shared_ptr<const Signer> upstream_;  // set in upstream mode; immutable after open
  std::atomic<std::shared_ptr<const Snapshot>> snapshot_;
};

}  // namespace portcullis::attest::authority
