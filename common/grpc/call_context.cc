#include "common/grpc/call_context.h"

#include <unistd.h>

namespace portcullis::grpc {

PeerInfo::~PeerInfo() {
  if (pidfd >= 0) ::close(pidfd);
}

}  // namespace portcullis::grpc
