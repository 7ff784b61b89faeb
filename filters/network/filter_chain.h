#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "common/stats.h"
#include "config/bootstrap.h"
#include "config/errors.h"
#include "filters/network/network_filter.h"
#include "filters/network/tcp_proxy/tcp_proxy_config.h"

namespace portcullis::filters {

// NetworkFilterChain is a listener's compiled filter chain: the filters in order and the
// terminal tcp_proxy. Immutable and shared by all workers.
struct NetworkFilterChain {
  std::vector<std::shared_ptr<const NetworkFilterConfig>> filters;  // non-terminal, in order
  std::shared_ptr<const TcpProxyConfig> tcp_proxy;                  // terminal

  // on_new_connection runs the non-terminal filters in order; the first kClose wins.
  FilterStatus on_new_connection(const ConnectionInfo& info, FilterVerdict& verdict) const;
};

// FilterBuildContext is what a filter factory may use while building its config.
struct FilterBuildContext {
  StatsStore& stats;
  const config::Bootstrap& bootstrap;
  config::ErrorList& errors;
};

// build_network_filter_chain turns a parsed chain into compiled filters, checking each filter's
// name, @type and typed_config, and that the chain ends in exactly one terminal filter. Problems
// go to ctx.errors (all of them); nullopt when there were any.
std::optional<NetworkFilterChain> build_network_filter_chain(const config::FilterChainConfig& chain,
                                                            FilterBuildContext& ctx);

}  // namespace portcullis::filters
