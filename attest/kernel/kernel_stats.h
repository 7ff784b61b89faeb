#pragma once

#include "common/stats.h"
#include "common/stats_macros.h"

namespace portcullis::attest::kernel {

// `workload_attestation.kernel.` stats: every lookup, each failure by reason, the caches and the
// executable hashing work.
#define PORTCULLIS_KERNEL_ATTEST_STATS(COUNTER, GAUGE) \
  COUNTER(cache_evictions)                             \
  COUNTER(cache_hits)                                  \
  COUNTER(cache_stale)                                 \
  GAUGE(cached_processes)                              \
  COUNTER(exe_hash_cache_hits)                         \
  COUNTER(exe_hash_computations)                       \
  COUNTER(exe_hash_failures)                           \
  COUNTER(exe_hash_too_large)                          \
  COUNTER(failures_credentials_changed)                \
  COUNTER(failures_invalid_input)                      \
  COUNTER(failures_no_socket)                          \
  COUNTER(failures_owner_not_found)                    \
  COUNTER(failures_proc_read)                          \
  COUNTER(failures_process_exited)                     \
  COUNTER(failures_scan_limit)                         \
  COUNTER(failures_sock_diag)                          \
  COUNTER(failures_start_time_mismatch)                \
  COUNTER(inode_cache_hits)                            \
  COUNTER(lookups_pidfd)                               \
  COUNTER(lookups_tcp_listener)                        \
  COUNTER(lookups_tcp_peer)                            \
  COUNTER(lookups_unix_peer)                           \
  COUNTER(peer_pidfd_fallbacks)                        \
  COUNTER(proc_fds_scanned)                            \
  COUNTER(proc_scans)                                  \
  COUNTER(recent_owner_hits)

struct KernelAttestStats {
  PORTCULLIS_KERNEL_ATTEST_STATS(PORTCULLIS_DECLARE_COUNTER, PORTCULLIS_DECLARE_GAUGE)
  static KernelAttestStats create(StatsStore& store) {
    StatScope scope{"workload_attestation", "", ""};
    const std::string prefix = "kernel.";
    return KernelAttestStats{
        PORTCULLIS_KERNEL_ATTEST_STATS(PORTCULLIS_MAKE_PREFIXED_COUNTER, PORTCULLIS_MAKE_PREFIXED_GAUGE)};
  }
};

}  // namespace portcullis::attest::kernel
