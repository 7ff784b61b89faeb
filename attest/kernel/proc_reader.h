#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "attest/kernel/pidfd.h"
#include "common/result.h"

namespace portcullis::attest::kernel {

// ProcCredentials are the credential lines of /proc/PID/status.
struct ProcCredentials {
  uid_t real_uid = 0, effective_uid = 0;
  gid_t real_gid = 0, effective_gid = 0;
  std::vector<gid_t> groups;  // supplementary, as the kernel lists them

  bool operator==(const ProcCredentials&) const = default;
};

// Pure parsers of /proc text, exposed for tests. Each fails with kInvalidArgument naming the field.
// parse_stat_start_time returns field 22 (starttime, clock ticks since boot); the command name in
// field 2 may contain spaces and parentheses, so fields are counted after the last ')'.
Result<uint64_t> parse_stat_start_time(std::string_view stat);
Result<ProcCredentials> parse_status_credentials(std::string_view status);
// parse_cgroup_v2_path returns the path of the unified hierarchy ("0::PATH" line); empty when
// the process is in no v2 hierarchy (a pure cgroup v1 host).
std::string parse_cgroup_v2_path(std::string_view cgroup);

// ProcDir is an open /proc/PID directory. The directory fd pins the process it was opened for:
// once that process is reaped every read through it fails, even if the PID is reused, so reads
// through one ProcDir never mix two processes. Pair it with a pidfd check (see KernelAttestor) to
// know it is the pidfd's process. Move-only; not thread-safe.
class ProcDir {
 public:
  // open fails with kNotFound when there is no such process.
  static Result<ProcDir> open(pid_t pid, const std::string& proc_root = "/proc");

  pid_t pid() const { return pid_; }
  int fd() const { return dir_.get(); }

  // Each read fails with kNotFound once the process is gone.
  Result<uint64_t> start_time() const;
  Result<ProcCredentials> credentials() const;
  Result<std::string> cgroup_v2_path() const;
  // exe_path is readlink(exe): the path the kernel recorded at exec, " (deleted)" appended when
  // the file was unlinked since.
  Result<std::string> exe_path() const;
  // open_exe opens the executable file itself (not the path, which may have been replaced).
  Result<UniqueFd> open_exe() const;
  // read_file reads a small file of the directory, at most `max_bytes`.
  Result<std::string> read_file(const char* name, size_t max_bytes = 64 * 1024) const;

 private:
  ProcDir(pid_t pid, UniqueFd dir) : pid_(pid), dir_(std::move(dir)) {}
  pid_t pid_ = 0;
  UniqueFd dir_;
};

}  // namespace portcullis::attest::kernel
