#pragma once

#include <memory>
#include <string>

#include "common/stats.h"
#include "common/stats_macros.h"
#include "config/bootstrap.h"
#include "filters/network/filter_chain.h"
#include "filters/network/network_filter.h"
#include "filters/policy/rbac_engine.h"

namespace portcullis::filters {

inline constexpr std::string_view kNetworkRbacName = "envoy.filters.network.rbac";
inline constexpr std::string_view kNetworkRbacTypeUrl = "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC";

// Envoy's network RBAC stats, under `<stat_prefix>.rbac.`.
#define PORTCULLIS_RBAC_STATS(COUNTER, GAUGE) \
  COUNTER(allowed)                            \
  COUNTER(denied)                             \
  COUNTER(logged)                             \
  COUNTER(shadow_allowed)                     \
  COUNTER(shadow_denied)

struct RbacStats {
  PORTCULLIS_RBAC_STATS(PORTCULLIS_DECLARE_COUNTER, PORTCULLIS_DECLARE_GAUGE)
  static RbacStats create(StatsStore& store, const std::string& stat_prefix);
};

// NetworkRbacFilter is `envoy.filters.network.rbac`: decides once per connection, before a byte
// reaches upstream, from the peer's SPIFFE identity, addresses, port and SNI. Shadow rules are
// evaluated first and only counted. Immutable; shared by all workers.
class NetworkRbacFilter : public NetworkFilterConfig {
 public:
  NetworkRbacFilter(std::shared_ptr<const RbacEngine> rules, std::shared_ptr<const RbacEngine> shadow, RbacStats stats)
      : rules_(std::move(rules)), shadow_(std::move(shadow)), stats_(stats) {}

  std::string_view name() const override { return kNetworkRbacName; }
  FilterStatus on_new_connection(const ConnectionInfo& info, FilterVerdict& verdict) const override;

 private:
  std::shared_ptr<const RbacEngine> rules_;   // null: no enforcement
  std::shared_ptr<const RbacEngine> shadow_;  // null: no shadow evaluation
  RbacStats stats_;
};

// build_network_rbac validates the typed_config and compiles its rules.
std::shared_ptr<const NetworkFilterConfig> build_network_rbac(const config::Node& typed_config, FilterBuildContext& ctx);

// rbac_input_for maps a connection to the RBAC engine's input.
RbacInput rbac_input_for(const ConnectionInfo& info);

}  // namespace portcullis::filters
