#include "proxy/grpc/http2_client_session.h"

#include <vector>

#include "proxy/grpc/grpc_client_stream.h"

namespace portcullis::proxy {

struct ClientCallbacks {
  static Http2ClientSession& self(void* p) { return *static_cast<Http2ClientSession*>(p); }
  static int header(nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl, const uint8_t* v, size_t vl,
                    uint8_t, void* p) {
    if (auto* s = self(p).stream(f->hd.stream_id)) {
      s->on_header({reinterpret_cast<const char*>(n), nl}, {reinterpret_cast<const char*>(v), vl});
    }
    return 0;
  }
  static int data_chunk(nghttp2_session*, uint8_t, int32_t id, const uint8_t* d, size_t n, void* p) {
    if (auto* s = self(p).stream(id)) s->on_data({d, n});
    return 0;
  }
  static int frame_recv(nghttp2_session*, const nghttp2_frame* f, void* p) {
    if (f->hd.type == NGHTTP2_GOAWAY) self(p).goaway_ = true;
    return 0;
  }
  static int stream_close(nghttp2_session*, int32_t id, uint32_t code, void* p) {
    auto& streams = self(p).streams_;
    auto it = streams.find(id);
    if (it == streams.end()) return 0;
    auto s = std::move(it->second);
    streams.erase(it);
    s->on_closed(code);
    return 0;
  }
};

namespace {
nghttp2_nv nv(const std::string& name, const std::string& value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
                    NGHTTP2_NV_FLAG_NONE};
}
}  // namespace

Result<std::unique_ptr<Http2ClientSession>> Http2ClientSession::create(std::string authority, uint32_t max_message_bytes,
                                                                       std::function<void()> want_write) {
  std::unique_ptr<Http2ClientSession> s(new Http2ClientSession(std::move(authority), max_message_bytes, std::move(want_write)));
  nghttp2_session_callbacks* cbs = nullptr;
  if (nghttp2_session_callbacks_new(&cbs) != 0) return make_error(ErrorCode::kResourceExhausted, "nghttp2 callbacks");
  nghttp2_session_callbacks_set_on_header_callback(cbs, ClientCallbacks::header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, ClientCallbacks::data_chunk);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, ClientCallbacks::frame_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, ClientCallbacks::stream_close);
  int rv = nghttp2_session_client_new(&s->h2_, cbs, s.get());
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) return make_error(ErrorCode::kResourceExhausted, "nghttp2 session");
  nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                       {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}};
  nghttp2_submit_settings(s->h2_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  return s;
}

Http2ClientSession::Http2ClientSession(std::string authority, uint32_t max_message_bytes, std::function<void()> want_write)
    : authority_(std::move(authority)), max_message_bytes_(max_message_bytes), want_write_(std::move(want_write)) {}

Http2ClientSession::~Http2ClientSession() {
  fail_all({grpc::StatusCode::kUnavailable, "connection closed"});
  nghttp2_session_del(h2_);
}

GrpcClientStream* Http2ClientSession::stream(int32_t id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

std::shared_ptr<grpc::ClientCall> Http2ClientSession::start_call(const std::string& path, const grpc::CallOptions& options,
                                                                 grpc::ClientCallHandlers handlers) {
  std::optional<Clock::time_point> deadline;
  if (options.timeout) deadline = Clock::now() + *options.timeout;
  auto s = std::make_shared<GrpcClientStream>(this, std::move(handlers), deadline, max_message_bytes_);
  if (!usable()) {
    s->fail({grpc::StatusCode::kUnavailable, "connection is going away"});
    return s;
  }
  const std::string kMethod = ":method", kPost = "POST", kScheme = ":scheme", kHttp = "http", kPath = ":path",
                    kAuthority = ":authority", kTe = "te", kTrailers = "trailers", kType = "content-type",
                    kGrpc = "application/grpc", kTimeout = "grpc-timeout";
  std::string timeout = options.timeout ? format_grpc_timeout(*options.timeout) : "";
  std::vector<nghttp2_nv> nva = {nv(kMethod, kPost), nv(kScheme, kHttp), nv(kPath, path), nv(kAuthority, authority_),
                                 nv(kTe, kTrailers), nv(kType, kGrpc)};
  if (options.timeout) nva.push_back(nv(kTimeout, timeout));
  for (const auto& [k, v] : options.metadata) nva.push_back(nv(k, v));
  nghttp2_data_provider provider{};
  provider.source.ptr = s.get();
  provider.read_callback = [](nghttp2_session*, int32_t, uint8_t* buf, size_t len, uint32_t* flags,
                              nghttp2_data_source* src, void*) -> ssize_t {
    return static_cast<GrpcClientStream*>(src->ptr)->read_output(buf, len, flags);
  };
  int32_t id = nghttp2_submit_request(h2_, nullptr, nva.data(), nva.size(), &provider, nullptr);
  if (id < 0) {
    s->fail({grpc::StatusCode::kUnavailable, "cannot start a stream"});
    return s;
  }
  s->set_id(id);
  streams_.emplace(id, s);
  notify_output();
  return s;
}

bool Http2ClientSession::receive(std::span<const uint8_t> data) {
  in_io_ = true;
  ssize_t rv = nghttp2_session_mem_recv(h2_, data.data(), data.size());
  in_io_ = false;
  if (rv < 0) fatal_ = true;
  return !fatal_;
}

size_t Http2ClientSession::produce(std::string& out, size_t max) {
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

bool Http2ClientSession::wants_write() const { return nghttp2_session_want_write(h2_) != 0; }
bool Http2ClientSession::usable() const { return !fatal_ && !goaway_; }

void Http2ClientSession::notify_output() {
  if (!in_io_ && want_write_) want_write_();
}

std::optional<Http2ClientSession::Clock::time_point> Http2ClientSession::next_timer() const {
  std::optional<Clock::time_point> next;
  for (const auto& [id, s] : streams_) {
    if (auto d = s->deadline()) next = next ? std::min(*next, *d) : *d;
  }
  return next;
}

void Http2ClientSession::on_timer() {
  const auto now = Clock::now();
  std::vector<std::shared_ptr<GrpcClientStream>> expired;
  for (const auto& [id, s] : streams_) {
    if (auto d = s->deadline(); d && *d <= now) expired.push_back(s);
  }
  for (auto& s : expired) s->on_deadline();
}

void Http2ClientSession::fail_all(const grpc::GrpcStatus& status) {
  fatal_ = true;
  auto streams = std::move(streams_);
  streams_.clear();
  for (auto& [id, s] : streams) s->fail(status);
}

}  // namespace portcullis::proxy
