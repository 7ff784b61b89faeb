#include "common/grpc/service_registry.h"

namespace portcullis::grpc {

Status ServiceRegistry::add(std::string path, MethodHandler handler) {
  // "/service/method": both parts non-empty, exactly two slashes. The service part may have no
  // dots (the SPIFFE Workload API has no package).
  size_t second = path.size() > 1 ? path.find('/', 1) : std::string::npos;
  if (path.empty() || path[0] != '/' || second == std::string::npos || second == 1 || second + 1 == path.size() ||
      path.find('/', second + 1) != std::string::npos) {
    return make_error(ErrorCode::kInvalidArgument, "gRPC method path must be /service/method: '" + path + "'");
  }
  if (!handler.start) return make_error(ErrorCode::kInvalidArgument, "gRPC method " + path + " has no handler");
  if (!methods_.emplace(path, std::move(handler)).second) {
    return make_error(ErrorCode::kAlreadyExists, "gRPC method " + path + " registered twice");
  }
  return {};
}

const MethodHandler* ServiceRegistry::find(std::string_view path) const {
  auto it = methods_.find(path);
  return it == methods_.end() ? nullptr : &it->second;
}

std::vector<std::string> ServiceRegistry::methods() const {
  std::vector<std::string> out;
  out.reserve(methods_.size());
  for (const auto& [path, handler] : methods_) out.push_back(path);
  return out;
}

}  // namespace portcullis::grpc
