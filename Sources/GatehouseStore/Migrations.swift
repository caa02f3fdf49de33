// SPDX-License-Identifier: Apache-2.0

/// The schema, as numbered migrations applied in order and recorded in `schema_migrations`.
/// Never edit an applied migration: add the next one.
enum Migrations {
    struct Migration: Sendable {
        let version: Int
        let sql: @Sendable (SQLDialect) -> String
    }

    static let all: [Migration] = [
        Migration(version: 1) { dialect in
            """
            CREATE TABLE users (
                id \(dialect.identityColumn),
                email TEXT NOT NULL UNIQUE,
                name TEXT,
                password_hash TEXT NOT NULL,
                created_at BIGINT NOT NULL
            );
            CREATE TABLE roles (name TEXT PRIMARY KEY, rank INTEGER NOT NULL);
            CREATE TABLE permissions (name TEXT PRIMARY KEY);
            CREATE TABLE role_permissions (
                role TEXT NOT NULL REFERENCES roles(name) ON DELETE CASCADE,
                permission TEXT NOT NULL REFERENCES permissions(name) ON DELETE CASCADE,
                PRIMARY KEY (role, permission)
            );
            CREATE TABLE user_roles (
                user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                role TEXT NOT NULL REFERENCES roles(name),
                PRIMARY KEY (user_id, role)
            );
            CREATE TABLE sessions (
                id TEXT PRIMARY KEY,
                user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                created_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                revoked_at BIGINT,
                refresh_hash TEXT NOT NULL,
                previous_refresh_hash TEXT,
                rotated_at BIGINT
            );
            CREATE INDEX sessions_user ON sessions (user_id);
            CREATE TABLE login_failures (key TEXT NOT NULL, at BIGINT NOT NULL);
            CREATE INDEX login_failures_key ON login_failures (key, at);
            INSERT INTO roles (name, rank) VALUES ('viewer', 1), ('editor', 2), ('admin', 3);
            INSERT INTO permissions (name) VALUES
                ('profile:read'), ('content:read'), ('content:write'), ('users:read'), ('users:write'), ('roles:write');
            INSERT INTO role_permissions (role, permission) VALUES
                ('viewer', 'profile:read'), ('viewer', 'content:read'),
                ('editor', 'profile:read'), ('editor', 'content:read'), ('editor', 'content:write'),
                ('admin', 'profile:read'), ('admin', 'content:read'), ('admin', 'content:write'),
                ('admin', 'users:read'), ('admin', 'users:write'), ('admin', 'roles:write');
            """
        },
        // Ended sessions in the order they ended, for the revocation feeds: a gateway asks for
        // everything after the last `seq` it saw. `expires_at` (ms) is when the last access token
        // the session can hold expires; past it the row is kept no longer.
        Migration(version: 2) { dialect in
            """
            CREATE TABLE revocations (
                seq \(dialect.sequenceColumn),
                session_id TEXT NOT NULL,
                revoked_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL
            );
            CREATE INDEX revocations_expiry ON revocations (expires_at);
            """
        },
        // Login attempts in flight, per email: an attempt takes a slot before its password is
        // checked, so parallel guesses cannot outrun the login limit (DESIGN.md, "Login limits").
        // A slot stops counting at `expires_at` (ms), so a process that dies mid-login leaks none.
        Migration(version: 3) { _ in
            """
            CREATE TABLE login_slots (
                id TEXT PRIMARY KEY,
                key TEXT NOT NULL,
                expires_at BIGINT NOT NULL
            );
            CREATE INDEX login_slots_key ON login_slots (key, expires_at);
            """
        },
    ]

    /// Applies what is pending, in one transaction. On PostgreSQL an advisory lock makes issuers
    /// that start together take turns: the first migrates, the others then find nothing to do.
    static func apply(on database: any SQLDatabase, now: Int64) throws(StoreError) -> [Int] {
        try database.withTransaction { connection throws(StoreError) in
            if database.dialect == .postgres {
                // 0x6761746568 = "gateh": any constant shared by every issuer.
                try connection.execute("SELECT pg_advisory_xact_lock(444234450024)")
            }
            try connection.executeScript(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)"
            )
            let applied = Set(try connection.execute("SELECT version FROM schema_migrations").compactMap { $0.integer(0) })
            var done: [Int] = []
            for migration in Self.all where !applied.contains(Int64(migration.version)) {
                try connection.executeScript(migration.sql(database.dialect))
                try connection.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)", .integer(Int64(migration.version)), .integer(now)
                )
                done.append(migration.version)
            }
            return done
        }
    }

    /// Versions not yet applied (the table may not exist yet).
    static func pending(on database: any SQLDatabase) throws(StoreError) -> [Int] {
        try database.withConnection { connection throws(StoreError) in
            let applied: Set<Int64>
            do throws(StoreError) {
                applied = Set(try connection.execute("SELECT version FROM schema_migrations").compactMap { $0.integer(0) })
            } catch where error.kind == .failed {
                applied = []
            }
            return Self.all.map(\.version).filter { !applied.contains(Int64($0)) }
        }
    }
}
