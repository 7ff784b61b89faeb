#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>

#include "config/node.h"

namespace portcullis::config {

// SocketAddress is Envoy's `socket_address`: a numeric IPv4/IPv6 address and a TCP port
// (0 = pick one at bind time).
struct SocketAddress {
  std::string address;
  uint32_t port_value = 0;

  bool is_ipv6() const { return address.find(':') != std::string::npos; }
  // to_string renders `ip:port`, or `[ip]:port` for IPv6.
  std::string to_string() const;
  bool operator==(const SocketAddress&) const = default;
};

// PipeAddress is Envoy's `pipe`: a Unix socket path and its file mode.
struct PipeAddress {
  std::string path;
  uint32_t mode = 0;
  bool operator==(const PipeAddress&) const = default;
};

// Address is Envoy's `config.core.v3.Address`: exactly one of socket_address or pipe.
struct Address {
  std::variant<SocketAddress, PipeAddress> value;

  const SocketAddress* socket() const { return std::get_if<SocketAddress>(&value); }
  const PipeAddress* pipe() const { return std::get_if<PipeAddress>(&value); }
  std::string to_string() const;
  bool operator==(const Address&) const = default;
};

// parse_address reads an Envoy Address map. `allow_pipe` is false where only TCP makes sense.
std::optional<Address> parse_address(const Node& node, ErrorList& errors, bool allow_pipe);
std::optional<SocketAddress> parse_socket_address(const Node& node, ErrorList& errors);

}  // namespace portcullis::config
