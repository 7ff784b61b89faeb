#include "attest/authority/ca_files.h"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "mtls/ssl_error.h"

namespace portcullis::attest::authority {
namespace {

Error io_error(const std::string& what, int err) { return make_error(ErrorCode::kIo, what + ": " + std::strerror(err)); }

// UniqueFd closes a descriptor on every return path.
class UniqueFd {
 public:
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

std::string random_suffix() {
  uint8_t bytes[8];
  RAND_bytes(bytes, sizeof bytes);
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

}  // namespace

Status ensure_private_dir(const std::string& dir) {
  if (dir.empty()) return make_error(ErrorCode::kInvalidArgument, "data_dir is empty");
  std::error_code ec;
  std::filesystem::path p(dir);
  if (p.has_parent_path() && !std::filesystem::exists(p.parent_path(), ec)) {
    std::filesystem::create_directories(p.parent_path(), ec);
    if (ec) return make_error(ErrorCode::kIo, "cannot create " + p.parent_path().string() + ": " + ec.message());
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return io_error("cannot create " + dir, errno);
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return io_error("cannot stat " + dir, errno);
  if (!S_ISDIR(st.st_mode)) return make_error(ErrorCode::kInvalidArgument, dir + " is not a directory");
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    return make_error(ErrorCode::kPermissionDenied, dir + " is writable by group or others (mode " +
                                                        std::to_string(st.st_mode & 0777) + " decimal); chmod 0700 it");
  }
  return {};
}

Status write_file_atomic(const std::string& path, std::string_view bytes, mode_t mode) {
  const std::string tmp = path + ".tmp-" + random_suffix();
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
  if (fd.get() < 0) return io_error("cannot create " + tmp, errno);
  // The umask may only have removed bits; fchmod makes the mode exactly what was asked.
  bool ok = ::fchmod(fd.get(), mode) == 0;
  size_t done = 0;
  while (ok && done < bytes.size()) {
    ssize_t n = ::write(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) ok = false;
    else done += static_cast<size_t>(n);
  }
  int err = errno;
  if (ok && ::fsync(fd.get()) != 0) ok = false, err = errno;
  if (::close(fd.release()) != 0 && ok) ok = false, err = errno;
  if (ok && ::rename(tmp.c_str(), path.c_str()) != 0) ok = false, err = errno;
  if (!ok) {
    ::unlink(tmp.c_str());
    return io_error("cannot write " + path, err);
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  UniqueFd dfd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd.get() < 0 || ::fsync(dfd.get()) != 0) return io_error("cannot fsync " + dir, errno);
  return {};
}

Result<std::string> read_small_file(const std::string& path, size_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return io_error("cannot open " + path, errno);
  std::string out;
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return io_error("cannot read " + path, errno);
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_bytes) {
      return make_error(ErrorCode::kInvalidArgument, path + " is larger than " + std::to_string(max_bytes) + " bytes");
    }
  }
  return out;
}

Result<bssl::UniquePtr<EVP_PKEY>> parse_private_key_pem(std::string_view pem, const std::string& what) {
  bssl::UniquePtr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  bssl::UniquePtr<EVP_PKEY> key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) return make_error(ErrorCode::kInvalidArgument, what + ": no usable PEM private key: " + mtls::drain_ssl_errors());
  return key;
}

Result<bssl::UniquePtr<EVP_PKEY>> read_private_key_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return io_error("cannot stat " + path, errno);
  if (st.st_mode & 077) {
    return make_error(ErrorCode::kPermissionDenied, path + " is accessible by group or others; a CA key must be mode 0600");
  }
  auto pem = read_small_file(path, 64 * 1024);
  if (!pem.ok()) return pem.error();
  return parse_private_key_pem(*pem, path);
}

Result<std::string> private_key_pem(EVP_PKEY* key) {
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio || !PEM_write_bio_PKCS8PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr)) {
    return make_error(ErrorCode::kInternal, "encoding a private key: " + mtls::drain_ssl_errors());
  }
  const uint8_t* data = nullptr;
  size_t len = 0;
  BIO_mem_contents(bio.get(), &data, &len);
  return std::string(reinterpret_cast<const char*>(data), len);
}

}  // namespace portcullis::attest::authority
