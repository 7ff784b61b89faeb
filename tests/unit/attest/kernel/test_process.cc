#include "test_process.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace portcullis::attest::kernel::testing {

std::unique_ptr<TestProcess> TestProcess::spawn(const std::vector<std::string>& argv) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2 failed";
    return nullptr;
  }
  // argv is built before fork: the child of a threaded process may only make async-signal-safe calls.
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) {
    ADD_FAILURE() << "fork failed";
    return nullptr;
  }
  if (pid == 0) {
    ::dup2(pipefd[1], 1);  // dup2 clears O_CLOEXEC on the copy
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(pipefd[1]);
  auto p = std::unique_ptr<TestProcess>(new TestProcess());
  p->pid_ = pid;
  p->stdout_ = pipefd[0];
  p->pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  EXPECT_GE(p->pidfd_, 0) << "pidfd_open of a child we have not reaped";
  return p;
}

TestProcess::~TestProcess() {
  kill_and_reap();
  if (pidfd_ >= 0) ::close(pidfd_);
  if (stdout_ >= 0) ::close(stdout_);
}

void TestProcess::kill_and_reap() {
  if (reaped_ || pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  reaped_ = true;
}

std::string TestProcess::read_line(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (size_t nl = buffered_.find('\n'); nl != std::string::npos) {
      std::string line = buffered_.substr(0, nl);
      buffered_.erase(0, nl + 1);
      return line;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return "";
    pollfd p{stdout_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return "";
    char buf[256];
    ssize_t n = ::read(stdout_, buf, sizeof(buf));
    if (n <= 0) return "";
    buffered_.append(buf, static_cast<size_t>(n));
  }
}

bool TestProcess::wait_for_exe(const std::string& path, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string link = "/proc/" + std::to_string(pid_) + "/exe";
  while (std::chrono::steady_clock::now() < deadline) {
    char buf[PATH_MAX];
    ssize_t n = ::readlink(link.c_str(), buf, sizeof(buf));
    if (n > 0 && std::string(buf, static_cast<size_t>(n)) == path) return true;
    ::usleep(2000);
  }
  return false;
}

std::vector<std::string> as_uid(unsigned uid, std::vector<std::string> command) {
  std::vector<std::string> out{"/usr/bin/setpriv", "--reuid", std::to_string(uid), "--regid", std::to_string(uid),
                               "--clear-groups"};
  out.insert(out.end(), command.begin(), command.end());
  return out;
}

std::vector<std::string> python(const std::string& script, std::vector<std::string> args) {
  std::vector<std::string> out{kPython, "-c", script};
  out.insert(out.end(), args.begin(), args.end());
  return out;
}

std::string read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string real_path(const std::string& path) {
  char buf[PATH_MAX];
  return ::realpath(path.c_str(), buf) ? std::string(buf) : path;
}

}  // namespace portcullis::attest::kernel::testing
