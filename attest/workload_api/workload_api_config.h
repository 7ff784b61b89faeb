#pragma once

#include <functional>
#include <optional>
#include <string>

#include "config/address.h"
#include "config/errors.h"
#include "config/node.h"

namespace portcullis::attest {

// WorkloadApiConfig is the validated Workload API endpoint:
//
//   workload_api:
//     address: {pipe: {path: /run/portcullis/agent.sock, mode: 0666}}  # or {socket_address: ...}
//     limits: {...}   # GrpcServerLimits; parsed by the caller (attest/ cannot see proxy/)
//
// The address may come from the block, or when the block has none, from the command line
// (--workload-api-socket) or the environment (SPIFFE_ENDPOINT_SOCKET), in that order. Immutable.
struct WorkloadApiConfig {
  config::Address address;
  std::string address_source;           // "config", "--workload-api-socket" or "SPIFFE_ENDPOINT_SOCKET"
  std::optional<config::Node> limits;   // the raw `limits:` node
};

// WorkloadApiEndpointSources are the addresses given outside the config file, as SPIFFE
// endpoint URIs (see parse_spiffe_endpoint_uri); empty = not given.
struct WorkloadApiEndpointSources {
  std::string flag;  // --workload-api-socket
  std::string env;   // $SPIFFE_ENDPOINT_SOCKET
};

// resolve_workload_api_config decides whether the Workload API is served and where:
//  - a `workload_api:` block enables it; its address wins, else the flag, else the env;
//  - without a block, the flag alone enables it (an ambient SPIFFE_ENDPOINT_SOCKET does not:
//    workloads set it for their clients, and it must not start a server by itself).
// It needs an `identity:` block (`has_identity`). Every problem goes into `errors` with
// file:line:column (the flag and env name themselves as the location). `parse_limits` is called
// with the `limits:` node. nullopt when not enabled or on errors.
std::optional<WorkloadApiConfig> resolve_workload_api_config(
    const std::optional<config::Node>& block, const WorkloadApiEndpointSources& sources, bool has_identity,
    config::ErrorList& errors, const std::function<void(const config::Node& limits)>& parse_limits = nullptr);

}  // namespace portcullis::attest
