#include "config/errors.h"

namespace portcullis::config {

std::string ConfigError::format() const {
  std::string out;
  out.reserve(location.file.size() + path.size() + message.size() + 24);
  out.append(location.file);
  if (location.line > 0) {
    out.append(":").append(std::to_string(location.line)).append(":").append(std::to_string(location.column));
  }
  out.append(": ");
  if (!path.empty()) out.append(path).append(": ");
  out.append(message);
  return out;
}

void ErrorList::add(Location location, std::string path, std::string message) {
  if (errors_.size() >= kMaxErrors) {
    ++dropped_;
    return;
  }
  errors_.push_back(ConfigError{std::move(location), std::move(path), std::move(message)});
}

std::string ErrorList::format() const {
  std::string out;
  for (const auto& e : errors_) out += e.format() + "\n";
  if (dropped_ > 0) out += "... and " + std::to_string(dropped_) + " more errors\n";
  return out;
}

}  // namespace portcullis::config
