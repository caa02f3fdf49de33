// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseCrypto
import GatehouseStore
import GatehouseTestSupport
import Synchronization
import Testing

/// PostgreSQL stopped in the middle of a load of refreshes and logins.
@Suite("PostgreSQL down under load", .serialized)
struct DatabaseFaultTests {
    final class Log: @unchecked Sendable {
        private let lock = NSLock()
        private var entries: [(kind: String, at: Date, status: Int, seconds: Double)] = []
        func add(_ kind: String, _ status: Int, since start: Date) {
            self.lock.withLock { self.entries.append((kind, start, status, Date().timeIntervalSince(start))) }
        }
        var all: [(kind: String, at: Date, status: Int, seconds: Double)] { self.lock.withLock { self.entries } }
    }

    @Test("503 at once while it is down, the gateway unaffected, everything back without a restart, no half-rotated session")
    func databaseDownUnderLoad() async throws {
        let server = try TestPostgres()
        defer { try? server.stop() }
        var options = Harness.Options()
        options.issuer = "refresh_reuse_interval: 60s"
        try await Harness.with(.postgres, database: try server.makeDatabase(), options: options) { harness in
            let users = try (0..<4).map { try harness.register("user\($0)@example.com") }
            let log = Log()
            let stop = Atomic<Bool>(false)
            let finals = Mutex<[Int: String]>([:])
            let done = DispatchGroup()
            for (index, first) in users.map(\.refresh).enumerated() {
                done.enter()
                Thread {
                    var refresh = first
                    while !stop.load(ordering: .relaxed) {
                        let started = Date()
                        let response = try? harness.refresh(refresh)
                        log.add("refresh", response?.status ?? -1, since: started)
                        if response?.status == 200, let next = response?.json?["refresh_token"] as? String { refresh = next }
                    }
                    finals.withLock { $0[index] = refresh }
                    done.leave()
                }.start()
            }
            for index in 0..<2 {
                done.enter()
                Thread {
                    while !stop.load(ordering: .relaxed) {
                        let started = Date()
                        log.add("login", (try? harness.login("user\(index)@example.com").status) ?? -1, since: started)
                    }
                    done.leave()
                }.start()
            }
            done.enter()
            let access = users[3].access
            Thread {
                while !stop.load(ordering: .relaxed) {
                    let started = Date()
                    log.add("gateway", (try? harness.get("/echo/x", bearer: access).status) ?? -1, since: started)
                }
                done.leave()
            }.start()

            try await Task.sleep(for: .milliseconds(1000))
            try server.stop()
            let stopped = Date()
            try await Task.sleep(for: .milliseconds(2000))
            try server.start()
            let started = Date()
            try await Task.sleep(for: .milliseconds(2000))
            stop.store(true, ordering: .relaxed)
            done.wait()

            let entries = log.all
            let issuer = entries.filter { $0.kind != "gateway" }
            let unavailable = issuer.filter { $0.status == 503 }
            #expect(Set(issuer.map(\.status)).isSubset(of: [200, 503]), "\(Set(issuer.map(\.status)))")
            #expect(!unavailable.isEmpty, "the outage was seen")
            let slowest = unavailable.map(\.seconds).max() ?? 0
            #expect(slowest < 1.0, "a 503 took \(slowest) s")
            let gateway = entries.filter { $0.kind == "gateway" }
            #expect(!gateway.isEmpty && gateway.allSatisfy { $0.status == 200 }, "the gateway failed while the database was down")
            #expect(gateway.contains { $0.at > stopped && $0.at < started }, "the gateway was exercised during the outage")
            let recovered = issuer.filter { $0.at > started.addingTimeInterval(1) }
            #expect(!recovered.isEmpty && recovered.allSatisfy { $0.status == 200 }, "\(recovered.filter { $0.status != 200 }.count) failures after recovery")
            print(
                "database down under load: \(issuer.count) refreshes and logins, \(unavailable.count) × 503 (slowest \(Int(slowest * 1000)) ms), "
                    + "\(gateway.count) gateway requests all 200, \(recovered.count) × 200 after recovery"
            )

            // No half-rotated session: each chain's last token refreshes, and its row expects it.
            for (index, token) in finals.withLock({ $0 }).sorted(by: { $0.key < $1.key }) {
                let claims = decode(token).claims
                let sid = try #require(claims["sid"] as? String)
                let jti = try #require(claims["jti"] as? String)
                let row = try #require(try harness.store.session(id: sid))
                let hash = Digest.sha256.hash(Array(jti.utf8)).map { String(format: "%02x", $0) }.joined()
                #expect(row.revokedAt == nil, "user\(index)'s session was revoked")
                #expect(row.refreshHash == hash, "user\(index)'s session does not expect the token its client holds")
                #expect(try harness.refresh(token).status == 200)
            }
        }
    }
}
