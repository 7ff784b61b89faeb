#include "config/bootstrap.h"

#include <set>

#include <spdlog/spdlog.h>

namespace portcullis::config {
namespace {

std::string canonical_yaml(const Node& node) {
  YAML::Emitter out;
  out << node.yaml();
  return out.c_str();
}

}  // namespace

TypedExtension parse_typed_extension(const Node& node, ErrorList& errors) {
  MapReader r(node, errors);
  TypedExtension ext{"", "", node, node};
  r.string("name", &ext.name, true);
  if (auto tc = r.get("typed_config", true)) {
    ext.typed_config = *tc;
    if (tc->is_map()) {
      for (const auto& kv : tc->yaml()) {
        if (kv.first.IsScalar() && kv.first.Scalar() == "@type") {
          Node t = tc->child(kv.first, kv.second);
          if (auto s = read_string(t, errors)) ext.type_url = *s;
        }
      }
      if (ext.type_url.empty()) {
        errors.add(tc->location(), tc->path() + ".@type", "missing required field");
      }
    } else {
      errors.add(tc->location(), tc->path(), "expected a map, got " + tc->kind_name());
    }
  }
  return ext;
}

namespace {

void parse_filter_chains(MapReader& r, ListenerConfig& l, ErrorList& errors) {
  for (const Node& fc : r.list("filter_chains", true)) {
    MapReader fr(fc, errors);
    FilterChainConfig chain;
    chain.node = fc;
    for (const Node& f : fr.list("filters", true)) chain.filters.push_back(parse_typed_extension(f, errors));
    if (auto ts = fr.get("transport_socket")) chain.transport_socket = parse_typed_extension(*ts, errors);
    fr.duration("transport_socket_connect_timeout", &chain.transport_socket_connect_timeout);
    if (auto m = fr.get("filter_chain_match")) {
      errors.add(m->location(), m->path(), "filter_chain_match is not supported yet");
    }
    std::string name;
    fr.string("name", &name);
    fr.finish();
    if (fc.is_map() && chain.filters.empty() && fr.get("filters")) {
      errors.add(fc.location(), fc.path() + ".filters", "a filter chain needs at least one filter");
    }
    l.filter_chains.push_back(std::move(chain));
  }
  if (auto fcs = r.get("filter_chains"); fcs && fcs->is_list() && fcs->yaml().size() == 0) {
    errors.add(fcs->location(), fcs->path(), "a listener needs a filter chain");
  }
  if (l.filter_chains.size() > 1) {
    errors.add(r.node().location(), r.node().path() + ".filter_chains",
               "only one filter chain per listener is supported (no filter_chain_match yet)");
  }
}

ListenerConfig parse_listener(const Node& node, ErrorList& errors) {
  ListenerConfig l;
  MapReader r(node, errors);
  if (!r.valid()) return l;
  l.canonical = canonical_yaml(node);
  r.string("name", &l.name, true);
  if (auto a = r.get("address", true)) {
    if (auto addr = parse_address(*a, errors, false)) l.address = *addr->socket();
  }
  r.string("stat_prefix", &l.stat_prefix);
  r.uint32("per_connection_buffer_limit_bytes", 1024, 16 * 1024 * 1024, &l.per_connection_buffer_limit_bytes);
  if (auto b = r.get("tcp_backlog_size")) {
    if (auto v = read_uint(*b, errors, 1, 65535)) l.tcp_backlog_size = static_cast<uint32_t>(*v);
  }
  parse_filter_chains(r, l, errors);
  return l;
}

void parse_endpoints(MapReader& r, ClusterConfig& c, ErrorList& errors) {
  auto la = r.get("load_assignment", true);
  if (!la) return;
  MapReader lr(*la, errors);
  std::string cluster_name;
  lr.string("cluster_name", &cluster_name);
  for (const Node& locality : lr.list("endpoints", true)) {
    MapReader loc(locality, errors);
    for (const Node& lb : loc.list("lb_endpoints", true)) {
      MapReader lbr(lb, errors);
      if (auto ep = lbr.get("endpoint", true)) {
        MapReader er(*ep, errors);
        if (auto a = er.get("address", true)) {
          if (auto addr = parse_address(*a, errors, false)) {
            if (addr->socket()->port_value == 0) {
              errors.add(a->location(), a->path() + ".socket_address.port_value",
                         "an endpoint needs a port other than 0");
            }
            c.endpoints.push_back(*addr->socket());
          }
        }
      }
    }
  }
}

ClusterConfig parse_cluster(const Node& node, ErrorList& errors) {
  ClusterConfig c;
  MapReader r(node, errors);
  if (!r.valid()) return c;
  c.canonical = canonical_yaml(node);
  r.string("name", &c.name, true);
  r.duration("connect_timeout", &c.connect_timeout);
  if (c.connect_timeout.count() == 0) {
    auto n = r.get("connect_timeout");
    errors.add(n ? n->location() : node.location(), node.path() + ".connect_timeout", "must be greater than 0");
  }
  std::string type = "STATIC";
  if (r.string("type", &type) && type != "STATIC") {
    auto n = r.get("type");
    errors.add(n->location(), n->path(), "only type STATIC is supported, got '" + type + "'");
  }
  std::string lb = "ROUND_ROBIN";
  if (r.string("lb_policy", &lb) && lb != "ROUND_ROBIN") {
    auto n = r.get("lb_policy");
    errors.add(n->location(), n->path(), "only lb_policy ROUND_ROBIN is supported, got '" + lb + "'");
  }
  r.uint32("per_connection_buffer_limit_bytes", 1024, 16 * 1024 * 1024, &c.per_connection_buffer_limit_bytes);
  if (auto ts = r.get("transport_socket")) c.transport_socket = parse_typed_extension(*ts, errors);
  parse_endpoints(r, c, errors);
  return c;
}

void parse_runtime(const Node& node, RuntimeLimits& limits, ErrorList& errors) {
  static constexpr std::string_view kListenerPrefix = "envoy.resource_limits.listener.";
  static constexpr std::string_view kListenerSuffix = ".connection_limit";
  MapReader r(node, errors);
  for (const Node& layer : r.list("layers")) {
    MapReader lr(layer, errors);
    std::string name;
    lr.string("name", &name, true);
    auto sl = lr.get("static_layer");
    if (!sl) continue;
    if (!sl->is_map()) {
      errors.add(sl->location(), sl->path(), "expected a map, got " + sl->kind_name());
      continue;
    }
    for (const auto& kv : sl->yaml()) {
      Node value = sl->child(kv.first, kv.second);
      std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "";
      if (key == "overload.global_downstream_max_connections") {
        if (auto v = read_uint(value, errors, 1, 10'000'000)) limits.global_max_connections = *v;
      } else if (key.starts_with(kListenerPrefix) && key.ends_with(kListenerSuffix) &&
                 key.size() > kListenerPrefix.size() + kListenerSuffix.size()) {
        std::string listener = key.substr(kListenerPrefix.size(),
                                          key.size() - kListenerPrefix.size() - kListenerSuffix.size());
        if (auto v = read_uint(value, errors, 1, 10'000'000)) limits.listener_connection_limit[listener] = *v;
      } else {
        // Envoy accepts arbitrary runtime keys; so do we, but say that nothing reads this one.
        spdlog::warn("{}: runtime key '{}' is not used by portcullis", value.path(), key);
      }
    }
  }
}

AuditConfig parse_audit(const Node& node, ErrorList& errors) {
  AuditConfig out;
  MapReader r(node, errors);
  for (const Node& sink : r.list("sinks", true)) {
    MapReader sr(sink, errors);
    AuditConfig::Sink s;
    auto file = sr.get("file");
    auto out_sink = sr.get("stdout");
    if (file) {
      MapReader fr(*file, errors);
      fr.string("path", &s.path, true);
    }
    if (out_sink) s.stdout_sink = true;
    sr.finish();
    if (sink.is_map() && (file.has_value() == out_sink.has_value())) {
      errors.add(sink.location(), sink.path(), "a sink is exactly one of file: {path} or stdout: {}");
    }
    out.sinks.push_back(std::move(s));
  }
  r.uint32("queue_size", 16, 10'000'000, &out.queue_size);
  return out;
}

void check_unique_names(const Bootstrap& b, ErrorList& errors, const Node& root) {
  std::set<std::string> seen;
  for (size_t i = 0; i < b.listeners.size(); ++i) {
    if (!b.listeners[i].name.empty() && !seen.insert(b.listeners[i].name).second) {
      errors.add(root.location(), "static_resources.listeners[" + std::to_string(i) + "].name",
                 "duplicate listener name '" + b.listeners[i].name + "'");
    }
  }
  seen.clear();
  for (size_t i = 0; i < b.clusters.size(); ++i) {
    if (!b.clusters[i].name.empty() && !seen.insert(b.clusters[i].name).second) {
      errors.add(root.location(), "static_resources.clusters[" + std::to_string(i) + "].name",
                 "duplicate cluster name '" + b.clusters[i].name + "'");
    }
  }
  std::set<std::pair<std::string, uint32_t>> addrs;
  for (size_t i = 0; i < b.listeners.size(); ++i) {
    const auto& a = b.listeners[i].address;
    if (a.port_value != 0 && !addrs.emplace(a.address, a.port_value).second) {
      errors.add(root.location(), "static_resources.listeners[" + std::to_string(i) + "].address",
                 "another listener already uses " + a.to_string());
    }
  }
}

}  // namespace

AuditConfig parse_audit_config(const Node& node, ErrorList& errors) { return parse_audit(node, errors); }

uint64_t RuntimeLimits::connection_limit_for(const std::string& listener) const {
  auto it = listener_connection_limit.find(listener);
  return it == listener_connection_limit.end() ? kDefaultListenerConnectionLimit : it->second;
}

const ClusterConfig* Bootstrap::find_cluster(std::string_view name) const {
  for (const auto& c : clusters) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

Bootstrap parse_bootstrap(const Node& root, ErrorList& errors) {
  Bootstrap b;
  b.path = root.file();
  b.document = root;
  MapReader r(root, errors);
  if (auto n = r.get("node")) {
    MapReader nr(*n, errors);
    nr.string("id", &b.node_id);
    nr.string("cluster", &b.node_cluster);
    if (auto md = nr.get("metadata"); md && !md->is_map()) {
      errors.add(md->location(), md->path(), "expected a map, got " + md->kind_name());
    }
    (void)nr.get("locality");  // accepted for Envoy compatibility; nothing reads it yet
  }
  if (auto a = r.get("admin")) {
    AdminConfig admin;
    MapReader ar(*a, errors);
    if (auto addr = ar.get("address", true)) {
      if (auto parsed = parse_address(*addr, errors, false)) admin.address = *parsed->socket();
    }
    ar.uint32("max_request_bytes", 1024, 1024 * 1024, &admin.max_request_bytes);
    if (auto al = ar.get("access_log")) (void)read_list(*al, errors);
    b.admin = admin;
  }
  if (auto sr = r.get("static_resources")) {
    MapReader sr_reader(*sr, errors);
    for (const Node& l : sr_reader.list("listeners")) b.listeners.push_back(parse_listener(l, errors));
    for (const Node& c : sr_reader.list("clusters")) b.clusters.push_back(parse_cluster(c, errors));
  }
  if (auto lr = r.get("layered_runtime")) parse_runtime(*lr, b.limits, errors);
  if (auto a = r.get("audit")) b.audit = parse_audit(*a, errors);
  b.workload_api = r.get("workload_api");
  if (auto id = r.get("identity")) b.identity = *id;
  b.ext_authz_server = r.get("ext_authz_server");
  b.sds = r.get("sds");
  r.finish();
  check_unique_names(b, errors, root);
  return b;
}

}  // namespace portcullis::config
