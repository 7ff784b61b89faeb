#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/stats.h"
#include "config/bootstrap.h"
#include "config/errors.h"
#include "filters/network/filter_chain.h"

namespace portcullis::proxy {

// ServerConfig is one fully validated config: the bootstrap plus every listener's compiled
// filter chain. Immutable; a reload builds a new one and swaps it in only if it is complete.
struct ServerConfig {
  config::Bootstrap bootstrap;
  std::vector<filters::NetworkFilterChain> chains;  // parallel to bootstrap.listeners
};

// ConfigOverrides are the command-line flags that replace config values (Envoy's
// --service-node / --service-cluster).
struct ConfigOverrides {
  std::string service_node;
  std::string service_cluster;
};

// build_server_config validates a parsed document (see load_server_config).
std::shared_ptr<const ServerConfig> build_server_config(const config::Node& root, const ConfigOverrides& overrides,
                                                        StatsStore& stats, config::ErrorList& errors);

// load_server_config reads, parses and validates `path`, reporting every problem into `errors`.
// Returns nullptr when anything was wrong. Opens no sockets; safe to call for --mode validate.
std::shared_ptr<const ServerConfig> load_server_config(const std::string& path, size_t max_bytes,
                                                       const ConfigOverrides& overrides, StatsStore& stats,
                                                       config::ErrorList& errors);

}  // namespace portcullis::proxy
