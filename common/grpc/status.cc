#include "common/grpc/status.h"

namespace portcullis::grpc {

const char* status_code_name(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kCancelled: return "CANCELLED";
    case StatusCode::kUnknown: return "UNKNOWN";
    case StatusCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case StatusCode::kDeadlineExceeded: return "DEADLINE_EXCEEDED";
    case StatusCode::kNotFound: return "NOT_FOUND";
    case StatusCode::kAlreadyExists: return "ALREADY_EXISTS";
    case StatusCode::kPermissionDenied: return "PERMISSION_DENIED";
    case StatusCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case StatusCode::kFailedPrecondition: return "FAILED_PRECONDITION";
    case StatusCode::kAborted: return "ABORTED";
    case StatusCode::kOutOfRange: return "OUT_OF_RANGE";
    case StatusCode::kUnimplemented: return "UNIMPLEMENTED";
    case StatusCode::kInternal: return "INTERNAL";
    case StatusCode::kUnavailable: return "UNAVAILABLE";
    case StatusCode::kDataLoss: return "DATA_LOSS";
    case StatusCode::kUnauthenticated: return "UNAUTHENTICATED";
  }
  return "UNKNOWN";
}

GrpcStatus to_grpc_status(const Error& error) {
  StatusCode code = StatusCode::kInternal;
  switch (error.code) {
    case ErrorCode::kInvalidArgument: code = StatusCode::kInvalidArgument; break;
    case ErrorCode::kNotFound: code = StatusCode::kNotFound; break;
    case ErrorCode::kAlreadyExists: code = StatusCode::kAlreadyExists; break;
    case ErrorCode::kPermissionDenied: code = StatusCode::kPermissionDenied; break;
    case ErrorCode::kResourceExhausted: code = StatusCode::kResourceExhausted; break;
    case ErrorCode::kFailedPrecondition: code = StatusCode::kFailedPrecondition; break;
    case ErrorCode::kUnavailable: code = StatusCode::kUnavailable; break;
    case ErrorCode::kIo: code = StatusCode::kUnavailable; break;
    case ErrorCode::kInternal: code = StatusCode::kInternal; break;
  }
  return GrpcStatus{code, error.message};
}

StatusCode status_from_http(int http_status) {
  switch (http_status) {
    case 400: return StatusCode::kInternal;
    case 401: return StatusCode::kUnauthenticated;
    case 403: return StatusCode::kPermissionDenied;
    case 404: return StatusCode::kUnimplemented;
    case 429:
    case 502:
    case 503:
    case 504: return StatusCode::kUnavailable;
    case 431: return StatusCode::kInternal;
    default: return StatusCode::kUnknown;
  }
}

StatusCode status_code_from_int(long value) {
  if (value < 0 || value > kMaxStatusCode) return StatusCode::kUnknown;
  return static_cast<StatusCode>(value);
}

}  // namespace portcullis::grpc
