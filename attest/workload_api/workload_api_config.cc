#include "attest/workload_api/workload_api_config.h"

#include "attest/workload_api/endpoint_uri.h"

namespace portcullis::attest {
namespace {

constexpr const char* kFlag = "--workload-api-socket";

// address_from_uri reads a flag or env value; errors are located at the source's name.
std::optional<config::Address> address_from_uri(const std::string& uri, const char* source,
                                                config::ErrorList& errors) {
  auto parsed = parse_spiffe_endpoint_uri(uri);
  if (!parsed.ok()) {
    errors.add(config::Location{source, 0, 0}, "workload_api.address", parsed.error().message);
    return std::nullopt;
  }
  return *parsed;
}

}  // namespace

std::optional<WorkloadApiConfig> resolve_workload_api_config(
    const std::optional<config::Node>& block, const WorkloadApiEndpointSources& sources, bool has_identity,
    config::ErrorList& errors, const std::function<void(const config::Node& limits)>& parse_limits) {
  if (!block && sources.flag.empty()) return std::nullopt;
  size_t before = errors.size();
  WorkloadApiConfig out;
  std::optional<config::Address> address;
  if (block) {
    config::MapReader r(*block, errors);
    if (auto a = r.get("address")) {
      address = config::parse_address(*a, errors, true);
      out.address_source = "config";
    }
    out.limits = r.get("limits");
    if (out.limits && parse_limits) parse_limits(*out.limits);
    r.finish();
  }
  if (!address && out.address_source.empty()) {
    if (!sources.flag.empty()) {
      address = address_from_uri(sources.flag, kFlag, errors);
      out.address_source = kFlag;
    } else if (!sources.env.empty()) {
      address = address_from_uri(sources.env, kSpiffeEndpointSocketEnv, errors);
      out.address_source = kSpiffeEndpointSocketEnv;
    } else if (errors.size() == before) {
      errors.add(block->location(), block->path() + ".address",
                 "missing required field (or pass --workload-api-socket or set SPIFFE_ENDPOINT_SOCKET)");
    }
  }
  if (!has_identity) {
    config::Location where = block ? block->location() : config::Location{kFlag, 0, 0};
    errors.add(where, "workload_api", "the Workload API serves the identity block's SVIDs: add an identity block");
  }
  if (errors.size() != before || !address) return std::nullopt;
  out.address = *address;
  return out;
}

}  // namespace portcullis::attest
