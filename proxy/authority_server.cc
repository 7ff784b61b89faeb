#include "proxy/authority_server.h"

#include <sys/stat.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <spdlog/spdlog.h>

#include "common/logging.h"
#include "proxy/exit_codes.h"
#include "proxy/grpc/grpc_server_limits.h"

namespace portcullis::proxy {
namespace {

namespace authority = attest::authority;

constexpr const char* kAuthorityServer = "authority";
constexpr const char* kAdminServer = "authority_admin";
constexpr const char* kText = "text/plain; charset=UTF-8";
constexpr std::chrono::seconds kMaintenanceInterval{1};
constexpr std::chrono::seconds kPruneInterval{60};
constexpr std::chrono::milliseconds kDrainPollInterval{50};
// A failed renewal of the server SVID or CA rotation step is retried at the next tick, but logged
// at most this often.
constexpr std::chrono::seconds kRenewalErrorLogInterval{30};

// private_dir creates `path` (and parents) and makes the leaf 0700: it holds the CA key and the
// store.
Status private_dir(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return make_error(ErrorCode::kIo, "data_dir " + path + ": " + ec.message());
  if (::chmod(path.c_str(), 0700) != 0) return make_error(ErrorCode::kIo, "data_dir " + path + ": cannot chmod 0700");
  return {};
}

}  // namespace

CLI::App* add_authority_command(CLI::App& app, AuthorityOptions& out) {
  auto* cmd = app.add_subcommand("authority", "Run the attestation authority (CA, registration entries, node attestation)");
  cmd->add_option("-c,--config-path", out.config_path, "Path to authority.yaml")->required();
  cmd->add_option("--mode", out.mode, "serve: run; validate: check the config and exit")
      ->check(CLI::IsMember({"serve", "validate"}));
  cmd->add_option("-l,--log-level", out.log_level, "trace, debug, info, warning, error, critical or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warning", "warn", "error", "critical", "off"}));
  cmd->add_option("--log-path", out.log_path, "Write logs to this file instead of stderr");
  cmd->add_option("--concurrency", out.concurrency, "Worker threads serving gRPC (default 2)")->check(CLI::Range(1u, 256u));
  cmd->add_option("--drain-time-s", out.drain_time_s, "Seconds open calls get to finish after SIGTERM (default 10)")
      ->check(CLI::Range(0u, 3600u));
  cmd->add_option("--admin-address-path", out.admin_address_path, "Write the bound admin (HTTP) address to this file");
  cmd->add_option("--listen-address-path", out.listen_address_path,
                  "Write the bound Authority address to this file once serving (a readiness signal)");
  return cmd;
}

AuthorityServer::AuthorityServer(AuthorityOptions options, authority::AuthorityConfig config, StatsStore& stats)
    : options_(std::move(options)), config_(std::move(config)), stats_(stats) {}

AuthorityServer::~AuthorityServer() { shutdown(); }

Status AuthorityServer::open_core() {
  if (config_.audit) {
    std::vector<AuditSinkConfig> sinks;
    for (const auto& s : config_.audit->sinks) {
      sinks.push_back(s.stdout_sink ? AuditSinkConfig{AuditSinkConfig::Kind::kStdout, ""}
                                    : AuditSinkConfig{AuditSinkConfig::Kind::kFile, s.path});
    }
    auto log = AuditLog::create(std::move(sinks), config_.audit->queue_size, stats_);
    if (!log.ok()) return log.error();
    audit_ = std::move(log.value());
  }
  if (Status s = private_dir(config_.data_dir); !s.ok()) return s;
  const auto& limits = config_.limits;
  authority::AuthorityStoreOptions store_options;
  store_options.trust_domain = config_.trust_domain;
  store_options.entry_limits = authority::EntryLimits{limits.max_selectors_per_entry, limits.max_selector_bytes,
                                                      limits.max_dns_names_per_entry, limits.max_svid_ttl};
  store_options.max_entries = limits.max_entries;
  store_options.max_join_token_ttl = limits.max_join_token_ttl;
  auto store = authority::AuthorityStore::open(config_.data_dir + "/authority.db", stats_, store_options);
  if (!store.ok()) return make_error(store.error().code, "store: " + store.error().message);

  authority::CaOptions ca_options;
  ca_options.trust_domain = config_.trust_domain;
  ca_options.data_dir = config_.data_dir;
  if (config_.ca.upstream()) {
    ca_options.upstream = std::make_pair(*config_.ca.upstream_certificate_chain, *config_.ca.upstream_private_key);
  }
  if (config_.ca.ttl) ca_options.ca_ttl = *config_.ca.ttl;
  ca_options.stats = &stats_;
  auto ca = authority::CertificateAuthority::open(std::move(ca_options));
  if (!ca.ok()) return make_error(ca.error().code, "CA: " + ca.error().message);

  core_ = std::make_shared<authority::AuthorityCore>(authority::AuthorityCoreOptions::from_config(config_),
                                                     std::move(ca.value()), std::move(store.value()), stats_,
                                                     audit_.get());
  if (!config_.entries_file.empty()) {
    auto seeded = core_->seed_entries_file(config_.entries_file);
    if (!seeded.ok()) return make_error(seeded.error().code, "entries_file: " + seeded.error().message);
    spdlog::info("entries_file {}: {} created, {} updated, {} unchanged", config_.entries_file, seeded->created,
                 seeded->updated, seeded->unchanged);
  }
  return {};
}

Status AuthorityServer::start_servers() {
  auto tls = mint_authority_tls(*core_, config_.server_svid_ttl);
  if (!tls.ok()) return tls.error();
  tls_ = std::move(tls.value());
  service_ = std::make_shared<authority::AuthorityService>(core_, config_.admin_uids, stats_, audit_.get());

  GrpcServerLimits limits;
  if (config_.grpc_limits) {
    config::ErrorList errors;  // validated with the config already; cannot fail here
    if (auto parsed = parse_grpc_server_limits(*config_.grpc_limits, errors)) limits = *parsed;
  }
  grpc_ = std::make_unique<GrpcHosting>(stats_);
  grpc::ServiceRegistry node_registry;
  if (Status s = authority::AuthorityService::register_authority(service_, node_registry); !s.ok()) return s;
  if (Status s = grpc_->add({kAuthorityServer, config_.listen, limits, tls_.context}, std::move(node_registry),
                            {authority::AuthorityService::kAuthorityServiceName});
      !s.ok()) {
    return s;
  }
  grpc::ServiceRegistry admin_registry;
  if (Status s = authority::AuthorityService::register_admin(service_, admin_registry); !s.ok()) return s;
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(config_.admin_socket.path).parent_path(), ec);
  if (Status s = grpc_->add({kAdminServer, config::Address{config_.admin_socket}, limits, nullptr},
                            std::move(admin_registry), {authority::AuthorityService::kAdminServiceName});
      !s.ok()) {
    return s;
  }
  if (Status s = grpc_->bind(); !s.ok()) return s;
  for (uint32_t i = 0; i < options_.concurrency; ++i) workers_.push_back(std::make_unique<Worker>(i));
  std::vector<asio::io_context*> loops;
  for (auto& w : workers_) loops.push_back(&w->io());
  grpc_->start(loops);
  for (auto& w : workers_) w->start();
  spdlog::info("authority {} serving on {} as {} (server SVID serial {})", config_.trust_domain,
               grpc_->bound_address(kAuthorityServer), tls_.spiffe_id, tls_.serial);
  return {};
}

Status AuthorityServer::start_admin() {
  if (!config_.admin) return {};
  admin_ = std::make_unique<AdminServer>(main_io_, stats_, config_.admin->max_request_bytes);
  admin_->add_route({"/ready", "readiness: 200 LIVE, or 503 with the state", false, [this](const AdminRequest&) {
    if (ready_) return AdminResponse{200, kText, "LIVE\n"};
    return AdminResponse{503, kText, draining_ ? "DRAINING\n" : "PRE_INITIALIZING\n"};
  }});
  admin_->add_route({"/stats", "stats as `name: value` lines", false,
                     [this](const AdminRequest&) { return AdminResponse{200, kText, stats_.render_text()}; }});
  admin_->add_route({"/stats/prometheus", "stats in Prometheus text format", false, [this](const AdminRequest&) {
    return AdminResponse{200, "text/plain; version=0.0.4; charset=UTF-8", stats_.render_prometheus()};
  }});
  auto endpoint = admin_->listen(config_.admin->address);
  if (!endpoint.ok()) return endpoint.error();
  std::string address = endpoint->address().to_string() + ":" + std::to_string(endpoint->port());
  spdlog::info("admin listening on {}", address);
  return write_address_file(options_.admin_address_path, address);
}

Status AuthorityServer::write_address_file(const std::string& path, const std::string& address) const {
  if (path.empty()) return {};
  // Written whole and renamed into place, so a reader never sees half an address.
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << address << "\n";
    if (!out) return make_error(ErrorCode::kIo, "cannot write " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return make_error(ErrorCode::kIo, "cannot write " + path + ": " + ec.message());
  return {};
}

Status AuthorityServer::start() {
  if (Status s = open_core(); !s.ok()) return s;
  if (Status s = start_admin(); !s.ok()) return s;
  if (Status s = start_servers(); !s.ok()) return s;
  watch_signals();
  next_prune_ = std::chrono::steady_clock::now();
  schedule_maintenance();
  ready_ = true;
  return write_address_file(options_.listen_address_path, grpc_->bound_address(kAuthorityServer));
}

void AuthorityServer::run() { main_io_.run(); }

void AuthorityServer::watch_signals() {
  signals_.add(SIGTERM);
  signals_.add(SIGINT);
  signals_.add(SIGHUP);
  signals_.add(SIGUSR1);
  signals_.async_wait([this](const std::error_code& ec, int signo) {
    if (ec) return;
    if (signo == SIGUSR1) {
      if (Status s = reopen_log_file(); !s.ok()) spdlog::error("SIGUSR1: {}", s.error().message);
      if (audit_) audit_->reopen();
    } else if (signo == SIGHUP) {
      spdlog::warn("SIGHUP: the authority does not reload its config; restart it to apply changes");
    } else {
      spdlog::info("{}: draining for up to {}s", signo == SIGTERM ? "SIGTERM" : "SIGINT", options_.drain_time_s);
      begin_drain();
    }
    watch_signals();
  });
}

void AuthorityServer::schedule_maintenance() {
  maintenance_timer_.expires_after(kMaintenanceInterval);
  maintenance_timer_.async_wait([this](const std::error_code& ec) {
    if (ec || stopped_) return;
    maintain();
    schedule_maintenance();
  });
}

void AuthorityServer::maintain() {
  // A new CA (rotation) goes to the watchers first, then into our own TLS trust.
  if (Status s = core_->rotate_ca_if_due(config_.ca.upstream()); !s.ok()) {
    if (std::chrono::steady_clock::now() - last_rotation_error_log_ > kRenewalErrorLogInterval) {
      last_rotation_error_log_ = std::chrono::steady_clock::now();
      spdlog::error("authority: CA rotation step failed (retried every second): {}", s.error().message);
    }
  }
  auto now = std::chrono::system_clock::now();
  if (now >= tls_.renew_at() || core_->bundle().sequence_number() != tls_.bundle_sequence) {
    auto fresh = mint_authority_tls(*core_, config_.server_svid_ttl);
    if (fresh.ok()) {
      tls_ = std::move(fresh.value());
      grpc_->server(kAuthorityServer)->set_tls(tls_.context);
      spdlog::info("authority: server SVID renewed, serial {}", tls_.serial);
    } else {
      if (std::chrono::steady_clock::now() - last_renewal_error_log_ > kRenewalErrorLogInterval) {
        last_renewal_error_log_ = std::chrono::steady_clock::now();
        spdlog::error("authority: server SVID renewal failed, keeping serial {}: {}", tls_.serial,
                      fresh.error().message);
      }
    }
  }
  if (std::chrono::steady_clock::now() >= next_prune_) {
    next_prune_ = std::chrono::steady_clock::now() + kPruneInterval;
    if (Status s = core_->prune(); !s.ok()) spdlog::warn("authority: pruning expired state failed: {}", s.error().message);
  }
}

int64_t AuthorityServer::open_connections() const {
  int64_t n = 0;
  for (const char* name : {kAuthorityServer, kAdminServer}) {
    n += stats_.value(std::string("grpc_server.") + name + ".connections_active").value_or(0);
  }
  return n;
}

void AuthorityServer::begin_drain() {
  if (draining_ || stopped_) return;
  draining_ = true;
  ready_ = false;
  if (grpc_) grpc_->drain();
  drain_deadline_ = std::chrono::steady_clock::now() + std::chrono::seconds(options_.drain_time_s);
  poll_drain();
}

void AuthorityServer::poll_drain() {
  if (open_connections() == 0 || std::chrono::steady_clock::now() >= drain_deadline_) {
    int64_t left = open_connections();
    if (left > 0) spdlog::warn("drain time over: closing {} connections", left);
    shutdown();
    return;
  }
  drain_timer_.expires_after(kDrainPollInterval);
  drain_timer_.async_wait([this](const std::error_code& ec) {
    if (!ec) poll_drain();
  });
}

void AuthorityServer::shutdown() {
  if (stopped_) return;
  stopped_ = true;
  ready_ = false;
  asio::error_code ignored;
  signals_.cancel(ignored);
  maintenance_timer_.cancel();
  drain_timer_.cancel();
  if (admin_) admin_->close();
  if (grpc_) grpc_->stop();
  for (auto& w : workers_) w->stop();
  if (audit_) audit_->flush();
  main_io_.stop();
}

int run_authority(AuthorityOptions options) {
  if (Status s = configure_logging(options.log_level, options.log_path); !s.ok()) {
    std::cerr << "error: " << s.error().message << "\n";
    return kExitLogging;
  }
  config::ErrorList errors;
  auto config = authority::load_authority_config(options.config_path, options.max_config_bytes, errors,
                                                 [&errors](const config::Node& n) { parse_grpc_server_limits(n, errors); });
  if (options.mode == "validate") {
    std::cout << (config ? "OK\n" : errors.format());
    return config ? kExitOk : kExitBadConfig;
  }
  if (!config) {
    std::cerr << errors.format();
    spdlog::critical("invalid config {}: {} error(s)", options.config_path, errors.size());
    return kExitBadConfig;
  }
  StatsStore stats;
  AuthorityServer server(options, std::move(*config), stats);
  if (Status s = server.start(); !s.ok()) {
    spdlog::critical("authority startup failed: {}", s.error().message);
    return kExitStartup;
  }
  server.run();
  spdlog::info("authority exiting");
  spdlog::shutdown();
  return kExitOk;
}

}  // namespace portcullis::proxy
