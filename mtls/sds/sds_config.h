#pragma once

#include <functional>
#include <optional>
#include <string>

#include "config/address.h"
#include "config/errors.h"
#include "config/node.h"

namespace portcullis::mtls {

// SdsNames are the special resource names of SPIRE's agent `sds` block, with its defaults:
// `default` (the first SVID), `ROOTCA` (the own trust domain's bundle), `ALL` (every bundle in a
// SPIFFE validator config). Istio-style deployments rename them.
struct SdsNames {
  std::string default_svid = "default";
  std::string default_bundle = "ROOTCA";
  std::string all_bundles = "ALL";
};

// SdsConfig is the validated top-level `sds:` block:
//   sds:
//     address: {pipe: {path: /run/portcullis/sds.sock, mode: 384}}    # 0600; or {socket_address: ...}
//     limits: {max_message_bytes: 65536}                               # GrpcServerLimits, optional
//     default_svid_name: default                                      # SPIRE's names, optional
//     default_bundle_name: ROOTCA
//     default_all_bundles_name: ALL
//     disable_spiffe_cert_validation: false
// Immutable once parsed.
struct SdsConfig {
  config::Address address;
  std::optional<config::Node> limits;  // proxy/ turns it into GrpcServerLimits
  SdsNames names;
  bool disable_spiffe_cert_validation = false;
  // fixed is a canonical text of the whole block: a reload may not change it (the server's
  // socket and options belong to the running process).
  std::string fixed;
};

// parse_sds_config validates `node`, adding every problem to `errors` with its location, and
// calls `parse_limits` on a `limits:` node (the limits type lives in proxy/). Returns nullopt
// when anything was wrong.
std::optional<SdsConfig> parse_sds_config(const config::Node& node, config::ErrorList& errors,
                                          const std::function<void(const config::Node& limits)>& parse_limits);

}  // namespace portcullis::mtls
