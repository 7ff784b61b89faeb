#pragma once

#include <memory>

#include "config/node.h"
#include "filters/policy/rbac_engine.h"

namespace portcullis::filters {

// HTTP-level RBAC matchers, shared by Permission and Principal (Envoy uses the same messages in
// both). Both compile once per config, are immutable and thread-safe, and allocate nothing while
// matching (a header with several values is joined in a reused per-thread buffer).
//
// Without an HTTP view (RbacInput::http == nullptr: the network RBAC filter) they behave as in
// Envoy's network RBAC filter, which evaluates them against an empty request header map: every
// header is missing and url_path never matches.

// parse_header_matcher compiles Envoy's `config.route.v3.HeaderMatcher`. Semantics as Envoy's
// HeaderUtility: the header's values are joined with ","; a missing header matches nothing (not
// even with invert_match) unless treat_missing_header_as_empty, except present_match, which matches
// iff (present_match == header present) != invert_match; a matcher with only a name is
// present_match: true; a deprecated `exact_match: ""` matches any value. The method is matched as
// Envoy does it, with `name: ":method"`. nullptr after reporting errors.
std::unique_ptr<RbacMatcher> parse_header_matcher(const config::Node& node, config::ErrorList& errors);

// parse_url_path_matcher compiles Envoy's `type.matcher.v3.PathMatcher` ({path: StringMatcher}),
// matched against `:path` without its query string and fragment, not normalized or decoded.
// nullptr after reporting errors.
std::unique_ptr<RbacMatcher> parse_url_path_matcher(const config::Node& node, config::ErrorList& errors);

}  // namespace portcullis::filters
