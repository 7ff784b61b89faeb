#include "mtls/sds/sds_config.h"

#include <yaml-cpp/yaml.h>

namespace portcullis::mtls {
namespace {

// A special resource name: optional, but never empty.
void name_field(config::MapReader& r, std::string_view key, std::string* out, config::ErrorList& errors) {
  if (r.string(key, out) && out->empty()) {
    auto n = r.get(key);
    errors.add(n->location(), n->path(), "must not be empty");
  }
}

}  // namespace

std::optional<SdsConfig> parse_sds_config(const config::Node& node, config::ErrorList& errors,
                                          const std::function<void(const config::Node& limits)>& parse_limits) {
  size_t before = errors.size();
  SdsConfig out;
  config::MapReader r(node, errors);
  if (!r.valid()) return std::nullopt;
  if (auto address = r.get("address", true)) {
    if (auto parsed = config::parse_address(*address, errors, true)) out.address = *parsed;
  }
  out.limits = r.get("limits");
  if (out.limits && parse_limits) parse_limits(*out.limits);
  name_field(r, "default_svid_name", &out.names.default_svid, errors);
  name_field(r, "default_bundle_name", &out.names.default_bundle, errors);
  name_field(r, "default_all_bundles_name", &out.names.all_bundles, errors);
  r.boolean("disable_spiffe_cert_validation", &out.disable_spiffe_cert_validation);
  const SdsNames& n = out.names;
  // Two equal names would leave one never served; point at the field that set the clash.
  auto clash = [&](std::string_view later, std::string_view earlier, const std::string& value) {
    auto at = r.get(later);
    if (!at) at = r.get(earlier);
    errors.add(at ? at->location() : node.location(), at ? at->path() : node.path(),
               "'" + value + "' is already another special name (default_svid_name, default_bundle_name and "
               "default_all_bundles_name must differ)");
  };
  if (n.default_bundle == n.default_svid) clash("default_bundle_name", "default_svid_name", n.default_bundle);
  if (n.all_bundles == n.default_svid) clash("default_all_bundles_name", "default_svid_name", n.all_bundles);
  if (n.all_bundles == n.default_bundle) clash("default_all_bundles_name", "default_bundle_name", n.all_bundles);
  r.finish();
  if (errors.size() != before) return std::nullopt;
  YAML::Emitter text;
  text << node.yaml();
  out.fixed = text.c_str();
  return out;
}

}  // namespace portcullis::mtls
