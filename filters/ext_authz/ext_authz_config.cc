#include "filters/ext_authz/ext_authz_config.h"

#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

namespace portcullis::filters {
namespace {

std::string canonical_yaml(const std::optional<config::Node>& node) {
  if (!node) return "~";
  YAML::Emitter out;
  out << node->yaml();
  return out.c_str();
}

}  // namespace

std::optional<ExtAuthzServerConfig> parse_ext_authz_server(
    const config::Node& node, config::ErrorList& errors,
    const std::function<void(const config::Node& limits)>& parse_limits) {
  size_t before = errors.size();
  ExtAuthzServerConfig out;
  auto policy = std::make_shared<ExtAuthzPolicy>();
  config::MapReader r(node, errors);
  auto address = r.get("address", true);
  if (address) {
    if (auto parsed = config::parse_address(*address, errors, true)) out.address = *parsed;
  }
  r.string("stat_prefix", &out.stat_prefix);
  if (auto n = r.get("stat_prefix"); n && out.stat_prefix.empty()) {
    errors.add(n->location(), n->path(), "stat_prefix must not be empty");
  }
  if (auto n = r.get("rules")) policy->rules = parse_rbac(*n, errors);
  if (auto n = r.get("shadow_rules")) policy->shadow = parse_rbac(*n, errors);
  out.limits = r.get("limits");
  if (out.limits && parse_limits) parse_limits(*out.limits);
  r.finish();
  if (errors.size() != before) return std::nullopt;
  if (!policy->rules) spdlog::warn("{}: no rules: every Check is allowed", node.path());
  out.policy = std::move(policy);
  out.fixed = canonical_yaml(address) + "\n" + out.stat_prefix + "\n" + canonical_yaml(out.limits);
  return out;
}

}  // namespace portcullis::filters
