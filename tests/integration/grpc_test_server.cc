// A gRPC server for the transport's integration tests: the test service of grpc_test.proto and
// grpc.health.v1 on a Unix socket and/or TCP (optionally mTLS), two event loops. Prints one JSON
// line with the bound addresses, then serves until SIGTERM (drain, then stop) or SIGINT.
//   grpc_test_server [--unix PATH] [--tcp IP:PORT] [--tls CERT KEY CA] [--max-message-bytes N]
//                    [--keepalive-time-ms N] [--keepalive-timeout-ms N] [--min-ping-interval-ms N]
//                    [--max-buffered N] [--max-streams N] [--drain-ms N]
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include "common/grpc/health_service.h"
#include "common/stats.h"
#include "grpc_test.pb.h"
#include "mtls/tls_context.h"
#include "proxy/grpc/grpc_server.h"

namespace pgrpc = portcullis::grpc;
namespace proxy = portcullis::proxy;
namespace mtls = portcullis::mtls;
namespace config = portcullis::config;
using portcullis::Status;
using portcullis::StatsStore;
using portcullis::grpc::GrpcResult;
using portcullis::grpc::GrpcStatus;
using portcullis::grpc::StatusCode;
using portcullis::test::EchoReply;
using portcullis::test::EchoRequest;

namespace {

std::string describe_peer(const pgrpc::ServerCallContext& ctx) {
  const pgrpc::PeerInfo& p = *ctx.peer;
  if (p.tls) return p.tls->spiffe_id;
  std::string out = p.transport == pgrpc::PeerInfo::Transport::kUnix ? "unix" : "tcp:" + p.address;
  if (p.credentials) out += ";uid=" + std::to_string(p.credentials->uid) + ";pid=" + std::to_string(p.credentials->pid);
  if (p.pidfd >= 0) out += ";pidfd";
  if (const std::string* v = ctx.header("x-test")) out += ";x-test=" + *v;
  return out;
}

std::shared_ptr<pgrpc::ServiceRegistry> make_registry(const std::shared_ptr<pgrpc::HealthService>& health) {
  auto r = std::make_shared<pgrpc::ServiceRegistry>();
  Status s = r->add_unary_async<EchoRequest, EchoReply>(
      "/portcullis.test.Test/Echo", [](const pgrpc::ServerCallContext& ctx, const EchoRequest& req, pgrpc::UnaryReply<EchoReply> reply) {
        if (req.hang()) return;  // never answered: the deadline ends it
        if (req.status() != 0) return reply(GrpcStatus{pgrpc::status_code_from_int(req.status()), req.text()});
        EchoReply out;
        out.set_text(req.text());
        out.set_peer(describe_peer(ctx));
        out.set_payload(req.payload());
        reply(out);
      });
  if (s.ok()) {
    s = r->add_server_streaming<EchoRequest, EchoReply>(
        "/portcullis.test.Test/Stream", [](const EchoRequest& req, pgrpc::ServerWriter<EchoReply> writer) {
          for (int i = 0; i < req.count(); ++i) {
            EchoReply out;
            out.set_text(req.text());
            out.set_index(i);
            out.set_payload(req.payload());
            if (!writer.write(out)) return;
          }
          if (req.count() >= 0) writer.finish(GrpcStatus{pgrpc::status_code_from_int(req.status()), req.status() ? req.text() : ""});
        });
  }
  if (s.ok()) {
    s = r->add_bidi<EchoRequest, EchoReply>("/portcullis.test.Test/Chat", [](pgrpc::BidiStream<EchoRequest, EchoReply> stream) {
      auto index = std::make_shared<int>(0);
      stream.on_message([stream, index](EchoRequest&& req) {
        if (req.status() != 0) return stream.finish(GrpcStatus{pgrpc::status_code_from_int(req.status()), req.text()});
        EchoReply out;
        out.set_text(req.text());
        out.set_index((*index)++);
        stream.write(out);
      });
      stream.on_half_close([stream] { stream.finish(); });
    });
  }
  if (s.ok()) s = health->register_with(*r);
  if (!s.ok()) {
    std::fprintf(stderr, "registry: %s\n", s.error().message.c_str());
    std::exit(1);
  }
  return r;
}

config::Address parse_tcp(const std::string& text) {
  size_t colon = text.rfind(':');
  return config::Address{config::SocketAddress{text.substr(0, colon), static_cast<uint32_t>(std::stoul(text.substr(colon + 1)))}};
}

}  // namespace

int main(int argc, char** argv) {
  std::string unix_path, tcp, cert, key, ca;
  proxy::GrpcServerLimits limits;
  int drain_ms = 2000;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--unix") unix_path = next();
    else if (a == "--tcp") tcp = next();
    else if (a == "--tls") cert = next(), key = next(), ca = next();
    else if (a == "--max-message-bytes") limits.max_message_bytes = std::stoul(next());
    else if (a == "--max-buffered") limits.max_buffered_bytes_per_stream = std::stoul(next());
    else if (a == "--max-streams") limits.max_concurrent_streams = std::stoul(next());
    else if (a == "--keepalive-time-ms") limits.keepalive_time = std::chrono::milliseconds(std::stol(next()));
    else if (a == "--keepalive-timeout-ms") limits.keepalive_timeout = std::chrono::milliseconds(std::stol(next()));
    else if (a == "--min-ping-interval-ms") limits.min_ping_interval = std::chrono::milliseconds(std::stol(next()));
    else if (a == "--drain-ms") drain_ms = std::stoi(next());
    else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // before any thread starts

  StatsStore stats;
  auto health = pgrpc::HealthService::create();
  health->set_status("portcullis.test.Test", ::grpc::health::v1::HealthCheckResponse::SERVING);
  std::shared_ptr<const pgrpc::ServiceRegistry> registry = make_registry(health);

  std::shared_ptr<const mtls::TlsContext> tls;
  if (!cert.empty()) {
    mtls::TlsContextConfig c;
    c.server = true;
    c.require_client_certificate = true;
    c.certificate_chain = mtls::DataSource{cert, ""};
    c.private_key = mtls::DataSource{key, ""};
    c.trusted_ca = mtls::DataSource{ca, ""};
    c.alpn_protocols = {"h2"};
    auto ctx = mtls::TlsContext::create(c);
    if (!ctx.ok()) {
      std::fprintf(stderr, "tls: %s\n", ctx.error().message.c_str());
      return 1;
    }
    tls = ctx.value();
  }

  std::vector<std::unique_ptr<proxy::GrpcServer>> servers;
  std::string json = "{";
  auto add = [&](const std::string& name, config::Address address, std::shared_ptr<const mtls::TlsContext> t) {
    auto server = proxy::GrpcServer::create({name, std::move(address), limits, std::move(t)}, registry, stats);
    Status s = server.ok() ? server.value()->bind() : Status(server.error());
    if (!s.ok()) {
      std::fprintf(stderr, "%s: %s\n", name.c_str(), s.error().message.c_str());
      std::exit(3);
    }
    json += (json.size() > 1 ? ", \"" : "\"") + name + "\": \"" + server.value()->bound_address() + "\"";
    servers.push_back(std::move(server.value()));
  };
  if (!unix_path.empty()) add("unix", config::Address{config::PipeAddress{unix_path, 0}}, nullptr);
  if (!tcp.empty()) add(tls ? "tls" : "tcp", parse_tcp(tcp), tls);

  std::vector<std::unique_ptr<asio::io_context>> loops;
  std::vector<asio::io_context*> loop_ptrs;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    loops.push_back(std::make_unique<asio::io_context>(1));
    loop_ptrs.push_back(loops.back().get());
    guards.push_back(asio::make_work_guard(*loops.back()));
  }
  for (auto& s : servers) s->start(loop_ptrs);
  for (auto& io : loops) threads.emplace_back([&io] { io->run(); });
  std::printf("%s}\n", json.c_str());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&signals, &sig);
  if (sig == SIGTERM) {
    health->set_all(::grpc::health::v1::HealthCheckResponse::NOT_SERVING);
    for (auto& s : servers) s->drain();
    std::this_thread::sleep_for(std::chrono::milliseconds(drain_ms));
  }
  for (auto& s : servers) s->stop();
  guards.clear();
  for (auto& t : threads) t.join();
  servers.clear();
  std::fprintf(stderr, "%s", stats.render_text().c_str());
  return 0;
}
