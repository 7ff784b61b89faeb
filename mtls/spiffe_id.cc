#include "mtls/spiffe_id.h"

namespace portcullis::mtls {
namespace {

constexpr std::string_view kScheme = "spiffe://";

bool is_trust_domain_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

bool is_path_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
         c == '_';
}

Error invalid(std::string message) { return make_error(ErrorCode::kInvalidArgument, std::move(message)); }

Status check_trust_domain_chars(std::string_view td) {
  if (td.empty()) return invalid("trust domain is missing");
  if (td.size() > SpiffeId::kMaxTrustDomainLength) return invalid("trust domain is longer than 255 bytes");
  for (char c : td) {
    if (c == ':') return invalid("trust domain must not carry a port");
    if (c == '@') return invalid("trust domain must not carry userinfo");
    if (c == '%') return invalid("trust domain must not be percent-encoded");
    if (c >= 'A' && c <= 'Z') return invalid("trust domain must be lowercase");
    if (!is_trust_domain_char(c)) return invalid("trust domain has a character outside [a-z0-9.-_]");
  }
  return {};
}

Status check_path(std::string_view path) {
  if (path.empty()) return {};
  if (path.front() != '/') return invalid("path must start with '/'");
  size_t start = 1;
  for (;;) {
    size_t end = path.find('/', start);
    std::string_view segment = path.substr(start, end == std::string_view::npos ? path.npos : end - start);
    if (segment.empty()) {
      return invalid(end == std::string_view::npos ? "path must not end with '/'" : "path has an empty segment");
    }
    if (segment == "." || segment == "..") return invalid("path has a '.' or '..' segment");
    for (char c : segment) {
      if (c == '%') return invalid("path must not be percent-encoded");
      if (!is_path_char(c)) return invalid("path has a character outside [a-zA-Z0-9.-_]");
    }
    if (end == std::string_view::npos) return {};
    start = end + 1;
  }
}

}  // namespace

Status validate_trust_domain_name(std::string_view name) { return check_trust_domain_chars(name); }

Result<SpiffeId> SpiffeId::parse(std::string_view text) {
  if (text.empty()) return invalid("SPIFFE ID is empty");
  if (text.size() > kMaxLength) return invalid("SPIFFE ID is longer than 2048 bytes");
  if (!text.starts_with(kScheme)) return invalid("scheme must be 'spiffe://'");
  std::string_view rest = text.substr(kScheme.size());
  if (rest.find_first_of("?#") != std::string_view::npos) return invalid("SPIFFE ID must not have a query or fragment");
  size_t slash = rest.find('/');
  std::string_view td = rest.substr(0, slash);
  if (Status s = check_trust_domain_chars(td); !s.ok()) return s.error();
  if (slash != std::string_view::npos) {
    if (Status s = check_path(rest.substr(slash)); !s.ok()) return s.error();
  }
  return SpiffeId(std::string(text), td.size());
}

Result<SpiffeId> SpiffeId::from_trust_domain(std::string_view trust_domain) {
  if (Status s = check_trust_domain_chars(trust_domain); !s.ok()) return s.error();
  return SpiffeId(std::string(kScheme) + std::string(trust_domain), trust_domain.size());
}

}  // namespace portcullis::mtls
