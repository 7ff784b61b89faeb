#include "filters/network/filter_chain.h"

#include <array>

#include "filters/network/rbac/rbac_filter.h"
#include "filters/network/tcp_proxy/tcp_proxy_factory.h"

namespace portcullis::filters {
namespace {

using BuildFn = std::shared_ptr<const NetworkFilterConfig> (*)(const config::TypedExtension&,
                                                              FilterBuildContext&);

struct NetworkFilterFactory {
  std::string_view name;
  std::string_view type_url;
  bool terminal;
  BuildFn build;
};

std::shared_ptr<const NetworkFilterConfig> build_tcp_proxy_filter(const config::TypedExtension& ext,
                                                                 FilterBuildContext& ctx) {
  return build_tcp_proxy(ext.typed_config, ctx);
}

std::shared_ptr<const NetworkFilterConfig> build_rbac_filter(const config::TypedExtension& ext, FilterBuildContext& ctx) {
  return build_network_rbac(ext.typed_config, ctx);
}

constexpr std::array kFactories = {
    NetworkFilterFactory{kNetworkRbacName, kNetworkRbacTypeUrl, false, &build_rbac_filter},
    NetworkFilterFactory{kTcpProxyName, kTcpProxyTypeUrl, true, &build_tcp_proxy_filter},
};

const NetworkFilterFactory* find_factory(std::string_view name) {
  for (const auto& f : kFactories) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

}  // namespace

FilterStatus NetworkFilterChain::on_new_connection(const ConnectionInfo& info, FilterVerdict& verdict) const {
  for (const auto& f : filters) {
    if (f->on_new_connection(info, verdict) == FilterStatus::kClose) return FilterStatus::kClose;
  }
  return FilterStatus::kContinue;
}

std::optional<NetworkFilterChain> build_network_filter_chain(const config::FilterChainConfig& chain,
                                                            FilterBuildContext& ctx) {
  size_t before = ctx.errors.size();
  NetworkFilterChain out;
  // Entries the bootstrap parser already rejected (no name, no @type) are skipped here; a chain
  // with such an entry is not also told it lacks a terminal filter.
  bool skipped = chain.filters.empty();
  for (size_t i = 0; i < chain.filters.size(); ++i) {
    const config::TypedExtension& ext = chain.filters[i];
    if (ext.name.empty() || ext.type_url.empty()) skipped = true;
    if (ext.name.empty()) continue;  // already reported as missing
    const NetworkFilterFactory* factory = find_factory(ext.name);
    if (factory == nullptr) {
      ctx.errors.add(ext.node.location(), ext.node.path() + ".name", "unknown network filter '" + ext.name + "'");
      continue;
    }
    if (ext.type_url.empty()) continue;  // already reported as missing
    if (ext.type_url != factory->type_url) {
      ctx.errors.add(ext.typed_config.location(), ext.typed_config.path() + ".@type",
                     "wrong @type '" + ext.type_url + "' for " + ext.name + " (expected '" +
                         std::string(factory->type_url) + "')");
      continue;
    }
    if (factory->terminal && i + 1 != chain.filters.size()) {
      ctx.errors.add(ext.node.location(), ext.node.path(),
                     std::string(ext.name) + " is a terminal filter and must be last in the chain");
    }
    auto built = factory->build(ext, ctx);
    if (!built) continue;
    if (factory->terminal) {
      out.tcp_proxy = std::static_pointer_cast<const TcpProxyConfig>(built);
    } else {
      out.filters.push_back(std::move(built));
    }
  }
  if (ctx.errors.size() == before && !skipped && !out.tcp_proxy) {
    ctx.errors.add(chain.node.location(), chain.node.path() + ".filters",
                   "the chain must end in a terminal filter (envoy.filters.network.tcp_proxy)");
  }
  if (ctx.errors.size() != before) return std::nullopt;
  return out;
}

}  // namespace portcullis::filters
