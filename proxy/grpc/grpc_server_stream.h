#pragma once

#include <nghttp2/nghttp2.h>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/grpc/server_call.h"
#include "common/grpc/service_registry.h"
#include "proxy/grpc/grpc_wire.h"

namespace portcullis::proxy {

class Http2ServerSession;

// GrpcServerStream is one HTTP/2 stream carrying one gRPC call: it collects the request headers,
// deframes request messages, and implements grpc::ServerCall for the handler (queued output
// behind HTTP/2 flow control, trailers, cancellation). Lives on its connection's loop; the
// session owns it while the stream is open, the handler may hold it longer (it is detached from
// the session when the connection goes away, and every method becomes a no-op).
class GrpcServerStream : public grpc::ServerCall, public std::enable_shared_from_this<GrpcServerStream> {
 public:
  GrpcServerStream(Http2ServerSession* session, int32_t id);
  ~GrpcServerStream() override;

  // Transport side (called by the session).
  void add_header(std::string_view name, std::string_view value);
  void on_headers_complete();
  void on_data(std::span<const uint8_t> data);
  void on_remote_end();
  void on_closed(uint32_t error_code);  // the HTTP/2 stream is gone (ours or the peer's doing)
  void on_deadline();
  void detach();  // the connection went away
  ssize_t read_output(uint8_t* buf, size_t length, uint32_t* data_flags);
  bool remote_closed() const { return remote_closed_; }
  bool local_closed() const { return local_closed_; }
  void set_local_closed() { local_closed_ = true; }
  std::optional<std::chrono::steady_clock::time_point> deadline() const {
    return done_ ? std::nullopt : context_.deadline;
  }

  // grpc::ServerCall
  const grpc::ServerCallContext& context() const override { return context_; }
  bool send_message(std::string message) override;
  void finish(grpc::GrpcStatus status) override;
  bool done() const override { return done_; }
  size_t buffered_bytes() const override { return buffered_; }
  void set_on_message(std::function<void(std::string)> fn) override { on_message_ = std::move(fn); }
  void set_on_half_close(std::function<void()> fn) override { on_half_close_ = std::move(fn); }
  void set_on_done(std::function<void(const grpc::GrpcStatus&)> fn) override;

 private:
  void reject_http(int status);
  void start_call();
  void on_message(std::string&& message);
  void on_deframe_error();
  void end(grpc::GrpcStatus status, bool by_server);
  void submit_response_headers();
  void submit_trailers_only(const grpc::GrpcStatus& status);
  void reset(uint32_t h2_error);
  void run_handler(std::string request);

  Http2ServerSession* session_;
  int32_t id_;
  grpc::ServerCallContext context_;
  const grpc::MethodHandler* handler_ = nullptr;
  // Request header state.
  std::string http_method_, content_type_, timeout_, encoding_;
  size_t header_bytes_ = 0;
  bool header_overflow_ = false;
  bool call_started_ = false;  // validated, counted, handler known
  bool rejected_ = false;      // answered with a plain HTTP error; ignore the rest
  // Request body.
  MessageDeframer deframer_;
  std::optional<std::string> single_request_;
  bool remote_closed_ = false;
  // Response.
  bool headers_sent_ = false;
  bool trailers_pending_ = false;
  bool local_closed_ = false;
  std::deque<std::string> out_;
  size_t out_offset_ = 0;  // into out_.front()
  size_t buffered_ = 0;
  bool done_ = false;
  grpc::GrpcStatus final_;
  std::function<void(std::string)> on_message_;
  std::function<void()> on_half_close_;
  std::function<void(const grpc::GrpcStatus&)> on_done_;
};

}  // namespace portcullis::proxy
