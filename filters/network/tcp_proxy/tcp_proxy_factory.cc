#include "filters/network/tcp_proxy/tcp_proxy_factory.h"

namespace portcullis::filters {

std::shared_ptr<const TcpProxyConfig> build_tcp_proxy(const config::Node& typed_config, FilterBuildContext& ctx) {
  size_t before = ctx.errors.size();
  config::MapReader r(typed_config, ctx.errors);
  (void)r.get("@type");
  std::string stat_prefix, cluster;
  r.string("stat_prefix", &stat_prefix, true);
  if (r.string("cluster", &cluster, true) && ctx.bootstrap.find_cluster(cluster) == nullptr) {
    auto n = r.get("cluster");
    ctx.errors.add(n->location(), n->path(), "unknown cluster '" + cluster + "'");
  }
  if (auto wc = r.get("weighted_clusters")) {
    ctx.errors.add(wc->location(), wc->path(), "weighted_clusters is not supported yet; use cluster");
  }
  std::chrono::nanoseconds idle_timeout = kDefaultTcpIdleTimeout;
  r.duration("idle_timeout", &idle_timeout);
  // Envoy's max_connect_attempts is a UInt32Value with a minimum of 1.
  uint32_t max_connect_attempts = 1;
  r.uint32("max_connect_attempts", 1, 100, &max_connect_attempts);
  r.finish();
  if (ctx.errors.size() != before) return nullptr;
  return std::make_shared<TcpProxyConfig>(stat_prefix, cluster, idle_timeout, max_connect_attempts,
                                          TcpProxyStats::create(ctx.stats, stat_prefix));
}

}  // namespace portcullis::filters
