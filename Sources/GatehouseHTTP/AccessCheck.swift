// SPDX-License-Identifier: Apache-2.0
import GatehouseCrypto
public import GatehouseJOSE
import Synchronization

/// The one access-token check of Gatehouse, wherever a token is presented — a gateway route,
/// `/auth/verify`, the issuer's `/users/me`, `/auth/password` and `/auth/logout` with `all`: the
/// identity comes from the verified-token cache or from `providers` (and is then cached), and a
/// token whose session was revoked is refused (`revoked`) on hits and misses alike.
public struct AccessCheck: Sendable {
    public let providers: ProviderSet

    public init(providers: ProviderSet) {
        self.providers = providers
    }

    /// With this event loop's cache (nil: every token is verified) and its copy of the revoked sessions.
    package func identity(of token: String, now: Double, cache: TokenCache?, revoked: RevocationList?) -> Result<Identity, JOSEError> {
        let key = cache?.key(for: token)
        let result = self.identity(
            of: token, now: now,
            cached: {
                guard let cache, let key else { return .miss }
                return cache.lookup(key, now: now)
            },
            remember: { entry in if let key { cache?.insert(key, entry) } }
        )
        return Self.refusingRevoked(result) { revoked?.contains($0) ?? false }
    }

    /// For callers that hold no event loop's state (the issuer's endpoints): a cache shared behind a
    /// lock, held for the lookup and the insertion only, never for a verification; revocations
    /// read from the board.
    public func identity(of token: String, now: Double, cache: SharedTokenCache?, revocations: RevocationBoard?) -> Result<Identity, JOSEError> {
        let key = cache?.key(for: token)
        let result = self.identity(
            of: token, now: now, cached: { key.flatMap { key in cache?.lookup(key, now: now) } ?? .miss },
            remember: { entry in if let key { cache?.insert(key, entry) } }
        )
        return Self.refusingRevoked(result) { revocations?.contains($0) ?? false }
    }

    private func identity(
        of token: String, now: Double, cached: () -> TokenCache.Lookup, remember: (TokenCache.Entry) -> Void
    ) -> Result<Identity, JOSEError> {
        switch cached() {
        case .hit(let identity):
            return .success(identity)
        case .expired:
            return .failure(JOSEError(.expired))
        case .miss:
            do {
                let (verified, leeway) = try self.providers.verifyReturningLeeway(token, now: now)
                var identity = try Identity(claims: verified.claims)
                if let expiresAt = verified.claims.expiresAt {
                    identity.validUntil = expiresAt + leeway
                    remember(.init(identity: identity, deadline: expiresAt + leeway))
                }
                return .success(identity)
            } catch {
                return .failure(error)
            }
        }
    }

    private static func refusingRevoked(_ result: Result<Identity, JOSEError>, isRevoked: (String) -> Bool) -> Result<Identity, JOSEError> {
        if case .success(let identity) = result, let sessionID = identity.sessionID, isRevoked(sessionID) {
            return .failure(JOSEError(.revoked))
        }
        return result
    }
}

/// A verified-token cache for callers that hold no event loop's state (the issuer's endpoints),
/// shared by every thread behind a lock. The issuer's requests make a database round trip each;
/// beside it an uncontended lock is nothing, and it is never held across a verification.
public final class SharedTokenCache: Sendable {
    private let cache: Mutex<TokenCache>

    public init(capacity: Int) {
        self.cache = Mutex(TokenCache(capacity: capacity))
    }

    /// Hashed outside the lock: a long token costs its hashing to its own caller only.
    func key(for token: String) -> TokenCache.Key { TokenCache.key(digest: Digest.sha256.hash(Array(token.utf8))) }
    func lookup(_ key: TokenCache.Key, now: Double) -> TokenCache.Lookup { self.cache.withLock { $0.lookup(key, now: now) } }
    func insert(_ key: TokenCache.Key, _ entry: TokenCache.Entry) { self.cache.withLock { $0.insert(key, entry) } }

    /// Hits and misses so far.
    public var counts: (hits: Int, misses: Int) { self.cache.withLock { ($0.hits, $0.misses) } }
}
