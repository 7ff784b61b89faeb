#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace portcullis::config {

// Location is a 1-based line and column in a named config file; line 0 means unknown.
struct Location {
  std::string file;
  int line = 0;
  int column = 0;
};

// ConfigError is one problem in a config document: where it is, its YAML path
// (`static_resources.listeners[0].name`) and what is wrong.
struct ConfigError {
  Location location;
  std::string path;
  std::string message;

  // format renders `file:line:column: path: message`, the form every config error is shown in.
  std::string format() const;
};

// ErrorList collects every problem found while loading a config, so an operator sees all of them
// at once. It stops recording after kMaxErrors so garbage input cannot grow it without bound.
class ErrorList {
 public:
  static constexpr size_t kMaxErrors = 100;

  void add(Location location, std::string path, std::string message);
  bool empty() const { return errors_.empty(); }
  size_t size() const { return errors_.size(); }
  const std::vector<ConfigError>& errors() const { return errors_; }
  // format renders one error per line, plus a line counting the ones dropped past kMaxErrors.
  std::string format() const;

 private:
  std::vector<ConfigError> errors_;
  size_t dropped_ = 0;
};

}  // namespace portcullis::config
