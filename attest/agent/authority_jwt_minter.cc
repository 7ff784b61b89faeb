#include "attest/agent/authority_jwt_minter.h"

namespace portcullis::attest::agent {

v1::Selector selector_to_proto(const std::string& selector) {
  v1::Selector out;
  size_t colon = selector.find(':');
  out.set_type(selector.substr(0, colon));
  if (colon != std::string::npos) out.set_value(selector.substr(colon + 1));
  return out;
}

void AuthorityJwtMinter::mint(const mtls::SpiffeId& subject, std::vector<std::string> audience, Done done) const {
  auto target = target_.lock();
  if (!target) return done(make_error(ErrorCode::kUnavailable, "the attestation agent has stopped"));
  v1::MintJwtSvidRequest req;
  for (const auto& s : selectors_) *req.add_selectors() = selector_to_proto(s);
  req.set_spiffe_id(std::string(subject.str()));
  for (auto& a : audience) req.add_audience(std::move(a));
  target->loop.post([target, req = std::move(req), done = std::move(done)]() mutable {
    if (!target->alive) return done(make_error(ErrorCode::kUnavailable, "the attestation agent has stopped"));
    target->api.mint_jwt_svid(std::move(req), [done = std::move(done)](grpc::GrpcResult<v1::MintJwtSvidResponse> r) {
      if (!r.ok()) {
        ErrorCode code = r.status().code == grpc::StatusCode::kPermissionDenied ? ErrorCode::kPermissionDenied
                                                                              : ErrorCode::kUnavailable;
        return done(make_error(code, "authority refused MintJwtSvid: " + r.status().message));
      }
      done(std::move(*r.value().mutable_token()));
    });
  });
}

}  // namespace portcullis::attest::agent
