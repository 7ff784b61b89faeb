#pragma once

#include <openssl/evp.h>

#include <chrono>
#include <memory>
#include <string>

#include "common/result.h"
#include "mtls/svid_store.h"
#include "mtls/trust_bundle.h"
#include "portcullis/authority/v1/authority.pb.h"

namespace portcullis::attest::agent {

// KeyAndCsr is a fresh P-256 key, held only in memory, and a PKCS#10 request signed with it. The
// CSR carries no names: the authority decides the SPIFFE ID from the registration entry, the CSR
// only proves possession of the key.
struct KeyAndCsr {
  bssl::UniquePtr<EVP_PKEY> key;
  std::string csr_der;
};

// make_key_and_csr generates one. Thread-safe; fails only when BoringSSL does.
Result<KeyAndCsr> make_key_and_csr();

// svid_from_response turns the authority's answer to our CSR into a servable SVID: the chain must
// parse, its leaf must carry the public half of `key` and the SPIFFE ID the authority named, and
// it must verify as an X.509-SVID against `bundles` at `now` (an authority that hands out
// something our peers would reject is caught here, not in a handshake). Thread-safe.
Result<mtls::X509Svid> svid_from_response(const ::portcullis::authority::v1::X509Svid& response,
                                          bssl::UniquePtr<EVP_PKEY> key, const mtls::TrustBundleSet& bundles,
                                          std::chrono::system_clock::time_point now);

// clone_svid shares the parsed objects of `svid` (reference counts) and copies its bytes: an
// X509Svid is move-only, but one SVID appears in several immutable views.
mtls::X509Svid clone_svid(const mtls::X509Svid& svid);

// bundle_from_proto parses an authority Bundle: the SPIFFE bundle JSON when present (it carries the
// JWT authorities too), else the DER X.509 authorities. The sequence number is the proto's.
Result<std::shared_ptr<const mtls::TrustBundle>> bundle_from_proto(const ::portcullis::authority::v1::Bundle& bundle);

}  // namespace portcullis::attest::agent
