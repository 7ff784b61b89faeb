#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "config/errors.h"

namespace portcullis::config {

// Node is a YAML node together with where it came from: the file, its YAML path and a fallback
// location for nodes yaml-cpp cannot place (an empty value). Copies are cheap handles to the same
// document. Not thread-safe (yaml-cpp's nodes are not); parse on one thread.
class Node {
 public:
  Node();
  Node(YAML::Node yaml, std::string path, std::shared_ptr<const std::string> file,
       Location fallback = {});
  Node(const Node&) = default;
  // YAML::Node's own assignment writes through to the node it refers to, corrupting the
  // document; ours rebinds the handle instead.
  Node& operator=(const Node& other);

  const YAML::Node& yaml() const { return yaml_; }
  const std::string& path() const { return path_; }
  const std::string& file() const { return *file_; }
  Location location() const;

  bool is_map() const { return yaml_.IsMap(); }
  bool is_list() const { return yaml_.IsSequence(); }
  bool is_scalar() const { return yaml_.IsScalar(); }
  bool is_null() const { return !yaml_.IsDefined() || yaml_.IsNull(); }

  // child_at builds the Node for a map value or list element with the right path and location.
  Node child(const YAML::Node& key, const YAML::Node& value) const;
  Node element(size_t index, const YAML::Node& value) const;

  // kind_name describes the node's YAML kind for error messages ("a map", "a list", ...).
  std::string kind_name() const;

 private:
  YAML::Node yaml_;
  std::string path_;
  std::shared_ptr<const std::string> file_;
  Location fallback_;
};

// Readers of typed scalars. Each reports a located error and returns nullopt on bad input.
std::optional<std::string> read_string(const Node& node, ErrorList& errors);
std::optional<uint64_t> read_uint(const Node& node, ErrorList& errors, uint64_t min, uint64_t max);
std::optional<bool> read_bool(const Node& node, ErrorList& errors);
std::optional<double> read_double(const Node& node, ErrorList& errors, double min, double max);
// read_duration accepts Envoy's duration forms: protobuf JSON strings (`1s`, `0.5s`), the
// unit suffixes `ns`, `us`, `ms`, `m`, `h` (`250ms`), and `{seconds, nanos}` maps. Negative
// durations and ones above ten years are errors.
std::optional<std::chrono::nanoseconds> read_duration(const Node& node, ErrorList& errors);
// read_list returns the elements of a YAML sequence (an error and empty list otherwise).
std::vector<Node> read_list(const Node& node, ErrorList& errors);

// parse_duration is the string half of read_duration; nullopt if `text` is not a duration.
std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text);

// MapReader walks a YAML map field by field. Every key the caller asks for is marked known;
// finish() (also run by the destructor) reports all unknown and duplicate keys, as Envoy's
// strict proto validation does. If the node is not a map, that is reported once and every
// lookup returns nothing.
class MapReader {
 public:
  MapReader(const Node& node, ErrorList& errors);
  ~MapReader();
  MapReader(const MapReader&) = delete;
  MapReader& operator=(const MapReader&) = delete;

  bool valid() const { return valid_; }
  const Node& node() const { return node_; }

  // get returns the field's node, or nullopt (and an error if `required`) when absent. An
  // explicit `null` value counts as absent.
  std::optional<Node> get(std::string_view key, bool required = false);

  // Typed fields: true when `*out` was set; errors are reported, absence is silent unless
  // `required`.
  bool string(std::string_view key, std::string* out, bool required = false);
  bool uint(std::string_view key, uint64_t min, uint64_t max, uint64_t* out, bool required = false);
  bool uint32(std::string_view key, uint32_t min, uint32_t max, uint32_t* out, bool required = false);
  bool boolean(std::string_view key, bool* out, bool required = false);
  bool duration(std::string_view key, std::chrono::nanoseconds* out, bool required = false);
  std::vector<Node> list(std::string_view key, bool required = false);

  void finish();
  ErrorList& errors() { return errors_; }

 private:
  Node node_;
  ErrorList& errors_;
  bool valid_ = false;
  bool finished_ = false;
  std::set<std::string, std::less<>> known_;
};

}  // namespace portcullis::config
