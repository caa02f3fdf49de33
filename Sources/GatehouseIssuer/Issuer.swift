// SPDX-License-Identifier: Apache-2.0
public import GatehouseConfig
import GatehouseCrypto
public import GatehouseHTTP
import GatehouseJOSE
import GatehousePassword
public import GatehouseStore
import NIOCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The issuer: accounts, sessions and tokens. Argon2 runs on `hashPool`, every database call on
/// `databasePool`, so that refreshes never wait behind hashes and no event loop ever blocks.
/// Each operation returns a future on the caller's event loop; failures are `HTTPError`s.
public final class Issuer: Sendable {
    /// Longer passwords are refused before any hashing (422).
    public static let maximumPasswordBytes = 1024

    public let config: IssuerConfig
    public let store: Store
    let minter: TokenMinter
    /// The issuer's own access tokens, checked as the gateway checks tokens: cached by digest, and
    /// refused when the session is revoked.
    let accessCheck: AccessCheck
    /// Nil when `verify.token_cache.size` is 0, as the gateway's.
    let accessCache: SharedTokenCache?
    /// HS256 refresh tokens, one verifier per accepted secret (`RefreshSecrets`), then the refresh
    /// tokens of before that change (signed with a published key, `aud` the API audience), still
    /// taken at `/auth/refresh` and `/auth/logout` until they rotate or expire.
    let refreshVerifiers: [Verifier]
    /// The public keys, as served at `/.well-known/jwks.json`.
    public let jwks: JWKS
    let hashPool: BlockingPool
    /// Argon2 threads: one per CPU this process may use (`Processors.available`).
    public let hashWorkers: Int
    let databasePool: BlockingPool
    let trustedProxies: TrustedProxies
    let argon2: Argon2Parameters
    /// The gateway of this process: told of every session the issuer ends, at once.
    let revocations: RevocationBoard?
    /// Hashes of a random password, one per Argon2 parameter set met: an unknown email is checked
    /// against the one with the parameters of some real account's stored hash (see `decoy`).
    private let decoyHashes: Mutex<[Argon2Parameters: String]>

    /// Opens the store (migrating it when `auto_migrate` is on), loads the keys and starts the pools.
    /// `tokenCacheSize`: `verify.token_cache.size`, the access tokens the issuer's own cache keeps (0: none).
    public static func start(
        config: IssuerConfig, trustedProxies: [String], revocations: RevocationBoard? = nil, tokenCacheSize: Int
    ) throws -> Issuer {
        let store = try Store.open(config.database)
        if config.autoMigrate {
            try store.migrate(now: Self.nowMilliseconds())
        } else if let pending = try store.pendingMigrations().first {
            throw IssuerSetupError("the database schema is behind (migration \(pending) pending); run gatehouse migrate")
        }
        guard try store.roles().contains(config.defaultRole) else {
            throw IssuerSetupError("default_role \(config.defaultRole) is not a role (\(try store.roles().joined(separator: ", ")))")
        }
        return try Issuer(config: config, store: store, trustedProxies: trustedProxies, revocations: revocations, tokenCacheSize: tokenCacheSize)
    }

    init(config: IssuerConfig, store: Store, trustedProxies: [String], revocations: RevocationBoard? = nil, tokenCacheSize: Int) throws {
        self.config = config
        self.store = store
        self.revocations = revocations
        self.trustedProxies = try TrustedProxies(trustedProxies)
        self.argon2 = Argon2Parameters(
            memoryKiB: config.argon2.memoryKiB, iterations: config.argon2.iterations, parallelism: config.argon2.parallelism
        )

        let signingKey = try KeyFiles.loadPEM(config.signing.keyFile)
        guard signingKey.isPrivate else { throw IssuerSetupError("\(config.signing.keyFile): the signing key must be a private key") }
        let keys = try config.loadVerificationKeys()
        guard let signingKeyID = keys.first?.keyID else { throw IssuerSetupError("no signing key") }
        let signer = try Signer(material: .asymmetric(signingKey), algorithm: config.signing.algorithm, keyID: signingKeyID)
        let algorithms: Set<Algorithm> = [config.signing.algorithm]
        let keySet = try KeySet(keys, allowed: algorithms)
        let accessVerifier = Verifier(
            policy: VerificationPolicy(algorithms: algorithms, issuer: config.issuer, audience: config.audience, type: .required("at+jwt")),
            keys: keySet
        )
        self.accessCheck = AccessCheck(providers: ProviderSet([accessVerifier]))
        self.accessCache = tokenCacheSize > 0 ? SharedTokenCache(capacity: tokenCacheSize) : nil
        let legacyRefreshVerifier = Verifier(
            policy: VerificationPolicy(algorithms: algorithms, issuer: config.issuer, audience: config.audience, type: .required("refresh+jwt")),
            keys: keySet
        )
        self.jwks = JWKS(keys: keys.compactMap { key in
            guard case .asymmetric(let publicKey) = key.material else { return nil }
            return JWK(key: publicKey, keyID: key.keyID, algorithm: config.signing.algorithm)
        })

        let refreshSecrets = try RefreshSecrets(config: config, signingKey: signingKey)
        self.refreshVerifiers = try refreshSecrets.verifiers(issuer: config.issuer) + [legacyRefreshVerifier]
        self.minter = try TokenMinter(
            signer: signer, refreshSecret: refreshSecrets.signing, issuer: config.issuer, audience: config.audience,
            accessTTL: Int64(config.accessTokenTTL.seconds), refreshTTL: Int64(config.refreshTokenTTL.seconds),
            rotationSecret: refreshSecrets.rotation
        )

        self.hashWorkers = Processors.available
        self.hashPool = BlockingPool(name: "argon2", threads: self.hashWorkers, queueLimit: config.hashQueue, niceness: 5)
        let connections = config.database.hasPrefix("sqlite:") ? 1 : 4
        self.databasePool = BlockingPool(name: "database", threads: connections, queueLimit: 1024)
        self.decoyHashes = Mutex([self.argon2: try Argon2id.hash(password: SecureRandom.bytes(16), parameters: self.argon2)])
    }

    public func shutdown() async throws {
        try await self.hashPool.shutdown()
        try await self.databasePool.shutdown()
        self.store.database.close()
    }

    /// Argon2 jobs waiting for a thread.
    public var hashQueueDepth: Int { self.hashPool.queueDepth }

    static func nowMilliseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }

    // MARK: Operations

    struct Issued: Sendable {
        let tokens: TokenMinter.Tokens
        let user: UserRecord
    }

    /// A new account and its first session. A taken email (409, which stays: the form must say
    /// so) counts as a failure of the client address towards the login limit, so that register
    /// cannot enumerate accounts faster than login; a blocked address gets 429 before any hashing.
    /// Successful registrations never count.
    func register(
        email rawEmail: String, password: String, name: String?, peer: String? = nil, forwardedFor: [String] = [], on eventLoop: any EventLoop
    ) -> EventLoopFuture<Issued> {
        guard let email = EmailAddress.normalize(rawEmail) else { return eventLoop.makeFailedFuture(HTTPError.invalidEmail) }
        let passwordBytes = Array(password.utf8)
        guard (self.config.passwordMinLength...Self.maximumPasswordBytes).contains(passwordBytes.count) else {
            return eventLoop.makeFailedFuture(HTTPError.weakPassword(minimum: self.config.passwordMinLength))
        }
        let addressKey = self.addressLimitKey(peer: peer, forwardedFor: forwardedFor)
        let window = self.loginLimitWindow
        let parameters = self.argon2
        return self.database(on: eventLoop) { try self.refuseIfBlocked([addressKey], now: Self.nowMilliseconds()) }
            .flatMap { _ in self.hash { try Argon2id.hash(password: passwordBytes, parameters: parameters) }.on(eventLoop) }
            .flatMap { hash in
                self.database(on: eventLoop) {
                    let now = Self.nowMilliseconds()
                    let user: UserRecord
                    do {
                        user = try self.store.createUser(email: email, name: name, passwordHash: hash, role: self.config.defaultRole, now: now)
                    } catch let error as StoreError where error.kind == .uniqueViolation {
                        try self.store.recordLoginFailure(keys: [addressKey], window: window, now: now)
                        throw HTTPError.emailTaken
                    }
                    return try self.startSession(for: user, now: now)
                }
            }
    }

    /// Checks a password under the login limit (DESIGN.md, "Login limits"): a blocked client
    /// address gets 429 first; then the attempt takes a slot for its email in the database, or gets
    /// 429 when the email's failures in the window plus the attempts in flight already reach
    /// `failures`. Only then is the password checked. A wrong one turns the slot into a failure (of
    /// the email and of the address), a right one releases it and clears the email's failures.
    func login(email rawEmail: String, password: String, peer: String?, forwardedFor: [String], on eventLoop: any EventLoop) -> EventLoopFuture<Issued> {
        guard let email = EmailAddress.normalize(rawEmail) else { return eventLoop.makeFailedFuture(HTTPError.invalidEmail) }
        let passwordBytes = Array(password.utf8)
        guard passwordBytes.count <= Self.maximumPasswordBytes else {
            return eventLoop.makeFailedFuture(HTTPError.weakPassword(minimum: self.config.passwordMinLength))
        }
        let emailKey = Self.emailLimitKey(email)
        let addressKey = self.addressLimitKey(peer: peer, forwardedFor: forwardedFor)
        let window = self.loginLimitWindow
        let parameters = self.argon2
        let slot = TokenMinter.randomID()
        return self.database(on: eventLoop) { () throws -> (credentials: (id: Int64, passwordHash: String)?, decoy: Argon2Parameters?) in
            let now = Self.nowMilliseconds()
            try self.refuseIfBlocked([addressKey], now: now)
            try self.takeSlot(slot, key: emailKey, now: now)
            // The decoy's parameters are looked up for a known email too, so that both take the
            // same database round trips.
            let decoy = try self.decoyParameters(for: email)
            return (try self.store.credentials(email: email), decoy)
        }.flatMap { found in
            // An unknown email is checked against a decoy: the same work, the same answer.
            self.hash { () throws -> (matched: Bool, rehash: String?) in
                guard let credentials = found.credentials else {
                    _ = Argon2id.verify(password: passwordBytes, encoded: try self.decoy(parameters: found.decoy ?? parameters))
                    return (false, nil)
                }
                let matched = Argon2id.verify(password: passwordBytes, encoded: credentials.passwordHash)
                guard matched, PHCString(credentials.passwordHash)?.needsRehash(for: parameters) ?? true else { return (matched, nil) }
                return (true, try Argon2id.hash(password: passwordBytes, parameters: parameters))
            }.on(eventLoop).map { (found.credentials, $0) }
        }.flatMap { credentials, outcome in
            self.database(on: eventLoop) {
                let now = Self.nowMilliseconds()
                guard outcome.matched, let credentials else {
                    try self.store.finishLoginSlot(id: slot, key: emailKey, failed: true, alsoFailing: [addressKey], window: window, now: now)
                    throw HTTPError.invalidCredentials
                }
                try self.store.finishLoginSlot(id: slot, key: emailKey, failed: false, window: window, now: now)
                if let rehash = outcome.rehash { try self.store.setPasswordHash(userID: credentials.id, rehash) }
                guard let user = try self.store.user(id: credentials.id) else { throw HTTPError.invalidCredentials }
                return try self.startSession(for: user, now: now)
            }
        }.flatMapError { error in self.releasingSlot(slot, after: error, on: eventLoop) }
    }

    /// How long a login slot counts at most: far longer than any check takes (a full hash queue
    /// drains in seconds), short enough that a process dying mid-login blocks nobody for long.
    static let loginSlotLifetime: Int64 = 60_000

    /// Takes a login slot for `key` or throws 429 (on the database pool).
    private func takeSlot(_ slot: String, key: String, now: Int64) throws {
        if let wait = try self.store.takeLoginSlot(
            key: key, id: slot, limit: self.config.loginLimitFailures, window: self.loginLimitWindow, lifetime: Self.loginSlotLifetime, now: now
        ) {
            throw HTTPError.rateLimited(retryAfter: Int((wait + 999) / 1000))
        }
    }

    /// After an attempt failed other than by a wrong password or the limit (a full hash queue, the
    /// database gone, …), gives its slot back (if it took one) and fails with `error`. The slot
    /// would expire anyway; giving it back keeps the next attempt from a needless 429.
    private func releasingSlot<T: Sendable>(_ slot: String, after error: any Error, on eventLoop: any EventLoop) -> EventLoopFuture<T> {
        if let known = error as? HTTPError, known.code == "invalid_credentials" || known.code == "rate_limited" {
            return eventLoop.makeFailedFuture(error)
        }
        return self.database(on: eventLoop) { try self.store.releaseLoginSlot(id: slot) }
            .flatMapThrowing { _ -> T in throw error }
            .flatMapError { _ in eventLoop.makeFailedFuture(error) }
    }

    /// The login limit's counter for the client of a request (its /64 for IPv6).
    private func addressLimitKey(peer: String?, forwardedFor: [String]) -> String {
        LoginLimitKeys.address(self.trustedProxies.clientAddress(peer: peer, forwardedFor: forwardedFor))
    }

    /// The Argon2 parameters an unknown email's decoy check uses (on the database pool).
    ///
    /// A decoy hashed once with the configured parameters costs what a known account costs only
    /// while every stored hash uses them; after a parameter change, accounts that have not logged
    /// in since keep their old hashes (a login re-hashes), and a known email would cost a different
    /// time from an unknown one. So an unknown email is checked against a decoy with the parameters
    /// of a real account's stored hash, the same account for the same email (picked by a hash of
    /// it): unknown emails cost what the accounts cost, in the same proportions, and repeating an
    /// unknown email repeats its cost. Nil (the configured parameters) when there is no account.
    private func decoyParameters(for email: String) throws -> Argon2Parameters? {
        let digest = Digest.sha256.hash(Array(("gatehouse-decoy:" + email).utf8))
        let seed = digest.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return try self.store.samplePasswordHash(seed: seed).flatMap { PHCString($0)?.parameters }
    }

    /// The decoy hash for `parameters`, made once per parameter set (on the hash pool).
    private func decoy(parameters: Argon2Parameters) throws -> String {
        if let known = self.decoyHashes.withLock({ $0[parameters] }) { return known }
        let made = try Argon2id.hash(password: SecureRandom.bytes(16), parameters: parameters)
        return self.decoyHashes.withLock { hashes in
            // At most a handful of parameter sets ever exist; the cap only bounds a misuse.
            if hashes.count < 16 { hashes[parameters] = hashes[parameters] ?? made }
            return hashes[parameters] ?? made
        }
    }

    /// The login limit's counter for an email (another counts by client address).
    private static func emailLimitKey(_ email: String) -> String { "email:" + email }

    /// The login limit's window, in milliseconds.
    private var loginLimitWindow: Int64 { Int64(self.config.loginLimitWindow.seconds * 1000) }

    /// 429 `rate_limited` when any of the login limit's `keys` is over the limit, `Retry-After` the
    /// longest wait (on the database pool).
    private func refuseIfBlocked(_ keys: [String], now: Int64) throws {
        let limit = self.config.loginLimitFailures
        let waits = try keys.compactMap { try self.store.loginBlocked(key: $0, limit: limit, window: self.loginLimitWindow, now: now) }
        if let wait = waits.max() { throw HTTPError.rateLimited(retryAfter: Int((wait + 999) / 1000)) }
    }

    /// A new session and its first tokens (on the database pool).
    private func startSession(for user: UserRecord, now: Int64) throws -> Issued {
        let sessionID = TokenMinter.randomID()
        let refreshID = TokenMinter.randomID()
        let seconds = now / 1000
        try self.store.createSession(
            id: sessionID, userID: user.id, refreshHash: TokenMinter.hash(ofTokenID: refreshID), now: now,
            expiresAt: (seconds + self.minter.refreshTTL) * 1000
        )
        return Issued(tokens: try self.minter.tokens(for: user, sessionID: sessionID, refreshID: refreshID, now: seconds), user: user)
    }

    func refresh(token: String, on eventLoop: any EventLoop) -> EventLoopFuture<Issued> {
        let claims: (sessionID: String, tokenID: String, userID: Int64)
        switch self.verifyRefresh(token) {
        case .success(let verified): claims = verified
        case .failure(let error): return eventLoop.makeFailedFuture(error)
        }
        let next = self.minter.nextRefreshID(after: claims.tokenID)
        let reuseInterval = Int64(self.config.refreshReuseInterval.seconds * 1000)
        return self.database(on: eventLoop) {
            // The time is read once the session's row is locked: a refresh that waited behind a
            // rotation of the same token must see that rotation as past, or with an interval of 0
            // two issuers racing one token would both rotate it.
            let (outcome, now) = try self.store.rotateRefresh(
                sessionID: claims.sessionID, userID: claims.userID, presentedHash: TokenMinter.hash(ofTokenID: claims.tokenID),
                nextHash: TokenMinter.hash(ofTokenID: next), clock: Self.nowMilliseconds, refreshLifetime: self.minter.refreshTTL * 1000,
                reuseInterval: reuseInterval, accessTokenLifetime: self.accessTokenLifetime
            )
            let seconds = now / 1000
            switch outcome {
            case .rotated(let userID), .replayed(let userID):
                guard let user = try self.store.user(id: userID) else { throw HTTPError.invalidGrant("the user no longer exists") }
                return Issued(tokens: try self.minter.tokens(for: user, sessionID: claims.sessionID, refreshID: next, now: seconds), user: user)
            case .reused:
                self.announce([claims.sessionID], now: now)
                throw HTTPError.invalidGrant("the refresh token was already used; the session is revoked")
            case .invalid:
                throw HTTPError.invalidGrant("the session is revoked or expired")
            }
        }
    }

    /// Revokes the session of `token` (any refresh token of it, current or older). Idempotent.
    func logout(token: String, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        switch self.verifyRefresh(token) {
        case .failure(let error): return eventLoop.makeFailedFuture(error)
        case .success(let claims):
            return self.database(on: eventLoop) {
                let now = Self.nowMilliseconds()
                if try self.store.revokeSession(id: claims.sessionID, now: now, accessTokenLifetime: self.accessTokenLifetime) {
                    self.announce([claims.sessionID], now: now)
                }
            }
        }
    }

    /// Revokes every session of the access token's user, its own included (`logout` with `all`).
    func logoutEverywhere(accessToken: String, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let claims: (userID: Int64, sessionID: String?)
        switch self.verifyAccess(accessToken) {
        case .success(let verified): claims = verified
        case .failure(let error): return eventLoop.makeFailedFuture(error)
        }
        return self.database(on: eventLoop) {
            let now = Self.nowMilliseconds()
            let ended = try self.store.revokeSessions(userID: claims.userID, now: now, accessTokenLifetime: self.accessTokenLifetime)
            self.announce(ended, now: now)
        }
    }

    /// Changes the password of the access token's user after checking the current one, and
    /// revokes the user's other sessions (the one presenting the token stays). A wrong current
    /// password counts towards the login limit of the user's email, and a blocked email is refused
    /// here as at login: a stolen access token must not become an unthrottled password oracle.
    func changePassword(accessToken: String, current: String, new: String, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let claims: (userID: Int64, sessionID: String?)
        switch self.verifyAccess(accessToken) {
        case .success(let verified): claims = verified
        case .failure(let error): return eventLoop.makeFailedFuture(error)
        }
        let currentBytes = Array(current.utf8)
        let newBytes = Array(new.utf8)
        guard currentBytes.count <= Self.maximumPasswordBytes else { return eventLoop.makeFailedFuture(HTTPError.invalidCredentials) }
        guard (self.config.passwordMinLength...Self.maximumPasswordBytes).contains(newBytes.count) else {
            return eventLoop.makeFailedFuture(HTTPError.weakPassword(minimum: self.config.passwordMinLength))
        }
        let parameters = self.argon2
        let window = self.loginLimitWindow
        let slot = TokenMinter.randomID()
        return self.database(on: eventLoop) { () throws -> (stored: String, emailKey: String) in
            guard let user = try self.store.user(id: claims.userID), let credentials = try self.store.credentials(email: user.email) else {
                throw HTTPError.invalidToken(description: "the user no longer exists")
            }
            // The login limit's slot, as at login: parallel guesses cannot outrun the limit here either.
            let emailKey = Self.emailLimitKey(user.email)
            try self.takeSlot(slot, key: emailKey, now: Self.nowMilliseconds())
            return (credentials.passwordHash, emailKey)
        }.flatMap { stored, emailKey in
            self.hash { () throws -> String? in
                guard Argon2id.verify(password: currentBytes, encoded: stored) else { return nil }
                return try Argon2id.hash(password: newBytes, parameters: parameters)
            }.on(eventLoop).map { ($0, emailKey) }
        }.flatMap { hash, emailKey in
            self.database(on: eventLoop) {
                let now = Self.nowMilliseconds()
                guard let hash else {
                    try self.store.finishLoginSlot(id: slot, key: emailKey, failed: true, window: window, now: now)
                    throw HTTPError.invalidCredentials
                }
                try self.store.finishLoginSlot(id: slot, key: emailKey, failed: false, window: window, now: now)
                try self.store.setPasswordHash(userID: claims.userID, hash)
                let ended = try self.store.revokeSessions(
                    userID: claims.userID, keeping: claims.sessionID, now: now, accessTokenLifetime: self.accessTokenLifetime
                )
                self.announce(ended, now: now)
            }
        }.flatMapError { error in self.releasingSlot(slot, after: error, on: eventLoop) }
    }

    /// The revocation log after `cursor`, for `GET /auth/revocations`.
    func revocations(after cursor: Int64, limit: Int, on eventLoop: any EventLoop) -> EventLoopFuture<[RevocationRecord]> {
        self.database(on: eventLoop) { try self.store.revocations(after: cursor, limit: limit) }
    }

    /// How long a revoked session must be remembered: the longest an access token of it can live.
    var accessTokenLifetime: Int64 { self.minter.accessTTL * 1000 }

    /// Tells this process's gateway at once (other gateways follow the revocation log).
    private func announce(_ sessionIDs: [String], now: Int64) {
        guard let revocations = self.revocations, !sessionIDs.isEmpty else { return }
        let expiresAt = Double(now + self.accessTokenLifetime) / 1000
        revocations.publish(sessionIDs.map { RevocationBoard.Entry(sessionID: $0, expiresAt: expiresAt) })
    }

    /// The user a bearer access token stands for.
    func currentUser(accessToken: String, on eventLoop: any EventLoop) -> EventLoopFuture<UserRecord> {
        let userID: Int64
        switch self.verifyAccess(accessToken) {
        case .success(let claims): userID = claims.userID
        case .failure(let error): return eventLoop.makeFailedFuture(error)
        }
        return self.database(on: eventLoop) {
            guard let user = try self.store.user(id: userID) else { throw HTTPError.invalidToken(description: "the user no longer exists") }
            return user
        }
    }

    /// The user and session of an access token (`AccessCheck`: cached, refused when revoked).
    private func verifyAccess(_ token: String) -> Result<(userID: Int64, sessionID: String?), HTTPError> {
        switch self.accessCheck.identity(of: token, now: Double(Self.nowMilliseconds()) / 1000, cache: self.accessCache, revocations: self.revocations) {
        case .failure(let error):
            return .failure(.invalidToken(description: error.reason.rawValue))
        case .success(let identity):
            // The issuer's tokens carry a numeric `user_id`, which `Identity` holds as its text.
            guard let id = Int64(identity.userID) else { return .failure(.invalidToken(description: RejectionReason.missingClaim.rawValue)) }
            return .success((id, identity.sessionID))
        }
    }

    /// Hits and misses of the access-token cache.
    public var accessCacheCounts: (hits: Int, misses: Int) { self.accessCache?.counts ?? (0, 0) }

    /// The session, token id and user of a verified refresh token.
    private func verifyRefresh(_ token: String) -> Result<(sessionID: String, tokenID: String, userID: Int64), HTTPError> {
        let now = Double(Self.nowMilliseconds()) / 1000
        var reasons: [RejectionReason] = []
        for verifier in self.refreshVerifiers {
            let claims: ClaimSet
            do { claims = try verifier.verify(token, now: now).claims } catch {
                reasons.append(error.reason)
                continue
            }
            guard let sessionID = claims.sessionID, let tokenID = claims.tokenID, let userID = claims.subject.flatMap({ Int64($0) }) else {
                return .failure(.invalidGrant("the refresh token lacks sid, jti or sub"))
            }
            return .success((sessionID, tokenID, userID))
        }
        // The verifier the token was meant for says why; the others mostly refuse the key or alg.
        let keyReasons: Set<RejectionReason> = [.badSignature, .algorithmNotAllowed, .unknownKeyID]
        let reason = reasons.first { !keyReasons.contains($0) } ?? reasons.first ?? .malformed
        return .failure(.invalidGrant("the refresh token is invalid: \(reason.rawValue)"))
    }

    func ping(on eventLoop: any EventLoop) -> EventLoopFuture<Bool> {
        self.database(on: eventLoop) { try self.store.ping() }.map { true }.recover { _ in false }
    }

    // MARK: Pools

    /// Work on the database pool; a store that cannot be reached, or a full queue, is 503.
    private func database<T: Sendable>(on eventLoop: any EventLoop, _ work: @escaping @Sendable () throws -> T) -> EventLoopFuture<T> {
        self.databasePool.run(on: eventLoop, work).flatMapErrorThrowing { error in
            switch error {
            case is BlockingPool.Saturated: throw HTTPError.busy
            case let error as StoreError where error.kind == .unavailable: throw HTTPError.databaseDown
            default: throw error
            }
        }
    }

    /// Work on the Argon2 pool; a full queue is 503 at once.
    private func hash<T: Sendable>(_ work: @escaping @Sendable () throws -> T) -> HashJob<T> {
        HashJob(pool: self.hashPool, work: work)
    }
}

/// A job for the Argon2 pool, started by `on(_:)`.
struct HashJob<T: Sendable> {
    let pool: BlockingPool
    let work: @Sendable () throws -> T

    func on(_ eventLoop: any EventLoop) -> EventLoopFuture<T> {
        self.pool.run(on: eventLoop, self.work).flatMapErrorThrowing { error in
            if error is BlockingPool.Saturated { throw HTTPError.busy }
            throw error
        }
    }
}
