#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace portcullis::mtls {

// PeerIdentity is all the rest of the proxy learns about a verified peer: no certificate pointers
// outlive the handshake.
struct PeerIdentity {
  std::string spiffe_id;
  std::string trust_domain;
  std::string serial;    // leaf serial number, lowercase hex
  int64_t not_after = 0;  // leaf expiry, Unix seconds
  // attested_claims are the leaf's attested-claims extension ("TYPE:KEY:VALUE", sorted; empty
  // when the certificate has none): what the issuing authority verified about the workload.
  std::vector<std::string> attested_claims;
};

}  // namespace portcullis::mtls
