// SPDX-License-Identifier: Apache-2.0
//
// GatehouseStore: users, roles, permissions and sessions behind one protocol, with the embedded
// SQLite implementation (the default, `database: sqlite:PATH`) and PostgreSQL through libpq.
// Every call runs on a bounded thread pool, never on an event loop. Built by the issuer issue;
// the module exists now so that the package layout shows the architecture and the build checks
// that libsqlite3 and libpq are installed (this target links both).
