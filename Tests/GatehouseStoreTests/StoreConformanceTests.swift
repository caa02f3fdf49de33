// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseStore
import GatehouseTestSupport
import Testing

/// Which database a test runs on.
enum Backend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite, postgres

    var testDescription: String { self.rawValue }

    /// A fresh, empty database: a temp SQLite file, or a new database on the shared test server.
    func makeURL() throws -> String {
        switch self {
        case .sqlite: return "sqlite:" + NSTemporaryDirectory() + "gatehouse-store-\(UUID().uuidString).db"
        case .postgres: return try TestPostgres.shared.get().makeDatabase()
        }
    }

    func makeStore() throws -> Store {
        let store = try Store.open(try self.makeURL())
        try store.migrate(now: 0)
        return store
    }
}

/// One suite, run on SQLite and on a real PostgreSQL server.
@Suite("Store conformance")
struct StoreConformanceTests {
    @Test("migrate is idempotent and seeds the roles", arguments: Backend.allCases)
    func migrateTwice(_ backend: Backend) throws {
        let store = try Store.open(try backend.makeURL())
        #expect(try store.pendingMigrations() == [1, 2, 3])
        #expect(try store.migrate(now: 1) == [1, 2, 3])
        #expect(try store.migrate(now: 2) == [])
        #expect(try store.pendingMigrations() == [])
        #expect(try store.roles() == ["admin", "editor", "viewer"])
    }

    @Test("several issuers migrating at once apply each migration once", arguments: Backend.allCases)
    func concurrentMigrations(_ backend: Backend) throws {
        let url = try backend.makeURL()
        let applied = Collector<[Int]>()
        let failures = Collector<String>()
        concurrently(4) { _ in
            do {
                applied.append(try Store.open(url).migrate(now: 1))
            } catch {
                failures.append("\(error)")
            }
        }
        #expect(failures.values == [])
        #expect(applied.values.flatMap { $0 } == [1, 2, 3])
    }

    @Test("users: unique email, roles and their permissions", arguments: Backend.allCases)
    func users(_ backend: Backend) throws {
        let store = try backend.makeStore()
        let user = try store.createUser(email: "ann@example.com", name: nil, passwordHash: "$argon2id$x", role: "viewer", now: 1_700_000_000_000)
        #expect(user.roles == ["viewer"])
        #expect(user.permissions == ["content:read", "profile:read"])
        #expect(user.name == nil)
        #expect(throws: StoreError(.uniqueViolation, "")) {
            try store.createUser(email: "ann@example.com", name: "Ann", passwordHash: "h", role: "viewer", now: 1)
        }
        #expect(throws: StoreError(.notFound, "")) { try store.createUser(email: "bob@example.com", name: nil, passwordHash: "h", role: "root", now: 1) }

        try store.grantRole(email: "ann@example.com", role: "admin")
        try store.grantRole(email: "ann@example.com", role: "admin")
        let admin = try #require(try store.user(id: user.id))
        #expect(admin.roles == ["admin", "viewer"])
        #expect(admin.primaryRole == "admin")
        #expect(admin.permissions == ["content:read", "content:write", "profile:read", "roles:write", "users:read", "users:write"])
        try store.revokeRole(email: "ann@example.com", role: "admin")
        #expect(try store.user(email: "ann@example.com")?.roles == ["viewer"])
        #expect(throws: StoreError(.notFound, "")) { try store.grantRole(email: "nobody@example.com", role: "admin") }

        try store.setPasswordHash(userID: user.id, "$argon2id$new")
        #expect(try store.credentials(email: "ann@example.com")?.passwordHash == "$argon2id$new")
        #expect(try store.credentials(email: "nobody@example.com") == nil)
    }

    @Test("refresh rotation: rotate, replay within the interval, reuse after it revokes", arguments: Backend.allCases)
    func rotation(_ backend: Backend) throws {
        let store = try backend.makeStore()
        let user = try store.createUser(email: "ann@example.com", name: nil, passwordHash: "h", role: "viewer", now: 0)
        let t0: Int64 = 1_000_000
        try store.createSession(id: "s1", userID: user.id, refreshHash: "h1", now: t0, expiresAt: t0 + 100_000)
        func rotate(_ presented: String, _ next: String, at now: Int64, user: Int64? = nil) throws -> RefreshOutcome {
            try store.rotateRefresh(
                sessionID: "s1", userID: user ?? 1, presentedHash: presented, nextHash: next, now: now, expiresAt: now + 100_000,
                reuseInterval: 10_000, accessTokenLifetime: 60_000
            )
        }
        #expect(try rotate("h1", "h2", at: t0 + 1000) == .rotated(userID: user.id))
        // The same token again, 5 s later: the second caller of a concurrent pair.
        #expect(try rotate("h1", "h2", at: t0 + 6000) == .replayed(userID: user.id))
        #expect(try store.session(id: "s1")?.revokedAt == nil)
        // A session belongs to one user.
        #expect(try rotate("h2", "h3", at: t0 + 7000, user: 99) == .invalid)
        #expect(try rotate("h2", "h3", at: t0 + 7000) == .rotated(userID: user.id))
        // h2 was rotated 0 s ago but into h3 — not what the h2 holder derives… it derives h3: replay.
        #expect(try rotate("h2", "h3", at: t0 + 8000) == .replayed(userID: user.id))
        // After the interval the old token is reuse: the session is revoked, for everyone.
        #expect(try rotate("h2", "h3", at: t0 + 30_000) == .reused)
        #expect(try store.session(id: "s1")?.revokedAt == t0 + 30_000)
        // Reuse ends the session for the gateways too: it is in the revocation log.
        #expect(try store.revocations(after: 0, limit: 10).map(\.sessionID) == ["s1"])
        #expect(try rotate("h3", "h4", at: t0 + 31_000) == .invalid)
    }

    @Test("a token older than the previous one is reuse; expired and unknown sessions are invalid", arguments: Backend.allCases)
    func olderTokens(_ backend: Backend) throws {
        let store = try backend.makeStore()
        let user = try store.createUser(email: "ann@example.com", name: nil, passwordHash: "h", role: "viewer", now: 0)
        try store.createSession(id: "s1", userID: user.id, refreshHash: "h1", now: 0, expiresAt: 50_000)
        func rotate(_ id: String, _ presented: String, _ next: String, at now: Int64) throws -> RefreshOutcome {
            try store.rotateRefresh(
                sessionID: id, userID: user.id, presentedHash: presented, nextHash: next, now: now, expiresAt: 50_000, reuseInterval: 10_000,
                accessTokenLifetime: 60_000
            )
        }
        #expect(try rotate("s1", "h1", "h2", at: 1000) == .rotated(userID: user.id))
        #expect(try rotate("s1", "h2", "h3", at: 2000) == .rotated(userID: user.id))
        // h1 is two rotations old: reuse even within the interval.
        #expect(try rotate("s1", "h1", "h2", at: 2500) == .reused)
        try store.createSession(id: "s2", userID: user.id, refreshHash: "k1", now: 0, expiresAt: 50_000)
        #expect(try rotate("s2", "k1", "k2", at: 60_000) == .invalid)
        #expect(try rotate("nope", "k1", "k2", at: 1000) == .invalid)
    }

    @Test("revoking a session is idempotent", arguments: Backend.allCases)
    func revoke(_ backend: Backend) throws {
        let store = try backend.makeStore()
        let user = try store.createUser(email: "ann@example.com", name: nil, passwordHash: "h", role: "viewer", now: 0)
        try store.createSession(id: "s1", userID: user.id, refreshHash: "h1", now: 0, expiresAt: 50_000)
        #expect(try store.revokeSession(id: "s1", now: 10, accessTokenLifetime: 1000))
        #expect(try store.revokeSession(id: "s1", now: 20, accessTokenLifetime: 1000))
        #expect(try store.session(id: "s1")?.revokedAt == 10)
        #expect(try !store.revokeSession(id: "nope", now: 20, accessTokenLifetime: 1000))
        // Logged once, when it ended, for as long as its access tokens live.
        #expect(try store.revocations(after: 0, limit: 10).map { [$0.sessionID, String($0.expiresAt)] } == [["s1", "1010"]])
    }

    @Test("the revocation log: every session ended, in order, paged by cursor, forgotten once its tokens expired", arguments: Backend.allCases)
    func revocationLog(_ backend: Backend) throws {
        let store = try backend.makeStore()
        let ann = try store.createUser(email: "ann@example.com", name: nil, passwordHash: "h", role: "viewer", now: 0)
        let bob = try store.createUser(email: "bob@example.com", name: nil, passwordHash: "h", role: "viewer", now: 0)
        for id in ["a1", "a2", "a3"] { try store.createSession(id: id, userID: ann.id, refreshHash: id, now: 0, expiresAt: 10_000_000) }
        try store.createSession(id: "b1", userID: bob.id, refreshHash: "b1", now: 0, expiresAt: 10_000_000)
        try store.createSession(id: "a-old", userID: ann.id, refreshHash: "old", now: 0, expiresAt: 500)

        // Everything of Ann's but a2 (a password change from a2); the expired session is left alone.
        #expect(try Set(store.revokeSessions(userID: ann.id, keeping: "a2", now: 1000, accessTokenLifetime: 60_000)) == ["a1", "a3"])
        #expect(try store.session(id: "a2")?.revokedAt == nil)
        #expect(try store.session(id: "a-old")?.revokedAt == nil)
        #expect(try store.session(id: "b1")?.revokedAt == nil)
        // Again: nothing left to end, nothing logged twice.
        #expect(try store.revokeSessions(userID: ann.id, keeping: "a2", now: 2000, accessTokenLifetime: 60_000).isEmpty)
        try store.revokeSession(id: "b1", now: 3000, accessTokenLifetime: 60_000)

        let all = try store.revocations(after: 0, limit: 100)
        #expect(Set(all.prefix(2).map(\.sessionID)) == ["a1", "a3"])
        #expect(all.last?.sessionID == "b1")
        #expect(all.map(\.seq) == all.map(\.seq).sorted())
        // Paging: after the first row's cursor come the rest.
        let first = try store.revocations(after: 0, limit: 1)
        #expect(first.count == 1)
        #expect(try store.revocations(after: first[0].seq, limit: 100).map(\.sessionID) == all.dropFirst().map(\.sessionID))
        #expect(try store.revocations(after: all.last!.seq, limit: 100).isEmpty)

        // Long after every token expired, the next revocation clears the old rows; the cursor
        // keeps counting up (no seq is reused).
        try store.revokeSession(id: "a2", now: 1_000_000, accessTokenLifetime: 60_000)
        let later = try store.revocations(after: 0, limit: 100)
        #expect(later.map(\.sessionID) == ["a2"])
        #expect(later[0].seq > all.last!.seq)
    }

    @Test("a follower delivers every revocation, the ones before it started and the ones after, until it is stopped", arguments: Backend.allCases)
    func follower(_ backend: Backend) async throws {
        let url = try backend.makeURL()
        let store = try Store.open(url)
        try store.migrate(now: 0)
        let user = try store.createUser(email: "ann@example.com", name: nil, passwordHash: "h", role: "viewer", now: 0)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        for id in ["s1", "s2", "s3"] { try store.createSession(id: id, userID: user.id, refreshHash: id, now: now, expiresAt: now + 600_000) }
        try store.revokeSession(id: "s1", now: now, accessTokenLifetime: 60_000)

        // The follower reads the log through a store of its own (another process would too).
        let seen = Seen()
        let follower = RevocationFollower(
            source: backend == .sqlite ? .store(try Store.open(url)) : .postgres(String(url)), interval: .milliseconds(100),
            deliver: { rows in seen.add(rows.map(\.sessionID)) }, loaded: { seen.markLoaded() }
        )
        defer { follower.stop() }
        try await seen.wait { $0.loaded && $0.ids == ["s1"] }
        try store.revokeSession(id: "s2", now: now, accessTokenLifetime: 60_000)
        try await seen.wait { $0.ids == ["s1", "s2"] }
        try store.revokeSessions(userID: user.id, now: now, accessTokenLifetime: 60_000)
        try await seen.wait { $0.ids == ["s1", "s2", "s3"] }

        // Once stopAndWait returns, the follower's thread is gone: it reads nothing more.
        await follower.stopAndWait()
        try store.createSession(id: "s4", userID: user.id, refreshHash: "s4", now: now, expiresAt: now + 600_000)
        try store.revokeSession(id: "s4", now: now, accessTokenLifetime: 60_000)
        try await Task.sleep(for: .milliseconds(300))
        try await seen.wait { $0.ids == ["s1", "s2", "s3"] }
    }

    @Test("login failures: counted per key within the window, reset on success", arguments: Backend.allCases)
    func loginFailures(_ backend: Backend) throws {
        let store = try backend.makeStore()
        for at in stride(from: Int64(1000), through: 3000, by: 1000) {
            try store.recordLoginFailure(keys: ["email:a", "address:1.2.3.4"], window: 60_000, now: at)
        }
        #expect(try store.loginBlocked(key: "email:a", limit: 4, window: 60_000, now: 3500) == nil)
        // Three failures, limit 3: blocked until the oldest (at 1000) leaves the window.
        #expect(try store.loginBlocked(key: "email:a", limit: 3, window: 60_000, now: 3500) == 57_500)
        #expect(try store.loginBlocked(key: "email:a", limit: 3, window: 60_000, now: 61_500) == nil)
        try store.resetLoginFailures(key: "email:a")
        #expect(try store.loginBlocked(key: "email:a", limit: 1, window: 60_000, now: 3500) == nil)
        #expect(try store.loginBlocked(key: "address:1.2.3.4", limit: 3, window: 60_000, now: 3500) != nil)
    }
}

/// PostgreSQL stopped and started under the store: calls fail with `unavailable` while it is down,
/// and the first call after it is back succeeds, without a new store.
@Suite("PostgreSQL reconnection")
struct PostgresReconnectionTests {
    @Test("the first call after a server restart succeeds")
    func restart() throws {
        let server = try TestPostgres()
        defer { try? server.stop() }
        let store = try Store.open(try server.makeDatabase())
        try store.migrate(now: 0)
        _ = try store.createUser(email: "ann@example.com", name: nil, passwordHash: "h", role: "viewer", now: 0)
        try server.stop()
        #expect(throws: StoreError(.unavailable, "")) { try store.user(email: "ann@example.com") }
        try server.start()
        #expect(try store.user(email: "ann@example.com")?.email == "ann@example.com")
        #expect(try store.credentials(email: "ann@example.com") != nil)
    }
}

/// What a follower delivered, in order.
final class Seen: @unchecked Sendable {
    struct State {
        var ids: [String] = []
        var loaded = false
    }

    private let lock = NSLock()
    private var state = State()

    func add(_ ids: [String]) { self.lock.withLock { self.state.ids += ids } }
    func markLoaded() { self.lock.withLock { self.state.loaded = true } }

    /// Waits up to 5 s for `condition`.
    func wait(_ condition: (State) -> Bool) async throws {
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            if self.lock.withLock({ condition(self.state) }) { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        let state = self.lock.withLock { self.state }
        Issue.record("timed out; delivered \(state.ids), loaded \(state.loaded)")
    }
}
