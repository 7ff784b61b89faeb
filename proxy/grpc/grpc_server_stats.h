#pragma once

#include <array>
#include <string>

#include "common/grpc/status.h"
#include "common/stats.h"
#include "common/stats_macros.h"

namespace portcullis::proxy {

// Stats of one gRPC server, under `grpc_server.<name>.` (Prometheus label
// envoy_grpc_server_prefix), plus `calls_finished_<CODE>` for every status code.
#define PORTCULLIS_GRPC_SERVER_STATS(COUNTER, GAUGE) \
  COUNTER(calls_cancelled) \
  COUNTER(calls_deadline_exceeded) \
  COUNTER(calls_started) \
  COUNTER(calls_unimplemented) \
  GAUGE(connections_active) \
  COUNTER(connections_overflow) \
  COUNTER(connections_total) \
  COUNTER(goaway_sent) \
  COUNTER(header_list_too_large) \
  COUNTER(http_415) \
  COUNTER(keepalive_timeout) \
  COUNTER(messages_received) \
  COUNTER(messages_sent) \
  COUNTER(messages_too_large) \
  COUNTER(output_buffer_overflow) \
  COUNTER(ping_strikes_exceeded) \
  COUNTER(protocol_errors) \
  GAUGE(streams_active) \
  COUNTER(tls_handshake_failed)

struct GrpcServerStats {
  PORTCULLIS_GRPC_SERVER_STATS(PORTCULLIS_DECLARE_COUNTER, PORTCULLIS_DECLARE_GAUGE)
  std::array<Counter*, grpc::kMaxStatusCode + 1> calls_finished{};

  static GrpcServerStats create(StatsStore& store, const std::string& name) {
    StatScope scope{"grpc_server", "envoy_grpc_server_prefix", name};
    GrpcServerStats s{PORTCULLIS_GRPC_SERVER_STATS(PORTCULLIS_MAKE_COUNTER, PORTCULLIS_MAKE_GAUGE)};
    for (int code = 0; code <= grpc::kMaxStatusCode; ++code) {
      s.calls_finished[code] = &store.counter(
          scope, std::string("calls_finished_") + grpc::status_code_name(static_cast<grpc::StatusCode>(code)));
    }
    return s;
  }
  void finished(grpc::StatusCode code) const { calls_finished[static_cast<int>(code)]->inc(); }
};

}  // namespace portcullis::proxy
