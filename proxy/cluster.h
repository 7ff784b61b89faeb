#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <asio/ip/tcp.hpp>

#include "common/stats.h"
#include "common/stats_macros.h"
#include "config/bootstrap.h"
#include "mtls/identity_selector.h"
#include "mtls/tls_context.h"
#include "proxy/ssl_stats.h"

namespace portcullis::proxy {

// Envoy's cluster stats, under `cluster.<name>.`.
#define PORTCULLIS_CLUSTER_STATS(COUNTER, GAUGE)   \
  GAUGE(membership_total)                          \
  GAUGE(upstream_cx_active)                        \
  COUNTER(upstream_cx_connect_attempts_exceeded)   \
  COUNTER(upstream_cx_connect_fail)                \
  COUNTER(upstream_cx_connect_timeout)             \
  COUNTER(upstream_cx_destroy)                     \
  COUNTER(upstream_cx_none_healthy)                \
  COUNTER(upstream_cx_rx_bytes_total)              \
  COUNTER(upstream_cx_total)                       \
  COUNTER(upstream_cx_tx_bytes_total)

struct ClusterStats {
  PORTCULLIS_CLUSTER_STATS(PORTCULLIS_DECLARE_COUNTER, PORTCULLIS_DECLARE_GAUGE)
  static ClusterStats create(StatsStore& store, const std::string& cluster_name);
};

// Cluster is a STATIC cluster ready for connecting: resolved endpoints, timeouts and stats.
// Immutable apart from the round-robin cursor, which is a relaxed atomic so every worker can
// pick endpoints without a lock.
class Cluster {
 public:
  // tls is the upstream TLS context (null: plaintext); its handshake shares connect_timeout.
  // tls_selector replaces it when the context comes from the built-in identity, per connection.
  Cluster(const config::ClusterConfig& config, StatsStore& store, std::shared_ptr<const mtls::TlsContext> tls,
          std::shared_ptr<mtls::IdentitySelector> tls_selector = nullptr);

  const std::string& name() const { return name_; }
  std::chrono::nanoseconds connect_timeout() const { return connect_timeout_; }
  uint32_t buffer_limit_bytes() const { return buffer_limit_bytes_; }
  bool empty() const { return endpoints_.empty(); }
  const std::vector<asio::ip::tcp::endpoint>& endpoints() const { return endpoints_; }
  // next_endpoint returns endpoints in round-robin order. Requires !empty().
  const asio::ip::tcp::endpoint& next_endpoint() const;
  const ClusterStats& stats() const { return stats_; }
  const std::shared_ptr<const mtls::TlsContext>& tls() const { return tls_; }
  mtls::IdentitySelector* tls_selector() const { return tls_selector_.get(); }
  const SslStats& ssl_stats() const { return *ssl_stats_; }

 private:
  std::string name_;
  std::chrono::nanoseconds connect_timeout_;
  uint32_t buffer_limit_bytes_;
  std::vector<asio::ip::tcp::endpoint> endpoints_;
  ClusterStats stats_;
  std::shared_ptr<const mtls::TlsContext> tls_;
  std::shared_ptr<mtls::IdentitySelector> tls_selector_;
  std::optional<SslStats> ssl_stats_;
  mutable std::atomic<uint64_t> cursor_{0};
};

}  // namespace portcullis::proxy
