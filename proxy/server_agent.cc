// The attested identity of a sidecar (`identity: {authority | embedded_authority}`): kernel
// attestation of the local workloads, the agent that asks the authority for their SVIDs, and the
// hooks through which TLS contexts (`default`), the Workload API and SDS learn who is calling.
#include <unistd.h>

#include <future>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "attest/agent/embedded_authority_api.h"
#include "attest/agent/remote_authority_api.h"
#include "mtls/tls_context.h"
#include "proxy/authority_channel.h"
#include "proxy/server.h"

namespace portcullis::proxy {
namespace {

using namespace std::chrono_literals;

// The embedded authority's CA rotation and pruning run on the same cadence as the standalone
// authority's maintenance (proxy/authority_server.cc).
constexpr auto kAuthorityMaintenanceInterval = 1s;
constexpr auto kAuthorityPruneInterval = 60s;
// Each worker remembers which processes it already told the agent about, so a busy caller costs
// one main-thread hop per worker, not per connection. Cleared when full: forgetting only means
// telling the agent again (it dedupes by pidfd).
constexpr size_t kKnownProcessesPerWorker = 4096;

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

Result<std::shared_ptr<const mtls::TrustBundle>> load_bootstrap_bundle(const std::string& trust_domain,
                                                                      const mtls::DataSource& source) {
  if (source.is_file()) return mtls::TrustBundle::from_file(trust_domain, source.filename);
  const std::string& text = source.inline_string;
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '{') return mtls::TrustBundle::from_spiffe_json(trust_domain, text);
  return mtls::TrustBundle::from_pem(trust_domain, text);
}

}  // namespace

Status Server::start_agent() {
  const attest::agent::AgentConfig& cfg = *config_->agent;
  auto attestor = attest::kernel::KernelAttestor::create(cfg.kernel, stats_);
  if (!attestor.ok()) return make_error(attestor.error().code, "identity: kernel attestation: " + attestor.error().message);
  attestor_ = std::move(attestor.value());
  auto watcher = attest::kernel::ExitWatcher::create();
  if (!watcher.ok()) return make_error(watcher.error().code, "identity: exit watcher: " + watcher.error().message);
  exit_watcher_ = std::move(watcher.value());

  mtls::JwtValidateOptions jwt_validation;
  jwt_validation.max_token_bytes = config_->identity->jwt_max_token_bytes;
  jwt_validation.clock_skew = config_->identity->jwt_clock_skew;
  attested_store_ = std::make_shared<attest::agent::AttestedSvidStore>(cfg.trust_domain, jwt_validation, stats_,
                                                                        cfg.unattested_fallback);
  identity_ = attested_store_;
  main_executor_ = std::make_unique<AsioExecutor>(main_io_);
  agent_timer_ = std::make_unique<AgentTimer>(main_io_);

  if (cfg.embedded) {
    auto core = attest::agent::open_embedded_authority(cfg, stats_, audit_.get());
    if (!core.ok()) return make_error(core.error().code, "identity.embedded_authority: " + core.error().message);
    embedded_authority_ = std::move(core.value());
    authority_api_ = std::make_unique<attest::agent::EmbeddedAuthorityApi>(*embedded_authority_, *main_executor_, host_name());
    schedule_authority_maintenance();
    spdlog::info("identity: embedded authority for {} (data in {})", cfg.trust_domain, cfg.embedded->data_dir);
  } else {
    auto bootstrap = load_bootstrap_bundle(cfg.trust_domain, cfg.authority->bootstrap_bundle);
    if (!bootstrap.ok()) {
      return make_error(bootstrap.error().code, "identity.authority.bootstrap_bundle: " + bootstrap.error().message);
    }
    authority_api_ = std::make_unique<attest::agent::RemoteAuthorityApi>(
        make_authority_channel_factory(main_io_, *cfg.authority, cfg.trust_domain, bootstrap.value()), *main_executor_,
        std::chrono::duration_cast<std::chrono::milliseconds>(cfg.limits.call_timeout));
    spdlog::info("identity: authority {} for {}", cfg.authority->server_spiffe_id, cfg.trust_domain);
  }
  agent_ = std::make_unique<attest::agent::WorkloadAgent>(
      cfg, attest::agent::WorkloadAgent::Deps{*authority_api_, *agent_timer_, *main_executor_, *exit_watcher_,
                                              *attested_store_, revocations_.get(), stats_, audit_.get()});
  agent_->start();

  // Outbound `default`: the process on the other end of the accepted socket. Inbound `default`:
  // the process listening on the upstream endpoint (the app this sidecar fronts).
  caller_lookup_ = [this](const mtls::ConnectionContext& c) -> std::optional<mtls::CallerInfo> {
    Result<attest::kernel::Attestation> attested =
        c.side == mtls::ConnectionContext::Side::kCluster ? attestor_->attest_tcp_peer(c.local, c.remote)
        : c.upstream ? attestor_->attest_tcp_listener(*c.upstream)
                     : Result<attest::kernel::Attestation>(make_error(ErrorCode::kNotFound, "no upstream endpoint"));
    if (!attested.ok()) {
      spdlog::debug("identity: {} not attested: {}",
                    c.side == mtls::ConnectionContext::Side::kCluster ? "caller" : "upstream workload",
                    attested.error().message);
      return std::nullopt;
    }
    return caller_for(attested.value());
  };
  return {};
}

mtls::CallerInfo Server::caller_for(const attest::kernel::Attestation& attestation) {
  mtls::CallerInfo caller;
  caller.pid = attestation.attributes->pid;
  caller.uid = attestation.attributes->uid;
  caller.gid = attestation.attributes->gid;
  caller.selectors = attestation.selectors;

  // Per worker: the processes the agent has heard of, and until when a caller it could not serve
  // is refused without waiting again (or one such process, connecting in a loop, would hold its
  // worker caller_wait per connection, stalling every connection sharing the worker).
  thread_local std::unordered_map<uint64_t, std::chrono::steady_clock::time_point> known;
  // The process and its selectors: after an exec (same PID and start time, other selectors) the
  // agent must hear of it again, to move the process to its new set for revocation on exit.
  uint64_t key = (static_cast<uint64_t>(attestation.attributes->pid) << 40) ^ attestation.attributes->start_time;
  for (const auto& s : attestation.selectors) key = (key * 1099511628211ull) ^ std::hash<std::string>{}(s);
  const bool issued = attested_store_->for_caller(caller) != nullptr;
  const auto now = std::chrono::steady_clock::now();
  auto it = known.find(key);
  if (issued && it != known.end()) return caller;
  const bool wait = !issued && (it == known.end() || now >= it->second);
  if (it == known.end()) {
    if (known.size() >= kKnownProcessesPerWorker) known.clear();
    known.emplace(key, std::chrono::steady_clock::time_point{});
  }

  // The agent lives on the main thread. A caller whose SVIDs exist only registers the process
  // (for revocation on exit); a first caller waits, bounded, for issuance.
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> ready = done->get_future();
  asio::post(main_io_, [this, attestation, done] {
    if (!agent_) return;  // shutting down: the promise breaks, the waiter returns
    agent_->ensure_workload(attestation, [done](std::shared_ptr<const mtls::IdentitySnapshot>) { done->set_value(); });
  });
  if (wait && std::this_thread::get_id() != main_thread_) {
    ready.wait_for(config_->agent->limits.caller_wait);
    if (attested_store_->for_caller(caller) == nullptr) known[key] = now + config_->agent->limits.unmatched_retry;
  }
  return caller;
}

mtls::CallerResolver Server::call_resolver() {
  if (!agent_) return nullptr;
  return [this](const grpc::ServerCallContext& ctx) -> mtls::CallerInfo {
    // A Unix-socket peer comes with its pidfd (SO_PEERPIDFD): the very process that connected,
    // and its uid at connect time, which that process must still have (no setuid exec since).
    if (!ctx.peer || ctx.peer->pidfd < 0) return mtls::credentials_caller(ctx);
    std::optional<uid_t> socket_uid;
    if (ctx.peer->credentials) socket_uid = ctx.peer->credentials->uid;
    auto attested = attestor_->attest_pidfd(ctx.peer->pidfd, socket_uid);
    if (!attested.ok()) {
      spdlog::debug("identity: gRPC caller {} not attested: {}", ctx.peer->address, attested.error().message);
      return mtls::credentials_caller(ctx);
    }
    return caller_for(attested.value());
  };
}

void Server::schedule_authority_maintenance() {
  authority_maintenance_timer_.expires_after(kAuthorityMaintenanceInterval);
  authority_maintenance_timer_.async_wait([this](const std::error_code& ec) {
    if (ec || stopped_ || !embedded_authority_) return;
    if (Status s = embedded_authority_->rotate_ca_if_due(false); !s.ok()) {
      spdlog::warn("identity: embedded authority CA rotation step failed: {}", s.error().message);
    }
    if (std::chrono::steady_clock::now() >= next_authority_prune_) {
      next_authority_prune_ = std::chrono::steady_clock::now() + kAuthorityPruneInterval;
      if (Status s = embedded_authority_->prune(); !s.ok()) {
        spdlog::warn("identity: embedded authority pruning failed: {}", s.error().message);
      }
    }
    schedule_authority_maintenance();
  });
}

}  // namespace portcullis::proxy
