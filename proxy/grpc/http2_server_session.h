#pragma once

#include <nghttp2/nghttp2.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "common/grpc/call_context.h"
#include "common/grpc/service_registry.h"
#include "common/result.h"
#include "proxy/grpc/grpc_server_limits.h"
#include "proxy/grpc/grpc_server_stats.h"

namespace portcullis::proxy {

class GrpcServerStream;

// GrpcServerShared is what every connection of one server reads: the method table, limits and
// stats. Immutable (stats are atomics); shared by all workers.
struct GrpcServerShared {
  std::shared_ptr<const grpc::ServiceRegistry> registry;
  GrpcServerLimits limits;
  GrpcServerStats stats;
};

// Http2ServerSession is the server side of one HTTP/2 connection carrying gRPC, without any I/O:
// the transport feeds it received bytes and writes out what produce() returns, and calls
// on_timer() at next_timer(). So it runs the same under asio, in unit tests and in the fuzzer.
// It enforces the limits (streams, header list, message size, output per stream), keepalive and
// ping abuse (GOAWAY ENHANCE_YOUR_CALM), and graceful drain (two GOAWAYs, wire facts §1.6).
// Single-threaded: the owning loop only. Destroying it ends every open call with CANCELLED.
class Http2ServerSession {
 public:
  using Clock = std::chrono::steady_clock;

  // want_write is called whenever output became pending outside receive()/on_timer() (a handler
  // wrote from a posted task): the transport should schedule a flush. It must not call back in.
  static Result<std::unique_ptr<Http2ServerSession>> create(std::shared_ptr<const GrpcServerShared> shared,
                                                            std::shared_ptr<const grpc::PeerInfo> peer,
                                                            std::shared_ptr<grpc::Executor> executor,
                                                            std::function<void()> want_write);
  ~Http2ServerSession();
  Http2ServerSession(const Http2ServerSession&) = delete;
  Http2ServerSession& operator=(const Http2ServerSession&) = delete;

  // receive processes bytes from the peer. False on a fatal protocol error: a GOAWAY is queued;
  // flush produce() and close.
  bool receive(std::span<const uint8_t> data);
  // produce appends up to `max` bytes of pending output to `out`; returns how many.
  size_t produce(std::string& out, size_t max);
  bool wants_write() const;
  // finished: nothing left to read or write (after GOAWAY and the last stream, or fatal).
  bool finished() const;
  std::optional<Clock::time_point> next_timer() const;
  void on_timer();
  // drain starts a graceful shutdown: GOAWAY(2^31-1), then after goaway_grace the final GOAWAY
  // with the last stream we saw; open calls finish on their own.
  void drain();
  size_t open_streams() const { return streams_.size(); }

  // For GrpcServerStream.
  nghttp2_session* h2() { return h2_; }
  const GrpcServerShared& shared() const { return *shared_; }
  const std::shared_ptr<const grpc::PeerInfo>& peer() const { return peer_; }
  const std::shared_ptr<grpc::Executor>& executor() const { return executor_; }
  void notify_output();

 private:
  Http2ServerSession(std::shared_ptr<const GrpcServerShared> shared, std::shared_ptr<const grpc::PeerInfo> peer,
                     std::shared_ptr<grpc::Executor> executor, std::function<void()> want_write);
  Status init();
  GrpcServerStream* stream(int32_t id);
  void on_ping(const nghttp2_frame& frame);
  void fail_connection(uint32_t error_code, std::string_view debug);

  // nghttp2 callbacks (static trampolines in the .cc file).
  friend struct SessionCallbacks;
  int on_begin_headers(const nghttp2_frame& frame);
  int on_header(const nghttp2_frame& frame, std::string_view name, std::string_view value);
  int on_frame_recv(const nghttp2_frame& frame);
  int on_data_chunk(int32_t stream_id, std::span<const uint8_t> data);
  int on_stream_close(int32_t stream_id, uint32_t error_code);
  int on_frame_send(const nghttp2_frame& frame);

  std::shared_ptr<const GrpcServerShared> shared_;
  std::shared_ptr<const grpc::PeerInfo> peer_;
  std::shared_ptr<grpc::Executor> executor_;
  std::function<void()> want_write_;
  nghttp2_session* h2_ = nullptr;
  std::map<int32_t, std::shared_ptr<GrpcServerStream>> streams_;
  bool in_io_ = false;  // inside receive/produce/on_timer: no want_write needed
  bool fatal_ = false;
  // Keepalive and ping policing.
  Clock::time_point last_activity_;
  std::optional<Clock::time_point> ping_sent_;
  std::optional<Clock::time_point> last_client_ping_;
  uint32_t ping_strikes_ = 0;
  // Drain.
  std::optional<Clock::time_point> final_goaway_at_;
};

}  // namespace portcullis::proxy
