#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "common/grpc/call_context.h"
#include "common/grpc/status.h"

namespace portcullis::grpc {

// ServerCall is one server-side call as the transport (proxy/grpc, or a test fake) implements it:
// serialized messages in and out. Services normally use the typed wrappers below.
//
// Threading: every method, and every callback, runs on the loop that owns the call
// (context().executor); from another thread, post a task there first. Lifetime: shared; the
// transport keeps the call alive until it is done, a service may keep it longer (methods then
// become no-ops). Callbacks are dropped once on_done has fired, so captures don't leak.
class ServerCall {
 public:
  virtual ~ServerCall() = default;

  virtual const ServerCallContext& context() const = 0;

  // send_message queues one serialized response message (response headers go out first,
  // automatically). False when the call is already done, or when queuing it would exceed the
  // stream's output buffer limit: a client that stops reading then gets RESOURCE_EXHAUSTED and
  // the call is done; memory never grows without bound.
  virtual bool send_message(std::string message) = 0;
  // finish ends the call with `status` (trailers, or trailers-only when nothing was sent). Only
  // the first finish counts; later ones and those after a cancellation are ignored.
  virtual void finish(GrpcStatus status) = 0;
  // done: finished by us, cancelled by the client (RST_STREAM), past its deadline, or its
  // connection went away.
  virtual bool done() const = 0;
  // buffered_bytes is how much output waits for the client's flow-control window.
  virtual size_t buffered_bytes() const = 0;

  // on_message: each further request message (bidi calls only; unary and server-streaming
  // handlers get their one request as an argument).
  virtual void set_on_message(std::function<void(std::string message)> fn) = 0;
  // on_half_close: the client sent END_STREAM (bidi only).
  virtual void set_on_half_close(std::function<void()> fn) = 0;
  // on_done fires once when the call ends for any reason, with the final status (ours when we
  // finished, CANCELLED / DEADLINE_EXCEEDED / UNAVAILABLE otherwise). If the call is already
  // done it fires on the next loop turn.
  virtual void set_on_done(std::function<void(const GrpcStatus& final_status)> fn) = 0;
};

// ServerWriter is the typed handle of a server-streaming (or bidi) call: write responses, finish,
// learn when it ended. A cheap copyable value (shared ownership of the call). Same threading as
// ServerCall: use it on the call's loop, or through post() from anywhere.
template <typename Resp>
class ServerWriter {
 public:
  explicit ServerWriter(std::shared_ptr<ServerCall> call) : call_(std::move(call)) {}

  const ServerCallContext& context() const { return call_->context(); }
  // write serializes and queues `message`; false as ServerCall::send_message.
  bool write(const Resp& message) const {
    std::string bytes;
    if (!message.SerializeToString(&bytes)) {
      call_->finish(GrpcStatus{StatusCode::kInternal, "cannot serialize response"});
      return false;
    }
    return call_->send_message(std::move(bytes));
  }
  void finish(GrpcStatus status = {}) const { call_->finish(std::move(status)); }
  bool done() const { return call_->done(); }
  size_t buffered_bytes() const { return call_->buffered_bytes(); }
  void on_done(std::function<void(const GrpcStatus&)> fn) const { call_->set_on_done(std::move(fn)); }

  // post runs `fn(writer)` on the call's loop; safe from any thread. Skipped when the call is
  // done by then. This is how a service thread pushes an update:
  //   writer.post([msg](const ServerWriter<Resp>& w) { w.write(msg); });
  template <typename Fn>
  void post(Fn fn) const {
    context().executor->post([self = *this, fn = std::move(fn)]() mutable {
      if (!self.done()) fn(self);
    });
  }

  const std::shared_ptr<ServerCall>& call() const { return call_; }
  // Identity of the call, for keeping writers in sets and maps.
  bool operator==(const ServerWriter& other) const { return call_ == other.call_; }

 protected:
  std::shared_ptr<ServerCall> call_;
};

// BidiStream is the typed handle of a bidirectional call (xDS StreamSecrets): a ServerWriter that
// also receives messages. A request that does not parse ends the call with INTERNAL.
template <typename Req, typename Resp>
class BidiStream : public ServerWriter<Resp> {
 public:
  using ServerWriter<Resp>::ServerWriter;

  void on_message(std::function<void(Req&& request)> fn) const {
    std::weak_ptr<ServerCall> weak = this->call_;
    this->call_->set_on_message([weak, fn = std::move(fn)](std::string bytes) {
      Req request;
      if (!request.ParseFromString(bytes)) {
        if (auto call = weak.lock()) call->finish(GrpcStatus{StatusCode::kInternal, "cannot parse request message"});
        return;
      }
      fn(std::move(request));
    });
  }
  void on_half_close(std::function<void()> fn) const { this->call_->set_on_half_close(std::move(fn)); }
};

// UnaryReply answers a unary call, now or later (an async handler keeps it and replies from a
// posted task). Only the first reply counts. Same threading as ServerCall.
template <typename Resp>
class UnaryReply {
 public:
  explicit UnaryReply(std::shared_ptr<ServerCall> call) : call_(std::move(call)) {}

  const ServerCallContext& context() const { return call_->context(); }
  void operator()(const GrpcResult<Resp>& result) const {
    if (!result.ok()) return call_->finish(result.status());
    std::string bytes;
    if (!result.value().SerializeToString(&bytes)) {
      return call_->finish(GrpcStatus{StatusCode::kInternal, "cannot serialize response"});
    }
    if (call_->send_message(std::move(bytes))) call_->finish(GrpcStatus::Ok());
  }
  bool done() const { return call_->done(); }

 private:
  std::shared_ptr<ServerCall> call_;
};

}  // namespace portcullis::grpc
