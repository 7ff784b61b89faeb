#include "proxy/cli_authority_admin.h"

#include <ctime>
#include <iostream>
#include <optional>

#include <nlohmann/json.hpp>

#include "config/node.h"
#include "mtls/trust_bundle.h"
#include "portcullis/authority/v1/authority.pb.h"
#include "proxy/exit_codes.h"
#include "proxy/grpc/blocking_unary_call.h"

namespace portcullis::proxy {
namespace {

namespace v1 = ::portcullis::authority::v1;
constexpr const char* kAdmin = "/portcullis.authority.v1.AuthorityAdmin/";

std::string utc(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string selector_text(const v1::Selector& s) { return s.type() + ":" + s.value(); }

// parse_selector splits TYPE:KEY:VALUE at the first colon, the protocol's {type, value} form.
std::optional<v1::Selector> parse_selector(const std::string& text) {
  size_t first = text.find(':');
  if (first == std::string::npos || first == 0) return std::nullopt;
  size_t second = text.find(':', first + 1);
  if (second == std::string::npos || second == first + 1) return std::nullopt;
  v1::Selector s;
  s.set_type(text.substr(0, first));
  s.set_value(text.substr(first + 1));
  return s;
}

// parse_ttl reads a whole-second duration flag ("0s" asks for the authority's default).
bool parse_ttl(const std::string& flag, const std::string& text, int64_t* out, std::string* out_error) {
  auto d = config::parse_duration(text);
  if (!d || *d % std::chrono::seconds(1) != std::chrono::nanoseconds(0)) {
    *out_error = flag + ": '" + text + "' is not a whole-second duration (e.g. 90s, 5m, 1h)";
    return false;
  }
  *out = std::chrono::duration_cast<std::chrono::seconds>(*d).count();
  return true;
}

// apply_flags writes the fields given on the command line into `e` (an update: only those);
// false with *out_error on a malformed flag value.
bool apply_flags(const AdminCli& cli, bool update, v1::RegistrationEntry& e, std::string* out_error) {
  if (!cli.spiffe_id.empty()) e.set_spiffe_id(cli.spiffe_id);
  if (!update || cli.entry_update->count("--parent-id") > 0) e.set_parent_id(cli.parent_id);
  if (!cli.selectors.empty()) {
    e.clear_selectors();
    for (const auto& text : cli.selectors) {
      auto s = parse_selector(text);
      if (!s) {
        *out_error = "--selector: '" + text + "' is not TYPE:KEY:VALUE (e.g. unix:uid:1000)";
        return false;
      }
      *e.add_selectors() = *s;
    }
  }
  if (!cli.dns_names.empty()) {
    e.clear_dns_names();
    for (const auto& n : cli.dns_names) e.add_dns_names(n);
  }
  int64_t ttl = 0;
  if (!cli.x509_svid_ttl.empty()) {
    if (!parse_ttl("--x509-svid-ttl", cli.x509_svid_ttl, &ttl, out_error)) return false;
    e.set_x509_svid_ttl_seconds(ttl);
  }
  if (!cli.jwt_svid_ttl.empty()) {
    if (!parse_ttl("--jwt-svid-ttl", cli.jwt_svid_ttl, &ttl, out_error)) return false;
    e.set_jwt_svid_ttl_seconds(ttl);
  }
  return true;
}

int usage_error(const std::string& message) {
  std::cerr << "error: " << message << "\n";
  return kExitUsage;
}

nlohmann::json entry_json(const v1::RegistrationEntry& e) {
  nlohmann::json selectors = nlohmann::json::array();
  for (const auto& s : e.selectors()) selectors.push_back(selector_text(s));
  nlohmann::json dns = nlohmann::json::array();
  for (const auto& n : e.dns_names()) dns.push_back(n);
  return {{"id", e.id()},
          {"spiffe_id", e.spiffe_id()},
          {"parent_id", e.parent_id()},
          {"selectors", selectors},
          {"x509_svid_ttl_seconds", e.x509_svid_ttl_seconds()},
          {"jwt_svid_ttl_seconds", e.jwt_svid_ttl_seconds()},
          {"dns_names", dns},
          {"created_at", e.created_at()},
          {"revision", e.revision()}};
}

std::string ttl_text(int64_t seconds) { return seconds == 0 ? "default" : std::to_string(seconds) + "s"; }

void print_entry(const v1::RegistrationEntry& e, const std::string& format) {
  if (format == "json") {
    std::cout << entry_json(e).dump(2) << "\n";
    return;
  }
  std::cout << "Entry ID:       " << e.id() << "\n"
            << "SPIFFE ID:      " << e.spiffe_id() << "\n"
            << "Parent ID:      " << (e.parent_id().empty() ? "(any attested node)" : e.parent_id()) << "\n";
  for (const auto& s : e.selectors()) std::cout << "Selector:       " << selector_text(s) << "\n";
  for (const auto& n : e.dns_names()) std::cout << "DNS name:       " << n << "\n";
  std::cout << "X509-SVID TTL:  " << ttl_text(e.x509_svid_ttl_seconds()) << "\n"
            << "JWT-SVID TTL:   " << ttl_text(e.jwt_svid_ttl_seconds()) << "\n"
            << "Created:        " << utc(e.created_at()) << "\n"
            << "Revision:       " << e.revision() << "\n";
}

void print_entries(const v1::ListEntriesResponse& list, const std::string& format) {
  if (format == "json") {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& e : list.entries()) out.push_back(entry_json(e));
    std::cout << out.dump(2) << "\n";
    return;
  }
  std::cout << "ENTRY ID\tSPIFFE ID\tPARENT ID\tSELECTORS\n";
  for (const auto& e : list.entries()) {
    std::string selectors;
    for (const auto& s : e.selectors()) selectors += (selectors.empty() ? "" : ",") + selector_text(s);
    std::cout << e.id() << "\t" << e.spiffe_id() << "\t" << (e.parent_id().empty() ? "*" : e.parent_id()) << "\t"
              << selectors << "\n";
  }
  std::cout << list.entries_size() << " entr" << (list.entries_size() == 1 ? "y" : "ies") << "\n";
}

void print_bundle(const v1::Bundle& b, const std::string& format) {
  if (format == "spiffe") {
    std::cout << b.spiffe_bundle_json();
    if (!b.spiffe_bundle_json().empty() && b.spiffe_bundle_json().back() != '\n') std::cout << "\n";
    return;
  }
  for (const auto& der : b.x509_authorities()) std::cout << mtls::der_to_pem("CERTIFICATE", der);
}

void print_token(const v1::GenerateJoinTokenResponse& t, const std::string& format) {
  if (format == "json") {
    std::cout << nlohmann::json{{"token", t.token()}, {"token_id", t.token_id()}, {"expires_at", t.expires_at()}}.dump(2)
              << "\n";
    return;
  }
  std::cout << "Token:      " << t.token() << "\n"
            << "Token ID:   " << t.token_id() << "\n"
            << "Expires:    " << utc(t.expires_at()) << "\n";
}

// Runs one admin call; on failure prints why and sets *out_rc.
template <typename Req, typename Resp>
std::optional<Resp> call(const AdminCli& cli, const char* method, const Req& req, int* out_rc) {
  config::Address address{config::PipeAddress{cli.admin_socket, 0}};
  auto result = blocking_unary_call<Req, Resp>(address, std::string(kAdmin) + method, req,
                                               std::chrono::seconds(cli.timeout_s));
  if (result.ok()) return std::move(result.value());
  const grpc::GrpcStatus status = result.status();
  bool unreachable = status.code == grpc::StatusCode::kUnavailable || status.code == grpc::StatusCode::kDeadlineExceeded;
  std::cerr << "error: " << (unreachable ? "admin socket " + cli.admin_socket + ": " : std::string())
            << grpc::status_code_name(status.code) << ": " << status.message << "\n";
  *out_rc = unreachable ? kExitUnreachable : kExitRefused;
  return std::nullopt;
}

int run_entry(const AdminCli& cli) {
  int rc = kExitOk;
  if (*cli.entry_create) {
    v1::CreateEntryRequest req;
    std::string error;
    if (!apply_flags(cli, false, *req.mutable_entry(), &error)) return usage_error(error);
    if (auto e = call<v1::CreateEntryRequest, v1::RegistrationEntry>(cli, "CreateEntry", req, &rc)) {
      print_entry(*e, cli.format);
    }
  } else if (*cli.entry_update) {
    // Fetch, change what the flags name, send the whole entry back (its revision lets the
    // authority refuse an update that raced another one).
    v1::GetEntryRequest get;
    get.set_id(cli.id);
    auto current = call<v1::GetEntryRequest, v1::RegistrationEntry>(cli, "GetEntry", get, &rc);
    if (!current) return rc;
    v1::UpdateEntryRequest req;
    *req.mutable_entry() = *current;
    std::string error;
    if (!apply_flags(cli, true, *req.mutable_entry(), &error)) return usage_error(error);
    if (auto e = call<v1::UpdateEntryRequest, v1::RegistrationEntry>(cli, "UpdateEntry", req, &rc)) {
      print_entry(*e, cli.format);
    }
  } else if (*cli.entry_list) {
    if (auto list = call<v1::ListEntriesRequest, v1::ListEntriesResponse>(cli, "ListEntries", {}, &rc)) {
      print_entries(*list, cli.format);
    }
  } else if (*cli.entry_show) {
    v1::GetEntryRequest req;
    req.set_id(cli.id);
    if (auto e = call<v1::GetEntryRequest, v1::RegistrationEntry>(cli, "GetEntry", req, &rc)) print_entry(*e, cli.format);
  } else if (*cli.entry_delete) {
    v1::DeleteEntryRequest req;
    req.set_id(cli.id);
    if (call<v1::DeleteEntryRequest, v1::DeleteEntryResponse>(cli, "DeleteEntry", req, &rc)) {
      std::cout << "Deleted entry " << cli.id << "\n";
    }
  }
  return rc;
}

CLI::App* with_socket(CLI::App* cmd, AdminCli& out) {
  cmd->add_option("--admin-socket", out.admin_socket, "The authority's admin Unix socket")->capture_default_str();
  cmd->add_option("--timeout-s", out.timeout_s, "Give up after this many seconds (default 10)")
      ->check(CLI::Range(1u, 3600u));
  return cmd;
}

void add_entry_fields(CLI::App* cmd, AdminCli& out, bool create) {
  auto* id = cmd->add_option("--spiffe-id", out.spiffe_id, "The SPIFFE ID the entry issues");
  auto* sel = cmd->add_option("--selector", out.selectors, "TYPE:KEY:VALUE the workload must have (repeat: all must match)")
                  ->allow_extra_args(false);
  if (create) {
    id->required();
    sel->required();
  }
  cmd->add_option("--parent-id", out.parent_id, "Node SPIFFE ID whose workloads may get it (default: any attested node)");
  cmd->add_option("--x509-svid-ttl", out.x509_svid_ttl, "X.509-SVID lifetime, e.g. 1h (default: the authority's)");
  cmd->add_option("--jwt-svid-ttl", out.jwt_svid_ttl, "JWT-SVID lifetime, e.g. 5m (default: the authority's)");
  cmd->add_option("--dns-name", out.dns_names, "A DNS SAN for the X.509-SVID (repeatable)")->allow_extra_args(false);
  cmd->add_option("--format", out.format, "table or json")->check(CLI::IsMember({"table", "json"}));
}

}  // namespace

bool AdminCli::selected() const {
  return (entry && *entry) || (bundle_show && *bundle_show) || (token_generate && *token_generate) ||
         (node_evict && *node_evict);
}

void add_admin_commands(CLI::App& app, AdminCli& out) {
  out.entry = app.add_subcommand("entry", "Manage registration entries on an authority (admin socket)");
  out.entry->require_subcommand(1);
  out.entry_create = with_socket(out.entry->add_subcommand("create", "Create a registration entry"), out);
  add_entry_fields(out.entry_create, out, true);
  out.entry_update = with_socket(out.entry->add_subcommand("update", "Change an entry: each given flag replaces that field"), out);
  out.entry_update->add_option("id", out.id, "Entry ID")->required();
  add_entry_fields(out.entry_update, out, false);
  out.entry_list = with_socket(out.entry->add_subcommand("list", "List every registration entry"), out);
  out.entry_list->add_option("--format", out.format, "table or json")->check(CLI::IsMember({"table", "json"}));
  out.entry_show = with_socket(out.entry->add_subcommand("show", "Show one entry"), out);
  out.entry_show->add_option("id", out.id, "Entry ID")->required();
  out.entry_show->add_option("--format", out.format, "table or json")->check(CLI::IsMember({"table", "json"}));
  out.entry_delete = with_socket(out.entry->add_subcommand("delete", "Delete an entry"), out);
  out.entry_delete->add_option("id", out.id, "Entry ID")->required();

  auto* bundle = app.add_subcommand("bundle", "The authority's trust bundle");
  bundle->require_subcommand(1);
  out.bundle_show = with_socket(bundle->add_subcommand("show", "Print the trust bundle (a sidecar's bootstrap_bundle)"), out);
  out.bundle_show->add_option("--format", out.format, "pem (default) or spiffe (SPIFFE bundle JSON)")
      ->check(CLI::IsMember({"pem", "spiffe"}));

  auto* token = app.add_subcommand("token", "Node join tokens");
  token->require_subcommand(1);
  out.token_generate = with_socket(token->add_subcommand("generate", "Create a one-time join token for a node"), out);
  out.token_generate->add_option("--ttl", out.token_ttl, "How long the token stays usable (default 10m)");
  out.token_generate->add_option("--format", out.format, "text or json")->check(CLI::IsMember({"text", "json"}));

  auto* node = app.add_subcommand("node", "Attested nodes");
  node->require_subcommand(1);
  out.node_evict = with_socket(
      node->add_subcommand("evict", "Cut a node off: refuse it from now on and revoke every SVID issued to it"), out);
  out.node_evict->add_option("node_id", out.id, "Node SPIFFE ID (spiffe://<td>/node/<attestation>/<id>)")->required();
  out.node_evict->add_option("--reason", out.reason, "Why (kept with the eviction and in the audit log)");
}

int run_admin_command(const AdminCli& cli) {
  if (cli.entry && *cli.entry) return run_entry(cli);
  int rc = kExitOk;
  if (*cli.bundle_show) {
    if (auto b = call<v1::GetBundleRequest, v1::Bundle>(cli, "GetBundle", {}, &rc)) print_bundle(*b, cli.format);
  } else if (*cli.token_generate) {
    v1::GenerateJoinTokenRequest req;
    int64_t ttl = 0;
    std::string error;
    if (!parse_ttl("--ttl", cli.token_ttl, &ttl, &error)) return usage_error(error);
    req.set_ttl_seconds(ttl);
    if (auto t = call<v1::GenerateJoinTokenRequest, v1::GenerateJoinTokenResponse>(cli, "GenerateJoinToken", req, &rc)) {
      print_token(*t, cli.format);
    }
  } else if (*cli.node_evict) {
    v1::EvictNodeRequest req;
    req.set_node_id(cli.id);
    req.set_reason(cli.reason);
    if (auto r = call<v1::EvictNodeRequest, v1::EvictNodeResponse>(cli, "EvictNode", req, &rc)) {
      std::cout << "Evicted node " << cli.id << " (" << r->revoked() << " SVID serial" << (r->revoked() == 1 ? "" : "s")
                << " revoked)\n";
    }
  }
  return rc;
}

}  // namespace portcullis::proxy
