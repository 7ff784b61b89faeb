#include "proxy/grpc/grpc_server_connection.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <spdlog/spdlog.h>

namespace portcullis::proxy {
namespace {
constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kMaxReadPerWakeup = 256 * 1024;  // then yield to the other connections
constexpr std::chrono::seconds kHandshakeTimeout{10};
using Io = mtls::TlsConnection::Io;
}  // namespace

GrpcServerConnection::GrpcServerConnection(std::shared_ptr<AsioExecutor> executor, int fd,
                                           std::shared_ptr<const GrpcServerShared> shared,
                                           std::shared_ptr<const mtls::TlsContext> tls,
                                           std::unique_ptr<grpc::PeerInfo> peer,
                                           std::function<void(GrpcServerConnection*)> on_closed)
    : executor_(std::move(executor)), socket_(executor_->io(), fd), timer_(executor_->io()),
      shared_(std::move(shared)), tls_context_(std::move(tls)), pending_peer_(std::move(peer)),
      on_closed_(std::move(on_closed)) {
  shared_->stats.connections_total.inc();
  shared_->stats.connections_active.inc();
}

GrpcServerConnection::~GrpcServerConnection() { shared_->stats.connections_active.dec(); }

void GrpcServerConnection::start() {
  if (!tls_context_) return start_session();
  auto tls = mtls::TlsConnection::create(tls_context_, socket_.native_handle());
  if (!tls.ok()) {
    spdlog::error("gRPC server: {}", tls.error().message);
    return close();
  }
  tls_ = std::move(tls.value());
  timer_.expires_after(kHandshakeTimeout);
  timer_.async_wait([self = shared_from_this()](const std::error_code& ec) {
    if (!ec && !self->session_) self->close();
  });
  do_handshake();
}

void GrpcServerConnection::do_handshake() {
  if (closed_) return;
  Io io = tls_->handshake();
  if (io == Io::kWantRead || io == Io::kWantWrite) {
    return wait(io == Io::kWantWrite, [this] { do_handshake(); });
  }
  if (io != Io::kDone || tls_->alpn() != "h2") {
    // gRPC needs HTTP/2; a client that did not negotiate it would speak something else.
    shared_->stats.tls_handshake_failed.inc();
    spdlog::debug("gRPC server: TLS handshake failed: {}", io == Io::kDone ? "no h2 ALPN" : tls_->error());
    return close();
  }
  if (const auto& p = tls_->peer()) {
    pending_peer_->tls = grpc::TlsPeer{p->spiffe_id, p->trust_domain, p->serial, p->not_after, p->attested_claims};
  }
  timer_.cancel();
  start_session();
}

void GrpcServerConnection::start_session() {
  std::weak_ptr<GrpcServerConnection> weak = weak_from_this();
  auto session = Http2ServerSession::create(shared_, std::shared_ptr<const grpc::PeerInfo>(std::move(pending_peer_)),
                                            executor_, [weak] {
                                              if (auto self = weak.lock()) self->schedule_flush();
                                            });
  if (!session.ok()) return close();
  session_ = std::move(session.value());
  if (drain_requested_) session_->drain();
  flush();  // our SETTINGS
  do_read();
}

void GrpcServerConnection::wait(bool writable, std::function<void()> then) {
  bool& waiting = writable ? write_waiting_ : read_waiting_;
  if (waiting || closed_) return;
  waiting = true;
  auto what = writable ? asio::posix::descriptor_base::wait_write : asio::posix::descriptor_base::wait_read;
  socket_.async_wait(what, [self = shared_from_this(), writable, then = std::move(then)](const std::error_code& ec) {
    (writable ? self->write_waiting_ : self->read_waiting_) = false;
    if (ec || self->closed_) return;
    then();
  });
}

GrpcServerConnection::IoStatus GrpcServerConnection::read_some(uint8_t* buf, size_t len, size_t* out_n) {
  if (tls_) {
    Io io = tls_->read(buf, len, out_n);
    if (io == Io::kDone) return IoStatus::kProgress;
    if (io == Io::kWantRead || io == Io::kWantWrite) return IoStatus::kBlocked;
    return io == Io::kEof ? IoStatus::kEof : IoStatus::kError;
  }
  ssize_t n = ::recv(socket_.native_handle(), buf, len, 0);
  if (n > 0) {
    *out_n = static_cast<size_t>(n);
    return IoStatus::kProgress;
  }
  if (n == 0) return IoStatus::kEof;
  return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? IoStatus::kBlocked : IoStatus::kError;
}

GrpcServerConnection::IoStatus GrpcServerConnection::write_some(const uint8_t* buf, size_t len, size_t* out_n) {
  if (tls_) {
    Io io = tls_->write(buf, len, out_n);
    if (io == Io::kDone) return IoStatus::kProgress;
    if (io == Io::kWantRead || io == Io::kWantWrite) return IoStatus::kBlocked;
    return IoStatus::kError;
  }
  ssize_t n = ::send(socket_.native_handle(), buf, len, MSG_NOSIGNAL);
  if (n >= 0) {
    *out_n = static_cast<size_t>(n);
    return IoStatus::kProgress;
  }
  return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? IoStatus::kBlocked : IoStatus::kError;
}

void GrpcServerConnection::do_read() {
  if (closed_ || peer_eof_) return;
  std::array<uint8_t, kReadChunk> buf;
  size_t total = 0;
  // Back-pressure: a peer that does not read our output gets no more of its input processed.
  while (total < kMaxReadPerWakeup && out_.size() - out_offset_ < kMaxPendingOutput) {
    size_t n = 0;
    IoStatus st = read_some(buf.data(), buf.size(), &n);
    if (st == IoStatus::kBlocked) break;
    if (st != IoStatus::kProgress) {
      peer_eof_ = true;  // EOF or error: nothing more will come; finish writing what we can
      break;
    }
    total += n;
    if (!session_->receive({buf.data(), n})) {
      peer_eof_ = true;  // fatal protocol error: flush the GOAWAY, then close
      break;
    }
  }
  flush();
  if (closed_) return;
  if (peer_eof_) {
    if (!write_waiting_) close();  // else the write-wait closes once the output is out
    return;
  }
  if (out_.size() - out_offset_ < kMaxPendingOutput) wait(false, [this] { do_read(); });
  arm_timer();
}

void GrpcServerConnection::schedule_flush() {
  if (flush_posted_ || closed_) return;
  flush_posted_ = true;
  executor_->post([self = shared_from_this()] {
    self->flush_posted_ = false;
    if (self->closed_) return;
    self->flush();
    self->arm_timer();
  });
}

void GrpcServerConnection::flush() {
  if (closed_ || !session_) return;
  for (;;) {
    if (out_offset_ == out_.size()) {
      out_.clear();
      out_offset_ = 0;
      if (session_->produce(out_, kMaxPendingOutput) == 0) break;
    }
    size_t n = 0;
    IoStatus st = write_some(reinterpret_cast<const uint8_t*>(out_.data()) + out_offset_, out_.size() - out_offset_, &n);
    if (st == IoStatus::kBlocked) {
      return wait(true, [this] {
        flush();
        if (closed_ || write_waiting_) return;
        if (peer_eof_) return close();
        if (!read_waiting_) do_read();
      });
    }
    if (st == IoStatus::kError) return close();
    out_offset_ += n;
  }
  if (session_->finished()) close();
}

void GrpcServerConnection::arm_timer() {
  if (closed_ || !session_) return;
  auto next = session_->next_timer();
  if (!next) return;
  timer_.expires_at(*next);
  timer_.async_wait([self = shared_from_this()](const std::error_code& ec) {
    if (ec || self->closed_) return;
    self->session_->on_timer();
    self->flush();
    self->arm_timer();
  });
}

void GrpcServerConnection::drain() {
  drain_requested_ = true;
  if (!session_ || closed_) return;
  session_->drain();
  flush();
  arm_timer();
}

void GrpcServerConnection::close() {
  if (closed_) return;
  closed_ = true;
  timer_.cancel();
  // The session first: its calls' on_done run now (CANCELLED) while the fd is still ours.
  session_.reset();
  tls_.reset();
  asio::error_code ignored;
  socket_.close(ignored);
  if (auto cb = std::move(on_closed_)) cb(this);
}

}  // namespace portcullis::proxy
