#include "attest/kernel/pidfd.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <string>

namespace portcullis::attest::kernel {
namespace {

// glibc 2.36 has no pidfd_open wrapper; the syscalls exist since Linux 5.3.
int sys_pidfd_open(pid_t pid, unsigned flags) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, flags)); }
int sys_pidfd_send_signal(int pidfd, int sig) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

std::string errno_text(int err) { return std::strerror(err); }

}  // namespace

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.release();
  }
  return *this;
}

int UniqueFd::release() {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

Result<UniquePidfd> pidfd_open_pid(pid_t pid) {
  if (pid <= 0) return make_error(ErrorCode::kInvalidArgument, "pidfd_open: invalid pid " + std::to_string(pid));
  int fd = sys_pidfd_open(pid, 0);
  if (fd < 0) {
    int err = errno;
    ErrorCode code = err == ESRCH ? ErrorCode::kNotFound : ErrorCode::kIo;
    return make_error(code, "pidfd_open(" + std::to_string(pid) + "): " + errno_text(err));
  }
  // pidfd_open sets O_CLOEXEC itself.
  return UniquePidfd(fd);
}

Result<UniquePidfd> dup_pidfd(int pidfd) {
  int fd = ::fcntl(pidfd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return make_error(ErrorCode::kInvalidArgument, "dup of pidfd " + std::to_string(pidfd) + ": " + errno_text(errno));
  return UniquePidfd(fd);
}

Result<pid_t> pid_of_pidfd(int pidfd) {
  std::string path = "/proc/self/fdinfo/" + std::to_string(pidfd);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(ErrorCode::kInvalidArgument, path + ": " + errno_text(errno));
  char buf[1024];
  ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
  ::close(fd);
  if (n <= 0) return make_error(ErrorCode::kIo, "reading " + path + " failed");
  std::string_view text(buf, static_cast<size_t>(n));
  size_t at = text.find("\nPid:\t");
  if (at == std::string_view::npos) {
    return make_error(ErrorCode::kInvalidArgument, "fd " + std::to_string(pidfd) + " is not a pidfd");
  }
  std::string_view rest = text.substr(at + 6);
  int value = 0;
  auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), value);
  if (ec != std::errc()) return make_error(ErrorCode::kInvalidArgument, "unparsable Pid line in " + path);
  if (value == -1) return make_error(ErrorCode::kNotFound, "the process of pidfd " + std::to_string(pidfd) + " has exited");
  if (value == 0) {
    return make_error(ErrorCode::kInvalidArgument, "the process of pidfd " + std::to_string(pidfd) +
                                                       " is in a PID namespace this process cannot see");
  }
  return static_cast<pid_t>(value);
}

bool pidfd_alive(int pidfd) {
  pollfd p{pidfd, POLLIN, 0};
  int r = ::poll(&p, 1, 0);
  if (r != 0) return false;  // readable (exited), or poll failed: either way not provably alive
  // EPERM still proves the process exists; only ESRCH means it is gone.
  return sys_pidfd_send_signal(pidfd, 0) == 0 || errno == EPERM;
}

}  // namespace portcullis::attest::kernel
