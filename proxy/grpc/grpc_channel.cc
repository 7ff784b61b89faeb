#include "proxy/grpc/grpc_channel.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace portcullis::proxy {
namespace {
using Io = mtls::TlsConnection::Io;

// connect_socket starts a non-blocking connect; -1 on immediate failure.
int connect_socket(const config::Address& address) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (const config::PipeAddress* pipe = address.pipe()) {
    auto* sa = reinterpret_cast<sockaddr_un*>(&ss);
    sa->sun_family = AF_UNIX;
    if (pipe->path.empty() || pipe->path.size() >= sizeof(sa->sun_path)) return -1;
    std::memcpy(sa->sun_path, pipe->path.data(), pipe->path.size());
    if (pipe->path[0] == '@') sa->sun_path[0] = '\0';
    len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + pipe->path.size() + (pipe->path[0] == '@' ? 0 : 1));
  } else {
    const config::SocketAddress& s = *address.socket();
    if (s.is_ipv6()) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      a->sin6_family = AF_INET6;
      a->sin6_port = htons(static_cast<uint16_t>(s.port_value));
      if (inet_pton(AF_INET6, s.address.c_str(), &a->sin6_addr) != 1) return -1;
      len = sizeof(sockaddr_in6);
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      a->sin_family = AF_INET;
      a->sin_port = htons(static_cast<uint16_t>(s.port_value));
      if (inet_pton(AF_INET, s.address.c_str(), &a->sin_addr) != 1) return -1;
      len = sizeof(sockaddr_in);
    }
  }
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 && errno != EINPROGRESS && errno != EAGAIN) {
    ::close(fd);
    return -1;
  }
  return fd;
}
}  // namespace

std::shared_ptr<GrpcChannel> GrpcChannel::create(asio::io_context& io, GrpcChannelOptions options) {
  return std::shared_ptr<GrpcChannel>(new GrpcChannel(io, std::move(options)));
}

GrpcChannel::GrpcChannel(asio::io_context& io, GrpcChannelOptions options)
    : options_(std::move(options)), executor_(std::make_shared<AsioExecutor>(io)), timer_(io) {}

GrpcChannel::~GrpcChannel() { close(); }

std::shared_ptr<grpc::ClientCall> GrpcChannel::start_call(const std::string& path, const grpc::CallOptions& options,
                                                          grpc::ClientCallHandlers handlers) {
  if (!session_ || !session_->usable()) {
    // A new connection for new calls; calls on a GOAWAY'd one may still finish there, but we
    // keep one session at a time, so they are failed as UNAVAILABLE (retryable).
    close();
    std::weak_ptr<GrpcChannel> weak = weak_from_this();
    session_ = std::move(Http2ClientSession::create(options_.authority, options_.max_message_bytes, [weak] {
                           if (auto self = weak.lock()) self->schedule_flush();
                         }).value());
    connect();
  }
  auto call = session_->start_call(path, options, std::move(handlers));
  arm_timer();
  return call;
}

void GrpcChannel::connect() {
  ++generation_;
  int fd = connect_socket(options_.address);
  if (fd < 0) {
    // Report on the next loop turn: callers expect on_finish after start_call returns.
    return executor_->post([self = shared_from_this(), gen = generation_, err = std::string(std::strerror(errno))] {
      if (gen == self->generation_) self->fail("cannot connect: " + err);
    });
  }
  socket_ = std::make_unique<asio::posix::stream_descriptor>(executor_->io(), fd);
  timer_.expires_after(options_.connect_timeout);
  timer_.async_wait([self = shared_from_this(), gen = generation_](const std::error_code& ec) {
    if (!ec && gen == self->generation_ && !self->ready_) self->fail("connect timed out");
  });
  wait(true, [this] {
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(socket_->native_handle(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return fail(std::string("cannot connect: ") + std::strerror(err));
    on_connected();
  });
}

void GrpcChannel::on_connected() {
  if (!options_.tls) {
    ready_ = true;
    timer_.cancel();
    flush();
    do_read();
    return;
  }
  auto tls = mtls::TlsConnection::create(options_.tls, socket_->native_handle(), options_.authority);
  if (!tls.ok()) return fail(tls.error().message);
  tls_ = std::move(tls.value());
  do_handshake();
}

void GrpcChannel::do_handshake() {
  Io io = tls_->handshake();
  if (io == Io::kWantRead || io == Io::kWantWrite) return wait(io == Io::kWantWrite, [this] { do_handshake(); });
  if (io != Io::kDone) return fail("TLS handshake failed: " + tls_->error());
  if (tls_->alpn() != "h2") return fail("server did not negotiate h2");
  ready_ = true;
  timer_.cancel();
  flush();
  do_read();
  arm_timer();
}

void GrpcChannel::wait(bool writable, std::function<void()> then) {
  bool& waiting = writable ? write_waiting_ : read_waiting_;
  if (waiting || !socket_) return;
  waiting = true;
  auto what = writable ? asio::posix::descriptor_base::wait_write : asio::posix::descriptor_base::wait_read;
  socket_->async_wait(what, [self = shared_from_this(), gen = generation_, writable, then = std::move(then)](
                                const std::error_code& ec) {
    if (gen != self->generation_) return;
    (writable ? self->write_waiting_ : self->read_waiting_) = false;
    if (!ec) then();
  });
}

GrpcChannel::IoStatus GrpcChannel::read_some(uint8_t* buf, size_t len, size_t* n) {
  if (tls_) {
    Io io = tls_->read(buf, len, n);
    return io == Io::kDone ? IoStatus::kProgress
           : (io == Io::kWantRead || io == Io::kWantWrite) ? IoStatus::kBlocked : IoStatus::kClosed;
  }
  ssize_t r = ::recv(socket_->native_handle(), buf, len, 0);
  if (r > 0) return *n = static_cast<size_t>(r), IoStatus::kProgress;
  if (r < 0 && (errno == EAGAIN || errno == EINTR)) return IoStatus::kBlocked;
  return IoStatus::kClosed;
}

GrpcChannel::IoStatus GrpcChannel::write_some(const uint8_t* buf, size_t len, size_t* n) {
  if (tls_) {
    Io io = tls_->write(buf, len, n);
    return io == Io::kDone ? IoStatus::kProgress
           : (io == Io::kWantRead || io == Io::kWantWrite) ? IoStatus::kBlocked : IoStatus::kClosed;
  }
  ssize_t r = ::send(socket_->native_handle(), buf, len, MSG_NOSIGNAL);
  if (r >= 0) return *n = static_cast<size_t>(r), IoStatus::kProgress;
  return errno == EAGAIN || errno == EINTR ? IoStatus::kBlocked : IoStatus::kClosed;
}

void GrpcChannel::do_read() {
  if (!ready_ || !session_) return;
  uint8_t buf[16384];
  for (int i = 0; i < 16; ++i) {
    size_t n = 0;
    IoStatus st = read_some(buf, sizeof buf, &n);
    if (st == IoStatus::kBlocked) break;
    if (st == IoStatus::kClosed) return fail("connection closed by the server");
    if (!session_->receive({buf, n})) return fail("HTTP/2 protocol error from the server");
  }
  flush();
  if (session_) wait(false, [this] { do_read(); });
  arm_timer();
}

void GrpcChannel::schedule_flush() {
  if (flush_posted_) return;
  flush_posted_ = true;
  executor_->post([self = shared_from_this()] {
    self->flush_posted_ = false;
    self->flush();
    self->arm_timer();
  });
}

void GrpcChannel::flush() {
  if (!ready_ || !session_) return;
  for (;;) {
    if (out_offset_ == out_.size()) {
      out_.clear();
      out_offset_ = 0;
      if (session_->produce(out_, 256 * 1024) == 0) return;
    }
    size_t n = 0;
    IoStatus st = write_some(reinterpret_cast<const uint8_t*>(out_.data()) + out_offset_, out_.size() - out_offset_, &n);
    if (st == IoStatus::kBlocked) return wait(true, [this] { flush(); });
    if (st == IoStatus::kClosed) return fail("connection closed while writing");
    out_offset_ += n;
  }
}

void GrpcChannel::arm_timer() {
  if (!session_ || !ready_) return;
  auto next = session_->next_timer();
  if (!next) return;
  timer_.expires_at(*next);
  timer_.async_wait([self = shared_from_this(), gen = generation_](const std::error_code& ec) {
    if (ec || gen != self->generation_ || !self->session_) return;
    self->session_->on_timer();
    self->flush();
    self->arm_timer();
  });
}

void GrpcChannel::fail(const std::string& why) {
  auto session = std::move(session_);
  close();
  if (session) session->fail_all({grpc::StatusCode::kUnavailable, why});
}

void GrpcChannel::close() {
  ++generation_;
  ready_ = false;
  read_waiting_ = write_waiting_ = false;
  timer_.cancel();
  session_.reset();  // fails open calls with UNAVAILABLE
  tls_.reset();
  if (socket_) {
    asio::error_code ignored;
    socket_->close(ignored);
    socket_.reset();
  }
  out_.clear();
  out_offset_ = 0;
}

}  // namespace portcullis::proxy
