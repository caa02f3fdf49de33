// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseTestSupport
import Testing

/// Hardening II, finding 13: with `refresh_reuse_interval: 0s` there is no grace at all, so two
/// issuers racing one refresh token rotate it exactly once: one caller gets 200, every other one
/// reuse (401 `invalid_grant`), even when its clock was read before the winner's rotation.
@Suite("Refresh race across issuers", .serialized)
struct RefreshRaceTests {
    @Test("two issuers on one PostgreSQL database, interval 0s, one token raced: exactly one 200 per token")
    func raceWithoutGrace() async throws {
        let database = try Backend.postgres.makeURL()
        var options = Harness.Options()
        options.issuer = "refresh_reuse_interval: 0s"
        try await Harness.with(.postgres, database: database, options: options) { first in
            try await Harness.with(.postgres, database: database, options: options) { second in
                let ports = [first.port, second.port]
                for round in 0..<8 {
                    let tokens = try first.register("user\(round)@example.com")
                    let body = Array(#"{"refresh_token":"\#(tokens.refresh)"}"#.utf8)
                    let responses = Collector<RawHTTPClient.Response?>()
                    concurrently(4) { index in
                        responses.append(try? RawHTTPClient.request(
                            port: ports[index % 2], "POST", "/auth/refresh", headers: [("Content-Type", "application/json")], body: body
                        ))
                    }
                    let statuses = responses.values.map { $0?.status ?? 0 }.sorted()
                    #expect(statuses == [200, 401, 401, 401], "round \(round): \(statuses)")
                    #expect(responses.values.compactMap { $0 }.filter { $0.status == 401 }.allSatisfy { $0.json?["error"] as? String == "invalid_grant" })
                }
            }
        }
    }
}
