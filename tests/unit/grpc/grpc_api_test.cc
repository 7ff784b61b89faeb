// The transport-independent call interfaces: status mapping, the registry's typed helpers driven
// through FakeServerCall, and the health service.
#include <gtest/gtest.h>

#include "common/grpc/fake_server_call.h"
#include "common/grpc/health_service.h"
#include "common/grpc/service_registry.h"

namespace portcullis::grpc {
namespace {

using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;

std::string bytes_of(const google::protobuf::Message& m) { return m.SerializeAsString(); }

TEST(GrpcStatusTest, HttpMappingFollowsTheSpecTable) {
  EXPECT_EQ(status_from_http(400), StatusCode::kInternal);
  EXPECT_EQ(status_from_http(401), StatusCode::kUnauthenticated);
  EXPECT_EQ(status_from_http(403), StatusCode::kPermissionDenied);
  EXPECT_EQ(status_from_http(404), StatusCode::kUnimplemented);
  for (int s : {429, 502, 503, 504}) EXPECT_EQ(status_from_http(s), StatusCode::kUnavailable) << s;
  EXPECT_EQ(status_from_http(431), StatusCode::kInternal);
  EXPECT_EQ(status_from_http(200), StatusCode::kUnknown);
  EXPECT_EQ(status_from_http(418), StatusCode::kUnknown);
}

TEST(GrpcStatusTest, NamesAndRanges) {
  EXPECT_STREQ(status_code_name(StatusCode::kPermissionDenied), "PERMISSION_DENIED");
  EXPECT_STREQ(status_code_name(StatusCode::kUnauthenticated), "UNAUTHENTICATED");
  EXPECT_EQ(status_code_from_int(16), StatusCode::kUnauthenticated);
  EXPECT_EQ(status_code_from_int(17), StatusCode::kUnknown);
  EXPECT_EQ(status_code_from_int(-1), StatusCode::kUnknown);
  EXPECT_EQ(to_grpc_status(make_error(ErrorCode::kPermissionDenied, "no")).code, StatusCode::kPermissionDenied);
  EXPECT_EQ(to_grpc_status(make_error(ErrorCode::kIo, "x")).code, StatusCode::kUnavailable);
}

TEST(ServiceRegistryTest, RejectsBadAndDuplicatePaths) {
  ServiceRegistry r;
  MethodHandler h{MethodKind::kUnary, [](std::shared_ptr<ServerCall>, std::string) {}};
  EXPECT_FALSE(r.add("nopath", h).ok());
  EXPECT_FALSE(r.add("/onlyservice", h).ok());
  EXPECT_FALSE(r.add("/a/b/c", h).ok());
  EXPECT_FALSE(r.add("//m", h).ok());
  EXPECT_TRUE(r.add("/SpiffeWorkloadAPI/FetchJWTSVID", h).ok());  // no package is fine
  EXPECT_FALSE(r.add("/SpiffeWorkloadAPI/FetchJWTSVID", h).ok());
  EXPECT_NE(r.find("/SpiffeWorkloadAPI/FetchJWTSVID"), nullptr);
  EXPECT_EQ(r.find("/SpiffeWorkloadAPI/Nope"), nullptr);
}

TEST(ServiceRegistryTest, UnaryHandlerGetsParsedRequestAndReplies) {
  ServiceRegistry r;
  ASSERT_TRUE((r.add_unary<HealthCheckRequest, HealthCheckResponse>(
                   "/t.S/M",
                   [](const ServerCallContext& ctx, const HealthCheckRequest& req) -> GrpcResult<HealthCheckResponse> {
                     if (req.service() == "bad") return GrpcStatus{StatusCode::kInvalidArgument, "bad"};
                     HealthCheckResponse resp;
                     resp.set_status(ctx.header("x-up") ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING);
                     return resp;
                   }))
                  .ok());
  HealthCheckRequest req;
  ServerCallContext ctx;
  ctx.metadata.emplace_back("x-up", "1");
  auto call = start_fake_call(r, "/t.S/M", bytes_of(req), ctx);
  ASSERT_TRUE(call->final_status());
  EXPECT_TRUE(call->final_status()->ok());
  ASSERT_EQ(call->sent().size(), 1u);
  EXPECT_EQ(call->sent_as<HealthCheckResponse>(0).status(), HealthCheckResponse::SERVING);

  req.set_service("bad");
  call = start_fake_call(r, "/t.S/M", bytes_of(req));
  EXPECT_EQ(call->final_status()->code, StatusCode::kInvalidArgument);
  EXPECT_TRUE(call->sent().empty());

  call = start_fake_call(r, "/t.S/M", "\xff\xff\xff");  // not a valid message
  EXPECT_EQ(call->final_status()->code, StatusCode::kInternal);

  call = start_fake_call(r, "/t.S/Other", "");
  EXPECT_EQ(call->final_status()->code, StatusCode::kUnimplemented);
}

TEST(ServiceRegistryTest, BidiStreamReceivesAndWritesUntilHalfClose) {
  ServiceRegistry r;
  ASSERT_TRUE((r.add_bidi<HealthCheckRequest, HealthCheckResponse>(
                   "/t.S/Bidi", [](BidiStream<HealthCheckRequest, HealthCheckResponse> stream) {
                     stream.on_message([stream](HealthCheckRequest&& req) {
                       HealthCheckResponse resp;
                       resp.set_status(req.service() == "up" ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING);
                       stream.write(resp);
                     });
                     stream.on_half_close([stream] { stream.finish(); });
                   }))
                  .ok());
  auto call = start_fake_call(r, "/t.S/Bidi", "");
  HealthCheckRequest req;
  req.set_service("up");
  call->deliver_message(req);
  req.set_service("down");
  call->deliver_message(req);
  EXPECT_FALSE(call->done());
  call->half_close();
  ASSERT_TRUE(call->final_status());
  EXPECT_TRUE(call->final_status()->ok());
  ASSERT_EQ(call->sent().size(), 2u);
  EXPECT_EQ(call->sent_as<HealthCheckResponse>(1).status(), HealthCheckResponse::NOT_SERVING);
}

TEST(ServerWriterTest, PostRunsOnTheLoopAndSkipsFinishedCalls) {
  auto call = std::make_shared<FakeServerCall>(ServerCallContext{});
  ServerWriter<HealthCheckResponse> writer(call);
  HealthCheckResponse resp;
  writer.post([resp](const ServerWriter<HealthCheckResponse>& w) { w.write(resp); });
  EXPECT_TRUE(call->sent().empty());  // not inline
  EXPECT_EQ(call->manual_executor()->run(), 1u);
  EXPECT_EQ(call->sent().size(), 1u);
  call->cancel();
  writer.post([resp](const ServerWriter<HealthCheckResponse>& w) { w.write(resp); });
  call->manual_executor()->run();
  EXPECT_EQ(call->sent().size(), 1u);
}

TEST(ServerWriterTest, OutputLimitEndsTheCall) {
  auto call = std::make_shared<FakeServerCall>(ServerCallContext{});
  call->max_buffered_bytes = 4;
  GrpcStatus seen;
  ServerWriter<HealthCheckResponse> writer(call);
  writer.on_done([&](const GrpcStatus& s) { seen = s; });
  HealthCheckResponse resp;
  resp.set_status(HealthCheckResponse::SERVING);  // 2 bytes
  EXPECT_TRUE(writer.write(resp));
  EXPECT_TRUE(writer.write(resp));
  EXPECT_FALSE(writer.write(resp));
  EXPECT_EQ(seen.code, StatusCode::kResourceExhausted);
}

TEST(HealthServiceTest, CheckKnownAndUnknownServices) {
  auto health = HealthService::create();
  ServiceRegistry r;
  ASSERT_TRUE(health->register_with(r).ok());
  HealthCheckRequest req;
  auto call = start_fake_call(r, HealthService::kCheckPath, bytes_of(req));
  EXPECT_EQ(call->sent_as<HealthCheckResponse>(0).status(), HealthCheckResponse::SERVING);
  req.set_service("envoy.service.auth.v3.Authorization");
  call = start_fake_call(r, HealthService::kCheckPath, bytes_of(req));
  EXPECT_EQ(call->final_status()->code, StatusCode::kNotFound);
  health->set_status(req.service(), HealthCheckResponse::NOT_SERVING);
  call = start_fake_call(r, HealthService::kCheckPath, bytes_of(req));
  EXPECT_EQ(call->sent_as<HealthCheckResponse>(0).status(), HealthCheckResponse::NOT_SERVING);
}

TEST(HealthServiceTest, WatchPushesChangesFromAnyThread) {
  auto health = HealthService::create();
  ServiceRegistry r;
  ASSERT_TRUE(health->register_with(r).ok());
  HealthCheckRequest req;
  req.set_service("svc");
  auto call = start_fake_call(r, HealthService::kWatchPath, bytes_of(req));
  ASSERT_EQ(call->sent().size(), 1u);
  EXPECT_EQ(call->sent_as<HealthCheckResponse>(0).status(), HealthCheckResponse::SERVICE_UNKNOWN);
  std::thread([&] { health->set_status("svc", HealthCheckResponse::SERVING); }).join();
  EXPECT_EQ(call->sent().size(), 1u);  // posted to the call's loop
  call->manual_executor()->run();
  ASSERT_EQ(call->sent().size(), 2u);
  EXPECT_EQ(call->sent_as<HealthCheckResponse>(1).status(), HealthCheckResponse::SERVING);
  health->set_status("svc", HealthCheckResponse::SERVING);  // no change: nothing sent
  call->manual_executor()->run();
  EXPECT_EQ(call->sent().size(), 2u);
  call->cancel();
  health->set_all(HealthCheckResponse::NOT_SERVING);
  call->manual_executor()->run();
  EXPECT_EQ(call->sent().size(), 2u);
  EXPECT_FALSE(call->finished_by_server());
}

}  // namespace
}  // namespace portcullis::grpc
