#include "filters/policy/rbac_http_matchers.h"

#include <cctype>
#include <charconv>
#include <optional>
#include <string>

#include "config/string_matcher.h"

namespace portcullis::filters {
namespace {

using config::ErrorList;
using config::MapReader;
using config::Node;
using config::StringMatcher;

// JoinedValue collects one header's values as Envoy's getAllOfHeaderAsString does: a single value
// is used in place; several are joined with "," into a per-thread buffer that keeps its capacity,
// so steady-state evaluation allocates nothing. One buffer per thread suffices because a matcher
// finishes with its value before any other header matcher runs.
class JoinedValue final : public HeaderValueSink {
 public:
  void add(std::string_view v) override {
    if (count_++ == 0) {
      first_ = v;
      return;
    }
    std::string& buf = buffer();
    if (count_ == 2) buf.assign(first_);
    buf.push_back(',');
    buf.append(v);
  }
  bool present() const { return count_ > 0; }
  std::string_view value() const { return count_ > 1 ? std::string_view(buffer()) : first_; }

 private:
  static std::string& buffer() {
    thread_local std::string b;
    return b;
  }
  size_t count_ = 0;
  std::string_view first_;
};

// Pseudo-headers come from HttpRequestView's fields, everything else from its lookup.
enum class Source { kMethod, kPath, kAuthority, kScheme, kLookup };

Source source_for(std::string_view lower_name) {
  if (lower_name == ":method") return Source::kMethod;
  if (lower_name == ":path") return Source::kPath;
  if (lower_name == ":authority") return Source::kAuthority;
  if (lower_name == ":scheme") return Source::kScheme;
  return Source::kLookup;
}

void collect(const RbacInput& in, Source source, std::string_view name, JoinedValue& out) {
  if (!in.http) return;  // network filter: an empty header map, as in Envoy
  const HttpRequestView& http = *in.http;
  std::string_view v;
  switch (source) {
    case Source::kMethod: v = http.method; break;
    case Source::kPath: v = http.path; break;
    case Source::kAuthority: v = http.authority; break;
    case Source::kScheme: v = http.scheme; break;
    case Source::kLookup:
      if (http.headers) http.headers->values(name, out);
      return;
  }
  if (!v.empty()) out.add(v);
}

// parse_int64 accepts what Envoy's absl::SimpleAtoi does: surrounding ASCII whitespace, an
// optional sign, base-10 digits, no overflow.
bool parse_int64(std::string_view s, int64_t* out) {
  constexpr std::string_view kSpace = " \t\n\v\f\r";
  size_t begin = s.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return false;
  s = s.substr(begin, s.find_last_not_of(kSpace) - begin + 1);
  if (s.front() == '+') {
    s.remove_prefix(1);
    if (s.empty() || s.front() == '-') return false;
  }
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

class HeaderMatcher final : public RbacMatcher {
 public:
  enum class Kind { kValue, kRange, kPresent };
  struct Spec {
    std::string name;  // lower-cased
    Kind kind = Kind::kPresent;
    std::optional<StringMatcher> value;  // kValue
    int64_t start = 0, end = 0;          // kRange: [start, end)
    bool present = true;                 // kPresent
    bool invert = false;
    bool treat_missing_as_empty = false;
  };

  explicit HeaderMatcher(Spec spec) : spec_(std::move(spec)), source_(source_for(spec_.name)) {}

  bool matches(const RbacInput& in) const override {
    JoinedValue v;
    collect(in, source_, spec_.name, v);
    if (spec_.kind == Kind::kPresent) return (spec_.present == v.present()) != spec_.invert;
    // Envoy: a missing header fails every value matcher, invert_match included.
    if (!v.present() && !spec_.treat_missing_as_empty) return false;
    return value_matches(v.value()) != spec_.invert;
  }
  bool needs_http() const override { return true; }

 private:
  bool value_matches(std::string_view value) const {
    if (spec_.kind == Kind::kValue) return spec_.value->matches(value);
    int64_t n = 0;
    return parse_int64(value, &n) && n >= spec_.start && n < spec_.end;
  }

  Spec spec_;
  Source source_;
};

class UrlPathMatcher final : public RbacMatcher {
 public:
  explicit UrlPathMatcher(StringMatcher path) : path_(std::move(path)) {}
  // Envoy's RBAC path matcher: no :path (or no HTTP at all) never matches; the query string and
  // fragment are cut off before matching.
  bool matches(const RbacInput& in) const override {
    if (!in.http || in.http->path.empty()) return false;
    std::string_view p = in.http->path;
    return path_.matches(p.substr(0, p.find_first_of("?#")));
  }
  bool needs_http() const override { return true; }

 private:
  StringMatcher path_;
};

void parse_header_name(MapReader& r, ErrorList& errors, std::string* out_name) {
  if (!r.string("name", out_name, true)) return;
  auto n = r.get("name");
  // Envoy's HTTP_HEADER_NAME (non-strict) rule: not empty, no NUL, CR or LF.
  if (out_name->empty()) {
    errors.add(n->location(), n->path(), "must not be empty");
  } else if (out_name->find_first_of(std::string_view("\0\r\n", 3)) != std::string::npos) {
    errors.add(n->location(), n->path(), "is not a valid header name");
  }
  // Envoy's header maps are keyed by lower-cased names; so is the matcher.
  for (char& c : *out_name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

bool read_int64(MapReader& r, std::string_view key, ErrorList& errors, int64_t* out) {
  auto n = r.get(key);
  if (!n) return false;  // proto3: an absent int64 is 0
  if (!n->is_scalar() || !parse_int64(n->yaml().Scalar(), out)) {
    errors.add(n->location(), n->path(), "expected a 64-bit integer");
    return false;
  }
  return true;
}

void parse_range(const Node& node, ErrorList& errors, HeaderMatcher::Spec* spec) {
  MapReader r(node, errors);
  if (!r.valid()) return;
  read_int64(r, "start", errors, &spec->start);
  read_int64(r, "end", errors, &spec->end);
  r.finish();
  // Envoy accepts an empty range and never matches it; under not_rule that would match everything.
  if (spec->start >= spec->end) errors.add(node.location(), node.path(), "start must be less than end");
}

// parse_specifier reads the header_match_specifier oneof into `spec`; returns how many were set.
int parse_specifier(MapReader& r, ErrorList& errors, HeaderMatcher::Spec* spec) {
  int set = 0;
  static constexpr std::pair<const char*, StringMatcher::Kind> kDeprecated[] = {
      {"exact_match", StringMatcher::Kind::kExact},
      {"prefix_match", StringMatcher::Kind::kPrefix},
      {"suffix_match", StringMatcher::Kind::kSuffix},
      {"contains_match", StringMatcher::Kind::kContains}};
  for (const auto& [key, kind] : kDeprecated) {
    std::string v;
    if (!r.string(key, &v)) continue;
    ++set;
    spec->kind = HeaderMatcher::Kind::kValue;
    if (v.empty() && kind != StringMatcher::Kind::kExact) {
      auto n = r.get(key);
      errors.add(n->location(), n->path(), "must not be empty");
    }
    // Envoy: an empty deprecated exact_match matches any value, which is what an empty prefix does.
    spec->value.emplace(v.empty() ? StringMatcher::Kind::kPrefix : kind, v, false, nullptr);
  }
  if (auto n = r.get("safe_regex_match")) {
    ++set;
    spec->kind = HeaderMatcher::Kind::kValue;
    spec->value = config::parse_regex_matcher(*n, errors);
  }
  if (auto n = r.get("string_match")) {
    ++set;
    spec->kind = HeaderMatcher::Kind::kValue;
    spec->value = config::parse_string_matcher(*n, errors);
  }
  if (auto n = r.get("range_match")) {
    ++set;
    spec->kind = HeaderMatcher::Kind::kRange;
    parse_range(*n, errors, spec);
  }
  if (r.boolean("present_match", &spec->present)) {
    ++set;
    spec->kind = HeaderMatcher::Kind::kPresent;
  }
  return set;
}

}  // namespace

std::unique_ptr<RbacMatcher> parse_header_matcher(const Node& node, ErrorList& errors) {
  size_t before = errors.size();
  MapReader r(node, errors);
  if (!r.valid()) return nullptr;
  HeaderMatcher::Spec spec;
  parse_header_name(r, errors, &spec.name);
  r.boolean("invert_match", &spec.invert);
  r.boolean("treat_missing_header_as_empty", &spec.treat_missing_as_empty);
  // No specifier at all is Envoy's present_match: true (Spec's default).
  if (parse_specifier(r, errors, &spec) > 1) {
    errors.add(node.location(), node.path(),
               "set only one of exact_match, safe_regex_match, range_match, present_match, prefix_match, "
               "suffix_match, contains_match or string_match");
  }
  r.finish();
  if (errors.size() != before) return nullptr;
  return std::make_unique<HeaderMatcher>(std::move(spec));
}

std::unique_ptr<RbacMatcher> parse_url_path_matcher(const Node& node, ErrorList& errors) {
  MapReader r(node, errors);
  if (!r.valid()) return nullptr;
  auto path = r.get("path", true);
  r.finish();
  if (!path) return nullptr;
  auto m = config::parse_string_matcher(*path, errors);
  return m ? std::make_unique<UrlPathMatcher>(std::move(*m)) : nullptr;
}

}  // namespace portcullis::filters
