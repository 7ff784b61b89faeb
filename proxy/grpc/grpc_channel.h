#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>

#include "common/grpc/channel.h"
#include "config/address.h"
#include "mtls/tls_connection.h"
#include "proxy/grpc/asio_executor.h"
#include "proxy/grpc/http2_client_session.h"

namespace portcullis::proxy {

struct GrpcChannelOptions {
  config::Address address;  // {pipe: {path}} or {socket_address: {address, port_value}}
  // tls: null speaks h2c; otherwise a client TlsContext (its config's alpn_protocols must
  // include "h2"); the server's SVID is checked by the context's SAN matchers.
  std::shared_ptr<const mtls::TlsContext> tls;
  std::string authority = "localhost";  // :authority, and SNI with TLS
  uint32_t max_message_bytes = 4 << 20;  // largest response message accepted
  std::chrono::nanoseconds connect_timeout = std::chrono::seconds(5);
};

// GrpcChannel is grpc::Channel over one HTTP/2 connection on one asio loop. It connects on the
// first call and again on the first call after the connection failed or got a GOAWAY (calls
// started while connecting wait for it; a failed connect ends them with UNAVAILABLE). No retries
// and no load balancing: the caller decides (the authority client backs off and retries).
// Loop-only: start_call on the channel's loop; create and hold it as a shared_ptr.
class GrpcChannel : public grpc::Channel, public std::enable_shared_from_this<GrpcChannel> {
 public:
  static std::shared_ptr<GrpcChannel> create(asio::io_context& io, GrpcChannelOptions options);
  ~GrpcChannel() override;

  std::shared_ptr<grpc::ClientCall> start_call(const std::string& path, const grpc::CallOptions& options,
                                               grpc::ClientCallHandlers handlers) override;
  grpc::Executor& executor() override { return *executor_; }
  // close ends the connection; open calls finish with UNAVAILABLE.
  void close();

 private:
  GrpcChannel(asio::io_context& io, GrpcChannelOptions options);
  enum class IoStatus { kProgress, kBlocked, kClosed };
  void connect();
  void on_connected();
  void do_handshake();
  void do_read();
  void flush();
  void schedule_flush();
  void arm_timer();
  void fail(const std::string& why);
  void wait(bool writable, std::function<void()> then);
  IoStatus read_some(uint8_t* buf, size_t len, size_t* n);
  IoStatus write_some(const uint8_t* buf, size_t len, size_t* n);

  GrpcChannelOptions options_;
  std::shared_ptr<AsioExecutor> executor_;
  std::unique_ptr<asio::posix::stream_descriptor> socket_;
  asio::steady_timer timer_;
  std::unique_ptr<mtls::TlsConnection> tls_;
  std::unique_ptr<Http2ClientSession> session_;
  std::string out_;
  size_t out_offset_ = 0;
  bool ready_ = false;  // connected (and handshaken): bytes may flow
  bool read_waiting_ = false, write_waiting_ = false, flush_posted_ = false;
  uint64_t generation_ = 0;  // bumps per connection, so stale callbacks do nothing
};

}  // namespace portcullis::proxy
