#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>

#include "attest/workload_api/workload_api_service.h"
#include "common/audit.h"
#include "common/result.h"
#include "common/stats.h"
#include "config/file_watcher.h"
#include "filters/ext_authz/ext_authz_service.h"
#include "proxy/admin_server.h"
#include "proxy/cluster.h"
#include "proxy/grpc_hosting.h"
#include "proxy/listener.h"
#include "mtls/sds/sds_service.h"
#include "mtls/builtin_identity_selector.h"
#include "mtls/revocation_set.h"
#include "attest/agent/workload_agent.h"
#include "attest/authority/authority_core.h"
#include "proxy/agent_timer.h"
#include "proxy/grpc/asio_executor.h"
#include "mtls/static_svid_store.h"
#include "proxy/server_config.h"
#include "proxy/server_stats.h"
#include "proxy/worker.h"

namespace portcullis::proxy {

struct ServerOptions {
  std::string config_path;
  uint32_t concurrency = 1;
  std::chrono::seconds drain_time{600};
  ConfigOverrides overrides;
  size_t max_config_bytes = 0;
  std::string admin_address_path;  // where to write the bound admin address (Envoy's flag)
  std::string log_level;
  std::string log_path;
  std::string mode;
};

// Server is one sidecar: workers, listeners, clusters and the admin endpoint, assembled from a
// ServerConfig. Runs on the main thread; workers run the data path.
//
// Lifecycle: start() binds every listener and the admin address (failing as a whole), run()
// serves until shut down. SIGTERM/SIGINT drain: stop accepting, wait up to drain_time for live
// connections, then close the rest. SIGHUP reloads the config file: a valid one replaces
// listeners and clusters (listeners whose address is unchanged keep their sockets and live
// connections); an invalid one is logged, counted, and the old config keeps running.
class Server {
 public:
  Server(ServerOptions options, StatsStore& stats, std::shared_ptr<const ServerConfig> config);
  ~Server();

  Status start();
  void run();
  // reload re-reads the config file; returns the errors when it was rejected.
  Status reload();
  void begin_drain();
  void shutdown();
  // identity is the `identity:` block's store (null without one), built by start() and kept for
  // the life of the process: the Workload API and SDS servers read and watch it. Its files rotate
  // with the TLS files (main thread), so watcher callbacks run on the main thread.
  const std::shared_ptr<mtls::SvidStore>& identity() const { return identity_; }
  // static_identity is identity() when the source is `static` (files), else null.
  const std::shared_ptr<mtls::StaticSvidStore>& static_identity() const { return static_identity_; }
  // agent is the attestation agent of an attested identity (authority or embedded_authority).
  attest::agent::WorkloadAgent* agent() const { return agent_.get(); }
  // revocations is the process's revocation set, made with the Server and kept for its life.
  // Whoever learns of revocations (the agent's stream; tests) publishes into it, from any one
  // thread at a time. Every TLS context the Server runs checks handshakes against it, and each
  // publication closes, on every worker, the live connections whose downstream or upstream peer
  // presented a serial in the new set (audit "revoked", `revocation.connections_closed`).
  const std::shared_ptr<mtls::RevocationPublisher>& revocations() const { return revocations_; }
  // set_caller_lookup installs how `default` TLS contexts learn the local workload of a
  // connection (kernel attestation). Call before start(); without one, `default` has no callers
  // to serve and refuses them (or serves the unattested_fallback SVID).
  void set_caller_lookup(mtls::CallerLookup lookup) { caller_lookup_ = std::move(lookup); }
  // listener_endpoint is the address a listener is bound to (port 0 resolved). Main thread.
  std::optional<asio::ip::tcp::endpoint> listener_endpoint(const std::string& name) const;

 private:
  struct ActiveListener {
    config::ListenerConfig config;
    asio::ip::tcp::endpoint local;
    std::shared_ptr<const ListenerRuntime> runtime;
  };
  // Per-worker listener handles. Only ever touched on that worker's thread.
  struct WorkerSlot {
    std::unique_ptr<Worker> worker;
    std::map<std::string, std::shared_ptr<WorkerListener>> listeners;
  };

  Status apply(std::shared_ptr<const ServerConfig> config);
  // Revocation (server_revocation.cc): attach_revocations returns `config` with every TLS context
  // checking revocations_ (rebuilding those built without it); watch_revocations subscribes the
  // per-worker sweep that closes live connections.
  Result<std::shared_ptr<const ServerConfig>> attach_revocations(std::shared_ptr<const ServerConfig> config);
  void watch_revocations();
  // arm_revocation_prune sets revocation_prune_timer_ for the set's earliest expiry (main thread).
  void arm_revocation_prune();
  // attach_identity_selectors (server_identity.cc) returns `config` with a selector for every TLS
  // context served by the built-in identity (keeping those a rotation copied along).
  Result<std::shared_ptr<const ServerConfig>> attach_identity_selectors(std::shared_ptr<const ServerConfig> config);
  std::map<std::string, std::shared_ptr<const Cluster>> build_clusters(const ServerConfig& config);
  std::shared_ptr<const ListenerRuntime> make_runtime(const ServerConfig& config, size_t index,
                                                      const asio::ip::tcp::endpoint& local,
                                                      const std::map<std::string, std::shared_ptr<const Cluster>>& clusters);
  void post_add_listener(const std::string& name, std::vector<int> fds, std::shared_ptr<const ListenerRuntime> rt);
  void post_update_listener(const std::string& name, std::shared_ptr<const ListenerRuntime> rt);
  void post_remove_listener(const std::string& name);
  void close_all_listeners();
  void watch_signals();
  void poll_drain();
  Status start_admin();
  Status start_audit();
  // TLS rotation: the certificate, key and bundle files of every TLS context are watched; a change
  // rebuilds the affected contexts and publishes them to new connections (live ones keep theirs).
  void watch_tls_files();
  void wait_tls_files();
  void rotate_tls();
  std::string certs_json() const;
  void register_admin_routes();
  std::string server_info_json() const;
  std::string listeners_text(bool json) const;
  std::string config_dump_json() const;
  AdminResponse stats_response(const AdminRequest& req) const;
  // The SPIFFE Workload API (server_workload_api.cc): add_workload_api adds it to grpc_ when
  // configured; check_workload_api_reload refuses a reload that changes its block.
  Status add_workload_api();
  Status check_workload_api_reload(const ServerConfig& next) const;
  // gRPC services (server_grpc.cc): build_grpc adds every configured service to grpc_ and binds
  // it; check_grpc_reload refuses a reload that changes what cannot change live (an address);
  // apply_grpc_reload publishes what can (the ext_authz rules).
  Status build_grpc();
  Status check_grpc_reload(const ServerConfig& next) const;
  void apply_grpc_reload(const ServerConfig& next);

  ServerOptions options_;
  StatsStore& stats_;
  ServerStats server_stats_;
  ListenerManagerStats listener_manager_stats_;
  std::shared_ptr<const ServerConfig> config_;
  std::shared_ptr<mtls::SvidStore> identity_;
  std::shared_ptr<mtls::StaticSvidStore> static_identity_;
  // The attested identity (server_agent.cc): kernel attestation of local workloads, the agent
  // that gets their SVIDs from the authority (in-process when embedded), and its store.
  Status start_agent();
  // caller_for returns the CallerInfo of an attested process, first making sure the agent knows
  // the process (its exit revokes) and, when its selector set holds no SVIDs yet, waiting up to
  // limits.caller_wait for them. Worker threads only.
  mtls::CallerInfo caller_for(const attest::kernel::Attestation& attestation);
  void schedule_authority_maintenance();
  // call_resolver attests Workload API and SDS callers (null without an attested identity).
  mtls::CallerResolver call_resolver();
  std::chrono::steady_clock::time_point next_authority_prune_{};
  std::thread::id main_thread_;
  std::shared_ptr<attest::authority::AuthorityCore> embedded_authority_;
  std::unique_ptr<attest::kernel::KernelAttestor> attestor_;
  std::unique_ptr<attest::kernel::ExitWatcher> exit_watcher_;
  std::shared_ptr<attest::agent::AttestedSvidStore> attested_store_;
  std::unique_ptr<AsioExecutor> main_executor_;
  std::unique_ptr<AgentTimer> agent_timer_;
  std::unique_ptr<attest::agent::AuthorityApi> authority_api_;
  std::unique_ptr<attest::agent::WorkloadAgent> agent_;
  std::shared_ptr<mtls::RevocationPublisher> revocations_;
  mtls::CallerLookup caller_lookup_;
  mtls::BuiltinIdentityOptions builtin_identity_options_;
  asio::io_context main_io_{1};
  asio::signal_set signals_{main_io_};
  asio::steady_timer drain_timer_{main_io_};
  std::unique_ptr<AdminServer> admin_;
  // Declared before workers_: sessions on the workers write to it until the workers are gone.
  std::unique_ptr<AuditLog> audit_;
  // gRPC servers; declared before workers_ so calls still queued on the workers' loops are
  // destroyed before the servers and services they reference.
  std::unique_ptr<GrpcHosting> grpc_;
  std::shared_ptr<attest::WorkloadApiService> workload_api_;
  std::shared_ptr<filters::ExtAuthzService> ext_authz_;
  std::shared_ptr<mtls::SdsService> sds_;
  std::optional<config::FileWatcher> tls_watcher_;
  std::optional<asio::posix::stream_descriptor> tls_watch_fd_;
  asio::steady_timer rotate_timer_{main_io_};
  asio::steady_timer revocation_prune_timer_{main_io_};
  asio::steady_timer authority_maintenance_timer_{main_io_};
  // When file events keep coming, the rotation still runs by this time (see wait_tls_files).
  std::optional<std::chrono::steady_clock::time_point> rotation_due_;
  std::string last_rotation_error_;
  std::vector<WorkerSlot> workers_;
  std::map<std::string, ActiveListener> listeners_;
  // After workers_: unsubscribed before the workers its callback posts to are destroyed.
  mtls::SvidSubscription revocation_subscription_;
  std::chrono::steady_clock::time_point started_at_ = std::chrono::steady_clock::now();
  std::chrono::system_clock::time_point config_loaded_at_ = std::chrono::system_clock::now();
  std::chrono::steady_clock::time_point drain_deadline_{};
  bool draining_ = false;       // listeners closed: by a drain, or by POST /drain_listeners
  bool drain_started_ = false;  // SIGTERM/SIGINT seen: counting down to shutdown
  bool stopped_ = false;
};

}  // namespace portcullis::proxy
