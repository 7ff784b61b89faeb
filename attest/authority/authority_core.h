#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "attest/authority/authority_config.h"
#include "attest/authority/authority_messages.h"
#include "attest/authority/authority_store.h"
#include "attest/authority/certificate_authority.h"
#include "attest/authority/entry_matcher.h"
#include "attest/authority/update_feed.h"
#include "common/audit.h"
#include "common/grpc/call_context.h"
#include "common/result.h"
#include "common/stats.h"
#include "common/stats_macros.h"

namespace portcullis::attest::authority {

// `authority.` stats. *_denied: a request refused for who asked (bad join token, not the node's
// serial, no matching entry for a JWT); *_invalid: refused for its content; *_failed: our error.
#define PORTCULLIS_AUTHORITY_STATS(COUNTER, GAUGE) \
  COUNTER(join_tokens_created)                     \
  COUNTER(jwt_svids_minted)                        \
  COUNTER(jwt_svid_denied)                         \
  COUNTER(node_attest_denied)                      \
  COUNTER(node_evicted_denied)                     \
  COUNTER(node_attest_invalid)                     \
  COUNTER(node_attested)                           \
  COUNTER(node_identity_rejected)                  \
  COUNTER(node_renewed)                            \
  COUNTER(nodes_evicted)                           \
  COUNTER(requests_invalid)                        \
  COUNTER(revocations)                             \
  COUNTER(revoke_denied)                           \
  COUNTER(sign_failed)                             \
  COUNTER(updates_published)                       \
  GAUGE(watchers)                                  \
  COUNTER(workload_svids_issued)                   \
  COUNTER(workloads_unmatched)

struct AuthorityStats {
  PORTCULLIS_AUTHORITY_STATS(PORTCULLIS_DECLARE_COUNTER, PORTCULLIS_DECLARE_GAUGE)
  static AuthorityStats create(StatsStore& store);
};

// AuthorityCoreOptions is the policy the core applies; built from an AuthorityConfig (standalone
// authority) or the sidecar's embedded_authority block.
struct AuthorityCoreOptions {
  std::string trust_domain;
  std::chrono::seconds default_x509_svid_ttl{3600};
  std::chrono::seconds default_jwt_svid_ttl{300};
  std::chrono::seconds node_svid_ttl{3600};
  std::chrono::seconds default_join_token_ttl{600};  // GenerateJoinToken with ttl_seconds 0
  bool join_token_attestor = true;
  AuthorityLimits limits;
  // clock: revocation timestamps and JWT expiry; tests simulate it.
  std::function<std::chrono::system_clock::time_point()> clock = [] { return std::chrono::system_clock::now(); };

  static AuthorityCoreOptions from_config(const AuthorityConfig& config);
};

// Node SPIFFE IDs are spiffe://<td>/node/<attestation type>/<id>; the embedded authority's node is
// spiffe://<td>/node/embedded/<hostname> (attested by being in-process).
inline constexpr std::string_view kJoinTokenAttestation = "join_token";
inline constexpr std::string_view kEmbeddedAttestation = "embedded";

// AuthorityCore is the attestation authority's logic, with no sockets: node attestation, workload
// X.509- and JWT-SVIDs, revocation, the bundle/revocation feed and the admin operations. The gRPC
// services (authority_service.h) and the sidecar's embedded authority both drive it; they decide
// who the caller is (the node ID comes from a verified node SVID, or is the embedded node) and
// the core decides what that caller may have.
//
// Every issued X.509-SVID is recorded with its node and entry (so a node can revoke only its own
// serials and a revocation knows the certificate's expiry); node attestation, issuance and
// revocation each write an audit record. Requests are validated against options.limits first
// (kInvalidArgument, counted in requests_invalid).
//
// Threading: every method is thread-safe. Methods block for a store write and ECDSA signatures
// (well under a millisecond each), so callers on an event loop keep requests bounded (limits).
// Lifetime: owns the CA and the store; `audit` (may be null) must outlive it.
class AuthorityCore {
 public:
  AuthorityCore(AuthorityCoreOptions options, std::unique_ptr<CertificateAuthority> ca,
                std::unique_ptr<AuthorityStore> store, StatsStore& stats, AuditLog* audit);

  // --- Node API (the Authority service) ---

  // attest_node verifies the evidence (a join token: one-time), then signs a node SVID for
  // spiffe://<td>/node/join_token/<token_id> from the CSR. kPermissionDenied for an unknown, used
  // or expired token (which of these is not said); kInvalidArgument for a bad CSR (checked
  // before the token is spent).
  Result<v1::AttestNodeResponse> attest_node(const v1::AttestNodeRequest& request);
  // renew_node signs a new SVID for the same node ID (the caller's verified node identity).
  Result<v1::RenewNodeResponse> renew_node(std::string_view node_id, const v1::RenewNodeRequest& request);
  // sign_workload_svids: per workload, the entries matching its selectors with parent node_id
  // (or any node), one SVID per matching entry (sorted by entry id) for as many CSRs as it sent.
  Result<v1::SignWorkloadSvidsResponse> sign_workload_svids(std::string_view node_id,
                                                             const v1::SignWorkloadSvidsRequest& request);
  // mint_jwt_svid: a JWT-SVID for an ID the selectors entitle on this node (kPermissionDenied
  // when none does).
  Result<v1::MintJwtSvidResponse> mint_jwt_svid(std::string_view node_id, const v1::MintJwtSvidRequest& request);
  // revoke revokes those of `request.serials` that were issued to node_id (others are ignored and
  // counted in revoke_denied), stores them until the certificates expire, and publishes them.
  Result<v1::RevokeSvidsResponse> revoke(std::string_view node_id, const v1::RevokeSvidsRequest& request);
  // watch: `callback` gets the full bundle and every live revocation now, then each change. See
  // UpdateFeed for the callback's rules. kResourceExhausted over limits.max_watchers.
  Result<Subscription> watch(UpdateFeed::Callback callback);
  // node_allowed: a verified mTLS peer is a node of ours: its SPIFFE ID is in our trust domain
  // under /node/, the node is not evicted, its serial is one we issued for exactly that ID as a
  // node SVID, and it is not revoked. Counted in node_identity_rejected when not.
  bool node_allowed(const grpc::TlsPeer& peer) const;
  std::string embedded_node_id(std::string_view hostname) const;

  // --- Admin API (the AuthorityAdmin service) ---
  Result<v1::RegistrationEntry> create_entry(const v1::RegistrationEntry& entry);
  Result<v1::RegistrationEntry> update_entry(const v1::RegistrationEntry& entry);
  Status delete_entry(std::string_view id);
  Result<v1::RegistrationEntry> get_entry(std::string_view id) const;
  v1::ListEntriesResponse list_entries() const;
  Result<v1::GenerateJoinTokenResponse> generate_join_token(int64_t ttl_seconds);
  v1::Bundle bundle() const;
  // evict_node cuts a node off (SPIRE's `agent evict`): the node ID (of our trust domain, under
  // /node/) is recorded as evicted, so every node call under it is refused from now on
  // (kPermissionDenied, counted in node_evicted_denied) and a stolen node SVID cannot be renewed;
  // then every unexpired serial issued to it (its node SVIDs and its workloads' SVIDs) is revoked
  // and pushed to watchers. Returns how many serials were newly revoked. Idempotent: evicting
  // again revokes only what was not revoked yet.
  Result<uint32_t> evict_node(std::string_view node_id, std::string_view reason);
  // seed_entries_file upserts the entries of a YAML seed file (idempotent; all or nothing).
  Result<SeedResult> seed_entries_file(const std::string& path);

  // --- The authority process ---
  // rotate_ca_if_due advances the CA's rotation (a generated CA only; an upstream CA is rotated
  // upstream): at half the signing CA's life the next CA is prepared and enters the bundle (and
  // is pushed to watchers), at three quarters it starts signing; expired CAs leave the bundle.
  // So every peer has held the new CA for a quarter of the CA's life before it signs anything.
  Status rotate_ca_if_due(bool upstream);
  // publish_bundle pushes the CA's bundle to watchers when its sequence number changed since
  // the last push (after a CA rotation). Returns whether it pushed.
  bool publish_bundle();
  // prune deletes expired join tokens, issued-SVID records and revocations.
  Status prune();

  CertificateAuthority& ca() { return *ca_; }
  AuthorityStore& store() { return *store_; }
  const AuthorityCoreOptions& options() const { return options_; }
  AuthorityStats& stats() { return stats_; }

 private:
  struct Issued;
  // issue signs with a CSR check_request verified and records the serial.
  Result<SignedX509Svid> issue(const X509SvidRequest& request, const VerifiedCsr& csr, std::string_view entry_id,
                               std::string_view node_id);
  Result<v1::WorkloadSvids> sign_for_workload(std::string_view node_id, std::string_view attestation,
                                              const EntryMatcher& entries, const v1::WorkloadCsrs& workload,
                                              const std::vector<VerifiedCsr>& csrs);
  // node_check refuses a node call from an ID that is not a node of ours or was evicted; returns
  // the node's attestation type.
  Result<std::string> node_check(std::string_view node_id);
  // publish_revocations stores `revocations` and pushes the new ones to watchers in one step of
  // the feed (so a watcher subscribing meanwhile sees each exactly once); returns how many were new.
  Result<size_t> publish_revocations(const std::vector<Revocation>& revocations);
  void audit(std::string decision, std::string spiffe_id, std::string serial, std::string policy, std::string reason);
  Status invalid(std::string message) const;
  int64_t now() const;

  AuthorityCoreOptions options_;
  std::unique_ptr<CertificateAuthority> ca_;
  std::unique_ptr<AuthorityStore> store_;
  AuthorityStats stats_;
  AuditLog* audit_;
  std::shared_ptr<UpdateFeed> feed_;
  uint64_t published_bundle_sequence_ = 0;  // guarded by the feed's lock (set inside publish)
};

// node_attestation_of returns the attestation type of a node SPIFFE ID of `trust_domain`
// ("join_token" for spiffe://td/node/join_token/x), or "" when it is not one.
std::string node_attestation_of(std::string_view node_id, std::string_view trust_domain);

}  // namespace portcullis::attest::authority
