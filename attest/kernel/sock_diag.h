#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace portcullis::attest::kernel {

// TcpSocketInfo is what the kernel tells about one TCP socket: who created it and its inode (the
// number behind "socket:[INODE]" in /proc/PID/fd).
struct TcpSocketInfo {
  uid_t uid = 0;
  uint64_t inode = 0;
};

// find_tcp_socket asks NETLINK_SOCK_DIAG for the TCP socket of this network namespace whose local
// address is `local` and whose remote address is `remote` (an exact 4-tuple lookup, no dump).
// IPv4-mapped IPv6 addresses are looked up as IPv4, as the kernel stores them. Fails with
// kNotFound when no such socket exists (e.g. the peer is in another namespace or already closed),
// kInvalidArgument for non-IP addresses, kIo for netlink failures. Blocking (a local syscall with
// a 1 s receive timeout); thread-safe.
Result<TcpSocketInfo> find_tcp_socket(const sockaddr_storage& local, const sockaddr_storage& remote);

// find_tcp_listeners returns the LISTEN sockets that would accept a connection to `address`: those
// bound to exactly that address and port when there are any, otherwise those bound to the
// wildcard address on that port (including dual-stack IPv6 ones for an IPv4 address). kNotFound
// when none. Dumps the namespace's listeners, so its cost grows with their number.
Result<std::vector<TcpSocketInfo>> find_tcp_listeners(const sockaddr_storage& address);

// format_sockaddr renders an IP address as "1.2.3.4:80" or "[::1]:80", for messages.
std::string format_sockaddr(const sockaddr_storage& address);

}  // namespace portcullis::attest::kernel
