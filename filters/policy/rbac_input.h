#pragma once

#include <cstdint>
#include <string_view>

#include <netinet/in.h>

namespace portcullis::filters {

// IpAddress is a v4 or v6 address in network byte order, comparable without any socket API.
struct IpAddress {
  uint8_t bytes[16] = {};
  bool v6 = false;

  // parse accepts the textual forms inet_pton accepts ("10.0.0.1", "::1"); false otherwise.
  bool parse(std::string_view text);
};

// RbacInput is what RBAC rules look at for one connection (HTTP fields arrive with the HTTP
// filters). Views are valid for the duration of one evaluation.
struct RbacInput {
  bool tls = false;                 // the connection is TLS
  bool authenticated = false;       // a verified peer certificate was presented
  std::string_view peer_spiffe_id;  // set when authenticated
  IpAddress direct_remote_ip;
  IpAddress remote_ip;  // same as direct_remote_ip until a proxy protocol / XFF source exists
  IpAddress destination_ip;
  uint16_t destination_port = 0;
  std::string_view requested_server_name;  // TLS SNI
};

}  // namespace portcullis::filters
