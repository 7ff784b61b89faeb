#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "attest/kernel/kernel_stats.h"
#include "attest/kernel/sock_diag.h"
#include "common/result.h"

namespace portcullis::attest::kernel {

// SocketOwnerLimits bound one /proc scan: the cost of a lookup grows with the processes and file
// descriptors on the host, so both are capped (config: max_proc_scan, max_fd_scan).
struct SocketOwnerLimits {
  size_t max_processes = 4096;
  size_t max_fds = 65536;
  size_t cache_size = 1024;  // inode -> pid entries
};

// SocketOwner names the process found holding one of the wanted sockets.
struct SocketOwner {
  pid_t pid = 0;
  TcpSocketInfo socket;
};

// SocketOwnerFinder finds the process that holds a socket inode by reading /proc/*/fd links
// ("socket:[INODE]"). The first holder in /proc order (ascending PID, so a parent before the
// children that inherited the socket) wins. With `same_uid_only` a process is only read when its
// /proc directory belongs to the socket's uid, and in a second pass to root (non-dumpable
// processes show up as root), which skips most of a busy host's processes without missing a
// holder the attestor would accept; a holder of the socket's own uid wins over a root-looking one. Found owners are cached by inode and re-checked (the PID still holds that inode) before
// reuse, which makes a listener's repeated lookups cheap. A client's every connection is a new
// inode, so before a full scan the last few owners found are asked whether they hold it (reading
// only their own fds): a process that keeps connecting costs O(its fds), not O(the host's fds) —
// the full walk measured ~1.5 us per fd, 18 ms per connection next to 10,000 open files. When a
// socket has several holders (fork or fd passing after connect), a recent owner therefore wins
// over a lower PID; both hold the very socket and pass the same uid check.
// Thread-safe; scans run outside the lock.
// The PID returned may die at any moment: the caller turns it into a pidfd and verifies.
class SocketOwnerFinder {
 public:
  SocketOwnerFinder(SocketOwnerLimits limits, KernelAttestStats& stats, std::string proc_root = "/proc")
      : limits_(limits), stats_(stats), proc_root_(std::move(proc_root)) {}

  // find fails with kNotFound when no scanned process holds any of `sockets`, and with
  // kResourceExhausted when the scan limits were reached first.
  Result<SocketOwner> find(const std::vector<TcpSocketInfo>& sockets, bool same_uid_only);

  // holds reports whether `pid` has a file descriptor on socket `inode` (reads at most max_fds links).
  bool holds(pid_t pid, uint64_t inode) const;

 private:
  std::optional<SocketOwner> cached(const std::vector<TcpSocketInfo>& sockets);
  std::optional<SocketOwner> recent_owner(const std::vector<TcpSocketInfo>& sockets);
  void remember(const SocketOwner& owner);

  static constexpr size_t kRecentOwners = 8;

  const SocketOwnerLimits limits_;
  KernelAttestStats& stats_;
  const std::string proc_root_;
  std::mutex mu_;
  std::map<uint64_t, pid_t> cache_;
  std::deque<uint64_t> order_;
  std::deque<pid_t> recent_;  // the last owners found, most recent first
};

}  // namespace portcullis::attest::kernel
