#pragma once

// LoopThread runs one asio loop on its own thread for tests of loop-bound objects (GrpcChannel,
// GrpcServer, the agent's remote client): run() executes a function there and returns its result.
#include <future>
#include <thread>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

namespace portcullis::proxy::testing {

class LoopThread {
 public:
  LoopThread() : guard_(asio::make_work_guard(io)), thread_([this] { io.run(); }) {}
  ~LoopThread() {
    guard_.reset();
    io.stop();
    thread_.join();
  }
  template <typename Fn>
  auto run(Fn fn) {  // runs fn on the loop and waits for its result
    std::packaged_task<decltype(fn())()> task(std::move(fn));
    auto f = task.get_future();
    asio::post(io, [&task] { task(); });
    return f.get();
  }
  asio::io_context io{1};

 private:
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::thread thread_;
};

}  // namespace portcullis::proxy::testing
