#pragma once

namespace portcullis::proxy {

// Process exit codes (documented in README.md, "Exit codes").
inline constexpr int kExitOk = 0;
inline constexpr int kExitBadConfig = 1;  // the config file is missing, unreadable or invalid
inline constexpr int kExitUsage = 2;      // bad command-line flags
inline constexpr int kExitStartup = 3;    // a listener or the admin address could not be bound
inline constexpr int kExitLogging = 4;    // the log file could not be opened
// Operator commands (entry, bundle, token) that talk to an authority's admin socket:
inline constexpr int kExitUnreachable = 5;  // the admin socket cannot be reached, or the call timed out
inline constexpr int kExitRefused = 6;      // the authority answered with an error (not found, invalid, denied)

}  // namespace portcullis::proxy
