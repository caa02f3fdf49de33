// SPDX-License-Identifier: Apache-2.0
public import GatehouseConfig
public import GatehouseHTTP
public import GatehouseJOSE
public import NIOCore
import NIOConcurrencyHelpers
import NIOHTTP1
import NIOPosix
import NIOSSL

/// The gateway's listener: routes, verifiers and one upstream pool per event loop.
public final class GatewayServer: Sendable {
    /// The listening channel.
    public let channel: any Channel
    private let loops: [ObjectIdentifier: NIOLoopBound<LoopState>]

    /// Binds `config.listen` (or `host`/`port` when given, for tests) and starts serving with
    /// fixed verifiers (no `jwks_url` provider).
    public static func start(
        config: GatewayConfig, verifiers: [Verifier], group: any EventLoopGroup, host: String? = nil, port: Int? = nil,
        accessLog: AccessLogSink? = nil, local: (any LocalEndpoints)? = nil, revocations: RevocationBoard? = nil
    ) async throws -> GatewayServer {
        try await self.start(
            config: config, staticVerifiers: verifiers, jwks: [], group: group, host: host, port: port, accessLog: accessLog, local: local,
            revocations: revocations
        )
    }

    /// Builds every provider of `config` — key files read now, `jwks_url` keys fetched before the
    /// listener answers (up to `verify.jwks_startup_timeout`; after that it serves anyway,
    /// `/readyz` says 503 until keys arrive, and fetching goes on) — then binds and serves, with
    /// `local` (the issuer's endpoints) on the same listener, refusing the sessions `revocations` holds.
    public static func start(
        config: GatewayConfig, group: any EventLoopGroup, host: String? = nil, port: Int? = nil, accessLog: AccessLogSink? = nil,
        local: (any LocalEndpoints)? = nil, revocations: RevocationBoard? = nil
    ) async throws -> GatewayServer {
        var staticVerifiers: [Verifier] = []
        var jwks: [(ProviderConfig, UpstreamURL)] = []
        for provider in config.verify.providers {
            if case .jwksURL(let text, _) = provider.keys, let url = UpstreamURL(text) {
                jwks.append((provider, url))
            } else {
                staticVerifiers.append(try provider.makeVerifier(issuerConfig: config.issuer, maxTokenBytes: config.verify.maxTokenBytes))
            }
        }
        return try await self.start(
            config: config, staticVerifiers: staticVerifiers, jwks: jwks, group: group, host: host, port: port, accessLog: accessLog,
            local: local, revocations: revocations
        )
    }

    private static func start(
        config: GatewayConfig, staticVerifiers: [Verifier], jwks: [(ProviderConfig, UpstreamURL)], group: any EventLoopGroup,
        host: String?, port: Int?, accessLog: AccessLogSink?, local: (any LocalEndpoints)?, revocations: RevocationBoard?
    ) async throws -> GatewayServer {
        let routes = RouteTable(config.routes)
        let listenerTLS = try config.tls.map(TLSContexts.server)
        let upstreamTLS = try Dictionary(
            uniqueKeysWithValues: config.routes.filter { $0.upstream.scheme == "https" }.map { route in
                (route.prefix, try TLSContexts.client(caFile: route.upstreamTLS?.caFile, certificate: route.upstreamTLS?.clientCertificate))
            }
        )
        let cookie = config.verify.cookie
        let csrf = CSRFCheck(allowedOrigins: config.verify.allowedOrigins + (config.issuer?.allowedOrigins ?? []))
        // The configuration checked every entry.
        let trustedProxies = (try? TrustedProxies(config.trustedProxies)) ?? .none
        let loopList = Array(group.makeIterator())
        // The configured cache size is for the whole gateway; each loop keeps its share.
        let cacheSize = config.verify.tokenCacheSize == 0 ? 0 : max(1, config.verify.tokenCacheSize / loopList.count)
        let initial = RequestAuthorizer(routes: routes, providers: ProviderSet(staticVerifiers), cookie: cookie, local: local, csrf: csrf)
        var loops: [ObjectIdentifier: NIOLoopBound<LoopState>] = [:]
        for loop in loopList {
            let state = try await loop.submit {
                NIOLoopBound(
                    LoopState(
                        authorizer: initial, pool: UpstreamPool(eventLoop: loop),
                        cache: cacheSize > 0 ? TokenCache(capacity: cacheSize) : nil,
                        metrics: LoopMetrics(), accessLog: accessLog.map { LoopAccessLog(sink: $0, eventLoop: loop) },
                        revoked: revocations?.makeList(on: loop).value, upstreamTLS: upstreamTLS, trustedProxies: trustedProxies
                    ),
                    eventLoop: loop
                )
            }.get()
            loops[ObjectIdentifier(loop)] = state
        }
        let statesByLoop = loops

        // Fetched keys reach every loop as a new authorizer; cached verdicts are dropped, since a
        // key may have been removed. Each loop takes the registry's newest set when its task runs,
        // so two refreshes whose tasks arrive out of order cannot leave it with the older one.
        let registry = ProviderRegistry(staticVerifiers: staticVerifiers)
        let refreshers = try jwks.map { provider, url in
            try JWKSRefresher(provider: provider, url: url, loop: group.next(), maxTokenBytes: config.verify.maxTokenBytes) { verifier in
                registry.update(verifier)
                for state in statesByLoop.values {
                    state.eventLoop.execute {
                        state.value.authorizer = RequestAuthorizer(routes: routes, providers: registry.current, cookie: cookie, local: local, csrf: csrf)
                        state.value.cache?.removeAll()
                    }
                }
            }
        }
        if !refreshers.isEmpty {
            let onUnknownKeyID: @Sendable () -> Void = { refreshers.forEach { $0.unknownKeyID() } }
            for state in loops.values { try await state.eventLoop.submit { state.value.onUnknownKeyID = onUnknownKeyID }.get() }
            let first = EventLoopFuture.andAllComplete(refreshers.map { $0.start() }, on: group.next())
            let waited = group.next().makePromise(of: Void.self)
            first.cascade(to: waited)
            group.next().scheduleTask(in: .nanoseconds(Int64(config.verify.jwksStartupTimeout.seconds * 1e9))) { waited.succeed() }
            try await waited.futureResult.get()
        }

        // One sweep per loop enforces every connection's timeouts (no timer per request), and
        // every 10 s drops revoked sessions whose tokens have all expired.
        let sweeps = loops.values.map { state in
            state.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(100), delay: .milliseconds(100)) { _ in
                let now = NIODeadline.now()
                for handler in state.value.connections.values { handler.sweep(now: now) }
                state.value.sweeps += 1
                if state.value.sweeps % 100 == 0 { state.value.revoked?.prune(now: currentTime()) }
            }
        }
        let limits = ConnectionLimits(
            headerTimeout: .nanoseconds(Int64(config.headerTimeout.seconds * 1e9)),
            idleTimeout: .nanoseconds(Int64(config.idleTimeout.seconds * 1e9)),
            maxConnections: config.maxConnections
        )
        let channel = try await HTTPListener.bindGateway(
            host: host ?? config.listen.host, port: port ?? config.listen.port, group: group, limits: limits, tls: listenerTLS
        ) { channel in
            GatewayConnection(
                state: statesByLoop[ObjectIdentifier(channel.eventLoop)]!.value, scheme: listenerTLS == nil ? "http" : "https",
                timeouts: limits.timeouts, limits: limits.parserLimits
            )
        }
        return GatewayServer(channel: channel, loops: loops, sweeps: sweeps, refreshers: refreshers, local: local, revocations: revocations)
    }

    private let sweeps: [RepeatedTask]
    private let refreshers: [JWKSRefresher]
    private let local: (any LocalEndpoints)?
    private let revocations: RevocationBoard?

    private init(
        channel: any Channel, loops: [ObjectIdentifier: NIOLoopBound<LoopState>], sweeps: [RepeatedTask], refreshers: [JWKSRefresher],
        local: (any LocalEndpoints)?, revocations: RevocationBoard?
    ) {
        self.channel = channel
        self.loops = loops
        self.sweeps = sweeps
        self.refreshers = refreshers
        self.local = local
        self.revocations = revocations
    }

    /// Every `jwks_url` provider has keys and every revocation feed has loaded once (the local
    /// endpoints' database is checked by `readiness`).
    public var isReady: Bool { self.refreshers.allSatisfy(\.isReady) && (self.revocations?.isReady ?? true) }

    /// Ready to serve: keys loaded, and the local endpoints (the issuer's database) answering.
    public func readiness(on eventLoop: any EventLoop) -> EventLoopFuture<Bool> {
        guard self.isReady else { return eventLoop.makeSucceededFuture(false) }
        return self.local?.checkReady(on: eventLoop) ?? eventLoop.makeSucceededFuture(true)
    }

    /// The port actually bound.
    public var port: Int { self.channel.localAddress?.port ?? 0 }

    /// Graceful stop (SIGTERM): stop accepting at once, let exchanges in flight finish within
    /// `grace` while idle keep-alive connections close, then close whatever is left. Returns as
    /// soon as the last connection has closed (no polling: each loop reports its last close), or
    /// once `grace` has passed. The `jwks_url` refreshers keep running: `stopRefreshing` ends them.
    public func drain(grace: Duration) async throws {
        try await self.beginDrain().get()
        try await self.connectionsClosed(within: grace)
        self.sweeps.forEach { $0.cancel() }
        for state in self.loops.values {
            try await state.eventLoop.submit {
                for connection in state.value.connections.values { connection.close() }
                state.value.pool.closeAll()
                state.value.accessLog?.stop()
            }.get()
        }
    }

    /// The first step of `drain`, callable from anywhere without a task: stops accepting and tells
    /// every loop at once to close idle connections and end the others after their response.
    public func beginDrain() -> EventLoopFuture<Void> {
        self.channel.close(promise: nil)
        let started = self.loops.values.map { state in state.eventLoop.submit { state.value.drain() } }
        return EventLoopFuture.andAllSucceed(started, on: self.channel.eventLoop)
    }

    /// Completes once no loop has a client connection left (at once if none has): for after
    /// `beginDrain`, when no new connection is accepted.
    public func allConnectionsClosed() -> EventLoopFuture<Void> {
        let loops = self.loops.values.map { state in state.eventLoop.flatSubmit { state.value.whenNoConnections() } }
        return EventLoopFuture.andAllSucceed(loops, on: self.channel.eventLoop)
    }

    /// Waits until the last client connection has closed, or `grace` has passed.
    private func connectionsClosed(within grace: Duration) async throws {
        let loop = self.channel.eventLoop
        let finished = loop.makePromise(of: Void.self)
        // Whichever comes first completes `finished`; completing it again changes nothing.
        let deadline = loop.scheduleTask(in: .nanoseconds(Int64(grace.seconds * 1e9))) { finished.succeed() }
        self.allConnectionsClosed().whenComplete { _ in
            deadline.cancel()
            finished.succeed()
        }
        try await finished.futureResult.get()
    }

    /// Stops the `jwks_url` refreshers (the last keys they fetched keep serving).
    public func stopRefreshing() {
        self.refreshers.forEach { $0.stop() }
    }

    /// Client connections open now, over all loops.
    public func openConnections() async throws -> Int {
        var count = 0
        for state in self.loops.values { count += try await state.eventLoop.submit { state.value.connections.count }.get() }
        return count
    }

    /// Stops accepting and closes pooled upstream connections.
    public func stop() async throws {
        try await self.channel.close()
        self.sweeps.forEach { $0.cancel() }
        self.stopRefreshing()
        for state in self.loops.values {
            try await state.eventLoop.submit {
                state.value.pool.closeAll()
                state.value.accessLog?.stop()
            }.get()
        }
    }

    /// Verified-token cache hits and misses, summed over the event loops.
    public func tokenCacheCounts() async throws -> (hits: Int, misses: Int) {
        var hits = 0
        var misses = 0
        for state in self.loops.values {
            let counts = try await state.eventLoop.submit { (state.value.cache?.hits ?? 0, state.value.cache?.misses ?? 0) }.get()
            hits += counts.0
            misses += counts.1
        }
        return (hits, misses)
    }
}

/// What one event loop owns: its upstream connections, its verified tokens, its counters, and
/// its client connections (for draining).
final class LoopState {
    /// Routes and providers; replaced when fetched keys change.
    var authorizer: RequestAuthorizer
    /// Asks the `jwks_url` refreshers to refetch (a token named an unknown `kid`).
    var onUnknownKeyID: (@Sendable () -> Void)?
    let pool: UpstreamPool
    let cache: TokenCache?
    let metrics: LoopMetrics
    let accessLog: LoopAccessLog?
    /// This loop's copy of the revoked sessions (nil: no revocation board).
    let revoked: RevocationList?
    /// The TLS context of each route with an https upstream, by prefix (shared by every loop).
    let upstreamTLS: [String: NIOSSLContext]
    let trustedProxies: TrustedProxies
    /// Open client connections of this loop (each adds itself when it opens and removes itself
    /// when it closes). The last one to go while a drain waits completes `drained`.
    var connections: [ObjectIdentifier: GatewayConnection] = [:] {
        didSet { if self.connections.isEmpty { self.completeDrained() } }
    }
    /// Set once the server drains: connections close as soon as their exchange ends.
    private(set) var draining = false
    /// Completed when the last connection has closed, while `whenNoConnections` waits for it.
    private var drained: EventLoopPromise<Void>?
    /// Sweeps run so far (every 100th also prunes the revoked sessions).
    var sweeps = 0

    init(
        authorizer: RequestAuthorizer, pool: UpstreamPool, cache: TokenCache?, metrics: LoopMetrics, accessLog: LoopAccessLog?,
        revoked: RevocationList?, upstreamTLS: [String: NIOSSLContext], trustedProxies: TrustedProxies
    ) {
        self.upstreamTLS = upstreamTLS
        self.trustedProxies = trustedProxies
        self.authorizer = authorizer
        self.pool = pool
        self.cache = cache
        self.metrics = metrics
        self.accessLog = accessLog
        self.revoked = revoked
    }

    /// The server drains: idle connections close now, the others once their exchange ends, and
    /// every connection opened from now on (`GatewayConnection.handlerAdded` reads `draining`).
    ///
    /// This is the one place where each live connection is told to drain
    /// (`GatewayConnection.drain`); a WebSocket tunnel will be told here too, and close with 1001
    /// (going away).
    func drain() {
        self.draining = true
        for connection in self.connections.values { connection.drain() }
    }

    /// The loop this state belongs to (its upstream pool's).
    private var eventLoop: any EventLoop { self.pool.eventLoop }

    /// Completes when this loop has no client connection, at once if it has none now. Called on
    /// this state's loop.
    func whenNoConnections() -> EventLoopFuture<Void> {
        if self.connections.isEmpty { return self.eventLoop.makeSucceededFuture(()) }
        let drained = self.drained ?? self.eventLoop.makePromise(of: Void.self)
        self.drained = drained
        return drained.futureResult
    }

    private func completeDrained() {
        guard let drained = self.drained else { return }
        self.drained = nil
        drained.succeed()
    }
}

extension GatewayServer {
    /// Every loop's counters, summed on the loops themselves, as Prometheus text.
    public func metricsText(on eventLoop: any EventLoop) -> EventLoopFuture<String> {
        let snapshots = self.loops.values.map { state in
            state.eventLoop.submit {
                var snapshot = state.value.metrics.snapshot
                snapshot.cacheHits = state.value.cache?.hits ?? 0
                snapshot.cacheMisses = state.value.cache?.misses ?? 0
                return snapshot
            }
        }
        let refreshes = self.refreshers.map { refresher in refresher.loop.submit { (refresher.refreshes, refresher.refusedSymmetricKeys) } }
        return EventLoopFuture.whenAllSucceed(snapshots, on: eventLoop).and(EventLoopFuture.whenAllSucceed(refreshes, on: eventLoop)).map { all, jwks in
            var total = MetricsSnapshot()
            for snapshot in all { total.add(snapshot) }
            total.jwksRefreshes = jwks.reduce((0, 0)) { ($0.0 + $1.0.ok, $0.1 + $1.0.error) }
            total.jwksRefusedSymmetricKeys = jwks.reduce(0) { $0 + $1.1 }
            if let local = self.local {
                let counts = local.tokenCacheCounts
                total.cacheHits += counts.hits
                total.cacheMisses += counts.misses
            }
            return total.prometheusText + (self.local?.metricsText ?? "") + (self.revocations.map(Self.revocationMetrics) ?? "")
        }
    }

    private static func revocationMetrics(_ board: RevocationBoard) -> String {
        """
        # HELP gatehouse_revoked_sessions Ended sessions whose access tokens are refused until they expire.
        # TYPE gatehouse_revoked_sessions gauge
        gatehouse_revoked_sessions \(board.count)
        # HELP gatehouse_revocation_feed_errors_total Revocation feed polls that failed: unreachable, or a page malformed, too large or out of range.
        # TYPE gatehouse_revocation_feed_errors_total counter
        gatehouse_revocation_feed_errors_total \(board.feedErrors)

        """
    }

    /// Binds the admin listener (`/healthz`, `/readyz`, `/metrics`).
    public func startAdmin(host: String, port: Int, group: any EventLoopGroup) async throws -> any Channel {
        try await HTTPListener.bind(host: host, port: port, group: group) { channel in
            AdminHandler(isReady: { self.readiness(on: $0) }, metrics: { self.metricsText(on: channel.eventLoop) })
        }
    }
}

/// The verifiers of every provider: fixed ones, and the latest of each `jwks_url` provider.
final class ProviderRegistry: Sendable {
    private let staticVerifiers: [Verifier]
    private let fetched = NIOLockedValueBox<[String: Verifier]>([:])

    init(staticVerifiers: [Verifier]) { self.staticVerifiers = staticVerifiers }

    /// Records `verifier` as its issuer's current one.
    func update(_ verifier: Verifier) {
        self.fetched.withLockedValue { $0[verifier.policy.issuer ?? ""] = verifier }
    }

    /// Every provider's newest verifier.
    var current: ProviderSet {
        ProviderSet(self.staticVerifiers + self.fetched.withLockedValue { Array($0.values) })
    }
}
