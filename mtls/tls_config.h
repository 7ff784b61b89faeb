#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "config/bootstrap.h"
#include "config/node.h"
#include "config/string_matcher.h"

namespace portcullis::mtls {

class RevocationPublisher;

inline constexpr std::string_view kTlsTransportSocketName = "envoy.transport_sockets.tls";
inline constexpr std::string_view kDownstreamTlsContextType =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
inline constexpr std::string_view kUpstreamTlsContextType =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
inline constexpr std::string_view kSpiffeValidatorName = "envoy.tls.cert_validator.spiffe";
inline constexpr std::string_view kSpiffeValidatorType =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.SPIFFECertValidatorConfig";

// DataSource is Envoy's `config.core.v3.DataSource`: a file (watched for rotation) or inline text.
struct DataSource {
  std::string filename;
  std::string inline_string;

  bool is_file() const { return !filename.empty(); }
  std::string describe() const { return is_file() ? filename : "<inline>"; }
};

struct SanMatcher {
  enum class Type { kUri, kDns };
  Type type;
  config::StringMatcher matcher;
};

struct TrustDomainSource {
  std::string name;
  DataSource bundle;  // PEM or SPIFFE bundle JSON
};

// SdsFile is an SdsSecretConfig whose secret is served from a file (Envoy's file-based SDS:
// `sds_config: {path_config_source: {path}}`, a DiscoveryResponse in YAML or JSON).
struct SdsFile {
  std::string name;
  std::string path;
};

inline constexpr std::string_view kSecretTypeUrl = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

// TlsContextConfig is a validated DownstreamTlsContext or UpstreamTlsContext.
struct TlsContextConfig {
  bool server = false;
  bool require_client_certificate = false;  // Envoy's default
  std::optional<DataSource> certificate_chain;
  std::optional<DataSource> private_key;
  std::optional<DataSource> trusted_ca;           // validation_context.trusted_ca
  std::vector<TrustDomainSource> trust_domains;   // SPIFFE validator
  std::vector<SanMatcher> san_matchers;           // match_typed_subject_alt_names
  uint16_t min_version = 0x0304;  // TLS 1.3 unless configured otherwise
  uint16_t max_version = 0x0304;
  std::vector<std::string> ecdh_curves = {"X25519", "P-256"};
  std::vector<std::string> alpn_protocols;
  std::string sni;
  std::optional<SdsFile> certificate_sds;  // tls_certificate_sds_secret_configs
  std::optional<SdsFile> validation_sds;   // validation_context_sds_secret_config (maybe combined)
  // revocations is not parsed: the owner (the Server) injects its publisher, and every handshake
  // of a context built from this config rejects a peer whose leaf serial is in the current set.
  // Null: no revocation check (tools, tests).
  std::shared_ptr<const RevocationPublisher> revocations;

  bool verifies_peer() const { return trusted_ca.has_value() || !trust_domains.empty() || validation_sds.has_value(); }
};

// parse_data_source reads a DataSource map (filename or inline_string; inline_bytes and
// environment_variable are refused). nullopt after reporting into `errors`.
std::optional<DataSource> parse_data_source(const config::Node& node, config::ErrorList& errors);

// resolve_sds_files reads the SDS files a config names and returns the config with their secrets
// filled in (certificate and key sources; validation context merged with any default one). Errors
// name the file, line and column.
Result<TlsContextConfig> resolve_sds_files(const TlsContextConfig& config);

// parse_tls_transport_socket validates a `transport_socket` entry named envoy.transport_sockets.tls
// whose @type must be the Downstream (listeners) or Upstream (clusters) context. Every problem goes
// into `errors`; nullopt when there was any.
std::optional<TlsContextConfig> parse_tls_transport_socket(const config::TypedExtension& ext, bool downstream,
                                                           config::ErrorList& errors);

}  // namespace portcullis::mtls
