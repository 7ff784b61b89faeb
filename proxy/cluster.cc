#include "proxy/cluster.h"

#include <asio/ip/address.hpp>

namespace portcullis::proxy {

ClusterStats ClusterStats::create(StatsStore& store, const std::string& cluster_name) {
  StatScope scope{"cluster", "envoy_cluster_name", cluster_name};
  return ClusterStats{PORTCULLIS_CLUSTER_STATS(PORTCULLIS_MAKE_COUNTER, PORTCULLIS_MAKE_GAUGE)};
}

Cluster::Cluster(const config::ClusterConfig& config, StatsStore& store, std::shared_ptr<const mtls::TlsContext> tls,
                 std::shared_ptr<mtls::IdentitySelector> tls_selector)
    : name_(config.name),
      connect_timeout_(config.connect_timeout),
      buffer_limit_bytes_(config.per_connection_buffer_limit_bytes),
      stats_(ClusterStats::create(store, config.name)),
      tls_(std::move(tls)),
      tls_selector_(std::move(tls_selector)) {
  if (tls_ || tls_selector_) ssl_stats_.emplace(SslStats::create(store, StatScope{"cluster", "envoy_cluster_name", config.name}));
  for (const auto& ep : config.endpoints) {
    // Config validation already checked these are numeric addresses.
    endpoints_.emplace_back(asio::ip::make_address(ep.address), static_cast<uint16_t>(ep.port_value));
  }
  stats_.membership_total.set(static_cast<int64_t>(endpoints_.size()));
}

const asio::ip::tcp::endpoint& Cluster::next_endpoint() const {
  uint64_t i = cursor_.fetch_add(1, std::memory_order_relaxed);
  return endpoints_[i % endpoints_.size()];
}

}  // namespace portcullis::proxy
