// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseGateway
import GatehouseStore
import GatehouseTestSupport
import NIOCore
import NIOPosix
import Testing

/// Refresh rotation, its grace interval, reuse detection, logout — and what the database holds.
@Suite("Sessions")
struct SessionTests {
    static var shortGrace: Harness.Options {
        var options = Harness.Options()
        options.issuer = "refresh_reuse_interval: 1s"
        return options
    }

    @Test("refresh rotates; the old token within the interval gets the same session; after it, reuse revokes", arguments: Backend.allCases)
    func rotationAndReuse(_ backend: Backend) async throws {
        try await Harness.with(backend, options: Self.shortGrace) { harness in
            let first = try harness.register("ann@example.com")
            let sid = decode(first.refresh).claims["sid"] as? String
            let second = try Tokens(harness.refresh(first.refresh))
            #expect(second.refresh != first.refresh)
            #expect(decode(second.access).claims["sid"] as? String == sid)
            #expect(decode(second.refresh).claims["jti"] as? String != decode(first.refresh).claims["jti"] as? String)

            // A second caller with the old token, at once: 200, same session, tokens that work.
            let replay = try Tokens(harness.refresh(first.refresh))
            #expect(decode(replay.refresh).claims["jti"] as? String == decode(second.refresh).claims["jti"] as? String)
            #expect(decode(replay.access).claims["sid"] as? String == sid)
            #expect(try harness.get("/users/me", bearer: replay.access).status == 200)
            let third = try Tokens(harness.refresh(replay.refresh))

            // Long after its rotation, the first token is reuse: the whole session ends.
            try await Task.sleep(for: .milliseconds(1600))
            let reused = try harness.refresh(second.refresh)
            #expect(reused.status == 401)
            #expect(reused.json?["error"] as? String == "invalid_grant")
            let afterwards = try harness.refresh(third.refresh)
            #expect(afterwards.status == 401)
            #expect(afterwards.json?["error"] as? String == "invalid_grant")
            #expect(try harness.store.session(id: sid!)?.revokedAt != nil)
        }
    }

    @Test("typ decides: an access token is no refresh token, a refresh token no access token", arguments: Backend.allCases)
    func tokenTypes(_ backend: Backend) async throws {
        try await Harness.with(backend) { harness in
            let tokens = try harness.register("ann@example.com")
            let wrongType = try harness.refresh(tokens.access)
            #expect(wrongType.status == 401)
            #expect(wrongType.json?["error"] as? String == "invalid_grant")
            let me = try harness.get("/users/me", bearer: tokens.refresh)
            #expect(me.status == 401)
            #expect(me.json?["error"] as? String == "invalid_token")
            #expect(me.header("WWW-Authenticate")?.hasPrefix("Bearer error=\"invalid_token\"") == true)
            #expect(try harness.get("/echo/x", bearer: tokens.refresh).status == 401)
            let bare = try harness.get("/users/me")
            #expect(bare.status == 401)
            #expect(bare.header("WWW-Authenticate") == "Bearer")
            #expect(try harness.refresh("not.a.token").status == 401)
            #expect(try harness.post("/auth/refresh", [:]).status == 400)
        }
    }

    @Test("two concurrent refreshes with one token make one rotation", arguments: Backend.allCases)
    func concurrentRefresh(_ backend: Backend) async throws {
        try await Harness.with(backend) { harness in
            let tokens = try harness.register("ann@example.com")
            let port = harness.port
            let collected = Collector<RawHTTPClient.Response?>()
            let body = Array(#"{"refresh_token":"\#(tokens.refresh)"}"#.utf8)
            concurrently(4) { _ in
                collected.append(try? RawHTTPClient.request(port: port, "POST", "/auth/refresh", headers: [("Content-Type", "application/json")], body: body))
            }
            let responses = collected.values.compactMap { $0 }
            #expect(responses.map(\.status) == [200, 200, 200, 200])
            let refreshIDs = Set(try responses.map { decode(try Tokens($0).refresh).claims["jti"] as! String })
            #expect(refreshIDs.count == 1)
            let sid = try #require(decode(tokens.refresh).claims["sid"] as? String)
            let row = try #require(try harness.store.session(id: sid))
            #expect(row.revokedAt == nil)
            // One rotation: the session expects the next token, and remembers the first as previous.
            #expect(row.previousHash != nil && row.previousHash != row.refreshHash)
            // Every caller's token keeps working.
            #expect(try harness.refresh(try Tokens(responses[3]).refresh).status == 200)
        }
    }

    @Test("logout revokes the session, is idempotent, takes any token of the session, refuses bad tokens", arguments: Backend.allCases)
    func logout(_ backend: Backend) async throws {
        try await Harness.with(backend) { harness in
            let first = try harness.register("ann@example.com")
            let second = try Tokens(harness.refresh(first.refresh))
            // An older token of the session logs it out.
            let out = try harness.post("/auth/logout", ["refresh_token": first.refresh])
            #expect(out.status == 204)
            #expect(out.body.isEmpty)
            #expect(try harness.post("/auth/logout", ["refresh_token": second.refresh]).status == 204)
            let refused = try harness.refresh(second.refresh)
            #expect(refused.status == 401)
            #expect(refused.json?["error"] as? String == "invalid_grant")
            let bad = try harness.post("/auth/logout", ["refresh_token": "eyJ.bad.token"])
            #expect(bad.status == 401)
            #expect(bad.json?["error"] as? String == "invalid_grant")
            #expect(try harness.post("/auth/logout", ["refresh_token": first.access]).status == 401)
            // Other sessions of the user live on.
            let other = try Tokens(harness.login("ann@example.com"))
            #expect(try harness.refresh(other.refresh).status == 200)
        }
    }

    @Test("no plaintext password and no refresh token or its id is ever stored", arguments: Backend.allCases)
    func nothingUsableStored(_ backend: Backend) async throws {
        try await Harness.with(backend) { harness in
            let password = "correct horse battery"
            let first = try harness.register("ann@example.com", password: password)
            let second = try Tokens(harness.refresh(first.refresh))
            let third = try Tokens(harness.login("ann@example.com", password: password))
            var secrets = [password, first.refresh, second.refresh, third.refresh, first.access]
            secrets += [first.refresh, second.refresh, third.refresh].map { decode($0).claims["jti"] as! String }
            let dump = try harness.store.database.withConnection { connection throws(StoreError) in
                var text = ""
                for table in ["users", "sessions", "login_failures", "user_roles"] {
                    for row in try connection.query("SELECT * FROM \(table)", []) {
                        text += row.values.map { "\($0)" }.joined(separator: "|") + "\n"
                    }
                }
                return text
            }
            #expect(dump.contains("ann@example.com"))
            for secret in secrets { #expect(!dump.contains(secret)) }
            #expect(dump.contains("$argon2id$"))
        }
    }

    @Test("a full Argon2 queue answers 503 with Retry-After at once", arguments: [Backend.sqlite])
    func hashQueueFull(_ backend: Backend) async throws {
        var options = Harness.Options()
        options.argon2 = "{ memory_kib: 16384, iterations: 4, parallelism: 1 }"
        options.issuer = "hash_queue: 1"
        try await Harness.with(backend, options: options) { harness in
            _ = try harness.register("ann@example.com")
            let port = harness.port
            let collected = Collector<RawHTTPClient.Response?>()
            concurrently(40) { index in
                let body = Array(#"{"email":"ann@example.com","password":"wrong password \#(index)"}"#.utf8)
                collected.append(try? RawHTTPClient.request(port: port, "POST", "/auth/login", headers: [("Content-Type", "application/json")], body: body))
            }
            let responses = collected.values.compactMap { $0 }
            #expect(responses.count == 40)
            let busy = responses.filter { $0.status == 503 }
            #expect(!busy.isEmpty)
            #expect(busy.allSatisfy { $0.json?["error"] as? String == "unavailable" && $0.header("Retry-After") == "1" })
            #expect(responses.allSatisfy { $0.status == 503 || $0.status == 401 || $0.status == 429 })
        }
    }
}

/// PostgreSQL restarted under a running issuer: 503 while it is down, and the next request after
/// it is back succeeds without restarting Gatehouse.
@Suite("Database restart")
struct DatabaseRestartTests {
    @Test("PostgreSQL stopped and started in the middle of a run")
    func restart() async throws {
        let server = try TestPostgres()
        defer { try? server.stop() }
        try await Harness.with(.postgres, database: try server.makeDatabase()) { harness in
            let tokens = try harness.register("ann@example.com")
            #expect(try await harness.server.readiness(on: harness.group.next()).get())
            try server.stop()
            let down = try harness.refresh(tokens.refresh)
            #expect(down.status == 503)
            #expect(down.json?["error"] as? String == "unavailable")
            #expect(down.header("Retry-After") != nil)
            #expect(try harness.login("ann@example.com").status == 503)
            #expect(try await harness.server.readiness(on: harness.group.next()).get() == false)
            // The gateway keeps verifying tokens without the database.
            #expect(try harness.get("/echo/x", bearer: tokens.access).status == 200)
            try server.start()
            let back = try harness.refresh(tokens.refresh)
            #expect(back.status == 200)
            #expect(try harness.login("ann@example.com").status == 200)
        }
    }
}
