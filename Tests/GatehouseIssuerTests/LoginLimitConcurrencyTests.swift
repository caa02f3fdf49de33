// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseStore
import GatehouseTestSupport
import Testing

/// Hardening II, finding 5: the login limit holds under concurrency, on one issuer or several
/// sharing a database (DESIGN.md, "Login limits"): an attempt takes a slot for its email before its
/// password is checked, so a burst of parallel guesses gets at most `failures` answers of 401.
@Suite("Login limit under concurrency", .serialized)
struct LoginLimitConcurrencyTests {
    /// Argon2 slow enough (a few ms) that parallel attempts really overlap.
    static func options(failures: Int, top: String = "") -> Harness.Options {
        var options = Harness.Options()
        options.argon2 = "{ memory_kib: 4096, iterations: 2, parallelism: 1 }"
        options.issuer = "login_limit: { failures: \(failures), window: 15m }"
        options.top = top
        return options
    }

    /// `count` logins at once at `port`, each with `password(index)`; their statuses.
    static func burst(_ count: Int, ports: [Int], email: String, password: @escaping @Sendable (Int) -> String) -> [Int] {
        let statuses = Collector<Int>()
        concurrently(count) { index in
            let body = try! JSONSerialization.data(withJSONObject: ["email": email, "password": password(index)])
            let response = try? RawHTTPClient.request(
                port: ports[index % ports.count], "POST", "/auth/login", headers: [("Content-Type", "application/json")], body: Array(body)
            )
            statuses.append(response?.status ?? 0)
        }
        return statuses.values
    }

    @Test("60 parallel wrong passwords at one account: at most `failures` 401s, the rest 429", arguments: Backend.allCases)
    func parallelGuesses(_ backend: Backend) async throws {
        try await Harness.with(backend, options: Self.options(failures: 10)) { harness in
            _ = try harness.register("ann@example.com")
            let statuses = Self.burst(60, ports: [harness.port], email: "ann@example.com") { "wrong password \($0)" }
            let counts = Dictionary(grouping: statuses, by: { $0 }).mapValues(\.count)
            #expect(Set(counts.keys).isSubset(of: [401, 429]), "\(counts)")
            #expect((counts[401] ?? 0) <= 10, "\(counts)")
            #expect((counts[401] ?? 0) >= 1 && (counts[429] ?? 0) >= 50, "\(counts)")
            // Blocked now, even with the right password.
            #expect(try harness.login("ann@example.com").status == 429)
        }
    }

    @Test("two issuers on one PostgreSQL database, 30 guesses at each: at most `failures` 401s in total")
    func twoIssuers() async throws {
        let database = try Backend.postgres.makeURL()
        try await Harness.with(.postgres, database: database, options: Self.options(failures: 10)) { first in
            _ = try first.register("ann@example.com")
            try await Harness.with(.postgres, database: database, options: Self.options(failures: 10)) { second in
                let statuses = Self.burst(60, ports: [first.port, second.port], email: "ann@example.com") { "wrong password \($0)" }
                let counts = Dictionary(grouping: statuses, by: { $0 }).mapValues(\.count)
                #expect(Set(counts.keys).isSubset(of: [401, 429]), "\(counts)")
                #expect((counts[401] ?? 0) <= 10, "\(counts)")
                #expect((counts[429] ?? 0) >= 50, "\(counts)")
            }
        }
    }

    @Test("a burst of parallel correct logins: all 200, and nothing stays blocked afterwards", arguments: Backend.allCases)
    func parallelCorrectLogins(_ backend: Backend) async throws {
        // Sequential attempts each from their own address, so that only the email's counter matters.
        try await Harness.with(backend, options: Self.options(failures: 10, top: "trusted_proxies: [127.0.0.0/8]")) { harness in
            _ = try harness.register("ann@example.com")
            var address = 0
            func attempt(_ password: String) throws -> Int {
                address += 1
                return try harness.login("ann@example.com", password: password, from: "198.51.100.\(address)").status
            }
            // Earlier failures are cleared by the first success.
            for _ in 0..<3 { #expect(try attempt("wrong password") == 401) }
            for round in 0..<3 {
                let statuses = Self.burst(7, ports: [harness.port], email: "ann@example.com") { _ in "correct horse battery" }
                #expect(statuses == [Int](repeating: 200, count: 7), "round \(round): \(statuses)")
            }
            // No slot and no failure left behind: the whole limit is available again.
            for _ in 0..<9 { #expect(try attempt("wrong password") == 401) }
            #expect(try attempt("correct horse battery") == 200)
        }
    }

    @Test("parallel wrong current passwords at /auth/password: at most `failures` 401s", arguments: [Backend.sqlite])
    func parallelPasswordChanges(_ backend: Backend) async throws {
        try await Harness.with(backend, options: Self.options(failures: 5)) { harness in
            let access = try harness.register("ann@example.com").access
            let port = harness.port
            let statuses = Collector<Int>()
            concurrently(30) { index in
                let body = try! JSONSerialization.data(withJSONObject: ["current_password": "wrong password \(index)", "new_password": "another good passphrase"])
                let response = try? RawHTTPClient.request(
                    port: port, "POST", "/auth/password", headers: [("Content-Type", "application/json"), ("Authorization", "Bearer \(access)")],
                    body: Array(body)
                )
                statuses.append(response?.status ?? 0)
            }
            let counts = Dictionary(grouping: statuses.values, by: { $0 }).mapValues(\.count)
            #expect(Set(counts.keys).isSubset(of: [401, 429]), "\(counts)")
            #expect((counts[401] ?? 0) <= 5, "\(counts)")
        }
    }

    @Test("IPv6 clients count per /64, IPv4 clients per address", arguments: [Backend.sqlite])
    func addressPrefixes(_ backend: Backend) async throws {
        try await Harness.with(backend, options: Self.options(failures: 3, top: "trusted_proxies: [127.0.0.0/8]")) { harness in
            // Unknown emails, so that only the address's counter matters.
            for (index, address) in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:aaaa:bbbb:cccc:dddd"].enumerated() {
                #expect(try harness.login("v6-\(index)@example.com", password: "wrong password", from: address).status == 401)
            }
            // Another host of the same /64 is the same client.
            let limited = try harness.login("v6-x@example.com", password: "wrong password", from: "2001:db8:1:2:ffff::9")
            #expect(limited.status == 429)
            #expect(limited.json?["error"] as? String == "rate_limited")
            // The next /64 is another client.
            #expect(try harness.login("v6-y@example.com", password: "wrong password", from: "2001:db8:1:3::1").status == 401)
            // IPv4: one address is one client; its neighbour is not blocked by it.
            for index in 0..<3 {
                #expect(try harness.login("v4-\(index)@example.com", password: "wrong password", from: "198.51.100.1").status == 401)
            }
            #expect(try harness.login("v4-x@example.com", password: "wrong password", from: "198.51.100.1").status == 429)
            #expect(try harness.login("v4-y@example.com", password: "wrong password", from: "198.51.100.2").status == 401)
            // An IPv4-mapped IPv6 address is its IPv4 address.
            #expect(try harness.login("v4-z@example.com", password: "wrong password", from: "::ffff:198.51.100.1").status == 429)
        }
    }

    @Test("register: a taken email counts as a failure of the address (409 stays), a blocked address gets 429, successes never count", arguments: Backend.allCases)
    func registrationCounting(_ backend: Backend) async throws {
        try await Harness.with(backend, options: Self.options(failures: 3, top: "trusted_proxies: [127.0.0.0/8]")) { harness in
            _ = try harness.register("ann@example.com")
            func register(_ email: String, from address: String) throws -> RawHTTPClient.Response {
                try harness.post("/auth/register", ["email": email, "password": "correct horse battery"], headers: [("X-Forwarded-For", address)])
            }
            for _ in 0..<3 {
                let taken = try register("ann@example.com", from: "203.0.113.7")
                #expect(taken.status == 409 && taken.json?["error"] as? String == "email_taken")
            }
            // Blocked: registering (even a free email) and logging in from that address.
            let blocked = try register("new@example.com", from: "203.0.113.7")
            #expect(blocked.status == 429 && blocked.json?["error"] as? String == "rate_limited")
            #expect(blocked.header("Retry-After").flatMap(Int.init).map { $0 > 800 && $0 <= 900 } == true)
            #expect(try harness.store.user(email: "new@example.com") == nil)
            #expect(try harness.login("ann@example.com", from: "203.0.113.7").status == 429)
            // Many successful registrations from one address never count.
            for index in 0..<5 { #expect(try register("user\(index)@example.com", from: "203.0.113.8").status == 201) }
            #expect(try harness.login("user0@example.com", from: "203.0.113.8").status == 200)
            #expect(try harness.login("user1@example.com", password: "wrong password", from: "203.0.113.8").status == 401)
        }
    }
}
