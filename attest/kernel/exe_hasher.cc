#include "attest/kernel/exe_hasher.h"

#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace portcullis::attest::kernel {
namespace {

std::string to_hex(const uint8_t* data, size_t len) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(2 * len, '0');
  for (size_t i = 0; i < len; ++i) {
    out[2 * i] = kHex[data[i] >> 4];
    out[2 * i + 1] = kHex[data[i] & 15];
  }
  return out;
}

}  // namespace

Result<ExeFileKey> exe_file_key(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return make_error(ErrorCode::kIo, std::string("fstat of executable: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return make_error(ErrorCode::kInvalidArgument, "executable is not a regular file");
  ExeFileKey key;
  key.dev = st.st_dev;
  key.ino = st.st_ino;
  key.size = st.st_size;
  key.mtime_sec = st.st_mtim.tv_sec;
  key.mtime_nsec = st.st_mtim.tv_nsec;
  key.ctime_sec = st.st_ctim.tv_sec;
  key.ctime_nsec = st.st_ctim.tv_nsec;
  return key;
}

Result<std::string> ExeHasher::hash(int fd) {
  auto key = exe_file_key(fd);
  if (!key.ok()) {
    stats_.exe_hash_failures.inc();
    return key.error();
  }
  {
    std::lock_guard lock(mu_);
    if (auto it = cache_.find(*key); it != cache_.end()) {
      stats_.exe_hash_cache_hits.inc();
      return it->second;
    }
  }
  auto digest = compute(fd, *key);
  if (!digest.ok()) return digest;
  std::lock_guard lock(mu_);
  if (cache_size_ == 0) return digest;
  if (cache_.emplace(*key, *digest).second) {
    order_.push_back(*key);
    while (cache_.size() > cache_size_) {
      cache_.erase(order_.front());
      order_.pop_front();
    }
  }
  return digest;
}

Result<std::string> ExeHasher::compute(int fd, const ExeFileKey& key) {
  if (static_cast<uint64_t>(key.size) > max_bytes_) {
    stats_.exe_hash_too_large.inc();
    return make_error(ErrorCode::kResourceExhausted, "executable is " + std::to_string(key.size) +
                                                         " bytes, more than max_exe_hash_bytes (" +
                                                         std::to_string(max_bytes_) + ")");
  }
  stats_.exe_hash_computations.inc();
  SHA256_CTX ctx;
  SHA256_Init(&ctx);
  std::vector<uint8_t> buf(256 * 1024);
  uint64_t offset = 0;
  for (;;) {
    ssize_t n = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      stats_.exe_hash_failures.inc();
      return make_error(ErrorCode::kIo, std::string("reading executable: ") + std::strerror(errno));
    }
    if (n == 0) break;
    offset += static_cast<uint64_t>(n);
    if (offset > max_bytes_) {  // grew past the limit while we read
      stats_.exe_hash_too_large.inc();
      return make_error(ErrorCode::kResourceExhausted, "executable grew past max_exe_hash_bytes while hashed");
    }
    SHA256_Update(&ctx, buf.data(), static_cast<size_t>(n));
  }
  // A write during the read would make the digest describe no version of the file.
  auto after = exe_file_key(fd);
  if (!after.ok() || *after != key || static_cast<int64_t>(offset) != key.size) {
    stats_.exe_hash_failures.inc();
    return make_error(ErrorCode::kUnavailable, "executable changed while it was being hashed");
  }
  uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256_Final(digest, &ctx);
  return to_hex(digest, sizeof(digest));
}

size_t ExeHasher::cached() const {
  std::lock_guard lock(mu_);
  return cache_.size();
}

}  // namespace portcullis::attest::kernel
