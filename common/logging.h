#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

#include "common/result.h"

namespace portcullis {

// parse_log_level accepts Envoy's level names (trace, debug, info, warning|warn, error,
// critical, off); nullopt for anything else.
std::optional<spdlog::level::level_enum> parse_log_level(std::string_view name);

// configure_logging installs the process-wide logger: stderr, or the file at `path` when it is
// non-empty. Call once from main before any thread starts; fails if the file cannot be opened.
Status configure_logging(std::string_view level, const std::string& path);

// reopen_log_file reopens the --log-path file after logrotate moved it (SIGUSR1). Call from one
// thread at a time; a failure keeps the old file.
Status reopen_log_file();

// set_log_level changes the level at run time (admin /logging). Thread-safe.
bool set_log_level(std::string_view name);

}  // namespace portcullis
