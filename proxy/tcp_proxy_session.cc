#include "proxy/tcp_proxy_session.h"

#include <sys/socket.h>

#include <cerrno>

#include <spdlog/spdlog.h>

#include "proxy/worker.h"

namespace portcullis::proxy {
namespace {

// Bound the work one readiness event may do, so a fast bulk connection cannot starve the other
// connections on its worker.
constexpr int kMaxChunksPerEvent = 16;

bool would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

}  // namespace

void TcpProxySession::start(Worker& worker, std::shared_ptr<const ListenerRuntime> listener,
                            asio::ip::tcp::socket downstream) {
  auto session = std::make_shared<TcpProxySession>(worker, std::move(listener), std::move(downstream));
  session->begin();
}

TcpProxySession::TcpProxySession(Worker& worker, std::shared_ptr<const ListenerRuntime> listener,
                                 asio::ip::tcp::socket downstream)
    : worker_(worker),
      listener_(std::move(listener)),
      tcp_proxy_(*listener_->chain.tcp_proxy),
      cluster_(*listener_->cluster),
      downstream_(std::move(downstream)),
      upstream_(worker.io()),
      timer_(worker.io()),
      downstream_to_upstream_{&downstream_, &upstream_},
      upstream_to_downstream_{&upstream_, &downstream_} {
  upstream_to_downstream_.upstream_to_downstream = true;
  listener_->stats.downstream_cx_total.inc();
  listener_->stats.downstream_cx_active.inc();
  listener_->server_stats.total_connections.inc();
  tcp_proxy_.stats().downstream_cx_total.inc();
  worker_.connections().add(this);
}

TcpProxySession::~TcpProxySession() {
  worker_.buffers().release(std::move(downstream_to_upstream_.buffer));
  worker_.buffers().release(std::move(upstream_to_downstream_.buffer));
  worker_.connections().remove(this);
  listener_->stats.downstream_cx_active.dec();
  listener_->stats.downstream_cx_destroy.inc();
  listener_->server_stats.total_connections.dec();
  if (upstream_connected_) {
    cluster_.stats().upstream_cx_active.dec();
    cluster_.stats().upstream_cx_destroy.inc();
  }
}

void TcpProxySession::begin() {
  asio::error_code ec;
  downstream_.non_blocking(true, ec);
  downstream_.set_option(asio::ip::tcp::no_delay(true), ec);
  std::string remote, local;
  auto rep = downstream_.remote_endpoint(ec);
  if (!ec) remote = rep.address().to_string() + ":" + std::to_string(rep.port());
  auto lep = downstream_.local_endpoint(ec);
  if (!ec) local = lep.address().to_string() + ":" + std::to_string(lep.port());
  filters::ConnectionInfo info{0, listener_->name, remote, local, ec ? uint16_t{0} : lep.port()};
  if (listener_->chain.on_new_connection(info) == filters::FilterStatus::kClose) {
    listener_->stats.downstream_cx_filter_denied.inc();
    close();
    return;
  }
  if (cluster_.empty()) {
    cluster_.stats().upstream_cx_none_healthy.inc();
    tcp_proxy_.stats().downstream_cx_no_route.inc();
    close();
    return;
  }
  connect_next();
}

void TcpProxySession::connect_next() {
  ++connect_attempts_;
  connect_timed_out_ = false;
  const asio::ip::tcp::endpoint& endpoint = cluster_.next_endpoint();
  cluster_.stats().upstream_cx_total.inc();
  asio::error_code ec;
  if (upstream_.is_open()) upstream_.close(ec);
  upstream_.open(endpoint.protocol(), ec);
  if (ec) {
    spdlog::warn("cluster {}: cannot open socket: {}", cluster_.name(), ec.message());
    cluster_.stats().upstream_cx_connect_fail.inc();
    connect_failed();
    return;
  }
  upstream_.set_option(asio::ip::tcp::no_delay(true), ec);
  uint32_t attempt = connect_attempts_;
  upstream_.async_connect(endpoint, [self = shared_from_this(), attempt](const std::error_code& e) {
    self->on_connected(attempt, e);
  });
  timer_.expires_after(cluster_.connect_timeout());
  timer_.async_wait([self = shared_from_this(), attempt](const std::error_code& e) {
    self->on_connect_timer(attempt, e);
  });
}

void TcpProxySession::on_connect_timer(uint32_t attempt, const std::error_code& ec) {
  if (ec || state_ != State::kConnecting || attempt != connect_attempts_) return;
  connect_timed_out_ = true;
  cluster_.stats().upstream_cx_connect_timeout.inc();
  asio::error_code ignored;
  upstream_.close(ignored);  // completes the pending connect with operation_aborted
}

void TcpProxySession::on_connected(uint32_t attempt, const std::error_code& ec) {
  if (state_ != State::kConnecting || attempt != connect_attempts_) return;
  if (ec) {
    // Envoy counts a timed-out connect as a failed one too.
    cluster_.stats().upstream_cx_connect_fail.inc();
    spdlog::debug("cluster {}: connect attempt {} failed: {}", cluster_.name(), attempt,
                  connect_timed_out_ ? "timeout" : ec.message());
    connect_failed();
    return;
  }
  timer_.cancel();
  start_proxying();
}

void TcpProxySession::connect_failed() {
  if (connect_attempts_ < tcp_proxy_.max_connect_attempts()) {
    connect_next();
    return;
  }
  cluster_.stats().upstream_cx_connect_attempts_exceeded.inc();
  close();
}

void TcpProxySession::start_proxying() {
  state_ = State::kProxying;
  upstream_connected_ = true;
  cluster_.stats().upstream_cx_active.inc();
  asio::error_code ec;
  upstream_.non_blocking(true, ec);
  last_activity_ = std::chrono::steady_clock::now();
  if (tcp_proxy_.idle_timeout().count() > 0) arm_idle_timer(tcp_proxy_.idle_timeout());
  pump(downstream_to_upstream_);
  if (state_ != State::kClosed) pump(upstream_to_downstream_);
}

void TcpProxySession::pump(Direction& d) {
  for (int chunk = 0; chunk < kMaxChunksPerEvent; ++chunk) {
    if (state_ == State::kClosed) return;
    if (d.begin < d.end) {
      IoResult r = flush(d);
      if (r == IoResult::kError) return close();
      if (r == IoResult::kBlocked) return wait_writable(d);
      if (d.paused) {
        d.paused = false;
        if (!d.upstream_to_downstream) tcp_proxy_.stats().downstream_flow_control_resumed_reading_total.inc();
      }
    }
    if (d.eof) {
      // Everything `from` sent is written: pass its FIN on.
      worker_.buffers().release(std::move(d.buffer));
      ::shutdown(d.to->native_handle(), SHUT_WR);
      d.done = true;
      if (downstream_to_upstream_.done && upstream_to_downstream_.done) close();
      return;
    }
    IoResult r = read_some(d);
    if (r == IoResult::kError) return close();
    if (r == IoResult::kBlocked) {
      worker_.buffers().release(std::move(d.buffer));  // idle: hold no memory
      return wait_readable(d);
    }
  }
  // Budget used up: continue later, after the other connections had their turn.
  worker_.post([self = shared_from_this(), &d] { self->pump(d); });
}

TcpProxySession::IoResult TcpProxySession::read_some(Direction& d) {
  if (!d.buffer) {
    uint32_t size = d.upstream_to_downstream ? cluster_.buffer_limit_bytes() : listener_->buffer_limit_bytes;
    d.buffer = worker_.buffers().acquire(size);
  }
  for (;;) {
    ssize_t n = ::recv(d.from->native_handle(), d.buffer.data.get(), d.buffer.size, 0);
    if (n > 0) {
      d.begin = 0;
      d.end = static_cast<uint32_t>(n);
      count_bytes(d, static_cast<size_t>(n), true);
      last_activity_ = std::chrono::steady_clock::now();
      return IoResult::kProgress;
    }
    if (n == 0) {
      d.eof = true;
      return IoResult::kProgress;
    }
    if (errno == EINTR) continue;
    if (would_block(errno)) return IoResult::kBlocked;
    return IoResult::kError;
  }
}

TcpProxySession::IoResult TcpProxySession::flush(Direction& d) {
  while (d.begin < d.end) {
    ssize_t n = ::send(d.to->native_handle(), d.buffer.data.get() + d.begin, d.end - d.begin, MSG_NOSIGNAL);
    if (n > 0) {
      d.begin += static_cast<uint32_t>(n);
      count_bytes(d, static_cast<size_t>(n), false);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && would_block(errno)) return IoResult::kBlocked;
    return IoResult::kError;
  }
  d.begin = d.end = 0;
  return IoResult::kProgress;
}

void TcpProxySession::count_bytes(const Direction& d, size_t n, bool received) {
  const auto& tcp = tcp_proxy_.stats();
  const auto& cluster = cluster_.stats();
  if (d.upstream_to_downstream) {
    (received ? cluster.upstream_cx_rx_bytes_total : tcp.downstream_cx_tx_bytes_total).inc(n);
  } else {
    (received ? tcp.downstream_cx_rx_bytes_total : cluster.upstream_cx_tx_bytes_total).inc(n);
  }
}

void TcpProxySession::wait_readable(Direction& d) {
  d.from->async_wait(asio::ip::tcp::socket::wait_read, [self = shared_from_this(), &d](const std::error_code& ec) {
    if (!ec) self->pump(d);
  });
}

void TcpProxySession::wait_writable(Direction& d) {
  if (!d.paused) {
    d.paused = true;
    if (!d.upstream_to_downstream) tcp_proxy_.stats().downstream_flow_control_paused_reading_total.inc();
  }
  d.to->async_wait(asio::ip::tcp::socket::wait_write, [self = shared_from_this(), &d](const std::error_code& ec) {
    if (!ec) self->pump(d);
  });
}

void TcpProxySession::arm_idle_timer(std::chrono::nanoseconds after) {
  timer_.expires_after(after);
  timer_.async_wait([self = shared_from_this()](const std::error_code& ec) { self->on_idle_timer(ec); });
}

void TcpProxySession::on_idle_timer(const std::error_code& ec) {
  if (ec || state_ != State::kProxying) return;
  // Reads only stamp last_activity_; re-arming the timer on every read would cost a timer-queue
  // update per chunk. Instead the timer checks on expiry and sleeps for the remainder.
  auto idle_for = std::chrono::steady_clock::now() - last_activity_;
  if (idle_for < tcp_proxy_.idle_timeout()) {
    arm_idle_timer(tcp_proxy_.idle_timeout() - idle_for);
    return;
  }
  tcp_proxy_.stats().idle_timeout.inc();
  close();
}

void TcpProxySession::close() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  asio::error_code ignored;
  timer_.cancel();
  downstream_.close(ignored);
  upstream_.close(ignored);
}

}  // namespace portcullis::proxy
