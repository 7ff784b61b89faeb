#include "proxy/tcp_proxy_session.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>

#include <spdlog/spdlog.h>

#include "proxy/worker.h"

namespace portcullis::proxy {
namespace {

// Bound the work one readiness event may do, so a fast bulk connection cannot starve the other
// connections on its worker.
constexpr int kMaxChunksPerEvent = 16;
constexpr uint32_t kReadChunk = 16 * 1024;

bool would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

std::atomic<uint64_t> g_next_connection_id{1};

using Io = mtls::TlsConnection::Io;

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
      downstream_{std::move(downstream), nullptr},
      upstream_{asio::ip::tcp::socket(worker.io()), nullptr},
      timer_(worker.io()),
      id_(g_next_connection_id.fetch_add(1, std::memory_order_relaxed)),
      downstream_to_upstream_{.from = &downstream_, .to = &upstream_},
      upstream_to_downstream_{.from = &upstream_, .to = &downstream_, .upstream_to_downstream = true} {
  listener_->stats.downstream_cx_total.inc();
  listener_->stats.downstream_cx_active.inc();
  listener_->server_stats.total_connections.inc();
  tcp_proxy_.stats().downstream_cx_total.inc();
  worker_.connections().add(this);
}

TcpProxySession::~TcpProxySession() {
  for (Direction* d : {&downstream_to_upstream_, &upstream_to_downstream_}) {
    if (d->pipe_r >= 0) ::close(d->pipe_r);
    if (d->pipe_w >= 0) ::close(d->pipe_w);
  }
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
  downstream_.socket.non_blocking(true, ec);
  downstream_.socket.set_option(asio::ip::tcp::no_delay(true), ec);
  if (!listener_->tls) {
    run_filters_and_connect();
    return;
  }
  auto tls = mtls::TlsConnection::create(listener_->tls, downstream_.fd());
  if (!tls.ok()) {
    spdlog::error("listener {}: {}", listener_->name, tls.error().message);
    listener_->ssl_stats->connection_error.inc();
    close();
    return;
  }
  downstream_.tls = std::move(tls.value());
  downstream_.tls->skip_read_after_short_read(true);  // every wait here re-arms epoll (MOD)
  state_ = State::kDownstreamHandshake;
  // As in Envoy, transport_socket_connect_timeout applies only when nonzero (like idle_timeout).
  if (listener_->handshake_timeout.count() > 0) arm_phase_timer(listener_->handshake_timeout);
  drive_handshake(downstream_);
}

void TcpProxySession::drive_handshake(Side& side) {
  if (state_ == State::kClosed) return;
  Io io = side.tls->handshake();
  if (io == Io::kDone) return on_handshake_done(side);
  if (io == Io::kError || io == Io::kEof) return on_handshake_failed(side);
  auto wait = io == Io::kWantRead ? asio::ip::tcp::socket::wait_read : asio::ip::tcp::socket::wait_write;
  side.socket.async_wait(wait, [self = shared_from_this(), &side](const std::error_code& ec) {
    if (!ec) self->drive_handshake(side);
  });
}

void TcpProxySession::on_handshake_done(Side& side) {
  if (&side == &downstream_) {
    listener_->ssl_stats->handshake.inc();
    if (side.tls->session_reused()) listener_->ssl_stats->session_reused.inc();
    run_filters_and_connect();
    return;
  }
  cluster_.ssl_stats().handshake.inc();
  if (side.tls->session_reused()) cluster_.ssl_stats().session_reused.inc();
  start_proxying();
}

void TcpProxySession::on_handshake_failed(Side& side) {
  const SslStats& ssl = &side == &downstream_ ? *listener_->ssl_stats : cluster_.ssl_stats();
  const char* decision = &side == &downstream_ ? "handshake_failed" : "upstream_handshake_failed";
  if (const auto& verify = side.tls->verify_error()) {
    ssl.count_rejection(verify->reason);
    audit(decision, "", std::string(mtls::svid_rejection_name(verify->reason)) + ": " + verify->message);
  } else {
    ssl.connection_error.inc();
    audit(decision, "", side.tls->error());
  }
  spdlog::debug("{} {}: TLS handshake failed: {}", &side == &downstream_ ? "listener" : "cluster",
                &side == &downstream_ ? listener_->name : cluster_.name(), side.tls->error());
  if (&side == &upstream_) cluster_.stats().upstream_cx_connect_fail.inc();
  close();
}

void TcpProxySession::run_filters_and_connect() {
  asio::error_code ec;
  std::string remote, local;
  auto rep = downstream_.socket.remote_endpoint(ec);
  if (!ec) remote = rep.address().to_string() + ":" + std::to_string(rep.port());
  auto lep = downstream_.socket.local_endpoint(ec);
  if (!ec) local = lep.address().to_string() + ":" + std::to_string(lep.port());
  filters::ConnectionInfo info;
  info.id = id_;
  info.listener = listener_->name;
  info.remote_address = remote;
  info.local_address = local;
  info.local_port = ec ? uint16_t{0} : lep.port();
  if (!ec) info.local_ip.parse(lep.address().to_string());
  if (rep.port() != 0) info.remote_ip.parse(rep.address().to_string());
  std::string sni;
  if (downstream_.tls) {
    info.tls = true;
    if (downstream_.tls->peer()) info.peer = &*downstream_.tls->peer();
    sni = downstream_.tls->server_name();
    info.requested_server_name = sni;
  }
  filters::FilterVerdict verdict;
  if (listener_->chain.on_new_connection(info, verdict) == filters::FilterStatus::kClose) {
    listener_->stats.downstream_cx_filter_denied.inc();
    audit("deny", std::move(verdict.policy), std::move(verdict.reason));
    close();
    return;
  }
  audit("allow", std::move(verdict.policy), verdict.reason.empty() ? "no policy on this listener" : std::move(verdict.reason));
  if (cluster_.empty()) {
    cluster_.stats().upstream_cx_none_healthy.inc();
    tcp_proxy_.stats().downstream_cx_no_route.inc();
    close();
    return;
  }
  state_ = State::kConnecting;
  connect_next();
}

void TcpProxySession::connect_next() {
  ++connect_attempts_;
  connect_timed_out_ = false;
  const asio::ip::tcp::endpoint& endpoint = cluster_.next_endpoint();
  cluster_.stats().upstream_cx_total.inc();
  asio::error_code ec;
  if (upstream_.socket.is_open()) upstream_.socket.close(ec);
  upstream_.socket.open(endpoint.protocol(), ec);
  if (ec) {
    spdlog::warn("cluster {}: cannot open socket: {}", cluster_.name(), ec.message());
    cluster_.stats().upstream_cx_connect_fail.inc();
    connect_failed();
    return;
  }
  upstream_.socket.set_option(asio::ip::tcp::no_delay(true), ec);
  uint32_t attempt = connect_attempts_;
  upstream_.socket.async_connect(endpoint, [self = shared_from_this(), attempt](const std::error_code& e) {
    self->on_connected(attempt, e);
  });
  arm_phase_timer(cluster_.connect_timeout());
}

void TcpProxySession::on_connected(uint32_t attempt, const std::error_code& ec) {
  if (state_ != State::kConnecting || attempt != connect_attempts_) return;
  // The timer may have fired in the same loop turn as a successful connect: its close wins.
  if (ec || connect_timed_out_ || !upstream_.socket.is_open()) {
    // Envoy counts a timed-out connect as a failed one too.
    cluster_.stats().upstream_cx_connect_fail.inc();
    spdlog::debug("cluster {}: connect attempt {} failed: {}", cluster_.name(), attempt,
                  connect_timed_out_ ? "timeout" : ec.message());
    connect_failed();
    return;
  }
  upstream_connected_ = true;
  cluster_.stats().upstream_cx_active.inc();
  asio::error_code ignored;
  upstream_.socket.non_blocking(true, ignored);
  start_upstream();
}

void TcpProxySession::connect_failed() {
  if (connect_attempts_ < tcp_proxy_.max_connect_attempts()) {
    connect_next();
    return;
  }
  cluster_.stats().upstream_cx_connect_attempts_exceeded.inc();
  close();
}

void TcpProxySession::start_upstream() {
  if (!cluster_.tls()) {
    start_proxying();
    return;
  }
  auto tls = mtls::TlsConnection::create(cluster_.tls(), upstream_.fd(), cluster_.tls()->config().sni);
  if (!tls.ok()) {
    spdlog::error("cluster {}: {}", cluster_.name(), tls.error().message);
    cluster_.ssl_stats().connection_error.inc();
    close();
    return;
  }
  upstream_.tls = std::move(tls.value());
  upstream_.tls->skip_read_after_short_read(true);
  upstream_.tls->use_session_cache(&worker_.tls_sessions());
  state_ = State::kUpstreamHandshake;
  arm_phase_timer(cluster_.connect_timeout());
  drive_handshake(upstream_);
}

void TcpProxySession::start_proxying() {
  state_ = State::kProxying;
  ++timer_generation_;  // retire the handshake/connect timer
  last_activity_ = std::chrono::steady_clock::now();
  if (tcp_proxy_.idle_timeout().count() > 0) arm_idle_timer(tcp_proxy_.idle_timeout());
  pump(downstream_to_upstream_);
  if (state_ != State::kClosed) pump(upstream_to_downstream_);
}

void TcpProxySession::pump(Direction& d) {
  for (int chunk = 0; chunk < kMaxChunksPerEvent; ++chunk) {
    if (state_ == State::kClosed) return;
    if (d.pending()) {
      IoResult r = flush(d);
      if (r == IoResult::kError) return close();
      if (r == IoResult::kBlocked) return wait_writable(d);
      if (d.paused) {
        d.paused = false;
        if (!d.upstream_to_downstream) tcp_proxy_.stats().downstream_flow_control_resumed_reading_total.inc();
      }
    }
    if (d.eof) return finish_direction(d);
    if (d.drained) {
      // The last plaintext read returned less than the buffer holds: the socket's queue was
      // empty, so another recv() would only return EAGAIN. Wait for the next edge instead;
      // re-arming the wait (EPOLL_CTL_MOD) reports data that arrived in between.
      d.drained = false;
      worker_.buffers().release(std::move(d.buffer));
      return wait_readable(d);
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

void TcpProxySession::finish_direction(Direction& d) {
  // Everything `from` sent is written: pass its end on (close_notify, then FIN).
  worker_.buffers().release(std::move(d.buffer));
  if (d.to->tls && !d.close_notify_sent) {
    Io io = d.to->tls->close_notify();
    if (io == Io::kWantWrite || io == Io::kWantRead) {
      auto what = io == Io::kWantWrite ? asio::ip::tcp::socket::wait_write : asio::ip::tcp::socket::wait_read;
      d.to->socket.async_wait(what, [self = shared_from_this(), &d](const std::error_code& ec) {
        if (!ec && self->state_ != State::kClosed) self->finish_direction(d);
      });
      return;
    }
    d.close_notify_sent = true;
  }
  ::shutdown(d.to->fd(), SHUT_WR);
  d.done = true;
  if (downstream_to_upstream_.done && upstream_to_downstream_.done) close();
}

TcpProxySession::IoResult TcpProxySession::read_some(Direction& d) {
  if (!d.buffer && !d.splicing) d.buffer = worker_.buffers().acquire(buffer_limit(d));
  d.begin = d.end = 0;
  IoResult r = d.from->tls ? read_tls(d) : read_plain(d);
  if (r == IoResult::kProgress) last_activity_ = std::chrono::steady_clock::now();
  return r;
}

TcpProxySession::IoResult TcpProxySession::read_plain(Direction& d) {
  for (;;) {
    // Spliced reads go socket -> pipe -> socket without touching user space; the first read of a
    // direction goes through the buffer and switches to splicing when it fills it (bulk).
    const uint32_t want = d.splicing ? std::min(buffer_limit(d), kReadChunk) : d.buffer.size;
    ssize_t n = d.splicing ? ::splice(d.from->fd(), nullptr, d.pipe_w, nullptr, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
                           : ::recv(d.from->fd(), d.buffer.data.get(), want, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return would_block(errno) ? IoResult::kBlocked : IoResult::kError;  // the pipe is empty here
    if (n == 0) {
      d.eof = true;
      return IoResult::kProgress;
    }
    (d.splicing ? d.pipe_bytes : d.end) = static_cast<uint32_t>(n);
    d.drained = static_cast<uint32_t>(n) < want;
    if (!d.splicing && !d.drained && !d.to->tls) start_splicing(d);
    count_bytes(d, static_cast<size_t>(n), true);
    return IoResult::kProgress;
  }
}

void TcpProxySession::start_splicing(Direction& d) {
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return;  // no fds to spare: keep copying
  d.pipe_r = fds[0];
  d.pipe_w = fds[1];
  ::fcntl(d.pipe_w, F_SETPIPE_SZ, static_cast<int>(buffer_limit(d)) * 4);
  d.splicing = true;
}

uint32_t TcpProxySession::buffer_limit(const Direction& d) const {
  return d.upstream_to_downstream ? cluster_.buffer_limit_bytes() : listener_->buffer_limit_bytes;
}

TcpProxySession::IoResult TcpProxySession::read_tls(Direction& d) {
  // Fill the buffer with as many records as are ready, so the other side gets one large write.
  while (d.end < d.buffer.size) {
    size_t n = 0;
    Io io = d.from->tls->read(d.buffer.data.get() + d.end, d.buffer.size - d.end, &n);
    if (io == Io::kDone) {
      d.end += static_cast<uint32_t>(n);
      count_bytes(d, n, true);
      continue;
    }
    if (io == Io::kEof) {
      d.eof = true;
      break;
    }
    if (io == Io::kError) return IoResult::kError;
    d.read_wants_write = io == Io::kWantWrite;
    break;
  }
  return d.end > 0 || d.eof ? IoResult::kProgress : IoResult::kBlocked;
}

TcpProxySession::IoResult TcpProxySession::flush(Direction& d) {
  while (d.pipe_bytes > 0) {
    ssize_t n = ::splice(d.pipe_r, nullptr, d.to->fd(), nullptr, d.pipe_bytes, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      d.pipe_bytes -= static_cast<uint32_t>(n);
      count_bytes(d, static_cast<size_t>(n), false);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && would_block(errno)) return IoResult::kBlocked;
    return IoResult::kError;
  }
  while (d.begin < d.end) {
    size_t n = 0;
    if (d.to->tls) {
      Io io = d.to->tls->write(d.buffer.data.get() + d.begin, d.end - d.begin, &n);
      if (io == Io::kWantRead || io == Io::kWantWrite) {
        d.write_wants_read = io == Io::kWantRead;
        return IoResult::kBlocked;
      }
      if (io != Io::kDone) return IoResult::kError;
    } else {
      ssize_t sent = ::send(d.to->fd(), d.buffer.data.get() + d.begin, d.end - d.begin, MSG_NOSIGNAL);
      if (sent < 0 && errno == EINTR) continue;
      if (sent < 0 && would_block(errno)) return IoResult::kBlocked;
      if (sent <= 0) return IoResult::kError;
      n = static_cast<size_t>(sent);
    }
    d.begin += static_cast<uint32_t>(n);
    count_bytes(d, n, false);
  }
  if (d.to->tls) {
    Io io = d.to->tls->flush_output();
    if (io == Io::kWantWrite) return IoResult::kBlocked;
    if (io != Io::kDone) return IoResult::kError;
  }
  last_activity_ = std::chrono::steady_clock::now();  // a peer still draining is not idle
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
  auto what = d.read_wants_write ? asio::ip::tcp::socket::wait_write : asio::ip::tcp::socket::wait_read;
  d.read_wants_write = false;
  d.from->socket.async_wait(what, [self = shared_from_this(), &d](const std::error_code& ec) {
    if (!ec) self->pump(d);
  });
}

void TcpProxySession::wait_writable(Direction& d) {
  if (!d.paused) {
    d.paused = true;
    if (!d.upstream_to_downstream) tcp_proxy_.stats().downstream_flow_control_paused_reading_total.inc();
  }
  auto what = d.write_wants_read ? asio::ip::tcp::socket::wait_read : asio::ip::tcp::socket::wait_write;
  d.write_wants_read = false;
  d.to->socket.async_wait(what, [self = shared_from_this(), &d](const std::error_code& ec) {
    if (!ec) self->pump(d);
  });
}

std::string TcpProxySession::peer_address() const {
  asio::error_code ec;
  auto ep = downstream_.socket.remote_endpoint(ec);
  if (ec) return "";
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

TcpProxySession::VerifiedPeers TcpProxySession::verified_peers() const {
  VerifiedPeers out;
  if (state_ == State::kClosed) return out;  // closed already, still linked until destroyed
  if (downstream_.tls && downstream_.tls->peer()) out.downstream = &*downstream_.tls->peer();
  if (upstream_.tls && upstream_.tls->peer()) out.upstream = &*upstream_.tls->peer();
  return out;
}

void TcpProxySession::close_revoked(const mtls::PeerIdentity& peer, const mtls::RevokedSerial& revoked) {
  const bool downstream = downstream_.tls && downstream_.tls->peer() && &*downstream_.tls->peer() == &peer;
  spdlog::info("{} {}: closing connection {}: {} peer {} presented revoked serial {}",
               downstream ? "listener" : "cluster", downstream ? listener_->name : cluster_.name(), id_,
               downstream ? "downstream" : "upstream", peer.spiffe_id, peer.serial);
  audit("revoked", "", std::string(downstream ? "downstream" : "upstream") + " peer certificate serial " + peer.serial +
                           " was revoked", &peer);
  close();
}

void TcpProxySession::audit(const char* decision, std::string policy, std::string reason, const mtls::PeerIdentity* peer) {
  if (listener_->audit == nullptr) return;
  AuditRecord r;
  r.connection_id = id_;
  r.listener = listener_->name;
  r.peer_address = peer_address();
  if (peer == nullptr && downstream_.tls && downstream_.tls->peer()) peer = &*downstream_.tls->peer();
  if (peer != nullptr) {
    r.peer_spiffe_id = peer->spiffe_id;
    r.cert_serial = peer->serial;
  }
  r.decision = decision;
  r.policy = std::move(policy);
  r.reason = std::move(reason);
  listener_->audit->record(std::move(r));
}

void TcpProxySession::arm_phase_timer(std::chrono::nanoseconds after) {
  uint64_t generation = ++timer_generation_;
  timer_.expires_after(after);
  timer_.async_wait([self = shared_from_this(), generation](const std::error_code& ec) {
    if (!ec && generation == self->timer_generation_) self->on_phase_timeout();
  });
}

void TcpProxySession::on_phase_timeout() {
  switch (state_) {
    case State::kDownstreamHandshake:
      listener_->ssl_stats->handshake_timeout.inc();
      audit("handshake_failed", "", "handshake timeout");
      close();
      return;
    case State::kConnecting: {
      connect_timed_out_ = true;
      cluster_.stats().upstream_cx_connect_timeout.inc();
      asio::error_code ignored;
      upstream_.socket.close(ignored);  // completes the pending connect with operation_aborted
      return;
    }
    case State::kUpstreamHandshake:
      cluster_.ssl_stats().handshake_timeout.inc();
      cluster_.stats().upstream_cx_connect_timeout.inc();
      close();
      return;
    default:
      return;
  }
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
  ++timer_generation_;
  asio::error_code ignored;
  timer_.cancel();
  downstream_.socket.close(ignored);
  upstream_.socket.close(ignored);
}

}  // namespace portcullis::proxy
