// Fuzzes the gRPC server's handling of untrusted bytes: the message deframer (with arbitrary
// DATA frame splits) and the HTTP/2 session (headers, framing, limits) behind a valid preface.
// Byte 0 picks the target; for the session, byte 1 says whether to prepend the client preface.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/grpc/fake_server_call.h"
#include "common/grpc/health_service.h"
#include "proxy/grpc/grpc_wire.h"
#include "proxy/grpc/http2_server_session.h"

namespace portcullis {
namespace {

void fuzz_deframer(const uint8_t* data, size_t size) {
  proxy::MessageDeframer d(1024);
  size_t step = size > 0 ? data[0] % 17 + 1 : 1;
  for (size_t i = 1; i < size; i += step) {
    if (!d.feed({data + i, std::min(step, size - i)}, [](std::string&&) {})) break;
  }
}

struct SessionEnv {
  StatsStore stats;
  std::shared_ptr<proxy::GrpcServerShared> shared;
  std::shared_ptr<grpc::ManualExecutor> executor = std::make_shared<grpc::ManualExecutor>();
  SessionEnv() {
    auto registry = std::make_shared<grpc::ServiceRegistry>();
    (void)grpc::HealthService::create()->register_with(*registry);
    proxy::GrpcServerLimits limits;
    limits.max_message_bytes = 4096;
    limits.max_concurrent_streams = 8;
    shared = std::make_shared<proxy::GrpcServerShared>(
        proxy::GrpcServerShared{registry, limits, proxy::GrpcServerStats::create(stats, "fuzz")});
  }
};

void fuzz_session(const uint8_t* data, size_t size) {
  static SessionEnv env;
  auto session = proxy::Http2ServerSession::create(env.shared, std::make_shared<grpc::PeerInfo>(), env.executor, [] {});
  if (!session.ok()) return;
  auto& s = *session.value();
  static const std::string kPreface = std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") + std::string("\0\0\0\x04\0\0\0\0\0", 9);
  if (size > 0 && data[0] & 1) s.receive({reinterpret_cast<const uint8_t*>(kPreface.data()), kPreface.size()});
  std::string out;
  // Several receive() calls, split where the input says, like TCP segments.
  size_t i = 1;
  while (i < size) {
    size_t n = std::min<size_t>(size - i, 1 + data[i - 1] % 64 * 16);
    if (!s.receive({data + i, n})) break;
    env.executor->run();
    out.clear();
    s.produce(out, 1 << 20);
    i += n;
  }
  s.on_timer();
  out.clear();
  s.produce(out, 1 << 20);
}

}  // namespace
}  // namespace portcullis

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  if (data[0] % 2 == 0) portcullis::fuzz_deframer(data + 1, size - 1);
  else portcullis::fuzz_session(data + 1, size - 1);
  return 0;
}
