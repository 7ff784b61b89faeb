#pragma once

#include <nghttp2/nghttp2.h>

#include <chrono>
#include <deque>
#include <optional>
#include <string>

#include "common/grpc/channel.h"
#include "proxy/grpc/grpc_wire.h"

namespace portcullis::proxy {

class Http2ClientSession;

// GrpcClientStream is one outgoing call on an Http2ClientSession: request messages queued behind
// flow control, response deframing, and the final status. Loop-only; detached (methods become
// no-ops) once finished or when the session goes away.
class GrpcClientStream : public grpc::ClientCall, public std::enable_shared_from_this<GrpcClientStream> {
 public:
  GrpcClientStream(Http2ClientSession* session, grpc::ClientCallHandlers handlers,
                   std::optional<std::chrono::steady_clock::time_point> deadline, uint32_t max_message_bytes);

  void set_id(int32_t id) { id_ = id; }
  // Transport side.
  void on_header(std::string_view name, std::string_view value);
  void on_data(std::span<const uint8_t> data);
  void on_closed(uint32_t h2_error);
  void on_deadline();
  void fail(grpc::GrpcStatus status);  // connection-level failure
  ssize_t read_output(uint8_t* buf, size_t length, uint32_t* data_flags);
  std::optional<std::chrono::steady_clock::time_point> deadline() const { return finished_ ? std::nullopt : deadline_; }

  // grpc::ClientCall
  bool send_message(std::string message) override;
  void half_close() override;
  void cancel() override;

 private:
  void finish(grpc::GrpcStatus status);
  grpc::GrpcStatus status_from_response(uint32_t h2_error) const;

  Http2ClientSession* session_;
  int32_t id_ = -1;
  grpc::ClientCallHandlers handlers_;
  std::optional<std::chrono::steady_clock::time_point> deadline_;
  MessageDeframer deframer_;
  std::deque<std::string> out_;
  size_t out_offset_ = 0;
  bool half_close_requested_ = false;
  bool finished_ = false;
  std::optional<grpc::GrpcStatus> local_status_;  // set when we ended it (deadline, cancel, bad data)
  int http_status_ = 0;
  std::optional<std::string> grpc_status_;
  std::string grpc_message_;
  grpc::Metadata trailers_;
};

}  // namespace portcullis::proxy
