#include "config/string_matcher.h"

#include <algorithm>
#include <cctype>

#include <re2/re2.h>

namespace portcullis::config {
namespace {

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

bool equals_ci(std::string_view a, std::string_view lowered) {
  return a.size() == lowered.size() &&
         std::equal(a.begin(), a.end(), lowered.begin(), [](char x, char y) { return lower(x) == y; });
}

bool contains_ci(std::string_view haystack, std::string_view lowered) {
  if (lowered.empty()) return true;
  auto it = std::search(haystack.begin(), haystack.end(), lowered.begin(), lowered.end(),
                        [](char x, char y) { return lower(x) == y; });
  return it != haystack.end();
}

}  // namespace

StringMatcher::StringMatcher(Kind kind, std::string value, bool ignore_case, std::shared_ptr<const re2::RE2> regex)
    : kind_(kind), value_(std::move(value)), ignore_case_(ignore_case), regex_(std::move(regex)) {
  if (ignore_case_) std::transform(value_.begin(), value_.end(), value_.begin(), lower);
}

bool StringMatcher::matches(std::string_view in) const {
  switch (kind_) {
    case Kind::kExact:
      return ignore_case_ ? equals_ci(in, value_) : in == value_;
    case Kind::kPrefix:
      return in.size() >= value_.size() &&
             (ignore_case_ ? equals_ci(in.substr(0, value_.size()), value_) : in.starts_with(value_));
    case Kind::kSuffix:
      return in.size() >= value_.size() &&
             (ignore_case_ ? equals_ci(in.substr(in.size() - value_.size()), value_) : in.ends_with(value_));
    case Kind::kContains:
      return ignore_case_ ? contains_ci(in, value_) : in.find(value_) != std::string_view::npos;
    case Kind::kRegex:
      return RE2::FullMatch(re2::StringPiece(in.data(), in.size()), *regex_);
  }
  return false;
}

std::optional<StringMatcher> parse_regex_matcher(const Node& node, ErrorList& errors) {
  MapReader r(node, errors);
  std::string regex;
  bool has_regex = r.string("regex", &regex, true);
  (void)r.get("google_re2");  // deprecated, accepted and ignored as in Envoy
  r.finish();
  if (!has_regex) return std::nullopt;
  // Envoy requires a non-empty regex; an empty one would only match empty input, surely a typo.
  if (regex.empty()) {
    errors.add(node.location(), node.path() + ".regex", "must not be empty");
    return std::nullopt;
  }
  RE2::Options options;
  options.set_log_errors(false);
  auto compiled = std::make_shared<const re2::RE2>(regex, options);
  if (!compiled->ok()) {
    errors.add(node.location(), node.path() + ".regex", "invalid RE2 regex: " + compiled->error());
    return std::nullopt;
  }
  return StringMatcher(StringMatcher::Kind::kRegex, std::move(regex), false, std::move(compiled));
}

std::optional<StringMatcher> parse_string_matcher(const Node& node, ErrorList& errors) {
  size_t before = errors.size();
  MapReader r(node, errors);
  if (!r.valid()) return std::nullopt;
  bool ignore_case = false;
  r.boolean("ignore_case", &ignore_case);
  std::optional<StringMatcher> out;
  int kinds = 0;
  static constexpr std::pair<const char*, StringMatcher::Kind> kPlain[] = {
      {"exact", StringMatcher::Kind::kExact},
      {"prefix", StringMatcher::Kind::kPrefix},
      {"suffix", StringMatcher::Kind::kSuffix},
      {"contains", StringMatcher::Kind::kContains}};
  for (const auto& [key, kind] : kPlain) {
    std::string value;
    if (r.string(key, &value)) {
      ++kinds;
      // Envoy requires prefix/suffix/contains to be non-empty: an empty one matches everything.
      if (value.empty() && kind != StringMatcher::Kind::kExact) {
        errors.add(node.location(), node.path() + "." + key, "must not be empty");
      }
      out.emplace(kind, value, ignore_case, nullptr);
    }
  }
  if (auto re = r.get("safe_regex")) {
    ++kinds;
    if (ignore_case) {
      errors.add(node.location(), node.path() + ".ignore_case", "ignore_case has no effect on safe_regex");
    } else if (auto m = parse_regex_matcher(*re, errors)) {
      out = std::move(m);
    }
  }
  r.finish();
  if (kinds != 1) {
    errors.add(node.location(), node.path(),
               kinds == 0 ? "set one of exact, prefix, suffix, contains or safe_regex"
                          : "set only one of exact, prefix, suffix, contains or safe_regex");
  }
  if (errors.size() != before) return std::nullopt;
  return out;
}

}  // namespace portcullis::config
