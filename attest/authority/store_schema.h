#pragma once

#include <string_view>
#include <vector>

#include "attest/authority/sqlite_db.h"
#include "common/result.h"

namespace portcullis::attest::authority {

// kStoreMigrations is the authority store's schema history: migration i (0-based) takes a database
// from PRAGMA user_version i to i+1. Append only: a released migration is never edited, or
// databases created by the old binary would differ from new ones at the same version.
const std::vector<std::string_view>& store_migrations();

// migrate_store brings the database to the newest version, each migration in its own transaction
// together with its user_version bump, so a crash leaves the database at a whole version. A
// database newer than this binary knows is refused (kFailedPrecondition) and left untouched: an
// older binary must not write to a schema it does not understand.
Status migrate_store(SqliteDb& db);

}  // namespace portcullis::attest::authority
