#include "proxy/grpc/grpc_server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <set>

#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include "proxy/grpc/grpc_listen.h"
#include "proxy/grpc/grpc_server_connection.h"

namespace portcullis::proxy {

// Loop is one event loop's share of the server: its own dup of the listening fd and the
// connections it accepted. Touched only on that loop (after start()).
struct GrpcServer::Loop : std::enable_shared_from_this<GrpcServer::Loop> {
  Loop(asio::io_context& io, int fd, std::shared_ptr<const GrpcServerShared> shared,
       std::shared_ptr<const mtls::TlsContext> tls, bool is_unix, std::string address)
      : executor(std::make_shared<AsioExecutor>(io)), acceptor(io, fd), backoff(io), shared(std::move(shared)),
        tls(std::move(tls)), is_unix(is_unix), address(std::move(address)) {}

  void accept() {
    acceptor.async_wait(asio::posix::descriptor_base::wait_read, [self = shared_from_this()](const std::error_code& ec) {
      if (!ec && !self->closing) self->on_readable();
    });
  }

  void on_readable() {
    // Several loops wait on the same socket; whoever loses the race sees EAGAIN.
    for (int i = 0; i < 16; ++i) {
      int fd = ::accept4(acceptor.native_handle(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          spdlog::warn("gRPC server {}: accept: {}", address, std::strerror(errno));
          backoff.expires_after(std::chrono::milliseconds(100));
          backoff.async_wait([self = shared_from_this()](const std::error_code& e) {
            if (!e && !self->closing) self->accept();
          });
          return;
        }
        break;
      }
      if (static_cast<uint64_t>(shared->stats.connections_active.value()) >= shared->limits.max_connections) {
        shared->stats.connections_overflow.inc();
        ::close(fd);
        continue;
      }
      auto conn = std::make_shared<GrpcServerConnection>(
          executor, fd, shared, tls, peer_info_for(fd, is_unix, address),
          [weak = weak_from_this()](GrpcServerConnection* c) {
            if (auto self = weak.lock()) std::erase_if(self->connections, [c](const auto& p) { return p.get() == c; });
          });
      connections.insert(conn);
      if (draining) conn->drain();
      conn->start();
    }
    accept();
  }

  void close_listener() {
    closing = true;
    asio::error_code ignored;
    acceptor.close(ignored);
    backoff.cancel();
  }

  std::shared_ptr<AsioExecutor> executor;
  asio::posix::stream_descriptor acceptor;
  asio::steady_timer backoff;
  std::shared_ptr<const GrpcServerShared> shared;
  std::shared_ptr<const mtls::TlsContext> tls;
  bool is_unix;
  std::string address;
  std::set<std::shared_ptr<GrpcServerConnection>> connections;
  bool closing = false;
  bool draining = false;
};

Result<std::unique_ptr<GrpcServer>> GrpcServer::create(GrpcServerOptions options,
                                                       std::shared_ptr<const grpc::ServiceRegistry> registry,
                                                       StatsStore& stats) {
  if (!registry) return make_error(ErrorCode::kInvalidArgument, "gRPC server " + options.name + " has no services");
  if (options.tls && !options.tls->server()) {
    return make_error(ErrorCode::kInvalidArgument, "gRPC server " + options.name + " needs a server TLS context");
  }
  auto shared = std::make_shared<const GrpcServerShared>(
      GrpcServerShared{std::move(registry), options.limits, GrpcServerStats::create(stats, options.name)});
  return std::unique_ptr<GrpcServer>(new GrpcServer(std::move(options), std::move(shared)));
}

GrpcServer::GrpcServer(GrpcServerOptions options, std::shared_ptr<const GrpcServerShared> shared)
    : options_(std::move(options)), shared_(std::move(shared)) {}

// No stop() here: the loops (and their io_contexts) may already be gone, and posting to a
// destroyed io_context is undefined. Owners call stop() or drain() while the loops still exist.
GrpcServer::~GrpcServer() = default;

Status GrpcServer::bind() {
  auto socket = ListenSocket::bind(options_.address);
  if (!socket.ok()) return socket.error();
  socket_ = std::move(socket.value());
  bound_address_ = socket_->address();
  return {};
}

void GrpcServer::start(const std::vector<asio::io_context*>& loops) {
  for (asio::io_context* io : loops) {
    int fd = ::fcntl(socket_->fd(), F_DUPFD_CLOEXEC, 0);
    if (fd < 0) continue;
    auto loop = std::make_shared<Loop>(*io, fd, shared_, options_.tls, socket_->is_unix(), bound_address_);
    loops_.push_back(loop);
    asio::post(*io, [loop] { loop->accept(); });
  }
}

void GrpcServer::drain() {
  for (const auto& loop : loops_) {
    asio::post(loop->executor->io(), [loop] {
      loop->draining = true;
      loop->close_listener();
      for (const auto& c : loop->connections) c->drain();
    });
  }
}

void GrpcServer::set_tls(std::shared_ptr<const mtls::TlsContext> tls) {
  for (const auto& loop : loops_) {
    asio::post(loop->executor->io(), [loop, tls] { loop->tls = tls; });
  }
  options_.tls = std::move(tls);
}

void GrpcServer::stop() {
  for (const auto& loop : loops_) {
    asio::post(loop->executor->io(), [loop] {
      loop->close_listener();
      auto connections = std::move(loop->connections);
      for (const auto& c : connections) c->close();
    });
  }
  loops_.clear();
}

}  // namespace portcullis::proxy
