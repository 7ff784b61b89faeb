#include "mtls/tls_config.h"

#include "config/yaml_file.h"
#include "mtls/spiffe_id.h"

namespace portcullis::mtls {
namespace {

using config::ErrorList;
using config::MapReader;
using config::Node;

std::optional<uint16_t> parse_tls_version(MapReader& r, std::string_view key, ErrorList& errors) {
  std::string v;
  if (!r.string(key, &v)) return std::nullopt;
  if (v == "TLSv1_2") return 0x0303;
  if (v == "TLSv1_3" || v == "TLS_AUTO") return 0x0304;
  auto n = r.get(key);
  errors.add(n->location(), n->path(), "unsupported TLS version '" + v + "' (TLSv1_2 or TLSv1_3)");
  return std::nullopt;
}

void parse_tls_params(const Node& node, TlsContextConfig& out, ErrorList& errors) {
  MapReader r(node, errors);
  if (auto v = parse_tls_version(r, "tls_minimum_protocol_version", errors)) out.min_version = *v;
  if (auto v = parse_tls_version(r, "tls_maximum_protocol_version", errors)) out.max_version = *v;
  if (auto curves = r.get("ecdh_curves")) {
    out.ecdh_curves.clear();
    for (const Node& c : config::read_list(*curves, errors)) {
      auto name = config::read_string(c, errors);
      if (!name) continue;
      if (*name != "X25519" && *name != "P-256" && *name != "P-384" && *name != "P-521") {
        errors.add(c.location(), c.path(), "unsupported curve '" + *name + "' (X25519, P-256, P-384, P-521)");
      }
      out.ecdh_curves.push_back(*name);
    }
  }
  if (auto cs = r.get("cipher_suites")) {
    // TLS 1.3 suites are fixed in BoringSSL; TLS 1.2 suites follow BoringSSL's secure default.
    errors.add(cs->location(), cs->path(), "cipher_suites is not configurable; BoringSSL's defaults apply");
  }
  r.finish();
  if (out.min_version > out.max_version) {
    errors.add(node.location(), node.path(), "tls_minimum_protocol_version is above tls_maximum_protocol_version");
  }
}

void parse_spiffe_validator(const Node& node, TlsContextConfig& out, ErrorList& errors) {
  MapReader r(node, errors);
  std::string name;
  if (r.string("name", &name, true) && name != kSpiffeValidatorName) {
    auto n = r.get("name");
    errors.add(n->location(), n->path(), "unknown certificate validator '" + name + "' (expected " +
                                             std::string(kSpiffeValidatorName) + ")");
    return;
  }
  auto tc = r.get("typed_config", true);
  r.finish();
  if (!tc) return;
  MapReader tr(*tc, errors);
  std::string type;
  if (tr.string("@type", &type, true) && type != kSpiffeValidatorType) {
    auto n = tr.get("@type");
    errors.add(n->location(), n->path(), "wrong @type '" + type + "' (expected '" + std::string(kSpiffeValidatorType) + "')");
  }
  if (auto tb = tr.get("trust_bundles")) {
    errors.add(tb->location(), tb->path(), "trust_bundles (bundle map) is not supported yet; list trust_domains");
  }
  for (const Node& td : tr.list("trust_domains", true)) {
    MapReader dr(td, errors);
    TrustDomainSource src;
    if (dr.string("name", &src.name, true)) {
      if (Status s = validate_trust_domain_name(src.name); !s.ok()) {
        auto n = dr.get("name");
        errors.add(n->location(), n->path(), s.error().message);
      }
    }
    if (auto b = dr.get("trust_bundle", true)) {
      if (auto ds = parse_data_source(*b, errors)) src.bundle = *ds;
    }
    out.trust_domains.push_back(std::move(src));
  }
}

void parse_validation_context(const Node& node, TlsContextConfig& out, ErrorList& errors) {
  MapReader r(node, errors);
  if (auto ca = r.get("trusted_ca")) out.trusted_ca = parse_data_source(*ca, errors);
  for (const Node& m : r.list("match_typed_subject_alt_names")) {
    MapReader mr(m, errors);
    std::string type;
    std::optional<SanMatcher::Type> san_type;
    if (mr.string("san_type", &type, true)) {
      if (type == "URI") san_type = SanMatcher::Type::kUri;
      else if (type == "DNS") san_type = SanMatcher::Type::kDns;
      else {
        auto n = mr.get("san_type");
        errors.add(n->location(), n->path(), "unsupported san_type '" + type + "' (URI or DNS)");
      }
    }
    if (auto matcher = mr.get("matcher", true)) {
      auto sm = config::parse_string_matcher(*matcher, errors);
      if (sm && san_type) out.san_matchers.push_back(SanMatcher{*san_type, std::move(*sm)});
    }
  }
  if (auto cv = r.get("custom_validator_config")) parse_spiffe_validator(*cv, out, errors);
  r.finish();
  if (out.trusted_ca && !out.trust_domains.empty()) {
    errors.add(node.location(), node.path(), "set trusted_ca or the SPIFFE validator's trust_domains, not both");
  }
}

// parse_builtin_secret reads the name of an SdsSecretConfig without sds_config (see BuiltinSecret).
std::optional<BuiltinSecret> parse_builtin_secret(MapReader& r, const Node& node, bool certificate, ErrorList& errors) {
  std::string name;
  if (!r.string("name", &name, true)) return std::nullopt;
  auto name_node = r.get("name");
  auto fail = [&](const std::string& message) -> std::optional<BuiltinSecret> {
    errors.add(name_node->location(), name_node->path(), message);
    return std::nullopt;
  };
  BuiltinSecret out{BuiltinSecret::Kind::kSvid, name, ""};
  if (certificate && name == kBuiltinDefaultSvid) {
    out.kind = BuiltinSecret::Kind::kDefault;
  } else if (!certificate && name == kBuiltinRootCa) {
    out.kind = BuiltinSecret::Kind::kRootCa;
  } else if (!certificate && name == kBuiltinAllBundles) {
    out.kind = BuiltinSecret::Kind::kAllBundles;
  } else if (name.starts_with("spiffe://")) {
    auto id = SpiffeId::parse(name);
    if (!id.ok()) return fail("'" + name + "': " + id.error().message);
    if (certificate && id->is_trust_domain_id()) {
      return fail("'" + name + "' is a trust domain, not a workload SVID; name a SPIFFE ID with a path, or default");
    }
    if (!certificate && !id->is_trust_domain_id()) {
      return fail("'" + name + "' is a workload ID; a validation secret names a trust domain (spiffe://" +
                  std::string(id->trust_domain()) + "), ROOTCA or ALL");
    }
    out.kind = certificate ? BuiltinSecret::Kind::kSvid : BuiltinSecret::Kind::kTrustDomain;
  } else if (certificate) {
    return fail("unknown built-in certificate '" + name + "' (an SdsSecretConfig without sds_config names a SPIFFE ID or default)");
  } else {
    return fail("unknown built-in validation secret '" + name +
                "' (an SdsSecretConfig without sds_config names ROOTCA, ALL or a trust domain such as spiffe://example.org)");
  }
  if (r.string("unattested_fallback", &out.unattested_fallback)) {
    auto fb = r.get("unattested_fallback");
    if (out.kind != BuiltinSecret::Kind::kDefault) {
      errors.add(fb->location(), fb->path(), "only the certificate named default has an unattested_fallback");
      return std::nullopt;
    }
    auto id = SpiffeId::parse(out.unattested_fallback);
    if (!id.ok() || id->is_trust_domain_id()) {
      errors.add(fb->location(), fb->path(), "'" + out.unattested_fallback + "' is not a workload SPIFFE ID" +
                                                 (id.ok() ? "" : ": " + id.error().message));
      return std::nullopt;
    }
  }
  return out;
}

// SdsSecretRef is what an SdsSecretConfig refers to: a file-based secret or the built-in identity.
struct SdsSecretRef {
  std::optional<SdsFile> file;
  std::optional<BuiltinSecret> builtin;
};

SdsSecretRef parse_sds_secret_config(const Node& node, bool certificate, ErrorList& errors) {
  MapReader r(node, errors);
  SdsFile out;
  auto source = r.get("sds_config");
  if (!source) {
    auto builtin = parse_builtin_secret(r, node, certificate, errors);
    r.finish();
    return SdsSecretRef{std::nullopt, std::move(builtin)};
  }
  r.string("name", &out.name, true);
  r.finish();
  MapReader sr(*source, errors);
  std::string api_version;
  sr.string("resource_api_version", &api_version);
  std::chrono::nanoseconds initial_fetch_timeout{};
  sr.duration("initial_fetch_timeout", &initial_fetch_timeout);  // files are read at once
  if (auto pcs = sr.get("path_config_source")) {
    MapReader pr(*pcs, errors);
    pr.string("path", &out.path, true);
    (void)pr.get("watched_directory");  // we watch the file's directory regardless
  } else if (!sr.string("path", &out.path)) {
    errors.add(source->location(), source->path(),
               "only file-based SDS (path_config_source) is supported here; serve gRPC SDS with portcullis' own server");
  }
  sr.finish();
  if (out.name.empty() || out.path.empty()) return {};
  return SdsSecretRef{std::move(out), std::nullopt};
}

void set_validation_ref(SdsSecretRef ref, TlsContextConfig& out) {
  out.validation_sds = std::move(ref.file);
  out.validation_builtin = std::move(ref.builtin);
}

void parse_common(const Node& node, TlsContextConfig& out, ErrorList& errors) {
  MapReader r(node, errors);
  if (auto p = r.get("tls_params")) parse_tls_params(*p, out, errors);
  auto certs = r.list("tls_certificates");
  if (certs.size() > 1) {
    errors.add(node.location(), node.path() + ".tls_certificates", "only one TLS certificate is supported");
  }
  for (const Node& c : certs) {
    MapReader cr(c, errors);
    if (auto chain = cr.get("certificate_chain", true)) out.certificate_chain = parse_data_source(*chain, errors);
    if (auto key = cr.get("private_key", true)) out.private_key = parse_data_source(*key, errors);
  }
  auto sds_certs = r.list("tls_certificate_sds_secret_configs");
  if (sds_certs.size() + certs.size() > 1) {
    errors.add(node.location(), node.path(), "set one certificate: tls_certificates or tls_certificate_sds_secret_configs");
  }
  if (!sds_certs.empty()) {
    SdsSecretRef ref = parse_sds_secret_config(sds_certs[0], true, errors);
    out.certificate_sds = std::move(ref.file);
    out.certificate_builtin = std::move(ref.builtin);
  }
  if (auto vc = r.get("validation_context")) parse_validation_context(*vc, out, errors);
  if (auto vs = r.get("validation_context_sds_secret_config")) set_validation_ref(parse_sds_secret_config(*vs, false, errors), out);
  if (auto cvc = r.get("combined_validation_context")) {
    MapReader cr(*cvc, errors);
    if (auto d = cr.get("default_validation_context", true)) parse_validation_context(*d, out, errors);
    if (auto vs = cr.get("validation_context_sds_secret_config", true)) {
      set_validation_ref(parse_sds_secret_config(*vs, false, errors), out);
    }
  }
  for (const Node& a : r.list("alpn_protocols")) {
    if (auto s = config::read_string(a, errors)) {
      if (s->empty() || s->size() > 255) errors.add(a.location(), a.path(), "ALPN protocol must be 1-255 bytes");
      out.alpn_protocols.push_back(*s);
    }
  }
}

}  // namespace

std::optional<DataSource> parse_data_source(const Node& node, ErrorList& errors) {
  MapReader r(node, errors);
  if (!r.valid()) return std::nullopt;
  DataSource ds;
  bool file = r.string("filename", &ds.filename);
  bool inline_str = r.string("inline_string", &ds.inline_string);
  if (auto b = r.get("inline_bytes")) {
    errors.add(b->location(), b->path(), "inline_bytes is not supported; use inline_string or filename");
    return std::nullopt;
  }
  if (auto e = r.get("environment_variable")) {
    errors.add(e->location(), e->path(), "environment_variable is not supported; use inline_string or filename");
    return std::nullopt;
  }
  r.finish();
  if (file == inline_str) {
    errors.add(node.location(), node.path(), "set exactly one of filename or inline_string");
    return std::nullopt;
  }
  if (file && ds.filename.empty()) {
    errors.add(node.location(), node.path() + ".filename", "must not be empty");
    return std::nullopt;
  }
  return ds;
}

std::optional<TlsContextConfig> parse_tls_transport_socket(const config::TypedExtension& ext, bool downstream,
                                                           config::ErrorList& errors) {
  size_t before = errors.size();
  if (ext.name != kTlsTransportSocketName) {
    errors.add(ext.node.location(), ext.node.path() + ".name",
               "unknown transport socket '" + ext.name + "' (expected " + std::string(kTlsTransportSocketName) + ")");
    return std::nullopt;
  }
  std::string_view expected = downstream ? kDownstreamTlsContextType : kUpstreamTlsContextType;
  if (ext.type_url != expected) {
    errors.add(ext.typed_config.location(), ext.typed_config.path() + ".@type",
               "wrong @type '" + ext.type_url + "' (expected '" + std::string(expected) + "')");
    return std::nullopt;
  }
  TlsContextConfig out;
  out.server = downstream;
  MapReader r(ext.typed_config, errors);
  (void)r.get("@type");
  if (auto c = r.get("common_tls_context")) parse_common(*c, out, errors);
  if (downstream) {
    r.boolean("require_client_certificate", &out.require_client_certificate);
  } else {
    r.string("sni", &out.sni);
  }
  r.finish();
  if (downstream && (!out.certificate_chain || !out.private_key) && !out.certificate_sds && !out.certificate_builtin) {
    errors.add(ext.typed_config.location(), ext.typed_config.path() + ".common_tls_context.tls_certificates",
               "a server TLS context needs a certificate and key");
  }
  if (out.validation_builtin && (out.trusted_ca || !out.trust_domains.empty())) {
    errors.add(ext.typed_config.location(), ext.typed_config.path() + ".common_tls_context",
               "the built-in validation secret '" + out.validation_builtin->name +
                   "' supplies the trust bundles; drop trusted_ca and the SPIFFE validator's trust_domains");
  }
  if (downstream && out.require_client_certificate && !out.verifies_peer()) {
    errors.add(ext.typed_config.location(), ext.typed_config.path() + ".common_tls_context.validation_context",
               "require_client_certificate needs trusted_ca or the SPIFFE validator");
  }
  if (!downstream && !out.verifies_peer()) {
    // Zero trust: an upstream whose identity is not checked is refused rather than silently trusted.
    errors.add(ext.typed_config.location(), ext.typed_config.path() + ".common_tls_context.validation_context",
               "an upstream TLS context must verify the server (trusted_ca or the SPIFFE validator)");
  }
  if (errors.size() != before) return std::nullopt;
  return out;
}

}  // namespace portcullis::mtls

namespace portcullis::mtls {

Result<TlsContextConfig> resolve_sds_files(const TlsContextConfig& config) {
  if (!config.certificate_sds && !config.validation_sds) return config;
  TlsContextConfig out = config;
  ErrorList errors;
  auto resolve = [&](const SdsFile& sds, bool certificate) {
    auto root = config::load_yaml_file(sds.path, 4 * 1024 * 1024, errors);
    if (!root) return;
    MapReader r(*root, errors);
    (void)r.get("version_info");
    (void)r.get("type_url");
    bool found = false;
    for (const Node& res : r.list("resources", true)) {
      MapReader rr(res, errors);
      std::string type, name;
      rr.string("@type", &type);
      rr.string("name", &name);
      // A Secret's other members are fine in the file; only the one we use is read.
      for (const char* member : {"tls_certificate", "validation_context", "session_ticket_keys", "generic_secret"}) {
        (void)rr.get(member);
      }
      if (name != sds.name) continue;
      found = true;
      if (!type.empty() && type != kSecretTypeUrl) {
        errors.add(res.location(), res.path() + ".@type", "expected '" + std::string(kSecretTypeUrl) + "'");
      }
      if (certificate) {
        auto tc = rr.get("tls_certificate", true);
        if (!tc) continue;
        MapReader cr(*tc, errors);
        if (auto chain = cr.get("certificate_chain", true)) out.certificate_chain = parse_data_source(*chain, errors);
        if (auto key = cr.get("private_key", true)) out.private_key = parse_data_source(*key, errors);
      } else if (auto vc = rr.get("validation_context", true)) {
        parse_validation_context(*vc, out, errors);
      }
    }
    if (!found) errors.add(root->location(), "resources", "no secret named '" + sds.name + "'");
  };
  if (config.certificate_sds) resolve(*config.certificate_sds, true);
  if (config.validation_sds) resolve(*config.validation_sds, false);
  if (!errors.empty()) return make_error(ErrorCode::kInvalidArgument, "SDS file: " + errors.format());
  return out;
}

}  // namespace portcullis::mtls
