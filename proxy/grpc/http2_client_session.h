#pragma once

#include <nghttp2/nghttp2.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "common/grpc/channel.h"
#include "common/result.h"

namespace portcullis::proxy {

class GrpcClientStream;

// Http2ClientSession is the client side of one HTTP/2 connection carrying gRPC calls, without
// I/O (the transport feeds bytes in and writes produce() out), like Http2ServerSession. Calls
// end with the server's grpc-status, or a status synthesized from the HTTP status / RST_STREAM
// code (wire facts §1.3, §1.4), DEADLINE_EXCEEDED at their deadline, or UNAVAILABLE when the
// connection fails. Single-threaded: the owning loop only.
class Http2ClientSession {
 public:
  using Clock = std::chrono::steady_clock;

  static Result<std::unique_ptr<Http2ClientSession>> create(std::string authority, uint32_t max_message_bytes,
                                                            std::function<void()> want_write);
  ~Http2ClientSession();  // fails open calls with UNAVAILABLE

  std::shared_ptr<grpc::ClientCall> start_call(const std::string& path, const grpc::CallOptions& options,
                                               grpc::ClientCallHandlers handlers);
  bool receive(std::span<const uint8_t> data);
  size_t produce(std::string& out, size_t max);
  bool wants_write() const;
  // usable: no GOAWAY received and no fatal error; new calls should go to a new session if not.
  bool usable() const;
  std::optional<Clock::time_point> next_timer() const;
  void on_timer();
  // fail_all ends every open call with `status` (the connection broke).
  void fail_all(const grpc::GrpcStatus& status);

  // For GrpcClientStream.
  nghttp2_session* h2() { return h2_; }
  uint32_t max_message_bytes() const { return max_message_bytes_; }
  void notify_output();

 private:
  Http2ClientSession(std::string authority, uint32_t max_message_bytes, std::function<void()> want_write);
  friend struct ClientCallbacks;
  GrpcClientStream* stream(int32_t id);

  std::string authority_;
  uint32_t max_message_bytes_;
  std::function<void()> want_write_;
  nghttp2_session* h2_ = nullptr;
  std::map<int32_t, std::shared_ptr<GrpcClientStream>> streams_;
  bool in_io_ = false;
  bool fatal_ = false;
  bool goaway_ = false;
};

}  // namespace portcullis::proxy
