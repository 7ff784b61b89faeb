// TLS contexts served by the built-in identity: one BuiltinIdentitySelector per listener or
// cluster context that names it, over the Server's identity store.
#include "proxy/server.h"

namespace portcullis::proxy {

Result<std::shared_ptr<const ServerConfig>> Server::attach_identity_selectors(std::shared_ptr<const ServerConfig> config) {
  if (config->listener_builtin_tls.size() == config->listener_tls_selectors.size() &&
      config->cluster_builtin_tls.size() == config->cluster_tls_selectors.size()) {
    return config;  // none, or a rotation's copy that carries them along
  }
  auto next = std::make_shared<ServerConfig>(*config);
  auto make = [&](const mtls::TlsContextConfig& tls, const std::string& what) -> Result<std::shared_ptr<mtls::IdentitySelector>> {
    mtls::TlsContextConfig with_revocations = tls;
    with_revocations.revocations = revocations_;
    auto selector = mtls::BuiltinIdentitySelector::create(std::move(with_revocations), identity_, caller_lookup_,
                                                          builtin_identity_options_, stats_);
    if (!selector.ok()) return make_error(selector.error().code, what + ": " + selector.error().message);
    return std::shared_ptr<mtls::IdentitySelector>(std::move(selector.value()));
  };
  for (const auto& [index, tls] : next->listener_builtin_tls) {
    auto selector = make(tls, "listener '" + next->bootstrap.listeners[index].name + "'");
    if (!selector.ok()) return selector.error();
    next->listener_tls_selectors[index] = std::move(selector.value());
  }
  for (const auto& [name, tls] : next->cluster_builtin_tls) {
    auto selector = make(tls, "cluster '" + name + "'");
    if (!selector.ok()) return selector.error();
    next->cluster_tls_selectors[name] = std::move(selector.value());
  }
  return std::shared_ptr<const ServerConfig>(std::move(next));
}

}  // namespace portcullis::proxy
