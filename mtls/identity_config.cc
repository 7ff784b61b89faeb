#include "mtls/identity_config.h"

#include "mtls/spiffe_id.h"

namespace portcullis::mtls {
namespace {

using config::ErrorList;
using config::MapReader;
using config::Node;

constexpr std::chrono::seconds kMaxJwtTtl{24 * 3600};
constexpr std::chrono::seconds kMaxClockSkew{600};

void check_trust_domain(const Node& node, const std::string& name, ErrorList& errors) {
  if (Status s = validate_trust_domain_name(name); !s.ok()) errors.add(node.location(), node.path(), s.error().message);
}

// A duration field in whole seconds within [min, max].
void seconds_field(MapReader& r, std::string_view key, std::chrono::seconds min, std::chrono::seconds max,
                   std::chrono::seconds* out, ErrorList& errors) {
  std::chrono::nanoseconds value{};
  if (!r.duration(key, &value)) return;
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(value);
  if (secs != value || secs < min || secs > max) {
    auto n = r.get(key);
    errors.add(n->location(), n->path(), "must be whole seconds from " + std::to_string(min.count()) + "s to " +
                                             std::to_string(max.count()) + "s");
    return;
  }
  *out = secs;
}

void parse_static(const Node& node, IdentityConfig& out, ErrorList& errors) {
  MapReader r(node, errors);
  if (!r.valid()) return;
  auto source = [&](std::string_view key, DataSource* dst) {
    if (auto n = r.get(key, true)) {
      if (auto ds = parse_data_source(*n, errors)) *dst = *ds;
    }
  };
  source("certificate_chain", &out.certificate_chain);
  source("private_key", &out.private_key);
  source("trust_bundle", &out.trust_bundle);
  if (auto n = r.get("jwt_signing_key")) out.jwt_signing_key = parse_data_source(*n, errors);
  auto fed = r.get("federated_bundles");
  if (!fed) return;
  if (!fed->is_map()) {
    errors.add(fed->location(), fed->path(), "expected a map of trust domain name to bundle, got " + fed->kind_name());
    return;
  }
  for (const auto& kv : fed->yaml()) {
    Node value = fed->child(kv.first, kv.second);
    std::string name = kv.first.IsScalar() ? kv.first.Scalar() : "";
    check_trust_domain(value, name, errors);
    if (name == out.trust_domain) {
      errors.add(value.location(), value.path(), "the own trust domain's bundle is trust_bundle, not a federated one");
    }
    auto ds = parse_data_source(value, errors);
    if (ds && !out.federated_bundles.emplace(name, *ds).second) {
      errors.add(value.location(), value.path(), "trust domain '" + name + "' is listed twice");
    }
  }
}

void parse_jwt(const Node& node, IdentityConfig& out, ErrorList& errors) {
  MapReader r(node, errors);
  seconds_field(r, "ttl", std::chrono::seconds(1), kMaxJwtTtl, &out.jwt_svid_ttl, errors);
  seconds_field(r, "clock_skew", std::chrono::seconds(0), kMaxClockSkew, &out.jwt_clock_skew, errors);
  uint64_t max_bytes = out.jwt_max_token_bytes;
  if (r.uint("max_token_bytes", 1024, 1024 * 1024, &max_bytes)) out.jwt_max_token_bytes = max_bytes;
  if (r.string("key_id", &out.jwt_key_id) && out.jwt_key_id.empty()) {
    auto n = r.get("key_id");
    errors.add(n->location(), n->path(), "must not be empty (omit it to derive the kid from the key)");
  }
}

}  // namespace

std::optional<IdentityConfig> parse_identity_config(const Node& node, ErrorList& errors,
                                                    const AttestedIdentityParser& attested) {
  size_t before = errors.size();
  IdentityConfig out;
  out.location = node.location();
  MapReader r(node, errors);
  if (!r.valid()) return std::nullopt;
  if (r.string("trust_domain", &out.trust_domain, true)) check_trust_domain(*r.get("trust_domain"), out.trust_domain, errors);
  auto st = r.get("static");
  auto remote = r.get("authority");
  auto embedded = r.get("embedded_authority");
  int sources = int(st.has_value()) + int(remote.has_value()) + int(embedded.has_value());
  if (sources == 0) {
    errors.add(node.location(), node.path(), "set exactly one identity source: static, authority or embedded_authority");
  } else if (sources > 1) {
    const Node& second = embedded ? *embedded : *remote;
    errors.add(second.location(), second.path(),
               "set exactly one identity source: static, authority or embedded_authority (found " +
                   std::to_string(sources) + ")");
  } else if (st) {
    parse_static(*st, out, errors);
  } else if (!attested) {
    const Node& n = remote ? *remote : *embedded;
    errors.add(n.location(), n.path(), "an attested identity source is not available here");
  } else {
    out.source = IdentitySource::kAttested;
  }
  if (auto j = r.get("jwt_svid")) parse_jwt(*j, out, errors);
  if (out.source == IdentitySource::kAttested) attested(r, out);
  r.finish();
  if (errors.size() != before) return std::nullopt;
  return out;
}

}  // namespace portcullis::mtls
