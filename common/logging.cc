#include "common/logging.h"

#include <memory>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace portcullis {

std::optional<spdlog::level::level_enum> parse_log_level(std::string_view name) {
  if (name == "trace") return spdlog::level::trace;
  if (name == "debug") return spdlog::level::debug;
  if (name == "info") return spdlog::level::info;
  if (name == "warning" || name == "warn") return spdlog::level::warn;
  if (name == "error") return spdlog::level::err;
  if (name == "critical") return spdlog::level::critical;
  if (name == "off") return spdlog::level::off;
  return std::nullopt;
}

namespace {
std::string g_log_path;  // written once in configure_logging, before any thread starts
}

Status configure_logging(std::string_view level, const std::string& path) {
  g_log_path = path;
  auto parsed = parse_log_level(level);
  if (!parsed) {
    return make_error(ErrorCode::kInvalidArgument, "unknown log level '" + std::string(level) + "'");
  }
  std::shared_ptr<spdlog::logger> logger;
  try {
    if (path.empty()) {
      logger = std::make_shared<spdlog::logger>("portcullis",
                                                std::make_shared<spdlog::sinks::stderr_sink_mt>());
    } else {
      logger = std::make_shared<spdlog::logger>(
          "portcullis", std::make_shared<spdlog::sinks::basic_file_sink_mt>(path));
    }
  } catch (const spdlog::spdlog_ex& e) {
    return make_error(ErrorCode::kIo, "cannot open log file '" + path + "': " + e.what());
  }
  // Envoy's default format, so operators' log tooling keeps working.
  logger->set_pattern("[%Y-%m-%d %T.%e][%t][%l][%n] %v");
  logger->set_level(*parsed);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
  // Info lines reach the file within a second without a write(2) per line.
  spdlog::flush_every(std::chrono::seconds(1));
  return {};
}

bool set_log_level(std::string_view name) {
  auto parsed = parse_log_level(name);
  if (!parsed) return false;
  spdlog::set_level(*parsed);
  return true;
}


Status reopen_log_file() {
  if (g_log_path.empty()) return {};
  // Recreating the sink reopens the path, so a file logrotate moved away is replaced by a new one.
  auto level = spdlog::level::to_string_view(spdlog::default_logger()->level());
  return configure_logging(std::string_view(level.data(), level.size()), g_log_path);
}

}  // namespace portcullis
