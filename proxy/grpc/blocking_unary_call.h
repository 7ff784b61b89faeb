#pragma once

#include <chrono>
#include <optional>
#include <string>

#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include "common/grpc/channel.h"
#include "proxy/grpc/grpc_channel.h"

namespace portcullis::proxy {

// blocking_unary_call makes one unary call on a private loop in the calling thread and returns
// its result: for command-line tools, which have nothing else to do meanwhile. The connection is
// made for this call and closed after it; `timeout` bounds connect plus call (DEADLINE_EXCEEDED or
// UNAVAILABLE when it passes). Never use it on an event-loop thread.
template <typename Req, typename Resp>
grpc::GrpcResult<Resp> blocking_unary_call(const config::Address& address, const std::string& path, const Req& request,
                                           std::chrono::nanoseconds timeout) {
  asio::io_context io{1};
  std::optional<grpc::GrpcResult<Resp>> out;
  GrpcChannelOptions options;
  options.address = address;
  options.connect_timeout = timeout;
  auto channel = GrpcChannel::create(io, std::move(options));
  asio::post(io, [&] {
    grpc::CallOptions call_options;
    call_options.timeout = timeout;
    grpc::call_unary<Req, Resp>(*channel, path, request, call_options, [&](grpc::GrpcResult<Resp> result) {
      out.emplace(std::move(result));
      io.stop();
    });
  });
  io.run();
  channel->close();
  if (!out) return grpc::GrpcStatus{grpc::StatusCode::kUnavailable, "the call ended without an answer"};
  return std::move(*out);
}

}  // namespace portcullis::proxy
