#pragma once

#include <sys/types.h>

#include <compare>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>

#include "attest/kernel/kernel_stats.h"
#include "common/result.h"

namespace portcullis::attest::kernel {

// ExeFileKey identifies one version of a file's contents without reading it. ctime is included
// next to mtime because mtime can be set back (touch -d) after a rewrite and ctime cannot.
struct ExeFileKey {
  uint64_t dev = 0, ino = 0;
  int64_t size = 0;
  int64_t mtime_sec = 0, mtime_nsec = 0, ctime_sec = 0, ctime_nsec = 0;

  auto operator<=>(const ExeFileKey&) const = default;
};

// exe_file_key fstat()s an open file.
Result<ExeFileKey> exe_file_key(int fd);

// ExeHasher computes the SHA-256 (lowercase hex) of executables, opened through /proc/PID/exe so
// the file the process runs is hashed, not whatever its path names now. Results are cached by
// ExeFileKey (bounded, oldest evicted first); a file that is bigger than `max_bytes` or changes
// while being hashed is refused with an error and counted. Thread-safe; hashing happens outside
// the lock, so two threads may hash the same new file once each.
class ExeHasher {
 public:
  ExeHasher(uint64_t max_bytes, size_t cache_size, KernelAttestStats& stats)
      : max_bytes_(max_bytes), cache_size_(cache_size), stats_(stats) {}

  // hash reads the whole file behind `fd` (with pread: the fd's offset is left alone).
  Result<std::string> hash(int fd);
  size_t cached() const;

 private:
  Result<std::string> compute(int fd, const ExeFileKey& key);

  const uint64_t max_bytes_;
  const size_t cache_size_;
  KernelAttestStats& stats_;
  mutable std::mutex mu_;
  std::map<ExeFileKey, std::string> cache_;
  std::deque<ExeFileKey> order_;  // insertion order, for eviction
};

}  // namespace portcullis::attest::kernel
