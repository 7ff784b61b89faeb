#include "proxy/grpc/grpc_listen.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77  // Linux 6.5; older headers lack it, older kernels answer ENOPROTOOPT
#endif

namespace portcullis::proxy {
namespace {

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

std::string sockaddr_text(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(ntohs(a->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
    return "[" + std::string(buf) + "]:" + std::to_string(ntohs(a->sin6_port));
  }
  return "unix";
}

// fill_unix builds a sockaddr_un; '@' maps to the abstract namespace's leading NUL.
bool fill_unix(const std::string& path, sockaddr_un* out, socklen_t* out_len) {
  *out = {};
  out->sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(out->sun_path)) return false;
  std::memcpy(out->sun_path, path.data(), path.size());
  if (path[0] == '@') out->sun_path[0] = '\0';
  *out_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (path[0] == '@' ? 0 : 1));
  return true;
}

// remove_stale_socket clears `path` for bind: only a socket file that refuses connections.
Status remove_stale_socket(const std::string& path, const sockaddr_un& sa, socklen_t len) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return {};
  if (!S_ISSOCK(st.st_mode)) return make_error(ErrorCode::kAlreadyExists, path + " exists and is not a socket");
  int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool live = probe >= 0 && ::connect(probe, reinterpret_cast<const sockaddr*>(&sa), len) == 0;
  if (probe >= 0) ::close(probe);
  if (live) return make_error(ErrorCode::kAlreadyExists, path + ": address in use (a server is accepting on it)");
  if (::unlink(path.c_str()) != 0) return make_error(ErrorCode::kIo, errno_text("cannot remove stale socket " + path));
  return {};
}

}  // namespace

Result<std::unique_ptr<ListenSocket>> ListenSocket::bind(const config::Address& address, int backlog) {
  std::unique_ptr<ListenSocket> ls(new ListenSocket());
  if (const config::PipeAddress* pipe = address.pipe()) {
    sockaddr_un sa;
    socklen_t len = 0;
    if (!fill_unix(pipe->path, &sa, &len)) return make_error(ErrorCode::kInvalidArgument, "bad socket path " + pipe->path);
    bool abstract = pipe->path[0] == '@';
    if (!abstract) {
      Status s = remove_stale_socket(pipe->path, sa, len);
      if (!s.ok()) return s.error();
    }
    ls->fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ls->fd_ < 0) return make_error(ErrorCode::kIo, errno_text("socket"));
    if (::bind(ls->fd_, reinterpret_cast<sockaddr*>(&sa), len) != 0) {
      return make_error(ErrorCode::kIo, errno_text("cannot bind " + pipe->path));
    }
    if (!abstract) {
      ls->unlink_path_ = pipe->path;
      struct stat st {};
      if (::stat(pipe->path.c_str(), &st) == 0) ls->inode_ = st.st_ino;
      if (::chmod(pipe->path.c_str(), pipe->mode != 0 ? pipe->mode : 0666) != 0) {
        return make_error(ErrorCode::kIo, errno_text("cannot chmod " + pipe->path));
      }
    }
    ls->unix_ = true;
    ls->address_ = pipe->path;
  } else {
    const config::SocketAddress& sock = *address.socket();
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (sock.is_ipv6()) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      a->sin6_family = AF_INET6;
      a->sin6_port = htons(static_cast<uint16_t>(sock.port_value));
      if (inet_pton(AF_INET6, sock.address.c_str(), &a->sin6_addr) != 1) {
        return make_error(ErrorCode::kInvalidArgument, "bad address " + sock.address);
      }
      len = sizeof(sockaddr_in6);
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      a->sin_family = AF_INET;
      a->sin_port = htons(static_cast<uint16_t>(sock.port_value));
      if (inet_pton(AF_INET, sock.address.c_str(), &a->sin_addr) != 1) {
        return make_error(ErrorCode::kInvalidArgument, "bad address " + sock.address);
      }
      len = sizeof(sockaddr_in);
    }
    ls->fd_ = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ls->fd_ < 0) return make_error(ErrorCode::kIo, errno_text("socket"));
    int one = 1;
    ::setsockopt(ls->fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(ls->fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
      return make_error(ErrorCode::kIo, errno_text("cannot bind " + sock.to_string()));
    }
    socklen_t got = sizeof ss;
    ::getsockname(ls->fd_, reinterpret_cast<sockaddr*>(&ss), &got);
    ls->address_ = sockaddr_text(ss);
  }
  if (::listen(ls->fd_, backlog) != 0) return make_error(ErrorCode::kIo, errno_text("listen on " + ls->address_));
  return ls;
}

ListenSocket::~ListenSocket() {
  if (fd_ >= 0) ::close(fd_);
  if (unlink_path_.empty()) return;
  struct stat st {};
  if (::stat(unlink_path_.c_str(), &st) == 0 && st.st_ino == inode_) ::unlink(unlink_path_.c_str());
}

std::unique_ptr<grpc::PeerInfo> peer_info_for(int fd, bool is_unix, const std::string& local_address) {
  auto info = std::make_unique<grpc::PeerInfo>();
  info->local_address = local_address;
  if (!is_unix) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) info->address = sockaddr_text(ss);
    return info;
  }
  info->transport = grpc::PeerInfo::Transport::kUnix;
  info->address = local_address;
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
    info->credentials = grpc::PeerCredentials{cred.pid, cred.uid, cred.gid};
  }
  int pidfd = -1;
  len = sizeof pidfd;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0 && pidfd >= 0) info->pidfd = pidfd;
  return info;
}

}  // namespace portcullis::proxy
