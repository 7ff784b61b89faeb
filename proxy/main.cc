// portcullis: flags -> config (validated, nothing bound) -> logging -> listeners -> run.
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <iostream>
#include <thread>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "attest/workload_api/endpoint_uri.h"
#include "common/audit.h"
#include "common/logging.h"
#include "config/yaml_file.h"
#include "proxy/cli_authority_admin.h"
#include "proxy/exit_codes.h"
#include "proxy/server.h"
#include "proxy/version_info.h"

using namespace portcullis;

int main(int argc, char** argv) {
  // Writes use MSG_NOSIGNAL, but a library write that forgets it must not kill the proxy.
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"portcullis: a zero-trust sidecar proxy (SPIFFE identities, mTLS, Envoy-compatible config)"};
  app.set_version_flag("--version", proxy::portcullis_version());
  proxy::ServerOptions opts;
  opts.mode = "serve";
  opts.log_level = "info";
  opts.max_config_bytes = config::kDefaultMaxConfigBytes;
  opts.concurrency = std::max(1u, std::thread::hardware_concurrency());
  uint32_t drain_time_s = 600;
  app.add_option("-c,--config-path", opts.config_path, "Path to the YAML bootstrap config");
  app.add_option("--mode", opts.mode, "serve: run; validate: check the config and exit; init_only: bind, then exit")
      ->check(CLI::IsMember({"serve", "validate", "init_only"}));
  app.add_option("-l,--log-level", opts.log_level, "trace, debug, info, warning, error, critical or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warning", "warn", "error", "critical", "off"}));
  app.add_option("--log-path", opts.log_path, "Write logs to this file instead of stderr");
  app.add_option("--concurrency", opts.concurrency, "Worker threads (default: number of cores)")
      ->check(CLI::Range(1u, 1024u));
  app.add_option("--drain-time-s", drain_time_s, "Seconds live connections get to finish after SIGTERM (default 600)")
      ->check(CLI::Range(0u, 86400u));
  app.add_option("--service-node", opts.overrides.service_node, "Overrides node.id");
  app.add_option("--service-cluster", opts.overrides.service_cluster, "Overrides node.cluster");
  app.add_option("--workload-api-socket", opts.overrides.workload_api.flag,
                 "Serve the SPIFFE Workload API at this URI (unix:///path or tcp://IP:port) when workload_api has no "
                 "address; default $SPIFFE_ENDPOINT_SOCKET");
  app.add_option("--admin-address-path", opts.admin_address_path, "Write the bound admin address to this file");
  app.add_option("--max-config-bytes", opts.max_config_bytes, "Refuse config files larger than this (default 8 MiB)")
      ->check(CLI::Range(size_t{1024}, size_t{1} << 30));
  auto* version_cmd = app.add_subcommand("version", "Print the versions of portcullis and every linked library");
  auto* audit_cmd = app.add_subcommand("audit", "Audit log tools");
  auto* audit_verify = audit_cmd->add_subcommand("verify", "Check an audit log's hash chain; names the first broken line");
  std::string audit_file;
  audit_verify->add_option("file", audit_file, "The audit log (JSON lines)")->required();
  audit_cmd->require_subcommand(1);
  proxy::AdminCli admin_cli;
  proxy::add_admin_commands(app, admin_cli);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? proxy::kExitOk : proxy::kExitUsage;
  }
  if (*version_cmd) {
    std::cout << proxy::version_report();
    return proxy::kExitOk;
  }
  if (*audit_verify) {
    auto checked = verify_audit_chain(audit_file);
    if (!checked.ok()) {
      std::cout << checked.error().message << "\n";
      return proxy::kExitBadConfig;
    }
    std::cout << "OK: " << *checked << " records, hash chain intact\n";
    return proxy::kExitOk;
  }
  if (admin_cli.selected()) return proxy::run_admin_command(admin_cli);
  if (opts.config_path.empty()) {
    std::cerr << "error: --config-path is required (see --help)\n";
    return proxy::kExitUsage;
  }
  opts.drain_time = std::chrono::seconds(drain_time_s);
  if (const char* env = std::getenv(attest::kSpiffeEndpointSocketEnv)) opts.overrides.workload_api.env = env;

  if (Status s = configure_logging(opts.log_level, opts.log_path); !s.ok()) {
    std::cerr << "error: " << s.error().message << "\n";
    return proxy::kExitLogging;
  }

  StatsStore stats;
  config::ErrorList errors;
  auto server_config = proxy::load_server_config(opts.config_path, opts.max_config_bytes, opts.overrides, stats, errors);
  if (opts.mode == "validate") {
    std::cout << (server_config ? "OK\n" : errors.format());
    return server_config ? proxy::kExitOk : proxy::kExitBadConfig;
  }
  if (!server_config) {
    std::cerr << errors.format();
    spdlog::critical("invalid config {}: {} error(s)", opts.config_path, errors.size());
    return proxy::kExitBadConfig;
  }

  spdlog::info("portcullis {} starting: {} workers, config {}", proxy::portcullis_version(), opts.concurrency,
               opts.config_path);
  proxy::Server server(opts, stats, server_config);
  if (Status s = server.start(); !s.ok()) {
    spdlog::critical("startup failed: {}", s.error().message);
    return proxy::kExitStartup;
  }
  if (opts.mode == "init_only") {
    spdlog::info("init_only: initialized, exiting");
    server.shutdown();
    return proxy::kExitOk;
  }
  server.run();
  spdlog::info("portcullis exiting");
  spdlog::shutdown();
  return proxy::kExitOk;
}
