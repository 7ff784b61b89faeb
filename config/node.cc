#include "config/node.h"

#include <charconv>
#include <cmath>
#include <map>

namespace portcullis::config {
namespace {

constexpr std::chrono::nanoseconds kMaxDuration = std::chrono::hours(24 * 365 * 10);


}  // namespace

Node::Node(YAML::Node yaml, std::string path, std::shared_ptr<const std::string> file,
           Location fallback)
    : yaml_(std::move(yaml)), path_(std::move(path)), file_(std::move(file)),
      fallback_(std::move(fallback)) {
  if (fallback_.file.empty()) fallback_.file = *file_;
}

Node::Node() : file_(std::make_shared<const std::string>()) {}

Node& Node::operator=(const Node& other) {
  if (this == &other) return *this;
  yaml_.reset(other.yaml_);
  path_ = other.path_;
  file_ = other.file_;
  fallback_ = other.fallback_;
  return *this;
}

Location Node::location() const {
  if (yaml_.IsDefined()) {
    YAML::Mark m = yaml_.Mark();
    if (!m.is_null() && m.line >= 0) return Location{*file_, m.line + 1, m.column + 1};
  }
  return fallback_;
}

Node Node::child(const YAML::Node& key, const YAML::Node& value) const {
  std::string key_text = key.IsScalar() ? key.Scalar() : std::string("?");
  Location fallback = location();
  YAML::Mark km = key.Mark();
  if (!km.is_null() && km.line >= 0) fallback = Location{*file_, km.line + 1, km.column + 1};
  return Node(value, path_.empty() ? key_text : path_ + "." + key_text, file_, fallback);
}

Node Node::element(size_t index, const YAML::Node& value) const {
  return Node(value, path_ + "[" + std::to_string(index) + "]", file_, location());
}

std::string Node::kind_name() const {
  if (is_null()) return "null";
  if (yaml_.IsMap()) return "a map";
  if (yaml_.IsSequence()) return "a list";
  return "a scalar";
}

std::optional<std::string> read_string(const Node& node, ErrorList& errors) {
  if (!node.is_scalar()) {
    errors.add(node.location(), node.path(), "expected a string, got " + node.kind_name());
    return std::nullopt;
  }
  return node.yaml().Scalar();
}

std::optional<uint64_t> read_uint(const Node& node, ErrorList& errors, uint64_t min, uint64_t max) {
  if (!node.is_scalar()) {
    errors.add(node.location(), node.path(), "expected an integer, got " + node.kind_name());
    return std::nullopt;
  }
  const std::string& s = node.yaml().Scalar();
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec == std::errc::result_out_of_range) {
    errors.add(node.location(), node.path(), "value '" + s + "' is out of range [" +
                                                 std::to_string(min) + ", " + std::to_string(max) + "]");
    return std::nullopt;
  }
  if (ec != std::errc() || ptr != s.data() + s.size() || s.empty()) {
    errors.add(node.location(), node.path(), "expected a non-negative integer, got '" + s + "'");
    return std::nullopt;
  }
  if (v < min || v > max) {
    errors.add(node.location(), node.path(), "value " + s + " is out of range [" +
                                                 std::to_string(min) + ", " + std::to_string(max) + "]");
    return std::nullopt;
  }
  return v;
}

std::optional<bool> read_bool(const Node& node, ErrorList& errors) {
  if (node.is_scalar()) {
    const std::string& s = node.yaml().Scalar();
    if (s == "true" || s == "True" || s == "TRUE") return true;
    if (s == "false" || s == "False" || s == "FALSE") return false;
  }
  errors.add(node.location(), node.path(),
             "expected true or false, got " +
                 (node.is_scalar() ? "'" + node.yaml().Scalar() + "'" : node.kind_name()));
  return std::nullopt;
}

std::optional<double> read_double(const Node& node, ErrorList& errors, double min, double max) {
  if (node.is_scalar()) {
    const std::string& s = node.yaml().Scalar();
    double v = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc() && ptr == s.data() + s.size() && std::isfinite(v)) {
      if (v >= min && v <= max) return v;
      errors.add(node.location(), node.path(),
                 "value " + s + " is out of range [" + std::to_string(min) + ", " +
                     std::to_string(max) + "]");
      return std::nullopt;
    }
  }
  errors.add(node.location(), node.path(), "expected a number, got " + node.kind_name());
  return std::nullopt;
}

std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text) {
  struct Unit {
    std::string_view suffix;
    double ns;
  };
  // Longest suffixes first so "ms" is not read as "s".
  static constexpr Unit kUnits[] = {{"ns", 1},     {"us", 1e3},   {"ms", 1e6},
                                    {"s", 1e9},    {"m", 60e9},   {"h", 3600e9}};
  for (const Unit& u : kUnits) {
    if (text.size() <= u.suffix.size() || !text.ends_with(u.suffix)) continue;
    std::string_view number = text.substr(0, text.size() - u.suffix.size());
    if (number.empty() || number.front() == '-' || number.front() == '+') return std::nullopt;
    double v = 0;
    auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), v);
    if (ec != std::errc() || ptr != number.data() + number.size() || !std::isfinite(v)) {
      return std::nullopt;
    }
    double ns = v * u.ns;
    if (ns > static_cast<double>(kMaxDuration.count())) return std::nullopt;
    return std::chrono::nanoseconds(static_cast<int64_t>(std::llround(ns)));
  }
  return std::nullopt;
}

std::optional<std::chrono::nanoseconds> read_duration(const Node& node, ErrorList& errors) {
  if (node.is_scalar()) {
    if (auto d = parse_duration(node.yaml().Scalar())) return d;
    errors.add(node.location(), node.path(),
               "invalid duration '" + node.yaml().Scalar() +
                   "' (expected e.g. 1s, 0.5s, 250ms; at most 10 years, not negative)");
    return std::nullopt;
  }
  if (node.is_map()) {
    MapReader r(node, errors);
    uint64_t seconds = 0, nanos = 0;
    r.uint("seconds", 0, 315360000, &seconds);
    r.uint("nanos", 0, 999999999, &nanos);
    return std::chrono::seconds(seconds) + std::chrono::nanoseconds(nanos);
  }
  errors.add(node.location(), node.path(), "expected a duration, got " + node.kind_name());
  return std::nullopt;
}

std::vector<Node> read_list(const Node& node, ErrorList& errors) {
  std::vector<Node> out;
  if (!node.is_list()) {
    errors.add(node.location(), node.path(), "expected a list, got " + node.kind_name());
    return out;
  }
  size_t i = 0;
  for (const auto& element : node.yaml()) out.push_back(node.element(i++, element));
  return out;
}

MapReader::MapReader(const Node& node, ErrorList& errors) : node_(node), errors_(errors) {
  if (node.is_map()) {
    valid_ = true;
  } else {
    errors.add(node.location(), node.path(), "expected a map, got " + node.kind_name());
  }
}

MapReader::~MapReader() { finish(); }

std::optional<Node> MapReader::get(std::string_view key, bool required) {
  known_.emplace(key);
  if (!valid_) return std::nullopt;
  for (const auto& kv : node_.yaml()) {
    if (kv.first.IsScalar() && kv.first.Scalar() == key) {
      Node child = node_.child(kv.first, kv.second);
      if (child.is_null()) break;
      return child;
    }
  }
  if (required) {
    std::string where = node_.path().empty() ? std::string(key) : node_.path() + "." + std::string(key);
    errors_.add(node_.location(), where, "missing required field");
  }
  return std::nullopt;
}

bool MapReader::string(std::string_view key, std::string* out, bool required) {
  auto n = get(key, required);
  if (!n) return false;
  auto v = read_string(*n, errors_);
  if (!v) return false;
  *out = std::move(*v);
  return true;
}

bool MapReader::uint(std::string_view key, uint64_t min, uint64_t max, uint64_t* out, bool required) {
  auto n = get(key, required);
  if (!n) return false;
  auto v = read_uint(*n, errors_, min, max);
  if (!v) return false;
  *out = *v;
  return true;
}

bool MapReader::uint32(std::string_view key, uint32_t min, uint32_t max, uint32_t* out,
                       bool required) {
  uint64_t v = 0;
  if (!uint(key, min, max, &v, required)) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

bool MapReader::boolean(std::string_view key, bool* out, bool required) {
  auto n = get(key, required);
  if (!n) return false;
  auto v = read_bool(*n, errors_);
  if (!v) return false;
  *out = *v;
  return true;
}

bool MapReader::duration(std::string_view key, std::chrono::nanoseconds* out, bool required) {
  auto n = get(key, required);
  if (!n) return false;
  auto v = read_duration(*n, errors_);
  if (!v) return false;
  *out = *v;
  return true;
}

std::vector<Node> MapReader::list(std::string_view key, bool required) {
  auto n = get(key, required);
  if (!n) return {};
  return read_list(*n, errors_);
}

void MapReader::finish() {
  if (finished_ || !valid_) return;
  finished_ = true;
  std::map<std::string, int, std::less<>> seen;
  for (const auto& kv : node_.yaml()) {
    Node key_node(kv.first, node_.path(), std::make_shared<const std::string>(node_.file()),
                  node_.location());
    if (!kv.first.IsScalar()) {
      errors_.add(key_node.location(), node_.path(), "map keys must be strings");
      continue;
    }
    const std::string& key = kv.first.Scalar();
    std::string where = node_.path().empty() ? key : node_.path() + "." + key;
    if (++seen[key] == 2) errors_.add(key_node.location(), where, "duplicate field '" + key + "'");
    if (!known_.contains(key)) errors_.add(key_node.location(), where, "unknown field '" + key + "'");
  }
}

}  // namespace portcullis::config
