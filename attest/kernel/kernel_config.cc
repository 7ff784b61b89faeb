#include "attest/kernel/kernel_config.h"

#include <limits>

namespace portcullis::attest::kernel {

std::optional<KernelAttestorOptions> parse_kernel_attestor_options(const config::Node& node, config::ErrorList& errors) {
  KernelAttestorOptions out;
  if (node.is_null()) return out;
  size_t before = errors.size();
  constexpr uint64_t kMax = std::numeric_limits<uint32_t>::max();
  config::MapReader r(node, errors);
  r.uint("max_exe_hash_bytes", 1, std::numeric_limits<int64_t>::max(), &out.max_exe_hash_bytes);
  r.uint("exe_hash_cache_size", 0, kMax, &out.exe_hash_cache_size);
  r.uint("cache_size", 0, kMax, &out.cache_size);
  r.uint("max_proc_scan", 1, kMax, &out.max_proc_scan);
  r.uint("max_fd_scan", 1, kMax, &out.max_fd_scan);
  r.uint("inode_cache_size", 0, kMax, &out.inode_cache_size);
  r.boolean("require_socket_uid_match", &out.require_socket_uid_match);
  r.finish();
  if (errors.size() != before) return std::nullopt;
  return out;
}

std::optional<WorkloadAttestationConfig> parse_workload_attestation(const config::Node& node, config::ErrorList& errors) {
  size_t before = errors.size();
  WorkloadAttestationConfig out;
  config::MapReader r(node, errors);
  if (auto kernel = r.get("kernel")) {
    out.kernel = parse_kernel_attestor_options(*kernel, errors);
  } else if (r.valid() && node.yaml()["kernel"]) {
    out.kernel = KernelAttestorOptions{};  // `kernel: {}` or `kernel:` (null) enables it with defaults
  }
  r.finish();
  if (errors.size() != before) return std::nullopt;
  return out;
}

}  // namespace portcullis::attest::kernel
