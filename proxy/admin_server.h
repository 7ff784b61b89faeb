#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include "common/result.h"
#include "common/stats.h"
#include "common/stats_macros.h"
#include "config/address.h"

namespace portcullis::proxy {

struct AdminRequest {
  std::string method;
  std::string path;                          // without the query string
  std::map<std::string, std::string> query;  // decoded
};

struct AdminResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=UTF-8";
  std::string body;
};

// AdminRoute is one admin endpoint. Mutating endpoints are post_only: a GET on them answers
// 400, so a browser or a crawler cannot trigger them.
struct AdminRoute {
  std::string path;
  std::string help;
  bool post_only = false;
  std::function<AdminResponse(const AdminRequest&)> handler;
};

// Envoy's `http.admin.` stats for the admin listener.
#define PORTCULLIS_ADMIN_STATS(COUNTER, GAUGE) \
  GAUGE(downstream_cx_active)                 \
  COUNTER(downstream_cx_overflow)             \
  COUNTER(downstream_cx_total)                \
  COUNTER(downstream_rq_4xx)                  \
  COUNTER(downstream_rq_total)                \
  COUNTER(downstream_rq_timeout)

struct AdminStats {
  PORTCULLIS_ADMIN_STATS(PORTCULLIS_DECLARE_COUNTER, PORTCULLIS_DECLARE_GAUGE)
  static AdminStats create(StatsStore& store);
};

// AdminServer is a small HTTP/1.1 server (http-parser) for the admin endpoints. One request per
// connection; requests larger than max_request_bytes get 413, slow ones are cut off after
// kRequestTimeout, and at most kMaxConnections are open at once. Runs on the main thread's loop.
class AdminServer {
 public:
  static constexpr size_t kMaxConnections = 64;
  static constexpr std::chrono::seconds kRequestTimeout{10};

  AdminServer(asio::io_context& io, StatsStore& stats, uint32_t max_request_bytes);
  ~AdminServer();

  void add_route(AdminRoute route);
  Result<asio::ip::tcp::endpoint> listen(const config::SocketAddress& address);
  void close();

  // dispatch answers one parsed request; public so handlers can be tested without sockets.
  AdminResponse dispatch(const AdminRequest& request) const;

 private:
  class Connection;
  void accept();

  asio::io_context& io_;
  AdminStats stats_;
  uint32_t max_request_bytes_;
  asio::ip::tcp::acceptor acceptor_;
  std::vector<AdminRoute> routes_;
  std::shared_ptr<size_t> open_connections_ = std::make_shared<size_t>(0);
};

// parse_admin_target splits `/path?a=1&b=x%20y` into path and decoded query parameters.
void parse_admin_target(const std::string& target, AdminRequest& out);

}  // namespace portcullis::proxy
