#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "attest/kernel/exe_hasher.h"
#include "attest/kernel/exit_watcher.h"
#include "attest/kernel/kernel_config.h"
#include "attest/kernel/kernel_stats.h"
#include "attest/kernel/pidfd.h"
#include "attest/kernel/process_attributes.h"
#include "attest/kernel/proc_reader.h"
#include "attest/kernel/socket_owner.h"
#include "common/result.h"
#include "common/stats.h"

namespace portcullis::attest::kernel {

// Attestation is one live process as the kernel described it: its attributes, their selectors
// (sorted, deduplicated) and its pidfd, held so the caller can keep watching that very process
// (ExitWatcher) until it drops the last reference. Immutable.
struct Attestation {
  std::shared_ptr<const ProcessAttributes> attributes;
  std::vector<std::string> selectors;
  std::shared_ptr<const UniquePidfd> pidfd;
};

// KernelAttestor identifies the process behind a socket or pidfd and reads its attributes from
// /proc, PID-reuse safe: it works from a pidfd (which never names another process), reads /proc
// through a /proc/PID directory fd, and only answers when the pidfd still shows the process alive
// and its start time unchanged after the reads. An exited or replaced process is an error
// (kNotFound, "exited"), never another process's identity.
//
// Decisions are cached per process, keyed by (PID, start time), and re-used only while the
// cheap facts (credentials, executable file, cgroup) are unchanged: an exec or setuid() after the
// first attestation re-attests. Entries leave the cache when the process exits (an internal
// ExitWatcher) or, beyond `cache_size`, oldest first.
//
// Limits: a process holding a socket created under another uid is refused when
// require_socket_uid_match (the default); the same uid can hand its socket to any of its
// processes, so selectors finer than the uid (path, sha256) only separate processes of mutually
// distrusting uids. Thread-safe; every call blocks on /proc and netlink (microseconds to a few
// milliseconds; a socket-owner scan is bounded by max_proc_scan/max_fd_scan).
class KernelAttestor {
 public:
  static Result<std::unique_ptr<KernelAttestor>> create(KernelAttestorOptions options, StatsStore& stats);

  // attest_pidfd attests the process of a borrowed pidfd (dup'ed inside). A pidfd that came with a
  // socket (SO_PEERPIDFD) must come with the socket's uid too (SO_PEERCRED, fixed at connect):
  // the process may have exec'd a setuid binary since, while a child it forked keeps talking on
  // the socket; require_socket_uid_match refuses it as attest_unix_peer does.
  Result<Attestation> attest_pidfd(int pidfd, std::optional<uid_t> socket_uid = std::nullopt);
  // attest_unix_peer attests the peer of a connected AF_UNIX socket: SO_PEERPIDFD, or on kernels
  // without it SO_PEERCRED's PID + pidfd_open + start-time re-check.
  Result<Attestation> attest_unix_peer(int socket_fd);
  // attest_tcp_peer attests the process on the other end of a TCP connection in this network
  // namespace. `local` is the address the peer connected to (for a transparently redirected
  // connection: the original destination), `remote` the peer's address; the peer's socket is the
  // one whose local address is `remote`.
  Result<Attestation> attest_tcp_peer(const sockaddr_storage& local, const sockaddr_storage& remote);
  // attest_tcp_listener attests the process listening on `address` (exact bind preferred over a
  // wildcard one). Several distinct listening processes (SO_REUSEPORT) yield the lowest PID.
  Result<Attestation> attest_tcp_listener(const sockaddr_storage& address);

  // open_pidfd_at_start_time opens a pidfd for `pid` and proves it is the process whose start
  // time was read earlier (kFailedPrecondition "start time mismatch" when the PID was recycled).
  static Result<UniquePidfd> open_pidfd_at_start_time(pid_t pid, uint64_t expected_start_time,
                                                      const std::string& proc_root = "/proc");

  size_t cached_processes() const;
  const KernelAttestStats& stats() const { return stats_; }

 private:
  // Facts are the cheap /proc reads done on every attestation; equal facts make a cache hit.
  struct Facts {
    uint64_t start_time = 0;
    ProcCredentials credentials;
    std::string exe_path;
    std::optional<ExeFileKey> exe_key;
    std::string cgroup_path;
    bool operator==(const Facts&) const = default;
  };
  struct Entry {
    Facts facts;
    Attestation attestation;
    uint64_t watch_id = 0;
    uint64_t sequence = 0;
  };
  using Key = std::pair<pid_t, uint64_t>;

  KernelAttestor(KernelAttestorOptions options, KernelAttestStats stats, std::unique_ptr<ExitWatcher> watcher);
  Result<Attestation> attest_owned(std::shared_ptr<const UniquePidfd> pidfd, std::optional<uid_t> socket_uid);
  Result<Attestation> attest_socket_holder(const std::vector<TcpSocketInfo>& sockets);
  enum class Failure { kCredentialsChanged, kInvalidInput, kNoSocket, kOwnerNotFound, kProcRead, kProcessExited,
                       kScanLimit, kSockDiag, kStartTimeMismatch };
  Result<Attestation> fail(Failure reason, Error error);
  Result<Attestation> fail_proc(const ProcDir& dir, const UniquePidfd& pidfd, Error error);
  Result<Facts> read_facts(const ProcDir& dir, UniqueFd* out_exe);
  Result<Attestation> cached(const Key& key, const Facts& facts);
  Attestation build(const ProcDir& dir, const Facts& facts, UniqueFd exe, std::shared_ptr<const UniquePidfd> pidfd);
  void remember(const Key& key, const Facts& facts, const Attestation& attestation);
  void forget(const Key& key, const UniquePidfd* pidfd);

  const KernelAttestorOptions options_;
  KernelAttestStats stats_;
  ExeHasher hasher_;
  SocketOwnerFinder owners_;
  mutable std::mutex mu_;
  std::map<Key, Entry> cache_;
  uint64_t sequence_ = 0;
  std::unique_ptr<ExitWatcher> watcher_;  // last: joined first, while the cache still exists
};

}  // namespace portcullis::attest::kernel
