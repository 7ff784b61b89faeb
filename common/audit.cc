#include "common/audit.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace portcullis {
namespace {

const std::string kGenesisHash(64, '0');

std::string rfc3339_micros(std::chrono::system_clock::time_point t) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(us / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%06lldZ", static_cast<long long>(us % 1000000));
  return buf;
}

}  // namespace

AuditStats AuditStats::create(StatsStore& store) {
  StatScope scope{"audit", "", ""};
  return AuditStats{PORTCULLIS_AUDIT_STATS(PORTCULLIS_MAKE_COUNTER, PORTCULLIS_MAKE_GAUGE)};
}

std::string format_audit_line(std::chrono::system_clock::time_point time, const AuditRecord& r,
                              const std::string& prev_sha256) {
  nlohmann::ordered_json j;
  j["time"] = rfc3339_micros(time);
  j["connection_id"] = r.connection_id;
  j["listener"] = r.listener;
  j["peer_address"] = r.peer_address;
  j["peer_spiffe_id"] = r.peer_spiffe_id;
  j["cert_serial"] = r.cert_serial;
  j["decision"] = r.decision;
  j["policy"] = r.policy;
  j["reason"] = r.reason;
  if (r.caller_pid) j["caller_pid"] = *r.caller_pid;
  if (r.caller_uid) j["caller_uid"] = *r.caller_uid;
  if (r.caller_gid) j["caller_gid"] = *r.caller_gid;
  j["prev_sha256"] = prev_sha256;
  // Invalid UTF-8 from a peer (e.g. in a SAN) is replaced rather than aborting the dump.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {

// last_line returns the final line of an existing file (without its newline), or "".
std::string last_line(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return "";
  std::streamoff size = in.tellg();
  std::streamoff start = std::max<std::streamoff>(0, size - 64 * 1024);  // records are far smaller
  in.seekg(start);
  std::string tail(static_cast<size_t>(size - start), '\0');
  in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
  while (!tail.empty() && tail.back() == '\n') tail.pop_back();
  size_t nl = tail.rfind('\n');
  return nl == std::string::npos ? (start == 0 ? tail : "") : tail.substr(nl + 1);
}

}  // namespace

Result<std::unique_ptr<AuditLog>> AuditLog::create(std::vector<AuditSinkConfig> sinks, size_t queue_limit,
                                                   StatsStore& stats) {
  std::unique_ptr<AuditLog> log(new AuditLog(std::move(sinks), queue_limit, stats));
  // A restarted sidecar appends to its old file: continue that file's chain rather than start anew.
  for (const auto& sink : log->sinks_) {
    if (sink.kind != AuditSinkConfig::Kind::kFile) continue;
    if (std::string last = last_line(sink.path); !last.empty()) log->prev_hash_ = sha256_hex(last);
    break;
  }
  if (Status s = log->open_files(); !s.ok()) return s.error();
  log->writer_ = std::thread([raw = log.get()] { raw->run(); });
  return log;
}

AuditLog::AuditLog(std::vector<AuditSinkConfig> sinks, size_t queue_limit, StatsStore& stats)
    : sinks_(std::move(sinks)), queue_limit_(queue_limit), stats_(AuditStats::create(stats)), prev_hash_(kGenesisHash) {}

AuditLog::~AuditLog() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  for (size_t i = 0; i < fds_.size(); ++i) {
    if (sinks_[i].kind == AuditSinkConfig::Kind::kFile && fds_[i] >= 0) ::close(fds_[i]);
  }
}

Status AuditLog::open_files() {
  std::vector<int> fds;
  for (const auto& sink : sinks_) {
    if (sink.kind == AuditSinkConfig::Kind::kStdout) {
      fds.push_back(STDOUT_FILENO);
      continue;
    }
    int fd = ::open(sink.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
      for (size_t i = 0; i < fds.size(); ++i) {
        if (sinks_[i].kind == AuditSinkConfig::Kind::kFile) ::close(fds[i]);
      }
      return make_error(ErrorCode::kIo, "cannot open audit log " + sink.path + ": " + std::strerror(errno));
    }
    fds.push_back(fd);
  }
  for (size_t i = 0; i < fds_.size(); ++i) {
    if (sinks_[i].kind == AuditSinkConfig::Kind::kFile && fds_[i] >= 0) ::close(fds_[i]);
  }
  fds_ = std::move(fds);
  return {};
}

void AuditLog::record(AuditRecord record) {
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= queue_limit_) {
      stats_.dropped.inc();
      return;
    }
    queue_.emplace_back(std::chrono::system_clock::now(), std::move(record));
    stats_.queue_depth.set(static_cast<int64_t>(queue_.size()));
  }
  cv_.notify_one();
}

void AuditLog::reopen() {
  {
    std::lock_guard lock(mu_);
    reopen_requested_ = true;
  }
  cv_.notify_one();
}

void AuditLog::flush() {
  std::unique_lock lock(mu_);
  drained_.wait(lock, [this] { return (queue_.empty() && !busy_) || stopping_; });
}

bool AuditLog::write_line(const std::string& line) {
  bool ok = true;
  for (int fd : fds_) {
    const char* p = line.data();
    size_t left = line.size();
    while (left > 0) {
      ssize_t n = ::write(fd, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        stats_.write_errors.inc();
        ok = false;
        break;
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
  }
  return ok;
}

void AuditLog::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stopping_ || reopen_requested_ || !queue_.empty(); });
    if (reopen_requested_) {
      reopen_requested_ = false;
      lock.unlock();
      if (Status s = open_files(); !s.ok()) spdlog::error("audit: {}", s.error().message);
      else stats_.reopened.inc();
      lock.lock();
    }
    if (queue_.empty()) {
      drained_.notify_all();
      if (stopping_) return;
      continue;
    }
    auto batch = std::move(queue_);
    queue_.clear();
    stats_.queue_depth.set(0);
    busy_ = true;
    lock.unlock();
    std::string out;
    for (auto& [time, rec] : batch) {
      std::string line = format_audit_line(time, rec, prev_hash_);
      prev_hash_ = sha256_hex(line);
      out += line;
      out += '\n';
    }
    if (write_line(out)) stats_.written.inc(batch.size());
    lock.lock();
    busy_ = false;
    if (queue_.empty()) drained_.notify_all();
  }
}

Result<size_t> verify_audit_chain(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(ErrorCode::kIo, "cannot read " + path);
  std::string line, prev_line;
  size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("prev_sha256") || !j["prev_sha256"].is_string()) {
      return make_error(ErrorCode::kInvalidArgument, path + ":" + std::to_string(n) + ": not an audit record");
    }
    // The first line of a file anchors the chain (its predecessor may be in a rotated-away file).
    if (n > 1 && j["prev_sha256"].get<std::string>() != sha256_hex(prev_line)) {
      return make_error(ErrorCode::kInvalidArgument,
                        path + ":" + std::to_string(n) + ": hash chain broken (line " + std::to_string(n - 1) +
                            " was changed, or a line was removed or inserted before line " + std::to_string(n) + ")");
    }
    prev_line = std::move(line);
  }
  return n;
}

}  // namespace portcullis
