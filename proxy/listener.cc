#include "proxy/listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "proxy/tcp_proxy_session.h"
#include "proxy/worker.h"

namespace portcullis::proxy {

ListenerStats ListenerStats::create(StatsStore& store, const std::string& stat_tag) {
  StatScope scope{"listener", "envoy_listener_address", stat_tag};
  return ListenerStats{PORTCULLIS_LISTENER_STATS(PORTCULLIS_MAKE_COUNTER, PORTCULLIS_MAKE_GAUGE)};
}

ListenSockets::~ListenSockets() {
  for (int fd : fds) ::close(fd);
}

Result<ListenSockets> bind_listen_sockets(const config::SocketAddress& address, size_t count, int backlog) {
  ListenSockets out;
  asio::error_code ec;
  asio::ip::address ip = asio::ip::make_address(address.address, ec);
  if (ec) return make_error(ErrorCode::kInvalidArgument, "bad listener address " + address.address);
  asio::ip::tcp::endpoint endpoint(ip, static_cast<uint16_t>(address.port_value));
  for (size_t i = 0; i < count; ++i) {
    int fd = ::socket(endpoint.protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return make_error(ErrorCode::kIo, std::string("socket: ") + std::strerror(errno));
    out.fds.push_back(fd);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
      return make_error(ErrorCode::kIo, std::string("SO_REUSEPORT: ") + std::strerror(errno));
    }
    if (endpoint.protocol() == asio::ip::tcp::v6()) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (::bind(fd, endpoint.data(), static_cast<socklen_t>(endpoint.size())) != 0) {
      return make_error(ErrorCode::kIo, "cannot bind " + address.to_string() + ": " + std::strerror(errno));
    }
    if (::listen(fd, backlog) != 0) {
      return make_error(ErrorCode::kIo, "cannot listen on " + address.to_string() + ": " + std::strerror(errno));
    }
    if (i == 0) {
      // Port 0: the kernel chose a port for the first socket; every other worker's socket must
      // join that same port or they would each listen somewhere else.
      socklen_t len = static_cast<socklen_t>(endpoint.capacity());
      ::getsockname(fd, endpoint.data(), &len);
      out.local = endpoint;
    }
  }
  return out;
}

WorkerListener::WorkerListener(Worker& worker, int fd, std::shared_ptr<const ListenerRuntime> runtime)
    : worker_(worker), acceptor_(worker.io()), backoff_(worker.io()), runtime_(std::move(runtime)) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  acceptor_.assign(ss.ss_family == AF_INET6 ? asio::ip::tcp::v6() : asio::ip::tcp::v4(), fd);
}

void WorkerListener::start() { accept(); }

void WorkerListener::close() {
  asio::error_code ignored;
  acceptor_.close(ignored);
  backoff_.cancel();
}

void WorkerListener::accept() {
  acceptor_.async_accept(worker_.io(), [self = shared_from_this()](const std::error_code& ec,
                                                                    asio::ip::tcp::socket socket) {
    self->on_accept(ec, std::move(socket));
  });
}

void WorkerListener::on_accept(const std::error_code& ec, asio::ip::tcp::socket socket) {
  if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
  const ListenerRuntime& rt = *runtime_;
  if (ec) {
    rt.stats.downstream_cx_accept_error.inc();
    spdlog::warn("listener {}: accept failed: {}", rt.name, ec.message());
    // Out of fds or memory: pause instead of spinning on an error that will repeat at once.
    if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space ||
        ec == asio::error::no_memory) {
      backoff_.expires_after(std::chrono::milliseconds(100));
      backoff_.async_wait([self = shared_from_this()](const std::error_code& e) {
        if (!e) self->accept();
      });
      return;
    }
    accept();
    return;
  }
  if (static_cast<uint64_t>(rt.stats.downstream_cx_active.value()) >= rt.connection_limit) {
    rt.stats.downstream_cx_overflow.inc();
    asio::error_code ignored;
    socket.close(ignored);
  } else if (static_cast<uint64_t>(rt.server_stats.total_connections.value()) >= rt.global_connection_limit) {
    rt.stats.downstream_global_cx_overflow.inc();
    asio::error_code ignored;
    socket.close(ignored);
  } else {
    TcpProxySession::start(worker_, runtime_, std::move(socket));
  }
  accept();
}

}  // namespace portcullis::proxy
