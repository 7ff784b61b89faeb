#include "proxy/admin_server.h"

#include <http_parser.h>

#include <array>

#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <spdlog/spdlog.h>

namespace portcullis::proxy {
namespace {

const char* reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2])));
      i += 2;
    } else if (s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::string serialize(const AdminResponse& r) {
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + reason_phrase(r.status) + "\r\n";
  out += "Content-Type: " + r.content_type + "\r\n";
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  out += "Cache-Control: no-cache, max-age=0\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n";
  out += r.body;
  return out;
}

}  // namespace

AdminStats AdminStats::create(StatsStore& store) {
  StatScope scope{"http", "envoy_http_conn_manager_prefix", "admin"};
  return AdminStats{PORTCULLIS_ADMIN_STATS(PORTCULLIS_MAKE_COUNTER, PORTCULLIS_MAKE_GAUGE)};
}

void parse_admin_target(const std::string& target, AdminRequest& out) {
  size_t q = target.find('?');
  out.path = percent_decode(target.substr(0, q));
  if (q == std::string::npos) return;
  std::string_view rest(target);
  rest.remove_prefix(q + 1);
  while (!rest.empty()) {
    size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    size_t eq = pair.find('=');
    std::string key = percent_decode(pair.substr(0, eq));
    std::string value = eq == std::string_view::npos ? "" : percent_decode(pair.substr(eq + 1));
    if (!key.empty()) out.query[key] = value;
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
}

// Connection reads one request, answers it and closes.
class AdminServer::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(AdminServer& server, asio::ip::tcp::socket socket)
      : server_(server), stats_(server.stats_), socket_(std::move(socket)), timer_(server.io_),
        open_(server.open_connections_) {
    ++*open_;
    stats_.downstream_cx_active.inc();
    http_parser_init(&parser_, HTTP_REQUEST);
    parser_.data = this;
    http_parser_settings_init(&settings_);
    settings_.on_url = [](http_parser* p, const char* at, size_t len) {
      static_cast<Connection*>(p->data)->url_.append(at, len);
      return 0;
    };
    settings_.on_message_complete = [](http_parser* p) {
      static_cast<Connection*>(p->data)->complete_ = true;
      // Stop at the end of the first request: bytes behind it (a pipelined second request)
      // must not be parsed into this one's URL.
      http_parser_pause(p, 1);
      return 0;
    };
  }
  // Runs even after the server is gone (pending handlers destroyed with the loop), so it only
  // touches what the connection holds itself.
  ~Connection() {
    --*open_;
    stats_.downstream_cx_active.dec();
  }

  void start() {
    timer_.expires_after(kRequestTimeout);
    timer_.async_wait([self = shared_from_this()](const std::error_code& ec) {
      if (ec) return;
      self->stats_.downstream_rq_timeout.inc();
      asio::error_code ignored;
      self->socket_.close(ignored);
    });
    read();
  }

 private:
  void read() {
    socket_.async_read_some(asio::buffer(buf_), [self = shared_from_this()](const std::error_code& ec, size_t n) {
      self->on_read(ec, n);
    });
  }

  void on_read(const std::error_code& ec, size_t n) {
    if (ec) return finish();
    received_ += n;
    if (received_ > server_.max_request_bytes_) {
      return respond(AdminResponse{413, "text/plain; charset=UTF-8", "request too large\n"});
    }
    size_t parsed = http_parser_execute(&parser_, &settings_, buf_.data(), n);
    if (!complete_ && (parser_.http_errno != HPE_OK || parsed != n)) {
      return respond(AdminResponse{400, "text/plain; charset=UTF-8",
                                   std::string("malformed request: ") +
                                       http_errno_description(static_cast<http_errno>(parser_.http_errno)) + "\n"});
    }
    if (!complete_) return read();
    AdminRequest request;
    request.method = http_method_str(static_cast<http_method>(parser_.method));
    parse_admin_target(url_, request);
    respond(server_.dispatch(request));
  }

  void respond(AdminResponse response) {
    stats_.downstream_rq_total.inc();
    if (response.status >= 400 && response.status < 500) stats_.downstream_rq_4xx.inc();
    out_ = serialize(response);
    asio::async_write(socket_, asio::buffer(out_), [self = shared_from_this()](const std::error_code&, size_t) {
      self->finish();
    });
  }

  void finish() {
    asio::error_code ignored;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    timer_.cancel();
  }

  AdminServer& server_;
  AdminStats stats_;
  asio::ip::tcp::socket socket_;
  asio::steady_timer timer_;
  std::shared_ptr<size_t> open_;
  http_parser parser_{};
  http_parser_settings settings_{};
  std::array<char, 4096> buf_{};
  std::string url_;
  std::string out_;
  size_t received_ = 0;
  bool complete_ = false;
};

AdminServer::AdminServer(asio::io_context& io, StatsStore& stats, uint32_t max_request_bytes)
    : io_(io), stats_(AdminStats::create(stats)), max_request_bytes_(max_request_bytes), acceptor_(io) {}

AdminServer::~AdminServer() { close(); }

void AdminServer::add_route(AdminRoute route) { routes_.push_back(std::move(route)); }

Result<asio::ip::tcp::endpoint> AdminServer::listen(const config::SocketAddress& address) {
  asio::error_code ec;
  auto ip = asio::ip::make_address(address.address, ec);
  if (ec) return make_error(ErrorCode::kInvalidArgument, "bad admin address " + address.address);
  asio::ip::tcp::endpoint endpoint(ip, static_cast<uint16_t>(address.port_value));
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(128, ec);
  if (ec) return make_error(ErrorCode::kIo, "cannot listen on admin address " + address.to_string() + ": " + ec.message());
  accept();
  return acceptor_.local_endpoint();
}

void AdminServer::close() {
  asio::error_code ignored;
  acceptor_.close(ignored);
}

void AdminServer::accept() {
  acceptor_.async_accept([this](const std::error_code& ec, asio::ip::tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (!ec) {
      stats_.downstream_cx_total.inc();
      if (*open_connections_ >= kMaxConnections) {
        stats_.downstream_cx_overflow.inc();
        asio::error_code ignored;
        socket.close(ignored);
      } else {
        std::make_shared<Connection>(*this, std::move(socket))->start();
      }
    }
    accept();
  });
}

AdminResponse AdminServer::dispatch(const AdminRequest& request) const {
  for (const AdminRoute& route : routes_) {
    if (route.path != request.path) continue;
    if (route.post_only && request.method != "POST") {
      return AdminResponse{400, "text/plain; charset=UTF-8", "This endpoint requires POST\n"};
    }
    return route.handler(request);
  }
  std::string body = "invalid path; admin commands are:\n";
  for (const AdminRoute& route : routes_) {
    body += "  " + route.path + (route.post_only ? " (POST)" : "") + ": " + route.help + "\n";
  }
  return AdminResponse{404, "text/plain; charset=UTF-8", body};
}

}  // namespace portcullis::proxy
