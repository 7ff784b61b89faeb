// Table-driven RBAC semantics (testdata/rbac_rules.yaml) plus config error cases.
#include "filters/policy/rbac_engine.h"

#include <gtest/gtest.h>

namespace portcullis::filters {
namespace {

struct RbacCase {
  std::string name;
  YAML::Node rules;
  YAML::Node checks;
};

void PrintTo(const RbacCase& c, std::ostream* os) { *os << c.name; }

std::vector<RbacCase> load_cases() {
  YAML::Node table = YAML::LoadFile(std::string(PORTCULLIS_TESTDATA) + "/filters/testdata/rbac_rules.yaml");
  std::vector<RbacCase> out;
  for (const auto& c : table["cases"]) out.push_back({c["name"].as<std::string>(), c["rules"], c["checks"]});
  return out;
}

class RbacTable : public ::testing::TestWithParam<RbacCase> {};

TEST_P(RbacTable, DecidesAsEnvoy) {
  config::ErrorList errors;
  config::Node node(GetParam().rules, "rules", std::make_shared<const std::string>("table.yaml"));
  auto engine = parse_rbac(node, errors);
  ASSERT_TRUE(engine) << errors.format();
  int i = 0;
  for (const auto& check : GetParam().checks) {
    std::string id = check["id"] ? check["id"].as<std::string>() : "";
    std::string sni = check["sni"] ? check["sni"].as<std::string>() : "";
    RbacInput in;
    in.authenticated = !id.empty();
    in.tls = check["tls"] ? check["tls"].as<bool>() : in.authenticated;
    in.peer_spiffe_id = id;
    ASSERT_TRUE(in.direct_remote_ip.parse(check["remote"] ? check["remote"].as<std::string>() : "10.0.0.1"));
    in.remote_ip = in.direct_remote_ip;
    ASSERT_TRUE(in.destination_ip.parse(check["local"] ? check["local"].as<std::string>() : "127.0.0.1"));
    in.destination_port = check["port"] ? check["port"].as<uint16_t>() : 8443;
    in.requested_server_name = sni;
    RbacDecision d = engine->evaluate(in);
    EXPECT_EQ(d.allowed, check["allowed"].as<bool>()) << "check " << i;
    EXPECT_EQ(d.matched_policy, check["policy"].as<std::string>()) << "check " << i;
    ++i;
  }
  EXPECT_GT(i, 0);
}

INSTANTIATE_TEST_SUITE_P(Table, RbacTable, ::testing::ValuesIn(load_cases()),
                         [](const ::testing::TestParamInfo<RbacCase>& info) { return info.param.name; });

std::vector<std::string> errors_for(const char* yaml) {
  config::ErrorList errors;
  config::Node node(YAML::Load(yaml), "rules", std::make_shared<const std::string>("r.yaml"));
  EXPECT_FALSE(parse_rbac(node, errors));
  std::vector<std::string> out;
  for (const auto& e : errors.errors()) out.push_back(e.format());
  return out;
}

TEST(RbacConfig, ReportsBadRulesWithLocations) {
  EXPECT_EQ(errors_for("{action: PERMIT, policies: {}}"),
            std::vector<std::string>{"r.yaml:1:10: rules.action: action must be ALLOW, DENY or LOG, got 'PERMIT'"});
  EXPECT_EQ(errors_for("{policies: {p: {permissions: [{any: true, destination_port: 1}], principals: [{any: true}]}}}"),
            std::vector<std::string>{"r.yaml:1:31: rules.policies.p.permissions[0]: a permission sets exactly one rule"});
  EXPECT_EQ(errors_for("{policies: {p: {permissions: [{any: true}], principals: [{header: {name: x}}]}}}"),
            std::vector<std::string>{"r.yaml:1:67: rules.policies.p.principals[0].header: unsupported principal 'header'"});
  EXPECT_EQ(errors_for("{policies: {p: {permissions: [{any: false}], principals: [{any: true}]}}}"),
            std::vector<std::string>{"r.yaml:1:37: rules.policies.p.permissions[0].any: any must be true"});
  EXPECT_EQ(errors_for("{policies: {p: {permissions: [{any: true}]}}}"),
            std::vector<std::string>{"r.yaml:1:16: rules.policies.p.principals: missing required field"});
  // Empty lists and empty matchers would fail open; nulls and non-string rule names are errors.
  EXPECT_EQ(errors_for("{policies: {p: {permissions: [], principals: [{any: true}]}}}"),
            std::vector<std::string>{"r.yaml:1:30: rules.policies.p.permissions: must have at least one entry"});
  EXPECT_EQ(errors_for("{policies: {p: {permissions: [{and_rules: {rules: []}}], principals: [{any: true}]}}}"),
            std::vector<std::string>{"r.yaml:1:43: rules.policies.p.permissions[0].and_rules.rules: must have at least one entry"});
  EXPECT_EQ(errors_for("{policies: {p: {permissions: [{any: true}], principals: [{authenticated: {principal_name: {prefix: ''}}}]}}}"),
            std::vector<std::string>{"r.yaml:1:91: rules.policies.p.principals[0].authenticated.principal_name.prefix: must not be empty"});
  EXPECT_EQ(errors_for("{policies: {p: {permissions: [{not_rule: }], principals: [{any: true}]}}}"),
            std::vector<std::string>{"r.yaml:1:31: rules.policies.p.permissions[0].not_rule: rule 'not_rule' has no value"});
  EXPECT_EQ(errors_for("{policies: {p: {permissions: [{? [x] : 1}], principals: [{any: true}]}}}"),
            std::vector<std::string>{"r.yaml:1:31: rules.policies.p.permissions[0]: a permission's rule name must be a string"});
  EXPECT_EQ(errors_for("{policies: {p: {permissions: [{destination_ip: {address_prefix: nope, prefix_len: 8}}], principals: [{any: true}]}}}"),
            std::vector<std::string>{"r.yaml:1:48: rules.policies.p.permissions[0].destination_ip.address_prefix: 'nope' is not an IP address"});
}

}  // namespace
}  // namespace portcullis::filters
