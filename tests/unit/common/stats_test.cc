#include "common/stats.h"

#include <regex>

#include <gtest/gtest.h>

#include "common/stats_macros.h"

namespace portcullis {
namespace {

TEST(StatsStore, SameNameReturnsSameCounter) {
  StatsStore store;
  StatScope scope{"cluster", "envoy_cluster_name", "backend"};
  Counter& a = store.counter(scope, "upstream_cx_total");
  Counter& b = store.counter(scope, "upstream_cx_total");
  EXPECT_EQ(&a, &b);
  a.inc(3);
  EXPECT_EQ(store.value("cluster.backend.upstream_cx_total"), 3);
}

TEST(StatsStore, RendersEnvoyTextSortedByName) {
  StatsStore store;
  store.gauge({"server", "", ""}, "live").set(1);
  store.counter({"cluster", "envoy_cluster_name", "b"}, "upstream_cx_total").inc(2);
  store.counter({"cluster", "envoy_cluster_name", "a"}, "upstream_cx_total").inc(1);
  EXPECT_EQ(store.render_text(),
            "cluster.a.upstream_cx_total: 1\n"
            "cluster.b.upstream_cx_total: 2\n"
            "server.live: 1\n");
}

TEST(StatsStore, RendersPrometheusWithEnvoyNamesAndOneTypeLinePerFamily) {
  StatsStore store;
  store.counter({"cluster", "envoy_cluster_name", "a"}, "upstream_cx_total").inc(1);
  store.counter({"cluster", "envoy_cluster_name", "b"}, "upstream_cx_total").inc(2);
  store.gauge({"listener", "envoy_listener_address", "127.0.0.1_8080"}, "downstream_cx_active").set(-1);
  store.gauge({"server", "", ""}, "live").set(1);
  EXPECT_EQ(store.render_prometheus(),
            "# TYPE envoy_cluster_upstream_cx_total counter\n"
            "envoy_cluster_upstream_cx_total{envoy_cluster_name=\"a\"} 1\n"
            "envoy_cluster_upstream_cx_total{envoy_cluster_name=\"b\"} 2\n"
            "# TYPE envoy_listener_downstream_cx_active gauge\n"
            "envoy_listener_downstream_cx_active{envoy_listener_address=\"127.0.0.1_8080\"} -1\n"
            "# TYPE envoy_server_live gauge\n"
            "envoy_server_live 1\n");
}

TEST(StatsStore, PrometheusEscapesLabelValuesAndSanitizesNames) {
  StatsStore store;
  store.counter({"tcp.x", "envoy_tcp_prefix", "we\"ird\\"}, "a-b").inc();
  std::string out = store.render_prometheus();
  EXPECT_NE(out.find("envoy_tcp_x_a_b{envoy_tcp_prefix=\"we\\\"ird\\\\\"} 1"), std::string::npos) << out;
  std::regex sample(R"(^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*"\})? -?[0-9]+$)");
  size_t pos = 0;
  while (pos < out.size()) {
    size_t nl = out.find('\n', pos);
    std::string line = out.substr(pos, nl - pos);
    if (!line.starts_with("#")) EXPECT_TRUE(std::regex_match(line, sample)) << line;
    pos = nl + 1;
  }
}

#define TEST_STATS(COUNTER, GAUGE) COUNTER(alpha_total) GAUGE(beta_active) COUNTER(gamma_total)
struct TestStats {
  TEST_STATS(PORTCULLIS_DECLARE_COUNTER, PORTCULLIS_DECLARE_GAUGE)
};

TEST(StatsMacros, StructFieldsMatchRegisteredNames) {
  StatsStore store;
  StatScope scope{"demo", "envoy_demo", "x"};
  TestStats stats{TEST_STATS(PORTCULLIS_MAKE_COUNTER, PORTCULLIS_MAKE_GAUGE)};
  stats.alpha_total.inc(5);
  stats.beta_active.set(7);
  stats.gamma_total.inc(9);
  EXPECT_EQ(store.value("demo.x.alpha_total"), 5);
  EXPECT_EQ(store.value("demo.x.beta_active"), 7);
  EXPECT_EQ(store.value("demo.x.gamma_total"), 9);
  EXPECT_EQ(store.value("demo.x.missing"), std::nullopt);
}

}  // namespace
}  // namespace portcullis
