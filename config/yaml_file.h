#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "config/node.h"

namespace portcullis::config {

// kDefaultMaxConfigBytes bounds what load_yaml_file reads (--max-config-bytes), so a huge or
// endless file cannot exhaust memory before parsing even starts.
inline constexpr size_t kDefaultMaxConfigBytes = 8 * 1024 * 1024;

// load_yaml_text parses one YAML document whose root must be a map. `file` names it in errors.
// Empty input, NUL bytes, invalid UTF-8, syntax errors and nesting deeper than yaml-cpp's guard
// are reported as located errors; it never throws.
std::optional<Node> load_yaml_text(const std::string& text, const std::string& file, ErrorList& errors);

// load_yaml_file reads at most `max_bytes` from `path` and calls load_yaml_text.
std::optional<Node> load_yaml_file(const std::string& path, size_t max_bytes, ErrorList& errors);

}  // namespace portcullis::config
