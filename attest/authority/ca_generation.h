#pragma once

#include <openssl/x509.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "mtls/cert_minter.h"
#include "mtls/jwt_svid.h"
#include "mtls/tls_config.h"

namespace portcullis::attest::authority {

// CaSigner is a CA certificate with its key, as it signs SVIDs. Immutable once built.
struct CaSigner {
  mtls::MintedCert ca;
  std::vector<std::string> intermediates_der;  // sent after the leaf: the upstream chain minus its root
  std::string anchor_der;                      // what peers must trust: the root
  std::chrono::system_clock::time_point not_after;  // the earliest expiry along the chain
};

// CaGeneration is one CA key set: its own root (self-signed mode; null in upstream mode) and a
// JWT key, retiring together at not_after. Immutable once built.
struct CaGeneration {
  uint64_t id = 0;
  std::shared_ptr<const CaSigner> own_ca;
  std::shared_ptr<const mtls::JwtSigner> jwt;
  std::chrono::system_clock::time_point not_after;
};

struct NewGeneration {
  uint64_t id = 0;
  std::string trust_domain;
  bool with_root = true;  // false in upstream mode: only a JWT key
  std::string jwt_key_id;  // empty: derived from the key
  std::chrono::system_clock::time_point now;
  std::chrono::system_clock::time_point not_after;
  std::chrono::seconds backdate{0};
};

// create_generation makes fresh keys (and a self-signed root) and writes them to data_dir as
// ca-<id>.key / jwt-<id>.key (0600) and ca-<id>.crt. Files only; the caller commits the state.
Result<std::shared_ptr<const CaGeneration>> create_generation(const std::string& data_dir, const NewGeneration& spec);

// load_generation reads what create_generation wrote; the root is optional (upstream mode). A
// key that does not match its certificate, or that others may read, is an error.
Result<std::shared_ptr<const CaGeneration>> load_generation(const std::string& data_dir, uint64_t id,
                                                            const std::string& jwt_key_id, int64_t not_after);

// remove_generation_files deletes a retired generation's files (best effort).
void remove_generation_files(const std::string& data_dir, uint64_t id);

// load_upstream_ca reads {certificate_chain, private_key}: the chain's first certificate is the
// CA we sign with (its key must be the given one), each certificate is signed by the next, and
// the last is the root peers trust. Every certificate must be a CA with keyCertSign.
Result<std::shared_ptr<const CaSigner>> load_upstream_ca(const std::pair<mtls::DataSource, mtls::DataSource>& upstream);

// Small certificate helpers shared by the CA.
Result<std::string> certificate_der(X509* cert);
std::string serial_hex(X509* cert);  // lowercase, no leading zeros (as mtls::PeerIdentity::serial)
std::chrono::system_clock::time_point asn1_time_point(const ASN1_TIME* t);

}  // namespace portcullis::attest::authority
