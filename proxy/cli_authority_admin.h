#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace portcullis::proxy {

// AdminCli holds the flags of the operator commands that talk to an authority's admin socket:
//
//   portcullis entry create --spiffe-id ID --selector TYPE:KEY:VALUE ... [--parent-id ID]
//                           [--x509-svid-ttl 1h] [--jwt-svid-ttl 5m] [--dns-name N ...]
//   portcullis entry list [--format table|json]
//   portcullis entry show ID          portcullis entry delete ID
//   portcullis entry update ID [same flags as create; each given one replaces that field]
//   portcullis bundle show [--format pem|spiffe]
//   portcullis token generate [--ttl 10m]
//   portcullis node evict NODE_ID [--reason R]
//
// every one with `--admin-socket PATH` (default /run/portcullis/authority-admin.sock). Filled by
// CLI11 (add_admin_commands), then run by run_admin_command.
struct AdminCli {
  CLI::App* entry = nullptr;
  CLI::App* entry_create = nullptr;
  CLI::App* entry_update = nullptr;
  CLI::App* entry_list = nullptr;
  CLI::App* entry_show = nullptr;
  CLI::App* entry_delete = nullptr;
  CLI::App* bundle_show = nullptr;
  CLI::App* token_generate = nullptr;
  CLI::App* node_evict = nullptr;

  std::string admin_socket = "/run/portcullis/authority-admin.sock";
  std::string format;  // per command: table|json, pem|spiffe, text|json
  uint32_t timeout_s = 10;
  std::string id;
  std::string spiffe_id;
  std::string parent_id;
  std::vector<std::string> selectors;
  std::vector<std::string> dns_names;
  std::string x509_svid_ttl;
  std::string jwt_svid_ttl;
  std::string token_ttl = "10m";
  std::string reason;

  // selected says whether one of these commands was on the command line.
  bool selected() const;
};

// add_admin_commands registers `entry`, `bundle`, `token` and `node` on `app`, writing into `out`.
void add_admin_commands(CLI::App& app, AdminCli& out);

// run_admin_command performs the selected command over the admin socket (h2c gRPC,
// portcullis.authority.v1.AuthorityAdmin), prints the result to stdout and errors to stderr, and
// returns the exit code: 0 ok, 2 bad flags, 5 the socket cannot be reached (or timed out),
// 6 the authority refused the request (not found, invalid, not an admin uid, ...).
int run_admin_command(const AdminCli& cli);

}  // namespace portcullis::proxy
