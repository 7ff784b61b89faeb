// Table-driven: testdata/config_errors.yaml lists bad configs with the exact errors expected.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "config/yaml_file.h"
#include "proxy/server_config.h"

namespace portcullis::proxy {
namespace {

struct ConfigCase {
  std::string name;
  std::string config;
  std::vector<std::string> errors;
};

std::vector<ConfigCase> load_cases() {
  YAML::Node table = YAML::LoadFile(std::string(PORTCULLIS_TESTDATA) + "/proxy/testdata/config_errors.yaml");
  std::vector<ConfigCase> out;
  for (const auto& c : table["cases"]) {
    ConfigCase cc{c["name"].as<std::string>(), c["config"].as<std::string>(), {}};
    for (const auto& e : c["errors"]) cc.errors.push_back(e.as<std::string>());
    out.push_back(std::move(cc));
  }
  return out;
}

void PrintTo(const ConfigCase& c, std::ostream* os) { *os << c.name; }

class ConfigErrorsTest : public ::testing::TestWithParam<ConfigCase> {};

TEST_P(ConfigErrorsTest, ReportsEveryErrorWithLocationAndPath) {
  const ConfigCase& c = GetParam();
  config::ErrorList errors;
  StatsStore stats;
  std::shared_ptr<const ServerConfig> built;
  if (auto root = config::load_yaml_text(c.config, c.name + ".yaml", errors)) {
    built = build_server_config(*root, {}, stats, errors);
  }
  std::vector<std::string> got;
  for (const auto& e : errors.errors()) got.push_back(e.format());
  EXPECT_EQ(got, c.errors) << errors.format();
  EXPECT_EQ(built != nullptr, c.errors.empty());
}

INSTANTIATE_TEST_SUITE_P(Table, ConfigErrorsTest, ::testing::ValuesIn(load_cases()),
                         [](const ::testing::TestParamInfo<ConfigCase>& info) { return info.param.name; });

TEST(ConfigOverrides, ServiceNodeAndClusterReplaceConfig) {
  config::ErrorList errors;
  StatsStore stats;
  auto root = config::load_yaml_text("node: {id: a, cluster: b}\n", "o.yaml", errors);
  ASSERT_TRUE(root);
  auto built = build_server_config(*root, ConfigOverrides{"node-x", "cluster-y"}, stats, errors);
  ASSERT_TRUE(built) << errors.format();
  EXPECT_EQ(built->bootstrap.node_id, "node-x");
  EXPECT_EQ(built->bootstrap.node_cluster, "cluster-y");
}

TEST(ConfigDefaults, DocumentedDefaultsApply) {
  config::ErrorList errors;
  StatsStore stats;
  auto root = config::load_yaml_text(R"(
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains: [{filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: s, cluster: c}}]}]
  clusters:
  - {name: c, load_assignment: {endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}}]}]}}
)", "d.yaml", errors);
  ASSERT_TRUE(root);
  auto built = build_server_config(*root, {}, stats, errors);
  ASSERT_TRUE(built) << errors.format();
  const auto& b = built->bootstrap;
  EXPECT_EQ(b.listeners[0].per_connection_buffer_limit_bytes, config::kDefaultBufferLimitBytes);
  EXPECT_EQ(b.listeners[0].tcp_backlog_size, config::kDefaultTcpBacklog);
  EXPECT_EQ(b.clusters[0].connect_timeout, std::chrono::seconds(5));
  EXPECT_EQ(b.limits.connection_limit_for("l"), config::kDefaultListenerConnectionLimit);
  EXPECT_EQ(b.limits.global_max_connections, config::kDefaultGlobalConnectionLimit);
  const auto& tcp = *built->chains[0].tcp_proxy;
  EXPECT_EQ(tcp.idle_timeout(), std::chrono::hours(1));
  EXPECT_EQ(tcp.max_connect_attempts(), 1u);
}

}  // namespace
}  // namespace portcullis::proxy
