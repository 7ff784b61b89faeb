// Our client (GrpcChannel) against our server (GrpcServer) over a real Unix socket and TCP,
// each on its own event-loop thread: unary, server-streaming, bidi, deadlines, unknown methods,
// connection failures.
#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <thread>

#include <asio/executor_work_guard.hpp>

#include "common/grpc/health_service.h"
#include "proxy/grpc/grpc_channel.h"
#include "proxy/grpc/grpc_server.h"
#include "tests/unit/grpc/loop_thread.h"

namespace portcullis::proxy {
namespace {

using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using namespace std::chrono_literals;

using Loop = ::portcullis::proxy::testing::LoopThread;

class GrpcChannelTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("pc-grpc-" + std::to_string(::getpid()) + "-" + std::to_string(rand()));
    std::filesystem::create_directories(dir_);
    health_ = grpc::HealthService::create();
    auto registry = std::make_shared<grpc::ServiceRegistry>();
    ASSERT_TRUE(health_->register_with(*registry).ok());
    ASSERT_TRUE((registry->add_unary_async<HealthCheckRequest, HealthCheckResponse>(
                     "/t.T/Hang", [](const grpc::ServerCallContext&, const HealthCheckRequest&,
                                     grpc::UnaryReply<HealthCheckResponse>) {}))
                    .ok());
    ASSERT_TRUE((registry->add_bidi<HealthCheckRequest, HealthCheckResponse>(
                     "/t.T/Bidi", [](grpc::BidiStream<HealthCheckRequest, HealthCheckResponse> s) {
                       s.on_message([s](HealthCheckRequest&& r) {
                         HealthCheckResponse out;
                         out.set_status(r.service() == "up" ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING);
                         s.write(out);
                       });
                       s.on_half_close([s] { s.finish(); });
                     }))
                    .ok());
    config::Address address = GetParam() ? config::Address{config::PipeAddress{(dir_ / "s.sock").string(), 0}}
                                         : config::Address{config::SocketAddress{"127.0.0.1", 0}};
    auto server = GrpcServer::create({"t", address, {}, nullptr}, registry, stats_);
    ASSERT_TRUE(server.ok());
    server_ = std::move(server.value());
    ASSERT_TRUE(server_->bind().ok());
    server_->start({&server_loop_.io});
    channel_address_ = address;
    if (!GetParam()) {
      std::string bound = server_->bound_address();
      channel_address_ = config::Address{config::SocketAddress{"127.0.0.1", static_cast<uint32_t>(std::stoul(bound.substr(bound.rfind(':') + 1)))}};
    }
    channel_ = GrpcChannel::create(client_loop_.io, {channel_address_, nullptr, "localhost"});
  }
  void TearDown() override {
    client_loop_.run([this] {
      channel_->close();
      return 0;
    });
    if (server_) {
      server_->stop();
      server_loop_.run([] { return 0; });
      server_.reset();
    }
    std::filesystem::remove_all(dir_);
  }

  grpc::GrpcResult<HealthCheckResponse> unary(const std::string& path, const std::string& service,
                                              std::optional<std::chrono::nanoseconds> timeout = {}) {
    std::promise<grpc::GrpcResult<HealthCheckResponse>> done;
    client_loop_.run([&] {
      HealthCheckRequest req;
      req.set_service(service);
      grpc::call_unary<HealthCheckRequest, HealthCheckResponse>(
          *channel_, path, req, {timeout, {}}, [&](grpc::GrpcResult<HealthCheckResponse> r) { done.set_value(std::move(r)); });
      return 0;
    });
    return done.get_future().get();
  }

  std::filesystem::path dir_;
  StatsStore stats_;
  std::shared_ptr<grpc::HealthService> health_;
  Loop server_loop_, client_loop_;
  std::unique_ptr<GrpcServer> server_;
  config::Address channel_address_;
  std::shared_ptr<GrpcChannel> channel_;
};

TEST_P(GrpcChannelTest, UnaryOkAndErrors) {
  auto r = unary("/grpc.health.v1.Health/Check", "");
  ASSERT_TRUE(r.ok()) << r.status().message;
  EXPECT_EQ(r.value().status(), HealthCheckResponse::SERVING);
  r = unary("/grpc.health.v1.Health/Check", "nope");
  EXPECT_EQ(r.status().code, grpc::StatusCode::kNotFound);
  EXPECT_EQ(r.status().message, "unknown service");
  EXPECT_EQ(unary("/t.T/Missing", "").status().code, grpc::StatusCode::kUnimplemented);
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(unary("/t.T/Hang", "", 100ms).status().code, grpc::StatusCode::kDeadlineExceeded);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  // The connection is reused for every call.
  EXPECT_EQ(stats_.value("grpc_server.t.connections_total"), 1);
}

TEST_P(GrpcChannelTest, ServerStreamingWatchGetsPushes) {
  std::promise<void> first, second;
  std::vector<int> seen;
  std::shared_ptr<grpc::ClientCall> call;
  client_loop_.run([&] {
    HealthCheckRequest req;
    req.set_service("svc");
    call = grpc::call_server_streaming<HealthCheckRequest, HealthCheckResponse>(
        *channel_, "/grpc.health.v1.Health/Watch", req, {},
        [&](HealthCheckResponse&& r) {
          seen.push_back(r.status());
          (seen.size() == 1 ? first : second).set_value();
        },
        [](const grpc::GrpcStatus&) {});
    return 0;
  });
  first.get_future().wait();
  health_->set_status("svc", HealthCheckResponse::SERVING);
  second.get_future().wait();
  client_loop_.run([&] {
    call->cancel();
    return 0;
  });
  EXPECT_EQ(seen, (std::vector<int>{HealthCheckResponse::SERVICE_UNKNOWN, HealthCheckResponse::SERVING}));
}

TEST_P(GrpcChannelTest, BidiEchoesUntilHalfClose) {
  std::promise<grpc::GrpcStatus> done;
  std::vector<int> seen;
  client_loop_.run([&] {
    auto bidi = grpc::call_bidi<HealthCheckRequest, HealthCheckResponse>(
        *channel_, "/t.T/Bidi", {}, [&](HealthCheckResponse&& r) { seen.push_back(r.status()); },
        [&](const grpc::GrpcStatus& s) { done.set_value(s); });
    HealthCheckRequest req;
    req.set_service("up");
    bidi.write(req);
    req.set_service("down");
    bidi.write(req);
    bidi.half_close();
    return 0;
  });
  EXPECT_TRUE(done.get_future().get().ok());
  EXPECT_EQ(seen, (std::vector<int>{HealthCheckResponse::SERVING, HealthCheckResponse::NOT_SERVING}));
}

TEST_P(GrpcChannelTest, ServerGoneIsUnavailable) {
  ASSERT_TRUE(unary("/grpc.health.v1.Health/Check", "").ok());
  server_->stop();
  server_loop_.run([] { return 0; });
  server_.reset();  // also removes the socket file
  auto r = unary("/grpc.health.v1.Health/Check", "");
  EXPECT_EQ(r.status().code, grpc::StatusCode::kUnavailable) << r.status().message;
  // A server restarted on... nothing: a new call fails the same way, without hanging.
  EXPECT_EQ(unary("/grpc.health.v1.Health/Check", "").status().code, grpc::StatusCode::kUnavailable);
  server_ = nullptr;
}

INSTANTIATE_TEST_SUITE_P(UnixAndTcp, GrpcChannelTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Unix" : "Tcp"; });

}  // namespace
}  // namespace portcullis::proxy
