// SPDX-License-Identifier: Apache-2.0
// SQLite 3 (Debian libsqlite3-dev).
#ifndef CGATEHOUSE_SQLITE_SHIM_H
#define CGATEHOUSE_SQLITE_SHIM_H
#include <sqlite3.h>

// SQLITE_TRANSIENT is a macro casting -1 to a function pointer: Swift cannot import it.
static inline sqlite3_destructor_type CGatehouseSQLite_transient(void) {
    return SQLITE_TRANSIENT;
}
#endif
