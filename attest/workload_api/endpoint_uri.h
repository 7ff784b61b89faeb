#pragma once

#include <string_view>

#include "common/result.h"
#include "config/address.h"

namespace portcullis::attest {

// kSpiffeEndpointSocketEnv names the environment variable that holds the Workload API address
// when the config gives none (wire facts §4.2).
inline constexpr const char* kSpiffeEndpointSocketEnv = "SPIFFE_ENDPOINT_SOCKET";

// parse_spiffe_endpoint_uri reads a SPIFFE_ENDPOINT_SOCKET value as an address to listen on,
// following the SPIFFE Workload Endpoint spec exactly (wire facts §4.2):
//   unix:///absolute/path  (also unix:/absolute/path) -> pipe {path}
//   tcp://<IPv4 or [IPv6]>:<port>                      -> socket_address
// Rejected: other schemes, opaque URIs (unix:relative), an authority on unix, userinfo, a host
// that is not an IP literal (names, IPv6 zones), a missing or non-numeric port, a path on tcp,
// and any query or fragment. The scheme is case-insensitive (RFC 3986); percent-escapes in a
// unix path are decoded. Pure function; the error message says which rule the value breaks.
Result<config::Address> parse_spiffe_endpoint_uri(std::string_view uri);

}  // namespace portcullis::attest
