#include "attest/kernel/socket_owner.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <set>

#include "attest/kernel/pidfd.h"

namespace portcullis::attest::kernel {
namespace {

// DirCloser closes a DIR* (fdopendir takes the fd over).
struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};
using UniqueDir = std::unique_ptr<DIR, DirCloser>;

UniqueDir open_dir_at(int parent, const char* name) {
  int fd = ::openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  DIR* d = ::fdopendir(fd);
  if (!d) ::close(fd);
  return UniqueDir(d);
}

bool parse_pid(const char* name, pid_t* out) {
  size_t len = std::strlen(name);
  auto [end, ec] = std::from_chars(name, name + len, *out);
  return ec == std::errc() && end == name + len && *out > 0;
}

// socket_inode_of parses a /proc/PID/fd link target "socket:[12345]"; 0 when it is no socket.
uint64_t socket_inode_of(int fd_dir, const char* entry) {
  char target[64];
  ssize_t n = ::readlinkat(fd_dir, entry, target, sizeof(target));
  constexpr std::string_view kPrefix = "socket:[";
  if (n <= static_cast<ssize_t>(kPrefix.size()) + 1 || std::string_view(target, kPrefix.size()) != kPrefix ||
      target[n - 1] != ']') {
    return 0;
  }
  uint64_t inode = 0;
  auto [end, ec] = std::from_chars(target + kPrefix.size(), target + n - 1, inode);
  return ec == std::errc() && end == target + n - 1 ? inode : 0;
}

// FdScan walks one process's fd table, charging every link read to a shared budget.
struct FdScan {
  size_t& budget;
  // first_match returns the first wanted inode the process holds, or 0.
  uint64_t first_match(int proc_dir, const char* pid_name, const std::set<uint64_t>& wanted) {
    std::string fd_path = std::string(pid_name) + "/fd";
    UniqueDir dir = open_dir_at(proc_dir, fd_path.c_str());
    if (!dir) return 0;  // exited, or a kernel thread
    while (dirent* e = ::readdir(dir.get())) {
      if (e->d_name[0] == '.') continue;
      if (budget == 0) return 0;
      --budget;
      uint64_t inode = socket_inode_of(::dirfd(dir.get()), e->d_name);
      if (inode != 0 && wanted.count(inode)) return inode;
    }
    return 0;
  }
};

}  // namespace

Result<SocketOwner> SocketOwnerFinder::find(const std::vector<TcpSocketInfo>& sockets, bool same_uid_only) {
  if (sockets.empty()) return make_error(ErrorCode::kInvalidArgument, "no socket to find an owner for");
  if (auto hit = cached(sockets)) {
    stats_.inode_cache_hits.inc();
    return *hit;
  }
  if (auto hit = recent_owner(sockets)) {
    stats_.recent_owner_hits.inc();
    remember(*hit);
    return *hit;
  }
  std::set<uint64_t> wanted;
  std::set<uid_t> socket_uids;
  for (const auto& s : sockets) {
    wanted.insert(s.inode);
    socket_uids.insert(s.uid);
  }
  // Two passes: the sockets' own uids first, then root's processes (non-dumpable processes show
  // up as root in /proc). A host's big root daemons then cost nothing when an unprivileged
  // workload connects (bench: 10,000 fds in one root process added 18 ms per first contact).
  std::vector<std::set<uid_t>> passes;
  if (!same_uid_only) {
    passes.push_back({});  // empty: every process
  } else {
    passes.push_back(socket_uids);
    if (!socket_uids.contains(0)) passes.push_back({0});
  }
  size_t processes = 0;
  size_t fd_budget = limits_.max_fds;
  FdScan scan{fd_budget};
  bool exhausted = false;
  for (const auto& uids : passes) {
    UniqueDir proc = open_dir_at(AT_FDCWD, proc_root_.c_str());
    if (!proc) return make_error(ErrorCode::kIo, "cannot open " + proc_root_ + ": " + std::strerror(errno));
    stats_.proc_scans.inc();
    while (dirent* e = ::readdir(proc.get())) {
      pid_t pid = 0;
      if (!parse_pid(e->d_name, &pid)) continue;
      if (processes == limits_.max_processes || fd_budget == 0) {
        exhausted = true;
        break;
      }
      struct stat st {};
      if (!uids.empty() && (::fstatat(::dirfd(proc.get()), e->d_name, &st, 0) != 0 || !uids.count(st.st_uid))) continue;
      ++processes;
      uint64_t inode = scan.first_match(::dirfd(proc.get()), e->d_name, wanted);
      if (inode == 0) continue;
      stats_.proc_fds_scanned.inc(limits_.max_fds - fd_budget);
      SocketOwner owner{pid, {}};
      for (const auto& s : sockets) {
        if (s.inode == inode) owner.socket = s;
      }
      remember(owner);
      return owner;
    }
    if (exhausted) break;
  }
  stats_.proc_fds_scanned.inc(limits_.max_fds - fd_budget);
  if (exhausted) {
    return make_error(ErrorCode::kResourceExhausted,
                      "socket owner not found within the scan limits (max_proc_scan " + std::to_string(limits_.max_processes) +
                          ", max_fd_scan " + std::to_string(limits_.max_fds) + ")");
  }
  return make_error(ErrorCode::kNotFound, "no process holds socket inode " + std::to_string(*wanted.begin()));
}

bool SocketOwnerFinder::holds(pid_t pid, uint64_t inode) const {
  UniqueDir proc = open_dir_at(AT_FDCWD, proc_root_.c_str());
  if (!proc) return false;
  size_t budget = limits_.max_fds;
  FdScan scan{budget};
  return scan.first_match(::dirfd(proc.get()), std::to_string(pid).c_str(), {inode}) == inode;
}

std::optional<SocketOwner> SocketOwnerFinder::cached(const std::vector<TcpSocketInfo>& sockets) {
  for (const auto& s : sockets) {
    pid_t pid = 0;
    {
      std::lock_guard lock(mu_);
      auto it = cache_.find(s.inode);
      if (it == cache_.end()) continue;
      pid = it->second;
    }
    if (holds(pid, s.inode)) return SocketOwner{pid, s};
    std::lock_guard lock(mu_);
    cache_.erase(s.inode);  // its order_ slot is dropped lazily on eviction
  }
  return std::nullopt;
}

std::optional<SocketOwner> SocketOwnerFinder::recent_owner(const std::vector<TcpSocketInfo>& sockets) {
  std::vector<pid_t> candidates;
  {
    std::lock_guard lock(mu_);
    candidates.assign(recent_.begin(), recent_.end());
  }
  for (pid_t pid : candidates) {
    for (const auto& s : sockets) {
      if (holds(pid, s.inode)) return SocketOwner{pid, s};
    }
  }
  return std::nullopt;
}

void SocketOwnerFinder::remember(const SocketOwner& owner) {
  {
    // Most recent first; a PID already listed moves to the front.
    std::lock_guard lock(mu_);
    std::erase(recent_, owner.pid);
    recent_.push_front(owner.pid);
    if (recent_.size() > kRecentOwners) recent_.pop_back();
  }
  if (limits_.cache_size == 0) return;
  std::lock_guard lock(mu_);
  if (!cache_.insert_or_assign(owner.socket.inode, owner.pid).second) return;
  order_.push_back(owner.socket.inode);
  while (cache_.size() > limits_.cache_size || order_.size() > 2 * limits_.cache_size) {
    cache_.erase(order_.front());
    order_.pop_front();
  }
}

}  // namespace portcullis::attest::kernel
