#include "filters/network/tcp_proxy/tcp_proxy_config.h"

namespace portcullis::filters {

TcpProxyStats TcpProxyStats::create(StatsStore& store, const std::string& stat_prefix) {
  StatScope scope{"tcp", "envoy_tcp_prefix", stat_prefix};
  return TcpProxyStats{PORTCULLIS_TCP_PROXY_STATS(PORTCULLIS_MAKE_COUNTER, PORTCULLIS_MAKE_GAUGE)};
}

}  // namespace portcullis::filters
