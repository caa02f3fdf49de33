// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseStore
import GatehouseTestSupport
import Testing

/// The login limit's slots (Hardening II, finding 5), on SQLite and PostgreSQL.
@Suite("Login slots")
struct LoginSlotTests {
    @Test("failures plus slots in flight reach the limit: no slot; a failure replaces its slot; a success clears", arguments: Backend.allCases)
    func counting(_ backend: Backend) throws {
        let store = try backend.makeStore()
        func take(_ id: String, at now: Int64) throws -> Int64? {
            try store.takeLoginSlot(key: "email:a", id: id, limit: 3, window: 60_000, lifetime: 10_000, now: now)
        }
        #expect(try take("s1", at: 1000) == nil)
        #expect(try take("s2", at: 1000) == nil)
        #expect(try take("s3", at: 1000) == nil)
        // Three in flight: the fourth waits (about a second: the slots are decided soon).
        #expect(try take("s4", at: 1000) == 1000)
        #expect(try store.loginSlots(key: "email:a", now: 1000) == 3)
        // Another key is not affected.
        #expect(try store.takeLoginSlot(key: "email:b", id: "b1", limit: 3, window: 60_000, lifetime: 10_000, now: 1000) == nil)
        // Wrong passwords: each slot becomes a failure of the email and of the address.
        for id in ["s1", "s2", "s3"] {
            try store.finishLoginSlot(id: id, key: "email:a", failed: true, alsoFailing: ["address:1.2.3.4"], window: 60_000, now: 2000)
        }
        #expect(try store.loginSlots(key: "email:a", now: 2000) == 0)
        // Three failures: blocked until the first leaves the window.
        #expect(try take("s5", at: 3000) == 59_000)
        #expect(try store.loginBlocked(key: "address:1.2.3.4", limit: 3, window: 60_000, now: 3000) == 59_000)
        #expect(try take("s6", at: 62_001) == nil)
        // A success releases its slot and clears the email's failures.
        try store.finishLoginSlot(id: "s6", key: "email:a", failed: false, window: 60_000, now: 62_002)
        #expect(try store.loginSlots(key: "email:a", now: 62_002) == 0)
        #expect(try store.loginBlocked(key: "email:a", limit: 1, window: 60_000, now: 62_002) == nil)
        // A released slot is simply gone.
        #expect(try take("s7", at: 63_000) == nil)
        try store.releaseLoginSlot(id: "s7")
        #expect(try store.loginSlots(key: "email:a", now: 63_000) == 0)
    }

    @Test("a slot whose process died stops counting at its expiry", arguments: Backend.allCases)
    func expiry(_ backend: Backend) throws {
        let store = try backend.makeStore()
        for id in ["d1", "d2"] {
            #expect(try store.takeLoginSlot(key: "email:a", id: id, limit: 2, window: 60_000, lifetime: 60_000, now: 0) == nil)
        }
        #expect(try store.takeLoginSlot(key: "email:a", id: "x", limit: 2, window: 60_000, lifetime: 60_000, now: 59_999) != nil)
        #expect(try store.takeLoginSlot(key: "email:a", id: "y", limit: 2, window: 60_000, lifetime: 60_000, now: 60_000) == nil)
        #expect(try store.loginSlots(key: "email:a", now: 60_000) == 1)
    }

    @Test("slots are shared by every store on one PostgreSQL database, under concurrency")
    func sharedOnPostgres() throws {
        let url = try Backend.postgres.makeURL()
        let stores = try (0..<4).map { _ in try Store.open(url) }
        try stores[0].migrate(now: 0)
        let taken = Collector<Bool>()
        let errors = Collector<String>()
        concurrently(40) { index in
            do {
                let wait = try stores[index % 4].takeLoginSlot(key: "email:a", id: "p\(index)", limit: 7, window: 60_000, lifetime: 60_000, now: 1000)
                taken.append(wait == nil)
            } catch {
                errors.append("\(error)")
            }
        }
        #expect(errors.values == [])
        #expect(taken.values.filter { $0 }.count == 7)
        #expect(try stores[1].loginSlots(key: "email:a", now: 1000) == 7)
    }

    @Test("a sampled password hash is one of the users', the same for the same seed; none without users", arguments: Backend.allCases)
    func sampledHash(_ backend: Backend) throws {
        let store = try backend.makeStore()
        #expect(try store.samplePasswordHash(seed: 42) == nil)
        for index in 0..<5 {
            _ = try store.createUser(email: "u\(index)@example.com", name: nil, passwordHash: "hash-\(index)", role: "viewer", now: 0)
        }
        let hashes = Set(try (0..<50).map { try store.samplePasswordHash(seed: UInt64($0) &* 0x9E37_79B9_7F4A_7C15) ?? "" })
        #expect(hashes.isSubset(of: Set((0..<5).map { "hash-\($0)" })) && hashes.count > 1)
        #expect(try store.samplePasswordHash(seed: 7) == store.samplePasswordHash(seed: 7))
    }
}
