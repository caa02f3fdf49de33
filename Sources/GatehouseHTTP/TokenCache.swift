// SPDX-License-Identifier: Apache-2.0
import GatehouseCrypto

/// Verified tokens of one event loop: the SHA-256 of a token maps to the identity its verified
/// claims gave and the moment it stops being valid, so a client that reuses its token costs a hash
/// and a lookup instead of a signature check.
///
/// Only verdicts that are the same on every route are kept (signature, issuer, audience, type,
/// identity): every hit re-checks expiry, and the route's role and scope rules are applied per
/// request, so a cached verdict never crosses routes (Ory Oathkeeper's CVE-2021-32701), and the
/// session is checked against the revoked ones on every hit as on every miss. Entries
/// leave in insertion order when the cache is full. Confined to its event loop: no locks.
package final class TokenCache {
    /// The first 128 bits of the token's SHA-256: as good as the whole digest against collisions
    /// among cached tokens, and cheaper to hash and compare.
    package struct Key: Hashable {
        let high: UInt64
        let low: UInt64
    }

    package struct Entry {
        let identity: Identity
        /// `exp` plus the provider's leeway: from then on the token is expired.
        let deadline: Double
    }

    package enum Lookup {
        case hit(Identity)
        case expired
        case miss
    }

    private let capacity: Int
    private var entries: [Key: Entry] = [:]
    /// Keys in insertion order, as a ring: `order[next]` is the oldest once the ring is full.
    private var order: [Key] = []
    private var next = 0
    private let digest = DigestStream(.sha256)

    package private(set) var hits = 0
    package private(set) var misses = 0

    package init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
        self.entries.reserveCapacity(min(capacity, 1 << 16))
    }

    /// The key of a token whose SHA-256 is `digest` (callers that hash outside the cache).
    package static func key(digest: [UInt8]) -> Key {
        digest.withUnsafeBytes { Key(high: $0.loadUnaligned(fromByteOffset: 0, as: UInt64.self), low: $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) }
    }

    package func key(for token: String) -> Key {
        var token = token
        return token.withUTF8 { bytes in
            self.digest.reset()
            self.digest.update(UnsafeRawBufferPointer(bytes))
            return withUnsafeTemporaryAllocation(byteCount: 32, alignment: 8) { output in
                self.digest.finish(into: output)
                return Key(high: output.load(fromByteOffset: 0, as: UInt64.self), low: output.load(fromByteOffset: 8, as: UInt64.self))
            }
        }
    }

    package func lookup(_ key: Key, now: Double) -> Lookup {
        guard let entry = self.entries[key] else {
            self.misses += 1
            return .miss
        }
        guard now < entry.deadline else {
            // Expired: the verifier would say so too. The slot is reused when the ring comes round.
            self.entries[key] = nil
            return .expired
        }
        self.hits += 1
        return .hit(entry.identity)
    }

    package func insert(_ key: Key, _ entry: Entry) {
        // Two misses on one token (threads sharing a cache) insert it twice: keep one ring slot.
        guard self.entries[key] == nil else {
            self.entries[key] = entry
            return
        }
        if self.order.count < self.capacity {
            self.order.append(key)
        } else {
            self.entries[self.order[self.next]] = nil
            self.order[self.next] = key
            self.next = (self.next + 1) % self.capacity
        }
        self.entries[key] = entry
    }

    /// Forgets everything (keys changed).
    package func removeAll() {
        self.entries.removeAll(keepingCapacity: true)
        self.order.removeAll(keepingCapacity: true)
        self.next = 0
    }

    package var count: Int { self.entries.count }
}

@available(*, unavailable)
extension TokenCache: Sendable {}
