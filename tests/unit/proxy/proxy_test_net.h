#pragma once

// Loopback helpers for in-process Server tests: an echo server thread, and a TLS or plain client
// driven with poll(2) and deadlines (never sleeps).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "mtls/tls_connection.h"

namespace portcullis::proxy::testing {

using Clock = std::chrono::steady_clock;

inline int listen_loopback(uint16_t* out_port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::listen(fd, 64);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *out_port = ntohs(a.sin_port);
  return fd;
}

// EchoServer echoes every byte on every connection until destroyed.
class EchoServer {
 public:
  EchoServer() : fd_(listen_loopback(&port_)), thread_([this] { run(); }) {}
  ~EchoServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
    for (int c : conns_) ::close(c);
  }
  uint16_t port() const { return port_; }

 private:
  void run() {
    while (!stop_) {
      std::vector<pollfd> fds{{fd_, POLLIN, 0}};
      for (int c : conns_) fds.push_back({c, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), 20) <= 0) continue;
      if (fds[0].revents & POLLIN) conns_.push_back(::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC));
      for (size_t i = 1; i < fds.size(); ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        char buf[4096];
        ssize_t n = ::recv(fds[i].fd, buf, sizeof buf, 0);
        if (n > 0) ::send(fds[i].fd, buf, static_cast<size_t>(n), MSG_NOSIGNAL);
        if (n <= 0) ::shutdown(fds[i].fd, SHUT_WR);  // keep the fd: closing it would reuse its number
      }
    }
  }
  uint16_t port_ = 0;
  int fd_;
  std::atomic<bool> stop_{false};
  std::vector<int> conns_;
  std::thread thread_;
};

inline bool wait_fd(int fd, short events, Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (left < 0) return false;
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, static_cast<int>(left)) > 0;
}

// Client is one connection to 127.0.0.1:port, plain or TLS (when given a context).
class Client {
 public:
  Client(uint16_t port, std::shared_ptr<const mtls::TlsContext> tls = nullptr) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    if (tls) tls_ = std::move(mtls::TlsConnection::create(tls, fd_).value());
  }
  ~Client() {
    tls_.reset();
    ::close(fd_);
  }

  // handshake returns "ok" or why it failed (plain clients: waits for the connect).
  std::string handshake(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    auto deadline = Clock::now() + timeout;
    if (!tls_) return wait_fd(fd_, POLLOUT, deadline) ? "ok" : "connect timeout";
    for (;;) {
      auto io = tls_->handshake();
      if (io == mtls::TlsConnection::Io::kDone) return "ok";
      if (io == mtls::TlsConnection::Io::kError || io == mtls::TlsConnection::Io::kEof) return tls_->error();
      if (!wait_fd(fd_, io == mtls::TlsConnection::Io::kWantRead ? POLLIN : POLLOUT, deadline)) return "handshake timeout";
    }
  }

  bool send_all(const std::string& data) {
    size_t n = 0;
    if (tls_) return tls_->write(reinterpret_cast<const uint8_t*>(data.data()), data.size(), &n) == mtls::TlsConnection::Io::kDone &&
                     tls_->flush_output() == mtls::TlsConnection::Io::kDone && n == data.size();
    return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size());
  }

  // read_some returns bytes read ("" on EOF or error: see closed()), or nullopt on timeout.
  std::optional<std::string> read_some(std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    char buf[4096];
    for (;;) {
      if (tls_) {
        size_t n = 0;
        auto io = tls_->read(reinterpret_cast<uint8_t*>(buf), sizeof buf, &n);
        if (io == mtls::TlsConnection::Io::kDone) return std::string(buf, n);
        if (io == mtls::TlsConnection::Io::kEof || io == mtls::TlsConnection::Io::kError) {
          closed_ = true;
          return "";
        }
      } else {
        ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n > 0) return std::string(buf, static_cast<size_t>(n));
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
          closed_ = true;
          return "";
        }
      }
      if (!wait_fd(fd_, POLLIN, deadline)) return std::nullopt;
    }
  }

  // echo sends `data` and reads until as many bytes came back.
  std::string echo(const std::string& data) {
    if (!send_all(data)) return "<send failed>";
    std::string got;
    while (got.size() < data.size()) {
      auto r = read_some(std::chrono::seconds(5));
      if (!r || r->empty()) return got + "<closed or timeout>";
      got += *r;
    }
    return got;
  }
  bool closed() const { return closed_; }

 private:
  int fd_ = -1;
  std::unique_ptr<mtls::TlsConnection> tls_;
  bool closed_ = false;
};

}  // namespace portcullis::proxy::testing
