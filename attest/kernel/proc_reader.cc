#include "attest/kernel/proc_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <optional>
#include <cstring>

namespace portcullis::attest::kernel {
namespace {

Error proc_error(pid_t pid, const char* what, int err) {
  // ESRCH/ENOENT through a pinned /proc/PID fd mean the process has been reaped.
  ErrorCode code = (err == ESRCH || err == ENOENT) ? ErrorCode::kNotFound : ErrorCode::kIo;
  return make_error(code, "/proc/" + std::to_string(pid) + "/" + what + ": " + std::strerror(err));
}

template <typename T>
bool parse_number(std::string_view text, T* out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size();
}

// field_tokens splits on spaces and tabs, skipping empties.
std::vector<std::string_view> field_tokens(std::string_view text) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
    size_t start = i;
    while (i < text.size() && text[i] != ' ' && text[i] != '\t' && text[i] != '\n') ++i;
    if (i > start) out.push_back(text.substr(start, i - start));
    if (i < text.size() && text[i] == '\n') break;
  }
  return out;
}

// status_line returns the value of "Key:\t..." in /proc/PID/status, or nullopt.
std::optional<std::string_view> status_line(std::string_view status, std::string_view key) {
  size_t pos = 0;
  while (pos < status.size()) {
    size_t end = status.find('\n', pos);
    if (end == std::string_view::npos) end = status.size();
    std::string_view line = status.substr(pos, end - pos);
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ':') {
      return line.substr(key.size() + 1);
    }
    pos = end + 1;
  }
  return std::nullopt;
}

template <typename T>
Result<std::pair<T, T>> real_and_effective(std::string_view status, std::string_view key) {
  auto line = status_line(status, key);
  if (!line) return make_error(ErrorCode::kInvalidArgument, "status has no " + std::string(key) + " line");
  auto tokens = field_tokens(*line);
  T real{}, effective{};
  if (tokens.size() < 2 || !parse_number(tokens[0], &real) || !parse_number(tokens[1], &effective)) {
    return make_error(ErrorCode::kInvalidArgument, "status " + std::string(key) + " line is malformed");
  }
  return std::pair<T, T>{real, effective};
}

}  // namespace

Result<uint64_t> parse_stat_start_time(std::string_view stat) {
  size_t close = stat.rfind(')');
  if (close == std::string_view::npos) return make_error(ErrorCode::kInvalidArgument, "stat has no ')' after comm");
  auto tokens = field_tokens(stat.substr(close + 1));
  // tokens[0] is field 3 (state), so field 22 is tokens[19].
  constexpr size_t kStartTimeIndex = 22 - 3;
  uint64_t start = 0;
  if (tokens.size() <= kStartTimeIndex || !parse_number(tokens[kStartTimeIndex], &start)) {
    return make_error(ErrorCode::kInvalidArgument, "stat field 22 (starttime) is missing or malformed");
  }
  return start;
}

Result<ProcCredentials> parse_status_credentials(std::string_view status) {
  auto uids = real_and_effective<uid_t>(status, "Uid");
  if (!uids.ok()) return uids.error();
  auto gids = real_and_effective<gid_t>(status, "Gid");
  if (!gids.ok()) return gids.error();
  ProcCredentials out;
  out.real_uid = uids->first;
  out.effective_uid = uids->second;
  out.real_gid = gids->first;
  out.effective_gid = gids->second;
  auto groups = status_line(status, "Groups");
  if (!groups) return make_error(ErrorCode::kInvalidArgument, "status has no Groups line");
  for (std::string_view token : field_tokens(*groups)) {
    gid_t g = 0;
    if (!parse_number(token, &g)) return make_error(ErrorCode::kInvalidArgument, "status Groups line is malformed");
    out.groups.push_back(g);
  }
  return out;
}

std::string parse_cgroup_v2_path(std::string_view cgroup) {
  size_t pos = 0;
  while (pos < cgroup.size()) {
    size_t end = cgroup.find('\n', pos);
    if (end == std::string_view::npos) end = cgroup.size();
    std::string_view line = cgroup.substr(pos, end - pos);
    if (line.substr(0, 3) == "0::") return std::string(line.substr(3));
    pos = end + 1;
  }
  return {};
}

Result<ProcDir> ProcDir::open(pid_t pid, const std::string& proc_root) {
  if (pid <= 0) return make_error(ErrorCode::kInvalidArgument, "invalid pid " + std::to_string(pid));
  std::string path = proc_root + "/" + std::to_string(pid);
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return proc_error(pid, "", errno);
  return ProcDir(pid, UniqueFd(fd));
}

Result<std::string> ProcDir::read_file(const char* name, size_t max_bytes) const {
  int fd = ::openat(dir_.get(), name, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return proc_error(pid_, name, errno);
  UniqueFd file(fd);
  std::string out;
  char buf[4096];
  while (out.size() < max_bytes) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return proc_error(pid_, name, errno);
    }
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
  return make_error(ErrorCode::kResourceExhausted,
                    "/proc/" + std::to_string(pid_) + "/" + name + " is larger than " + std::to_string(max_bytes) + " bytes");
}

Result<uint64_t> ProcDir::start_time() const {
  auto text = read_file("stat");
  if (!text.ok()) return text.error();
  // An empty read through a pinned fd means the task is gone.
  if (text->empty()) return proc_error(pid_, "stat", ESRCH);
  return parse_stat_start_time(*text);
}

Result<ProcCredentials> ProcDir::credentials() const {
  auto text = read_file("status");
  if (!text.ok()) return text.error();
  if (text->empty()) return proc_error(pid_, "status", ESRCH);
  return parse_status_credentials(*text);
}

Result<std::string> ProcDir::cgroup_v2_path() const {
  auto text = read_file("cgroup");
  if (!text.ok()) return text.error();
  return parse_cgroup_v2_path(*text);
}

Result<std::string> ProcDir::exe_path() const {
  char buf[4096];
  ssize_t n = ::readlinkat(dir_.get(), "exe", buf, sizeof(buf));
  if (n < 0) return proc_error(pid_, "exe", errno);
  if (static_cast<size_t>(n) == sizeof(buf)) return make_error(ErrorCode::kInvalidArgument, "exe path too long");
  return std::string(buf, static_cast<size_t>(n));
}

Result<UniqueFd> ProcDir::open_exe() const {
  int fd = ::openat(dir_.get(), "exe", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return proc_error(pid_, "exe", errno);
  return UniqueFd(fd);
}

}  // namespace portcullis::attest::kernel
