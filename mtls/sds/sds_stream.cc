#include "mtls/sds/sds_stream.h"

#include <openssl/rand.h>

#include <algorithm>

#include <spdlog/spdlog.h>

#include "mtls/sds/secret_builder.h"

namespace portcullis::mtls {
namespace {

using ::envoy::service::discovery::v3::DiscoveryRequest;
using ::envoy::service::discovery::v3::DiscoveryResponse;

std::vector<std::string> sorted_names(const DiscoveryRequest& request) {
  std::vector<std::string> out(request.resource_names().begin(), request.resource_names().end());
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace

CallerInfo caller_info(const SdsContext& sds, const grpc::ServerCallContext& context) {
  return sds.resolve_caller ? sds.resolve_caller(context) : credentials_caller(context);
}

SdsStream::SdsStream(std::shared_ptr<const SdsContext> context, SdsBidiStream stream)
    : context_(std::move(context)), stream_(std::move(stream)), caller_(caller_info(*context_, stream_.context())) {}

void SdsStream::start(std::function<void()> on_closed) {
  context_->stats.streams_active.inc();
  // Weak: the service owns the stream, so a call that never ends cannot keep a cycle alive.
  std::weak_ptr<SdsStream> weak = weak_from_this();
  stream_.on_message([weak](DiscoveryRequest&& request) {
    if (auto self = weak.lock()) self->on_request(std::move(request));
  });
  // Envoy never half-closes an SDS stream; a client that does wants no more pushes.
  stream_.on_half_close([weak] {
    if (auto self = weak.lock()) self->stream_.finish();
  });
  stream_.on_done([context = context_, on_closed = std::move(on_closed)](const grpc::GrpcStatus&) {
    context->stats.streams_active.dec();
    if (on_closed) on_closed();
  });
}

void SdsStream::notify_rotation() {
  std::weak_ptr<SdsStream> weak = weak_from_this();
  stream_.post([weak](const auto&) {
    if (auto self = weak.lock()) self->on_rotation();
  });
}

void SdsStream::on_request(DiscoveryRequest&& request) {
  if (!request.type_url().empty() && request.type_url() != kSecretTypeUrl) {
    stream_.finish({grpc::StatusCode::kInvalidArgument, "unsupported type_url \"" + request.type_url() +
                                                            "\": this server serves " + kSecretTypeUrl});
    return;
  }
  if (!is_current(request)) return;
  if (request.has_node()) node_ = request.node();  // a request without one keeps the previous node
  std::vector<std::string> names = sorted_names(request);
  bool first = !requested_;
  bool names_changed = names != names_;
  requested_ = true;
  names_ = std::move(names);
  if (first || names_changed) respond(false, false);
}

// is_current classifies a request after the first: false for a stale one (ignored); counts ACKs and
// NACKs of the latest response.
bool SdsStream::is_current(const DiscoveryRequest& request) {
  if (last_nonce_.empty()) return true;  // nothing sent yet: any request is current
  if (request.response_nonce() != last_nonce_) {
    context_->stats.stale_requests.inc();
    return false;
  }
  if (!request.has_error_detail()) {
    context_->stats.acks.inc();
    return true;
  }
  context_->stats.nacks.inc();
  const std::string& message = request.error_detail().message();
  if (message != last_nack_message_) {
    std::string names;
    for (const auto& n : names_) names += (names.empty() ? "" : ",") + n;
    spdlog::warn("sds: client '{}' rejected version {} of [{}]: {}",
                 request.node().id().empty() ? node_.id() : request.node().id(), last_version_, names, message);
    last_nack_message_ = message;
  }
  return true;
}

void SdsStream::on_rotation() {
  if (!requested_ || stream_.done()) return;
  respond(true, true);
}

void SdsStream::respond(bool only_if_changed, bool rotation) {
  auto view = context_->store->for_caller(caller_);
  auto mode = validation_mode(node_, context_->disable_spiffe_cert_validation);
  auto secrets = build_secrets(view.get(), names_, mode, context_->names);
  if (!secrets.ok()) {
    if (secrets.status().code == grpc::StatusCode::kInvalidArgument) context_->stats.unknown_resource_errors.inc();
    stream_.finish(secrets.status());
    return;
  }
  DiscoveryResponse response;
  for (const auto& secret : secrets.value()) response.add_resources()->PackFrom(secret);
  std::string resources;
  for (const auto& any : response.resources()) resources += any.SerializeAsString();
  if (only_if_changed && resources == last_resources_) return;
  last_resources_ = std::move(resources);
  last_version_ = std::to_string(view ? view->version : 0);
  last_nonce_ = next_nonce();
  response.set_version_info(last_version_);
  response.set_type_url(kSecretTypeUrl);
  response.set_nonce(last_nonce_);
  if (!stream_.write(response)) return;
  context_->stats.responses_sent.inc();
  if (rotation) context_->stats.rotation_pushes.inc();
}

std::string SdsStream::next_nonce() {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string nonce;
  do {
    uint8_t bytes[4];
    RAND_bytes(bytes, sizeof(bytes));
    nonce.clear();
    for (uint8_t b : bytes) {
      nonce += kHex[b >> 4];
      nonce += kHex[b & 0xf];
    }
  } while (nonce == last_nonce_);
  return nonce;
}

}  // namespace portcullis::mtls
