#include "attest/workload_api/endpoint_uri.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <string>

namespace portcullis::attest {
namespace {

Error bad(std::string_view uri, std::string_view why) {
  return make_error(ErrorCode::kInvalidArgument,
                    "invalid SPIFFE endpoint URI '" + std::string(uri) + "': " + std::string(why));
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// percent_decode fails on a truncated or non-hex escape and on an escaped NUL (not a path byte).
bool percent_decode(std::string_view in, std::string* out) {
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    int hi = i + 1 < in.size() ? hex_value(in[i + 1]) : -1;
    int lo = i + 2 < in.size() ? hex_value(in[i + 2]) : -1;
    if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

Result<config::Address> parse_unix(std::string_view uri, std::string_view rest) {
  // rest is what follows "unix:". "//" starts an authority, which must be empty.
  if (rest.starts_with("//")) {
    rest.remove_prefix(2);
    if (!rest.starts_with("/")) {
      return bad(uri, rest.empty() || rest.front() == '/' ? "missing path" : "unix URIs must not have an authority");
    }
  }
  if (rest.empty()) return bad(uri, "missing path");
  if (rest.front() != '/') return bad(uri, "unix URIs must be unix:///absolute/path (not opaque)");
  config::PipeAddress pipe;
  if (!percent_decode(rest, &pipe.path)) return bad(uri, "bad percent-escape in path");
  if (pipe.path == "/" || pipe.path.back() == '/') return bad(uri, "path must name a socket file");
  return config::Address{pipe};
}

bool parse_port(std::string_view text, uint32_t* out) {
  if (text.empty() || text.size() > 5) return false;
  uint32_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v > 65535) return false;
  *out = v;
  return true;
}

Result<config::Address> parse_tcp(std::string_view uri, std::string_view rest) {
  if (!rest.starts_with("//")) return bad(uri, "tcp URIs must be tcp://IP:port");
  std::string_view authority = rest.substr(2);
  if (authority.find('/') != std::string_view::npos) return bad(uri, "tcp URIs must not have a path");
  if (authority.find('@') != std::string_view::npos) return bad(uri, "tcp URIs must not have userinfo");
  if (authority.empty()) return bad(uri, "missing host");
  std::string host;
  std::string_view port;
  config::SocketAddress out;
  if (authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad(uri, "unterminated IPv6 literal");
    host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.starts_with(":")) return bad(uri, "missing port");
    port = after.substr(1);
    in6_addr a6;
    if (::inet_pton(AF_INET6, host.c_str(), &a6) != 1) return bad(uri, "host must be an IP address");
  } else {
    size_t colon = authority.rfind(':');
    if (colon == std::string_view::npos) return bad(uri, "missing port");
    host = std::string(authority.substr(0, colon));
    port = authority.substr(colon + 1);
    in_addr a4;
    if (::inet_pton(AF_INET, host.c_str(), &a4) != 1) return bad(uri, "host must be an IP address");
  }
  if (port.empty()) return bad(uri, "missing port");
  if (!parse_port(port, &out.port_value)) return bad(uri, "port must be a number from 0 to 65535");
  out.address = host;
  return config::Address{out};
}

}  // namespace

Result<config::Address> parse_spiffe_endpoint_uri(std::string_view uri) {
  if (uri.empty()) return bad(uri, "empty");
  if (uri.find('?') != std::string_view::npos) return bad(uri, "must not have a query");
  if (uri.find('#') != std::string_view::npos) return bad(uri, "must not have a fragment");
  if (std::any_of(uri.begin(), uri.end(), [](unsigned char c) { return c <= ' ' || c >= 0x7f; })) {
    return bad(uri, "contains whitespace, control or non-ASCII characters");
  }
  size_t colon = uri.find(':');
  if (colon == std::string_view::npos || colon == 0) return bad(uri, "missing scheme (unix:// or tcp://)");
  std::string scheme(uri.substr(0, colon));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(), [](unsigned char c) { return std::tolower(c); });
  std::string_view rest = uri.substr(colon + 1);
  if (scheme == "unix") return parse_unix(uri, rest);
  if (scheme == "tcp") return parse_tcp(uri, rest);
  return bad(uri, "scheme must be unix or tcp");
}

}  // namespace portcullis::attest
