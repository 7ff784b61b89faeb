// Table-driven RBAC semantics (testdata/rbac_rules.yaml) plus config error cases.
#include "filters/policy/rbac_engine.h"

#include <gtest/gtest.h>

#include <optional>

namespace portcullis::filters {
namespace {

struct RbacCase {
  std::string name;
  YAML::Node rules;         // or `chain`: several RBAC filters in order, the first denial wins
  YAML::Node shadow_rules;  // optional: evaluated too, never changes `allowed`
  YAML::Node checks;
};

void PrintTo(const RbacCase& c, std::ostream* os) { *os << c.name; }

std::vector<RbacCase> load_cases(const char* file) {
  YAML::Node table = YAML::LoadFile(std::string(PORTCULLIS_TESTDATA) + "/filters/testdata/" + file);
  std::vector<RbacCase> out;
  for (const auto& c : table["cases"]) out.push_back({c["name"].as<std::string>(), c["chain"] ? c["chain"] : c["rules"], c["shadow_rules"], c["checks"]});
  return out;
}

std::string str(const YAML::Node& check, const char* key, const char* fallback = "") {
  return check[key] ? check[key].as<std::string>() : fallback;
}

std::shared_ptr<const RbacEngine> compile(const YAML::Node& rules, const char* path) {
  config::ErrorList errors;
  config::Node node(rules, path, std::make_shared<const std::string>("table.yaml"));
  auto engine = parse_rbac(node, errors);
  EXPECT_TRUE(engine) << errors.format();
  return engine;
}

// HttpCheck owns the strings an HTTP check's views point into.
struct HttpCheck {
  std::vector<std::pair<std::string, std::string>> owned;
  std::vector<FlatHeaderLookup::Entry> entries;
  std::string method, path, authority, scheme;
  std::optional<FlatHeaderLookup> lookup;
  HttpRequestView view;

  // from_check returns nullptr when the check describes a plain connection (no HTTP keys).
  static std::unique_ptr<HttpCheck> from_check(const YAML::Node& check) {
    bool http = check["http"] || check["method"] || check["path"] || check["authority"] || check["headers"];
    if (!http) return nullptr;
    auto h = std::make_unique<HttpCheck>();
    h->method = str(check, "method");
    h->path = str(check, "path");
    h->authority = str(check, "authority");
    h->scheme = str(check, "scheme");
    for (const auto& kv : check["headers"]) h->owned.emplace_back(kv[0].as<std::string>(), kv[1].as<std::string>());
    for (const auto& [k, v] : h->owned) h->entries.emplace_back(k, v);
    h->lookup.emplace(h->entries);
    h->view = HttpRequestView{h->method, h->path, h->authority, h->scheme, &*h->lookup};
    return h;
  }
};

class RbacTable : public ::testing::TestWithParam<RbacCase> {};

// decide runs a chain of RBAC filters as Envoy's filter chain does: the first denial stops the
// request; otherwise the last filter's decision stands.
RbacDecision decide(const std::vector<std::shared_ptr<const RbacEngine>>& chain, const RbacInput& in) {
  RbacDecision d;
  for (const auto& engine : chain) {
    d = engine->evaluate(in);
    if (!d.allowed) break;
  }
  return d;
}

TEST_P(RbacTable, DecidesAsEnvoy) {
  std::vector<std::shared_ptr<const RbacEngine>> chain;
  if (GetParam().rules.IsSequence()) {
    for (const auto& r : GetParam().rules) chain.push_back(compile(r, "chain"));
  } else {
    chain.push_back(compile(GetParam().rules, "rules"));
  }
  for (const auto& e : chain) ASSERT_TRUE(e);
  std::shared_ptr<const RbacEngine> shadow;
  if (GetParam().shadow_rules) {
    shadow = compile(GetParam().shadow_rules, "shadow_rules");
    ASSERT_TRUE(shadow);
  }
  int i = 0;
  for (const auto& check : GetParam().checks) {
    std::string id = str(check, "id");
    std::string sni = str(check, "sni");
    std::vector<std::string> claims;
    for (const auto& c : check["claims"]) claims.push_back(c.as<std::string>());
    RbacInput in;
    in.authenticated = !id.empty();
    in.tls = check["tls"] ? check["tls"].as<bool>() : in.authenticated;
    in.peer_spiffe_id = id;
    in.peer_attested_claims = claims;
    ASSERT_TRUE(in.direct_remote_ip.parse(str(check, "remote", "10.0.0.1")));
    in.remote_ip = in.direct_remote_ip;
    ASSERT_TRUE(in.destination_ip.parse(str(check, "local", "127.0.0.1")));
    in.destination_port = check["port"] ? check["port"].as<uint16_t>() : 8443;
    in.requested_server_name = sni;
    auto http = HttpCheck::from_check(check);
    if (http) in.http = &http->view;
    RbacDecision d = decide(chain, in);
    EXPECT_EQ(d.allowed, check["allowed"].as<bool>()) << "check " << i;
    EXPECT_EQ(d.matched_policy, check["policy"].as<std::string>()) << "check " << i;
    if (shadow) {
      RbacDecision sd = shadow->evaluate(in);
      EXPECT_EQ(sd.allowed, check["shadow_allowed"].as<bool>()) << "check " << i << " (shadow)";
      EXPECT_EQ(sd.matched_policy, check["shadow_policy"].as<std::string>()) << "check " << i << " (shadow)";
    }
    ++i;
  }
  EXPECT_GT(i, 0);
}

auto case_name = [](const ::testing::TestParamInfo<RbacCase>& info) { return info.param.name; };
INSTANTIATE_TEST_SUITE_P(Network, RbacTable, ::testing::ValuesIn(load_cases("rbac_rules.yaml")), case_name);
INSTANTIATE_TEST_SUITE_P(Http, RbacTable, ::testing::ValuesIn(load_cases("rbac_http_rules.yaml")), case_name);

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
  EXPECT_EQ(errors_for("{policies: {p: {permissions: [{any: true}], principals: [{metadata: {filter: x}}]}}}"),
            std::vector<std::string>{"r.yaml:1:69: rules.policies.p.principals[0].metadata: unsupported principal 'metadata'"});
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

TEST(RbacConfig, AttestedPrincipalNeedsAWellFormedSelector) {
  EXPECT_EQ(errors_for("{policies: {p: {permissions: [{any: true}], principals: [{attested: {selector: 'unix:sha256'}}]}}}"),
            std::vector<std::string>{"r.yaml:1:80: rules.policies.p.principals[0].attested.selector: 'unix:sha256' is not "
                                     "TYPE:KEY:VALUE (want TYPE:KEY:VALUE, e.g. unix:sha256:<hex>)"});
  EXPECT_EQ(errors_for("{policies: {p: {permissions: [{any: true}], principals: [{attested: {selector: 'Unix:uid:1'}}]}}}"),
            std::vector<std::string>{"r.yaml:1:80: rules.policies.p.principals[0].attested.selector: 'Unix:uid:1' TYPE and "
                                     "KEY may only hold a-z, 0-9, '_', '.' and '-' (want TYPE:KEY:VALUE, e.g. unix:sha256:<hex>)"});
  EXPECT_EQ(errors_for("{policies: {p: {permissions: [{any: true}], principals: [{attested: {}}]}}}"),
            std::vector<std::string>{"r.yaml:1:69: rules.policies.p.principals[0].attested.selector: missing required field"});
  EXPECT_EQ(errors_for("{policies: {p: {permissions: [{any: true}], principals: [{attested: {selector: 'a:b:c', regex: x}}]}}}"),
            std::vector<std::string>{"r.yaml:1:89: rules.policies.p.principals[0].attested.regex: unknown field 'regex'"});
}

}  // namespace
}  // namespace portcullis::filters
