#pragma once

#include <array>
#include <functional>
#include <memory>
#include <string>

#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>

#include "mtls/tls_connection.h"
#include "proxy/grpc/asio_executor.h"
#include "proxy/grpc/http2_server_session.h"

namespace portcullis::proxy {

// GrpcServerConnection drives one accepted socket: the optional TLS handshake (ALPN h2), then
// bytes between the socket and its Http2ServerSession, the session's timer, and back-pressure
// (it stops reading while more than kMaxPendingOutput bytes wait for the socket). Reactor style
// on the fd, like the TCP proxy, so TLS and plaintext share one path. Lives on one loop.
class GrpcServerConnection : public std::enable_shared_from_this<GrpcServerConnection> {
 public:
  static constexpr size_t kMaxPendingOutput = 256 * 1024;

  // Takes ownership of `fd`. `on_closed` runs once, on the loop, when the connection is gone.
  GrpcServerConnection(std::shared_ptr<AsioExecutor> executor, int fd, std::shared_ptr<const GrpcServerShared> shared,
                       std::shared_ptr<const mtls::TlsContext> tls, std::unique_ptr<grpc::PeerInfo> peer,
                       std::function<void(GrpcServerConnection*)> on_closed);
  ~GrpcServerConnection();

  void start();
  void drain();
  void close();

 private:
  enum class IoStatus { kProgress, kBlocked, kEof, kError };
  void do_handshake();
  void start_session();
  void do_read();
  void flush();
  void schedule_flush();
  void arm_timer();
  void wait(bool writable, std::function<void()> then);
  IoStatus read_some(uint8_t* buf, size_t len, size_t* out_n);
  IoStatus write_some(const uint8_t* buf, size_t len, size_t* out_n);

  std::shared_ptr<AsioExecutor> executor_;
  asio::posix::stream_descriptor socket_;
  asio::steady_timer timer_;
  std::shared_ptr<const GrpcServerShared> shared_;
  std::shared_ptr<const mtls::TlsContext> tls_context_;
  std::unique_ptr<mtls::TlsConnection> tls_;
  std::unique_ptr<grpc::PeerInfo> pending_peer_;  // until the session takes it
  std::unique_ptr<Http2ServerSession> session_;
  std::function<void(GrpcServerConnection*)> on_closed_;
  std::string out_;
  size_t out_offset_ = 0;
  bool read_waiting_ = false;
  bool write_waiting_ = false;
  bool flush_posted_ = false;
  bool peer_eof_ = false;
  bool closed_ = false;
  bool drain_requested_ = false;
};

}  // namespace portcullis::proxy
