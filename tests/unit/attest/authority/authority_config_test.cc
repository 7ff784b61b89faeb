// authority.yaml: table-driven errors (testdata/authority_config_errors.yaml) and the defaults.
#include "attest/authority/authority_config.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "config/yaml_file.h"

namespace portcullis::attest::authority {
namespace {

struct ConfigCase {
  std::string name;
  std::string config;
  std::vector<std::string> errors;
};

std::vector<ConfigCase> load_cases() {
  YAML::Node table =
      YAML::LoadFile(std::string(PORTCULLIS_TESTDATA) + "/attest/authority/testdata/authority_config_errors.yaml");
  std::vector<ConfigCase> out;
  for (const auto& c : table["cases"]) {
    ConfigCase cc{c["name"].as<std::string>(), c["config"].as<std::string>(), {}};
    for (const auto& e : c["errors"]) cc.errors.push_back(e.as<std::string>());
    out.push_back(std::move(cc));
  }
  return out;
}

void PrintTo(const ConfigCase& c, std::ostream* os) { *os << c.name; }

class AuthorityConfigErrors : public ::testing::TestWithParam<ConfigCase> {};

TEST_P(AuthorityConfigErrors, ReportsEveryErrorWithLocationAndPath) {
  const ConfigCase& c = GetParam();
  config::ErrorList errors;
  std::optional<AuthorityConfig> built;
  bool saw_grpc_limits = false;
  if (auto root = config::load_yaml_text(c.config, c.name + ".yaml", errors)) {
    built = parse_authority_config(*root, errors, [&](const config::Node&) { saw_grpc_limits = true; });
  }
  std::vector<std::string> got;
  for (const auto& e : errors.errors()) got.push_back(e.format());
  EXPECT_EQ(got, c.errors) << errors.format();
  EXPECT_EQ(built.has_value(), c.errors.empty());
  if (built) {
    EXPECT_EQ(saw_grpc_limits, built->grpc_limits.has_value());
  }
}

INSTANTIATE_TEST_SUITE_P(Table, AuthorityConfigErrors, ::testing::ValuesIn(load_cases()),
                         [](const ::testing::TestParamInfo<ConfigCase>& info) { return info.param.name; });

AuthorityConfig parse_ok(const std::string& yaml) {
  config::ErrorList errors;
  auto root = config::load_yaml_text(yaml, "a.yaml", errors);
  EXPECT_TRUE(root) << errors.format();
  auto c = parse_authority_config(*root, errors);
  EXPECT_TRUE(c) << errors.format();
  return c ? *c : AuthorityConfig{};
}

TEST(AuthorityConfig, DocumentedDefaultsApply) {
  auto c = parse_ok(R"(
authority:
  trust_domain: example.org
  listen: {socket_address: {address: 127.0.0.1, port_value: 0}}
  admin_socket: {pipe: {path: /run/a.sock}}
  data_dir: /d
)");
  EXPECT_EQ(c.trust_domain, "example.org");
  EXPECT_EQ(c.listen.socket()->to_string(), "127.0.0.1:0");
  EXPECT_EQ(c.admin_socket.path, "/run/a.sock");
  EXPECT_EQ(c.admin_socket.mode, 0600u);
  EXPECT_EQ(c.default_x509_svid_ttl, std::chrono::hours(1));
  EXPECT_EQ(c.default_jwt_svid_ttl, std::chrono::minutes(5));
  EXPECT_EQ(c.node_svid_ttl, std::chrono::hours(1));
  EXPECT_TRUE(c.node_attestors.join_token.has_value());
  EXPECT_FALSE(c.ca.upstream());
  EXPECT_TRUE(c.entries_file.empty());
  EXPECT_EQ(c.limits.max_workloads_per_request, AuthorityLimits{}.max_workloads_per_request);
  EXPECT_FALSE(c.audit.has_value());
}

TEST(AuthorityConfig, AdminUidsAlwaysIncludeRoot) {
  auto c = parse_ok(R"(
authority:
  trust_domain: example.org
  listen: {socket_address: {address: 127.0.0.1, port_value: 0}}
  admin_socket: {pipe: {path: /run/a.sock, mode: 432}}
  admin_uids: [1000]
  data_dir: /d
  ca: {upstream: {certificate_chain: {inline_string: x}, private_key: {filename: /k}}}
  limits: {max_watchers: 3}
)");
  EXPECT_TRUE(c.admin_uid_allowed(0));
  EXPECT_TRUE(c.admin_uid_allowed(1000));
  EXPECT_FALSE(c.admin_uid_allowed(1001));
  EXPECT_EQ(c.admin_socket.mode, 0660u);
  ASSERT_TRUE(c.ca.upstream());
  EXPECT_EQ(c.ca.upstream_private_key->filename, "/k");
  EXPECT_EQ(c.limits.max_watchers, 3u);
}

}  // namespace
}  // namespace portcullis::attest::authority
