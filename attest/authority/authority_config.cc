#include "attest/authority/authority_config.h"

#include <algorithm>

#include "config/yaml_file.h"
#include "mtls/spiffe_id.h"

namespace portcullis::attest::authority {
namespace {

using config::ErrorList;
using config::MapReader;
using config::Node;
using std::chrono::seconds;

// Whole seconds in [min, max]: certificate validity has one-second resolution, and a sub-second
// TTL is always a typo.
void seconds_field(MapReader& r, std::string_view key, seconds min, seconds max, seconds* out) {
  std::chrono::nanoseconds d{};
  if (!r.duration(key, &d)) return;
  auto n = r.get(key);
  if (d % seconds(1) != std::chrono::nanoseconds(0) || d < min || d > max) {
    r.errors().add(n->location(), n->path(),
                   "must be whole seconds between " + std::to_string(min.count()) + "s and " +
                       std::to_string(max.count()) + "s");
    return;
  }
  *out = std::chrono::duration_cast<seconds>(d);
}

void parse_limits(const Node& node, AuthorityLimits& l, ErrorList& errors) {
  MapReader r(node, errors);
  r.uint32("max_workloads_per_request", 1, 100000, &l.max_workloads_per_request);
  r.uint32("max_csrs_per_workload", 1, 1024, &l.max_csrs_per_workload);
  r.uint32("max_csr_bytes", 256, 1 << 20, &l.max_csr_bytes);
  r.uint32("max_selectors_per_workload", 1, 10000, &l.max_selectors_per_workload);
  r.uint32("max_selector_bytes", 16, 1 << 16, &l.max_selector_bytes);
  r.uint32("max_serials_per_revoke", 1, 1000000, &l.max_serials_per_revoke);
  r.uint32("max_audiences", 1, 1024, &l.max_audiences);
  r.uint32("max_audience_bytes", 16, 1 << 16, &l.max_audience_bytes);
  r.uint32("max_watchers", 1, 10000000, &l.max_watchers);
  r.uint32("max_entries", 1, 100000000, &l.max_entries);
  r.uint32("max_selectors_per_entry", 1, 10000, &l.max_selectors_per_entry);
  r.uint32("max_dns_names_per_entry", 0, 10000, &l.max_dns_names_per_entry);
  r.uint32("max_id_bytes", 64, 1 << 16, &l.max_id_bytes);
  r.uint32("max_update_bytes", 64 << 10, 64 << 20, &l.max_update_bytes);
  seconds_field(r, "max_join_token_ttl", seconds(1), seconds(365 * 24 * 3600), &l.max_join_token_ttl);
  seconds_field(r, "max_svid_ttl", seconds(60), seconds(10LL * 365 * 24 * 3600), &l.max_svid_ttl);
}

void parse_ca(const Node& node, CaSourceConfig& out, ErrorList& errors) {
  MapReader r(node, errors);
  if (auto up = r.get("upstream")) {
    MapReader ur(*up, errors);
    if (auto c = ur.get("certificate_chain", true)) out.upstream_certificate_chain = mtls::parse_data_source(*c, errors);
    if (auto k = ur.get("private_key", true)) out.upstream_private_key = mtls::parse_data_source(*k, errors);
  }
  seconds ttl{};
  if (r.get("ttl")) {
    seconds_field(r, "ttl", seconds(3600), seconds(20LL * 365 * 24 * 3600), &ttl);
    if (ttl.count() > 0) out.ttl = ttl;
  }
}

void parse_node_attestors(const Node& node, NodeAttestorsConfig& out, ErrorList& errors) {
  MapReader r(node, errors);
  if (!r.valid()) return;
  if (auto jt = r.get("join_token")) {
    MapReader jr(*jt, errors);  // no options yet: any key is unknown
    out.join_token.emplace();
  } else if (node.is_map() && node.yaml().size() == 0) {
    errors.add(node.location(), node.path(), "at least one node attestor is needed (join_token: {})");
  }
}

void parse_admin_uids(MapReader& r, AuthorityConfig& out, ErrorList& errors) {
  for (const Node& n : r.list("admin_uids")) {
    // 2^32-1 is (uid_t)-1, "no uid" to the kernel: never a real caller.
    if (auto v = config::read_uint(n, errors, 0, 0xfffffffe)) out.admin_uids.push_back(static_cast<uid_t>(*v));
  }
}

void parse_admin_socket(MapReader& r, AuthorityConfig& out, ErrorList& errors) {
  auto n = r.get("admin_socket", true);
  if (!n) return;
  auto address = config::parse_address(*n, errors, true);
  if (!address) return;
  if (!address->pipe()) {
    errors.add(n->location(), n->path(), "the admin socket must be a pipe (a Unix socket): its callers are checked by uid");
    return;
  }
  out.admin_socket = *address->pipe();
  if (out.admin_socket.mode == 0) out.admin_socket.mode = kDefaultAdminSocketMode;
  if (!out.admin_socket.path.empty() && out.admin_socket.path[0] == '@') {
    errors.add(n->location(), n->path() + ".pipe.path",
               "the admin socket must be a file (abstract sockets have no permissions)");
  }
}

void parse_authority_block(const Node& node, AuthorityConfig& out, ErrorList& errors,
                           const std::function<void(const Node&)>& parse_grpc_limits) {
  MapReader r(node, errors);
  if (!r.valid()) return;
  if (r.string("trust_domain", &out.trust_domain, true)) {
    if (Status s = mtls::validate_trust_domain_name(out.trust_domain); !s.ok()) {
      auto n = r.get("trust_domain");
      errors.add(n->location(), n->path(), s.error().message);
    }
  }
  if (auto l = r.get("listen", true)) {
    if (auto a = config::parse_address(*l, errors, true)) out.listen = *a;
  }
  parse_admin_socket(r, out, errors);
  parse_admin_uids(r, out, errors);
  if (r.string("data_dir", &out.data_dir, true) && out.data_dir.empty()) {
    auto n = r.get("data_dir");
    errors.add(n->location(), n->path(), "must not be empty");
  }
  if (auto ca = r.get("ca")) parse_ca(*ca, out.ca, errors);
  const seconds year(365 * 24 * 3600);
  seconds_field(r, "default_x509_svid_ttl", seconds(60), year, &out.default_x509_svid_ttl);
  seconds_field(r, "default_jwt_svid_ttl", seconds(10), year, &out.default_jwt_svid_ttl);
  seconds_field(r, "node_svid_ttl", seconds(60), year, &out.node_svid_ttl);
  // Short server SVIDs are only for testing renewal; the maintenance tick (1 s) bounds them.
  seconds_field(r, "server_svid_ttl", seconds(4), year, &out.server_svid_ttl);
  if (auto na = r.get("node_attestors")) parse_node_attestors(*na, out.node_attestors, errors);
  else out.node_attestors.join_token.emplace();  // the one attestor there is, on by default
  if (r.string("entries_file", &out.entries_file) && out.entries_file.empty()) {
    auto n = r.get("entries_file");
    errors.add(n->location(), n->path(), "must not be empty (leave it out for no seed file)");
  }
  if (auto l = r.get("limits")) parse_limits(*l, out.limits, errors);
  out.grpc_limits = r.get("grpc_limits");
  if (out.grpc_limits && parse_grpc_limits) parse_grpc_limits(*out.grpc_limits);
  for (auto [key, ttl] : {std::pair{"default_x509_svid_ttl", out.default_x509_svid_ttl},
                          std::pair{"default_jwt_svid_ttl", out.default_jwt_svid_ttl}}) {
    if (ttl > out.limits.max_svid_ttl) {
      auto n = r.get(key);
      errors.add(n ? n->location() : node.location(), n ? n->path() : node.path() + "." + key,
                 "exceeds limits.max_svid_ttl (" + std::to_string(out.limits.max_svid_ttl.count()) + "s)");
    }
  }
}

config::AdminConfig parse_admin(const Node& node, ErrorList& errors) {
  config::AdminConfig out;
  MapReader r(node, errors);
  if (auto a = r.get("address", true)) {
    if (auto parsed = config::parse_address(*a, errors, false)) out.address = *parsed->socket();
  }
  r.uint32("max_request_bytes", 1024, 1 << 20, &out.max_request_bytes);
  return out;
}

}  // namespace

bool AuthorityConfig::admin_uid_allowed(uid_t uid) const {
  return uid == 0 || std::find(admin_uids.begin(), admin_uids.end(), uid) != admin_uids.end();
}

std::optional<AuthorityConfig> parse_authority_config(const Node& root, ErrorList& errors,
                                                      const std::function<void(const Node&)>& parse_grpc_limits) {
  size_t before = errors.size();
  AuthorityConfig out;
  MapReader r(root, errors);
  if (auto a = r.get("authority", true)) parse_authority_block(*a, out, errors, parse_grpc_limits);
  if (auto a = r.get("audit")) out.audit = config::parse_audit_config(*a, errors);
  if (auto a = r.get("admin")) out.admin = parse_admin(*a, errors);
  r.finish();
  if (errors.size() != before) return std::nullopt;
  return out;
}

std::optional<AuthorityConfig> load_authority_config(const std::string& path, size_t max_bytes, ErrorList& errors,
                                                     const std::function<void(const Node&)>& parse_grpc_limits) {
  auto root = config::load_yaml_file(path, max_bytes, errors);
  if (!root) return std::nullopt;
  return parse_authority_config(*root, errors, parse_grpc_limits);
}

}  // namespace portcullis::attest::authority
