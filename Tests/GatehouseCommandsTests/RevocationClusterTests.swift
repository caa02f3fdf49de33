// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseTestSupport
import Testing

/// Three gateways and two issuers sharing one PostgreSQL, each a real `gatehouse` process on
/// 127.0.0.1: a session ended through one issuer is refused by every gateway within a second.
@Suite("Revocation across processes", .serialized)
struct RevocationClusterTests {
    /// The processes of one deployment; stopped when the test ends.
    final class Cluster {
        let directory: URL
        let database: String
        let issuers: [Int]
        var gateways: [Int]
        private(set) var processes: [String: ServeProcess] = [:]

        init() throws {
            self.directory = try temporaryDirectory()
            self.database = try TestPostgres.shared.get().makeDatabase()
            self.issuers = try (0..<2).map { _ in try TestPostgres.freePort() }
            self.gateways = try (0..<3).map { _ in try TestPostgres.freePort() }
            let echoPort = try TestPostgres.freePort()

            let kid = try CLI.run(["keys", "generate", "--out", self.directory.path]).output.trimmingCharacters(in: .whitespacesAndNewlines)
            let jwk = try String(contentsOf: self.directory.appendingPathComponent("\(kid).jwk.json"), encoding: .utf8)
            try "{\"keys\": [\(jwk)]}".write(to: self.directory.appendingPathComponent("jwks.json"), atomically: true, encoding: .utf8)

            for (index, port) in self.issuers.enumerated() {
                try self.write("issuer\(index).conf", """
                    listen: 127.0.0.1:\(port)
                    admin_listen: 127.0.0.1:0
                    access_log: false
                    issuer:
                      issuer: http://cluster.test
                      audience: api
                      signing: { key_file: \(kid).pem }
                      database: "\(self.database)"
                      refresh_secret: cluster-refresh-secret-0123456789abcdef
                      revocation_secret: cluster-feed-secret-0123456789abcdef
                      argon2: { memory_kib: 1024, iterations: 1, parallelism: 1 }
                    routes: []
                    """)
            }
            // Two gateways may reach the database (LISTEN/NOTIFY); the third only issuer B's HTTP feed.
            let feeds = [
                "{ feed: postgres, database: \"\(self.database)\" }",
                "{ feed: postgres, database: \"\(self.database)\" }",
                "{ feed: poll, url: \"http://127.0.0.1:\(self.issuers[1])/auth/revocations\", secret: cluster-feed-secret-0123456789abcdef }",
            ]
            for (index, port) in self.gateways.enumerated() {
                try self.write("gateway\(index).conf", """
                    listen: 127.0.0.1:\(port)
                    admin_listen: 127.0.0.1:0
                    access_log: false
                    issuer: { enabled: false }
                    verify:
                      issuer: http://cluster.test
                      audience: api
                      algorithms: [ES256]
                      keys: { jwks_file: jwks.json }
                      revocation: \(feeds[index])
                    routes:
                      - { prefix: /api/, upstream: "http://127.0.0.1:\(echoPort)" }
                    """)
            }
            try self.start("echo", ["echo", "--listen", "127.0.0.1:\(echoPort)"], marker: "listening")
            // Issuer A migrates; B then finds nothing to do.
            for index in 0..<2 { try self.start("issuer\(index)", ["serve", "--config", "issuer\(index).conf"]) }
            for index in 0..<3 { try self.startGateway(index) }
        }

        private func write(_ name: String, _ text: String) throws {
            try text.write(to: self.directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }

        func start(_ name: String, _ arguments: [String], marker: String = "admin listening") throws {
            let process = try ServeProcess(arguments: arguments, directory: self.directory)
            self.processes[name] = process
            guard process.wait(for: marker) else { throw Failure(description: "\(name) did not start: \(process.text)") }
        }

        func startGateway(_ index: Int) throws {
            try self.start("gateway\(index)", ["serve", "--config", "gateway\(index).conf"])
        }

        func stop(_ name: String) -> Int32? {
            self.processes.removeValue(forKey: name)?.stop()
        }

        func stopAll() {
            for name in self.processes.keys { _ = self.stop(name) }
        }

        /// The status each gateway answers for `token`.
        func statuses(_ token: String) throws -> [Int] {
            try self.gateways.map { port in
                try RawHTTPClient.request(port: port, "GET", "/api/orders", headers: [("Authorization", "Bearer \(token)")]).status
            }
        }
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func post(_ port: Int, _ path: String, _ json: [String: Any]) throws -> RawHTTPClient.Response {
        try RawHTTPClient.request(
            port: port, "POST", path, headers: [("Content-Type", "application/json")], body: Array(try JSONSerialization.data(withJSONObject: json))
        )
    }

    static func login(_ port: Int) throws -> (access: String, refresh: String) {
        let response = try Self.post(port, "/auth/login", ["email": "ann@example.com", "password": "correct horse battery"])
        guard response.status == 200, let access = response.json?["access_token"] as? String, let refresh = response.json?["refresh_token"] as? String
        else { throw Failure(description: "login: \(response.status) \(response.text)") }
        return (access, refresh)
    }

    @Test("log in through issuer A, log out through issuer B: all three gateways refuse the token, p99 under a second over 50 rounds")
    func fleetWideLogout() throws {
        let cluster = try Cluster()
        defer { cluster.stopAll() }
        let (a, b) = (cluster.issuers[0], cluster.issuers[1])
        #expect(try Self.post(a, "/auth/register", ["email": "ann@example.com", "password": "correct horse battery"]).status == 201)

        var latencies: [Double] = []
        var listening: [Double] = []
        var polling: [Double] = []
        for _ in 0..<50 {
            let tokens = try Self.login(a)
            #expect(try cluster.statuses(tokens.access) == [200, 200, 200])
            // Sessions end at any moment, not in step with the polling gateway's interval.
            usleep(UInt32.random(in: 0..<500_000))
            let started = Date()
            #expect(try Self.post(b, "/auth/logout", ["refresh_token": tokens.refresh]).status == 204)
            // Each gateway's first refusal, polled every 5 ms (for 5 s at most).
            var refusedAt: [Double?] = [nil, nil, nil]
            while refusedAt.contains(where: { $0 == nil }), Date().timeIntervalSince(started) < 5 {
                for (index, status) in try cluster.statuses(tokens.access).enumerated() where refusedAt[index] == nil && status == 401 {
                    refusedAt[index] = Date().timeIntervalSince(started)
                }
                usleep(5000)
            }
            #expect(!refusedAt.contains { $0 == nil }, "a gateway still accepted a logged-out session's token after 5 s")
            latencies.append(refusedAt.compactMap { $0 }.max() ?? 5)
            listening.append(max(refusedAt[0] ?? 5, refusedAt[1] ?? 5))
            polling.append(refusedAt[2] ?? 5)
        }
        func summary(_ values: [Double]) -> (median: Double, p99: Double, text: String) {
            let sorted = values.sorted()
            let median = sorted[sorted.count / 2]
            let p99 = sorted[Int((Double(sorted.count) * 0.99).rounded(.up)) - 1]
            return (median, p99, "median \(Int(median * 1000)) ms, p99 \(Int(p99 * 1000)) ms, max \(Int(sorted.last! * 1000)) ms")
        }
        print("revocation, 50 rounds: all 3 gateways \(summary(latencies).text); the 2 on LISTEN/NOTIFY \(summary(listening).text); the 1 polling every 500 ms \(summary(polling).text)")
        #expect(summary(latencies).p99 < 1.0)
    }

    @Test("a gateway that was down when a session ended refuses it once it is back; one refresh token sent to both issuers rotates once")
    func restartAndConcurrentRefresh() throws {
        let cluster = try Cluster()
        defer { cluster.stopAll() }
        let (a, b) = (cluster.issuers[0], cluster.issuers[1])
        #expect(try Self.post(a, "/auth/register", ["email": "ann@example.com", "password": "correct horse battery"]).status == 201)

        // Gateways 0 (LISTEN) and 2 (poll) are down while the session ends.
        let tokens = try Self.login(a)
        #expect(try cluster.statuses(tokens.access) == [200, 200, 200])
        #expect(cluster.stop("gateway0") == 0)
        #expect(cluster.stop("gateway2") == 0)
        let sid = try #require(Self.claims(tokens.access)["sid"] as? String)
        let revoke = try CLI.run(["sessions", "revoke", "--sid", sid, "--config", "issuer0.conf"], directory: cluster.directory)
        #expect(revoke.status == 0, "\(revoke.error)")
        try cluster.startGateway(0)
        try cluster.startGateway(2)
        // Refused from their first request: the log is loaded before the listener answers.
        #expect(try cluster.statuses(tokens.access) == [401, 401, 401])

        // The same refresh token at both issuers at once: one rotation, the same next token for both.
        let fresh = try Self.login(a)
        let responses = Collector<(status: Int, refresh: String?)>()
        let refresh = fresh.refresh
        concurrently(2) { index in
            let response = try? Self.post([a, b][index], "/auth/refresh", ["refresh_token": refresh])
            responses.append((response?.status ?? 0, response?.json?["refresh_token"] as? String))
        }
        #expect(responses.values.map(\.status) == [200, 200])
        let next = Set(responses.values.compactMap { $0.refresh.flatMap { Self.claims($0)["jti"] as? String } })
        #expect(next.count == 1, "two rotations: \(next)")
    }

    @Test("sessions revoke ends a WebSocket tunnel with 1008 within a second on the gateway that follows issuer B by the poll feed")
    func revokedTunnel() throws {
        let cluster = try Cluster()
        defer { cluster.stopAll() }
        let a = cluster.issuers[0]
        #expect(try Self.post(a, "/auth/register", ["email": "ann@example.com", "password": "correct horse battery"]).status == 201)
        let tokens = try Self.login(a)
        // A tunnel to the echo through gateway 2, which learns of revocations only by polling issuer B.
        let client = Process()
        client.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        client.arguments = [
            "python3", WebSocketClients.folder.appendingPathComponent("ws_check.py").path, "ws://127.0.0.1:\(cluster.gateways[2])/api/live",
            "-H", "Authorization: Bearer \(tokens.access)", "--checks", "text", "--wait-close", "20",
        ]
        let output = Pipe()
        client.standardOutput = output
        try client.run()
        Thread.sleep(forTimeInterval: 2)
        let sid = try #require(Self.claims(tokens.access)["sid"] as? String)
        let revoke = try CLI.run(["sessions", "revoke", "--sid", sid, "--config", "issuer0.conf"], directory: cluster.directory)
        #expect(revoke.status == 0, "\(revoke.error)")
        let revoked = Date()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        client.waitUntilExit()
        let ended = Date().timeIntervalSince(revoked)
        let result = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "\(text)")
        let close = try #require(result["server_close"] as? [String: Any], "\(text)")
        #expect(close["code"] as? Int == 1008, "\(text)")
        #expect(close["reason"] as? String == "session revoked")
        #expect(ended < 1.5, "the tunnel ended \(ended) s after sessions revoke returned")
    }

    static func claims(_ token: String) -> [String: Any] {
        let part = token.split(separator: ".")[1]
        var text = part.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while text.count % 4 != 0 { text += "=" }
        return (try? JSONSerialization.jsonObject(with: Data(base64Encoded: text) ?? Data())) as? [String: Any] ?? [:]
    }
}
