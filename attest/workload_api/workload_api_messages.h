#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "mtls/svid_store.h"
#include "spiffe/workload/workload.pb.h"

namespace portcullis::attest {

// The Workload API response messages built from one IdentitySnapshot (wire facts §4.1, §4.3):
// every message is the full state. Bundle maps are keyed by trust domain ID (spiffe://td); a
// bundle under the "*" name (Envoy's plain trusted_ca) has no trust domain and is left out.
// Pure functions of the snapshot; callable from any thread.

// x509_svid_response: every SVID (DER chain, PKCS#8 key, its own trust domain's bundle, hint),
// plus every other trust domain's bundle as federated_bundles.
X509SVIDResponse x509_svid_response(const mtls::IdentitySnapshot& snapshot);
// x509_bundles_response: every trust domain's X.509 authorities, the own one included.
X509BundlesResponse x509_bundles_response(const mtls::IdentitySnapshot& snapshot);
// jwt_bundles_response: every trust domain's JWT authorities as SPIFFE bundle JSON (jwt-svid
// keys only, as SPIRE serves them). Fails when a key cannot be written as a JWK.
Result<JWTBundlesResponse> jwt_bundles_response(const mtls::IdentitySnapshot& snapshot);

// json_to_struct converts a JWT claims object to google.protobuf.Struct (numbers become doubles,
// as in every Struct). Fails when `claims` is not an object.
Result<google::protobuf::Struct> json_to_struct(const nlohmann::json& claims);

// leaf_serial_hex is the lowercase hex serial of the first certificate in a concatenated DER
// chain (X509SVID.x509_svid), for audit records; "" when it does not parse.
std::string leaf_serial_hex(std::string_view chain_der);

// trust_domain_id is "spiffe://" + name.
inline std::string trust_domain_id(const std::string& name) { return "spiffe://" + name; }

}  // namespace portcullis::attest
