#pragma once

#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include "common/grpc/call_context.h"

namespace portcullis::proxy {

// AsioExecutor is grpc::Executor over an asio loop (a worker's io_context). post() is thread-safe.
// The io_context must outlive every holder that still posts (workers live until the process
// stops them, after the servers on them).
class AsioExecutor : public grpc::Executor {
 public:
  explicit AsioExecutor(asio::io_context& io) : io_(io) {}
  void post(std::function<void()> task) override { asio::post(io_, std::move(task)); }
  asio::io_context& io() { return io_; }

 private:
  asio::io_context& io_;
};

}  // namespace portcullis::proxy
