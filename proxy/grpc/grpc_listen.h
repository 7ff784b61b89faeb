#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "common/grpc/call_context.h"
#include "common/result.h"
#include "config/address.h"

namespace portcullis::proxy {

// ListenSocket is one bound, listening, non-blocking socket for a gRPC server (TCP or Unix).
// Owns the fd. A Unix socket file it created is removed by the destructor if it is still the
// same file (a newer server may have replaced it).
class ListenSocket {
 public:
  // bind_listen_socket binds `address`. Unix paths: an existing socket nobody accepts on is
  // stale and replaced; a live one ("address in use") or a non-socket file is an error. The
  // file gets `pipe.mode`, or 0666 when the config says 0: like SPIRE's agent socket it is
  // world-connectable and access is controlled by the directory it lives in. A leading '@'
  // is the abstract namespace (no file).
  static Result<std::unique_ptr<ListenSocket>> bind(const config::Address& address, int backlog = 512);
  ~ListenSocket();
  ListenSocket(const ListenSocket&) = delete;
  ListenSocket& operator=(const ListenSocket&) = delete;

  int fd() const { return fd_; }
  bool is_unix() const { return unix_; }
  // address is what clients dial: "ip:port" (the real port when the config said 0) or the path.
  const std::string& address() const { return address_; }

 private:
  ListenSocket() = default;
  int fd_ = -1;
  bool unix_ = false;
  std::string address_;
  std::string unlink_path_;
  ino_t inode_ = 0;
};

// peer_info_for reads what the kernel says about an accepted socket's peer: its address, and for
// Unix sockets SO_PEERCRED and (when the kernel has it) a pidfd from SO_PEERPIDFD.
std::unique_ptr<grpc::PeerInfo> peer_info_for(int fd, bool is_unix, const std::string& local_address);

}  // namespace portcullis::proxy
