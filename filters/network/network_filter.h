#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "filters/policy/rbac_input.h"
#include "mtls/peer_identity.h"

namespace portcullis::filters {

// ConnectionInfo is what a network filter may look at when a connection starts. Views point into
// the connection, valid only during the call.
struct ConnectionInfo {
  uint64_t id = 0;
  std::string_view listener;
  std::string_view remote_address;  // "ip:port"
  std::string_view local_address;
  uint16_t local_port = 0;
  bool tls = false;                           // the downstream connection is TLS
  const mtls::PeerIdentity* peer = nullptr;  // the verified SPIFFE identity on mTLS listeners
  IpAddress remote_ip;
  IpAddress local_ip;
  std::string_view requested_server_name;  // TLS SNI, empty without TLS
};

// FilterVerdict is what the filters that decided report for the audit log.
struct FilterVerdict {
  std::string policy;  // the policy that matched, if any
  std::string reason;  // why the connection was allowed or denied
};

enum class FilterStatus {
  kContinue,  // the next filter (and finally the terminal one) sees the connection
  kClose,     // close the connection before a byte reaches upstream
};

// NetworkFilterConfig is the immutable, validated config of one network filter in a chain.
// Shared by every connection on every worker, so it is only read after construction.
class NetworkFilterConfig {
 public:
  virtual ~NetworkFilterConfig() = default;
  virtual std::string_view name() const = 0;
  // on_new_connection runs once per connection, on its worker, before any upstream traffic.
  // It may fill `verdict` with the policy and reason behind its decision.
  virtual FilterStatus on_new_connection(const ConnectionInfo& info, FilterVerdict& verdict) const {
    return FilterStatus::kContinue;
  }
};

}  // namespace portcullis::filters
