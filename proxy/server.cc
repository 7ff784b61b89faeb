#include "proxy/server.h"

#include <algorithm>
#include <csignal>
#include <fstream>

#include <spdlog/spdlog.h>

#include "common/logging.h"

namespace portcullis::proxy {
namespace {

// Envoy's server.state values.
constexpr int64_t kStateLive = 0;
constexpr int64_t kStateDraining = 1;
constexpr int64_t kStatePreInitializing = 2;

constexpr std::chrono::milliseconds kDrainPollInterval{50};

// identity_text is the identity block as YAML, to tell whether a reload changes it.
std::string identity_text(const ServerConfig& config) {
  if (!config.bootstrap.identity) return "";
  YAML::Emitter out;
  out << config.bootstrap.identity->yaml();
  return out.c_str();
}

std::string listener_stat_tag(const config::ListenerConfig& l, const asio::ip::tcp::endpoint& local) {
  if (!l.stat_prefix.empty()) return l.stat_prefix;
  return local.address().to_string() + "_" + std::to_string(local.port());
}

}  // namespace

Server::Server(ServerOptions options, StatsStore& stats, std::shared_ptr<const ServerConfig> config)
    : options_(std::move(options)),
      stats_(stats),
      server_stats_(ServerStats::create(stats)),
      listener_manager_stats_(ListenerManagerStats::create(stats)),
      config_(std::move(config)),
      revocations_(std::make_shared<mtls::RevocationPublisher>(stats)) {
  server_stats_.state.set(kStatePreInitializing);
  server_stats_.concurrency.set(options_.concurrency);
  for (uint32_t i = 0; i < options_.concurrency; ++i) {
    workers_.push_back(WorkerSlot{std::make_unique<Worker>(i), {}});
  }
}

Server::~Server() {
  shutdown();
  // The agent and the exit watcher's thread post to main_io_, which is destroyed before them.
  agent_.reset();
  authority_api_.reset();
  exit_watcher_.reset();
}

Status Server::start() {
  if (Status s = start_audit(); !s.ok()) return s;
  main_thread_ = std::this_thread::get_id();
  if (config_->agent) {
    if (Status s = start_agent(); !s.ok()) return s;
  } else if (config_->identity) {
    // Read again: the files may have changed since the config was validated.
    auto store = mtls::StaticSvidStore::create(*config_->identity, stats_);
    if (!store.ok()) return make_error(store.error().code, "identity: " + store.error().message);
    static_identity_ = std::move(store.value());
    identity_ = static_identity_;
  }
  if (Status s = apply(config_); !s.ok()) return s;
  if (Status s = start_admin(); !s.ok()) return s;
  if (Status s = build_grpc(); !s.ok()) return s;
  std::vector<asio::io_context*> loops;
  for (auto& slot : workers_) loops.push_back(&slot.worker->io());
  grpc_->start(loops);
  for (auto& slot : workers_) slot.worker->start();
  watch_revocations();
  watch_signals();
  watch_tls_files();
  server_stats_.state.set(kStateLive);
  server_stats_.live.set(1);
  return {};
}

void Server::run() {
  main_io_.run();
}

std::map<std::string, std::shared_ptr<const Cluster>> Server::build_clusters(const ServerConfig& config) {
  std::map<std::string, std::shared_ptr<const Cluster>> out;
  for (const auto& c : config.bootstrap.clusters) {
    auto tls = config.cluster_tls.find(c.name);
    auto selector = config.cluster_tls_selectors.find(c.name);
    out[c.name] = std::make_shared<const Cluster>(c, stats_, tls == config.cluster_tls.end() ? nullptr : tls->second,
                                                  selector == config.cluster_tls_selectors.end() ? nullptr : selector->second);
  }
  return out;
}

std::shared_ptr<const ListenerRuntime> Server::make_runtime(
    const ServerConfig& config, size_t index, const asio::ip::tcp::endpoint& local,
    const std::map<std::string, std::shared_ptr<const Cluster>>& clusters) {
  const config::ListenerConfig& l = config.bootstrap.listeners[index];
  const filters::NetworkFilterChain& chain = config.chains[index];
  const auto& limits = config.bootstrap.limits;
  std::string tag = listener_stat_tag(l, local);
  auto rt = std::make_shared<ListenerRuntime>(ListenerRuntime{
      l.name,
      local.address().to_string() + ":" + std::to_string(local.port()),
      chain,
      clusters.at(chain.tcp_proxy->cluster()),
      l.per_connection_buffer_limit_bytes,
      limits.connection_limit_for(l.name),
      limits.global_max_connections,
      ListenerStats::create(stats_, tag),
      server_stats_,
      config.listener_tls[index],
      l.filter_chains.front().transport_socket_connect_timeout,
      std::nullopt,
      audit_.get(),
  });
  if (auto selector = config.listener_tls_selectors.find(index); selector != config.listener_tls_selectors.end()) {
    rt->tls_selector = selector->second;
  }
  if (rt->tls || rt->tls_selector) rt->ssl_stats.emplace(SslStats::create(stats_, StatScope{"listener", "envoy_listener_address", tag}));
  return rt;
}

Status Server::apply(std::shared_ptr<const ServerConfig> config) {
  auto attached = attach_revocations(std::move(config));
  if (!attached.ok()) return attached.error();
  attached = attach_identity_selectors(std::move(attached.value()));
  if (!attached.ok()) return attached.error();
  config = std::move(attached.value());
  const auto& b = config->bootstrap;

  // Bind every new or moved listener first, so a failure leaves the running config untouched.
  std::map<std::string, ListenSockets> bound;
  for (const auto& l : b.listeners) {
    auto it = listeners_.find(l.name);
    if (it != listeners_.end() && it->second.config.address == l.address) continue;
    auto sockets = bind_listen_sockets(l.address, workers_.size(), static_cast<int>(l.tcp_backlog_size));
    if (!sockets.ok()) {
      listener_manager_stats_.listener_create_failure.inc();
      return make_error(ErrorCode::kUnavailable, "listener '" + l.name + "': " + sockets.error().message);
    }
    bound.emplace(l.name, std::move(sockets.value()));
  }

  // Only now that nothing can fail: building a cluster publishes its stats (membership_total),
  // which must keep describing the running config when a reload is rejected.
  auto clusters = build_clusters(*config);
  std::map<std::string, ActiveListener> next;
  for (size_t i = 0; i < b.listeners.size(); ++i) {
    const auto& l = b.listeners[i];
    auto old = listeners_.find(l.name);
    if (auto fresh = bound.find(l.name); fresh != bound.end()) {
      if (old != listeners_.end()) post_remove_listener(l.name);  // moved to a new address
      auto rt = make_runtime(*config, i, fresh->second.local, clusters);
      spdlog::info("listener '{}' listening on {}", l.name, rt->local_address);
      next[l.name] = ActiveListener{l, fresh->second.local, rt};
      post_add_listener(l.name, fresh->second.release(), rt);
      listener_manager_stats_.listener_added.inc();
    } else {
      // Same address: keep the sockets (and so every live connection), publish the new config.
      auto rt = make_runtime(*config, i, old->second.local, clusters);
      if (old->second.config.canonical != l.canonical) listener_manager_stats_.listener_in_place_updated.inc();
      next[l.name] = ActiveListener{l, old->second.local, rt};
      post_update_listener(l.name, rt);
    }
  }
  for (const auto& [name, active] : listeners_) {
    if (!next.contains(name)) {
      spdlog::info("listener '{}' removed", name);
      post_remove_listener(name);
      listener_manager_stats_.listener_removed.inc();
    }
  }
  listeners_ = std::move(next);
  listener_manager_stats_.total_listeners_active.set(static_cast<int64_t>(listeners_.size()));
  config_ = std::move(config);
  config_loaded_at_ = std::chrono::system_clock::now();
  return {};
}

void Server::post_add_listener(const std::string& name, std::vector<int> fds, std::shared_ptr<const ListenerRuntime> rt) {
  for (size_t i = 0; i < workers_.size(); ++i) {
    WorkerSlot* slot = &workers_[i];
    int fd = fds[i];
    slot->worker->post([slot, name, fd, rt] {
      auto listener = std::make_shared<WorkerListener>(*slot->worker, fd, rt);
      listener->start();
      slot->listeners[name] = std::move(listener);
    });
  }
}

void Server::post_update_listener(const std::string& name, std::shared_ptr<const ListenerRuntime> rt) {
  for (auto& slot : workers_) {
    WorkerSlot* s = &slot;
    s->worker->post([s, name, rt] {
      if (auto it = s->listeners.find(name); it != s->listeners.end()) it->second->update(rt);
    });
  }
}

void Server::post_remove_listener(const std::string& name) {
  for (auto& slot : workers_) {
    WorkerSlot* s = &slot;
    s->worker->post([s, name] {
      if (auto it = s->listeners.find(name); it != s->listeners.end()) {
        it->second->close();
        s->listeners.erase(it);
      }
    });
  }
}

void Server::close_all_listeners() {
  for (const auto& [name, active] : listeners_) post_remove_listener(name);
  listeners_.clear();
  listener_manager_stats_.total_listeners_active.set(0);
}

Status Server::reload() {
  if (draining_) return make_error(ErrorCode::kFailedPrecondition, "server is draining");
  config::ErrorList errors;
  auto next = load_server_config(options_.config_path, options_.max_config_bytes, options_.overrides, stats_, errors);
  Status result;
  if (!next) {
    result = make_error(ErrorCode::kInvalidArgument, errors.format());
  } else if (next->bootstrap.audit != config_->bootstrap.audit) {
    // The audit chain and its files belong to the process; changing them needs a restart.
    result = make_error(ErrorCode::kFailedPrecondition, "the audit block cannot change on reload; restart to change it");
  } else if (identity_text(*next) != identity_text(*config_)) {
    // Workload API and SDS streams watch one store for the life of the process.
    result = make_error(ErrorCode::kFailedPrecondition, "the identity block cannot change on reload; restart to change it");
  } else if (Status g = check_grpc_reload(*next); !g.ok()) {
    result = g;
  } else {
    auto applied = next;
    result = apply(std::move(next));
    if (result.ok()) apply_grpc_reload(*applied);
  }
  if (result.ok()) {
    watch_tls_files();  // the new config may name other certificate files
    server_stats_.config_reload_success.inc();
    spdlog::info("config reloaded from {}", options_.config_path);
  } else {
    server_stats_.config_reload_failure.inc();
    spdlog::error("config reload rejected, keeping the running config:\n{}", result.error().message);
  }
  return result;
}

void Server::watch_signals() {
  signals_.add(SIGTERM);
  signals_.add(SIGINT);
  signals_.add(SIGHUP);
  signals_.add(SIGUSR1);
  signals_.async_wait([this](const std::error_code& ec, int signo) {
    if (ec) return;
    if (signo == SIGUSR1) {
      if (Status s = reopen_log_file(); !s.ok()) spdlog::error("SIGUSR1: {}", s.error().message);
      if (audit_) audit_->reopen();
      watch_signals();
      return;
    }
    if (signo == SIGHUP) {
      spdlog::info("SIGHUP: reloading {}", options_.config_path);
      (void)reload();
      watch_signals();
      return;
    }
    spdlog::info("{}: draining for up to {}s", signo == SIGTERM ? "SIGTERM" : "SIGINT", options_.drain_time.count());
    begin_drain();
    watch_signals();  // a second SIGTERM during the drain is absorbed; SIGKILL still works
  });
}

void Server::begin_drain() {
  // Guarded by its own flag: POST /drain_listeners sets draining_ too, and a SIGTERM after it
  // (a Kubernetes preStop hook, then the kubelet's SIGTERM) must still shut the server down.
  if (drain_started_) return;
  drain_started_ = true;
  draining_ = true;
  server_stats_.state.set(kStateDraining);
  server_stats_.live.set(0);
  close_all_listeners();
  if (grpc_) grpc_->drain();
  drain_deadline_ = std::chrono::steady_clock::now() + options_.drain_time;
  poll_drain();
}

void Server::poll_drain() {
  int64_t active = server_stats_.total_connections.value();
  if (active == 0) {
    spdlog::info("drain complete: no connections left");
    shutdown();
    return;
  }
  if (std::chrono::steady_clock::now() >= drain_deadline_) {
    spdlog::warn("drain time over: closing {} live connections", active);
    shutdown();
    return;
  }
  drain_timer_.expires_after(kDrainPollInterval);
  drain_timer_.async_wait([this](const std::error_code& ec) {
    if (!ec) poll_drain();
  });
}

void Server::shutdown() {
  if (stopped_) return;
  stopped_ = true;
  server_stats_.live.set(0);
  if (admin_) admin_->close();
  asio::error_code ignored;
  signals_.cancel(ignored);
  revocation_subscription_.reset();
  drain_timer_.cancel();
  rotate_timer_.cancel();
  revocation_prune_timer_.cancel();
  if (tls_watch_fd_) tls_watch_fd_->close(ignored);
  close_all_listeners();
  if (grpc_) grpc_->stop();
  for (auto& slot : workers_) {
    WorkerSlot* s = &slot;
    s->worker->post([s] { s->listeners.clear(); });
    s->worker->stop();
  }
  if (audit_) audit_->flush();
  main_io_.stop();
}

Status Server::start_audit() {
  const auto& config = config_->bootstrap.audit;
  if (!config) return {};
  std::vector<AuditSinkConfig> sinks;
  for (const auto& s : config->sinks) {
    sinks.push_back(s.stdout_sink ? AuditSinkConfig{AuditSinkConfig::Kind::kStdout, ""}
                                  : AuditSinkConfig{AuditSinkConfig::Kind::kFile, s.path});
  }
  auto log = AuditLog::create(std::move(sinks), config->queue_size, stats_);
  if (!log.ok()) return log.error();
  audit_ = std::move(log.value());
  return {};
}

Status Server::start_admin() {
  const auto& admin = config_->bootstrap.admin;
  if (!admin) return {};
  admin_ = std::make_unique<AdminServer>(main_io_, stats_, admin->max_request_bytes);
  register_admin_routes();
  auto endpoint = admin_->listen(admin->address);
  if (!endpoint.ok()) return endpoint.error();
  std::string addr = endpoint->address().to_string() + ":" + std::to_string(endpoint->port());
  spdlog::info("admin listening on {}", addr);
  if (!options_.admin_address_path.empty()) {
    std::ofstream out(options_.admin_address_path, std::ios::trunc);
    out << addr << "\n";
    if (!out) return make_error(ErrorCode::kIo, "cannot write --admin-address-path " + options_.admin_address_path);
  }
  return {};
}

}  // namespace portcullis::proxy

namespace portcullis::proxy {
namespace {
// Editors and kubelet write several files one after another; wait for the burst to settle. 50 ms
// covers a cert and key renamed back to back (cert-manager, kubelet's symlink swap) and keeps an
// SDS or Workload API push within 100 ms of the new file (bench/RESULTS-sds.md).
constexpr std::chrono::milliseconds kRotationDebounce{50};
// The watch is on whole directories, so writes to other files there (a log kept next to the
// certificates) are events too: under steady traffic they would postpone a rotation forever.
constexpr std::chrono::milliseconds kRotationMaxDelay{500};
}  // namespace

void Server::watch_tls_files() {
  std::vector<std::string> files;
  for (const auto& ctx : config_->listener_tls) {
    if (ctx) for (auto& f : ctx->watched_files()) files.push_back(f);
  }
  for (const auto& [name, ctx] : config_->cluster_tls) {
    for (auto& f : ctx->watched_files()) files.push_back(f);
  }
  if (static_identity_) {
    for (auto& f : static_identity_->watched_files()) files.push_back(f);
  }
  asio::error_code ignored;
  if (tls_watch_fd_) tls_watch_fd_->close(ignored);  // a dup of the watcher's fd
  tls_watch_fd_.reset();
  tls_watcher_.reset();
  if (files.empty()) return;
  auto watcher = config::FileWatcher::create(files);
  if (!watcher.ok()) {
    spdlog::error("TLS files will not be rotated: {}", watcher.error().message);
    return;
  }
  tls_watcher_.emplace(std::move(watcher.value()));
  tls_watch_fd_.emplace(main_io_, ::dup(tls_watcher_->fd()));
  wait_tls_files();
}

void Server::wait_tls_files() {
  tls_watch_fd_->async_wait(asio::posix::stream_descriptor::wait_read, [this](const std::error_code& ec) {
    if (ec || !tls_watcher_) return;
    if (tls_watcher_->drain()) {
      auto now = std::chrono::steady_clock::now();
      if (!rotation_due_) rotation_due_ = now + kRotationMaxDelay;
      rotate_timer_.expires_at(std::min(now + kRotationDebounce, *rotation_due_));
      rotate_timer_.async_wait([this](const std::error_code& e) {
        if (e) return;
        rotation_due_.reset();
        if (!stopped_) rotate_tls();
      });
    }
    wait_tls_files();
  });
}

void Server::rotate_tls() {
  if (draining_) return;
  // The identity store counts, logs and publishes on its own; watchers are told on this thread.
  if (static_identity_) static_identity_->reload();
  auto next = std::make_shared<ServerConfig>(*config_);
  bool changed = false;
  std::string errors;
  auto rebuild = [&](std::shared_ptr<const mtls::TlsContext>& slot, const std::string& what) {
    if (!slot) return;
    auto fresh = mtls::TlsContext::create(slot->source_config());
    if (!fresh.ok()) {
      errors += (errors.empty() ? "" : "; ") + what + ": " + fresh.error().message;
      return;
    }
    if (fresh.value()->source_digest() == slot->source_digest()) return;
    const auto& certs = fresh.value()->certificates();
    spdlog::info("{}: new TLS material in use{}{}", what, certs.empty() ? "" : ", serial ",
                 certs.empty() ? "" : certs[0].serial_number);
    slot = fresh.value();
    changed = true;
  };
  for (size_t i = 0; i < next->listener_tls.size(); ++i) {
    rebuild(next->listener_tls[i], "listener '" + next->bootstrap.listeners[i].name + "'");
  }
  for (auto& [name, ctx] : next->cluster_tls) rebuild(ctx, "cluster '" + name + "'");
  if (!errors.empty()) {
    // Several file events for one broken state fail the same way: count and log it once.
    if (errors != last_rotation_error_) {
      server_stats_.tls_rotation_failure.inc();
      spdlog::error("TLS rotation kept the previous material: {}", errors);
    }
    last_rotation_error_ = errors;
  } else {
    last_rotation_error_.clear();
  }
  if (!changed) return;
  if (Status s = apply(std::move(next)); !s.ok()) {
    server_stats_.tls_rotation_failure.inc();
    spdlog::error("TLS rotation could not be applied: {}", s.error().message);
    return;
  }
  server_stats_.tls_rotation_success.inc();
}

}  // namespace portcullis::proxy
