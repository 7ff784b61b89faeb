#include "proxy/grpc/http2_server_session.h"

#include <algorithm>
#include <cstring>

#include "proxy/grpc/grpc_server_stream.h"

namespace portcullis::proxy {

// Trampolines from nghttp2's C callbacks to the session. None may throw: handlers run inside
// them and are wrapped by GrpcServerStream.
struct SessionCallbacks {
  static Http2ServerSession& self(void* p) { return *static_cast<Http2ServerSession*>(p); }
  static int begin_headers(nghttp2_session*, const nghttp2_frame* f, void* p) { return self(p).on_begin_headers(*f); }
  static int header(nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl, const uint8_t* v, size_t vl,
                    uint8_t, void* p) {
    return self(p).on_header(*f, {reinterpret_cast<const char*>(n), nl}, {reinterpret_cast<const char*>(v), vl});
  }
  static int frame_recv(nghttp2_session*, const nghttp2_frame* f, void* p) { return self(p).on_frame_recv(*f); }
  static int data_chunk(nghttp2_session*, uint8_t, int32_t id, const uint8_t* d, size_t n, void* p) {
    return self(p).on_data_chunk(id, {d, n});
  }
  static int stream_close(nghttp2_session*, int32_t id, uint32_t code, void* p) { return self(p).on_stream_close(id, code); }
  static int frame_send(nghttp2_session*, const nghttp2_frame* f, void* p) { return self(p).on_frame_send(*f); }
  static int invalid_frame(nghttp2_session*, const nghttp2_frame*, int, void* p) {
    self(p).shared_->stats.protocol_errors.inc();
    return 0;
  }
};

Result<std::unique_ptr<Http2ServerSession>> Http2ServerSession::create(std::shared_ptr<const GrpcServerShared> shared,
                                                                       std::shared_ptr<const grpc::PeerInfo> peer,
                                                                       std::shared_ptr<grpc::Executor> executor,
                                                                       std::function<void()> want_write) {
  std::unique_ptr<Http2ServerSession> s(
      new Http2ServerSession(std::move(shared), std::move(peer), std::move(executor), std::move(want_write)));
  Status st = s->init();
  if (!st.ok()) return st.error();
  return s;
}

Http2ServerSession::Http2ServerSession(std::shared_ptr<const GrpcServerShared> shared,
                                       std::shared_ptr<const grpc::PeerInfo> peer,
                                       std::shared_ptr<grpc::Executor> executor, std::function<void()> want_write)
    : shared_(std::move(shared)), peer_(std::move(peer)), executor_(std::move(executor)),
      want_write_(std::move(want_write)), last_activity_(Clock::now()) {}

Status Http2ServerSession::init() {
  nghttp2_session_callbacks* cbs = nullptr;
  if (nghttp2_session_callbacks_new(&cbs) != 0) return make_error(ErrorCode::kResourceExhausted, "nghttp2 callbacks");
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, SessionCallbacks::begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, SessionCallbacks::header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, SessionCallbacks::frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, SessionCallbacks::data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, SessionCallbacks::stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, SessionCallbacks::frame_send);
  nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, SessionCallbacks::invalid_frame);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  // Bounds the ACKs (SETTINGS, PING) a peer can make us queue without reading them.
  nghttp2_option_set_max_outbound_ack(opt, 1000);
  int rv = nghttp2_session_server_new2(&h2_, cbs, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) return make_error(ErrorCode::kResourceExhausted, "nghttp2 session");
  const GrpcServerLimits& l = shared_->limits;
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, l.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, l.initial_window_bytes},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, l.max_header_list_bytes},
  };
  nghttp2_submit_settings(h2_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  // The connection window bounds what all streams together may have in flight to us.
  nghttp2_session_set_local_window_size(h2_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<int32_t>(std::min<uint64_t>(uint64_t{l.initial_window_bytes} * 4,
                                                                                (1u << 31) - 1)));
  return {};
}

Http2ServerSession::~Http2ServerSession() {
  // Calls outlive the connection only as detached handles; their on_done sees CANCELLED.
  auto streams = std::move(streams_);
  shared_->stats.streams_active.dec(static_cast<int64_t>(streams.size()));
  for (auto& [id, s] : streams) s->detach();
  if (h2_) nghttp2_session_del(h2_);
}

GrpcServerStream* Http2ServerSession::stream(int32_t id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

bool Http2ServerSession::receive(std::span<const uint8_t> data) {
  if (fatal_) return false;
  in_io_ = true;
  last_activity_ = Clock::now();
  ssize_t rv = nghttp2_session_mem_recv(h2_, data.data(), data.size());
  in_io_ = false;
  if (rv < 0) {
    shared_->stats.protocol_errors.inc();
    // nghttp2 queued a GOAWAY for protocol errors (bad preface, flooding); send it and close.
    fail_connection(NGHTTP2_PROTOCOL_ERROR, nghttp2_strerror(static_cast<int>(rv)));
    return false;
  }
  return !fatal_;
}

size_t Http2ServerSession::produce(std::string& out, size_t max) {
  size_t total = 0;
  in_io_ = true;
  while (total < max) {
    const uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(h2_, &data);
    if (n <= 0) break;
    out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    total += static_cast<size_t>(n);
  }
  in_io_ = false;
  return total;
}

bool Http2ServerSession::wants_write() const { return nghttp2_session_want_write(h2_) != 0; }

bool Http2ServerSession::finished() const {
  if (fatal_) return !wants_write();
  return nghttp2_session_want_read(h2_) == 0 && nghttp2_session_want_write(h2_) == 0;
}

void Http2ServerSession::notify_output() {
  if (!in_io_ && want_write_) want_write_();
}

void Http2ServerSession::fail_connection(uint32_t error_code, std::string_view debug) {
  if (fatal_) return;
  fatal_ = true;
  nghttp2_submit_goaway(h2_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h2_), error_code,
                        reinterpret_cast<const uint8_t*>(debug.data()), debug.size());
  shared_->stats.goaway_sent.inc();
  notify_output();
}

void Http2ServerSession::drain() {
  if (final_goaway_at_ || fatal_) return;
  nghttp2_submit_shutdown_notice(h2_);
  shared_->stats.goaway_sent.inc();
  final_goaway_at_ = Clock::now() + shared_->limits.goaway_grace;
  notify_output();
}

std::optional<Http2ServerSession::Clock::time_point> Http2ServerSession::next_timer() const {
  const GrpcServerLimits& l = shared_->limits;
  auto keepalive = ping_sent_ ? *ping_sent_ + l.keepalive_timeout : last_activity_ + l.keepalive_time;
  std::optional<Clock::time_point> next = std::chrono::time_point_cast<Clock::duration>(keepalive);
  if (final_goaway_at_) next = std::min(*next, *final_goaway_at_);
  for (const auto& [id, s] : streams_) {
    if (auto d = s->deadline()) next = std::min(*next, *d);
  }
  return next;
}

void Http2ServerSession::on_timer() {
  const auto now = Clock::now();
  const GrpcServerLimits& l = shared_->limits;
  in_io_ = true;
  // Copy: a deadline ends the call, which may close the stream and erase it from the map.
  std::vector<std::shared_ptr<GrpcServerStream>> expired;
  for (const auto& [id, s] : streams_) {
    if (auto d = s->deadline(); d && *d <= now) expired.push_back(s);
  }
  for (auto& s : expired) s->on_deadline();
  if (final_goaway_at_ && *final_goaway_at_ <= now) {
    nghttp2_submit_goaway(h2_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h2_), NGHTTP2_NO_ERROR,
                          nullptr, 0);
    shared_->stats.goaway_sent.inc();
    final_goaway_at_ = Clock::time_point::max();
  }
  if (ping_sent_ && now >= *ping_sent_ + l.keepalive_timeout) {
    shared_->stats.keepalive_timeout.inc();
    fail_connection(NGHTTP2_NO_ERROR, "keepalive ping timed out");
  } else if (!ping_sent_ && now >= last_activity_ + l.keepalive_time) {
    uint8_t opaque[8] = {'k', 'e', 'e', 'p', 'a', 'l', 'v', 'e'};
    nghttp2_submit_ping(h2_, NGHTTP2_FLAG_NONE, opaque);
    ping_sent_ = now;
  }
  in_io_ = false;
}

void Http2ServerSession::on_ping(const nghttp2_frame& frame) {
  if (frame.hd.flags & NGHTTP2_FLAG_ACK) {
    ping_sent_.reset();
    return;
  }
  // gRPC's policy (wire facts §1.6): pings closer together than min_ping_interval while no call
  // is active are strikes; past max_ping_strikes the client is told to calm down and dropped.
  const auto now = Clock::now();
  if (streams_.empty() && last_client_ping_ && now - *last_client_ping_ < shared_->limits.min_ping_interval) {
    if (++ping_strikes_ > shared_->limits.max_ping_strikes) {
      shared_->stats.ping_strikes_exceeded.inc();
      fail_connection(NGHTTP2_ENHANCE_YOUR_CALM, "too_many_pings");
    }
  }
  last_client_ping_ = now;
}

int Http2ServerSession::on_begin_headers(const nghttp2_frame& frame) {
  if (frame.hd.type != NGHTTP2_HEADERS || frame.headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  // nghttp2 enforces our SETTINGS limit only once the client has acknowledged it; refuse extra
  // streams ourselves so the limit holds from the first frame.
  if (streams_.size() >= shared_->limits.max_concurrent_streams) {
    nghttp2_submit_rst_stream(h2_, NGHTTP2_FLAG_NONE, frame.hd.stream_id, NGHTTP2_REFUSED_STREAM);
    return 0;
  }
  streams_.emplace(frame.hd.stream_id, std::make_shared<GrpcServerStream>(this, frame.hd.stream_id));
  shared_->stats.streams_active.inc();
  return 0;
}

int Http2ServerSession::on_header(const nghttp2_frame& frame, std::string_view name, std::string_view value) {
  if (frame.hd.type != NGHTTP2_HEADERS) return 0;
  if (GrpcServerStream* s = stream(frame.hd.stream_id)) s->add_header(name, value);
  return 0;
}

int Http2ServerSession::on_frame_recv(const nghttp2_frame& frame) {
  switch (frame.hd.type) {
    case NGHTTP2_PING: on_ping(frame); return 0;
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA: break;
    default: return 0;
  }
  auto it = streams_.find(frame.hd.stream_id);
  if (it == streams_.end()) return 0;
  auto s = it->second;  // keep alive: the handler may end the call inside
  if (frame.hd.type == NGHTTP2_HEADERS) {
    if (frame.headers.cat == NGHTTP2_HCAT_REQUEST) s->on_headers_complete();
    else if (!(frame.hd.flags & NGHTTP2_FLAG_END_STREAM)) {
      // Request trailers must end the stream; a second HEADERS block in the middle is malformed.
      nghttp2_submit_rst_stream(h2_, NGHTTP2_FLAG_NONE, frame.hd.stream_id, NGHTTP2_PROTOCOL_ERROR);
      return 0;
    }
  }
  if (frame.hd.flags & NGHTTP2_FLAG_END_STREAM) s->on_remote_end();
  return 0;
}

int Http2ServerSession::on_data_chunk(int32_t stream_id, std::span<const uint8_t> data) {
  auto it = streams_.find(stream_id);
  if (it != streams_.end()) {
    auto s = it->second;
    s->on_data(data);
  }
  return 0;
}

int Http2ServerSession::on_stream_close(int32_t stream_id, uint32_t error_code) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return 0;
  auto s = std::move(it->second);
  streams_.erase(it);
  shared_->stats.streams_active.dec();
  s->on_closed(error_code);
  return 0;
}

int Http2ServerSession::on_frame_send(const nghttp2_frame& frame) {
  if (frame.hd.type == NGHTTP2_DATA || frame.hd.type == NGHTTP2_HEADERS) ping_strikes_ = 0;
  if ((frame.hd.type == NGHTTP2_DATA || frame.hd.type == NGHTTP2_HEADERS) && (frame.hd.flags & NGHTTP2_FLAG_END_STREAM)) {
    // We ended the call before the client ended its side (an early status): tell it to stop
    // sending with RST_STREAM(NO_ERROR), as gRPC servers do (wire facts §1.5).
    if (GrpcServerStream* s = stream(frame.hd.stream_id)) {
      s->set_local_closed();
      if (!s->remote_closed()) nghttp2_submit_rst_stream(h2_, NGHTTP2_FLAG_NONE, frame.hd.stream_id, NGHTTP2_NO_ERROR);
    }
  }
  return 0;
}

}  // namespace portcullis::proxy
