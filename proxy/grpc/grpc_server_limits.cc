#include "proxy/grpc/grpc_server_limits.h"

namespace portcullis::proxy {

std::optional<GrpcServerLimits> parse_grpc_server_limits(const config::Node& node, config::ErrorList& errors) {
  GrpcServerLimits out;
  size_t before = errors.size();
  config::MapReader r(node, errors);
  // Floors keep a config from making the server useless (a 0-byte message limit) and ceilings
  // keep it from being unbounded; 2^31-1 is HTTP/2's own window maximum.
  r.uint32("max_message_bytes", 1, 1u << 30, &out.max_message_bytes);
  r.uint32("max_concurrent_streams", 1, 1u << 16, &out.max_concurrent_streams);
  r.uint32("max_header_list_bytes", 1024, 1u << 20, &out.max_header_list_bytes);
  r.uint32("initial_window_bytes", 65535, (1u << 31) - 1, &out.initial_window_bytes);
  r.uint32("max_buffered_bytes_per_stream", 16384, 1u << 30, &out.max_buffered_bytes_per_stream);
  r.uint32("max_connections", 1, 1u << 20, &out.max_connections);
  r.duration("keepalive_time", &out.keepalive_time);
  r.duration("keepalive_timeout", &out.keepalive_timeout);
  r.duration("min_ping_interval", &out.min_ping_interval);
  r.uint32("max_ping_strikes", 0, 1000, &out.max_ping_strikes);
  r.duration("goaway_grace", &out.goaway_grace);
  r.finish();
  if (out.keepalive_time.count() <= 0 || out.keepalive_timeout.count() <= 0) {
    errors.add(node.location(), node.path(), "keepalive_time and keepalive_timeout must be positive");
  }
  if (errors.size() != before) return std::nullopt;
  return out;
}

}  // namespace portcullis::proxy
