#pragma once

// Real child processes for the kernel attestation tests: fork + exec, a pidfd, stdout on a pipe
// (the child prints a line when it is ready), killed and reaped on destruction.
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace portcullis::attest::kernel::testing {

inline constexpr const char* kPython = "/usr/bin/python3";

class TestProcess {
 public:
  // spawn execs argv[0] with argv; nullptr (and a gtest failure) if fork or the pipe fails.
  static std::unique_ptr<TestProcess> spawn(const std::vector<std::string>& argv);
  ~TestProcess();

  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_; }
  // read_line returns the next stdout line, "" on EOF or timeout.
  std::string read_line(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // wait_for_exe waits until /proc/PID/exe is `path` (the exec happened).
  bool wait_for_exe(const std::string& path, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // kill_and_reap sends SIGKILL and waits for the exit; the PID is free afterwards.
  void kill_and_reap();

 private:
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int stdout_ = -1;
  std::string buffered_;
  bool reaped_ = false;
};

// as_uid prefixes a command with setpriv so it runs with that uid and gid and no groups.
std::vector<std::string> as_uid(unsigned uid, std::vector<std::string> command);
// python runs a script with the system python (argv[1..] after the script).
std::vector<std::string> python(const std::string& script, std::vector<std::string> args = {});

// read_file_bytes returns a whole file ("" when unreadable).
std::string read_file_bytes(const std::string& path);
// real_path resolves symlinks.
std::string real_path(const std::string& path);

}  // namespace portcullis::attest::kernel::testing
