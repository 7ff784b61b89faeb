#include "config/address.h"

#include <arpa/inet.h>
#include <sys/un.h>

namespace portcullis::config {

std::string SocketAddress::to_string() const {
  if (is_ipv6()) return "[" + address + "]:" + std::to_string(port_value);
  return address + ":" + std::to_string(port_value);
}

std::string Address::to_string() const {
  if (const auto* s = socket()) return s->to_string();
  return "unix:" + pipe()->path;
}

std::optional<SocketAddress> parse_socket_address(const Node& node, ErrorList& errors) {
  MapReader r(node, errors);
  if (!r.valid()) return std::nullopt;
  SocketAddress out;
  size_t before = errors.size();
  if (r.string("address", &out.address, true)) {
    in6_addr v6{};
    in_addr v4{};
    if (::inet_pton(AF_INET, out.address.c_str(), &v4) != 1 &&
        ::inet_pton(AF_INET6, out.address.c_str(), &v6) != 1) {
      auto n = r.get("address");
      errors.add(n->location(), n->path(),
                 "'" + out.address + "' is not a numeric IPv4 or IPv6 address");
    }
  }
  r.uint32("port_value", 0, 65535, &out.port_value, true);
  std::string protocol = "TCP";
  if (r.string("protocol", &protocol) && protocol != "TCP") {
    auto n = r.get("protocol");
    errors.add(n->location(), n->path(), "only protocol TCP is supported, got '" + protocol + "'");
  }
  // Envoy accepts these; we have no resolver plug-ins and no IPv4-compat sockets to offer.
  if (auto n = r.get("resolver_name")) {
    errors.add(n->location(), n->path(), "custom resolvers are not supported");
  }
  bool ipv4_compat = false;
  r.boolean("ipv4_compat", &ipv4_compat);
  r.finish();
  if (errors.size() != before) return std::nullopt;
  return out;
}

std::optional<Address> parse_address(const Node& node, ErrorList& errors, bool allow_pipe) {
  MapReader r(node, errors);
  if (!r.valid()) return std::nullopt;
  auto sock = r.get("socket_address");
  auto pipe = r.get("pipe");
  r.finish();
  if (sock && pipe) {
    errors.add(node.location(), node.path(), "set exactly one of socket_address or pipe");
    return std::nullopt;
  }
  if (sock) {
    auto s = parse_socket_address(*sock, errors);
    if (!s) return std::nullopt;
    return Address{*s};
  }
  if (pipe) {
    if (!allow_pipe) {
      errors.add(pipe->location(), pipe->path(), "a pipe address is not allowed here");
      return std::nullopt;
    }
    MapReader pr(*pipe, errors);
    PipeAddress p;
    size_t before = errors.size();
    pr.string("path", &p.path, true);
    pr.uint32("mode", 0, 0777, &p.mode);
    pr.finish();
    if (p.path.size() >= sizeof(sockaddr_un::sun_path)) {
      errors.add(pipe->location(), pipe->path() + ".path",
                 "Unix socket path is longer than " + std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
                     " bytes");
    }
    if (errors.size() != before) return std::nullopt;
    return Address{p};
  }
  errors.add(node.location(), node.path(), "missing socket_address (or pipe)");
  return std::nullopt;
}

}  // namespace portcullis::config
