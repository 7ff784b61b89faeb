#include "attest/kernel/sock_diag.h"

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <optional>

#include "attest/kernel/pidfd.h"

namespace portcullis::attest::kernel {
namespace {

// IpEndpoint is an address normalised for the kernel's tables: v4-mapped IPv6 becomes IPv4.
struct IpEndpoint {
  int family = 0;
  uint32_t addr[4] = {0, 0, 0, 0};  // network byte order, as inet_diag_sockid holds it
  uint16_t port = 0;                // network byte order
};

Result<IpEndpoint> endpoint_of(const sockaddr_storage& ss) {
  IpEndpoint out;
  if (ss.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(ss);
    out.family = AF_INET;
    out.addr[0] = in.sin_addr.s_addr;
    out.port = in.sin_port;
    return out;
  }
  if (ss.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(ss);
    out.port = in6.sin6_port;
    if (IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr)) {
      out.family = AF_INET;
      std::memcpy(&out.addr[0], &in6.sin6_addr.s6_addr[12], 4);
    } else {
      out.family = AF_INET6;
      std::memcpy(out.addr, &in6.sin6_addr, 16);
    }
    return out;
  }
  return make_error(ErrorCode::kInvalidArgument, "sock_diag: not an IP address (family " + std::to_string(ss.ss_family) + ")");
}

Error sys_error(const std::string& what) { return make_error(ErrorCode::kIo, what + ": " + std::strerror(errno)); }

Result<UniqueFd> open_diag_socket() {
  int fd = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return sys_error("socket(NETLINK_SOCK_DIAG)");
  UniqueFd sock(fd);
  timeval tv{1, 0};  // the kernel answers at once; this only bounds a wedged netlink
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return sock;
}

// query sends one inet_diag request and calls `on_msg` for each socket in the answer.
Status query(const inet_diag_req_v2& req, bool dump, const std::function<void(const inet_diag_msg&, int len)>& on_msg) {
  auto sock = open_diag_socket();
  if (!sock.ok()) return sock.error();
  struct {
    nlmsghdr nlh;
    inet_diag_req_v2 req;
  } msg{};
  msg.nlh.nlmsg_len = sizeof(msg);
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST | (dump ? NLM_F_DUMP : 0);
  msg.nlh.nlmsg_seq = 1;
  msg.req = req;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(sock->get(), &msg, sizeof(msg), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) < 0) {
    return sys_error("sock_diag sendto");
  }
  alignas(nlmsghdr) char buf[32 * 1024];
  for (;;) {
    ssize_t n = ::recv(sock->get(), buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error("sock_diag recv");
    int len = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_type == NLMSG_DONE) return {};
      if (h->nlmsg_type == NLMSG_ERROR) {
        const auto* err = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
        if (err->error == -ENOENT) return make_error(ErrorCode::kNotFound, "no such TCP socket");
        return make_error(ErrorCode::kIo, std::string("sock_diag: ") + std::strerror(-err->error));
      }
      if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY) continue;
      on_msg(*static_cast<const inet_diag_msg*>(NLMSG_DATA(h)), static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof(inet_diag_msg))));
    }
    if (!dump) return {};  // a single-socket answer is one message, without NLMSG_DONE
  }
}

// v6only reads the INET_DIAG_SKV6ONLY attribute the kernel attaches to every IPv6 socket.
bool v6only(const inet_diag_msg& m, int attr_len) {
  const auto* attr = reinterpret_cast<const rtattr*>(reinterpret_cast<const char*>(&m) + NLMSG_ALIGN(sizeof(m)));
  for (; RTA_OK(attr, attr_len); attr = RTA_NEXT(attr, attr_len)) {
    if (attr->rta_type == INET_DIAG_SKV6ONLY && RTA_PAYLOAD(attr) >= 1) return *static_cast<const uint8_t*>(RTA_DATA(attr)) != 0;
  }
  return false;
}

bool all_zero(const uint32_t* a, int n) {
  for (int i = 0; i < n; ++i) {
    if (a[i] != 0) return false;
  }
  return true;
}

// is_local says whether `ep` is an address of this network namespace: only then do connections
// to it reach a wildcard listener here. A bind to it (port 0) fails with EADDRNOTAVAIL otherwise;
// any other outcome (e.g. a link-local address without scope) keeps the wildcard answer.
bool is_local(const IpEndpoint& ep) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (ep.family == AF_INET) {
    auto& in = reinterpret_cast<sockaddr_in&>(ss);
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = ep.addr[0];
    len = sizeof in;
  } else {
    auto& in6 = reinterpret_cast<sockaddr_in6&>(ss);
    in6.sin6_family = AF_INET6;
    std::memcpy(&in6.sin6_addr, ep.addr, 16);
    len = sizeof in6;
  }
  UniqueFd probe(::socket(ep.family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!probe.valid()) return true;
  return ::bind(probe.get(), reinterpret_cast<sockaddr*>(&ss), len) == 0 || errno != EADDRNOTAVAIL;
}

}  // namespace

Result<TcpSocketInfo> find_tcp_socket(const sockaddr_storage& local, const sockaddr_storage& remote) {
  auto l = endpoint_of(local);
  if (!l.ok()) return l.error();
  auto r = endpoint_of(remote);
  if (!r.ok()) return r.error();
  if (l->family != r->family) return make_error(ErrorCode::kInvalidArgument, "sock_diag: local and remote families differ");
  inet_diag_req_v2 req{};
  req.sdiag_family = static_cast<uint8_t>(l->family);
  req.sdiag_protocol = IPPROTO_TCP;
  req.idiag_states = ~0u;
  req.id.idiag_sport = l->port;
  req.id.idiag_dport = r->port;
  std::memcpy(req.id.idiag_src, l->addr, sizeof(l->addr));
  std::memcpy(req.id.idiag_dst, r->addr, sizeof(r->addr));
  req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  std::optional<TcpSocketInfo> found;
  auto status = query(req, false, [&](const inet_diag_msg& m, int) { found = TcpSocketInfo{m.idiag_uid, m.idiag_inode}; });
  if (!status.ok()) {
    if (status.error().code == ErrorCode::kNotFound) {
      return make_error(ErrorCode::kNotFound, "no TCP socket " + format_sockaddr(local) + " -> " + format_sockaddr(remote) +
                                                  " in this network namespace");
    }
    return status.error();
  }
  if (!found) return make_error(ErrorCode::kIo, "sock_diag returned no socket");
  if (found->inode == 0) {
    return make_error(ErrorCode::kNotFound, "TCP socket " + format_sockaddr(local) + " has no owner (inode 0: closed or time-wait)");
  }
  return *found;
}

Result<std::vector<TcpSocketInfo>> find_tcp_listeners(const sockaddr_storage& address) {
  auto want = endpoint_of(address);
  if (!want.ok()) return want.error();
  std::vector<TcpSocketInfo> exact, wildcard;
  for (int family : {AF_INET, AF_INET6}) {
    if (want->family == AF_INET6 && family == AF_INET) continue;
    inet_diag_req_v2 req{};
    req.sdiag_family = static_cast<uint8_t>(family);
    req.sdiag_protocol = IPPROTO_TCP;
    req.idiag_states = 1u << TCP_LISTEN;
    auto status = query(req, true, [&](const inet_diag_msg& m, int attr_len) {
      if (m.id.idiag_sport != want->port || m.idiag_inode == 0) return;
      TcpSocketInfo info{m.idiag_uid, m.idiag_inode};
      if (family == want->family) {
        int words = family == AF_INET ? 1 : 4;
        if (std::memcmp(m.id.idiag_src, want->addr, static_cast<size_t>(words) * 4) == 0) {
          exact.push_back(info);
        } else if (all_zero(m.id.idiag_src, words)) {
          wildcard.push_back(info);
        }
        return;
      }
      // An IPv6 listener takes IPv4 connections when not v6only: on :: or on ::ffff:<addr>.
      if (v6only(m, attr_len)) return;
      uint32_t mapped[4] = {0, 0, htonl(0xffff), want->addr[0]};
      if (std::memcmp(m.id.idiag_src, mapped, sizeof(mapped)) == 0) {
        exact.push_back(info);
      } else if (all_zero(m.id.idiag_src, 4)) {
        wildcard.push_back(info);
      }
    });
    if (!status.ok()) return status.error();
  }
  if (!exact.empty()) return exact;
  // A wildcard listener on the port does not serve an address that is not ours (the upstream is
  // on another host): it would name an unrelated local process as the workload behind it.
  if (!wildcard.empty()) {
    if (is_local(*want)) return wildcard;
    return make_error(ErrorCode::kNotFound, "no TCP listener on " + format_sockaddr(address) +
                                                " (not an address of this network namespace)");
  }
  return make_error(ErrorCode::kNotFound, "no TCP listener on " + format_sockaddr(address));
}

std::string format_sockaddr(const sockaddr_storage& address) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (address.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(address);
    ::inet_ntop(AF_INET, &in.sin_addr, host, sizeof(host));
    return std::string(host) + ":" + std::to_string(ntohs(in.sin_port));
  }
  if (address.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(address);
    ::inet_ntop(AF_INET6, &in6.sin6_addr, host, sizeof(host));
    std::string out = "[";  // appended piecewise: GCC 12 warns falsely (-Wrestrict) on "[" + string
    out.append(host).append("]:").append(std::to_string(ntohs(in6.sin6_port)));
    return out;
  }
  return "<family " + std::to_string(address.ss_family) + ">";
}

}  // namespace portcullis::attest::kernel
