// `workload_attestation: {kernel: {...}}` parsing: defaults, every field, located errors.
#include "attest/kernel/kernel_config.h"

#include <gtest/gtest.h>

#include "config/yaml_file.h"

namespace portcullis::attest::kernel {
namespace {

struct Parsed {
  std::optional<WorkloadAttestationConfig> config;
  std::string errors;
};

Parsed parse(const std::string& yaml) {
  config::ErrorList errors;
  auto root = config::load_yaml_text(yaml, "k.yaml", errors);
  EXPECT_TRUE(root);
  config::MapReader r(*root, errors);
  Parsed out;
  if (auto block = r.get("workload_attestation", true)) out.config = parse_workload_attestation(*block, errors);
  r.finish();
  out.errors = errors.format();
  return out;
}

TEST(KernelConfig, EmptyKernelBlockEnablesDefaults) {
  for (const char* yaml : {"workload_attestation: {kernel: {}}\n", "workload_attestation:\n  kernel:\n"}) {
    auto p = parse(yaml);
    ASSERT_TRUE(p.config) << p.errors;
    ASSERT_TRUE(p.config->kernel) << yaml;
    EXPECT_EQ(p.config->kernel->cache_size, KernelAttestorOptions{}.cache_size);
    EXPECT_TRUE(p.config->kernel->require_socket_uid_match);
  }
  auto none = parse("workload_attestation: {}\n");
  ASSERT_TRUE(none.config) << none.errors;
  EXPECT_FALSE(none.config->kernel);
}

TEST(KernelConfig, EveryField) {
  auto p = parse(
      "workload_attestation:\n  kernel:\n    max_exe_hash_bytes: 1000\n    exe_hash_cache_size: 7\n    cache_size: 9\n"
      "    max_proc_scan: 11\n    max_fd_scan: 13\n    inode_cache_size: 0\n    require_socket_uid_match: false\n");
  ASSERT_TRUE(p.config && p.config->kernel) << p.errors;
  const auto& k = *p.config->kernel;
  EXPECT_EQ(k.max_exe_hash_bytes, 1000u);
  EXPECT_EQ(k.exe_hash_cache_size, 7u);
  EXPECT_EQ(k.cache_size, 9u);
  EXPECT_EQ(k.max_proc_scan, 11u);
  EXPECT_EQ(k.max_fd_scan, 13u);
  EXPECT_EQ(k.inode_cache_size, 0u);
  EXPECT_FALSE(k.require_socket_uid_match);
}

TEST(KernelConfig, ErrorsAreLocatedAndAllReported) {
  auto p = parse("workload_attestation:\n  kernel:\n    max_proc_scan: 0\n    cache_sise: 3\n    max_fd_scan: lots\n");
  EXPECT_FALSE(p.config);
  EXPECT_NE(p.errors.find("k.yaml:3:"), std::string::npos) << p.errors;
  EXPECT_NE(p.errors.find("workload_attestation.kernel.max_proc_scan"), std::string::npos) << p.errors;
  EXPECT_NE(p.errors.find("cache_sise"), std::string::npos) << p.errors;
  EXPECT_NE(p.errors.find("max_fd_scan"), std::string::npos) << p.errors;
  auto unknown = parse("workload_attestation: {tpm: {}}\n");
  EXPECT_FALSE(unknown.config);
  EXPECT_NE(unknown.errors.find("tpm"), std::string::npos) << unknown.errors;
}

}  // namespace
}  // namespace portcullis::attest::kernel
