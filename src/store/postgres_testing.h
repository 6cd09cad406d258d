#pragma once
// For tests only: a new empty database on the test PostgreSQL server that ctest's `postgres` fixture starts
// (tests/scripts/postgres.sh; its URL is in $MERIDIAN_TEST_POSTGRES/url). Each call makes its own database,
// so tests running at once never see each other's rows.

#include <fmt/format.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <string>

namespace meridian::store {

// The URL of a new database, or "" with `error` saying why (no fixture, server down).
inline std::string NewPostgresDatabase(std::string* error) {
  const char* dir = std::getenv("MERIDIAN_TEST_POSTGRES");
  if (!dir || !*dir) {
    *error =
        "MERIDIAN_TEST_POSTGRES is not set: run through ctest, whose `postgres` fixture starts the server "
        "(tests/scripts/postgres.sh start DIR, then MERIDIAN_TEST_POSTGRES=DIR)";
    return "";
  }
  std::ifstream in(std::string(dir) + "/url");
  std::string admin;
  if (!std::getline(in, admin) || admin.empty()) {
    *error = fmt::format("no {}/url: the postgres fixture did not start the server", dir);
    return "";
  }
  static std::atomic<int> counter{0};
  const std::string db = fmt::format("t_{}_{}_{}", ::getpid(), counter++, std::rand() % 100000);
  PGconn* c = PQconnectdb(admin.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    *error = fmt::format("cannot connect to the test server: {}", PQerrorMessage(c));
    PQfinish(c);
    return "";
  }
  PGresult* r = PQexec(c, fmt::format("CREATE DATABASE {}", db).c_str());
  const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  if (!ok) *error = fmt::format("CREATE DATABASE {}: {}", db, PQresultErrorMessage(r));
  PQclear(r);
  PQfinish(c);
  if (!ok) return "";
  // postgres://meridian@/postgres?host=… → postgres://meridian@/DB?host=…
  const size_t slash = admin.find("/postgres?");
  if (slash == std::string::npos) {
    *error = "unexpected test server URL " + admin;
    return "";
  }
  return admin.substr(0, slash + 1) + db + admin.substr(slash + 9);
}

}  // namespace meridian::store
