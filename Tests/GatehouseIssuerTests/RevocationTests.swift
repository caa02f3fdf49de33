// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseConfig
import GatehouseGateway
import GatehouseHTTP
import GatehouseIssuer
import GatehouseStore
import GatehouseTestSupport
import NIOCore
import NIOPosix
import Testing

/// Ending a session ends its access tokens too: at once at the gateway of the issuer's process,
/// through the revocation log everywhere else.
@Suite("Revocation")
struct RevocationTests {
    static var withFeedSecret: Harness.Options {
        var options = Harness.Options()
        options.issuer = "revocation_secret: feed-secret-0123456789abcdef0123456789"
        return options
    }

    @Test("logout refuses the session's access tokens at once (401 revoked), cached or not; other sessions keep working", arguments: Backend.allCases)
    func logout(_ backend: Backend) async throws {
        try await Harness.with(backend) { harness in
            let ann = try harness.register("ann@example.com")
            let other = try Tokens(harness.login("ann@example.com"))
            // Cached by the gateway before the logout.
            #expect(try harness.get("/echo/a", bearer: ann.access).status == 200)
            #expect(try harness.get("/echo/a", bearer: ann.access).status == 200)

            #expect(try harness.post("/auth/logout", ["refresh_token": ann.refresh]).status == 204)
            let refused = try harness.get("/echo/a", bearer: ann.access)
            #expect(refused.status == 401)
            #expect(refused.header("WWW-Authenticate") == "Bearer error=\"invalid_token\", error_description=\"revoked\"")
            #expect(try harness.get("/auth/verify", bearer: ann.access).status == 401)
            #expect(try harness.get("/users/me", bearer: ann.access).status == 401)
            #expect(try harness.get("/echo/a", bearer: other.access).status == 200)
        }
    }

    @Test("/users/me: a token seen before costs no verification; logout refuses it at once, cached or not", arguments: Backend.allCases)
    func meCachedThenRevoked(_ backend: Backend) async throws {
        try await Harness.with(backend) { harness in
            let tokens = try harness.register("cached@example.com")
            #expect(try harness.get("/users/me", bearer: tokens.access).status == 200)
            let before = harness.issuer.accessCacheCounts
            #expect(try harness.get("/users/me", bearer: tokens.access).status == 200)
            #expect(harness.issuer.accessCacheCounts.hits == before.hits + 1, "the second /users/me was verified again")
            #expect(try harness.post("/auth/logout", ["refresh_token": tokens.refresh]).status == 204)
            let refused = try harness.get("/users/me", bearer: tokens.access)
            #expect(refused.status == 401 && refused.json?["error_description"] as? String == "revoked")
        }
    }

    @Test("/users/me after a cache hit shows a role granted since: the cache keeps the token's verdict, never the answer", arguments: [Backend.sqlite])
    func meShowsRoleChanges(_ backend: Backend) async throws {
        try await Harness.with(backend) { harness in
            let tokens = try harness.register("roles@example.com")
            for _ in 0..<2 { #expect(try harness.get("/users/me", bearer: tokens.access).json?["roles"] as? [String] == ["viewer"]) }
            try harness.store.grantRole(email: "roles@example.com", role: "editor")
            let after = try harness.get("/users/me", bearer: tokens.access)
            #expect(after.json?["roles"] as? [String] == ["editor", "viewer"])
            #expect((after.json?["permissions"] as? [String])?.contains("content:write") == true)
            #expect(harness.issuer.accessCacheCounts.hits >= 2)
        }
    }

    @Test("verify.token_cache.size: 0 switches the issuer's cache off too; its hits count in gatehouse_token_cache_hits_total")
    func issuerCacheFollowsTheSetting() async throws {
        var options = Harness.Options()
        options.top = "verify:\n  token_cache: { size: 0 }"
        try await Harness.with(.sqlite, options: options) { harness in
            let tokens = try harness.register("nocache@example.com")
            for _ in 0..<3 { #expect(try harness.get("/users/me", bearer: tokens.access).status == 200) }
            #expect(harness.issuer.accessCacheCounts == (0, 0))
        }
        try await Harness.with(.sqlite) { harness in
            let tokens = try harness.register("cache@example.com")
            for _ in 0..<3 { #expect(try harness.get("/users/me", bearer: tokens.access).status == 200) }
            let metrics = try await harness.server.metricsText(on: harness.group.next()).get()
            #expect(metrics.contains("gatehouse_token_cache_hits_total 2"), "\(metrics)")
        }
    }

    @Test("refresh-token reuse revokes the access tokens of the session too", arguments: Backend.allCases)
    func reuse(_ backend: Backend) async throws {
        var options = Harness.Options()
        options.issuer = "refresh_reuse_interval: 0s"
        try await Harness.with(backend, options: options) { harness in
            let first = try harness.register("ann@example.com")
            let second = try Tokens(harness.refresh(first.refresh))
            #expect(try harness.get("/echo/a", bearer: second.access).status == 200)
            try await Task.sleep(for: .milliseconds(1100))
            #expect(try harness.refresh(first.refresh).status == 401)
            #expect(try harness.get("/echo/a", bearer: second.access).status == 401)
            #expect(try harness.get("/echo/a", bearer: first.access).status == 401)
        }
    }

    @Test("logout with all: every session of the user ends; other users are untouched", arguments: Backend.allCases)
    func logoutEverywhere(_ backend: Backend) async throws {
        try await Harness.with(backend) { harness in
            let one = try harness.register("ann@example.com")
            let two = try Tokens(harness.login("ann@example.com"))
            let bob = try harness.register("bob@example.com")
            #expect(try harness.post("/auth/logout", ["all": true]).status == 401)
            #expect(try harness.post("/auth/logout", ["all": true], bearer: "not.a.token").status == 401)
            #expect(try harness.post("/auth/logout", ["all": true], bearer: two.access).status == 204)
            for token in [one.access, two.access] { #expect(try harness.get("/echo/a", bearer: token).status == 401) }
            for token in [one.refresh, two.refresh] { #expect(try harness.refresh(token).status == 401) }
            #expect(try harness.get("/echo/a", bearer: bob.access).status == 200)
            #expect(try harness.refresh(bob.refresh).status == 200)
        }
    }

    @Test("a password change needs the current password and ends the user's other sessions", arguments: Backend.allCases)
    func passwordChange(_ backend: Backend) async throws {
        try await Harness.with(backend) { harness in
            let laptop = try harness.register("ann@example.com", password: "correct horse battery")
            let phone = try Tokens(harness.login("ann@example.com"))
            let change = { (current: String, new: String, bearer: String) in
                try harness.post("/auth/password", ["current_password": current, "new_password": new], bearer: bearer)
            }
            let wrong = try change("wrong password", "a new long password", laptop.access)
            #expect(wrong.status == 401 && wrong.json?["error"] as? String == "invalid_credentials")
            let weak = try change("correct horse battery", "short", laptop.access)
            #expect(weak.status == 422 && weak.json?["error"] as? String == "weak_password")
            #expect(try harness.post("/auth/password", ["current_password": "correct horse battery", "new_password": "a new long password"]).status == 401)
            // Nothing changed so far.
            #expect(try harness.get("/echo/a", bearer: phone.access).status == 200)

            #expect(try change("correct horse battery", "a new long password", laptop.access).status == 204)
            #expect(try harness.get("/echo/a", bearer: phone.access).status == 401)
            #expect(try harness.refresh(phone.refresh).status == 401)
            #expect(try harness.get("/echo/a", bearer: laptop.access).status == 200)
            #expect(try harness.refresh(laptop.refresh).status == 200)
            #expect(try harness.login("ann@example.com", password: "correct horse battery").status == 401)
            #expect(try harness.login("ann@example.com", password: "a new long password").status == 200)
        }
    }

    @Test("GET /auth/revocations: the log after a cursor, behind revocation_secret; absent without one", arguments: Backend.allCases)
    func feedEndpoint(_ backend: Backend) async throws {
        try await Harness.with(backend, options: Self.withFeedSecret) { harness in
            let registered = Date()
            let ann = try harness.register("ann@example.com")
            let bob = try harness.register("bob@example.com")
            #expect(try harness.get("/auth/revocations?since=0").status == 401)
            #expect(try harness.get("/auth/revocations?since=0", bearer: "feed-secret-wrong-000000").status == 401)
            #expect(try harness.get("/auth/revocations?since=x", bearer: "feed-secret-0123456789abcdef0123456789").status == 400)
            let empty = try harness.get("/auth/revocations?since=0", bearer: "feed-secret-0123456789abcdef0123456789")
            #expect(empty.status == 200 && (empty.json?["revocations"] as? [Any])?.isEmpty == true)

            #expect(try harness.post("/auth/logout", ["refresh_token": ann.refresh]).status == 204)
            let elapsed = Date().timeIntervalSince(registered)
            let first = try harness.get("/auth/revocations?since=0", bearer: "feed-secret-0123456789abcdef0123456789").json ?? [:]
            let entries = first["revocations"] as? [[String: Any]] ?? []
            #expect(entries.map { $0["sid"] as? String } == [decode(ann.access).claims["sid"] as? String])
            // The entry lives as long as the session's longest-lived access token could: from the
            // logout, one access-token lifetime — at least the token's exp, later by the time
            // between its issue and the logout (and a second of rounding).
            let exp = (entries.first?["exp"] as? Double) ?? 0
            let tokenExp = decode(ann.access).claims["exp"] as? Double ?? 0
            #expect(exp >= tokenExp - 1 && exp <= tokenExp + elapsed.rounded(.up) + 1, "exp \(exp), token exp \(tokenExp), elapsed \(elapsed)")
            #expect(first["more"] as? Bool == false)
            let cursor = Int(first["cursor"] as? Double ?? -1)

            #expect(try harness.post("/auth/logout", ["refresh_token": bob.refresh]).status == 204)
            let next = try harness.get("/auth/revocations?since=\(cursor)", bearer: "feed-secret-0123456789abcdef0123456789").json ?? [:]
            #expect((next["revocations"] as? [[String: Any]])?.map { $0["sid"] as? String } == [decode(bob.access).claims["sid"] as? String])
        }
        try await Harness.with(.sqlite) { harness in
            let absent = try harness.get("/auth/revocations?since=0", bearer: "anything")
            #expect(absent.status == 404)
        }
    }

    @Test("a gateway on the poll feed refuses a session another process ended; one started later loads it", arguments: [Backend.sqlite])
    func pollFeed(_ backend: Backend) async throws {
        try await Harness.with(backend, options: Self.withFeedSecret) { harness in
            let ann = try harness.register("ann@example.com")
            let echoPort = harness.echo.localAddress!.port!
            let yaml = """
                listen: 127.0.0.1:0
                access_log: false
                issuer: { enabled: false }
                verify:
                  issuer: http://gatehouse.test
                  audience: api
                  algorithms: [ES256]
                  keys: { jwks_url: "http://127.0.0.1:\(harness.port)/.well-known/jwks.json" }
                  revocation: { feed: poll, url: "http://127.0.0.1:\(harness.port)/auth/revocations", secret: feed-secret-0123456789abcdef0123456789, interval: 100ms }
                routes:
                  - { prefix: /echo/, upstream: "http://127.0.0.1:\(echoPort)" }
                """
            let config = try GatewayConfig.parse(yaml, file: "sidecar.conf", baseDirectory: NSTemporaryDirectory())
            guard case .poll(let url, let secret, let interval, _) = config.verify.revocation else { Issue.record("no poll feed"); return }
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let board = RevocationBoard()
            let poller = RevocationPoller(url: UpstreamURL(url)!, secret: secret, interval: interval, tls: nil, board: board, loop: group.next())
            let sidecar = try await GatewayServer.start(config: config, group: group, host: "127.0.0.1", port: 0, revocations: board)
            #expect(try RawHTTPClient.request(port: sidecar.port, "GET", "/echo/a", headers: [("Authorization", "Bearer \(ann.access)")]).status == 200)

            // Another process (the harness's issuer) ends the session: the sidecar learns it by polling.
            #expect(try harness.post("/auth/logout", ["refresh_token": ann.refresh]).status == 204)
            var status = 200
            let deadline = Date().addingTimeInterval(3)
            while status == 200, Date() < deadline {
                try await Task.sleep(for: .milliseconds(20))
                status = try RawHTTPClient.request(port: sidecar.port, "GET", "/echo/a", headers: [("Authorization", "Bearer \(ann.access)")]).status
            }
            #expect(status == 401)
            poller.stop()
            try await sidecar.stop()

            // A sidecar started afterwards loads the log before it is ready.
            let lateBoard = RevocationBoard()
            let late = RevocationPoller(url: UpstreamURL(url)!, secret: secret, interval: interval, tls: nil, board: lateBoard, loop: group.next())
            let lateSidecar = try await GatewayServer.start(config: config, group: group, host: "127.0.0.1", port: 0, revocations: lateBoard)
            let ready = Date().addingTimeInterval(3)
            while !lateSidecar.isReady, Date() < ready { try await Task.sleep(for: .milliseconds(10)) }
            #expect(lateSidecar.isReady)
            #expect(try RawHTTPClient.request(port: lateSidecar.port, "GET", "/echo/a", headers: [("Authorization", "Bearer \(ann.access)")]).status == 401)
            late.stop()
            try await lateSidecar.stop()
            try await group.shutdownGracefully()
        }
    }
}
