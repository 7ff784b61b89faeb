#pragma once

#include <openssl/bio.h>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace portcullis::mtls {

// SocketBio is the BIO a TlsConnection reads and writes its socket fd through. It differs from
// BoringSSL's socket BIO in two ways that cut syscalls on the byte path:
//  - reads take up to kStagingBytes from the socket at once and hand BoringSSL the header and body of
//    each record from that staging buffer (BoringSSL asks for exactly a header, then exactly a body:
//    two recv() per 16 KiB record otherwise);
//  - between begin_batch() and end_batch(), sealed records are gathered and leave in one send(), so
//    a 64 KiB plaintext write is one TCP send instead of four.
// Ciphertext a batch could not send stays here (has_pending_output) and goes out before anything
// else is written. Staging memory comes from a per-thread pool and is held only while it holds bytes,
// so an idle connection holds none. Not thread-safe; lives inside one TlsConnection.
class SocketBio {
 public:
  static constexpr size_t kStagingBytes = 80 * 1024;
  // The most a batch may still need for one more record (16 KiB plaintext + TLS 1.3 overhead).
  static constexpr size_t kMaxRecordBytes = 16 * 1024 + 256;

  explicit SocketBio(int fd);
  ~SocketBio();
  SocketBio(const SocketBio&) = delete;
  SocketBio& operator=(const SocketBio&) = delete;

  // new_bio returns a BIO (one reference, for SSL_set_bio) that reads and writes through this object.
  bssl::UniquePtr<BIO> new_bio();

  // See TlsConnection::skip_read_after_short_read.
  void set_skip_read_after_short_read(bool on) { skip_after_short_read_ = on; }

  void begin_batch();
  size_t batch_room() const;
  // end_batch sends what the batch gathered; returns false on a socket error (errno is kept).
  bool end_batch();

  bool has_pending_output() const { return pending_begin_ < pending_end_; }
  // flush_pending sends held ciphertext: 1 all sent, 0 the socket is full, -1 error (errno kept).
  int flush_pending();

 private:
  struct Buffer {
    std::unique_ptr<uint8_t[]> data;
    explicit operator bool() const { return data != nullptr; }
  };
  static int bio_read(BIO* bio, char* out, int len);
  static int bio_write(BIO* bio, const char* in, int len);
  static long bio_ctrl(BIO* bio, int cmd, long larg, void* parg);
  int read(BIO* bio, uint8_t* out, size_t len);
  int write(BIO* bio, const uint8_t* in, size_t len);
  void keep_unsent(const uint8_t* data, size_t len);

  int fd_;
  Buffer read_;
  uint32_t read_begin_ = 0;
  uint32_t read_end_ = 0;
  bool skip_after_short_read_ = false;
  bool read_queue_empty_ = false;  // the last recv() returned less than asked
  Buffer pending_;
  uint32_t pending_begin_ = 0;
  uint32_t pending_end_ = 0;
  bool batching_ = false;
  size_t batch_len_ = 0;
};

}  // namespace portcullis::mtls
