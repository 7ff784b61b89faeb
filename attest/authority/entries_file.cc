#include "attest/authority/entries_file.h"

#include <functional>
#include <map>
#include <tuple>

#include "config/yaml_file.h"

namespace portcullis::attest::authority {
namespace {

using config::ErrorList;
using config::MapReader;
using config::Node;

void report(const Node& node, const Status& s, ErrorList& errors) {
  if (!s.ok()) errors.add(node.location(), node.path(), s.error().message);
}

// A TTL in whole seconds from 0 (the authority default) to the limit.
void ttl_field(MapReader& r, std::string_view key, const EntryLimits& limits, std::chrono::seconds* out) {
  std::chrono::nanoseconds value{};
  if (!r.duration(key, &value)) return;
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(value);
  if (secs != value || secs > limits.max_ttl) {
    auto n = r.get(key);
    r.errors().add(n->location(), n->path(),
                   "must be whole seconds up to " + std::to_string(limits.max_ttl.count()) + "s");
    return;
  }
  *out = secs;
}

std::vector<std::string> string_list(MapReader& r, std::string_view key, bool required,
                                     const std::function<Status(std::string_view)>& check) {
  std::vector<std::string> out;
  for (const Node& n : r.list(key, required)) {
    auto s = config::read_string(n, r.errors());
    if (!s) continue;
    Status st = check(*s);
    report(n, st, r.errors());
    if (st.ok()) out.push_back(std::move(*s));
  }
  return out;
}

std::optional<RegistrationEntry> parse_entry(const Node& node, const EntryLimits& limits, std::string_view trust_domain,
                                             ErrorList& errors) {
  size_t before = errors.size();
  MapReader r(node, errors);
  if (!r.valid()) return std::nullopt;
  RegistrationEntry e;
  if (r.string("spiffe_id", &e.spiffe_id, true)) report(*r.get("spiffe_id"), validate_workload_spiffe_id(e.spiffe_id, trust_domain), errors);
  if (r.string("parent_id", &e.parent_id)) report(*r.get("parent_id"), validate_parent_id(e.parent_id, trust_domain), errors);
  e.selectors = string_list(r, "selectors", true, [&](std::string_view s) { return validate_selector(s, limits.max_selector_bytes); });
  ttl_field(r, "x509_svid_ttl", limits, &e.x509_svid_ttl);
  ttl_field(r, "jwt_svid_ttl", limits, &e.jwt_svid_ttl);
  e.dns_names = string_list(r, "dns_names", false, validate_dns_name);
  r.finish();
  if (errors.size() != before) return std::nullopt;
  // The per-field checks passed; what is left are the whole-entry rules (counts, at least one
  // selector), reported at the entry.
  Status s = normalize_entry(e, limits, trust_domain);
  report(node, s, errors);
  if (!s.ok()) return std::nullopt;
  return e;
}

}  // namespace

std::vector<RegistrationEntry> parse_entries(const Node& root, const EntryLimits& limits, std::string_view trust_domain,
                                             ErrorList& errors) {
  std::vector<RegistrationEntry> out;
  MapReader r(root, errors);
  if (!r.valid()) return out;
  std::map<std::tuple<std::string, std::string, std::vector<std::string>>, std::string> seen;  // -> YAML path
  for (const Node& n : r.list("entries", true)) {
    auto e = parse_entry(n, limits, trust_domain, errors);
    if (!e) continue;
    auto [it, fresh] = seen.emplace(std::make_tuple(e->spiffe_id, e->parent_id, e->selectors), n.path());
    if (!fresh) {
      errors.add(n.location(), n.path(), "registers the same spiffe_id, parent_id and selectors as " + it->second);
      continue;
    }
    out.push_back(std::move(*e));
  }
  r.finish();
  return out;
}

Result<std::vector<RegistrationEntry>> load_entries_file(const std::string& path, const EntryLimits& limits,
                                                         std::string_view trust_domain) {
  ErrorList errors;
  std::vector<RegistrationEntry> entries;
  if (auto root = config::load_yaml_file(path, config::kDefaultMaxConfigBytes, errors)) {
    entries = parse_entries(*root, limits, trust_domain, errors);
  }
  if (!errors.empty()) return make_error(ErrorCode::kInvalidArgument, "entries file " + path + ":\n" + errors.format());
  return entries;
}

}  // namespace portcullis::attest::authority
