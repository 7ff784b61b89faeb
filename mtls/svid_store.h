#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mtls/jwt_svid.h"
#include "mtls/trust_bundle.h"

namespace portcullis::mtls {

// X509Svid is one X.509-SVID with its private key, in the forms its three consumers need: DER
// for the Workload API, PEM for SDS (chain_pem/key_pem), parsed objects for SSL_CTXs. Immutable.
struct X509Svid {
  std::string spiffe_id;
  std::vector<std::string> certificates_der;  // leaf first, then intermediates
  std::string private_key_pkcs8;              // unencrypted PKCS#8 DER, as the Workload API sends it
  std::string hint;                           // optional, Workload API X509SVID.hint
  std::vector<bssl::UniquePtr<X509>> chain;   // the same certificates, parsed
  bssl::UniquePtr<EVP_PKEY> private_key;
  std::chrono::system_clock::time_point not_after;  // the leaf's

  // chain_der is certificates_der concatenated with no separator (X509SVID.x509_svid).
  std::string chain_der() const;
  std::string chain_pem() const;
  std::string key_pem() const;  // PKCS#8 PEM
};

// JwtMinter mints JWT-SVIDs somewhere other than this process's own key: the attestation agent's
// implementation asks the authority (MintJwtSvid), which holds the signing key. done() runs
// exactly once, on any thread and possibly inline; the caller posts to its own loop. Thread-safe.
class JwtMinter {
 public:
  using Done = std::function<void(Result<std::string> token)>;
  virtual ~JwtMinter() = default;
  virtual void mint(const SpiffeId& subject, std::vector<std::string> audience, Done done) const = 0;
};

// IdentitySnapshot is everything a workload's identity consists of at one moment. Published as
// `shared_ptr<const IdentitySnapshot>`: immutable, shared by every reader, never changed after
// publication (a rotation publishes a new one), so it is read from any thread without locks.
struct IdentitySnapshot {
  uint64_t version = 0;  // strictly increasing per store; 1 for the first snapshot
  std::chrono::system_clock::time_point built_at;
  std::string trust_domain;  // our own, bare name (example.org)
  // The SVIDs this view holds; the first is the default identity (Workload API semantics).
  std::vector<X509Svid> svids;
  // Own and federated bundles by bare trust domain name. The own bundle also carries our JWT
  // signer's public key, so tokens we mint validate against it.
  TrustBundleSet bundles;
  // How JWT-SVIDs are minted: jwt_signer locally (static identity, with jwt_svid_ttl), or
  // jwt_minter remotely (attested identity; the authority picks the TTL). Both null: this
  // identity cannot mint JWT-SVIDs.
  std::shared_ptr<const JwtSigner> jwt_signer;
  std::shared_ptr<const JwtMinter> jwt_minter;
  std::chrono::seconds jwt_svid_ttl = kDefaultJwtSvidTtl;
  // How ValidateJWTSVID checks tokens (size limit, skew); `now` is filled per call.
  JwtValidateOptions jwt_validation;

  const X509Svid* default_svid() const { return svids.empty() ? nullptr : &svids.front(); }
  const TrustBundle* own_bundle() const;
  // federated_bundles is every bundle but our own (Workload API X509SVIDResponse.federated_bundles).
  std::vector<const TrustBundle*> federated_bundles() const;
};

// CallerInfo identifies who asks for an identity: the peer process of a Workload API or SDS
// connection (SO_PEERCRED / SO_PEERPIDFD), plus the selectors attestation derived for it
// ("unix:uid:1000", "k8s:ns:payments", ...). Built by the transport and attest/; the static
// store ignores it. A plain value; copy freely.
struct CallerInfo {
  std::optional<int32_t> pid;
  std::optional<uint32_t> uid;
  std::optional<uint32_t> gid;
  std::vector<std::string> selectors;  // "type:value", sorted; empty until attestation exists
};

class SvidStore;

// SvidSubscription keeps one watcher registered; destroying (or reset()ting) it unregisters the
// callback. After the handle is gone the callback is neither running nor called again (a
// destruction on another thread waits for a running call to return); a callback may destroy its
// own handle. Move-only. A handle that outlives its store is inert.
class SvidSubscription {
 public:
  SvidSubscription() = default;
  SvidSubscription(SvidSubscription&& other) noexcept = default;
  SvidSubscription& operator=(SvidSubscription&& other) noexcept;
  ~SvidSubscription() { reset(); }
  void reset();
  bool active() const { return entry_ != nullptr; }

  struct Entry;  // defined in svid_store.cc
  struct Registry;

 private:
  friend class SvidWatchers;
  SvidSubscription(std::weak_ptr<Registry> registry, std::shared_ptr<Entry> entry)
      : registry_(std::move(registry)), entry_(std::move(entry)) {}
  std::weak_ptr<Registry> registry_;
  std::shared_ptr<Entry> entry_;
};

// SvidStore is the one internal interface through which the Workload API, the SDS server and the
// TLS contexts get identity. Implementations publish immutable snapshots and tell watchers when a
// new one exists.
//
// Per-caller identities: the static store hands every caller the same snapshot. The attested
// store (attestation issue) holds the SVIDs of many workloads and answers for_caller() with a
// view holding only the SVIDs whose registration entries match the caller's selectors (and the
// same bundles), or null when none do (the Workload API then answers PERMISSION_DENIED). Callers
// always go through for_caller() with the CallerInfo of their peer, and re-query it when
// notified, so that store drops in without changing them. The proxy's own identity (TLS contexts,
// SDS `default`) is current().
//
// Threading: current() and for_caller() are lock-free reads (an atomic shared_ptr load) and
// callable from any thread. Watcher callbacks run synchronously on the thread that publishes a
// snapshot: for file-based stores the thread that calls reload() (the main thread); they must
// only post work to their own loop (e.g. asio::post to a worker) and return, since a slow
// callback delays every other watcher and the rotation itself.
class SvidStore {
 public:
  // Callback receives the version just published. A view may be unchanged for a given caller:
  // compare before pushing (SPIRE skips proto-equal responses).
  using Callback = std::function<void(uint64_t version)>;

  virtual ~SvidStore() = default;
  // current returns the newest snapshot of this proxy's own identity; null until one exists (the
  // sidecar is not ready and inbound handshakes fail closed).
  virtual std::shared_ptr<const IdentitySnapshot> current() const = 0;
  // for_caller returns the view `caller` is entitled to, or null when it is entitled to none.
  virtual std::shared_ptr<const IdentitySnapshot> for_caller(const CallerInfo& caller) const = 0;
  // subscribe registers `callback` for every future publication (not the current one: read
  // current()/for_caller() after subscribing so nothing falls between the two).
  virtual SvidSubscription subscribe(Callback callback) = 0;
};

// SvidWatchers is the watcher list every SvidStore implementation embeds: subscribe() hands out
// handles, notify() calls every live callback on the calling thread. Thread-safe.
class SvidWatchers {
 public:
  SvidWatchers();
  ~SvidWatchers();
  SvidSubscription subscribe(SvidStore::Callback callback);
  void notify(uint64_t version);
  size_t size() const;

 private:
  std::shared_ptr<SvidSubscription::Registry> registry_;
};

}  // namespace portcullis::mtls
