// The attested `identity:` block through mtls::parse_identity_config, as the proxy parses it.
// Error wording and locations are covered by tests/unit/proxy/testdata/config_errors.yaml.
#include "attest/agent/agent_config.h"

#include <gtest/gtest.h>

#include "config/yaml_file.h"

namespace portcullis::attest::agent {
namespace {

struct Parsed {
  std::optional<mtls::IdentityConfig> identity;
  std::optional<AgentConfig> agent;
  std::string errors;
};

Parsed parse(const std::string& yaml) {
  config::ErrorList errors;
  Parsed out;
  auto root = config::load_yaml_text(yaml, "t.yaml", errors);
  if (root) {
    config::MapReader r(*root, errors);
    if (auto id = r.get("identity")) {
      out.identity = mtls::parse_identity_config(*id, errors, [&](config::MapReader& reader, const mtls::IdentityConfig& c) {
        out.agent = parse_agent_config(reader, c);
      });
    }
  }
  out.errors = errors.format();
  return out;
}

TEST(AgentConfig, RemoteAuthorityWithDefaults) {
  auto p = parse(R"(
identity:
  trust_domain: example.org
  authority:
    address: {socket_address: {address: 10.0.0.5, port_value: 8081}}
    bootstrap_bundle: {filename: /etc/portcullis/bundle.pem}
  node_attestation: {join_token: {token: s3cret}}
  workload_attestation: {kernel: {}}
)");
  ASSERT_TRUE(p.identity) << p.errors;
  ASSERT_TRUE(p.agent) << p.errors;
  EXPECT_EQ(p.identity->source, mtls::IdentitySource::kAttested);
  ASSERT_TRUE(p.agent->authority);
  EXPECT_EQ(p.agent->authority->address.to_string(), "10.0.0.5:8081");
  EXPECT_EQ(p.agent->authority->bootstrap_bundle.filename, "/etc/portcullis/bundle.pem");
  EXPECT_EQ(p.agent->authority->server_spiffe_id, "spiffe://example.org/portcullis/authority");
  EXPECT_EQ(p.agent->join_token, "s3cret");
  EXPECT_FALSE(p.agent->embedded);
  EXPECT_DOUBLE_EQ(p.agent->rotate_at, 0.5);
  EXPECT_EQ(p.agent->limits.backoff_initial, std::chrono::milliseconds(200));
  EXPECT_EQ(p.agent->limits.backoff_max, std::chrono::milliseconds(30000));
  EXPECT_DOUBLE_EQ(p.agent->limits.rotate_jitter, 0.1);
}

TEST(AgentConfig, KernelAttestorLimitsReachTheAgent) {
  auto p = parse(R"(
identity:
  trust_domain: example.org
  embedded_authority: {data_dir: /var/lib/portcullis}
  workload_attestation:
    kernel: {require_socket_uid_match: false, max_fd_scan: 10, cache_size: 7}
)");
  ASSERT_TRUE(p.agent) << p.errors;
  EXPECT_FALSE(p.agent->kernel.require_socket_uid_match);
  EXPECT_EQ(p.agent->kernel.max_fd_scan, 10u);
  EXPECT_EQ(p.agent->kernel.cache_size, 7u);
  EXPECT_EQ(p.agent->kernel.max_proc_scan, attest::kernel::KernelAttestorOptions{}.max_proc_scan);
}

TEST(AgentConfig, KernelAttestorTypoIsAnError) {
  auto p = parse(R"(
identity:
  trust_domain: example.org
  embedded_authority: {data_dir: /var/lib/portcullis}
  workload_attestation:
    kernel: {max_fd_scann: 10}
)");
  EXPECT_FALSE(p.agent);
  EXPECT_NE(p.errors.find("max_fd_scann"), std::string::npos) << p.errors;
}

TEST(AgentConfig, EmbeddedAuthorityAndLimits) {
  auto p = parse(R"(
identity:
  trust_domain: example.org
  embedded_authority: {data_dir: /var/lib/pc, entries_file: /etc/pc/entries.yaml}
  rotate_at: 0.6
  unattested_fallback: spiffe://example.org/legacy
  limits: {backoff_initial: 100ms, backoff_max: 5s, max_workloads: 10, initial_csrs: 3, unmatched_retry: 2s}
  jwt_svid: {clock_skew: 5s}
)");
  ASSERT_TRUE(p.agent) << p.errors;
  ASSERT_TRUE(p.agent->embedded);
  EXPECT_EQ(p.agent->embedded->data_dir, "/var/lib/pc");
  EXPECT_EQ(p.agent->embedded->entries_file, "/etc/pc/entries.yaml");
  EXPECT_DOUBLE_EQ(p.agent->rotate_at, 0.6);
  EXPECT_EQ(p.agent->unattested_fallback, "spiffe://example.org/legacy");
  EXPECT_EQ(p.agent->limits.backoff_max, std::chrono::seconds(5));
  EXPECT_EQ(p.agent->limits.max_workloads, 10u);
  EXPECT_EQ(p.agent->limits.initial_csrs, 3u);
  EXPECT_EQ(p.agent->limits.unmatched_retry, std::chrono::seconds(2));
  EXPECT_EQ(p.identity->jwt_clock_skew, std::chrono::seconds(5)) << "jwt_svid stays mtls's";
}

TEST(AgentConfig, WithoutAnAttestedParserTheSourceIsRefused) {
  config::ErrorList errors;
  auto root = config::load_yaml_text("identity: {trust_domain: example.org, embedded_authority: {data_dir: /x}}\n",
                                     "t.yaml", errors);
  ASSERT_TRUE(root);
  config::MapReader r(*root, errors);
  EXPECT_FALSE(mtls::parse_identity_config(*r.get("identity"), errors));
  EXPECT_NE(errors.format().find("an attested identity source is not available here"), std::string::npos)
      << errors.format();
}

}  // namespace
}  // namespace portcullis::attest::agent
