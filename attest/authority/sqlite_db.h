#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/result.h"

struct sqlite3;
struct sqlite3_stmt;

namespace portcullis::attest::authority {

// Statement is a borrowed, bound view of one cached prepared statement. Binding indexes are
// 1-based as in SQLite. It resets and clears its bindings when it goes out of scope, so the cached
// statement is ready for the next user and never holds a read transaction open.
class Statement {
 public:
  Statement(sqlite3_stmt* stmt, sqlite3* db) : stmt_(stmt), db_(db) {}
  Statement(Statement&& other) noexcept : stmt_(other.stmt_), db_(other.db_) { other.stmt_ = nullptr; }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  Statement& operator=(Statement&&) = delete;
  ~Statement();

  Statement& bind(int index, std::string_view text);
  Statement& bind(int index, int64_t value);
  Statement& bind_null(int index);
  // bind_text_or_null binds NULL for an empty string (for optional, indexed columns).
  Statement& bind_text_or_null(int index, std::string_view text);

  // step runs the statement one step: true when a row is available, false when done. Errors carry
  // SQLite's message; SQLITE_CONSTRAINT maps to kAlreadyExists so callers can report duplicates.
  Result<bool> step();
  // run steps until done (for statements that return no rows, or whose rows are not needed).
  Status run();

  std::string text(int column) const;
  int64_t int64(int column) const;
  bool is_null(int column) const;

 private:
  sqlite3_stmt* stmt_;
  sqlite3* db_;
};

// SqliteDb owns one SQLite connection and its prepared-statement cache. Not thread-safe: the
// owner serializes every call (AuthorityStore holds one mutex around it).
class SqliteDb {
 public:
  // open opens (creating if needed) the database at `path`. The caller sets pragmas.
  static Result<std::unique_ptr<SqliteDb>> open(const std::string& path);
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  // exec runs one or more SQL statements that return no needed rows.
  Status exec(std::string_view sql);
  // prepare returns the cached statement for `sql`, compiling it on first use.
  Result<Statement> prepare(const std::string& sql);
  // query_text runs a one-row, one-column query (e.g. a PRAGMA) and returns its text.
  Result<std::string> query_text(const std::string& sql);
  // changes is the number of rows the last INSERT/UPDATE/DELETE touched.
  int64_t changes() const;

  std::string error_message() const;

 private:
  explicit SqliteDb(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

// Transaction is a BEGIN IMMEDIATE ... COMMIT scope: it takes the write lock up front (so a
// writer never fails half-way with SQLITE_BUSY on upgrade) and rolls back unless commit() ran.
class Transaction {
 public:
  static Result<Transaction> begin(SqliteDb& db);
  Transaction(Transaction&& other) noexcept : db_(other.db_) { other.db_ = nullptr; }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  Transaction& operator=(Transaction&&) = delete;
  ~Transaction();
  Status commit();

 private:
  explicit Transaction(SqliteDb& db) : db_(&db) {}
  SqliteDb* db_;
};

}  // namespace portcullis::attest::authority
