#include "filters/policy/rbac_engine.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "filters/policy/rbac_http_matchers.h"
#include "mtls/attested_claims.h"

namespace portcullis::filters {
namespace {

using config::ErrorList;
using config::MapReader;
using config::Node;

class AnyMatcher : public RbacMatcher {
 public:
  bool matches(const RbacInput&) const override { return true; }
};

class SetMatcher : public RbacMatcher {
 public:
  SetMatcher(bool all, std::vector<std::unique_ptr<RbacMatcher>> children) : all_(all), children_(std::move(children)) {}
  bool matches(const RbacInput& in) const override {
    if (all_) return std::all_of(children_.begin(), children_.end(), [&](const auto& c) { return c->matches(in); });
    return std::any_of(children_.begin(), children_.end(), [&](const auto& c) { return c->matches(in); });
  }
  bool needs_http() const override {
    return std::any_of(children_.begin(), children_.end(), [](const auto& c) { return c->needs_http(); });
  }

 private:
  bool all_;
  std::vector<std::unique_ptr<RbacMatcher>> children_;
};

class NotMatcher : public RbacMatcher {
 public:
  explicit NotMatcher(std::unique_ptr<RbacMatcher> child) : child_(std::move(child)) {}
  bool matches(const RbacInput& in) const override { return !child_->matches(in); }
  bool needs_http() const override { return child_->needs_http(); }

 private:
  std::unique_ptr<RbacMatcher> child_;
};

// CidrMatcher compares the first prefix_len bits of an address.
class CidrMatcher : public RbacMatcher {
 public:
  enum class Field { kDirectRemote, kRemote, kDestination };
  CidrMatcher(Field field, IpAddress prefix, uint32_t len) : field_(field), prefix_(prefix), len_(len) {}
  bool matches(const RbacInput& in) const override {
    const IpAddress& ip = field_ == Field::kDirectRemote ? in.direct_remote_ip
                          : field_ == Field::kRemote     ? in.remote_ip
                                                         : in.destination_ip;
    if (ip.v6 != prefix_.v6) return false;
    uint32_t full = len_ / 8, rest = len_ % 8;
    if (std::memcmp(ip.bytes, prefix_.bytes, full) != 0) return false;
    if (rest == 0) return true;
    uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
    return (ip.bytes[full] & mask) == (prefix_.bytes[full] & mask);
  }

 private:
  Field field_;
  IpAddress prefix_;
  uint32_t len_;
};

class PortMatcher : public RbacMatcher {
 public:
  PortMatcher(uint32_t start, uint32_t end) : start_(start), end_(end) {}  // [start, end)
  bool matches(const RbacInput& in) const override { return in.destination_port >= start_ && in.destination_port < end_; }

 private:
  uint32_t start_, end_;
};

class AuthenticatedMatcher : public RbacMatcher {
 public:
  explicit AuthenticatedMatcher(std::optional<config::StringMatcher> name) : name_(std::move(name)) {}
  // Envoy: without principal_name any TLS connection matches (authenticated or not, as the
  // listener's TLS settings allow); with one, the verified peer's identity must match it.
  bool matches(const RbacInput& in) const override {
    if (!in.tls) return false;
    if (!name_) return true;
    return in.authenticated && name_->matches(in.peer_spiffe_id);
  }

 private:
  std::optional<config::StringMatcher> name_;
};

// AttestedMatcher is our extension of Envoy's Principal: the verified peer certificate carries
// `claim` in its attested-claims extension (what the authority checked when it issued it).
class AttestedMatcher : public RbacMatcher {
 public:
  explicit AttestedMatcher(std::string claim) : claim_(std::move(claim)) {}
  bool matches(const RbacInput& in) const override {
    if (!in.authenticated) return false;
    return std::find(in.peer_attested_claims.begin(), in.peer_attested_claims.end(), claim_) !=
           in.peer_attested_claims.end();
  }

 private:
  std::string claim_;
};

class SniMatcher : public RbacMatcher {
 public:
  explicit SniMatcher(config::StringMatcher m) : m_(std::move(m)) {}
  bool matches(const RbacInput& in) const override { return m_.matches(in.requested_server_name); }

 private:
  config::StringMatcher m_;
};

std::unique_ptr<RbacMatcher> parse_cidr(const Node& node, CidrMatcher::Field field, ErrorList& errors) {
  MapReader r(node, errors);
  std::string prefix;
  uint32_t len = 0;
  bool has_prefix = r.string("address_prefix", &prefix, true);
  r.uint32("prefix_len", 0, 128, &len);
  r.finish();
  IpAddress ip;
  if (!has_prefix) return nullptr;
  if (!ip.parse(prefix)) {
    errors.add(node.location(), node.path() + ".address_prefix", "'" + prefix + "' is not an IP address");
    return nullptr;
  }
  if (len > (ip.v6 ? 128u : 32u)) {
    errors.add(node.location(), node.path() + ".prefix_len", "prefix_len " + std::to_string(len) + " is too long");
    return nullptr;
  }
  return std::make_unique<CidrMatcher>(field, ip, len);
}

std::unique_ptr<RbacMatcher> parse_attested(const Node& node, ErrorList& errors) {
  MapReader r(node, errors);
  std::string selector;
  bool has = r.string("selector", &selector, true);
  r.finish();
  if (!has) return nullptr;
  if (auto problem = mtls::attested_claim_problem(selector); !problem.empty()) {
    auto at = r.get("selector");
    errors.add(at->location(), at->path(), "'" + selector + "' " + problem + " (want TYPE:KEY:VALUE, e.g. unix:sha256:<hex>)");
    return nullptr;
  }
  return std::make_unique<AttestedMatcher>(std::move(selector));
}

std::unique_ptr<RbacMatcher> parse_any(const Node& node, ErrorList& errors) {
  auto v = config::read_bool(node, errors);
  if (v && !*v) errors.add(node.location(), node.path(), "any must be true");
  return v && *v ? std::make_unique<AnyMatcher>() : nullptr;
}

std::unique_ptr<RbacMatcher> parse_permission(const Node& node, ErrorList& errors);
std::unique_ptr<RbacMatcher> parse_principal(const Node& node, ErrorList& errors);

template <typename ParseFn>
std::unique_ptr<RbacMatcher> parse_set(const Node& node, const char* list_key, bool all, ParseFn parse,
                                       ErrorList& errors) {
  MapReader r(node, errors);
  std::vector<std::unique_ptr<RbacMatcher>> children;
  auto list = r.list(list_key, true);
  // Envoy requires at least one entry; an empty and_* set would match everything (fail open).
  if (list.empty() && r.get(list_key)) {
    errors.add(node.location(), node.path() + "." + list_key, "must have at least one entry");
  }
  for (const Node& child : list) {
    if (auto m = parse(child, errors)) children.push_back(std::move(m));
  }
  return std::make_unique<SetMatcher>(all, std::move(children));
}

// one_of checks that exactly one of a oneof's fields is set and returns its key.
std::optional<std::string> one_of(const Node& node, ErrorList& errors, const char* what) {
  if (!node.is_map()) {
    errors.add(node.location(), node.path(), "expected a map, got " + node.kind_name());
    return std::nullopt;
  }
  if (node.yaml().size() != 1) {
    errors.add(node.location(), node.path(), std::string("a ") + what + " sets exactly one rule");
    return std::nullopt;
  }
  const YAML::Node key = node.yaml().begin()->first;
  if (!key.IsScalar()) {
    errors.add(node.location(), node.path(), std::string("a ") + what + "'s rule name must be a string");
    return std::nullopt;
  }
  return key.Scalar();
}

// one_rule returns the single rule of a Permission/Principal map and its value, or reports why not.
std::optional<std::pair<std::string, Node>> one_rule(const Node& node, ErrorList& errors, const char* what) {
  auto key = one_of(node, errors, what);
  if (!key) return std::nullopt;
  MapReader r(node, errors);
  auto v = r.get(*key);
  if (!v) {
    errors.add(node.location(), node.path() + "." + *key, "rule '" + *key + "' has no value");
    return std::nullopt;
  }
  return std::pair<std::string, Node>{*key, *v};
}

std::unique_ptr<RbacMatcher> parse_permission(const Node& node, ErrorList& errors) {
  auto rule = one_rule(node, errors, "permission");
  if (!rule) return nullptr;
  const std::string* key = &rule->first;
  const Node& v = rule->second;
  if (*key == "any") return parse_any(v, errors);
  if (*key == "and_rules") return parse_set(v, "rules", true, parse_permission, errors);
  if (*key == "or_rules") return parse_set(v, "rules", false, parse_permission, errors);
  if (*key == "not_rule") {
    auto child = parse_permission(v, errors);
    return child ? std::make_unique<NotMatcher>(std::move(child)) : nullptr;
  }
  if (*key == "destination_port") {
    auto port = config::read_uint(v, errors, 0, 65535);
    return port ? std::make_unique<PortMatcher>(static_cast<uint32_t>(*port), static_cast<uint32_t>(*port) + 1) : nullptr;
  }
  if (*key == "destination_port_range") {
    MapReader pr(v, errors);
    uint32_t start = 0, end = 0;
    pr.uint32("start", 0, 65536, &start);
    pr.uint32("end", 0, 65536, &end);
    pr.finish();
    if (start > end) errors.add(v.location(), v.path(), "start must not exceed end");
    return std::make_unique<PortMatcher>(start, end);
  }
  if (*key == "destination_ip") return parse_cidr(v, CidrMatcher::Field::kDestination, errors);
  if (*key == "requested_server_name") {
    auto m = config::parse_string_matcher(v, errors);
    return m ? std::make_unique<SniMatcher>(std::move(*m)) : nullptr;
  }
  if (*key == "header") return parse_header_matcher(v, errors);
  if (*key == "url_path") return parse_url_path_matcher(v, errors);
  errors.add(v.location(), v.path(), "unsupported permission '" + *key + "'");
  return nullptr;
}

std::unique_ptr<RbacMatcher> parse_principal(const Node& node, ErrorList& errors) {
  auto rule = one_rule(node, errors, "principal");
  if (!rule) return nullptr;
  const std::string* key = &rule->first;
  const Node& v = rule->second;
  if (*key == "any") return parse_any(v, errors);
  if (*key == "and_ids") return parse_set(v, "ids", true, parse_principal, errors);
  if (*key == "or_ids") return parse_set(v, "ids", false, parse_principal, errors);
  if (*key == "not_id") {
    auto child = parse_principal(v, errors);
    return child ? std::make_unique<NotMatcher>(std::move(child)) : nullptr;
  }
  if (*key == "authenticated") {
    MapReader ar(v, errors);
    std::optional<config::StringMatcher> name;
    if (auto pn = ar.get("principal_name")) {
      name = config::parse_string_matcher(*pn, errors);
      if (!name) return nullptr;
    }
    ar.finish();
    return std::make_unique<AuthenticatedMatcher>(std::move(name));
  }
  if (*key == "attested") return parse_attested(v, errors);
  if (*key == "direct_remote_ip") return parse_cidr(v, CidrMatcher::Field::kDirectRemote, errors);
  if (*key == "remote_ip" || *key == "source_ip") return parse_cidr(v, CidrMatcher::Field::kRemote, errors);
  if (*key == "header") return parse_header_matcher(v, errors);
  if (*key == "url_path") return parse_url_path_matcher(v, errors);
  errors.add(v.location(), v.path(), "unsupported principal '" + *key + "'");
  return nullptr;
}

}  // namespace

bool IpAddress::parse(std::string_view text) {
  std::string s(text);
  *this = IpAddress{};
  if (::inet_pton(AF_INET, s.c_str(), bytes) == 1) return true;
  if (::inet_pton(AF_INET6, s.c_str(), bytes) == 1) {
    v6 = true;
    return true;
  }
  return false;
}

RbacDecision RbacEngine::evaluate(const RbacInput& input) const {
  for (const Policy& p : policies_) {
    bool permitted = std::any_of(p.permissions.begin(), p.permissions.end(), [&](const auto& m) { return m->matches(input); });
    if (!permitted) continue;
    bool principal = std::any_of(p.principals.begin(), p.principals.end(), [&](const auto& m) { return m->matches(input); });
    if (!principal) continue;
    return RbacDecision{action_ != RbacAction::kDeny, p.name};
  }
  return RbacDecision{action_ != RbacAction::kAllow, ""};
}

bool RbacEngine::needs_http() const {
  auto http = [](const auto& m) { return m->needs_http(); };
  return std::any_of(policies_.begin(), policies_.end(), [&](const Policy& p) {
    return std::any_of(p.permissions.begin(), p.permissions.end(), http) ||
           std::any_of(p.principals.begin(), p.principals.end(), http);
  });
}

std::shared_ptr<const RbacEngine> parse_rbac(const Node& node, ErrorList& errors) {
  size_t before = errors.size();
  MapReader r(node, errors);
  if (!r.valid()) return nullptr;
  RbacAction action = RbacAction::kAllow;
  std::string action_name = "ALLOW";
  if (r.string("action", &action_name)) {
    if (action_name == "DENY") action = RbacAction::kDeny;
    else if (action_name == "LOG") action = RbacAction::kLog;
    else if (action_name != "ALLOW") {
      auto n = r.get("action");
      errors.add(n->location(), n->path(), "action must be ALLOW, DENY or LOG, got '" + action_name + "'");
    }
  }
  std::vector<RbacEngine::Policy> policies;
  if (auto p = r.get("policies")) {
    if (!p->is_map()) {
      errors.add(p->location(), p->path(), "expected a map of policies, got " + p->kind_name());
    } else {
      for (const auto& kv : p->yaml()) {
        Node policy_node = p->child(kv.first, kv.second);
        RbacEngine::Policy policy;
        policy.name = kv.first.Scalar();
        MapReader pr(policy_node, errors);
        auto permissions = pr.list("permissions", true);
        auto principals = pr.list("principals", true);
        for (const char* key : {"permissions", "principals"}) {
          auto n = pr.get(key);
          if (n && n->is_list() && n->yaml().size() == 0) errors.add(n->location(), n->path(), "must have at least one entry");
        }
        for (const Node& perm : permissions) {
          if (auto m = parse_permission(perm, errors)) policy.permissions.push_back(std::move(m));
        }
        for (const Node& prin : principals) {
          if (auto m = parse_principal(prin, errors)) policy.principals.push_back(std::move(m));
        }
        if (auto c = pr.get("condition")) errors.add(c->location(), c->path(), "CEL conditions are not supported");
        pr.finish();
        policies.push_back(std::move(policy));
      }
    }
  }
  if (auto a = r.get("audit_logging_options")) errors.add(a->location(), a->path(), "not supported; portcullis audits every decision");
  r.finish();
  if (errors.size() != before) return nullptr;
  std::sort(policies.begin(), policies.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return std::make_shared<const RbacEngine>(action, std::move(policies));
}

}  // namespace portcullis::filters
