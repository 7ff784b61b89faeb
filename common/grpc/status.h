#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "common/result.h"

namespace portcullis::grpc {

// StatusCode is google.rpc.Code, the gRPC status sent as decimal `grpc-status` (wire facts §1.4).
enum class StatusCode : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};
inline constexpr int kMaxStatusCode = 16;

// status_code_name is the upper-case proto name ("PERMISSION_DENIED"); stats and logs use it.
const char* status_code_name(StatusCode code);

// GrpcStatus is the outcome of a call: a code and a human message (sent percent-encoded as
// `grpc-message`; never put secrets in it, clients log it).
struct GrpcStatus {
  StatusCode code = StatusCode::kOk;
  std::string message;

  bool ok() const { return code == StatusCode::kOk; }
  static GrpcStatus Ok() { return {}; }
  bool operator==(const GrpcStatus&) const = default;
};

// to_grpc_status maps the project's Error (from a Result) to the closest gRPC code.
GrpcStatus to_grpc_status(const Error& error);

// status_from_http synthesizes a code from a non-gRPC HTTP status, for responses that carry no
// `grpc-status` (wire facts §1.3 table). 200 without grpc-status is UNKNOWN.
StatusCode status_from_http(int http_status);

// status_code_from_int checks a received `grpc-status` value; out-of-range codes are UNKNOWN.
StatusCode status_code_from_int(long value);

// GrpcResult is what a unary handler returns: a response message or a non-OK status. Implicit
// from either, so a handler can `return response;` or `return GrpcStatus{kNotFound, "..."};`.
template <typename T>
class GrpcResult {
 public:
  GrpcResult(T value) : v_(std::move(value)) {}             // NOLINT: implicit by design
  GrpcResult(GrpcStatus status) : v_(std::move(status)) {}  // NOLINT
  bool ok() const { return v_.index() == 0; }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  // status is OK for a value, else the error.
  GrpcStatus status() const { return ok() ? GrpcStatus{} : std::get<1>(v_); }

 private:
  std::variant<T, GrpcStatus> v_;
};

}  // namespace portcullis::grpc
