#include "mtls/tls_context.h"

#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/pool.h>
#include <openssl/x509v3.h>

#include <openssl/sha.h>

#include <atomic>
#include <ctime>
#include <fstream>
#include <mutex>

#include "common/digest.h"
#include "mtls/revocation_set.h"
#include "mtls/ssl_error.h"
#include "mtls/tls_connection.h"
#include "mtls/verified_chain_cache.h"

namespace portcullis::mtls {
namespace {

constexpr size_t kMaxDataSourceBytes = 4 * 1024 * 1024;

Error tls_error(const std::string& what) {
  std::string detail = drain_ssl_errors();
  return make_error(ErrorCode::kInvalidArgument, detail.empty() ? what : what + ": " + detail);
}

// One process-wide pool: every connection from the same peer shares one copy of its certificates in
// its session instead of holding its own (the pool must outlive every SSL_CTX, so it is never freed).
CRYPTO_BUFFER_POOL* certificate_pool() {
  static CRYPTO_BUFFER_POOL* pool = CRYPTO_BUFFER_POOL_new();
  return pool;
}

Result<bssl::UniquePtr<CRYPTO_BUFFER>> to_buffer(X509* cert) {
  uint8_t* der = nullptr;
  int len = i2d_X509(cert, &der);
  if (len <= 0) return tls_error("encoding certificate");
  bssl::UniquePtr<uint8_t> owned(der);
  bssl::UniquePtr<CRYPTO_BUFFER> buf(CRYPTO_BUFFER_new(der, static_cast<size_t>(len), certificate_pool()));
  if (!buf) return tls_error("CRYPTO_BUFFER_new");
  return buf;
}

int64_t asn1_time_to_unix(const ASN1_TIME* t) {
  int days = 0, seconds = 0;
  bssl::UniquePtr<ASN1_TIME> epoch(ASN1_TIME_set(nullptr, 0));
  if (!ASN1_TIME_diff(&days, &seconds, epoch.get(), t)) return 0;
  return static_cast<int64_t>(days) * 86400 + seconds;
}

// The server picks the first of our protocols the client also offers (Envoy's behaviour).
int select_alpn(SSL* ssl, const uint8_t** out, uint8_t* out_len, const uint8_t* in, unsigned in_len, void* arg) {
  const auto* protos = static_cast<const std::vector<std::string>*>(arg);
  for (const std::string& ours : *protos) {
    for (unsigned i = 0; i < in_len;) {
      uint8_t len = in[i];
      if (i + 1 + len > in_len) break;
      if (len == ours.size() && std::equal(ours.begin(), ours.end(), in + i + 1)) {
        *out = in + i + 1;
        *out_len = len;
        return SSL_TLSEXT_ERR_OK;
      }
      i += 1 + len;
    }
  }
  return SSL_TLSEXT_ERR_NOACK;
}

enum ssl_verify_result_t custom_verify(SSL* ssl, uint8_t* out_alert) {
  auto* conn = static_cast<TlsConnection*>(SSL_get_ex_data(ssl, TlsContext::connection_ex_index()));
  if (conn == nullptr) {
    *out_alert = SSL_AD_INTERNAL_ERROR;
    return ssl_verify_invalid;
  }
  if (!peer_sent_certificates(ssl) && conn->context().server() && !conn->context().config().require_client_certificate) {
    return ssl_verify_ok;  // client certificate optional and absent: no identity
  }
  PeerIdentity identity;
  SvidVerifyError error;
  if (!conn->context().verify_presented_chain(ssl, &identity, &error)) {
    *out_alert = error.reason == SvidRejection::kExpired          ? SSL_AD_CERTIFICATE_EXPIRED
                 : error.reason == SvidRejection::kRevoked        ? SSL_AD_CERTIFICATE_REVOKED
                 : error.reason == SvidRejection::kUnknownCa ||
                           error.reason == SvidRejection::kUnknownTrustDomain
                     ? SSL_AD_UNKNOWN_CA
                     : SSL_AD_BAD_CERTIFICATE;
    conn->record_verification(std::nullopt, std::move(error));
    return ssl_verify_invalid;
  }
  conn->record_verification(std::move(identity), std::nullopt);
  return ssl_verify_ok;
}

// TLS 1.3 tickets arrive after the handshake; hand each to the connection's session cache.
int on_new_session(SSL* ssl, SSL_SESSION* session) {
  auto* conn = static_cast<TlsConnection*>(SSL_get_ex_data(ssl, TlsContext::connection_ex_index()));
  return conn != nullptr && conn->store_session(session) ? 1 : 0;
}


}  // namespace

bool peer_sent_certificates(const SSL* ssl) {
  const STACK_OF(CRYPTO_BUFFER)* bufs = SSL_get0_peer_certificates(ssl);
  return bufs != nullptr && sk_CRYPTO_BUFFER_num(bufs) > 0;
}

namespace {

ChainDigest chain_digest(const SSL* ssl) {
  SHA256_CTX sha;
  SHA256_Init(&sha);
  if (const STACK_OF(CRYPTO_BUFFER)* bufs = SSL_get0_peer_certificates(ssl)) {
    for (size_t i = 0; i < sk_CRYPTO_BUFFER_num(bufs); ++i) {
      const CRYPTO_BUFFER* b = sk_CRYPTO_BUFFER_value(bufs, i);
      uint64_t len = CRYPTO_BUFFER_len(b);
      SHA256_Update(&sha, &len, sizeof len);
      SHA256_Update(&sha, CRYPTO_BUFFER_data(b), len);
    }
  }
  ChainDigest out;
  SHA256_Final(out.data(), &sha);
  return out;
}

}  // namespace

uint64_t TlsContext::next_id() {
  static std::atomic<uint64_t> counter{0};
  return ++counter;
}

bool TlsContext::verify_presented_chain(const SSL* ssl, PeerIdentity* out_identity, SvidVerifyError* out_error) const {
  const ChainDigest digest = chain_digest(ssl);
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  if (auto hit = VerifiedChainCache::lookup(id_, digest, now)) {
    *out_identity = std::move(*hit);
    // The cache remembers a chain's verdict, not its revocation status: that changes under it.
    return !revoked(*out_identity, out_error);
  }
  PeerChain chain = parse_peer_chain(ssl);
  if (!verify_peer(chain.certs, out_identity, out_error)) return false;
  if (revoked(*out_identity, out_error)) return false;  // a revoked chain is not worth a cache slot
  // Usable while every certificate of the chain is, with the verifier's clock-skew allowance.
  int64_t from = INT64_MIN, until = INT64_MAX;
  for (X509* cert : chain.certs) {
    from = std::max(from, asn1_time_to_unix(X509_get0_notBefore(cert)));
    until = std::min(until, asn1_time_to_unix(X509_get0_notAfter(cert)));
  }
  const int64_t skew = VerifyOptions{}.clock_skew.count();
  VerifiedChainCache::insert(id_, digest, *out_identity, from - skew, until + skew, now);
  return true;
}

bool TlsContext::revoked(const PeerIdentity& identity, SvidVerifyError* out_error) const {
  if (!config_.revocations) return false;
  auto set = config_.revocations->current();  // one atomic load per handshake
  if (set->empty_set() || !set->revoked(identity.serial)) return false;
  *out_error = SvidVerifyError{SvidRejection::kRevoked, identity.spiffe_id + " presented revoked certificate serial " +
                                                           identity.serial};
  return true;
}

PeerChain parse_peer_chain(const SSL* ssl) {
  PeerChain out;
  if (const STACK_OF(CRYPTO_BUFFER)* bufs = SSL_get0_peer_certificates(ssl)) {
    for (size_t i = 0; i < sk_CRYPTO_BUFFER_num(bufs); ++i) {
      bssl::UniquePtr<X509> cert(X509_parse_from_buffer(sk_CRYPTO_BUFFER_value(bufs, i)));
      if (!cert) break;  // an unparsable certificate ends the chain; verification then fails
      out.certs.push_back(cert.get());
      out.owned.push_back(std::move(cert));
    }
  }
  drain_ssl_errors();
  return out;
}

CertificateDetails certificate_details(X509* cert, std::string path) {
  CertificateDetails d;
  d.path = std::move(path);
  bssl::UniquePtr<BIGNUM> bn(ASN1_INTEGER_to_BN(X509_get_serialNumber(cert), nullptr));
  if (bn) {
    bssl::UniquePtr<char> hex(BN_bn2hex(bn.get()));
    d.serial_number = hex.get();
    for (char& c : d.serial_number) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  d.uri_sans = subject_alt_names(cert, GEN_URI);
  d.dns_sans = subject_alt_names(cert, GEN_DNS);
  d.valid_from = asn1_time_to_unix(X509_get0_notBefore(cert));
  d.expiration_time = asn1_time_to_unix(X509_get0_notAfter(cert));
  return d;
}

Result<std::string> read_data_source(const DataSource& source) {
  if (!source.is_file()) return source.inline_string;
  std::ifstream in(source.filename, std::ios::binary);
  if (!in) return make_error(ErrorCode::kIo, "cannot read " + source.filename);
  // Read in small steps: a certificate is a few KiB, and sizing the string for the limit up front
  // made every (re)load touch 4 MiB.
  std::string text;
  char chunk[16384];
  while (text.size() <= kMaxDataSourceBytes && in.read(chunk, sizeof(chunk)).gcount() > 0) {
    text.append(chunk, static_cast<size_t>(in.gcount()));
  }
  if (text.size() > kMaxDataSourceBytes) return make_error(ErrorCode::kInvalidArgument, source.filename + " is larger than 4 MiB");
  return text;
}

std::vector<std::string> TlsContext::watched_files() const {
  std::vector<std::string> out;
  auto add = [&](const std::optional<DataSource>& ds) {
    if (ds && ds->is_file()) out.push_back(ds->filename);
  };
  add(config_.certificate_chain);
  add(config_.private_key);
  add(config_.trusted_ca);
  for (const auto& td : config_.trust_domains) add(td.bundle);
  if (source_config_.certificate_sds) out.push_back(source_config_.certificate_sds->path);
  if (source_config_.validation_sds) out.push_back(source_config_.validation_sds->path);
  return out;
}

int TlsContext::connection_ex_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

Result<std::shared_ptr<const TlsContext>> TlsContext::create(const TlsContextConfig& config) {
  auto effective = resolve_sds_files(config);
  if (!effective.ok()) return effective.error();
  std::shared_ptr<TlsContext> ctx(new TlsContext(config, std::move(effective.value())));
  // An SDS file may change only matchers: its own text is part of what a rotation compares.
  for (const auto* sds : {config.certificate_sds ? &*config.certificate_sds : nullptr,
                          config.validation_sds ? &*config.validation_sds : nullptr}) {
    if (sds == nullptr) continue;
    auto text = read_data_source(DataSource{sds->path, ""});
    if (text.ok()) ctx->sources_ += *text + '\0';
  }
  // The buffers method keeps peer certificates as DER only: we verify them ourselves, and a parsed X509
  // kept in every session would cost several KiB per idle connection.
  ctx->ctx_.reset(SSL_CTX_new(TLS_with_buffers_method()));
  if (!ctx->ctx_) return tls_error("SSL_CTX_new");
  SSL_CTX_set0_buffer_pool(ctx->ctx_.get(), certificate_pool());
  if (Status s = ctx->load_certificate(); !s.ok()) return s.error();
  if (Status s = ctx->load_bundles(); !s.ok()) return s.error();
  if (Status s = ctx->configure_ctx(); !s.ok()) return s.error();
  ctx->source_digest_ = sha256_hex(ctx->sources_);
  ctx->sources_.clear();
  ctx->sources_.shrink_to_fit();
  return std::shared_ptr<const TlsContext>(std::move(ctx));
}

Status TlsContext::load_certificate() {
  if (!config_.certificate_chain) return {};
  auto chain_pem = read_data_source(*config_.certificate_chain);
  if (!chain_pem.ok()) return chain_pem.error();
  auto key_pem = read_data_source(*config_.private_key);
  if (!key_pem.ok()) return key_pem.error();
  sources_ += *chain_pem + '\0' + *key_pem + '\0';
  auto certs = parse_pem_certificates(*chain_pem);
  if (!certs.ok()) return make_error(ErrorCode::kInvalidArgument, config_.certificate_chain->describe() + ": " + certs.error().message);
  if (certs->empty()) return make_error(ErrorCode::kInvalidArgument, config_.certificate_chain->describe() + ": no PEM certificate");
  bssl::UniquePtr<BIO> bio(BIO_new_mem_buf(key_pem->data(), static_cast<int>(key_pem->size())));
  bssl::UniquePtr<EVP_PKEY> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return tls_error(config_.private_key->describe() + ": no usable PEM private key");
  std::vector<bssl::UniquePtr<CRYPTO_BUFFER>> buffers;
  std::vector<CRYPTO_BUFFER*> chain;
  for (const auto& cert : *certs) {
    auto buf = to_buffer(cert.get());
    if (!buf.ok()) return buf.error();
    chain.push_back(buf->get());
    buffers.push_back(std::move(buf.value()));
  }
  if (!SSL_CTX_set_chain_and_key(ctx_.get(), chain.data(), chain.size(), key.get(), nullptr) ||
      !SSL_CTX_check_private_key(ctx_.get())) {
    return tls_error("private key " + config_.private_key->describe() + " does not match certificate " +
                     config_.certificate_chain->describe());
  }
  certificates_.push_back(certificate_details((*certs)[0].get(), config_.certificate_chain->describe()));
  return {};
}

Status TlsContext::load_bundles() {
  auto load = [this](std::string td, const DataSource& src) -> Status {
    auto text = read_data_source(src);
    if (!text.ok()) return text.error();
    sources_ += td + '\0' + *text + '\0';
    size_t first = text->find_first_not_of(" \t\r\n");
    auto bundle = (first != std::string::npos && (*text)[first] == '{' && td != TrustBundleSet::kAnyTrustDomain)
                      ? TrustBundle::from_spiffe_json(td, *text)
                      : TrustBundle::from_pem(td, *text);
    if (!bundle.ok()) return make_error(ErrorCode::kInvalidArgument, src.describe() + ": " + bundle.error().message);
    bundles_.add(std::move(bundle.value()));
    return {};
  };
  if (config_.trusted_ca) {
    if (Status s = load(std::string(TrustBundleSet::kAnyTrustDomain), *config_.trusted_ca); !s.ok()) return s;
  }
  for (const auto& td : config_.trust_domains) {
    if (Status s = load(td.name, td.bundle); !s.ok()) return s;
  }
  if (config_.validation_sds && bundles_.size() == 0) {
    return make_error(ErrorCode::kInvalidArgument, "SDS validation secret '" + config_.validation_sds->name +
                                                       "' holds no trusted_ca or SPIFFE trust domains");
  }
  return {};
}

Status TlsContext::configure_ctx() {
  SSL_CTX* ctx = ctx_.get();
  if (!SSL_CTX_set_min_proto_version(ctx, config_.min_version) || !SSL_CTX_set_max_proto_version(ctx, config_.max_version)) {
    return tls_error("setting TLS versions");
  }
  std::string curves;
  for (const auto& c : config_.ecdh_curves) curves += (curves.empty() ? "" : ":") + c;
  if (!SSL_CTX_set1_curves_list(ctx, curves.c_str())) return tls_error("setting curves " + curves);
  // Partial writes let the proxy hand SSL_write a large batch and keep what did not fit.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (!config_.alpn_protocols.empty()) {
    if (config_.server) {
      SSL_CTX_set_alpn_select_cb(ctx, select_alpn, const_cast<std::vector<std::string>*>(&config_.alpn_protocols));
    } else {
      std::string wire;
      for (const auto& p : config_.alpn_protocols) wire += static_cast<char>(p.size()) + p;
      if (SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const uint8_t*>(wire.data()), wire.size()) != 0) {
        return tls_error("setting ALPN");
      }
    }
  }
  if (config_.verifies_peer()) {
    int mode = SSL_VERIFY_PEER;
    if (config_.server && config_.require_client_certificate) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_custom_verify(ctx, mode, custom_verify);
    // A resumed session must still carry an identity that verifies now (expiry, bundle changes).
    SSL_CTX_set_reverify_on_resume(ctx, 1);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  if (!config_.server) {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
  }
  return {};
}

bool TlsContext::verify_peer(std::span<X509* const> chain, PeerIdentity* out_identity, SvidVerifyError* out_error) const {
  if (!verify_x509_svid(chain, bundles_, VerifyOptions{}, out_identity, out_error)) return false;
  if (config_.san_matchers.empty()) return true;
  std::vector<std::string> dns;
  for (const SanMatcher& m : config_.san_matchers) {
    if (m.type == SanMatcher::Type::kUri && m.matcher.matches(out_identity->spiffe_id)) return true;
    if (m.type == SanMatcher::Type::kDns) {
      if (dns.empty()) dns = subject_alt_names(chain[0], GEN_DNS);
      for (const auto& d : dns) {
        if (m.matcher.matches(d)) return true;
      }
    }
  }
  *out_error = SvidVerifyError{SvidRejection::kSanMismatch, out_identity->spiffe_id + " matches no match_typed_subject_alt_names entry"};
  return false;
}

}  // namespace portcullis::mtls
