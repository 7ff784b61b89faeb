#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace portcullis::mtls {

// SpiffeId is a validated SPIFFE ID (`spiffe://<trust-domain><path>`) per the SPIFFE-ID standard
// as go-spiffe enforces it: lowercase `spiffe://` scheme, trust domain of [a-z0-9.-_] (at most 255
// bytes), optional path of `/`-separated segments of [a-zA-Z0-9.-_] with no empty, `.` or `..`
// segment and no trailing slash, no query/fragment/port/userinfo/percent-encoding, at most 2048
// bytes in all. Immutable value type.
class SpiffeId {
 public:
  static constexpr size_t kMaxLength = 2048;
  static constexpr size_t kMaxTrustDomainLength = 255;

  // parse returns the ID or an error naming the first rule `text` breaks.
  static Result<SpiffeId> parse(std::string_view text);
  // trust_domain_id returns `spiffe://<td>` for a bare trust domain name after checking it.
  static Result<SpiffeId> from_trust_domain(std::string_view trust_domain);

  const std::string& str() const { return id_; }
  std::string_view trust_domain() const { return std::string_view(id_).substr(9, td_len_); }
  std::string_view path() const { return std::string_view(id_).substr(9 + td_len_); }
  bool is_trust_domain_id() const { return path().empty(); }
  bool member_of(std::string_view trust_domain_name) const { return trust_domain() == trust_domain_name; }

  bool operator==(const SpiffeId& other) const { return id_ == other.id_; }

 private:
  SpiffeId(std::string id, size_t td_len) : id_(std::move(id)), td_len_(td_len) {}
  std::string id_;
  size_t td_len_;
};

// validate_trust_domain_name checks a bare trust domain name (`example.org`).
Status validate_trust_domain_name(std::string_view name);

}  // namespace portcullis::mtls
