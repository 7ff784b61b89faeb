// The admin endpoints of a Server (Envoy's names and shapes).
#include <malloc.h>

#include <optional>

#include <re2/re2.h>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/logging.h"
#include "config/yaml_json.h"
#include "proxy/server.h"
#include "proxy/version_info.h"

namespace portcullis::proxy {
namespace {

// Envoy's /memory answers from tcmalloc; ours from glibc, under the same field names (values as
// decimal strings, as Envoy's JSON has them): allocated = bytes in use by the program, heap_size =
// bytes the allocator holds from the kernel (arenas plus mmapped chunks).
std::string memory_json() {
  struct mallinfo2 mi = mallinfo2();
  nlohmann::json j;
  j["allocated"] = std::to_string(mi.uordblks + mi.hblkhd);
  j["heap_size"] = std::to_string(mi.arena + mi.hblkhd);
  j["pageheap_unmapped"] = "0";
  j["pageheap_free"] = std::to_string(mi.fordblks);
  j["total_thread_cache"] = "0";
  j["total_physical_bytes"] = std::to_string(mi.arena + mi.hblkhd);
  return j.dump(2) + "\n";
}


constexpr const char* kJson = "application/json";
constexpr const char* kText = "text/plain; charset=UTF-8";

std::string format_uptime(std::chrono::steady_clock::duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(d).count()) + "s";
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

void Server::register_admin_routes() {
  admin_->add_route({"/ready", "readiness: 200 LIVE, or 503 with the state", false, [this](const AdminRequest&) {
    if (server_stats_.state.value() == 0) {
      // An attested identity is ready once the node is attested and until its SVID expires; while
      // the authority is unreachable it stays ready and says until when its SVIDs hold.
      if (agent_) {
        attest::agent::Readiness r = agent_->readiness();
        if (!r.ready) return AdminResponse{503, kText, "NOT_READY: " + r.reason + "\n"};
        if (!r.reason.empty()) return AdminResponse{200, kText, "LIVE\n" + r.reason + "\n"};
      }
      return AdminResponse{200, kText, "LIVE\n"};
    }
    return AdminResponse{503, kText, draining_ ? "DRAINING\n" : "PRE_INITIALIZING\n"};
  }});
  admin_->add_route({"/server_info", "server version, state, options and node", false, [this](const AdminRequest&) {
    return AdminResponse{200, kJson, server_info_json()};
  }});
  admin_->add_route({"/stats", "stats as `name: value` lines (?filter=REGEX, ?format=json)", false,
                     [this](const AdminRequest& req) { return stats_response(req); }});
  admin_->add_route({"/stats/prometheus", "stats in Prometheus text format", false, [this](const AdminRequest&) {
    server_stats_.uptime.set(std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_at_).count());
    return AdminResponse{200, "text/plain; version=0.0.4; charset=UTF-8", stats_.render_prometheus()};
  }});
  admin_->add_route({"/config_dump", "the running config as JSON", false, [this](const AdminRequest&) {
    return AdminResponse{200, kJson, config_dump_json()};
  }});
  admin_->add_route({"/listeners", "listeners and their bound addresses (?format=json)", false,
                     [this](const AdminRequest& req) {
                       bool json = req.query.contains("format") && req.query.at("format") == "json";
                       return AdminResponse{200, json ? kJson : kText, listeners_text(json)};
                     }});
  admin_->add_route({"/quitquitquit", "exit the server at once", true, [this](const AdminRequest&) {
    spdlog::info("admin /quitquitquit: shutting down");
    // Answer first: shut down once the response had a moment to go out.
    auto timer = std::make_shared<asio::steady_timer>(main_io_, std::chrono::milliseconds(50));
    timer->async_wait([this, timer](const std::error_code&) { shutdown(); });
    return AdminResponse{200, kText, "OK\n"};
  }});
  admin_->add_route({"/drain_listeners", "stop accepting new connections on all listeners", true,
                     [this](const AdminRequest&) {
                       spdlog::info("admin /drain_listeners: closing all listeners");
                       close_all_listeners();
                       if (grpc_) grpc_->drain();
                       draining_ = true;
                       server_stats_.state.set(1);
                       server_stats_.live.set(0);
                       return AdminResponse{200, kText, "OK\n"};
                     }});
  admin_->add_route({"/logging", "change the log level: POST /logging?level=debug", true,
                     [](const AdminRequest& req) {
                       auto it = req.query.find("level");
                       if (it == req.query.end() || !set_log_level(it->second)) {
                         return AdminResponse{400, kText,
                                              "usage: /logging?level=<trace|debug|info|warning|error|critical|off>\n"};
                       }
                       return AdminResponse{200, kText, "active loggers:\n  portcullis: " + it->second + "\n"};
                     }});
  admin_->add_route({"/certs", "certificates in use, in Envoy's JSON shape", false, [this](const AdminRequest&) {
    return AdminResponse{200, kJson, certs_json()};
  }});
  admin_->add_route({"/memory", "heap use as Envoy reports it (glibc malloc figures)", false, [](const AdminRequest&) {
    return AdminResponse{200, kJson, memory_json()};
  }});
  admin_->add_route({"/help", "this list", false, [this](const AdminRequest&) {
    AdminResponse r = admin_->dispatch(AdminRequest{"GET", "/__none__", {}});
    r.status = 200;
    return r;
  }});
}

AdminResponse Server::stats_response(const AdminRequest& req) const {
  server_stats_.uptime.set(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_at_).count());
  std::unique_ptr<RE2> filter;
  if (auto it = req.query.find("filter"); it != req.query.end()) {
    RE2::Options options;
    options.set_log_errors(false);
    filter = std::make_unique<RE2>(it->second, options);
    if (!filter->ok()) return AdminResponse{400, kText, "invalid filter regex: " + filter->error() + "\n"};
  }
  bool json = req.query.contains("format") && req.query.at("format") == "json";
  nlohmann::json stats = nlohmann::json::array();
  std::string text, all = stats_.render_text();
  for (size_t pos = 0; pos < all.size();) {
    size_t nl = all.find('\n', pos);
    std::string_view line(all.data() + pos, nl - pos);
    pos = nl + 1;
    std::string name(line.substr(0, line.rfind(": ")));
    if (filter && !RE2::PartialMatch(name, *filter)) continue;
    if (json) {
      stats.push_back({{"name", name}, {"value", std::stoll(std::string(line.substr(name.size() + 2)))}});
    } else {
      text.append(line).push_back('\n');
    }
  }
  if (json) return AdminResponse{200, kJson, nlohmann::json{{"stats", stats}}.dump(2)};
  return AdminResponse{200, kText, text};
}

std::string Server::server_info_json() const {
  const char* state = server_stats_.state.value() == 0 ? "LIVE" : draining_ ? "DRAINING" : "PRE_INITIALIZING";
  auto uptime = format_uptime(std::chrono::steady_clock::now() - started_at_);
  nlohmann::json j{
      {"version", portcullis_version()},
      {"state", state},
      {"hot_restart_version", "disabled"},
      {"uptime_current_epoch", uptime},
      {"uptime_all_epochs", uptime},
      {"node", {{"id", config_->bootstrap.node_id}, {"cluster", config_->bootstrap.node_cluster}}},
      {"command_line_options",
       {{"config_path", options_.config_path},
        {"concurrency", options_.concurrency},
        {"drain_time", std::to_string(options_.drain_time.count()) + "s"},
        {"log_level", options_.log_level},
        {"log_path", options_.log_path},
        {"mode", options_.mode},
        {"service_node", options_.overrides.service_node},
        {"service_cluster", options_.overrides.service_cluster}}},
  };
  return j.dump(2);
}

std::string Server::listeners_text(bool json) const {
  if (!json) {
    std::string out;
    for (const auto& [name, l] : listeners_) {
      out += name + "::" + l.local.address().to_string() + ":" + std::to_string(l.local.port()) + "\n";
    }
    return out;
  }
  nlohmann::json statuses = nlohmann::json::array();
  for (const auto& [name, l] : listeners_) {
    statuses.push_back({{"name", name},
                        {"local_address",
                         {{"socket_address", {{"address", l.local.address().to_string()}, {"port_value", l.local.port()}}}}}});
  }
  return nlohmann::json{{"listener_statuses", statuses}}.dump(2);
}

std::string Server::certs_json() const {
  auto details_json = [](const mtls::CertificateDetails& d) {
    nlohmann::json sans = nlohmann::json::array();
    for (const auto& u : d.uri_sans) sans.push_back({{"uri", u}});
    for (const auto& n : d.dns_sans) sans.push_back({{"dns", n}});
    int64_t now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    int64_t days = std::max<int64_t>(0, (d.expiration_time - now) / 86400);
    // proto3 JSON writes uint64 as a string, and Timestamps as RFC 3339.
    return nlohmann::json{{"path", d.path},
                          {"serial_number", d.serial_number},
                          {"subject_alt_names", sans},
                          {"days_until_expiration", std::to_string(days)},
                          {"valid_from", rfc3339(std::chrono::system_clock::from_time_t(d.valid_from))},
                          {"expiration_time", rfc3339(std::chrono::system_clock::from_time_t(d.expiration_time))}};
  };
  auto context_json = [&](const mtls::TlsContext& ctx) {
    nlohmann::json chain = nlohmann::json::array(), cas = nlohmann::json::array();
    for (const auto& d : ctx.certificates()) chain.push_back(details_json(d));
    for (const auto& [td, bundle] : ctx.bundles().bundles()) {
      for (const auto& ca : bundle->authorities()) {
        cas.push_back(details_json(mtls::certificate_details(ca.get(), "trust_domain:" + td)));
      }
    }
    return nlohmann::json{{"ca_cert", cas}, {"cert_chain", chain}};
  };
  nlohmann::json certs = nlohmann::json::array();
  for (const auto& ctx : config_->listener_tls) {
    if (ctx) certs.push_back(context_json(*ctx));
  }
  for (const auto& [name, ctx] : config_->cluster_tls) certs.push_back(context_json(*ctx));
  return nlohmann::json{{"certificates", certs}}.dump(2);
}

std::string Server::config_dump_json() const {
  nlohmann::json bootstrap = config::yaml_to_json(config_->bootstrap.document.yaml());
  nlohmann::json j{{"configs",
                    {{{"@type", "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump"},
                      {"bootstrap", bootstrap},
                      {"last_updated", rfc3339(config_loaded_at_)}}}}};
  return j.dump(2);
}

}  // namespace portcullis::proxy
