#include "attest/agent/agent_config.h"

#include "mtls/spiffe_id.h"

namespace portcullis::attest::agent {
namespace {

using config::ErrorList;
using config::MapReader;
using config::Node;

// A duration within [min, max], rounded to the field's unit.
template <typename D>
void duration_field(MapReader& r, std::string_view key, D min, D max, D* out) {
  std::chrono::nanoseconds value{};
  if (!r.duration(key, &value)) return;
  if (value < min || value > max) {
    auto n = r.get(key);
    r.errors().add(n->location(), n->path(),
                   "must be from " + std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(min).count()) +
                       "ms to " + std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(max).count()) + "ms");
    return;
  }
  *out = std::chrono::duration_cast<D>(value);
}

void double_field(MapReader& r, std::string_view key, double min, double max, double* out) {
  if (auto n = r.get(key)) {
    if (auto v = config::read_double(*n, r.errors(), min, max)) *out = *v;
  }
}

// A SPIFFE ID that must belong to our own trust domain.
void own_spiffe_id(MapReader& r, std::string_view key, const std::string& trust_domain, std::string* out) {
  if (!r.string(key, out)) return;
  auto n = r.get(key);
  auto id = mtls::SpiffeId::parse(*out);
  if (!id.ok()) {
    r.errors().add(n->location(), n->path(), id.error().message);
  } else if (!trust_domain.empty() && id->trust_domain() != trust_domain) {
    r.errors().add(n->location(), n->path(), "must be in the trust domain " + trust_domain);
  }
}

void parse_limits(const Node& node, AgentLimits& out, ErrorList& errors) {
  using std::chrono::milliseconds;
  using std::chrono::seconds;
  MapReader r(node, errors);
  if (!r.valid()) return;
  duration_field(r, "backoff_initial", milliseconds(10), milliseconds(60000), &out.backoff_initial);
  duration_field(r, "backoff_max", milliseconds(100), milliseconds(3600 * 1000), &out.backoff_max);
  duration_field(r, "call_timeout", seconds(1), seconds(300), &out.call_timeout);
  duration_field(r, "unmatched_retry", seconds(1), seconds(3600), &out.unmatched_retry);
  duration_field(r, "caller_wait", milliseconds(10), milliseconds(60000), &out.caller_wait);
  r.uint32("max_workloads", 1, 1 << 20, &out.max_workloads);
  r.uint32("max_svids_per_workload", 1, 256, &out.max_svids_per_workload);
  r.uint32("initial_csrs", 1, 256, &out.initial_csrs);
  double_field(r, "rotate_jitter", 0.0, 0.5, &out.rotate_jitter);
  if (out.backoff_max < out.backoff_initial) {
    errors.add(node.location(), node.path() + ".backoff_max", "must not be below backoff_initial");
  }
  if (out.initial_csrs > out.max_svids_per_workload) {
    errors.add(node.location(), node.path() + ".initial_csrs", "must not exceed max_svids_per_workload");
  }
}

void parse_remote(const Node& node, const std::string& trust_domain, AgentConfig& out, ErrorList& errors) {
  MapReader r(node, errors);
  if (!r.valid()) return;
  AuthorityEndpoint ep;
  if (auto a = r.get("address", true)) {
    if (auto addr = config::parse_address(*a, errors, true)) ep.address = *addr;
  }
  if (auto b = r.get("bootstrap_bundle", true)) {
    if (auto ds = mtls::parse_data_source(*b, errors)) ep.bootstrap_bundle = *ds;
  }
  ep.server_spiffe_id = default_authority_spiffe_id(trust_domain);
  own_spiffe_id(r, "server_spiffe_id", trust_domain, &ep.server_spiffe_id);
  out.authority = std::move(ep);
}

void parse_embedded(const Node& node, AgentConfig& out, ErrorList& errors) {
  MapReader r(node, errors);
  if (!r.valid()) return;
  EmbeddedAuthorityConfig e;
  if (r.string("data_dir", &e.data_dir, true) && e.data_dir.empty()) {
    auto n = r.get("data_dir");
    errors.add(n->location(), n->path(), "must not be empty");
  }
  r.string("entries_file", &e.entries_file);
  out.embedded = std::move(e);
}

void parse_node_attestation(const Node& node, AgentConfig& out, ErrorList& errors) {
  MapReader r(node, errors);
  if (!r.valid()) return;
  auto jt = r.get("join_token", true);
  if (!jt) return;
  MapReader t(*jt, errors);
  if (t.string("token", &out.join_token, true) && out.join_token.empty()) {
    auto n = t.get("token");
    errors.add(n->location(), n->path(), "must not be empty");
  }
}

void parse_workload_attestation(const Node& node, AgentConfig& out, ErrorList& errors) {
  MapReader r(node, errors);
  if (!r.valid()) return;
  auto k = r.get("kernel");
  out.kernel_attestation = k.has_value();
  if (k) {
    if (auto options = kernel::parse_kernel_attestor_options(*k, errors)) out.kernel = std::move(*options);
  }
  if (!k) errors.add(node.location(), node.path() + ".kernel", "missing required field (kernel is the only workload attestor)");
}

}  // namespace

std::string default_authority_spiffe_id(const std::string& trust_domain) {
  return "spiffe://" + trust_domain + "/portcullis/authority";
}

std::optional<AgentConfig> parse_agent_config(MapReader& r, const mtls::IdentityConfig& common) {
  ErrorList& errors = r.errors();
  size_t before = errors.size();
  AgentConfig out;
  out.trust_domain = common.trust_domain;
  out.location = r.node().location();
  auto remote = r.get("authority");
  if (remote) parse_remote(*remote, out.trust_domain, out, errors);
  if (auto e = r.get("embedded_authority")) parse_embedded(*e, out, errors);
  if (auto n = r.get("node_attestation")) {
    if (remote) {
      parse_node_attestation(*n, out, errors);
    } else {
      errors.add(n->location(), n->path(), "only with authority: the embedded authority's node is attested by being in-process");
    }
  } else if (remote) {
    errors.add(r.node().location(), r.node().path() + ".node_attestation", "missing required field (authority needs a join_token)");
  }
  if (auto w = r.get("workload_attestation")) parse_workload_attestation(*w, out, errors);
  double_field(r, "rotate_at", 0.1, 0.9, &out.rotate_at);
  own_spiffe_id(r, "unattested_fallback", out.trust_domain, &out.unattested_fallback);
  if (auto l = r.get("limits")) parse_limits(*l, out.limits, errors);
  if (errors.size() != before) return std::nullopt;
  return out;
}

}  // namespace portcullis::attest::agent
