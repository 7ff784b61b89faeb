#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/node.h"
#include "config/string_matcher.h"
#include "filters/policy/rbac_input.h"

namespace portcullis::filters {

// RbacMatcher is one compiled node of a Permission or Principal tree. Immutable.
class RbacMatcher {
 public:
  virtual ~RbacMatcher() = default;
  virtual bool matches(const RbacInput& input) const = 0;
  // needs_http is true when this node (or a child) reads HTTP attributes (header, url_path).
  virtual bool needs_http() const { return false; }
};

enum class RbacAction { kAllow, kDeny, kLog };

struct RbacDecision {
  bool allowed = true;
  std::string matched_policy;  // empty when no policy matched
};

// RbacEngine is Envoy's `config.rbac.v3.RBAC` compiled once per config: policies in lexicographic
// order of their names; a policy matches when any permission and any principal match. ALLOW lets
// a connection through iff some policy matches, DENY iff none does, LOG always. Immutable and
// thread-safe; evaluation allocates only the matched policy's name.
class RbacEngine {
 public:
  struct Policy {
    std::string name;
    std::vector<std::unique_ptr<RbacMatcher>> permissions;
    std::vector<std::unique_ptr<RbacMatcher>> principals;
  };

  RbacEngine(RbacAction action, std::vector<Policy> policies)
      : action_(action), policies_(std::move(policies)) {}

  RbacDecision evaluate(const RbacInput& input) const;
  RbacAction action() const { return action_; }
  size_t policy_count() const { return policies_.size(); }
  // needs_http is true when some rule reads HTTP attributes, which a network filter lacks.
  bool needs_http() const;

 private:
  RbacAction action_;
  std::vector<Policy> policies_;
};

// parse_rbac compiles an Envoy RBAC message (`{action, policies}`), reporting every problem with
// its location. nullptr after errors.
std::shared_ptr<const RbacEngine> parse_rbac(const config::Node& node, config::ErrorList& errors);

}  // namespace portcullis::filters
