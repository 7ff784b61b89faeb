// Http2ServerSession without sockets: an nghttp2 client session in the test talks to it through
// memory, so gRPC semantics (trailers, trailers-only errors, 415, limits, deadlines, bidi,
// cancellation) are checked frame-exactly and fast.
#include <nghttp2/nghttp2.h>

#include <gtest/gtest.h>

#include <map>
#include <thread>

#include "common/grpc/fake_server_call.h"
#include "common/grpc/health_service.h"
#include "proxy/grpc/grpc_wire.h"
#include "proxy/grpc/http2_server_session.h"

namespace portcullis::proxy {
namespace {

using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;

struct Response {
  std::map<std::string, std::string> headers;  // response headers and trailers together
  std::string data;
  bool closed = false;
  uint32_t rst = 0;
};

// TestClient is an nghttp2 client session wired to a server session in memory.
class TestClient {
 public:
  explicit TestClient(GrpcServerLimits limits = {}) {
    registry_ = std::make_shared<grpc::ServiceRegistry>();
    health_ = grpc::HealthService::create();
    EXPECT_TRUE(health_->register_with(*registry_).ok());
    EXPECT_TRUE((registry_->add_bidi<HealthCheckRequest, HealthCheckResponse>(
                     "/t.T/Bidi", [](grpc::BidiStream<HealthCheckRequest, HealthCheckResponse> s) {
                       s.on_message([s](HealthCheckRequest&&) { s.write(HealthCheckResponse()); });
                       s.on_half_close([s] { s.finish(); });
                     }))
                    .ok());
    EXPECT_TRUE((registry_->add_unary_async<HealthCheckRequest, HealthCheckResponse>(
                     "/t.T/Hang", [this](const grpc::ServerCallContext&, const HealthCheckRequest&,
                                         grpc::UnaryReply<HealthCheckResponse> r) { hung_.push_back(r); }))
                    .ok());
    shared_ = std::make_shared<GrpcServerShared>(GrpcServerShared{registry_, limits, GrpcServerStats::create(stats_, "t")});
    executor_ = std::make_shared<grpc::ManualExecutor>();
    server_ = std::move(Http2ServerSession::create(shared_, std::make_shared<grpc::PeerInfo>(), executor_, [] {}).value());
    nghttp2_session_callbacks* cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(
        cbs, [](nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl, const uint8_t* v, size_t vl, uint8_t,
                void* p) {
          static_cast<TestClient*>(p)->responses_[f->hd.stream_id].headers[std::string((const char*)n, nl)] =
              std::string((const char*)v, vl);
          return 0;
        });
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cbs, [](nghttp2_session*, uint8_t, int32_t id, const uint8_t* d, size_t n, void* p) {
          static_cast<TestClient*>(p)->responses_[id].data.append((const char*)d, n);
          return 0;
        });
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, [](nghttp2_session*, int32_t id, uint32_t code, void* p) {
      auto& r = static_cast<TestClient*>(p)->responses_[id];
      r.closed = true;
      r.rst = code;
      return 0;
    });
    nghttp2_session_client_new(&client_, cbs, this);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(client_, NGHTTP2_FLAG_NONE, nullptr, 0);
  }
  ~TestClient() { nghttp2_session_del(client_); }

  // start sends request headers (and `body`, ending the stream when `end`); returns the stream id.
  int32_t start(const std::string& path, const std::string& body, bool end = true,
                std::vector<std::pair<std::string, std::string>> extra = {}, const std::string& content_type = "application/grpc") {
    std::vector<std::pair<std::string, std::string>> h = {{":method", "POST"}, {":scheme", "http"}, {":path", path},
                                                          {":authority", "t"}, {"te", "trailers"}, {"content-type", content_type}};
    h.insert(h.end(), extra.begin(), extra.end());
    std::vector<nghttp2_nv> nva;
    for (auto& [k, v] : h) nva.push_back({(uint8_t*)k.data(), (uint8_t*)v.data(), k.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
    body_[next_] = body;
    end_[next_] = end;
    nghttp2_data_provider p{};
    p.source.ptr = this;
    p.read_callback = [](nghttp2_session*, int32_t id, uint8_t* buf, size_t len, uint32_t* flags, nghttp2_data_source* src,
                         void*) -> ssize_t {
      auto* self = static_cast<TestClient*>(src->ptr);
      std::string& b = self->body_[id];
      size_t n = std::min(len, b.size());
      memcpy(buf, b.data(), n);
      b.erase(0, n);
      if (b.empty()) {
        if (!self->end_[id]) return n ? static_cast<ssize_t>(n) : static_cast<ssize_t>(NGHTTP2_ERR_DEFERRED);
        *flags |= NGHTTP2_DATA_FLAG_EOF;
      }
      return static_cast<ssize_t>(n);
    };
    int32_t id = nghttp2_submit_request(client_, nullptr, nva.data(), nva.size(), &p, nullptr);
    next_ = id + 2;
    return id;
  }
  void send_more(int32_t id, const std::string& bytes, bool end) {
    body_[id] += bytes;
    end_[id] = end;
    nghttp2_session_resume_data(client_, id);
  }

  // pump moves bytes both ways until neither side has anything to say.
  bool pump() {
    bool ok = true;
    for (int i = 0; i < 100; ++i) {
      executor_->run();
      const uint8_t* data;
      bool moved = false;
      ssize_t n;
      while ((n = nghttp2_session_mem_send(client_, &data)) > 0) {
        moved = true;
        ok = server_->receive({data, static_cast<size_t>(n)}) && ok;
      }
      std::string out;
      if (server_->produce(out, 1 << 20) > 0) {
        moved = true;
        nghttp2_session_mem_recv(client_, (const uint8_t*)out.data(), out.size());
      }
      if (!moved && executor_->pending() == 0) break;
    }
    return ok;
  }

  Response& response(int32_t id) { return responses_[id]; }
  uint64_t stat(const std::string& leaf) { return stats_.value("grpc_server.t." + leaf).value_or(-1); }

  StatsStore stats_;
  std::shared_ptr<grpc::ServiceRegistry> registry_;
  std::shared_ptr<grpc::HealthService> health_;
  std::shared_ptr<GrpcServerShared> shared_;
  std::shared_ptr<grpc::ManualExecutor> executor_;
  std::unique_ptr<Http2ServerSession> server_;
  std::vector<grpc::UnaryReply<HealthCheckResponse>> hung_;
  nghttp2_session* client_ = nullptr;
  std::map<int32_t, Response> responses_;
  std::map<int32_t, std::string> body_;
  std::map<int32_t, bool> end_;
  int32_t next_ = 1;
};

std::string request(const std::string& service = "") {
  HealthCheckRequest r;
  r.set_service(service);
  return frame_message(r.SerializeAsString());
}

TEST(Http2ServerSessionTest, UnaryCallGetsHeadersMessageAndTrailers) {
  TestClient c;
  int32_t id = c.start("/grpc.health.v1.Health/Check", request());
  ASSERT_TRUE(c.pump());
  Response& r = c.response(id);
  EXPECT_TRUE(r.closed);
  EXPECT_EQ(r.headers[":status"], "200");
  EXPECT_EQ(r.headers["content-type"], "application/grpc");
  EXPECT_EQ(r.headers["grpc-status"], "0");
  HealthCheckResponse resp;
  ASSERT_EQ(r.data.size(), 7u);
  ASSERT_TRUE(resp.ParseFromString(r.data.substr(5)));
  EXPECT_EQ(resp.status(), HealthCheckResponse::SERVING);
  EXPECT_EQ(c.stat("calls_finished_OK"), 1u);
  EXPECT_EQ(c.stat("streams_active"), 0u);
}

TEST(Http2ServerSessionTest, ErrorsAreTrailersOnlyWithEncodedMessage) {
  TestClient c;
  int32_t id = c.start("/grpc.health.v1.Health/Check", request("nope\n%"));
  int32_t unknown = c.start("/x.Y/Z", request());
  ASSERT_TRUE(c.pump());
  EXPECT_EQ(c.response(id).headers["grpc-status"], "5");
  EXPECT_EQ(c.response(id).headers["grpc-message"], "unknown service");
  EXPECT_TRUE(c.response(id).data.empty());
  EXPECT_EQ(c.response(unknown).headers["grpc-status"], "12");
  EXPECT_EQ(c.response(unknown).headers["grpc-message"], "unknown method /x.Y/Z");
  EXPECT_EQ(c.stat("calls_unimplemented"), 1u);
}

TEST(Http2ServerSessionTest, MessageSplitAcrossDataFramesAndBidiSeveralPerFrame) {
  TestClient c;
  std::string msg = request("a-long-enough-service-name");
  int32_t id = c.start("/grpc.health.v1.Health/Check", msg.substr(0, 3), false);
  ASSERT_TRUE(c.pump());
  EXPECT_FALSE(c.response(id).closed);
  c.send_more(id, msg.substr(3, 10), false);
  c.pump();
  c.send_more(id, msg.substr(13), true);
  c.pump();
  EXPECT_EQ(c.response(id).headers["grpc-status"], "5");  // parsed, looked up, unknown
  int32_t bidi = c.start("/t.T/Bidi", request() + request() + request(), false);
  c.pump();
  EXPECT_EQ(c.response(bidi).data.size(), 15u);  // three empty responses so far
  EXPECT_FALSE(c.response(bidi).closed);
  c.send_more(bidi, "", true);
  c.pump();
  EXPECT_EQ(c.response(bidi).headers["grpc-status"], "0");
}

TEST(Http2ServerSessionTest, BadContentTypeIs415AndNoCall) {
  TestClient c;
  int32_t id = c.start("/grpc.health.v1.Health/Check", request(), true, {}, "application/json");
  c.pump();
  EXPECT_EQ(c.response(id).headers[":status"], "415");
  EXPECT_EQ(c.response(id).headers.count("grpc-status"), 0u);
  EXPECT_EQ(c.stat("calls_started"), 0u);
  EXPECT_EQ(c.stat("http_415"), 1u);
}

TEST(Http2ServerSessionTest, OversizedAndBadPrefixAndCountViolations) {
  GrpcServerLimits limits;
  limits.max_message_bytes = 16;
  TestClient c(limits);
  int32_t big = c.start("/grpc.health.v1.Health/Check", request(std::string(40, 'x')));
  int32_t flag = c.start("/grpc.health.v1.Health/Check", std::string("\x05\0\0\0\0", 5));
  int32_t two = c.start("/grpc.health.v1.Health/Check", request() + request());
  int32_t none = c.start("/grpc.health.v1.Health/Check", "");
  int32_t truncated = c.start("/grpc.health.v1.Health/Check", request("abc").substr(0, 6));
  int32_t gzip = c.start("/grpc.health.v1.Health/Check", std::string("\x01\0\0\0\0", 5), true, {{"grpc-encoding", "gzip"}});
  c.pump();
  EXPECT_EQ(c.response(big).headers["grpc-status"], "8");
  EXPECT_EQ(c.response(flag).headers["grpc-status"], "13");
  EXPECT_EQ(c.response(two).headers["grpc-status"], "12");
  EXPECT_EQ(c.response(none).headers["grpc-status"], "12");
  EXPECT_EQ(c.response(truncated).headers["grpc-status"], "13");
  EXPECT_EQ(c.response(gzip).headers["grpc-status"], "12");
  EXPECT_EQ(c.response(gzip).headers["grpc-accept-encoding"], "identity");
  EXPECT_EQ(c.stat("messages_too_large"), 1u);
}

TEST(Http2ServerSessionTest, DeadlineEndsTheCallAndTheHandlerSeesIt) {
  TestClient c;
  int32_t id = c.start("/t.T/Hang", request(), true, {{"grpc-timeout", "20m"}});
  int32_t bad = c.start("/t.T/Hang", request(), true, {{"grpc-timeout", "soon"}});
  c.pump();
  ASSERT_EQ(c.hung_.size(), 1u);
  ASSERT_TRUE(c.server_->next_timer());
  std::this_thread::sleep_until(*c.server_->next_timer() + std::chrono::milliseconds(1));
  c.server_->on_timer();
  c.pump();
  EXPECT_EQ(c.response(id).headers["grpc-status"], "4");
  EXPECT_TRUE(c.hung_[0].done());
  c.hung_[0](HealthCheckResponse());  // a late reply is ignored
  c.pump();
  EXPECT_EQ(c.response(bad).headers["grpc-status"], "13");
  EXPECT_EQ(c.stat("calls_deadline_exceeded"), 1u);
}

TEST(Http2ServerSessionTest, ClientCancelAndConnectionLossEndCalls) {
  TestClient c;
  int32_t a = c.start("/t.T/Hang", request());
  c.start("/t.T/Hang", request());
  c.pump();
  ASSERT_EQ(c.hung_.size(), 2u);
  nghttp2_submit_rst_stream(c.client_, NGHTTP2_FLAG_NONE, a, NGHTTP2_CANCEL);
  c.pump();
  EXPECT_TRUE(c.hung_[0].done());
  EXPECT_FALSE(c.hung_[1].done());
  c.server_.reset();  // the connection is gone
  EXPECT_TRUE(c.hung_[1].done());
  EXPECT_EQ(c.stat("calls_cancelled"), 1u);
}

TEST(Http2ServerSessionTest, StreamsOverTheLimitAreRefused) {
  GrpcServerLimits limits;
  limits.max_concurrent_streams = 2;
  TestClient c(limits);
  c.start("/t.T/Hang", request());
  c.start("/t.T/Hang", request());
  int32_t third = c.start("/t.T/Hang", request());
  c.pump();
  EXPECT_EQ(c.hung_.size(), 2u);
  EXPECT_TRUE(c.response(third).closed);
  EXPECT_EQ(c.response(third).rst, static_cast<uint32_t>(NGHTTP2_REFUSED_STREAM));
}

TEST(Http2ServerSessionTest, DrainLetsOpenCallsFinish) {
  GrpcServerLimits limits;
  limits.goaway_grace = std::chrono::milliseconds(0);
  TestClient c(limits);
  int32_t id = c.start("/t.T/Hang", request());
  c.pump();
  c.server_->drain();
  c.server_->on_timer();
  c.pump();
  EXPECT_FALSE(c.server_->finished());
  c.hung_[0](HealthCheckResponse());
  c.pump();
  EXPECT_EQ(c.response(id).headers["grpc-status"], "0");
  EXPECT_TRUE(c.server_->finished());
}

TEST(Http2ServerSessionTest, GarbageIsAFatalProtocolErrorNotACrash) {
  TestClient c;
  EXPECT_FALSE(c.server_->receive({(const uint8_t*)"GET / HTTP/1.1\r\n\r\n", 18}));
  std::string out;
  c.server_->produce(out, 1 << 20);
  EXPECT_TRUE(c.server_->finished());
  EXPECT_EQ(c.stat("protocol_errors"), 1u);
}

}  // namespace
}  // namespace portcullis::proxy
