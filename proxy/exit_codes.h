#pragma once

namespace portcullis::proxy {

// Process exit codes (documented in README.md, "Exit codes").
inline constexpr int kExitOk = 0;
inline constexpr int kExitBadConfig = 1;  // the config file is missing, unreadable or invalid
inline constexpr int kExitUsage = 2;      // bad command-line flags
inline constexpr int kExitStartup = 3;    // a listener or the admin address could not be bound
inline constexpr int kExitLogging = 4;    // the log file could not be opened

}  // namespace portcullis::proxy
