#include "attest/kernel/kernel_attestor.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "attest/kernel/cgroup_parser.h"
#include "attest/kernel/sock_diag.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77  // Linux 6.5; glibc 2.36's headers predate it
#endif

namespace portcullis::attest::kernel {
namespace {

Error exited(pid_t pid) {
  return make_error(ErrorCode::kNotFound, "process " + std::to_string(pid) + " exited or was replaced during attestation");
}

}  // namespace

Result<std::unique_ptr<KernelAttestor>> KernelAttestor::create(KernelAttestorOptions options, StatsStore& stats) {
  auto watcher = ExitWatcher::create();
  if (!watcher.ok()) return watcher.error();
  return std::unique_ptr<KernelAttestor>(
      new KernelAttestor(std::move(options), KernelAttestStats::create(stats), std::move(*watcher)));
}

KernelAttestor::KernelAttestor(KernelAttestorOptions options, KernelAttestStats stats, std::unique_ptr<ExitWatcher> watcher)
    : options_(std::move(options)),
      stats_(stats),
      hasher_(options_.max_exe_hash_bytes, options_.exe_hash_cache_size, stats_),
      owners_(SocketOwnerLimits{options_.max_proc_scan, options_.max_fd_scan, options_.inode_cache_size}, stats_,
              options_.proc_root),
      watcher_(std::move(watcher)) {}

Result<Attestation> KernelAttestor::attest_pidfd(int pidfd, std::optional<uid_t> socket_uid) {
  stats_.lookups_pidfd.inc();
  auto own = dup_pidfd(pidfd);
  if (!own.ok()) return fail(Failure::kInvalidInput, own.error());
  return attest_owned(std::make_shared<const UniquePidfd>(std::move(*own)), socket_uid);
}

Result<Attestation> KernelAttestor::attest_unix_peer(int socket_fd) {
  stats_.lookups_unix_peer.inc();
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(socket_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return fail(Failure::kInvalidInput, make_error(ErrorCode::kInvalidArgument,
                                                   std::string("SO_PEERCRED: ") + std::strerror(errno)));
  }
  int pidfd = -1;
  len = sizeof(pidfd);
  if (::getsockopt(socket_fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0 && pidfd >= 0) {
    return attest_owned(std::make_shared<const UniquePidfd>(pidfd), cred.uid);
  }
  if (errno == ESRCH) {  // SO_PEERPIDFD knows the peer is gone (since 6.9 it keeps the struct pid)
    return fail(Failure::kProcessExited, exited(cred.pid));
  }
  // Older kernels: the PID from SO_PEERCRED may already be recycled, so tie the pidfd to the
  // start time read before it was opened.
  stats_.peer_pidfd_fallbacks.inc();
  if (cred.pid <= 0) {
    return fail(Failure::kInvalidInput, make_error(ErrorCode::kInvalidArgument, "peer is in another PID namespace"));
  }
  auto dir = ProcDir::open(cred.pid, options_.proc_root);
  if (!dir.ok()) return fail(Failure::kProcessExited, exited(cred.pid));
  auto start = dir->start_time();
  if (!start.ok()) return fail(Failure::kProcessExited, exited(cred.pid));
  auto opened = open_pidfd_at_start_time(cred.pid, *start, options_.proc_root);
  if (!opened.ok()) {
    bool mismatch = opened.error().code == ErrorCode::kFailedPrecondition;
    return fail(mismatch ? Failure::kStartTimeMismatch : Failure::kProcessExited, opened.error());
  }
  return attest_owned(std::make_shared<const UniquePidfd>(std::move(*opened)), cred.uid);
}

Result<Attestation> KernelAttestor::attest_tcp_peer(const sockaddr_storage& local, const sockaddr_storage& remote) {
  stats_.lookups_tcp_peer.inc();
  auto socket = find_tcp_socket(remote, local);  // the peer's own view of the connection
  if (!socket.ok()) {
    Failure reason = socket.error().code == ErrorCode::kNotFound      ? Failure::kNoSocket
                     : socket.error().code == ErrorCode::kInvalidArgument ? Failure::kInvalidInput
                                                                          : Failure::kSockDiag;
    return fail(reason, socket.error());
  }
  return attest_socket_holder({*socket});
}

Result<Attestation> KernelAttestor::attest_tcp_listener(const sockaddr_storage& address) {
  stats_.lookups_tcp_listener.inc();
  auto listeners = find_tcp_listeners(address);
  if (!listeners.ok()) {
    Failure reason = listeners.error().code == ErrorCode::kNotFound      ? Failure::kNoSocket
                     : listeners.error().code == ErrorCode::kInvalidArgument ? Failure::kInvalidInput
                                                                             : Failure::kSockDiag;
    return fail(reason, listeners.error());
  }
  return attest_socket_holder(*listeners);
}

Result<Attestation> KernelAttestor::attest_socket_holder(const std::vector<TcpSocketInfo>& sockets) {
  auto owner = owners_.find(sockets, options_.require_socket_uid_match);
  if (!owner.ok()) {
    bool limit = owner.error().code == ErrorCode::kResourceExhausted;
    return fail(limit ? Failure::kScanLimit : Failure::kOwnerNotFound, owner.error());
  }
  auto pidfd = pidfd_open_pid(owner->pid);
  if (!pidfd.ok()) return fail(Failure::kProcessExited, exited(owner->pid));
  // The PID came from a scan; it is the pidfd's process only if that process, alive after the
  // check, is the one that holds the socket.
  bool holds = owners_.holds(owner->pid, owner->socket.inode);
  if (!holds || !pidfd_alive(pidfd->get())) return fail(Failure::kProcessExited, exited(owner->pid));
  return attest_owned(std::make_shared<const UniquePidfd>(std::move(*pidfd)), owner->socket.uid);
}

Result<UniquePidfd> KernelAttestor::open_pidfd_at_start_time(pid_t pid, uint64_t expected_start_time,
                                                             const std::string& proc_root) {
  auto pidfd = pidfd_open_pid(pid);
  if (!pidfd.ok()) return pidfd.error();
  auto dir = ProcDir::open(pid, proc_root);
  if (!dir.ok()) return exited(pid);
  if (!pidfd_alive(pidfd->get())) return exited(pid);  // alive now: `dir` is the pidfd's process
  auto start = dir->start_time();
  if (!start.ok()) return exited(pid);
  if (*start != expected_start_time) {
    return make_error(ErrorCode::kFailedPrecondition, "start time mismatch for pid " + std::to_string(pid) + " (" +
                                                          std::to_string(*start) + ", expected " +
                                                          std::to_string(expected_start_time) + "): the PID was recycled");
  }
  return std::move(*pidfd);
}

Result<KernelAttestor::Facts> KernelAttestor::read_facts(const ProcDir& dir, UniqueFd* out_exe) {
  Facts facts;
  auto start = dir.start_time();
  if (!start.ok()) return start.error();
  facts.start_time = *start;
  auto credentials = dir.credentials();
  if (!credentials.ok()) return credentials.error();
  facts.credentials = std::move(*credentials);
  auto cgroup = dir.cgroup_v2_path();
  if (!cgroup.ok()) return cgroup.error();
  facts.cgroup_path = std::move(*cgroup);
  auto path = dir.exe_path();
  if (!path.ok()) return path.error();
  facts.exe_path = std::move(*path);
  auto exe = dir.open_exe();
  if (!exe.ok()) return exe.error();
  if (auto key = exe_file_key(exe->get()); key.ok()) facts.exe_key = *key;
  *out_exe = std::move(*exe);
  return facts;
}

Result<Attestation> KernelAttestor::attest_owned(std::shared_ptr<const UniquePidfd> pidfd, std::optional<uid_t> socket_uid) {
  auto pid = pid_of_pidfd(pidfd->get());
  if (!pid.ok()) {
    Failure reason = pid.error().code == ErrorCode::kNotFound ? Failure::kProcessExited : Failure::kInvalidInput;
    return fail(reason, pid.error());
  }
  auto dir = ProcDir::open(*pid, options_.proc_root);
  if (!dir.ok()) return fail(Failure::kProcessExited, exited(*pid));
  // Alive after the directory was opened: the directory is the pidfd's process, and stays so.
  if (!pidfd_alive(pidfd->get())) return fail(Failure::kProcessExited, exited(*pid));
  UniqueFd exe;
  auto facts = read_facts(*dir, &exe);
  if (!facts.ok()) return fail_proc(*dir, *pidfd, facts.error());
  if (options_.require_socket_uid_match && socket_uid && *socket_uid != facts->credentials.effective_uid) {
    return fail(Failure::kCredentialsChanged,
                make_error(ErrorCode::kPermissionDenied,
                           "process " + std::to_string(*pid) + " runs as uid " + std::to_string(facts->credentials.effective_uid) +
                               " but its socket was created by uid " + std::to_string(*socket_uid)));
  }
  Key key{*pid, facts->start_time};
  if (auto hit = cached(key, *facts); hit.ok()) return hit;
  Attestation attestation = build(*dir, *facts, std::move(exe), pidfd);
  // The decision: /proc was read while the process lived, and it still does, unchanged.
  auto start = dir->start_time();
  if (!start.ok() || !pidfd_alive(pidfd->get())) return fail(Failure::kProcessExited, exited(*pid));
  if (*start != facts->start_time) {
    return fail(Failure::kStartTimeMismatch, make_error(ErrorCode::kFailedPrecondition, "start time of pid " +
                                                                                            std::to_string(*pid) + " changed"));
  }
  remember(key, *facts, attestation);
  return attestation;
}

Attestation KernelAttestor::build(const ProcDir& dir, const Facts& facts, UniqueFd exe, std::shared_ptr<const UniquePidfd> pidfd) {
  auto attributes = std::make_shared<ProcessAttributes>();
  attributes->pid = dir.pid();
  attributes->start_time = facts.start_time;
  attributes->uid = facts.credentials.effective_uid;
  attributes->gid = facts.credentials.effective_gid;
  attributes->supplementary_gids = facts.credentials.groups;
  attributes->user = user_name_of(attributes->uid);
  attributes->group = group_name_of(attributes->gid);
  attributes->exe_path = facts.exe_path;
  // No hash (too big, changed while read) means no unix:sha256 selector: entries that require
  // one do not match, which fails closed. Counted by the hasher.
  if (auto digest = hasher_.hash(exe.get()); digest.ok()) attributes->exe_sha256 = std::move(*digest);
  attributes->cgroup_path = facts.cgroup_path;
  KubernetesCgroup k8s = parse_kubernetes_cgroup(facts.cgroup_path);
  attributes->pod_uid = std::move(k8s.pod_uid);
  attributes->container_id = std::move(k8s.container_id);
  Attestation out;
  out.selectors = selectors_of(*attributes);
  out.attributes = std::move(attributes);
  out.pidfd = std::move(pidfd);
  return out;
}

Result<Attestation> KernelAttestor::cached(const Key& key, const Facts& facts) {
  std::lock_guard lock(mu_);
  auto it = cache_.find(key);
  if (it == cache_.end()) return make_error(ErrorCode::kNotFound, "not cached");
  if (it->second.facts != facts) {
    stats_.cache_stale.inc();  // exec, setuid() or a cgroup move since: attest afresh
    return make_error(ErrorCode::kNotFound, "stale");
  }
  if (!pidfd_alive(it->second.attestation.pidfd->get())) return make_error(ErrorCode::kNotFound, "exited");
  stats_.cache_hits.inc();
  return it->second.attestation;
}

void KernelAttestor::remember(const Key& key, const Facts& facts, const Attestation& attestation) {
  if (options_.cache_size == 0) return;
  std::vector<uint64_t> unwatch;
  {
    std::lock_guard lock(mu_);
    if (auto it = cache_.find(key); it != cache_.end()) {
      unwatch.push_back(it->second.watch_id);
      cache_.erase(it);
    }
    while (cache_.size() >= options_.cache_size) {
      auto oldest = cache_.begin();
      for (auto it = cache_.begin(); it != cache_.end(); ++it) {
        if (it->second.sequence < oldest->second.sequence) oldest = it;
      }
      unwatch.push_back(oldest->second.watch_id);
      cache_.erase(oldest);
      stats_.cache_evictions.inc();
    }
    cache_[key] = Entry{facts, attestation, 0, ++sequence_};
    stats_.cached_processes.set(static_cast<int64_t>(cache_.size()));
  }
  for (uint64_t id : unwatch) {
    if (id != 0) watcher_->unwatch(id);
  }
  // Watch outside the lock: the exit callback takes it, and may run before watch() returns.
  const UniquePidfd* raw = attestation.pidfd.get();
  auto id = watcher_->watch(attestation.pidfd, [this, key, raw] { forget(key, raw); });
  std::lock_guard lock(mu_);
  auto it = cache_.find(key);
  if (!id.ok()) {
    if (it != cache_.end() && it->second.attestation.pidfd.get() == raw) cache_.erase(it);  // could not watch: do not keep
    stats_.cached_processes.set(static_cast<int64_t>(cache_.size()));
    return;
  }
  if (it != cache_.end() && it->second.attestation.pidfd.get() == raw) it->second.watch_id = *id;
}

void KernelAttestor::forget(const Key& key, const UniquePidfd* pidfd) {
  std::lock_guard lock(mu_);
  auto it = cache_.find(key);
  if (it != cache_.end() && it->second.attestation.pidfd.get() == pidfd) cache_.erase(it);
  stats_.cached_processes.set(static_cast<int64_t>(cache_.size()));
}

size_t KernelAttestor::cached_processes() const {
  std::lock_guard lock(mu_);
  return cache_.size();
}

Result<Attestation> KernelAttestor::fail_proc(const ProcDir& dir, const UniquePidfd& pidfd, Error error) {
  // A read that failed because the process died is an exit, not a /proc problem.
  if (error.code == ErrorCode::kNotFound || !pidfd_alive(pidfd.get())) return fail(Failure::kProcessExited, exited(dir.pid()));
  error.message = "reading /proc for pid " + std::to_string(dir.pid()) + ": " + error.message;
  return fail(Failure::kProcRead, std::move(error));
}

Result<Attestation> KernelAttestor::fail(Failure reason, Error error) {
  switch (reason) {
    case Failure::kCredentialsChanged: stats_.failures_credentials_changed.inc(); break;
    case Failure::kInvalidInput: stats_.failures_invalid_input.inc(); break;
    case Failure::kNoSocket: stats_.failures_no_socket.inc(); break;
    case Failure::kOwnerNotFound: stats_.failures_owner_not_found.inc(); break;
    case Failure::kProcRead: stats_.failures_proc_read.inc(); break;
    case Failure::kProcessExited: stats_.failures_process_exited.inc(); break;
    case Failure::kScanLimit: stats_.failures_scan_limit.inc(); break;
    case Failure::kSockDiag: stats_.failures_sock_diag.inc(); break;
    case Failure::kStartTimeMismatch: stats_.failures_start_time_mismatch.inc(); break;
  }
  return error;
}

}  // namespace portcullis::attest::kernel
