#include "proxy/grpc/grpc_server_stream.h"

#include <cstring>

#include <spdlog/spdlog.h>

#include "proxy/grpc/http2_server_session.h"

namespace portcullis::proxy {
namespace {

nghttp2_nv nv(std::string_view name, std::string_view value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
                    NGHTTP2_NV_FLAG_NONE};
}

// Headers the transport consumes; everything else (minus pseudo-headers) is call metadata.
bool is_reserved_header(std::string_view name) {
  return name == "te" || name == "content-type" || name == "grpc-timeout" || name == "grpc-encoding" ||
         name == "grpc-accept-encoding" || name == "user-agent" || name == "content-length";
}

}  // namespace

GrpcServerStream::GrpcServerStream(Http2ServerSession* session, int32_t id)
    : session_(session), id_(id), deframer_(session->shared().limits.max_message_bytes) {
  context_.peer = session->peer();
  context_.executor = session->executor();
}

GrpcServerStream::~GrpcServerStream() = default;

void GrpcServerStream::add_header(std::string_view name, std::string_view value) {
  if (header_overflow_) return;
  // Counted HTTP/2-style (name + value + 32), so the limit means what SETTINGS says it means.
  header_bytes_ += name.size() + value.size() + 32;
  if (header_bytes_ > session_->shared().limits.max_header_list_bytes) {
    header_overflow_ = true;
    context_.metadata.clear();
    return;
  }
  if (name == ":method") http_method_ = value;
  else if (name == ":path") context_.method = value;
  else if (name == ":authority") context_.authority = value;
  else if (name == "content-type") content_type_ = value;
  else if (name == "grpc-timeout") timeout_ = value;
  else if (name == "grpc-encoding") encoding_ = value;
  else if (!name.empty() && name[0] != ':' && !is_reserved_header(name)) context_.metadata.emplace_back(name, value);
}

void GrpcServerStream::on_headers_complete() {
  const GrpcServerStats& stats = session_->shared().stats;
  if (header_overflow_) {
    stats.header_list_too_large.inc();
    return reject_http(431);
  }
  if (http_method_ != "POST") return reject_http(405);
  if (!is_grpc_content_type(content_type_)) {
    stats.http_415.inc();
    return reject_http(415);
  }
  call_started_ = true;
  stats.calls_started.inc();
  handler_ = session_->shared().registry->find(context_.method);
  if (!handler_) {
    stats.calls_unimplemented.inc();
    return finish({grpc::StatusCode::kUnimplemented, "unknown method " + context_.method});
  }
  if (!timeout_.empty()) {
    auto timeout = parse_grpc_timeout(timeout_);
    if (!timeout) return finish({grpc::StatusCode::kInternal, "malformed grpc-timeout"});
    context_.deadline = std::chrono::steady_clock::now() + *timeout;
  }
  if (handler_->kind == grpc::MethodKind::kBidiStreaming) run_handler("");
}

void GrpcServerStream::run_handler(std::string request) {
  try {
    handler_->start(shared_from_this(), std::move(request));
  } catch (const std::exception& e) {
    spdlog::error("gRPC handler for {} threw: {}", context_.method, e.what());
    finish({grpc::StatusCode::kUnknown, "handler failed"});
  }
}

void GrpcServerStream::on_data(std::span<const uint8_t> data) {
  if (!call_started_ || done_) return;
  deframer_.feed(data, [this](std::string&& m) { on_message(std::move(m)); });
  if (deframer_.error() != MessageDeframer::Error::kNone && !done_) on_deframe_error();
}

void GrpcServerStream::on_message(std::string&& message) {
  if (done_) return;
  session_->shared().stats.messages_received.inc();
  if (handler_->kind == grpc::MethodKind::kBidiStreaming) {
    if (on_message_) {
      try {
        on_message_(std::move(message));
      } catch (const std::exception& e) {
        spdlog::error("gRPC handler for {} threw: {}", context_.method, e.what());
        finish({grpc::StatusCode::kUnknown, "handler failed"});
      }
    }
    return;
  }
  if (single_request_) {
    return finish({grpc::StatusCode::kUnimplemented, "more than one request message for a unary-request method"});
  }
  single_request_ = std::move(message);
}

void GrpcServerStream::on_deframe_error() {
  const auto& stats = session_->shared().stats;
  switch (deframer_.error()) {
    case MessageDeframer::Error::kTooLarge:
      stats.messages_too_large.inc();
      return finish({grpc::StatusCode::kResourceExhausted,
                     "request message of " + std::to_string(deframer_.announced_length()) + " bytes exceeds the limit of " +
                         std::to_string(session_->shared().limits.max_message_bytes)});
    case MessageDeframer::Error::kCompressed:
      if (encoding_.empty() || encoding_ == "identity") {
        return finish({grpc::StatusCode::kInternal, "compressed flag set without a grpc-encoding"});
      }
      return finish({grpc::StatusCode::kUnimplemented, "grpc-encoding " + encoding_ + " is not supported"});
    default: return finish({grpc::StatusCode::kInternal, "malformed message prefix"});
  }
}

void GrpcServerStream::on_remote_end() {
  remote_closed_ = true;
  if (!call_started_ || done_) return;
  if (deframer_.partial()) return finish({grpc::StatusCode::kInternal, "request ended inside a message"});
  if (handler_->kind == grpc::MethodKind::kBidiStreaming) {
    if (on_half_close_) on_half_close_();
    return;
  }
  if (!single_request_) return finish({grpc::StatusCode::kUnimplemented, "no request message for a unary-request method"});
  run_handler(std::move(*single_request_));
}

void GrpcServerStream::on_deadline() {
  if (done_) return;
  session_->shared().stats.calls_deadline_exceeded.inc();
  grpc::GrpcStatus status{grpc::StatusCode::kDeadlineExceeded, "deadline exceeded"};
  if (buffered_ == 0) return finish(std::move(status));
  // Output is stuck behind flow control, so trailers could not go out: cancel the stream.
  reset(NGHTTP2_CANCEL);
  end(std::move(status), false);
}

void GrpcServerStream::on_closed(uint32_t error_code) {
  if (!done_ && call_started_) {
    session_->shared().stats.calls_cancelled.inc();
    end({grpc::StatusCode::kCancelled, "stream reset by the client"}, false);
  }
  session_ = nullptr;
  done_ = true;
  on_message_ = nullptr;
  on_half_close_ = nullptr;
  on_done_ = nullptr;
}

void GrpcServerStream::detach() {
  if (!done_ && call_started_) end({grpc::StatusCode::kCancelled, "connection closed"}, false);
  session_ = nullptr;
  done_ = true;
}

void GrpcServerStream::set_on_done(std::function<void(const grpc::GrpcStatus&)> fn) {
  if (!done_) {
    on_done_ = std::move(fn);
    return;
  }
  context_.executor->post([fn = std::move(fn), status = final_] { fn(status); });
}

bool GrpcServerStream::send_message(std::string message) {
  if (done_ || !session_) return false;
  const GrpcServerLimits& limits = session_->shared().limits;
  if (buffered_ + message.size() + kMessagePrefixBytes > limits.max_buffered_bytes_per_stream) {
    // The client does not read: drop what is queued rather than grow without bound.
    session_->shared().stats.output_buffer_overflow.inc();
    reset(NGHTTP2_ENHANCE_YOUR_CALM);
    end({grpc::StatusCode::kResourceExhausted, "client is not reading its responses"}, true);
    return false;
  }
  buffered_ += message.size() + kMessagePrefixBytes;
  out_.push_back(frame_message(message));
  session_->shared().stats.messages_sent.inc();
  if (!headers_sent_) submit_response_headers();
  else nghttp2_session_resume_data(session_->h2(), id_);
  session_->notify_output();
  return true;
}

void GrpcServerStream::finish(grpc::GrpcStatus status) {
  if (done_ || !session_) return;
  if (!headers_sent_) {
    submit_trailers_only(status);
  } else {
    trailers_pending_ = true;
    nghttp2_session_resume_data(session_->h2(), id_);
  }
  session_->notify_output();
  end(std::move(status), true);
}

void GrpcServerStream::end(grpc::GrpcStatus status, bool by_server) {
  if (done_) return;
  done_ = true;
  final_ = std::move(status);
  if (call_started_ && session_) session_->shared().stats.finished(final_.code);
  // Drop the handler's callbacks: they often capture this call, and would keep it alive forever.
  auto on_done = std::move(on_done_);
  on_message_ = nullptr;
  on_half_close_ = nullptr;
  on_done_ = nullptr;
  if (on_done) on_done(final_);
}

void GrpcServerStream::reject_http(int status) {
  rejected_ = true;
  std::string code = std::to_string(status);
  nghttp2_nv hdrs[] = {nv(":status", code)};
  nghttp2_submit_response(session_->h2(), id_, hdrs, std::size(hdrs), nullptr);
  done_ = true;
}

void GrpcServerStream::submit_response_headers() {
  headers_sent_ = true;
  nghttp2_nv hdrs[] = {nv(":status", "200"), nv("content-type", "application/grpc"),
                       nv("grpc-accept-encoding", "identity")};
  nghttp2_data_provider provider{};
  provider.source.ptr = this;
  provider.read_callback = [](nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                              nghttp2_data_source* source, void*) -> ssize_t {
    return static_cast<GrpcServerStream*>(source->ptr)->read_output(buf, length, flags);
  };
  nghttp2_submit_response(session_->h2(), id_, hdrs, std::size(hdrs), &provider);
}

void GrpcServerStream::submit_trailers_only(const grpc::GrpcStatus& status) {
  headers_sent_ = true;
  std::string code = std::to_string(static_cast<int>(status.code));
  std::string message = percent_encode_message(status.message);
  std::vector<nghttp2_nv> hdrs = {nv(":status", "200"), nv("content-type", "application/grpc"), nv("grpc-status", code)};
  if (!message.empty()) hdrs.push_back(nv("grpc-message", message));
  if (status.code == grpc::StatusCode::kUnimplemented && !encoding_.empty()) hdrs.push_back(nv("grpc-accept-encoding", "identity"));
  nghttp2_submit_response(session_->h2(), id_, hdrs.data(), hdrs.size(), nullptr);
}

ssize_t GrpcServerStream::read_output(uint8_t* buf, size_t length, uint32_t* data_flags) {
  size_t copied = copy_queued_output(out_, &out_offset_, buf, length);
  buffered_ -= copied;
  if (out_.empty() && trailers_pending_) {
    trailers_pending_ = false;
    *data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    std::string code = std::to_string(static_cast<int>(final_.code));
    std::string message = percent_encode_message(final_.message);
    std::vector<nghttp2_nv> trailers = {nv("grpc-status", code)};
    if (!message.empty()) trailers.push_back(nv("grpc-message", message));
    // nghttp2 copies the name/value bytes, so the locals may go away after this call.
    nghttp2_submit_trailer(session_->h2(), id_, trailers.data(), trailers.size());
    return static_cast<ssize_t>(copied);
  }
  if (copied == 0) return NGHTTP2_ERR_DEFERRED;
  return static_cast<ssize_t>(copied);
}

void GrpcServerStream::reset(uint32_t h2_error) {
  if (!session_) return;
  out_.clear();
  out_offset_ = 0;
  buffered_ = 0;
  trailers_pending_ = false;
  nghttp2_submit_rst_stream(session_->h2(), NGHTTP2_FLAG_NONE, id_, h2_error);
  session_->notify_output();
}

}  // namespace portcullis::proxy
