#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/stats.h"
#include "common/stats_macros.h"
#include "config/bootstrap.h"
#include "filters/network/network_filter.h"

namespace portcullis::filters {

inline constexpr std::string_view kTcpProxyName = "envoy.filters.network.tcp_proxy";
inline constexpr std::string_view kTcpProxyTypeUrl =
    "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
inline constexpr std::chrono::hours kDefaultTcpIdleTimeout{1};

// Envoy's tcp_proxy stats, under `tcp.<stat_prefix>.`.
#define PORTCULLIS_TCP_PROXY_STATS(COUNTER, GAUGE)    \
  COUNTER(downstream_cx_no_route)                     \
  COUNTER(downstream_cx_rx_bytes_total)               \
  COUNTER(downstream_cx_total)                        \
  COUNTER(downstream_cx_tx_bytes_total)               \
  COUNTER(downstream_flow_control_paused_reading_total)  \
  COUNTER(downstream_flow_control_resumed_reading_total) \
  COUNTER(idle_timeout)

struct TcpProxyStats {
  PORTCULLIS_TCP_PROXY_STATS(PORTCULLIS_DECLARE_COUNTER, PORTCULLIS_DECLARE_GAUGE)
  static TcpProxyStats create(StatsStore& store, const std::string& stat_prefix);
};

// TcpProxyConfig is the terminal network filter: where a listener's connections are proxied
// to and under which timeouts. Immutable; the byte pumping itself lives in proxy/.
class TcpProxyConfig : public NetworkFilterConfig {
 public:
  TcpProxyConfig(std::string stat_prefix, std::string cluster, std::chrono::nanoseconds idle_timeout,
                 uint32_t max_connect_attempts, TcpProxyStats stats)
      : stat_prefix_(std::move(stat_prefix)), cluster_(std::move(cluster)), idle_timeout_(idle_timeout),
        max_connect_attempts_(max_connect_attempts), stats_(stats) {}

  std::string_view name() const override { return kTcpProxyName; }
  const std::string& stat_prefix() const { return stat_prefix_; }
  const std::string& cluster() const { return cluster_; }
  // idle_timeout of zero disables the idle timer, as in Envoy.
  std::chrono::nanoseconds idle_timeout() const { return idle_timeout_; }
  uint32_t max_connect_attempts() const { return max_connect_attempts_; }
  TcpProxyStats& stats() const { return stats_; }

 private:
  std::string stat_prefix_;
  std::string cluster_;
  std::chrono::nanoseconds idle_timeout_;
  uint32_t max_connect_attempts_;
  mutable TcpProxyStats stats_;  // counters are updated through a const config
};

}  // namespace portcullis::filters
