// The ext_authz Check service against FakeServerCall: decisions from principals, addresses, SNI and
// HTTP attributes; shadow rules; malformed requests; policy swaps; stats and audit records.
#include <unistd.h>

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "common/grpc/fake_server_call.h"
#include "filters/ext_authz/ext_authz_service.h"

namespace portcullis::filters {
namespace {

namespace auth = ::envoy::service::auth::v3;

constexpr const char* kRules = R"(
ext_authz_server:
  address: {pipe: {path: /tmp/unused.sock}}
  stat_prefix: t
  rules:
    action: ALLOW
    policies:
      frontend-reads-api:
        permissions:
        - and_rules:
            rules:
            - header: {name: ":method", string_match: {exact: GET}}
            - url_path: {path: {prefix: "/api/"}}
        principals: [{authenticated: {principal_name: {exact: "spiffe://example.org/frontend"}}}]
      ops-header:
        permissions: [{header: {name: x-ops-token, present_match: true}}]
        principals: [{authenticated: {principal_name: {prefix: "spiffe://example.org/ops/"}}}]
      port-9000-from-td:
        permissions: [{and_rules: {rules: [{destination_port: 9000}, {requested_server_name: {exact: db.internal}}]}}]
        principals: [{authenticated: {principal_name: {prefix: "spiffe://example.org/"}}}]
      loopback-health:
        permissions: [{url_path: {path: {exact: /healthz}}}]
        principals: [{direct_remote_ip: {address_prefix: 127.0.0.0, prefix_len: 8}}]
  shadow_rules:
    action: DENY
    policies:
      would-block-outsiders:
        permissions: [{any: true}]
        principals: [{not_id: {authenticated: {principal_name: {prefix: "spiffe://example.org/"}}}}]
)";

std::optional<ExtAuthzServerConfig> parse(const std::string& yaml, config::ErrorList& errors) {
  auto root = YAML::Load(yaml);
  config::Node node(root["ext_authz_server"], "ext_authz_server", std::make_shared<const std::string>("c.yaml"));
  return parse_ext_authz_server(node, errors);
}

auth::CheckRequest http_request(const std::string& principal, const std::string& method, const std::string& path,
                                std::map<std::string, std::string> headers = {}) {
  auth::CheckRequest r;
  auto* a = r.mutable_attributes();
  a->mutable_source()->set_principal(principal);
  auto* src = a->mutable_source()->mutable_address()->mutable_socket_address();
  src->set_address("10.1.2.3");
  src->set_port_value(41000);
  auto* dst = a->mutable_destination()->mutable_address()->mutable_socket_address();
  dst->set_address("10.9.9.9");
  dst->set_port_value(8080);
  auto* http = a->mutable_request()->mutable_http();
  http->set_method(method);
  http->set_path(path);
  http->set_host("api.example.org");
  http->set_scheme("https");
  for (auto& [k, v] : headers) (*http->mutable_headers())[k] = v;
  return r;
}

class ExtAuthzServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config::ErrorList errors;
    auto c = parse(kRules, errors);
    ASSERT_TRUE(c) << errors.format();
    audit_path_ = ::testing::TempDir() + "ext_authz_audit_" + std::to_string(::getpid()) + ".log";
    ::unlink(audit_path_.c_str());
    auto log = AuditLog::create({{AuditSinkConfig::Kind::kFile, audit_path_}}, 1024, stats_);
    ASSERT_TRUE(log.ok());
    audit_ = std::move(log.value());
    service_ = std::make_shared<ExtAuthzService>(c->stat_prefix, c->policy, stats_, audit_.get());
    ASSERT_TRUE(ExtAuthzService::register_with(service_, registry_).ok());
  }
  void TearDown() override { ::unlink(audit_path_.c_str()); }

  // call runs Check through the registry like the transport does; returns the CheckResponse.
  auth::CheckResponse call(const std::string& bytes) {
    auto fake = grpc::start_fake_call(registry_, ExtAuthzService::kCheckPath, bytes);
    EXPECT_TRUE(fake->final_status().has_value());
    EXPECT_TRUE(fake->final_status()->ok());  // a decision is never a gRPC error
    EXPECT_EQ(fake->sent().size(), 1u);
    return fake->sent().empty() ? auth::CheckResponse{} : fake->sent_as<auth::CheckResponse>(0);
  }
  auth::CheckResponse call(const auth::CheckRequest& r) { return call(r.SerializeAsString()); }
  int64_t stat(const std::string& leaf) { return stats_.value("ext_authz_server.t." + leaf).value_or(-1); }
  std::string audit_text() {
    audit_->flush();
    std::ifstream in(audit_path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  StatsStore stats_;
  std::string audit_path_;
  std::unique_ptr<AuditLog> audit_;
  std::shared_ptr<ExtAuthzService> service_;
  grpc::ServiceRegistry registry_;
};

void expect_allowed(const auth::CheckResponse& r) {
  EXPECT_EQ(r.status().code(), 0);
  EXPECT_TRUE(r.has_ok_response());
  EXPECT_FALSE(r.has_denied_response());
}

void expect_denied(const auth::CheckResponse& r, int code = 7) {
  EXPECT_EQ(r.status().code(), code);
  ASSERT_TRUE(r.has_denied_response());
  EXPECT_EQ(r.denied_response().status().code(), 403);
  EXPECT_EQ(r.denied_response().body(), "RBAC: access denied");
}

TEST_F(ExtAuthzServiceTest, AllowsMatchingPrincipalMethodAndPath) {
  expect_allowed(call(http_request("spiffe://example.org/frontend", "GET", "/api/items?x=1")));
  EXPECT_EQ(stat("allowed"), 1);
  EXPECT_EQ(stat("denied"), 0);
}

TEST_F(ExtAuthzServiceTest, DeniesWrongMethodPathOrPrincipal) {
  expect_denied(call(http_request("spiffe://example.org/frontend", "POST", "/api/items")));
  expect_denied(call(http_request("spiffe://example.org/frontend", "GET", "/admin")));
  expect_denied(call(http_request("spiffe://example.org/frontendx", "GET", "/api/items")));
  expect_denied(call(http_request("", "GET", "/api/items")));  // unauthenticated
  EXPECT_EQ(stat("denied"), 4);
  EXPECT_EQ(stat("allowed"), 0);
}

TEST_F(ExtAuthzServiceTest, HeaderRulesReadTheRequestHeaderMap) {
  expect_denied(call(http_request("spiffe://example.org/ops/alice", "DELETE", "/x")));
  expect_allowed(call(http_request("spiffe://example.org/ops/alice", "DELETE", "/x", {{"x-ops-token", "t"}})));
}

TEST_F(ExtAuthzServiceTest, DestinationPortSniAndSourceIp) {
  auth::CheckRequest r;  // a network ext_authz request: no HTTP attributes
  auto* a = r.mutable_attributes();
  a->mutable_source()->set_principal("spiffe://example.org/db-client");
  a->mutable_destination()->mutable_address()->mutable_socket_address()->set_address("10.0.0.5");
  a->mutable_destination()->mutable_address()->mutable_socket_address()->set_port_value(9000);
  expect_denied(call(r));  // no SNI
  a->mutable_tls_session()->set_sni("db.internal");
  expect_allowed(call(r));
  a->mutable_destination()->mutable_address()->mutable_socket_address()->set_port_value(9001);
  expect_denied(call(r));

  auto health = http_request("", "GET", "/healthz");
  expect_denied(call(health));  // 10.1.2.3 is not loopback
  health.mutable_attributes()->mutable_source()->mutable_address()->mutable_socket_address()->set_address("127.0.0.1");
  expect_allowed(call(health));
}

TEST_F(ExtAuthzServiceTest, ShadowRulesAreCountedNeverEnforced) {
  expect_allowed(call(http_request("spiffe://example.org/frontend", "GET", "/api/a")));
  auto outsider = http_request("spiffe://evil.org/x", "GET", "/healthz");
  outsider.mutable_attributes()->mutable_source()->mutable_address()->mutable_socket_address()->set_address("127.0.0.2");
  expect_allowed(call(outsider));  // allowed by loopback-health although the shadow rules deny it
  EXPECT_EQ(stat("shadow_allowed"), 1);
  EXPECT_EQ(stat("shadow_denied"), 1);
  EXPECT_EQ(stat("allowed"), 2);
}

TEST_F(ExtAuthzServiceTest, MissingAttributesFailClosedAsInvalidArgument) {
  expect_denied(call(auth::CheckRequest{}), 3);
  expect_denied(call(std::string("\xff\xff\xff", 3)), 3);  // does not parse
  auth::CheckRequest only_attributes;
  only_attributes.mutable_attributes();  // present but empty: evaluated, nothing matches
  expect_denied(call(only_attributes));
  EXPECT_EQ(stat("malformed_requests"), 2);
  EXPECT_EQ(stat("denied"), 3);
}

TEST_F(ExtAuthzServiceTest, UpdateSwapsThePolicyForNewCalls) {
  auto request = http_request("spiffe://example.org/frontend", "POST", "/api/items");
  expect_denied(call(request));
  config::ErrorList errors;
  auto next = parse(R"(
ext_authz_server:
  address: {pipe: {path: /tmp/unused.sock}}
  rules: {action: DENY, policies: {no-deletes: {permissions: [{header: {name: ":method", string_match: {exact: DELETE}}}], principals: [{any: true}]}}}
)", errors);
  ASSERT_TRUE(next) << errors.format();
  service_->update(next->policy);
  expect_allowed(call(request));
  EXPECT_EQ(stat("policy_updates"), 1);
}

TEST_F(ExtAuthzServiceTest, AuditRecordsNameDecisionPolicyPrincipalAndDestinationButNoQuery) {
  call(http_request("spiffe://example.org/frontend", "GET", "/api/items?token=secret"));
  call(http_request("spiffe://example.org/frontend", "PUT", "/api/items"));
  std::string text = audit_text();
  std::istringstream lines(text);
  std::string allow, deny;
  std::getline(lines, allow);
  std::getline(lines, deny);
  EXPECT_NE(allow.find(R"("listener":"ext_authz_server.t")"), std::string::npos) << allow;
  EXPECT_NE(allow.find(R"("peer_address":"10.1.2.3:41000")"), std::string::npos) << allow;
  EXPECT_NE(allow.find(R"("peer_spiffe_id":"spiffe://example.org/frontend")"), std::string::npos) << allow;
  EXPECT_NE(allow.find(R"("decision":"allow","policy":"frontend-reads-api")"), std::string::npos) << allow;
  EXPECT_NE(allow.find("destination 10.9.9.9:8080; GET api.example.org/api/items\""), std::string::npos) << allow;
  EXPECT_EQ(text.find("secret"), std::string::npos);
  EXPECT_NE(deny.find(R"("decision":"deny","policy":"")"), std::string::npos) << deny;
  EXPECT_NE(deny.find("rbac ALLOW: no policy matched"), std::string::npos) << deny;
}

TEST_F(ExtAuthzServiceTest, StatNamesUnderThePrefix) {
  for (const char* leaf : {"allowed", "denied", "logged", "malformed_requests", "policy_updates", "shadow_allowed",
                           "shadow_denied"}) {
    EXPECT_EQ(stat(leaf), 0) << leaf;
  }
  EXPECT_NE(stats_.render_prometheus().find("envoy_ext_authz_server_prefix=\"t\""), std::string::npos);
}

TEST(ExtAuthzConfigTest, ReportsErrorsWithLocations) {
  config::ErrorList errors;
  auto c = parse(R"(
ext_authz_server:
  stat_prefix: ""
  rulez: {}
  rules: {action: MAYBE}
)", errors);
  EXPECT_FALSE(c);
  std::string text = errors.format();
  EXPECT_NE(text.find("c.yaml:3:3: ext_authz_server.address: missing required field"), std::string::npos) << text;
  EXPECT_NE(text.find("rulez: unknown field"), std::string::npos) << text;
  EXPECT_NE(text.find("stat_prefix must not be empty"), std::string::npos) << text;
}

TEST(ExtAuthzConfigTest, FixedPartIgnoresRules) {
  config::ErrorList errors;
  auto a = parse("ext_authz_server: {address: {pipe: {path: /a}}, rules: {policies: {}}}", errors);
  auto b = parse("ext_authz_server: {address: {pipe: {path: /a}}, rules: {action: DENY, policies: {}}}", errors);
  auto c = parse("ext_authz_server: {address: {pipe: {path: /b}}, rules: {policies: {}}}", errors);
  ASSERT_TRUE(a && b && c) << errors.format();
  EXPECT_EQ(a->fixed, b->fixed);
  EXPECT_NE(a->fixed, c->fixed);
}

}  // namespace
}  // namespace portcullis::filters
