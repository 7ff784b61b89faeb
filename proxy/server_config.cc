#include "proxy/server_config.h"

#include "config/yaml_file.h"

namespace portcullis::proxy {

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
  filters::FilterBuildContext ctx{stats, out->bootstrap, errors};
  for (const auto& listener : out->bootstrap.listeners) {
    if (listener.filter_chains.empty()) {
      out->chains.emplace_back();
      continue;
    }
    auto chain = filters::build_network_filter_chain(listener.filter_chains.front(), ctx);
    out->chains.push_back(chain ? std::move(*chain) : filters::NetworkFilterChain{});
  }
  if (!errors.empty()) return nullptr;
  return out;
}

}  // namespace portcullis::proxy
