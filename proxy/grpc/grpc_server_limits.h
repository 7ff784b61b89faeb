#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

#include "config/node.h"

namespace portcullis::proxy {

// GrpcServerLimits bounds everything one gRPC server holds for its peers. Defaults follow gRPC's
// (4 MiB messages, 8 KiB header lists, keepalive per wire facts §1.6). A service's config block
// embeds it as `limits:` (see parse_grpc_server_limits); immutable once parsed.
struct GrpcServerLimits {
  uint32_t max_message_bytes = 4 << 20;           // per request message -> RESOURCE_EXHAUSTED
  uint32_t max_concurrent_streams = 100;          // SETTINGS_MAX_CONCURRENT_STREAMS
  uint32_t max_header_list_bytes = 8 << 10;       // name + value + 32 per field; over -> HTTP 431
  uint32_t initial_window_bytes = 1 << 20;        // per-stream receive window we advertise
  uint32_t max_buffered_bytes_per_stream = 8 << 20;  // response bytes queued behind flow control
  uint32_t max_connections = 1024;                // per server; more are closed at accept
  std::chrono::nanoseconds keepalive_time = std::chrono::hours(2);      // idle time before our PING
  std::chrono::nanoseconds keepalive_timeout = std::chrono::seconds(20);  // wait for its ACK
  // Client pings closer together than this while no call is active are strikes; more than
  // max_ping_strikes of them -> GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings").
  std::chrono::nanoseconds min_ping_interval = std::chrono::minutes(5);
  uint32_t max_ping_strikes = 2;
  // Time a draining connection waits between the first GOAWAY (2^31-1) and the final one.
  std::chrono::nanoseconds goaway_grace = std::chrono::seconds(1);
};

// parse_grpc_server_limits reads a `limits:` map (every field optional, unknown ones are errors
// with file:line:column). Used as: `sds: {address: {...}, limits: {max_message_bytes: 65536}}`.
std::optional<GrpcServerLimits> parse_grpc_server_limits(const config::Node& node, config::ErrorList& errors);

}  // namespace portcullis::proxy
