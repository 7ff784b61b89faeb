#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>

#include "common/audit.h"
#include "common/result.h"
#include "common/stats.h"
#include "common/stats_macros.h"
#include "config/bootstrap.h"
#include "filters/network/filter_chain.h"
#include "proxy/cluster.h"
#include "mtls/identity_selector.h"
#include "mtls/tls_context.h"
#include "proxy/server_stats.h"
#include "proxy/ssl_stats.h"

namespace portcullis::proxy {

class Worker;

// Envoy's listener stats, under `listener.<ip>_<port>.` (or the listener's stat_prefix).
#define PORTCULLIS_LISTENER_STATS(COUNTER, GAUGE) \
  COUNTER(downstream_cx_accept_error)             \
  GAUGE(downstream_cx_active)                     \
  COUNTER(downstream_cx_destroy)                  \
  COUNTER(downstream_cx_overflow)                 \
  COUNTER(downstream_cx_total)                    \
  COUNTER(downstream_global_cx_overflow)          \
  COUNTER(downstream_cx_filter_denied)

struct ListenerStats {
  PORTCULLIS_LISTENER_STATS(PORTCULLIS_DECLARE_COUNTER, PORTCULLIS_DECLARE_GAUGE)
  static ListenerStats create(StatsStore& store, const std::string& stat_tag);
};

// ListenerRuntime is the immutable snapshot a new connection captures: filter chain, upstream
// cluster, limits and stats handles. A reload publishes a new one; live connections keep theirs.
struct ListenerRuntime {
  std::string name;
  std::string local_address;  // "ip:port" as bound
  filters::NetworkFilterChain chain;
  std::shared_ptr<const Cluster> cluster;  // the tcp_proxy's cluster
  uint32_t buffer_limit_bytes;
  uint64_t connection_limit;
  uint64_t global_connection_limit;
  ListenerStats stats;
  ServerStats server_stats;
  std::shared_ptr<const mtls::TlsContext> tls;  // null: plaintext listener
  std::chrono::nanoseconds handshake_timeout;
  std::optional<SslStats> ssl_stats;            // set when tls is
  AuditLog* audit = nullptr;                    // null: no audit log configured; outlives the runtime
  // Set instead of `tls` when the listener's certificate comes from the built-in identity: each
  // connection asks it for its context (and is refused when it has none).
  std::shared_ptr<mtls::IdentitySelector> tls_selector;
};

// ListenSockets are the bound SO_REUSEPORT sockets of one listener, one per worker, all on the
// same port (the first bind picks it when the config says port 0).
struct ListenSockets {
  std::vector<int> fds;
  asio::ip::tcp::endpoint local;

  ListenSockets() = default;
  ListenSockets(ListenSockets&& other) noexcept : fds(std::move(other.fds)), local(other.local) { other.fds.clear(); }
  ListenSockets& operator=(ListenSockets&&) = delete;
  ~ListenSockets();
  // release hands the fds to their new owners (the workers' acceptors).
  std::vector<int> release() { return std::exchange(fds, {}); }
};

// bind_listen_sockets binds `count` sockets to `address` with SO_REUSEPORT and listens on them.
Result<ListenSockets> bind_listen_sockets(const config::SocketAddress& address, size_t count, int backlog);

// WorkerListener accepts connections on one worker's socket and starts a tcp_proxy session for
// each. Lives on the worker's thread; other threads reach it through Worker::post.
class WorkerListener : public std::enable_shared_from_this<WorkerListener> {
 public:
  WorkerListener(Worker& worker, int fd, std::shared_ptr<const ListenerRuntime> runtime);

  void start();
  void update(std::shared_ptr<const ListenerRuntime> runtime) { runtime_ = std::move(runtime); }
  void close();

 private:
  void accept();
  void on_accept(const std::error_code& ec, asio::ip::tcp::socket socket);

  Worker& worker_;
  asio::ip::tcp::acceptor acceptor_;
  asio::steady_timer backoff_;
  std::shared_ptr<const ListenerRuntime> runtime_;
};

}  // namespace portcullis::proxy
