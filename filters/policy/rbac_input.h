#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include <netinet/in.h>

namespace portcullis::filters {

// IpAddress is a v4 or v6 address in network byte order, comparable without any socket API.
struct IpAddress {
  uint8_t bytes[16] = {};
  bool v6 = false;

  // parse accepts the textual forms inet_pton accepts ("10.0.0.1", "::1"); false otherwise.
  bool parse(std::string_view text);
};

// HeaderValueSink receives the values of one header, one call per value, in arrival order.
class HeaderValueSink {
 public:
  virtual void add(std::string_view value) = 0;

 protected:
  ~HeaderValueSink() = default;
};

// HttpHeaderLookup is a request's header map as RBAC reads it. `values` hands every value of the
// header named `lower_name` (already lower-cased, as Envoy's header maps are) to `out`, and hands
// nothing when the header is absent; a present header with an empty value is one "" value. The
// engine answers `:method`, `:path`, `:authority` and `:scheme` from HttpRequestView itself and asks
// here for every other name. Called on the evaluating thread only; must not allocate. Envoy folds
// HTTP/1 `Host` into `:authority`, so a lookup mirroring Envoy has no `host` entry.
class HttpHeaderLookup {
 public:
  virtual void values(std::string_view lower_name, HeaderValueSink& out) const = 0;

 protected:
  ~HttpHeaderLookup() = default;
};

// FlatHeaderLookup is an HttpHeaderLookup over (lower-cased name, value) pairs it does not own,
// scanned linearly: right for the few dozen headers of a request and for ext_authz's CheckRequest
// header map (whose duplicates Envoy has already merged with ",").
class FlatHeaderLookup final : public HttpHeaderLookup {
 public:
  using Entry = std::pair<std::string_view, std::string_view>;
  explicit FlatHeaderLookup(std::span<const Entry> entries) : entries_(entries) {}
  void values(std::string_view lower_name, HeaderValueSink& out) const override {
    for (const Entry& e : entries_) {
      if (e.first == lower_name) out.add(e.second);
    }
  }

 private:
  std::span<const Entry> entries_;
};

// HttpRequestView is the HTTP request an RBAC rule may look at: the pseudo-headers as Envoy's
// header map holds them (an empty view means the pseudo-header is absent) and the other headers
// through `headers` (nullptr = none). Views only; the caller keeps everything alive for the
// evaluation.
struct HttpRequestView {
  std::string_view method;     // :method
  std::string_view path;       // :path as received, query string included
  std::string_view authority;  // :authority (HTTP/1 Host)
  std::string_view scheme;     // :scheme
  const HttpHeaderLookup* headers = nullptr;
};

// RbacInput is what RBAC rules look at for one connection or request. Views are valid for the
// duration of one evaluation. `http` is null for a network-filter connection: HTTP matchers then
// see what Envoy's network RBAC filter gives them, an empty header map (see rbac_http_matchers.h).
struct RbacInput {
  bool tls = false;                 // the connection is TLS
  bool authenticated = false;       // a verified peer certificate was presented
  std::string_view peer_spiffe_id;  // set when authenticated
  // peer_attested_claims: the verified peer certificate's attested claims ("TYPE:KEY:VALUE").
  std::span<const std::string> peer_attested_claims;
  IpAddress direct_remote_ip;
  IpAddress remote_ip;  // same as direct_remote_ip until a proxy protocol / XFF source exists
  IpAddress destination_ip;
  uint16_t destination_port = 0;
  std::string_view requested_server_name;  // TLS SNI
  const HttpRequestView* http = nullptr;   // the HTTP request, when there is one
};

}  // namespace portcullis::filters
