#include "attest/agent/remote_authority_api.h"

namespace portcullis::attest::agent {

namespace {
constexpr const char* kService = "/portcullis.authority.v1.Authority/";
}

struct RemoteAuthorityApi::Calls {
  bool alive = true;
  uint64_t next_id = 0;
  std::map<uint64_t, std::shared_ptr<grpc::ClientCall>> running;
};

RemoteAuthorityApi::RemoteAuthorityApi(ChannelFactory factory, grpc::Executor& loop,
                                       std::chrono::milliseconds call_timeout)
    : factory_(std::move(factory)), loop_(loop), call_timeout_(call_timeout), calls_(std::make_shared<Calls>()) {
  credentials_ = std::make_shared<const NodeCredentials>();
}

RemoteAuthorityApi::~RemoteAuthorityApi() {
  calls_->alive = false;
  auto running = std::move(calls_->running);
  for (auto& [_, call] : running) call->cancel();
}

void RemoteAuthorityApi::set_credentials(std::shared_ptr<const NodeCredentials> credentials) {
  credentials_ = std::move(credentials);
  // Calls in flight finish on the old channel: it stays owned here (not by the calls' callbacks,
  // which the channel itself holds: that cycle outlived a shutdown with a call still connecting).
  // Renewals are hours apart and calls time out in seconds, so two retired channels suffice; a
  // call on an older one ends UNAVAILABLE and is retried.
  if (channel_) retired_.push_back(std::move(channel_));
  while (retired_.size() > kRetiredChannels) retired_.erase(retired_.begin());
  channel_error_.clear();
}

std::shared_ptr<grpc::Channel> RemoteAuthorityApi::channel(std::string* out_error) {
  if (!channel_ && channel_error_.empty()) {
    auto made = factory_(*credentials_);
    if (made.ok()) channel_ = std::move(made.value());
    else channel_error_ = "cannot build the authority channel: " + made.error().message;
  }
  *out_error = channel_error_;
  return channel_;
}

template <typename Req, typename Resp>
void RemoteAuthorityApi::unary(const char* method, const Req& request, ApiCallback<Resp> done) {
  std::string error;
  auto ch = channel(&error);
  if (!ch) {
    loop_.post([done = std::move(done), error] { done(grpc::GrpcStatus{grpc::StatusCode::kUnavailable, error}); });
    return;
  }
  grpc::CallOptions options;
  options.timeout = call_timeout_;
  uint64_t id = ++calls_->next_id;
  auto calls = calls_;
  auto finished = std::make_shared<bool>(false);
  // The channel may finish a call inline (it cannot connect): post, so callers never re-enter.
  auto call = grpc::call_unary<Req, Resp>(
      *ch, std::string(kService) + method, request, options,
      [calls, id, finished, loop = &loop_, done = std::move(done)](grpc::GrpcResult<Resp> result) mutable {
        *finished = true;
        calls->running.erase(id);
        loop->post([calls, done = std::move(done), result = std::move(result)]() mutable {
          if (calls->alive) done(std::move(result));
        });
      });
  if (call && !*finished) calls_->running.emplace(id, call);
}

void RemoteAuthorityApi::attest_node(v1::AttestNodeRequest request, ApiCallback<v1::AttestNodeResponse> done) {
  unary("AttestNode", request, std::move(done));
}
void RemoteAuthorityApi::renew_node(v1::RenewNodeRequest request, ApiCallback<v1::RenewNodeResponse> done) {
  unary("RenewNode", request, std::move(done));
}
void RemoteAuthorityApi::sign_workload_svids(v1::SignWorkloadSvidsRequest request,
                                             ApiCallback<v1::SignWorkloadSvidsResponse> done) {
  unary("SignWorkloadSvids", request, std::move(done));
}
void RemoteAuthorityApi::mint_jwt_svid(v1::MintJwtSvidRequest request, ApiCallback<v1::MintJwtSvidResponse> done) {
  unary("MintJwtSvid", request, std::move(done));
}
void RemoteAuthorityApi::revoke_svids(v1::RevokeSvidsRequest request, ApiCallback<v1::RevokeSvidsResponse> done) {
  unary("RevokeSvids", request, std::move(done));
}

namespace {

// RemoteStream owns the WatchUpdates call; its callbacks check `live` so nothing runs after the
// handle is destroyed.
class RemoteStream final : public UpdateStream {
 public:
  explicit RemoteStream(std::shared_ptr<bool> live) : live_(std::move(live)) {}
  ~RemoteStream() override {
    *live_ = false;
    if (call_) call_->cancel();
  }
  void set_call(std::shared_ptr<grpc::ClientCall> call) { call_ = std::move(call); }

 private:
  std::shared_ptr<bool> live_;
  std::shared_ptr<grpc::ClientCall> call_;
};

}  // namespace

std::unique_ptr<UpdateStream> RemoteAuthorityApi::watch_updates(v1::WatchUpdatesRequest request,
                                                                std::function<void(v1::AuthorityUpdate)> on_update,
                                                                std::function<void(const grpc::GrpcStatus&)> on_end) {
  auto live = std::make_shared<bool>(true);
  auto stream = std::make_unique<RemoteStream>(live);
  std::string error;
  auto ch = channel(&error);
  if (!ch) {
    loop_.post([live, on_end = std::move(on_end), error] {
      if (*live) on_end(grpc::GrpcStatus{grpc::StatusCode::kUnavailable, error});
    });
    return stream;
  }
  auto calls = calls_;
  // No deadline: the stream lives as long as the connection; the agent reconnects when it ends.
  auto call = grpc::call_server_streaming<v1::WatchUpdatesRequest, v1::AuthorityUpdate>(
      *ch, std::string(kService) + "WatchUpdates", request, grpc::CallOptions{},
      [live, calls, loop = &loop_, on_update](v1::AuthorityUpdate&& update) {
        loop->post([live, calls, on_update, update = std::move(update)]() mutable {
          if (*live && calls->alive) on_update(std::move(update));
        });
      },
      [live, calls, loop = &loop_, on_end](const grpc::GrpcStatus& status) {
        loop->post([live, calls, on_end, status] {
          if (*live && calls->alive) on_end(status);
        });
      });
  stream->set_call(std::move(call));
  return stream;
}

}  // namespace portcullis::attest::agent
