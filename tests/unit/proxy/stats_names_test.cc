// The stat names operators grep for and dashboards query must stay Envoy's.
#include <gtest/gtest.h>

#include "filters/network/tcp_proxy/tcp_proxy_config.h"
#include "proxy/admin_server.h"
#include "proxy/cluster.h"
#include "proxy/listener.h"
#include "proxy/server_stats.h"
#include "proxy/ssl_stats.h"

#include <algorithm>

namespace portcullis::proxy {
namespace {

std::vector<std::string> names(const StatsStore& store) {
  std::vector<std::string> out;
  std::string text = store.render_text();
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl - pos);
    out.push_back(line.substr(0, line.find(':')));
    pos = nl + 1;
  }
  return out;
}

TEST(StatsNames, ListenerClusterTcpProxyAndServer) {
  StatsStore store;
  ListenerStats::create(store, "127.0.0.1_10000");
  ClusterStats::create(store, "backend");
  filters::TcpProxyStats::create(store, "ingress");
  ServerStats::create(store);
  ListenerManagerStats::create(store);
  AdminStats::create(store);
  std::vector<std::string> expected = {
      "cluster.backend.membership_total",
      "cluster.backend.upstream_cx_active",
      "cluster.backend.upstream_cx_connect_attempts_exceeded",
      "cluster.backend.upstream_cx_connect_fail",
      "cluster.backend.upstream_cx_connect_timeout",
      "cluster.backend.upstream_cx_destroy",
      "cluster.backend.upstream_cx_none_healthy",
      "cluster.backend.upstream_cx_rx_bytes_total",
      "cluster.backend.upstream_cx_total",
      "cluster.backend.upstream_cx_tx_bytes_total",
      "http.admin.downstream_cx_active",
      "http.admin.downstream_cx_overflow",
      "http.admin.downstream_cx_total",
      "http.admin.downstream_rq_4xx",
      "http.admin.downstream_rq_timeout",
      "http.admin.downstream_rq_total",
      "listener.127.0.0.1_10000.downstream_cx_accept_error",
      "listener.127.0.0.1_10000.downstream_cx_active",
      "listener.127.0.0.1_10000.downstream_cx_destroy",
      "listener.127.0.0.1_10000.downstream_cx_filter_denied",
      "listener.127.0.0.1_10000.downstream_cx_overflow",
      "listener.127.0.0.1_10000.downstream_cx_total",
      "listener.127.0.0.1_10000.downstream_global_cx_overflow",
      "listener_manager.listener_added",
      "listener_manager.listener_create_failure",
      "listener_manager.listener_in_place_updated",
      "listener_manager.listener_removed",
      "listener_manager.total_listeners_active",
      "server.concurrency",
      "server.config_reload_failure",
      "server.config_reload_success",
      "server.live",
      "server.state",
      "server.tls_rotation_failure",
      "server.tls_rotation_success",
      "server.total_connections",
      "server.uptime",
      "tcp.ingress.downstream_cx_no_route",
      "tcp.ingress.downstream_cx_rx_bytes_total",
      "tcp.ingress.downstream_cx_total",
      "tcp.ingress.downstream_cx_tx_bytes_total",
      "tcp.ingress.downstream_flow_control_paused_reading_total",
      "tcp.ingress.downstream_flow_control_resumed_reading_total",
      "tcp.ingress.idle_timeout",
  };
  EXPECT_EQ(names(store), expected);
}

TEST(StatsNames, SslStatsUseEnvoyNamesPlusOnePerRejectionReason) {
  StatsStore store;
  SslStats::create(store, StatScope{"listener", "envoy_listener_address", "127.0.0.1_8443"})
      .count_rejection(mtls::SvidRejection::kUnknownCa);
  auto all = names(store);
  for (const char* leaf : {"ssl.connection_error", "ssl.fail_verify_error", "ssl.fail_verify_san", "ssl.handshake",
                           "ssl.handshake_timeout", "ssl.no_certificate", "ssl.session_reused",
                           "ssl.fail_verify_spiffe.unknown_ca", "ssl.fail_verify_spiffe.san_mismatch",
                           "ssl.fail_verify_spiffe.no_certificate", "ssl.fail_verify_spiffe.expired"}) {
    std::string name = std::string("listener.127.0.0.1_8443.") + leaf;
    EXPECT_NE(std::find(all.begin(), all.end(), name), all.end()) << name;
  }
  EXPECT_EQ(all.size(), 7u + kSvidRejectionCount);
  EXPECT_EQ(store.value("listener.127.0.0.1_8443.ssl.fail_verify_spiffe.unknown_ca"), 1);
  EXPECT_EQ(store.value("listener.127.0.0.1_8443.ssl.fail_verify_error"), 1);
}

TEST(StatsNames, PrometheusUsesEnvoyTagNames) {
  StatsStore store;
  ClusterStats::create(store, "backend").upstream_cx_total.inc(4);
  ListenerStats::create(store, "127.0.0.1_10000").downstream_cx_active.set(2);
  filters::TcpProxyStats::create(store, "ingress").downstream_cx_total.inc();
  std::string prom = store.render_prometheus();
  EXPECT_NE(prom.find("envoy_cluster_upstream_cx_total{envoy_cluster_name=\"backend\"} 4\n"), std::string::npos);
  EXPECT_NE(prom.find("envoy_listener_downstream_cx_active{envoy_listener_address=\"127.0.0.1_10000\"} 2\n"),
            std::string::npos);
  EXPECT_NE(prom.find("envoy_tcp_downstream_cx_total{envoy_tcp_prefix=\"ingress\"} 1\n"), std::string::npos);
  EXPECT_NE(prom.find("# TYPE envoy_listener_downstream_cx_active gauge\n"), std::string::npos);
}

}  // namespace
}  // namespace portcullis::proxy
