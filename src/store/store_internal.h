#pragma once
// Shared by the store's backends (not part of the public header): the text of each state as stored.

#include <string>

namespace meridian::store {

// The run states that are (or are not) terminal as an SQL list: "('passed','failed','aborted','errored')".
// Active runs are the rows in a known non-terminal state: a row whose state this version does not know is not
// resumed.
std::string RunStatesSql(bool terminal);

// The latest schema version: both backends have the same numbered migrations (one entry each per version),
// so a version means the same tables and columns on SQLite and PostgreSQL.
inline constexpr int kSchemaVersion = 5;

}  // namespace meridian::store
