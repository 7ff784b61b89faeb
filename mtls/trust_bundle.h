#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace portcullis::mtls {

// JwtAuthority is one JWT-SVID signing key of a trust domain: its `kid` and public key (EC P-256,
// P-384, P-521 or RSA of at least 2048 bits).
struct JwtAuthority {
  std::string key_id;
  bssl::UniquePtr<EVP_PKEY> public_key;
};

// TrustBundle is the set of X.509 authorities and JWT authorities of one trust domain. Immutable
// once built, so any number of handshakes and token checks on any worker may use it at once
// without locking.
class TrustBundle {
 public:
  // from_pem takes every CERTIFICATE block of `pem`; at least one, each a CA. No JWT authorities.
  static Result<std::shared_ptr<const TrustBundle>> from_pem(std::string trust_domain, std::string_view pem);
  // from_spiffe_json reads a SPIFFE bundle (RFC 7517 JWK set): the first x5c element of every
  // key with use "x509-svid", and every key with use "jwt-svid" (which must carry a unique kid);
  // keys of unknown kty/use are skipped, as the standard says, and duplicate JSON member names
  // are refused. An empty `keys` array is a valid bundle that trusts nothing.
  static Result<std::shared_ptr<const TrustBundle>> from_spiffe_json(std::string trust_domain, std::string_view json);
  // from_file reads a path holding either form (JSON if it starts with '{').
  static Result<std::shared_ptr<const TrustBundle>> from_file(std::string trust_domain, const std::string& path);

  TrustBundle(std::string trust_domain, std::vector<bssl::UniquePtr<X509>> authorities, uint64_t sequence,
              std::vector<JwtAuthority> jwt_authorities = {}, int64_t refresh_hint_seconds = 0);

  const std::string& trust_domain() const { return trust_domain_; }
  uint64_t sequence() const { return sequence_; }
  // refresh_hint_seconds is the bundle's spiffe_refresh_hint (0: none given).
  int64_t refresh_hint_seconds() const { return refresh_hint_; }
  size_t size() const { return authorities_.size(); }
  const std::vector<JwtAuthority>& jwt_authorities() const { return jwt_authorities_; }
  // find_jwt_authority returns the JWT key with this kid, or null.
  const JwtAuthority* find_jwt_authority(std::string_view key_id) const;
  // authorities_der is every X.509 authority as DER, concatenated with no separator: the form
  // of the Workload API's bundle fields. authorities_pem is the same as PEM blocks (SDS trusted_ca).
  std::string authorities_der() const;
  std::string authorities_pem() const;
  // anchors is the stack handed to X509_STORE_CTX_trusted_stack; store is an empty store the
  // verify context needs as a parameter. Both are read-only after construction.
  STACK_OF(X509)* anchors() const { return anchors_.get(); }
  X509_STORE* store() const { return store_.get(); }
  const std::vector<bssl::UniquePtr<X509>>& authorities() const { return authorities_; }

 private:
  std::string trust_domain_;
  std::vector<bssl::UniquePtr<X509>> authorities_;
  bssl::UniquePtr<STACK_OF(X509)> anchors_;
  bssl::UniquePtr<X509_STORE> store_;
  uint64_t sequence_;
  std::vector<JwtAuthority> jwt_authorities_;
  int64_t refresh_hint_;
};

// TrustBundleSet maps trust domain names to their bundles (federation). A bundle added under
// the name "*" (Envoy's plain `trusted_ca`) anchors every trust domain without a bundle of its own.
// Immutable once built.
class TrustBundleSet {
 public:
  static constexpr std::string_view kAnyTrustDomain = "*";

  void add(std::shared_ptr<const TrustBundle> bundle) { bundles_[bundle->trust_domain()] = std::move(bundle); }
  const TrustBundle* find(std::string_view trust_domain) const;
  size_t size() const { return bundles_.size(); }
  const std::map<std::string, std::shared_ptr<const TrustBundle>, std::less<>>& bundles() const { return bundles_; }

 private:
  std::map<std::string, std::shared_ptr<const TrustBundle>, std::less<>> bundles_;
};

// der_to_pem wraps DER bytes as one RFC 7468 block (`-----BEGIN <label>-----`, 64-column base64).
std::string der_to_pem(std::string_view label, std::string_view der);

// parse_pem_certificates returns every certificate in `pem` (possibly none).
Result<std::vector<bssl::UniquePtr<X509>>> parse_pem_certificates(std::string_view pem);

}  // namespace portcullis::mtls
