// Revocation on the data path: every TLS context checks the Server's RevocationPublisher per
// handshake, and every publication sweeps the workers' live connections.
#include <spdlog/spdlog.h>

#include "proxy/server.h"

namespace portcullis::proxy {

Result<std::shared_ptr<const ServerConfig>> Server::attach_revocations(std::shared_ptr<const ServerConfig> config) {
  // Contexts come from config validation, which runs before (and without) a Server. A context
  // already carrying our publisher (a rotation rebuilds from source_config) is kept as is.
  auto needs = [this](const std::shared_ptr<const mtls::TlsContext>& ctx) {
    return ctx && ctx->source_config().revocations != revocations_;
  };
  bool any = std::any_of(config->listener_tls.begin(), config->listener_tls.end(), needs) ||
             std::any_of(config->cluster_tls.begin(), config->cluster_tls.end(),
                         [&](const auto& entry) { return needs(entry.second); });
  if (!any) return config;
  auto next = std::make_shared<ServerConfig>(*config);
  auto attach = [&](std::shared_ptr<const mtls::TlsContext>& slot, const std::string& what) -> Status {
    if (!needs(slot)) return {};
    mtls::TlsContextConfig source = slot->source_config();
    source.revocations = revocations_;
    auto rebuilt = mtls::TlsContext::create(source);
    if (!rebuilt.ok()) return make_error(rebuilt.error().code, what + ": " + rebuilt.error().message);
    slot = std::move(rebuilt.value());
    return {};
  };
  for (size_t i = 0; i < next->listener_tls.size(); ++i) {
    if (Status s = attach(next->listener_tls[i], "listener '" + next->bootstrap.listeners[i].name + "'"); !s.ok()) {
      return s.error();
    }
  }
  for (auto& [name, ctx] : next->cluster_tls) {
    if (Status s = attach(ctx, "cluster '" + name + "'"); !s.ok()) return s.error();
  }
  return std::shared_ptr<const ServerConfig>(std::move(next));
}

void Server::watch_revocations() {
  // Runs on the publishing thread: it only reads the immutable worker list and posts.
  revocation_subscription_ = revocations_->subscribe([this](uint64_t version) {
    auto set = revocations_->current();
    spdlog::info("revocations: version {} with {} serials; sweeping live connections", set->version(), set->size());
    for (auto& slot : workers_) {
      Worker* worker = slot.worker.get();
      auto publisher = revocations_;
      worker->post([worker, set, publisher] {
        size_t closed = worker->connections().close_revoked(*set);
        if (closed > 0) publisher->stats().connections_closed.inc(closed);
      });
    }
  });
}

std::optional<asio::ip::tcp::endpoint> Server::listener_endpoint(const std::string& name) const {
  auto it = listeners_.find(name);
  if (it == listeners_.end()) return std::nullopt;
  return it->second.local;
}

}  // namespace portcullis::proxy
