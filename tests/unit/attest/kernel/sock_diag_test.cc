// NETLINK_SOCK_DIAG lookups and the /proc socket-owner scan, on this process's own sockets.
#include "attest/kernel/sock_diag.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "attest/kernel/pidfd.h"
#include "attest/kernel/socket_owner.h"

namespace portcullis::attest::kernel {
namespace {

uint64_t inode_of(int fd) {
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0);
  return st.st_ino;
}

// Connection is a loopback TCP connection inside this process.
struct Connection {
  UniqueFd listener, client, server;
  sockaddr_storage client_local{}, client_remote{};
};

std::optional<Connection> connect_loopback(int family, bool dual_stack_listener = false) {
  Connection c;
  int listen_family = dual_stack_listener ? AF_INET6 : family;
  c.listener = UniqueFd(::socket(listen_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_storage addr{};
  socklen_t len = 0;
  if (listen_family == AF_INET) {
    auto& in = reinterpret_cast<sockaddr_in&>(addr);
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof(in);
  } else {
    auto& in6 = reinterpret_cast<sockaddr_in6&>(addr);
    in6.sin6_family = AF_INET6;
    in6.sin6_addr = dual_stack_listener ? in6addr_any : in6addr_loopback;
    int off = 0;
    ::setsockopt(c.listener.get(), IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
    len = sizeof(in6);
  }
  if (::bind(c.listener.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) return std::nullopt;
  ::listen(c.listener.get(), 4);
  ::getsockname(c.listener.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  if (dual_stack_listener) {  // connect over IPv4 to the IPv6 wildcard listener
    uint16_t port = reinterpret_cast<sockaddr_in6&>(addr).sin6_port;
    addr = {};
    auto& in = reinterpret_cast<sockaddr_in&>(addr);
    in.sin_family = AF_INET;
    in.sin_port = port;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof(in);
  }
  c.client = UniqueFd(::socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (::connect(c.client.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) return std::nullopt;
  c.server = UniqueFd(::accept4(c.listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  socklen_t l1 = sizeof(c.client_local), l2 = sizeof(c.client_remote);
  ::getsockname(c.client.get(), reinterpret_cast<sockaddr*>(&c.client_local), &l1);
  ::getpeername(c.client.get(), reinterpret_cast<sockaddr*>(&c.client_remote), &l2);
  return c;
}

TEST(SockDiag, FindsTheExactSocketOfA4Tuple) {
  for (int family : {AF_INET, AF_INET6}) {
    auto c = connect_loopback(family);
    if (!c) continue;  // no ::1 here
    auto client = find_tcp_socket(c->client_local, c->client_remote);
    ASSERT_TRUE(client.ok()) << client.error().message;
    EXPECT_EQ(client->inode, inode_of(c->client.get()));
    EXPECT_EQ(client->uid, ::geteuid());
    auto server = find_tcp_socket(c->client_remote, c->client_local);  // the other end
    ASSERT_TRUE(server.ok()) << server.error().message;
    EXPECT_EQ(server->inode, inode_of(c->server.get()));
  }
}

TEST(SockDiag, V4MappedAddressesOfADualStackSocketAreLookedUpAsIpv4) {
  auto c = connect_loopback(AF_INET, /*dual_stack_listener=*/true);
  if (!c) GTEST_SKIP() << "no dual-stack IPv6 here";
  // What the proxy sees on its [::] socket: ::ffff:127.0.0.1 addresses.
  sockaddr_storage local{}, remote{};
  socklen_t l1 = sizeof(local), l2 = sizeof(remote);
  ASSERT_EQ(::getsockname(c->server.get(), reinterpret_cast<sockaddr*>(&local), &l1), 0);
  ASSERT_EQ(::getpeername(c->server.get(), reinterpret_cast<sockaddr*>(&remote), &l2), 0);
  ASSERT_EQ(remote.ss_family, AF_INET6);
  auto peer = find_tcp_socket(remote, local);
  ASSERT_TRUE(peer.ok()) << peer.error().message;
  EXPECT_EQ(peer->inode, inode_of(c->client.get()));
  auto listeners = find_tcp_listeners(c->client_remote);  // 127.0.0.1:port, served by [::]:port
  ASSERT_TRUE(listeners.ok()) << listeners.error().message;
  ASSERT_EQ(listeners->size(), 1u);
  EXPECT_EQ((*listeners)[0].inode, inode_of(c->listener.get()));
}

// The inbound `default` attests the listener of the cluster's endpoint: a local wildcard listener
// on the same port must not stand in for an upstream on another host.
TEST(SockDiag, AWildcardListenerServesLocalAddressesOnly) {
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in any{};
  any.sin_family = AF_INET;
  any.sin_addr.s_addr = htonl(INADDR_ANY);
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&any), sizeof any), 0);
  ASSERT_EQ(::listen(listener.get(), 4), 0);
  socklen_t len = sizeof any;
  ASSERT_EQ(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&any), &len), 0);
  auto at = [&](const char* host) {
    sockaddr_storage ss{};
    auto& in = reinterpret_cast<sockaddr_in&>(ss);
    in.sin_family = AF_INET;
    in.sin_port = any.sin_port;
    ::inet_pton(AF_INET, host, &in.sin_addr);
    return ss;
  };
  auto local = find_tcp_listeners(at("127.0.0.1"));
  ASSERT_TRUE(local.ok()) << local.error().message;
  ASSERT_EQ(local->size(), 1u);
  EXPECT_EQ((*local)[0].inode, inode_of(listener.get()));
  auto remote = find_tcp_listeners(at("192.0.2.7"));  // TEST-NET-1: never an address of ours
  ASSERT_FALSE(remote.ok());
  EXPECT_EQ(remote.error().code, ErrorCode::kNotFound) << remote.error().message;
}

TEST(SockDiag, ErrorsForUnknownTuplesAndNonIpAddresses) {
  auto c = connect_loopback(AF_INET);
  ASSERT_TRUE(c);
  sockaddr_storage wrong = c->client_remote;
  auto& in = reinterpret_cast<sockaddr_in&>(wrong);
  in.sin_port = htons(static_cast<uint16_t>(ntohs(in.sin_port) ^ 1));
  auto none = find_tcp_socket(c->client_local, wrong);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code, ErrorCode::kNotFound);
  sockaddr_storage unix_addr{};
  unix_addr.ss_family = AF_UNIX;
  EXPECT_EQ(find_tcp_socket(unix_addr, wrong).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(find_tcp_listeners(unix_addr).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(format_sockaddr(c->client_remote).rfind("127.0.0.1:", 0), 0u);
}

TEST(SocketOwner, FindsThisProcessAndHonoursTheFdBudget) {
  auto c = connect_loopback(AF_INET);
  ASSERT_TRUE(c);
  auto info = find_tcp_socket(c->client_local, c->client_remote);
  ASSERT_TRUE(info.ok());
  StatsStore store;
  auto stats = KernelAttestStats::create(store);
  SocketOwnerFinder finder(SocketOwnerLimits{1 << 20, 1 << 22, 16}, stats);
  auto owner = finder.find({*info}, /*same_uid_only=*/true);
  ASSERT_TRUE(owner.ok()) << owner.error().message;
  EXPECT_EQ(owner->pid, ::getpid());
  EXPECT_EQ(owner->socket.inode, info->inode);
  EXPECT_TRUE(finder.holds(::getpid(), info->inode));
  ASSERT_TRUE(finder.find({*info}, true).ok());
  EXPECT_EQ(store.value("workload_attestation.kernel.inode_cache_hits"), 1);

  SocketOwnerFinder starved(SocketOwnerLimits{1 << 20, 1, 0}, stats);
  auto limited = starved.find({*info}, false);
  ASSERT_FALSE(limited.ok());
  EXPECT_EQ(limited.error().code, ErrorCode::kResourceExhausted) << limited.error().message;

  TcpSocketInfo closed{::geteuid(), 1};  // inode 1 is never a socket
  auto missing = finder.find({closed}, false);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
}

TEST(SocketOwner, AProcessThatKeepsConnectingIsFoundWithoutAnotherScan) {
  StatsStore store;
  auto stats = KernelAttestStats::create(store);
  SocketOwnerFinder finder(SocketOwnerLimits{1 << 20, 1 << 22, 16}, stats);
  auto first = connect_loopback(AF_INET);
  ASSERT_TRUE(first);
  auto first_info = find_tcp_socket(first->client_local, first->client_remote);
  ASSERT_TRUE(first_info.ok());
  ASSERT_TRUE(finder.find({*first_info}, true).ok());
  EXPECT_EQ(store.value("workload_attestation.kernel.proc_scans"), 1);

  // A new connection is a new inode: no inode-cache entry, but its owner was seen a moment ago.
  auto second = connect_loopback(AF_INET);
  ASSERT_TRUE(second);
  auto second_info = find_tcp_socket(second->client_local, second->client_remote);
  ASSERT_TRUE(second_info.ok());
  ASSERT_NE(second_info->inode, first_info->inode);
  auto owner = finder.find({*second_info}, true);
  ASSERT_TRUE(owner.ok()) << owner.error().message;
  EXPECT_EQ(owner->pid, ::getpid());
  EXPECT_EQ(store.value("workload_attestation.kernel.recent_owner_hits"), 1);
  EXPECT_EQ(store.value("workload_attestation.kernel.proc_scans"), 1);

  // A socket the recent owners do not hold still gets the full scan.
  TcpSocketInfo closed{::geteuid(), 1};
  EXPECT_FALSE(finder.find({closed}, false).ok());
  EXPECT_EQ(store.value("workload_attestation.kernel.proc_scans"), 2);
}

}  // namespace
}  // namespace portcullis::attest::kernel
