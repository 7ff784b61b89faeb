#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>

#include "attest/authority/authority_config.h"
#include "attest/authority/authority_core.h"
#include "attest/authority/authority_service.h"
#include "common/audit.h"
#include "common/stats.h"
#include "proxy/admin_server.h"
#include "proxy/authority_tls.h"
#include "proxy/grpc_hosting.h"
#include "proxy/worker.h"

namespace portcullis::proxy {

// AuthorityOptions are the flags of `portcullis authority`.
struct AuthorityOptions {
  std::string config_path;
  std::string mode = "serve";  // serve | validate
  std::string log_level = "info";
  std::string log_path;
  uint32_t concurrency = 2;
  uint32_t drain_time_s = 10;
  size_t max_config_bytes = 0;
  std::string admin_address_path;   // where to write the bound admin (HTTP) address
  std::string listen_address_path;  // where to write the bound Authority address, once serving
};

// add_authority_command registers `portcullis authority` on `app`.
CLI::App* add_authority_command(CLI::App& app, AuthorityOptions& out);

// run_authority is the whole `portcullis authority` process: config -> logging -> store, CA,
// core -> servers -> serve until SIGTERM. Returns the exit code (proxy/exit_codes.h).
int run_authority(AuthorityOptions options);

// AuthorityServer is the attestation authority process: the Authority service over TLS on
// `listen` (its server SVID minted from its own CA and renewed at half-life, or sooner when the
// bundle changes), AuthorityAdmin over h2c on the admin socket, both on `concurrency` worker
// loops; an optional HTTP admin endpoint (/ready, /stats); and a main-thread timer that renews
// the server SVID, pushes bundle changes to watchers and prunes expired state.
//
// Lifecycle (main thread): start() builds everything and binds (failing as a whole), run()
// serves until SIGTERM/SIGINT, which drains (NOT_SERVING, GOAWAY, up to drain_time for open
// calls) and stops. Streams (WatchUpdates) are cut at the end of the drain.
class AuthorityServer {
 public:
  AuthorityServer(AuthorityOptions options, attest::authority::AuthorityConfig config, StatsStore& stats);
  ~AuthorityServer();

  Status start();
  void run();
  void begin_drain();
  void shutdown();
  bool ready() const { return ready_; }

 private:
  Status open_core();
  Status start_servers();
  Status start_admin();
  Status write_address_file(const std::string& path, const std::string& address) const;
  void watch_signals();
  void schedule_maintenance();
  void maintain();
  void poll_drain();
  int64_t open_connections() const;

  AuthorityOptions options_;
  attest::authority::AuthorityConfig config_;
  StatsStore& stats_;
  asio::io_context main_io_{1};
  asio::signal_set signals_{main_io_};
  asio::steady_timer maintenance_timer_{main_io_};
  asio::steady_timer drain_timer_{main_io_};
  std::unique_ptr<AdminServer> admin_;
  std::unique_ptr<AuditLog> audit_;
  std::shared_ptr<attest::authority::AuthorityCore> core_;
  std::shared_ptr<attest::authority::AuthorityService> service_;
  AuthorityTls tls_;
  // Declared before workers_: calls still queued on the workers' loops reference the servers.
  std::unique_ptr<GrpcHosting> grpc_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::chrono::steady_clock::time_point drain_deadline_{};
  std::chrono::steady_clock::time_point next_prune_{};
  std::chrono::steady_clock::time_point last_renewal_error_log_{};
  std::chrono::steady_clock::time_point last_rotation_error_log_{};
  bool ready_ = false;
  bool draining_ = false;
  bool stopped_ = false;
};

}  // namespace portcullis::proxy
