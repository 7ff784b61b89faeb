#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/grpc/service_registry.h"

namespace portcullis::grpc {

// ManualExecutor queues posted tasks until the test runs them: a loop without a thread, for unit
// tests of services. post() is thread-safe; run() runs queued tasks (and the ones they post) on
// the calling thread.
class ManualExecutor : public Executor {
 public:
  void post(std::function<void()> task) override;
  // run runs tasks until the queue is empty; returns how many ran.
  size_t run();
  size_t pending() const;

 private:
  mutable std::mutex mu_;
  std::deque<std::function<void()>> tasks_;
};

// FakeServerCall is an in-memory ServerCall: a test drives the client side (deliver, half_close,
// cancel) and reads what the service sent. Single-threaded, like a real call on its loop. Use
// start_fake_call to run a registered method against it, so services are tested without sockets.
class FakeServerCall : public ServerCall {
 public:
  // A context without an executor gets a ManualExecutor (see executor()).
  explicit FakeServerCall(ServerCallContext context);

  // ServerCall
  const ServerCallContext& context() const override { return context_; }
  bool send_message(std::string message) override;
  void finish(GrpcStatus status) override;
  bool done() const override { return final_.has_value(); }
  size_t buffered_bytes() const override { return buffered_; }
  void set_on_message(std::function<void(std::string)> fn) override { on_message_ = std::move(fn); }
  void set_on_half_close(std::function<void()> fn) override { on_half_close_ = std::move(fn); }
  void set_on_done(std::function<void(const GrpcStatus&)> fn) override;

  // Client side.
  void deliver(std::string message);
  template <typename M>
  void deliver_message(const M& m) {
    std::string bytes;
    m.SerializeToString(&bytes);
    deliver(std::move(bytes));
  }
  void half_close();
  // cancel ends the call as the client (or deadline) would: on_done sees `code`.
  void cancel(StatusCode code = StatusCode::kCancelled);
  // drain_output pretends the client read everything buffered (resets buffered_bytes).
  void drain_output() { buffered_ = 0; }
  // max_buffered_bytes simulates the transport's per-stream output limit.
  size_t max_buffered_bytes = SIZE_MAX;

  // What the service did.
  const std::vector<std::string>& sent() const { return sent_; }
  template <typename M>
  M sent_as(size_t index) const {
    M m;
    m.ParseFromString(sent_.at(index));
    return m;
  }
  // final_status is set once finished (by the service) or cancelled (by the test).
  const std::optional<GrpcStatus>& final_status() const { return final_; }
  bool finished_by_server() const { return finished_by_server_; }
  // executor is the ManualExecutor made for a context without one (nullptr otherwise).
  ManualExecutor* manual_executor() const { return manual_.get(); }

 private:
  void end(GrpcStatus status);

  ServerCallContext context_;
  std::shared_ptr<ManualExecutor> manual_;
  std::vector<std::string> sent_;
  size_t buffered_ = 0;
  std::optional<GrpcStatus> final_;
  bool finished_by_server_ = false;
  std::function<void(std::string)> on_message_;
  std::function<void()> on_half_close_;
  std::function<void(const GrpcStatus&)> on_done_;
};

// start_fake_call looks `path` up in `registry` and starts it on a FakeServerCall, the way the
// transport does (for unary and server-streaming methods `request` is the one request message).
// A missing method yields a call already finished with UNIMPLEMENTED.
std::shared_ptr<FakeServerCall> start_fake_call(const ServiceRegistry& registry, const std::string& path,
                                                std::string request, ServerCallContext context = {});

}  // namespace portcullis::grpc
