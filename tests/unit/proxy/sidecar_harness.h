#pragma once

// In-process sidecars for Server tests: minted certificates on disk, a Server built from YAML
// text on two workers, stats and audit records read back with deadlines.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "config/yaml_file.h"
#include "mtls/cert_minter.h"
#include "proxy/server.h"
#include "tests/unit/mtls/test_certs.h"
#include "tests/unit/proxy/proxy_test_net.h"

namespace portcullis::proxy::testing {

using namespace std::chrono_literals;

inline mtls::MintedCert leaf(const std::string& id, const mtls::MintedCert& ca) {
  mtls::CertSpec s;
  s.uri_sans = {id};
  return mtls::testing::must(mtls::mint_certificate(s, &ca));
}

inline std::string serial_of(const mtls::MintedCert& cert) {
  return mtls::certificate_details(cert.cert.get(), "").serial_number;
}

inline int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Pki is example.org's CA and a few SVIDs, written to a temp directory as `<name>.pem/.key`.
class Pki {
 public:
  Pki() {
    char tmpl[] = "/tmp/portcullis-sidecar-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    write("ca.pem", ca.cert_pem());
    write_svid("backend", backend);
    write_svid("frontend", frontend);
    write_svid("sidecar", sidecar);
  }
  ~Pki() { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  // write replaces a file atomically (a rename), as certificate tools do.
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path(name) + ".tmp") << text;
    std::filesystem::rename(path(name) + ".tmp", path(name));
  }
  void write_svid(const std::string& name, const mtls::MintedCert& svid) const {
    write(name + ".pem", svid.cert_pem());
    write(name + ".key", svid.key_pem());
  }

  // tls_context is a transport_socket block (YAML flow) presenting `who`'s SVID from files and
  // trusting example.org's CA through the SPIFFE validator.
  std::string tls_context(bool downstream, const std::string& who) const {
    return transport_socket(downstream, "tls_certificates: [{certificate_chain: {filename: " + path(who + ".pem") +
                                            "}, private_key: {filename: " + path(who + ".key") +
                                            "}}], validation_context: {custom_validator_config: "
                                            "{name: envoy.tls.cert_validator.spiffe, typed_config: {\"@type\": "
                                            "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
                                            "SPIFFECertValidatorConfig, trust_domains: [{name: example.org, "
                                            "trust_bundle: {filename: " + path("ca.pem") + "}}]}}}");
  }
  // builtin_context names the built-in identity: `certificate` (a SPIFFE ID or default) and ROOTCA.
  static std::string builtin_context(bool downstream, const std::string& certificate, const std::string& extra = "") {
    return transport_socket(downstream, "tls_certificate_sds_secret_configs: [{name: \"" + certificate + "\"" + extra +
                                            "}], validation_context_sds_secret_config: {name: ROOTCA}");
  }
  static std::string transport_socket(bool downstream, const std::string& common) {
    return std::string("{name: envoy.transport_sockets.tls, typed_config: {\"@type\": "
                       "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.") +
           (downstream ? "DownstreamTlsContext, require_client_certificate: true" : "UpstreamTlsContext") +
           ", common_tls_context: {" + common + "}}}";
  }
  // identity_block is a static `identity:` block serving `who`'s SVID files.
  std::string identity_block(const std::string& who) const {
    return "identity: {trust_domain: example.org, static: {certificate_chain: {filename: " + path(who + ".pem") +
           "}, private_key: {filename: " + path(who + ".key") + "}, trust_bundle: {filename: " + path("ca.pem") + "}}}\n";
  }

  mtls::MintedCert ca = mtls::testing::must(mtls::mint_certificate(mtls::testing::ca_spec("example.org root", "example.org"), nullptr));
  mtls::MintedCert backend = leaf("spiffe://example.org/backend", ca);
  mtls::MintedCert frontend = leaf("spiffe://example.org/frontend", ca);
  mtls::MintedCert sidecar = leaf("spiffe://example.org/sidecar", ca);

 private:
  std::string dir_;
};

// sidecar_yaml is a config with one tcp_proxy listener `main` (TLS when listener_tls is set) to one
// cluster `up` at 127.0.0.1:upstream_port (TLS when cluster_tls is set), auditing to a file.
inline std::string sidecar_yaml(const std::string& listener_tls, uint16_t upstream_port, const std::string& cluster_tls,
                                const std::string& audit_path, const std::string& extra = "") {
  std::ostringstream y;
  y << extra << "audit: {sinks: [{file: {path: " << audit_path << "}}]}\n"
    << "static_resources:\n  listeners:\n  - name: main\n    stat_prefix: main\n"
    << "    address: {socket_address: {address: 127.0.0.1, port_value: 0}}\n    filter_chains:\n    - filters:\n"
    << "      - {name: envoy.filters.network.tcp_proxy, typed_config: {\"@type\": "
       "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: main, cluster: up}}\n";
  if (!listener_tls.empty()) y << "      transport_socket: " << listener_tls << "\n";
  y << "  clusters:\n  - name: up\n    connect_timeout: 1s\n"
    << "    load_assignment: {cluster_name: up, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: "
    << "{address: 127.0.0.1, port_value: " << upstream_port << "}}}}]}]}\n";
  if (!cluster_tls.empty()) y << "    transport_socket: " << cluster_tls << "\n";
  return y.str();
}

// Sidecar is one started Server on two workers whose listener is named `main`.
class Sidecar {
 public:
  Sidecar(const std::string& yaml, std::string audit_path, mtls::CallerLookup lookup = nullptr)
      : audit_path_(std::move(audit_path)) {
    config::ErrorList errors;
    auto root = config::load_yaml_text(yaml, "sidecar.yaml", errors);
    std::shared_ptr<const ServerConfig> config;
    if (root) config = build_server_config(*root, {}, stats_, errors);
    EXPECT_TRUE(config) << errors.format() << "\n" << yaml;
    if (!config) return;
    ServerOptions options;
    options.concurrency = 2;
    server_ = std::make_unique<Server>(options, stats_, config);
    if (lookup) server_->set_caller_lookup(std::move(lookup));
    Status s = server_->start();
    EXPECT_TRUE(s.ok()) << s.error().message;
    if (s.ok()) port_ = server_->listener_endpoint("main")->port();
  }

  uint16_t port() const { return port_; }
  Server& server() { return *server_; }
  int64_t stat(const std::string& name) const { return stats_.value(name).value_or(-1); }
  // wait_stat waits (bounded) for a counter the workers bump after they act, then returns it.
  int64_t wait_stat(const std::string& name, int64_t want) const {
    for (auto deadline = Clock::now() + 2s; stat(name) < want && Clock::now() < deadline;) {
      std::this_thread::sleep_for(2ms);
    }
    return stat(name);
  }
  // audit_text waits until the audit file holds `needle` (the log writes asynchronously).
  std::string audit_text(const std::string& needle) const {
    std::string text;
    for (auto deadline = Clock::now() + 5s; Clock::now() < deadline;) {
      std::ifstream in(audit_path_);
      text.assign(std::istreambuf_iterator<char>(in), {});
      if (text.find(needle) != std::string::npos) break;
      std::this_thread::sleep_for(10ms);
    }
    return text;
  }

 private:
  StatsStore stats_;
  std::string audit_path_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
};

inline std::shared_ptr<const mtls::TlsContext> client_context(const Pki& pki, const mtls::MintedCert& svid) {
  mtls::TlsContextConfig c;
  c.certificate_chain = mtls::DataSource{"", svid.cert_pem()};
  c.private_key = mtls::DataSource{"", svid.key_pem()};
  c.trust_domains.push_back(mtls::TrustDomainSource{"example.org", mtls::DataSource{"", pki.ca.cert_pem()}});
  auto ctx = mtls::TlsContext::create(c);
  EXPECT_TRUE(ctx.ok()) << (ctx.ok() ? "" : ctx.error().message);
  return ctx.ok() ? ctx.value() : nullptr;
}

// time_to_close waits for the peer to close `client` and returns how long it took since `since`.
inline std::chrono::milliseconds time_to_close(Client& client, Clock::time_point since) {
  while (!client.closed()) {
    if (!client.read_some(2s)) break;
  }
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since);
}

}  // namespace portcullis::proxy::testing
