#include "mtls/socket_bio.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "mtls/staging_pool.h"

namespace portcullis::mtls {
namespace {

bool would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

const BIO_METHOD* socket_bio_method() {
  static const BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_TYPE_SOCKET, "portcullis socket");
    return m;
  }();
  return method;
}

}  // namespace

SocketBio::SocketBio(int fd) : fd_(fd) {}

SocketBio::~SocketBio() {
  staging_release(std::move(read_.data));
  staging_release(std::move(pending_.data));
}

bssl::UniquePtr<BIO> SocketBio::new_bio() {
  static const bool configured = [] {
    auto* m = const_cast<BIO_METHOD*>(socket_bio_method());
    return m != nullptr && BIO_meth_set_read(m, bio_read) && BIO_meth_set_write(m, bio_write) &&
           BIO_meth_set_ctrl(m, bio_ctrl);
  }();
  if (!configured) return nullptr;
  bssl::UniquePtr<BIO> bio(BIO_new(socket_bio_method()));
  if (!bio) return nullptr;
  BIO_set_data(bio.get(), this);
  BIO_set_init(bio.get(), 1);
  return bio;
}

int SocketBio::bio_read(BIO* bio, char* out, int len) {
  return static_cast<SocketBio*>(BIO_get_data(bio))->read(bio, reinterpret_cast<uint8_t*>(out), static_cast<size_t>(len));
}

int SocketBio::bio_write(BIO* bio, const char* in, int len) {
  return static_cast<SocketBio*>(BIO_get_data(bio))->write(bio, reinterpret_cast<const uint8_t*>(in), static_cast<size_t>(len));
}

long SocketBio::bio_ctrl(BIO* bio, int cmd, long, void*) {
  if (cmd != BIO_CTRL_FLUSH) return 0;
  auto* self = static_cast<SocketBio*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  int r = self->flush_pending();
  if (r == 0) BIO_set_retry_write(bio);
  return r > 0 ? 1 : 0;
}

int SocketBio::read(BIO* bio, uint8_t* out, size_t len) {
  BIO_clear_retry_flags(bio);
  if (read_begin_ == read_end_) {
    if (read_queue_empty_) {
      read_queue_empty_ = false;
      BIO_set_retry_read(bio);
      return -1;
    }
    if (!read_) read_.data = staging_acquire();
    ssize_t n;
    do {
      n = ::recv(fd_, read_.data.get(), kStagingBytes, 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
      staging_release(std::move(read_.data));
      if (n < 0 && would_block(errno)) BIO_set_retry_read(bio);
      return n == 0 ? 0 : -1;
    }
    read_begin_ = 0;
    read_end_ = static_cast<uint32_t>(n);
    read_queue_empty_ = skip_after_short_read_ && static_cast<size_t>(n) < kStagingBytes;
  }
  size_t take = std::min<size_t>(len, read_end_ - read_begin_);
  std::memcpy(out, read_.data.get() + read_begin_, take);
  read_begin_ += static_cast<uint32_t>(take);
  if (read_begin_ == read_end_) {
    read_begin_ = read_end_ = 0;
    staging_release(std::move(read_.data));
  }
  return static_cast<int>(take);
}

int SocketBio::write(BIO* bio, const uint8_t* in, size_t len) {
  BIO_clear_retry_flags(bio);
  if (batching_) {
    size_t take = std::min(len, kStagingBytes - batch_len_);
    if (take == 0) {
      BIO_set_retry_write(bio);
      return -1;
    }
    std::memcpy(staging_scratch() + batch_len_, in, take);
    batch_len_ += take;
    return static_cast<int>(take);
  }
  // Outside a batch (handshake, alerts, close_notify) write through, after anything held back.
  int flushed = flush_pending();
  if (flushed <= 0) {
    if (flushed == 0) BIO_set_retry_write(bio);
    return -1;
  }
  ssize_t n;
  do {
    n = ::send(fd_, in, len, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && would_block(errno)) BIO_set_retry_write(bio);
  return n < 0 ? -1 : static_cast<int>(n);
}

void SocketBio::begin_batch() {
  batching_ = true;
  batch_len_ = 0;
}

size_t SocketBio::batch_room() const { return kStagingBytes - batch_len_; }

bool SocketBio::end_batch() {
  batching_ = false;
  const uint8_t* data = staging_scratch();
  size_t len = batch_len_;
  batch_len_ = 0;
  size_t sent = 0;
  while (sent < len) {
    ssize_t n = ::send(fd_, data + sent, len - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && would_block(errno)) break;
    return false;
  }
  if (sent < len) keep_unsent(data + sent, len - sent);
  return true;
}

void SocketBio::keep_unsent(const uint8_t* data, size_t len) {
  // Only called with nothing pending (a batch starts only then), so it always fits.
  if (!pending_) pending_.data = staging_acquire();
  std::memcpy(pending_.data.get(), data, len);
  pending_begin_ = 0;
  pending_end_ = static_cast<uint32_t>(len);
}

int SocketBio::flush_pending() {
  while (pending_begin_ < pending_end_) {
    ssize_t n = ::send(fd_, pending_.data.get() + pending_begin_, pending_end_ - pending_begin_, MSG_NOSIGNAL);
    if (n > 0) {
      pending_begin_ += static_cast<uint32_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && would_block(errno) ? 0 : -1;
  }
  if (pending_) {
    pending_begin_ = pending_end_ = 0;
    staging_release(std::move(pending_.data));
  }
  return 1;
}

}  // namespace portcullis::mtls
