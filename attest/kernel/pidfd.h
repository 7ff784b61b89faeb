#pragma once

#include <sys/types.h>

#include <cstdint>

#include "common/result.h"

namespace portcullis::attest::kernel {

// UniqueFd owns one file descriptor and closes it on destruction. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd();
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release();

 private:
  int fd_ = -1;
};

// UniquePidfd is a UniqueFd holding a pidfd. A pidfd pins the process it was opened for: it never
// starts referring to another process that reuses the PID, which is what makes PID-reuse-safe
// attestation possible.
using UniquePidfd = UniqueFd;

// pidfd_open_pid opens a pidfd (close-on-exec) for `pid`. Fails with kNotFound when no such
// process exists. The PID may already belong to a recycled process: callers check the start time.
Result<UniquePidfd> pidfd_open_pid(pid_t pid);

// dup_pidfd duplicates a borrowed pidfd (close-on-exec) so the copy can outlive the caller's.
Result<UniquePidfd> dup_pidfd(int pidfd);

// pid_of_pidfd reads the PID a pidfd refers to from /proc/self/fdinfo. Fails with kNotFound when
// the process has been reaped (the kernel reports -1) and kInvalidArgument when `pidfd` is not a
// pidfd or its process lives in a PID namespace we cannot see.
Result<pid_t> pid_of_pidfd(int pidfd);

// pidfd_alive is true while the process has not exited: a pidfd becomes readable when its process
// exits (zombies included) and pidfd_send_signal(0) fails once it is gone. Both are checked so an
// exited-but-unreaped process counts as dead too.
bool pidfd_alive(int pidfd);

}  // namespace portcullis::attest::kernel
