// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseTestSupport
import Testing

/// Hardening II, lower item: after an Argon2 parameter change, accounts that have not logged in
/// since keep hashes with the old parameters; an unknown email must cost what such an account's
/// wrong password costs, or the timing tells which emails have accounts.
@Suite("Decoy cost", .serialized)
struct DecoyCostTests {
    @Test("an unknown email costs what a known email with an older stored hash costs")
    func unknownLikeStale() async throws {
        let database = try Backend.sqlite.makeURL()
        // Cheap parameters first (m=1024, t=1): ann's hash keeps them until she logs in.
        try await Harness.with(.sqlite, database: database) { harness in _ = try harness.register("ann@example.com") }
        var options = Harness.Options()
        options.argon2 = "{ memory_kib: 32768, iterations: 3, parallelism: 1 }"
        options.issuer = "login_limit: { failures: 1000, window: 15m }"
        try await Harness.with(.sqlite, database: database, options: options) { harness in
            func medianMilliseconds(_ email: String) throws -> Double {
                var times: [Double] = []
                for _ in 0..<7 {
                    let started = DispatchTime.now().uptimeNanoseconds
                    #expect(try harness.login(email, password: "wrong password").status == 401)
                    times.append(Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6)
                }
                return times.sorted()[3]
            }
            // Measured alternately, so that the machine's load hits both alike.
            let known = try medianMilliseconds("ann@example.com")
            let unknown = try medianMilliseconds("nobody@example.com")
            let knownAgain = try medianMilliseconds("ann@example.com")
            print("decoy cost: known (old hash) \(known) / \(knownAgain) ms, unknown \(unknown) ms")
            let slower = max(known, knownAgain)
            #expect(unknown < slower * 3 + 5, "unknown \(unknown) ms vs known \(slower) ms")
            #expect(min(known, knownAgain) < unknown * 3 + 5, "known \(known) ms vs unknown \(unknown) ms")
        }
    }
}
