#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <thread>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include "mtls/client_session_cache.h"
#include "proxy/buffer_pool.h"
#include "proxy/live_connection.h"

namespace portcullis::proxy {

// Worker is one event-loop thread. Every connection accepted on it lives on it for good, so the
// connection's state needs no locks. Other threads talk to it only through post().
class Worker {
 public:
  explicit Worker(size_t index);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void start();
  // stop closes the worker's connections, lets the loop run out of work and joins the thread.
  // Listeners must have been closed first, or their pending accepts keep the loop alive.
  void stop();

  size_t index() const { return index_; }
  asio::io_context& io() { return io_; }
  BufferPool& buffers() { return buffers_; }
  LiveConnectionList& connections() { return connections_; }
  mtls::ClientSessionCache& tls_sessions() { return tls_sessions_; }

  template <typename Fn>
  void post(Fn&& fn) {
    asio::post(io_, std::forward<Fn>(fn));
  }

 private:
  size_t index_;
  // Declared before io_ so they outlive it: destroying io_ destroys pending handlers, which may
  // hold the last reference to a connection that unlinks itself and returns its buffers.
  BufferPool buffers_;
  LiveConnectionList connections_;
  mtls::ClientSessionCache tls_sessions_;
  asio::io_context io_{1};  // concurrency hint 1: one thread runs this loop, so skip locking
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard_;
  std::thread thread_;
};

}  // namespace portcullis::proxy
