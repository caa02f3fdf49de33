// SPDX-License-Identifier: Apache-2.0

/// A user as the issuer shows it: roles ordered highest first, permissions the union over them.
public struct UserRecord: Sendable, Equatable {
    public var id: Int64
    public var email: String
    public var name: String?
    /// Milliseconds since the epoch.
    public var createdAt: Int64
    public var roles: [String]
    public var permissions: [String]

    /// The highest role (admin > editor > viewer), the access token's `role`.
    public var primaryRole: String? { self.roles.first }
}

/// One ended session in the revocation log.
public struct RevocationRecord: Sendable, Equatable {
    /// Its place in the log: the cursor of the feeds.
    public var seq: Int64
    public var sessionID: String
    /// Milliseconds since the epoch: when every access token of the session has expired.
    public var expiresAt: Int64

    public init(seq: Int64, sessionID: String, expiresAt: Int64) {
        self.seq = seq
        self.sessionID = sessionID
        self.expiresAt = expiresAt
    }
}

/// What a refresh did to its session.
public enum RefreshOutcome: Sendable, Equatable {
    /// The presented token was the current one: the session now expects the next one.
    case rotated(userID: Int64)
    /// The presented token was rotated moments ago (within the reuse interval) into the one the
    /// session expects now: the caller gets that same next token; nothing changes.
    case replayed(userID: Int64)
    /// The presented token was used before, outside the interval: the session is now revoked.
    case reused
    /// No such session, or it was revoked or has expired.
    case invalid
}

/// Users, roles, sessions and login failures on SQLite or PostgreSQL. The queries are written
/// once; `SQLDatabase` is what differs. Every method blocks: call it from a thread pool.
///
/// Refresh tokens never reach the database: sessions keep the SHA-256 of the token's `jti` only.
public final class Store: Sendable {
    public let database: any SQLDatabase

    public init(database: any SQLDatabase) {
        self.database = database
    }

    /// Opens `sqlite:PATH` or a libpq conninfo string / `postgres://` URI.
    public static func open(_ url: String, connections: Int = 4) throws(StoreError) -> Store {
        if url.hasPrefix("sqlite:") {
            return Store(database: try SQLiteDatabase(path: String(url.dropFirst("sqlite:".count))))
        }
        return Store(database: try PostgresDatabase(conninfo: url, maximumConnections: connections))
    }

    // MARK: Schema

    /// Applies pending migrations; returns the versions applied (none when up to date).
    @discardableResult
    public func migrate(now: Int64) throws(StoreError) -> [Int] {
        try Migrations.apply(on: self.database, now: now)
    }

    public func pendingMigrations() throws(StoreError) -> [Int] {
        try Migrations.pending(on: self.database)
    }

    /// A trivial round trip (for `/readyz`).
    public func ping() throws(StoreError) {
        try self.database.withConnection { connection throws(StoreError) in _ = try connection.execute("SELECT 1") }
    }

    // MARK: Users

    /// Creates a user with one role; `uniqueViolation` when the email is taken, `notFound` when
    /// the role does not exist.
    public func createUser(email: String, name: String?, passwordHash: String, role: String, now: Int64) throws(StoreError) -> UserRecord {
        try self.database.withTransaction { connection throws(StoreError) in
            guard try !connection.execute("SELECT name FROM roles WHERE name = $1", .text(role)).isEmpty else {
                throw StoreError(.notFound, "no role named \(role)")
            }
            let rows = try connection.execute(
                "INSERT INTO users (email, name, password_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
                .text(email), name.map(SQLValue.text) ?? .null, .text(passwordHash), .integer(now)
            )
            guard let id = rows.first?.integer(0) else { throw StoreError(.failed, "INSERT returned no id") }
            try connection.execute("INSERT INTO user_roles (user_id, role) VALUES ($1, $2)", .integer(id), .text(role))
            guard let user = try Self.user(id: id, on: connection) else { throw StoreError(.failed, "the new user vanished") }
            return user
        }
    }

    /// The id and password hash of the user with this (normalised) email.
    public func credentials(email: String) throws(StoreError) -> (id: Int64, passwordHash: String)? {
        try self.database.withConnection { connection throws(StoreError) in
            guard let row = try connection.execute("SELECT id, password_hash FROM users WHERE email = $1", .text(email)).first,
                let id = row.integer(0), let hash = row.text(1)
            else { return nil }
            return (id, hash)
        }
    }

    public func user(id: Int64) throws(StoreError) -> UserRecord? {
        try self.database.withConnection { connection throws(StoreError) in try Self.user(id: id, on: connection) }
    }

    public func user(email: String) throws(StoreError) -> UserRecord? {
        try self.database.withConnection { connection throws(StoreError) in
            guard let id = try connection.execute("SELECT id FROM users WHERE email = $1", .text(email)).first?.integer(0) else {
                return nil
            }
            return try Self.user(id: id, on: connection)
        }
    }

    /// The user, its roles and its permissions in one statement (one round trip, and on SQLite
    /// one read transaction: one lock of the file instead of three). Rows are tagged: `u` the
    /// user (email, name, created_at), `r` a role (name, rank), `p` a permission.
    static func user(id: Int64, on connection: any SQLConnection) throws(StoreError) -> UserRecord? {
        let rows = try connection.execute(
            """
            SELECT 'u' AS kind, email AS value, name AS extra, created_at AS number FROM users WHERE id = $1
            UNION ALL
            SELECT 'r', r.name, CAST(NULL AS TEXT), r.rank FROM user_roles ur JOIN roles r ON r.name = ur.role WHERE ur.user_id = $1
            UNION ALL
            SELECT DISTINCT 'p', rp.permission, CAST(NULL AS TEXT), 0 FROM user_roles ur JOIN role_permissions rp ON rp.role = ur.role
            WHERE ur.user_id = $1
            ORDER BY kind, number DESC, value
            """,
            .integer(id)
        )
        var user: (email: String, name: String?, createdAt: Int64)?
        var roles: [String] = []
        var permissions: [String] = []
        for row in rows {
            guard let value = row.text(1) else { continue }
            switch row.text(0) {
            case "u": user = row.integer(3).map { (value, row.text(2), $0) }
            case "r": roles.append(value)
            case "p": permissions.append(value)
            default: break
            }
        }
        guard let user else { return nil }
        return UserRecord(id: id, email: user.email, name: user.name, createdAt: user.createdAt, roles: roles, permissions: permissions)
    }

    public func setPasswordHash(userID: Int64, _ hash: String) throws(StoreError) {
        try self.database.withConnection { connection throws(StoreError) in
            _ = try connection.execute("UPDATE users SET password_hash = $1 WHERE id = $2", .text(hash), .integer(userID))
        }
    }

    /// Gives the user `role` (no change when it already has it).
    public func grantRole(email: String, role: String) throws(StoreError) {
        try self.database.withTransaction { connection throws(StoreError) in
            let userID = try Self.existingUserAndRole(email: email, role: role, on: connection)
            let held = try connection.execute("SELECT 1 FROM user_roles WHERE user_id = $1 AND role = $2", .integer(userID), .text(role))
            if held.isEmpty {
                try connection.execute("INSERT INTO user_roles (user_id, role) VALUES ($1, $2)", .integer(userID), .text(role))
            }
        }
    }

    /// Takes `role` from the user (no change when it does not have it).
    public func revokeRole(email: String, role: String) throws(StoreError) {
        try self.database.withTransaction { connection throws(StoreError) in
            let userID = try Self.existingUserAndRole(email: email, role: role, on: connection)
            try connection.execute("DELETE FROM user_roles WHERE user_id = $1 AND role = $2", .integer(userID), .text(role))
        }
    }

    private static func existingUserAndRole(email: String, role: String, on connection: any SQLConnection) throws(StoreError) -> Int64 {
        guard let userID = try connection.execute("SELECT id FROM users WHERE email = $1", .text(email)).first?.integer(0) else {
            throw StoreError(.notFound, "no user with email \(email)")
        }
        guard try !connection.execute("SELECT 1 FROM roles WHERE name = $1", .text(role)).isEmpty else {
            throw StoreError(.notFound, "no role named \(role) (roles: viewer, editor, admin)")
        }
        return userID
    }

    /// Role names, highest first.
    public func roles() throws(StoreError) -> [String] {
        try self.database.withConnection { connection throws(StoreError) in
            try connection.execute("SELECT name FROM roles ORDER BY rank DESC").compactMap { $0.text(0) }
        }
    }

    // MARK: Sessions

    /// A new session (every register and login) expecting the refresh token whose `jti` hashes to
    /// `refreshHash`.
    public func createSession(id: String, userID: Int64, refreshHash: String, now: Int64, expiresAt: Int64) throws(StoreError) {
        try self.database.withConnection { connection throws(StoreError) in
            _ = try connection.execute(
                "INSERT INTO sessions (id, user_id, created_at, expires_at, refresh_hash) VALUES ($1, $2, $3, $4, $5)",
                .text(id), .integer(userID), .integer(now), .integer(expiresAt), .text(refreshHash)
            )
        }
    }

    /// Rotates the session's refresh token in one transaction (the row is locked while read and
    /// written, so two concurrent refreshes make one rotation).
    ///
    /// - `presentedHash` is the current token: it becomes the previous one and `nextHash` the
    ///   current one → `rotated`.
    /// - `presentedHash` is the previous token, rotated into `nextHash` no longer than
    ///   `reuseInterval` ago → `replayed` (the caller gets the same next token; no change).
    /// - Any other token of the session → `reused`, and the session is revoked.
    ///
    /// `accessTokenLifetime` (ms) is how long a revocation must be remembered (see `revokeSession`).
    public func rotateRefresh(
        sessionID: String, userID: Int64, presentedHash: String, nextHash: String, now: Int64, expiresAt: Int64, reuseInterval: Int64,
        accessTokenLifetime: Int64
    ) throws(StoreError) -> RefreshOutcome {
        try self.rotateRefresh(
            sessionID: sessionID, userID: userID, presentedHash: presentedHash, nextHash: nextHash, clock: { now },
            refreshLifetime: expiresAt - now, reuseInterval: reuseInterval, accessTokenLifetime: accessTokenLifetime
        ).outcome
    }

    /// `rotateRefresh` reading the time from `clock` (ms) once the session's row is locked, so that
    /// a refresh that waited for the lock behind a rotation of the same token sees that rotation in
    /// its past; returns that time too. The new expiry is `now + refreshLifetime`. A replay counts
    /// only while strictly less than `reuseInterval` has passed since the rotation (never with 0).
    public func rotateRefresh(
        sessionID: String, userID: Int64, presentedHash: String, nextHash: String, clock: () -> Int64, refreshLifetime: Int64,
        reuseInterval: Int64, accessTokenLifetime: Int64
    ) throws(StoreError) -> (outcome: RefreshOutcome, now: Int64) {
        try self.database.withTransaction { connection throws(StoreError) in
            let rows = try connection.execute(
                "SELECT user_id, expires_at, revoked_at, refresh_hash, previous_refresh_hash, rotated_at FROM sessions WHERE id = $1"
                    + self.database.dialect.forUpdate,
                .text(sessionID)
            )
            let now = clock()
            return (try Self.rotate(
                row: rows.first, sessionID: sessionID, userID: userID, presentedHash: presentedHash, nextHash: nextHash, now: now,
                expiresAt: now + refreshLifetime, reuseInterval: reuseInterval, accessTokenLifetime: accessTokenLifetime, store: self,
                connection: connection
            ), now)
        }
    }

    private static func rotate(
        row: SQLRow?, sessionID: String, userID: Int64, presentedHash: String, nextHash: String, now: Int64, expiresAt: Int64,
        reuseInterval: Int64, accessTokenLifetime: Int64, store: Store, connection: any SQLConnection
    ) throws(StoreError) -> RefreshOutcome {
        guard let row, row.integer(0) == userID, let sessionExpiry = row.integer(1), sessionExpiry > now,
            row.integer(2) == nil
        else { return .invalid }
        let current = row.text(3)
        if current == presentedHash {
            try connection.execute(
                """
                UPDATE sessions SET previous_refresh_hash = refresh_hash, refresh_hash = $1, rotated_at = $2, expires_at = $3
                WHERE id = $4
                """,
                .text(nextHash), .integer(now), .integer(expiresAt), .text(sessionID)
            )
            return .rotated(userID: userID)
        }
        // Clocks of two issuers may disagree: a rotation "in the future" counts as just now.
        if row.text(4) == presentedHash, current == nextHash, let rotatedAt = row.integer(5), max(0, now - rotatedAt) < reuseInterval {
            return .replayed(userID: userID)
        }
        try connection.execute("UPDATE sessions SET revoked_at = $1 WHERE id = $2", .integer(now), .text(sessionID))
        try store.recordRevocations([sessionID], now: now, accessTokenLifetime: accessTokenLifetime, on: connection)
        return .reused
    }

    /// Revokes the session; true when it exists (revoked before or now). A session that ends now
    /// is appended to the revocation log, remembered until every access token it may hold has
    /// expired: `now + accessTokenLifetime` (ms).
    @discardableResult
    public func revokeSession(id: String, now: Int64, accessTokenLifetime: Int64) throws(StoreError) -> Bool {
        try self.database.withTransaction { connection throws(StoreError) in
            let ended = try connection.execute(
                "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL RETURNING id", .integer(now), .text(id)
            )
            guard ended.isEmpty else {
                try self.recordRevocations([id], now: now, accessTokenLifetime: accessTokenLifetime, on: connection)
                return true
            }
            return try !connection.execute("SELECT 1 FROM sessions WHERE id = $1", .text(id)).isEmpty
        }
    }

    /// Revokes every live session of the user but `keeping` (password change, logout everywhere,
    /// `gatehouse sessions revoke --user`); returns the ids of the sessions it ended.
    @discardableResult
    public func revokeSessions(userID: Int64, keeping: String? = nil, now: Int64, accessTokenLifetime: Int64) throws(StoreError) -> [String] {
        try self.database.withTransaction { connection throws(StoreError) in
            let ended = try connection.execute(
                """
                UPDATE sessions SET revoked_at = $1
                WHERE user_id = $2 AND revoked_at IS NULL AND expires_at > $1 AND id <> $3 RETURNING id
                """,
                .integer(now), .integer(userID), .text(keeping ?? "")
            ).compactMap { $0.text(0) }
            try self.recordRevocations(ended, now: now, accessTokenLifetime: accessTokenLifetime, on: connection)
            return ended
        }
    }

    /// Appends ended sessions to the revocation log, inside the caller's transaction.
    ///
    /// On PostgreSQL a transaction-scoped advisory lock is taken before the rows get their `seq`,
    /// so rows become visible in `seq` order: a reader that saw `seq` N has seen everything below
    /// it, and a cursor never skips a row that committed late. SQLite writers are serial anyway.
    /// `NOTIFY` wakes listening gateways when the transaction commits. Rows whose tokens have all
    /// expired (a minute of slack) are deleted here, so the log stays as long as it matters.
    private func recordRevocations(_ sessionIDs: [String], now: Int64, accessTokenLifetime: Int64, on connection: any SQLConnection) throws(StoreError) {
        guard !sessionIDs.isEmpty else { return }
        if self.database.dialect == .postgres {
            try connection.execute("SELECT pg_advisory_xact_lock(\(Self.revocationLogLock))")
        }
        for id in sessionIDs {
            try connection.execute(
                "INSERT INTO revocations (session_id, revoked_at, expires_at) VALUES ($1, $2, $3)",
                .text(id), .integer(now), .integer(now + accessTokenLifetime)
            )
        }
        try connection.execute("DELETE FROM revocations WHERE expires_at < $1", .integer(now - 60_000))
        if self.database.dialect == .postgres { try connection.execute("NOTIFY \(Self.revocationChannel)") }
    }

    /// The PostgreSQL `LISTEN` channel notified when sessions end.
    public static let revocationChannel = "gatehouse_revocations"
    /// Any constant shared by every issuer ("revok").
    static let revocationLogLock: Int64 = 0x7265766F6B

    /// Revocations after `cursor` (a `seq`; 0 for all), oldest first, at most `limit`.
    public func revocations(after cursor: Int64, limit: Int) throws(StoreError) -> [RevocationRecord] {
        try self.database.withConnection { connection throws(StoreError) in
            try Self.revocations(after: cursor, limit: limit, on: connection)
        }
    }

    static func revocations(after cursor: Int64, limit: Int, on connection: any SQLConnection) throws(StoreError) -> [RevocationRecord] {
        try connection.execute(
            "SELECT seq, session_id, expires_at FROM revocations WHERE seq > $1 ORDER BY seq LIMIT $2", .integer(cursor), .integer(Int64(limit))
        ).compactMap { row in
            guard let seq = row.integer(0), let id = row.text(1), let expiresAt = row.integer(2) else { return nil }
            return RevocationRecord(seq: seq, sessionID: id, expiresAt: expiresAt)
        }
    }

    /// The session row as stored (for tests and `gatehouse sessions`): no secret is in it.
    public func session(id: String) throws(StoreError) -> (userID: Int64, revokedAt: Int64?, refreshHash: String, previousHash: String?)? {
        try self.database.withConnection { connection throws(StoreError) in
            guard
                let row = try connection.execute(
                    "SELECT user_id, revoked_at, refresh_hash, previous_refresh_hash FROM sessions WHERE id = $1", .text(id)
                ).first, let userID = row.integer(0), let hash = row.text(2)
            else { return nil }
            return (userID, row.integer(1), hash, row.text(3))
        }
    }

    // MARK: Login failures

    /// When `key` (an email or a client address) has `limit` or more failures within `window`:
    /// how many milliseconds until it falls below. Nil when it may try.
    public func loginBlocked(key: String, limit: Int, window: Int64, now: Int64) throws(StoreError) -> Int64? {
        try self.database.withConnection { connection throws(StoreError) in
            let rows = try connection.execute(
                "SELECT at FROM login_failures WHERE key = $1 AND at > $2 ORDER BY at DESC LIMIT $3",
                .text(key), .integer(now - window), .integer(Int64(limit))
            )
            guard rows.count >= limit, let oldest = rows.last?.integer(0) else { return nil }
            return max(1, oldest + window - now)
        }
    }

    /// Records a failed login for each key, and forgets failures older than `window`.
    public func recordLoginFailure(keys: [String], window: Int64, now: Int64) throws(StoreError) {
        try self.database.withTransaction { connection throws(StoreError) in
            for key in keys {
                try connection.execute("DELETE FROM login_failures WHERE key = $1 AND at <= $2", .text(key), .integer(now - window))
                try connection.execute("INSERT INTO login_failures (key, at) VALUES ($1, $2)", .text(key), .integer(now))
            }
        }
    }

    public func resetLoginFailures(key: String) throws(StoreError) {
        try self.database.withConnection { connection throws(StoreError) in
            _ = try connection.execute("DELETE FROM login_failures WHERE key = $1", .text(key))
        }
    }

    // MARK: Login slots

    /// Takes a slot for a login attempt on `key` (an email) before its password is checked:
    /// nil when taken (as `id`, counting until `now + lifetime` at most); else how many
    /// milliseconds to wait, because the failures within `window` plus the slots in flight already
    /// reach `limit` — then no slot is taken. Counting and taking are one step for every issuer on
    /// the database: PostgreSQL serialises them per key with a transaction-scoped advisory lock,
    /// SQLite with `BEGIN IMMEDIATE`. Expired slots (their process died) are dropped here.
    public func takeLoginSlot(key: String, id: String, limit: Int, window: Int64, lifetime: Int64, now: Int64) throws(StoreError) -> Int64? {
        try self.database.withTransaction { connection throws(StoreError) in
            try self.lockLoginKey(key, on: connection)
            try connection.execute("DELETE FROM login_slots WHERE key = $1 AND expires_at <= $2", .text(key), .integer(now))
            let inFlight = Int(try connection.execute("SELECT COUNT(*) FROM login_slots WHERE key = $1", .text(key)).first?.integer(0) ?? 0)
            let failures = try connection.execute(
                "SELECT at FROM login_failures WHERE key = $1 AND at > $2 ORDER BY at DESC LIMIT $3",
                .text(key), .integer(now - window), .integer(Int64(limit))
            ).compactMap { $0.integer(0) }
            if failures.count >= limit, let oldest = failures.last {
                return max(1, oldest + window - now)
            }
            // Blocked by attempts still in flight: they are decided within about a second.
            if failures.count + inFlight >= limit { return 1000 }
            try connection.execute(
                "INSERT INTO login_slots (id, key, expires_at) VALUES ($1, $2, $3)", .text(id), .text(key), .integer(now + lifetime)
            )
            return nil
        }
    }

    /// Ends the login slot `id` of `key`: a failure (`failed`) becomes one of `key` and of each of
    /// `alsoFailing` (the client address); a success clears `key`'s failures.
    public func finishLoginSlot(id: String, key: String, failed: Bool, alsoFailing: [String] = [], window: Int64, now: Int64) throws(StoreError) {
        try self.database.withTransaction { connection throws(StoreError) in
            try self.lockLoginKey(key, on: connection)
            try connection.execute("DELETE FROM login_slots WHERE id = $1", .text(id))
            if failed {
                for failing in [key] + alsoFailing {
                    try connection.execute("DELETE FROM login_failures WHERE key = $1 AND at <= $2", .text(failing), .integer(now - window))
                    try connection.execute("INSERT INTO login_failures (key, at) VALUES ($1, $2)", .text(failing), .integer(now))
                }
            } else {
                try connection.execute("DELETE FROM login_failures WHERE key = $1", .text(key))
            }
        }
    }

    /// Gives a slot back undecided (the attempt failed for another reason: a full hash queue, the
    /// database gone). Nothing when it is no longer there.
    public func releaseLoginSlot(id: String) throws(StoreError) {
        try self.database.withConnection { connection throws(StoreError) in
            _ = try connection.execute("DELETE FROM login_slots WHERE id = $1", .text(id))
        }
    }

    /// The slots in flight for `key` at `now` (for tests and operators).
    public func loginSlots(key: String, now: Int64) throws(StoreError) -> Int {
        try self.database.withConnection { connection throws(StoreError) in
            Int(try connection.execute(
                "SELECT COUNT(*) FROM login_slots WHERE key = $1 AND expires_at > $2", .text(key), .integer(now)
            ).first?.integer(0) ?? 0)
        }
    }

    /// PostgreSQL: holds the advisory lock of `key` until the transaction ends (the two-int4 key
    /// space, apart from the single-bigint locks of migrations and the revocation log).
    private func lockLoginKey(_ key: String, on connection: any SQLConnection) throws(StoreError) {
        guard self.database.dialect == .postgres else { return }
        try connection.execute("SELECT pg_advisory_xact_lock(\(Self.loginSlotLockSpace), hashtext($1))", .text(key))
    }

    /// Any constant shared by every issuer ("logi").
    static let loginSlotLockSpace: Int32 = 0x6C6F_6769

    // MARK: Decoys

    /// The password hash of an existing user picked by `seed` (the same seed, the same user while
    /// the table does not change), or nil when there are no users: an unknown email is checked
    /// against a decoy with that hash's Argon2 parameters, so that it costs what some real
    /// account's check costs, whatever parameters the accounts were hashed with.
    public func samplePasswordHash(seed: UInt64) throws(StoreError) -> String? {
        try self.database.withConnection { connection throws(StoreError) in
            guard let bounds = try connection.execute("SELECT MIN(id), MAX(id) FROM users").first,
                let lowest = bounds.integer(0), let highest = bounds.integer(1), highest >= lowest
            else { return nil }
            let span = UInt64(highest - lowest) + 1
            let start = lowest + Int64(seed % span)
            return try connection.execute(
                "SELECT password_hash FROM users WHERE id >= $1 ORDER BY id LIMIT 1", .integer(start)
            ).first?.text(0)
        }
    }
}
