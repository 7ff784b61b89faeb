#pragma once

#include "common/stats.h"
#include "common/stats_macros.h"

namespace portcullis::proxy {

// Envoy's `server.` stats plus our config-reload counters.
#define PORTCULLIS_SERVER_STATS(COUNTER, GAUGE) \
  GAUGE(concurrency)                            \
  COUNTER(config_reload_failure)                \
  COUNTER(config_reload_success)                \
  GAUGE(live)                                   \
  GAUGE(state)                                  \
  COUNTER(tls_rotation_failure)                 \
  COUNTER(tls_rotation_success)                 \
  GAUGE(total_connections)                      \
  GAUGE(uptime)

struct ServerStats {
  PORTCULLIS_SERVER_STATS(PORTCULLIS_DECLARE_COUNTER, PORTCULLIS_DECLARE_GAUGE)
  static ServerStats create(StatsStore& store) {
    StatScope scope{"server", "", ""};
    return ServerStats{PORTCULLIS_SERVER_STATS(PORTCULLIS_MAKE_COUNTER, PORTCULLIS_MAKE_GAUGE)};
  }
};

// Envoy's `listener_manager.` stats.
#define PORTCULLIS_LISTENER_MANAGER_STATS(COUNTER, GAUGE) \
  COUNTER(listener_added)                                 \
  COUNTER(listener_create_failure)                        \
  COUNTER(listener_in_place_updated)                      \
  COUNTER(listener_removed)                               \
  GAUGE(total_listeners_active)

struct ListenerManagerStats {
  PORTCULLIS_LISTENER_MANAGER_STATS(PORTCULLIS_DECLARE_COUNTER, PORTCULLIS_DECLARE_GAUGE)
  static ListenerManagerStats create(StatsStore& store) {
    StatScope scope{"listener_manager", "", ""};
    return ListenerManagerStats{PORTCULLIS_LISTENER_MANAGER_STATS(PORTCULLIS_MAKE_COUNTER, PORTCULLIS_MAKE_GAUGE)};
  }
};

}  // namespace portcullis::proxy
