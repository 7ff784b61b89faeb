#pragma once

#include <memory>
#include <string>
#include <vector>

#include "attest/agent/authority_api.h"
#include "common/grpc/call_context.h"
#include "mtls/svid_store.h"

namespace portcullis::attest::agent {

// MintTarget is what an AuthorityJwtMinter reaches through: the agent's loop and AuthorityApi.
// The agent owns it and clears `alive` (on the loop) before the api goes away.
struct MintTarget {
  grpc::Executor& loop;
  AuthorityApi& api;
  bool alive = true;  // loop-only
};

// AuthorityJwtMinter mints JWT-SVIDs for one workload view by asking the authority (MintJwtSvid
// with that workload's selectors): the authority holds the JWT signing key and checks the
// selectors entitle the subject. mint() may be called from any thread; it posts to the agent's
// loop, and `done` runs on that loop (an error when the agent is gone or the authority refuses).
class AuthorityJwtMinter final : public mtls::JwtMinter {
 public:
  AuthorityJwtMinter(std::weak_ptr<MintTarget> target, std::vector<std::string> selectors)
      : target_(std::move(target)), selectors_(std::move(selectors)) {}
  void mint(const mtls::SpiffeId& subject, std::vector<std::string> audience, Done done) const override;

 private:
  std::weak_ptr<MintTarget> target_;
  std::vector<std::string> selectors_;
};

// selector_to_proto splits "TYPE:KEY:VALUE" at the first colon.
v1::Selector selector_to_proto(const std::string& selector);

}  // namespace portcullis::attest::agent
