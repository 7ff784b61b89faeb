#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "common/grpc/call_context.h"
#include "common/grpc/status.h"

namespace portcullis::grpc {

// CallOptions are the per-call settings a client sends in its request headers.
struct CallOptions {
  std::optional<std::chrono::nanoseconds> timeout;  // sent as grpc-timeout; the call ends with
                                                    // DEADLINE_EXCEEDED when it passes
  Metadata metadata;                                // custom headers, lowercase names
};

// ClientCallHandlers receive a call's results, on the channel's loop. on_finish runs exactly
// once, last; after it no callback runs again.
struct ClientCallHandlers {
  std::function<void(std::string message)> on_message;
  std::function<void(const GrpcStatus& status, const Metadata& trailers)> on_finish;
};

// ClientCall is one outgoing call, type-erased. Loop-only, like ServerCall.
class ClientCall {
 public:
  virtual ~ClientCall() = default;
  // send_message queues one serialized request; false once the call is finished or half-closed.
  virtual bool send_message(std::string message) = 0;
  // half_close sends END_STREAM: no more requests.
  virtual void half_close() = 0;
  // cancel sends RST_STREAM(CANCEL); on_finish then reports CANCELLED (if not finished before).
  virtual void cancel() = 0;
};

// Channel is a connection (or pool) to one gRPC server. Implemented over HTTP/2 by
// proxy::GrpcChannel; the authority client in attest/ is handed one, and tests hand a fake.
// start_call must be called on the channel's loop (executor()); a channel that cannot connect
// finishes the call with UNAVAILABLE.
class Channel {
 public:
  virtual ~Channel() = default;
  virtual std::shared_ptr<ClientCall> start_call(const std::string& path, const CallOptions& options,
                                                 ClientCallHandlers handlers) = 0;
  virtual Executor& executor() = 0;
};

// call_unary sends one request and reports one response or a status (a response that does not
// parse, or a count other than one, is INTERNAL).
template <typename Req, typename Resp>
std::shared_ptr<ClientCall> call_unary(Channel& channel, const std::string& path, const Req& request,
                                       const CallOptions& options, std::function<void(GrpcResult<Resp>)> done) {
  auto response = std::make_shared<std::optional<Resp>>();
  auto bad = std::make_shared<bool>(false);
  ClientCallHandlers handlers;
  handlers.on_message = [response, bad](std::string bytes) {
    Resp r;
    if (response->has_value() || !r.ParseFromString(bytes)) *bad = true;
    else *response = std::move(r);
  };
  handlers.on_finish = [response, bad, done = std::move(done)](const GrpcStatus& status, const Metadata&) {
    if (!status.ok()) return done(status);
    if (*bad || !response->has_value()) return done(GrpcStatus{StatusCode::kInternal, "bad unary response"});
    done(std::move(**response));
  };
  auto call = channel.start_call(path, options, std::move(handlers));
  std::string bytes;
  request.SerializeToString(&bytes);
  call->send_message(std::move(bytes));
  call->half_close();
  return call;
}

// start_typed_call starts a call whose responses are parsed as Resp; one that does not parse
// cancels the call, which then finishes with INTERNAL.
template <typename Resp>
std::shared_ptr<ClientCall> start_typed_call(Channel& channel, const std::string& path, const CallOptions& options,
                                             std::function<void(Resp&&)> on_response,
                                             std::function<void(const GrpcStatus&)> on_finish) {
  auto bad = std::make_shared<bool>(false);
  auto self = std::make_shared<std::weak_ptr<ClientCall>>();
  ClientCallHandlers handlers;
  handlers.on_message = [bad, self, on_response = std::move(on_response)](std::string bytes) {
    Resp r;
    if (*bad) return;
    if (!r.ParseFromString(bytes)) {
      *bad = true;
      if (auto call = self->lock()) call->cancel();
      return;
    }
    on_response(std::move(r));
  };
  handlers.on_finish = [bad, on_finish = std::move(on_finish)](const GrpcStatus& status, const Metadata&) {
    on_finish(*bad ? GrpcStatus{StatusCode::kInternal, "cannot parse response message"} : status);
  };
  auto call = channel.start_call(path, options, std::move(handlers));
  *self = call;
  return call;
}

// call_server_streaming sends one request, then reports each response and the final status. A
// response that does not parse cancels the call and finishes with INTERNAL.
template <typename Req, typename Resp>
std::shared_ptr<ClientCall> call_server_streaming(Channel& channel, const std::string& path, const Req& request,
                                                  const CallOptions& options, std::function<void(Resp&&)> on_response,
                                                  std::function<void(const GrpcStatus&)> on_finish) {
  auto call = start_typed_call<Resp>(channel, path, options, std::move(on_response), std::move(on_finish));
  std::string bytes;
  request.SerializeToString(&bytes);
  call->send_message(std::move(bytes));
  call->half_close();
  return call;
}

// ClientBidi is the typed handle of a bidirectional client call (e.g. an xDS stream).
template <typename Req, typename Resp>
class ClientBidi {
 public:
  explicit ClientBidi(std::shared_ptr<ClientCall> call) : call_(std::move(call)) {}
  bool write(const Req& request) const {
    std::string bytes;
    request.SerializeToString(&bytes);
    return call_->send_message(std::move(bytes));
  }
  void half_close() const { call_->half_close(); }
  void cancel() const { call_->cancel(); }

 private:
  std::shared_ptr<ClientCall> call_;
};

// call_bidi starts a bidirectional call; responses that do not parse cancel it (INTERNAL).
template <typename Req, typename Resp>
ClientBidi<Req, Resp> call_bidi(Channel& channel, const std::string& path, const CallOptions& options,
                                std::function<void(Resp&&)> on_response, std::function<void(const GrpcStatus&)> on_finish) {
  auto call = start_typed_call<Resp>(channel, path, options, std::move(on_response), std::move(on_finish));
  return ClientBidi<Req, Resp>(std::move(call));
}

}  // namespace portcullis::grpc
