#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>

#include "mtls/tls_connection.h"
#include "proxy/buffer_pool.h"
#include "proxy/listener.h"
#include "proxy/live_connection.h"

namespace portcullis::proxy {

class Worker;

// TcpProxySession carries one downstream connection to an upstream endpoint of its listener's
// cluster and pumps bytes both ways until both sides are done. Either side may be TLS: the
// downstream handshake (and SPIFFE verification of the peer) completes before the network filters
// see the connection, the upstream one before any byte is forwarded.
//
// Reactor style: it waits for readiness, then reads and writes the fds (through BoringSSL for TLS
// sides) until they would block. Each direction holds at most one buffer, only while bytes are in
// flight, and stops reading while the other side cannot take more (back-pressure; memory per
// connection is bounded by two buffers). A FIN (or close_notify) in one direction is passed on
// once the buffered bytes are written; the session ends when both directions have ended, on an
// error, on a timeout or when closed by a drain. Lives on one worker; not thread-safe.
class TcpProxySession : public std::enable_shared_from_this<TcpProxySession>, public LiveConnection {
 public:
  static void start(Worker& worker, std::shared_ptr<const ListenerRuntime> listener,
                    asio::ip::tcp::socket downstream);

  TcpProxySession(Worker& worker, std::shared_ptr<const ListenerRuntime> listener,
                  asio::ip::tcp::socket downstream);
  ~TcpProxySession() override;

  void close_now() override { close(); }
  VerifiedPeers verified_peers() const override;
  void close_revoked(const mtls::PeerIdentity& peer, const mtls::RevokedSerial& revoked) override;

 private:
  enum class State { kDownstreamHandshake, kConnecting, kUpstreamHandshake, kProxying, kClosed };

  // One end of the session: a socket, and its TLS state when that end speaks TLS.
  struct Side {
    asio::ip::tcp::socket socket;
    std::unique_ptr<mtls::TlsConnection> tls;
    int fd() { return socket.native_handle(); }
  };

  // One direction of the byte stream.
  struct Direction {
    Side* from = nullptr;
    Side* to = nullptr;
    BufferPool::Buffer buffer{};
    uint32_t begin = 0;
    uint32_t end = 0;
    bool eof = false;                 // `from` finished sending
    bool done = false;                // that end was passed on to `to`
    bool paused = false;              // waiting for `to` to drain
    bool read_wants_write = false;    // TLS: reading `from` needs it writable first
    bool write_wants_read = false;    // TLS: writing `to` needs it readable first
    bool close_notify_sent = false;
    bool drained = false;             // plain: the last read was short, the socket's queue is empty
    // Bulk mode (both sides plaintext): once a read fills the whole buffer, this direction moves
    // bytes with splice(2) through a pipe instead of recv/send through the buffer.
    bool splicing = false;
    int pipe_r = -1;
    int pipe_w = -1;
    uint32_t pipe_bytes = 0;          // spliced in, not yet spliced out
    // Bytes taken from `from` that have not all reached the `to` socket yet (TLS may hold sealed
    // records back).
    bool pending() const { return begin < end || pipe_bytes > 0 || (to->tls && to->tls->has_pending_output()); }
    bool upstream_to_downstream = false;
  };
  enum class IoResult { kProgress, kBlocked, kError };

  void begin();
  void drive_handshake(Side& side);
  void on_handshake_done(Side& side);
  void on_handshake_failed(Side& side);
  void run_filters_and_connect();
  void connect_next();
  void on_connected(uint32_t attempt, const std::error_code& ec);
  void connect_failed();
  void start_upstream();
  void start_proxying();

  void pump(Direction& d);
  IoResult read_some(Direction& d);
  IoResult read_plain(Direction& d);
  void start_splicing(Direction& d);
  uint32_t buffer_limit(const Direction& d) const;
  IoResult read_tls(Direction& d);
  IoResult flush(Direction& d);
  void finish_direction(Direction& d);
  void wait_readable(Direction& d);
  void wait_writable(Direction& d);
  void count_bytes(const Direction& d, size_t n, bool received);

  // audit writes a record about the downstream peer, or about `peer` when given.
  void audit(const char* decision, std::string policy, std::string reason, const mtls::PeerIdentity* peer = nullptr);
  std::string peer_address() const;

  void arm_phase_timer(std::chrono::nanoseconds after);
  void on_phase_timeout();
  void arm_idle_timer(std::chrono::nanoseconds after);
  void on_idle_timer(const std::error_code& ec);
  void close();

  Worker& worker_;
  std::shared_ptr<const ListenerRuntime> listener_;
  const filters::TcpProxyConfig& tcp_proxy_;
  const Cluster& cluster_;
  Side downstream_;
  Side upstream_;
  asio::steady_timer timer_;
  uint64_t id_;
  Direction downstream_to_upstream_;
  Direction upstream_to_downstream_;
  State state_ = State::kConnecting;
  uint32_t connect_attempts_ = 0;
  uint64_t timer_generation_ = 0;
  bool connect_timed_out_ = false;
  bool upstream_connected_ = false;
  std::chrono::steady_clock::time_point last_activity_;
};

}  // namespace portcullis::proxy
