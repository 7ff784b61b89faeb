#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/grpc/server_call.h"
#include "common/result.h"

namespace portcullis::grpc {

// MethodKind says how many request messages the transport expects before starting a handler.
enum class MethodKind {
  kUnary,            // exactly one request, one response
  kServerStreaming,  // exactly one request, any number of responses
  kBidiStreaming,    // messages both ways; the handler starts at once
};

// MethodHandler is a registered method, type-erased. For unary and server-streaming methods the
// transport calls `start` once the client has sent exactly one message and half-closed (another
// count fails the call with UNIMPLEMENTED, as gRPC does); for bidi it calls `start` as soon as the
// headers arrived, with an empty request, and messages then flow through set_on_message.
struct MethodHandler {
  MethodKind kind = MethodKind::kUnary;
  std::function<void(std::shared_ptr<ServerCall> call, std::string request)> start;
};

// ServiceRegistry maps full method paths ("/pkg.Service/Method") to handlers. Built once on one
// thread before the server starts, then shared read-only by every worker (find() is const and
// lock-free). The typed add_* helpers parse requests with the given protobuf types: a request
// that does not parse fails with INTERNAL before the handler runs.
class ServiceRegistry {
 public:
  // add registers a raw handler. Errors: a path not of the form /service/method, or a duplicate.
  Status add(std::string path, MethodHandler handler);

  // add_unary: a synchronous handler (runs on the call's loop, so it must not block).
  template <typename Req, typename Resp>
  Status add_unary(std::string path, std::function<GrpcResult<Resp>(const ServerCallContext&, const Req&)> fn) {
    return add_unary_async<Req, Resp>(std::move(path),
        [fn = std::move(fn)](const ServerCallContext& ctx, const Req& req, UnaryReply<Resp> reply) {
          reply(fn(ctx, req));
        });
  }

  // add_unary_async: the handler may keep `reply` and answer later from a task posted to
  // ctx.executor (e.g. after a database lookup on another thread).
  template <typename Req, typename Resp>
  Status add_unary_async(std::string path,
                         std::function<void(const ServerCallContext&, const Req&, UnaryReply<Resp>)> fn) {
    return add(std::move(path), {MethodKind::kUnary, [fn = std::move(fn)](std::shared_ptr<ServerCall> call, std::string bytes) {
                                   Req req;
                                   if (!parse(*call, bytes, &req)) return;
                                   const ServerCallContext& ctx = call->context();
                                   fn(ctx, req, UnaryReply<Resp>(std::move(call)));
                                 }});
  }

  // add_server_streaming: the handler writes any number of responses through the writer, now or
  // later, and finishes it (or the client cancels).
  template <typename Req, typename Resp>
  Status add_server_streaming(std::string path, std::function<void(const Req&, ServerWriter<Resp>)> fn) {
    return add(std::move(path), {MethodKind::kServerStreaming,
                                 [fn = std::move(fn)](std::shared_ptr<ServerCall> call, std::string bytes) {
                                   Req req;
                                   if (!parse(*call, bytes, &req)) return;
                                   fn(req, ServerWriter<Resp>(std::move(call)));
                                 }});
  }

  // add_bidi: the handler installs on_message / on_half_close / on_done on the stream and keeps
  // it as long as it wants to write.
  template <typename Req, typename Resp>
  Status add_bidi(std::string path, std::function<void(BidiStream<Req, Resp>)> fn) {
    return add(std::move(path), {MethodKind::kBidiStreaming,
                                 [fn = std::move(fn)](std::shared_ptr<ServerCall> call, std::string) {
                                   fn(BidiStream<Req, Resp>(std::move(call)));
                                 }});
  }

  // find returns the handler for a path, or nullptr (the transport answers UNIMPLEMENTED).
  const MethodHandler* find(std::string_view path) const;
  // methods lists the registered paths, sorted.
  std::vector<std::string> methods() const;

 private:
  template <typename Req>
  static bool parse(ServerCall& call, const std::string& bytes, Req* out) {
    if (out->ParseFromString(bytes)) return true;
    call.finish(GrpcStatus{StatusCode::kInternal, "cannot parse request message"});
    return false;
  }

  std::map<std::string, MethodHandler, std::less<>> methods_;
};

}  // namespace portcullis::grpc
