#pragma once

#include <memory>

#include "config/node.h"
#include "filters/network/filter_chain.h"
#include "filters/network/tcp_proxy/tcp_proxy_config.h"

namespace portcullis::filters {

// build_tcp_proxy validates an Envoy TcpProxy typed_config (stat_prefix, cluster, idle_timeout,
// max_connect_attempts) and checks that the cluster exists. nullptr after reporting errors.
std::shared_ptr<const TcpProxyConfig> build_tcp_proxy(const config::Node& typed_config, FilterBuildContext& ctx);

}  // namespace portcullis::filters
