#include "proxy/server_config.h"

#include "config/yaml_file.h"
#include "mtls/builtin_identity_selector.h"
#include "mtls/static_identity.h"
#include "mtls/tls_config.h"

namespace portcullis::proxy {
namespace {

// check_builtin_tls validates a context served by the built-in identity against the identity's
// files as they are now: the named SVIDs and bundles must exist (`default` callers are known
// only per connection; their context is checked with the identity's own SVID).
void check_builtin_tls(const config::TypedExtension& ext, const mtls::TlsContextConfig& tls, const config::Bootstrap& b,
                       const std::optional<mtls::IdentityConfig>& identity, config::ErrorList& errors) {
  if (!b.identity) {
    errors.add(ext.node.location(), ext.node.path(),
               "an SdsSecretConfig without sds_config names the built-in identity, which needs the identity block");
    return;
  }
  if (!identity) return;  // the identity block's own errors are reported already
  auto loaded = mtls::load_static_identity(*identity);
  if (!loaded.ok()) return;
  const mtls::IdentitySnapshot& snapshot = *loaded->snapshot;
  const mtls::X509Svid* svid = nullptr;
  if (const auto& cert = tls.certificate_builtin) {
    bool is_default = cert->kind == mtls::BuiltinSecret::Kind::kDefault;
    const std::string& name = is_default ? cert->unattested_fallback : cert->name;
    svid = name.empty() ? snapshot.default_svid() : mtls::find_svid(snapshot, name);
    if (svid == nullptr) {
      errors.add(ext.node.location(), ext.node.path(), "the identity holds no SVID " + name);
      return;
    }
  }
  if (auto ctx = mtls::build_builtin_context(tls, snapshot, svid); !ctx.ok()) {
    errors.add(ext.node.location(), ext.node.path(), ctx.error().message);
  }
}

// build_tls validates a transport_socket and loads its certificates and bundles. A context that
// uses the built-in identity is validated and its config put in *out_builtin instead: the Server
// serves it per connection (BuiltinIdentitySelector).
std::shared_ptr<const mtls::TlsContext> build_tls(const config::TypedExtension& ext, bool downstream, const ServerConfig& out,
                                                  config::ErrorList& errors,
                                                  std::optional<mtls::TlsContextConfig>* out_builtin) {
  auto tls_config = mtls::parse_tls_transport_socket(ext, downstream, errors);
  if (!tls_config) return nullptr;
  if (tls_config->uses_builtin_identity()) {
    check_builtin_tls(ext, *tls_config, out.bootstrap, out.identity, errors);
    *out_builtin = std::move(*tls_config);
    return nullptr;
  }
  auto ctx = mtls::TlsContext::create(*tls_config);
  if (!ctx.ok()) {
    errors.add(ext.node.location(), ext.node.path(), ctx.error().message);
    return nullptr;
  }
  return ctx.value();
}

std::optional<mtls::IdentityConfig> build_identity(const config::Node& node, ServerConfig& out,
                                                  config::ErrorList& errors) {
  auto identity = mtls::parse_identity_config(node, errors, [&](config::MapReader& r, const mtls::IdentityConfig& common) {
    out.agent = attest::agent::parse_agent_config(r, common);
  });
  if (!identity) return std::nullopt;
  if (identity->source == mtls::IdentitySource::kAttested) return identity;
  if (auto loaded = mtls::load_static_identity(*identity); !loaded.ok()) {
    errors.add(node.location(), node.path(), loaded.error().message);
    return std::nullopt;
  }
  return identity;
}

}  // namespace

std::shared_ptr<const ServerConfig> load_server_config(const std::string& path, size_t max_bytes,
                                                       const ConfigOverrides& overrides, StatsStore& stats,
                                                       config::ErrorList& errors) {
  auto root = config::load_yaml_file(path, max_bytes, errors);
  if (!root) return nullptr;
  return build_server_config(*root, overrides, stats, errors);
}

std::shared_ptr<const ServerConfig> build_server_config(const config::Node& root, const ConfigOverrides& overrides,
                                                        StatsStore& stats, config::ErrorList& errors) {
  auto out = std::make_shared<ServerConfig>();
  out->bootstrap = config::parse_bootstrap(root, errors);
  if (!overrides.service_node.empty()) out->bootstrap.node_id = overrides.service_node;
  if (!overrides.service_cluster.empty()) out->bootstrap.node_cluster = overrides.service_cluster;
  if (out->bootstrap.identity) out->identity = build_identity(*out->bootstrap.identity, *out, errors);
  filters::FilterBuildContext ctx{stats, out->bootstrap, errors};
  for (const auto& cluster : out->bootstrap.clusters) {
    if (cluster.transport_socket) {
      std::optional<mtls::TlsContextConfig> builtin;
      if (auto tls = build_tls(*cluster.transport_socket, false, *out, errors, &builtin)) out->cluster_tls[cluster.name] = tls;
      if (builtin) out->cluster_builtin_tls[cluster.name] = std::move(*builtin);
    }
  }
  for (const auto& listener : out->bootstrap.listeners) {
    const auto& ts = listener.filter_chains.empty() ? std::nullopt : listener.filter_chains.front().transport_socket;
    std::optional<mtls::TlsContextConfig> builtin;
    out->listener_tls.push_back(ts ? build_tls(*ts, true, *out, errors, &builtin) : nullptr);
    if (builtin) out->listener_builtin_tls[out->listener_tls.size() - 1] = std::move(*builtin);
    if (listener.filter_chains.empty()) {
      out->chains.emplace_back();
      continue;
    }
    auto chain = filters::build_network_filter_chain(listener.filter_chains.front(), ctx);
    // Inbound `default` presents the SVID of the workload listening on the cluster's endpoint.
    // With several endpoints the connection may be sent to another one than the one attested,
    // so a client would see one workload's identity while another serves it: refuse the config.
    auto listener_builtin = out->listener_builtin_tls.find(out->listener_tls.size() - 1);
    if (listener_builtin != out->listener_builtin_tls.end() && chain && chain->tcp_proxy &&
        listener_builtin->second.certificate_builtin &&
        listener_builtin->second.certificate_builtin->kind == mtls::BuiltinSecret::Kind::kDefault) {
      for (const auto& cluster : out->bootstrap.clusters) {
        if (cluster.name == chain->tcp_proxy->cluster() && cluster.endpoints.size() != 1) {
          errors.add(ts->node.location(), ts->node.path(),
                     "the `default` certificate names the workload behind cluster '" + cluster.name +
                         "', which needs exactly one endpoint (it has " + std::to_string(cluster.endpoints.size()) +
                         "); name an SVID by its SPIFFE ID instead");
        }
      }
    }
    out->chains.push_back(chain ? std::move(*chain) : filters::NetworkFilterChain{});
  }
  if (out->bootstrap.ext_authz_server) {
    out->ext_authz = filters::parse_ext_authz_server(*out->bootstrap.ext_authz_server, errors, [&](const config::Node& n) {
      if (auto limits = parse_grpc_server_limits(n, errors)) out->ext_authz_limits = *limits;
    });
  }
  if (const auto& node = out->bootstrap.sds) {
    out->sds = mtls::parse_sds_config(*node, errors, [&](const config::Node& n) {
      if (auto limits = parse_grpc_server_limits(n, errors)) out->sds_limits = *limits;
    });
    if (!out->bootstrap.identity) {
      errors.add(node->location(), node->path(), "requires the identity block (SDS serves its SVID and bundles)");
    }
  }
  out->workload_api = attest::resolve_workload_api_config(
      out->bootstrap.workload_api, overrides.workload_api, out->bootstrap.identity.has_value(), errors,
      [&](const config::Node& n) {
        if (auto limits = parse_grpc_server_limits(n, errors)) out->workload_api_limits = *limits;
      });
  if (!errors.empty()) return nullptr;
  return out;
}

}  // namespace portcullis::proxy
