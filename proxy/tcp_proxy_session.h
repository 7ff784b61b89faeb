#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>

#include "proxy/buffer_pool.h"
#include "proxy/listener.h"
#include "proxy/live_connection.h"

namespace portcullis::proxy {

class Worker;

// TcpProxySession carries one downstream connection to an upstream endpoint of its listener's
// cluster and pumps bytes both ways until both sides are done.
//
// Reactor style: it waits for readiness, then reads and writes the raw fds until they would
// block. Each direction holds at most one buffer, only while bytes are in flight, and stops
// reading while the other side cannot take more (back-pressure; memory per connection is
// bounded by two buffers). A FIN in one direction becomes a shutdown(SHUT_WR) on the other side
// once the buffered bytes are written; the session ends when both directions have ended, on an
// error, on the idle timeout or when closed by a drain. Lives on one worker; not thread-safe.
class TcpProxySession : public std::enable_shared_from_this<TcpProxySession>, public LiveConnection {
 public:
  static void start(Worker& worker, std::shared_ptr<const ListenerRuntime> listener,
                    asio::ip::tcp::socket downstream);

  TcpProxySession(Worker& worker, std::shared_ptr<const ListenerRuntime> listener,
                  asio::ip::tcp::socket downstream);
  ~TcpProxySession() override;

  void close_now() override { close(); }

 private:
  enum class State { kConnecting, kProxying, kClosed };

  // One direction of the byte stream.
  struct Direction {
    asio::ip::tcp::socket* from;
    asio::ip::tcp::socket* to;
    BufferPool::Buffer buffer;
    uint32_t begin = 0;
    uint32_t end = 0;
    bool eof = false;       // `from` sent FIN
    bool done = false;      // FIN forwarded to `to`
    bool paused = false;    // waiting for `to` to drain
    bool upstream_to_downstream = false;
  };
  enum class IoResult { kProgress, kBlocked, kError };

  void begin();
  void connect_next();
  void on_connected(uint32_t attempt, const std::error_code& ec);
  void on_connect_timer(uint32_t attempt, const std::error_code& ec);
  void connect_failed();
  void start_proxying();

  void pump(Direction& d);
  IoResult read_some(Direction& d);
  IoResult flush(Direction& d);
  void wait_readable(Direction& d);
  void wait_writable(Direction& d);
  void count_bytes(const Direction& d, size_t n, bool received);

  void arm_idle_timer(std::chrono::nanoseconds after);
  void on_idle_timer(const std::error_code& ec);
  void close();

  Worker& worker_;
  std::shared_ptr<const ListenerRuntime> listener_;
  const filters::TcpProxyConfig& tcp_proxy_;
  const Cluster& cluster_;
  asio::ip::tcp::socket downstream_;
  asio::ip::tcp::socket upstream_;
  asio::steady_timer timer_;
  Direction downstream_to_upstream_;
  Direction upstream_to_downstream_;
  State state_ = State::kConnecting;
  uint32_t connect_attempts_ = 0;
  bool connect_timed_out_ = false;
  bool upstream_connected_ = false;
  std::chrono::steady_clock::time_point last_activity_;
};

}  // namespace portcullis::proxy
