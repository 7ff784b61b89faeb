#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "config/errors.h"
#include "config/node.h"

namespace portcullis::attest::kernel {

// KernelAttestorOptions are the limits of kernel workload attestation, from
//
//   workload_attestation:
//     kernel:
//       max_exe_hash_bytes: 536870912   # executables above this get no unix:sha256 selector
//       exe_hash_cache_size: 1024       # hashed executables remembered (by dev+inode+mtime+ctime+size)
//       cache_size: 4096                # attested processes remembered (evicted on exit)
//       max_proc_scan: 65536            # processes read per socket-owner scan
//       max_fd_scan: 1048576            # fd links read per socket-owner scan
//       inode_cache_size: 1024          # socket inode -> owner PID entries
//       require_socket_uid_match: true  # refuse a process whose euid differs from the socket's uid
//
// Every field is optional. Immutable after parsing.
struct KernelAttestorOptions {
  uint64_t max_exe_hash_bytes = 512ull << 20;
  uint64_t exe_hash_cache_size = 1024;
  uint64_t cache_size = 4096;
  uint64_t max_proc_scan = 65536;
  uint64_t max_fd_scan = 1u << 20;
  uint64_t inode_cache_size = 1024;
  // A socket keeps the uid of the process that created it; a holder whose effective uid differs
  // got it by inheritance or fd passing (e.g. exec of a setuid binary after connect()), and must
  // not lend the socket its identity.
  bool require_socket_uid_match = true;
  std::string proc_root = "/proc";  // not configurable: tests and containers with a host /proc mount
};

// parse_kernel_attestor_options reads the `kernel:` map (null = all defaults). Every problem goes
// into `errors` with its location; nullopt when there was any.
std::optional<KernelAttestorOptions> parse_kernel_attestor_options(const config::Node& node, config::ErrorList& errors);

// WorkloadAttestationConfig is the `workload_attestation:` block; `kernel` is set when the block
// names it. More attestors (TPM-backed, ...) join here.
struct WorkloadAttestationConfig {
  std::optional<KernelAttestorOptions> kernel;
};

std::optional<WorkloadAttestationConfig> parse_workload_attestation(const config::Node& node, config::ErrorList& errors);

}  // namespace portcullis::attest::kernel
