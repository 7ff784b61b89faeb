#include "proxy/grpc/grpc_client_stream.h"

#include <cstring>

#include "proxy/grpc/http2_client_session.h"

namespace portcullis::proxy {

GrpcClientStream::GrpcClientStream(Http2ClientSession* session, grpc::ClientCallHandlers handlers,
                                   std::optional<std::chrono::steady_clock::time_point> deadline,
                                   uint32_t max_message_bytes)
    : session_(session), handlers_(std::move(handlers)), deadline_(deadline), deframer_(max_message_bytes) {}

void GrpcClientStream::on_header(std::string_view name, std::string_view value) {
  if (name == ":status") http_status_ = std::atoi(std::string(value).c_str());
  else if (name == "grpc-status") grpc_status_ = value;
  else if (name == "grpc-message") grpc_message_ = percent_decode_message(value);
  else if (!name.empty() && name[0] != ':' && name != "content-type") trailers_.emplace_back(name, value);
}

void GrpcClientStream::on_data(std::span<const uint8_t> data) {
  if (finished_ || local_status_) return;
  deframer_.feed(data, [this](std::string&& m) {
    if (!local_status_ && handlers_.on_message) handlers_.on_message(std::move(m));
  });
  if (deframer_.error() == MessageDeframer::Error::kNone || local_status_) return;
  // A server message we cannot take (too large, compressed without our asking) ends the call.
  local_status_ = deframer_.error() == MessageDeframer::Error::kTooLarge
                      ? grpc::GrpcStatus{grpc::StatusCode::kResourceExhausted, "response message over the limit"}
                      : grpc::GrpcStatus{grpc::StatusCode::kInternal, "unsupported response message encoding"};
  if (session_) nghttp2_submit_rst_stream(session_->h2(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_CANCEL);
}

grpc::GrpcStatus GrpcClientStream::status_from_response(uint32_t h2_error) const {
  if (local_status_) return *local_status_;
  if (grpc_status_) {
    char* end = nullptr;
    long v = std::strtol(grpc_status_->c_str(), &end, 10);
    if (end && *end == '\0' && !grpc_status_->empty()) return {grpc::status_code_from_int(v), grpc_message_};
    return {grpc::StatusCode::kUnknown, "bad grpc-status"};
  }
  if (h2_error != NGHTTP2_NO_ERROR) {
    switch (h2_error) {
      case NGHTTP2_REFUSED_STREAM: return {grpc::StatusCode::kUnavailable, "stream refused"};
      case NGHTTP2_CANCEL: return {grpc::StatusCode::kCancelled, "stream cancelled by the server"};
      case NGHTTP2_ENHANCE_YOUR_CALM: return {grpc::StatusCode::kResourceExhausted, "server says enhance your calm"};
      case NGHTTP2_INADEQUATE_SECURITY: return {grpc::StatusCode::kPermissionDenied, "inadequate security"};
      default: return {grpc::StatusCode::kInternal, "stream reset with HTTP/2 error " + std::to_string(h2_error)};
    }
  }
  if (http_status_ != 200) {
    return {grpc::status_from_http(http_status_), "HTTP status " + std::to_string(http_status_)};
  }
  return {grpc::StatusCode::kUnknown, "response without grpc-status"};
}

void GrpcClientStream::on_closed(uint32_t h2_error) {
  if (!finished_ && deframer_.partial() && !local_status_ && !grpc_status_) {
    local_status_ = grpc::GrpcStatus{grpc::StatusCode::kInternal, "response ended inside a message"};
  }
  finish(status_from_response(h2_error));
  session_ = nullptr;
}

void GrpcClientStream::on_deadline() {
  if (finished_ || local_status_) return;
  local_status_ = grpc::GrpcStatus{grpc::StatusCode::kDeadlineExceeded, "deadline exceeded"};
  if (session_) {
    nghttp2_submit_rst_stream(session_->h2(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_CANCEL);
    session_->notify_output();
  }
}

void GrpcClientStream::fail(grpc::GrpcStatus status) {
  session_ = nullptr;
  finish(local_status_.value_or(std::move(status)));
}

void GrpcClientStream::finish(grpc::GrpcStatus status) {
  if (finished_) return;
  finished_ = true;
  out_.clear();
  auto handlers = std::move(handlers_);
  handlers_ = {};
  if (handlers.on_finish) handlers.on_finish(status, trailers_);
}

bool GrpcClientStream::send_message(std::string message) {
  if (finished_ || half_close_requested_ || !session_ || local_status_) return false;
  out_.push_back(frame_message(message));
  nghttp2_session_resume_data(session_->h2(), id_);
  session_->notify_output();
  return true;
}

void GrpcClientStream::half_close() {
  if (finished_ || half_close_requested_ || !session_) return;
  half_close_requested_ = true;
  nghttp2_session_resume_data(session_->h2(), id_);
  session_->notify_output();
}

void GrpcClientStream::cancel() {
  if (finished_ || local_status_) return;
  local_status_ = grpc::GrpcStatus{grpc::StatusCode::kCancelled, "cancelled by the client"};
  if (!session_) return finish(*local_status_);
  nghttp2_submit_rst_stream(session_->h2(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_CANCEL);
  session_->notify_output();
}

ssize_t GrpcClientStream::read_output(uint8_t* buf, size_t length, uint32_t* data_flags) {
  size_t copied = copy_queued_output(out_, &out_offset_, buf, length);
  if (out_.empty() && half_close_requested_) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;  // END_STREAM, with an empty DATA frame if need be
    return static_cast<ssize_t>(copied);
  }
  return copied == 0 ? NGHTTP2_ERR_DEFERRED : static_cast<ssize_t>(copied);
}

}  // namespace portcullis::proxy
