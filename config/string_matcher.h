#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "config/node.h"

namespace re2 {
class RE2;
}

namespace portcullis::config {

// StringMatcher is Envoy's `type.matcher.v3.StringMatcher`: exactly one of exact, prefix,
// suffix, contains or safe_regex (RE2, whole-string match), plus ignore_case for the first four.
// Immutable and thread-safe once built; matching allocates nothing.
class StringMatcher {
 public:
  enum class Kind { kExact, kPrefix, kSuffix, kContains, kRegex };

  StringMatcher(Kind kind, std::string value, bool ignore_case, std::shared_ptr<const re2::RE2> regex);

  bool matches(std::string_view input) const;
  Kind kind() const { return kind_; }
  const std::string& value() const { return value_; }
  bool ignore_case() const { return ignore_case_; }

 private:
  Kind kind_;
  std::string value_;  // lowercased when ignore_case
  bool ignore_case_;
  std::shared_ptr<const re2::RE2> regex_;
};

// parse_string_matcher reads a StringMatcher map, reporting every problem (no matcher, several,
// a regex RE2 rejects, ignore_case with safe_regex) into `errors`.
std::optional<StringMatcher> parse_string_matcher(const Node& node, ErrorList& errors);

// parse_regex_matcher reads Envoy's `type.matcher.v3.RegexMatcher` ({regex, google_re2}) into a
// whole-string RE2 matcher, reporting an empty or invalid regex into `errors`.
std::optional<StringMatcher> parse_regex_matcher(const Node& node, ErrorList& errors);

}  // namespace portcullis::config
