#include "common/grpc/fake_server_call.h"

namespace portcullis::grpc {

void ManualExecutor::post(std::function<void()> task) {
  std::lock_guard lock(mu_);
  tasks_.push_back(std::move(task));
}

size_t ManualExecutor::run() {
  size_t ran = 0;
  for (;;) {
    std::function<void()> task;
    {
      std::lock_guard lock(mu_);
      if (tasks_.empty()) return ran;
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
    ++ran;
  }
}

size_t ManualExecutor::pending() const {
  std::lock_guard lock(mu_);
  return tasks_.size();
}

FakeServerCall::FakeServerCall(ServerCallContext context) : context_(std::move(context)) {
  if (!context_.executor) {
    manual_ = std::make_shared<ManualExecutor>();
    context_.executor = manual_;
  }
}

bool FakeServerCall::send_message(std::string message) {
  if (done()) return false;
  if (buffered_ + message.size() > max_buffered_bytes) {
    end(GrpcStatus{StatusCode::kResourceExhausted, "client is not reading its responses"});
    return false;
  }
  buffered_ += message.size();
  sent_.push_back(std::move(message));
  return true;
}

void FakeServerCall::finish(GrpcStatus status) {
  if (done()) return;
  finished_by_server_ = true;
  end(std::move(status));
}

void FakeServerCall::set_on_done(std::function<void(const GrpcStatus&)> fn) {
  if (!done()) {
    on_done_ = std::move(fn);
    return;
  }
  // Same contract as the transport: an already-done call reports on the next loop turn.
  context_.executor->post([fn = std::move(fn), status = *final_] { fn(status); });
}

void FakeServerCall::deliver(std::string message) {
  if (!done() && on_message_) on_message_(std::move(message));
}

void FakeServerCall::half_close() {
  if (!done() && on_half_close_) on_half_close_();
}

void FakeServerCall::cancel(StatusCode code) {
  if (!done()) end(GrpcStatus{code, "cancelled by the test"});
}

void FakeServerCall::end(GrpcStatus status) {
  final_ = std::move(status);
  // Drop the callbacks first: they may hold the last reference to the service's state.
  auto on_done = std::move(on_done_);
  on_message_ = nullptr;
  on_half_close_ = nullptr;
  on_done_ = nullptr;
  if (on_done) on_done(*final_);
}

std::shared_ptr<FakeServerCall> start_fake_call(const ServiceRegistry& registry, const std::string& path,
                                                std::string request, ServerCallContext context) {
  context.method = path;
  auto call = std::make_shared<FakeServerCall>(std::move(context));
  const MethodHandler* handler = registry.find(path);
  if (!handler) {
    call->finish(GrpcStatus{StatusCode::kUnimplemented, "unknown method " + path});
    return call;
  }
  handler->start(call, std::move(request));
  return call;
}

}  // namespace portcullis::grpc
