#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/digest.h"
#include "common/result.h"
#include "common/stats.h"
#include "common/stats_macros.h"

namespace portcullis {

// AuditRecord is one access decision: a connection allowed or denied, or a failed handshake.
struct AuditRecord {
  uint64_t connection_id = 0;
  std::string listener;
  std::string peer_address;
  std::string peer_spiffe_id;  // empty: unauthenticated
  std::string cert_serial;
  std::string decision;        // "allow", "deny", "handshake_failed"
  std::string policy;          // the matched policy, if any
  std::string reason;
  // The local process a record is about, from its socket's peer credentials (SO_PEERCRED): set
  // by the Workload API when it issues an SVID; absent (and not written) elsewhere.
  std::optional<int32_t> caller_pid;
  std::optional<uint32_t> caller_uid;
  std::optional<uint32_t> caller_gid;
};

struct AuditSinkConfig {
  enum class Kind { kFile, kStdout };
  Kind kind;
  std::string path;
};

// Stats under `audit.`.
#define PORTCULLIS_AUDIT_STATS(COUNTER, GAUGE) \
  COUNTER(dropped)                             \
  COUNTER(reopened)                            \
  COUNTER(write_errors)                        \
  COUNTER(written)                             \
  GAUGE(queue_depth)

struct AuditStats {
  PORTCULLIS_AUDIT_STATS(PORTCULLIS_DECLARE_COUNTER, PORTCULLIS_DECLARE_GAUGE)
  static AuditStats create(StatsStore& store);
};

// AuditLog writes AuditRecords as JSON lines to its sinks from a background thread. Every line
// carries `prev_sha256`, the SHA-256 of the previous line, so deleting or editing a line breaks
// the chain (`portcullis audit verify`). record() never blocks: it queues, and when the bounded
// queue is full the record is dropped and counted. Thread-safe.
class AuditLog {
 public:
  static constexpr size_t kDefaultQueueLimit = 65536;

  static Result<std::unique_ptr<AuditLog>> create(std::vector<AuditSinkConfig> sinks, size_t queue_limit,
                                                  StatsStore& stats);
  ~AuditLog();

  void record(AuditRecord record);
  // reopen closes and reopens file sinks (SIGUSR1, after logrotate moved them).
  void reopen();
  // flush waits until everything queued so far is written. For shutdown and tests.
  void flush();

 private:
  AuditLog(std::vector<AuditSinkConfig> sinks, size_t queue_limit, StatsStore& stats);
  Status open_files();
  void run();
  bool write_line(const std::string& line);

  std::vector<AuditSinkConfig> sinks_;
  std::vector<int> fds_;  // parallel to sinks_; owned by the writer thread after start
  size_t queue_limit_;
  AuditStats stats_;
  std::string prev_hash_;  // one chain: with several file sinks, the first file's tail seeds it

  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable drained_;
  std::deque<std::pair<std::chrono::system_clock::time_point, AuditRecord>> queue_;
  bool reopen_requested_ = false;
  bool stopping_ = false;
  bool busy_ = false;
  std::thread writer_;
};

// format_audit_line renders one record as a JSON object (no newline).
std::string format_audit_line(std::chrono::system_clock::time_point time, const AuditRecord& record,
                              const std::string& prev_sha256);

// verify_audit_chain checks a file's hash chain: every line's prev_sha256 must equal the SHA-256 of
// the line before it. Returns the number of lines checked, or an error naming the first bad line.
Result<size_t> verify_audit_chain(const std::string& path);

}  // namespace portcullis
