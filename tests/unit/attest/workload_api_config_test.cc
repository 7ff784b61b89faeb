// Where the Workload API listens: the config block, --workload-api-socket, $SPIFFE_ENDPOINT_SOCKET.
#include "attest/workload_api/workload_api_config.h"

#include <gtest/gtest.h>

#include "config/yaml_file.h"

namespace portcullis::attest {
namespace {

struct Resolved {
  std::optional<WorkloadApiConfig> config;
  std::vector<std::string> errors;
};

Resolved resolve(const std::string& yaml, WorkloadApiEndpointSources sources, bool has_identity = true) {
  config::ErrorList errors;
  std::optional<config::Node> block;
  std::optional<config::Node> root;
  if (!yaml.empty()) {
    root = config::load_yaml_text(yaml, "w.yaml", errors);
    EXPECT_TRUE(root);
    config::MapReader r(*root, errors);
    block = r.get("workload_api");
  }
  Resolved out;
  out.config = resolve_workload_api_config(block, sources, has_identity, errors);
  for (const auto& e : errors.errors()) out.errors.push_back(e.format());
  return out;
}

TEST(WorkloadApiConfig, NotServedWithoutBlockOrFlagEvenWhenTheEnvIsSet) {
  auto r = resolve("", {"", "unix:///tmp/agent.sock"});
  EXPECT_FALSE(r.config);
  EXPECT_TRUE(r.errors.empty());
}

TEST(WorkloadApiConfig, ConfigAddressWinsOverFlagAndEnv) {
  auto r = resolve("workload_api: {address: {pipe: {path: /tmp/cfg.sock}}}\n",
                   {"unix:///tmp/flag.sock", "unix:///tmp/env.sock"});
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->address.pipe()->path, "/tmp/cfg.sock");
  EXPECT_EQ(r.config->address_source, "config");
}

TEST(WorkloadApiConfig, FlagThenEnvWhenTheBlockHasNoAddress) {
  auto r = resolve("workload_api: {}\n", {"tcp://127.0.0.1:8000", "unix:///tmp/env.sock"});
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->address.socket()->to_string(), "127.0.0.1:8000");
  EXPECT_EQ(r.config->address_source, "--workload-api-socket");
  r = resolve("workload_api: {}\n", {"", "unix:///tmp/env.sock"});
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->address.pipe()->path, "/tmp/env.sock");
  EXPECT_EQ(r.config->address_source, "SPIFFE_ENDPOINT_SOCKET");
}

TEST(WorkloadApiConfig, FlagAloneEnablesIt) {
  auto r = resolve("", {"unix:///tmp/flag.sock", ""});
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->address.pipe()->path, "/tmp/flag.sock");
}

TEST(WorkloadApiConfig, BadUrisAreErrorsNamingTheirSource) {
  auto r = resolve("workload_api: {}\n", {"", "tcp://localhost:1"});
  EXPECT_FALSE(r.config);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0],
            "SPIFFE_ENDPOINT_SOCKET: workload_api.address: invalid SPIFFE endpoint URI 'tcp://localhost:1': host must "
            "be an IP address");
  r = resolve("", {"unix://host/x", ""});
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].rfind("--workload-api-socket: workload_api.address: ", 0), 0u) << r.errors[0];
}

TEST(WorkloadApiConfig, NeedsAnAddressAndAnIdentity) {
  auto r = resolve("workload_api: {}\n", {}, /*has_identity=*/false);
  EXPECT_FALSE(r.config);
  EXPECT_EQ(r.errors, (std::vector<std::string>{
                          "w.yaml:1:15: workload_api.address: missing required field (or pass --workload-api-socket "
                          "or set SPIFFE_ENDPOINT_SOCKET)",
                          "w.yaml:1:15: workload_api: the Workload API serves the identity block's SVIDs: add an "
                          "identity block"}));
}

}  // namespace
}  // namespace portcullis::attest
