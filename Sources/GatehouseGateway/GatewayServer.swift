// SPDX-License-Identifier: Apache-2.0
public import GatehouseConfig
public import GatehouseJOSE
public import NIOCore
import NIOHTTP1
import NIOPosix

/// The gateway's listener: routes, verifiers and one upstream pool per event loop.
public final class GatewayServer: Sendable {
    /// The listening channel.
    public let channel: any Channel
    private let loops: [ObjectIdentifier: NIOLoopBound<LoopState>]

    /// Binds `config.listen` (or `host`/`port` when given, for tests) and starts serving.
    public static func start(
        config: GatewayConfig, verifiers: [Verifier], group: any EventLoopGroup, host: String? = nil, port: Int? = nil,
        accessLog: AccessLogSink? = nil
    ) async throws -> GatewayServer {
        let authorizer = RequestAuthorizer(routes: RouteTable(config.routes), providers: ProviderSet(verifiers), cookie: config.verify.cookie)
        let loopList = Array(group.makeIterator())
        // The configured cache size is for the whole gateway; each loop keeps its share.
        let cacheSize = config.verify.tokenCacheSize == 0 ? 0 : max(1, config.verify.tokenCacheSize / loopList.count)
        var loops: [ObjectIdentifier: NIOLoopBound<LoopState>] = [:]
        for loop in loopList {
            let state = try await loop.submit {
                NIOLoopBound(
                    LoopState(
                        pool: UpstreamPool(eventLoop: loop), cache: cacheSize > 0 ? TokenCache(capacity: cacheSize) : nil,
                        metrics: LoopMetrics(), accessLog: accessLog.map { LoopAccessLog(sink: $0, eventLoop: loop) }
                    ),
                    eventLoop: loop
                )
            }.get()
            loops[ObjectIdentifier(loop)] = state
        }
        // One sweep per loop enforces every connection's timeouts (no timer per request).
        let sweeps = loops.values.map { state in
            state.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(100), delay: .milliseconds(100)) { _ in
                let now = NIODeadline.now()
                for handler in state.value.connections.values { handler.sweep(now: now) }
            }
        }
        let statesByLoop = loops
        let limits = ConnectionLimits(
            headerTimeout: .nanoseconds(Int64(config.headerTimeout.seconds * 1e9)),
            idleTimeout: .nanoseconds(Int64(config.idleTimeout.seconds * 1e9)),
            maxConnections: config.maxConnections
        )
        let channel = try await HTTPListener.bind(
            host: host ?? config.listen.host, port: port ?? config.listen.port, group: group, limits: limits
        ) { channel in
            let state = statesByLoop[ObjectIdentifier(channel.eventLoop)]!.value
            return GatewayHandler(authorizer: authorizer, state: state, scheme: "http")
        }
        return GatewayServer(channel: channel, loops: loops, sweeps: sweeps)
    }

    private let sweeps: [RepeatedTask]

    private init(channel: any Channel, loops: [ObjectIdentifier: NIOLoopBound<LoopState>], sweeps: [RepeatedTask]) {
        self.channel = channel
        self.loops = loops
        self.sweeps = sweeps
    }

    /// The port actually bound.
    public var port: Int { self.channel.localAddress?.port ?? 0 }

    /// Graceful stop (SIGTERM): stop accepting at once, let exchanges in flight finish within
    /// `grace` while idle keep-alive connections close, then close whatever is left.
    public func drain(grace: Duration) async throws {
        try await self.beginDrain().get()
        let deadline = ContinuousClock.now + grace
        while ContinuousClock.now < deadline, try await self.openConnections() > 0 {
            try await Task.sleep(for: .milliseconds(20))
        }
        self.sweeps.forEach { $0.cancel() }
        for state in self.loops.values {
            try await state.eventLoop.submit {
                for handler in state.value.connections.values { handler.close() }
                state.value.pool.closeAll()
                state.value.accessLog?.stop()
            }.get()
        }
    }

    /// The first step of `drain`, callable from anywhere without a task: stops accepting and tells
    /// every loop at once to close idle connections and end the others after their response.
    public func beginDrain() -> EventLoopFuture<Void> {
        self.channel.close(promise: nil)
        let started = self.loops.values.map { state in
            state.eventLoop.submit {
                state.value.draining = true
                for handler in state.value.connections.values { handler.drain() }
            }
        }
        return EventLoopFuture.andAllSucceed(started, on: self.channel.eventLoop)
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
    let pool: UpstreamPool
    let cache: TokenCache?
    let metrics: LoopMetrics
    let accessLog: LoopAccessLog?
    /// Open client connections of this loop.
    var connections: [ObjectIdentifier: GatewayHandler] = [:]
    /// Set once the server drains: connections close as soon as their exchange ends.
    var draining = false

    init(pool: UpstreamPool, cache: TokenCache?, metrics: LoopMetrics, accessLog: LoopAccessLog?) {
        self.pool = pool
        self.cache = cache
        self.metrics = metrics
        self.accessLog = accessLog
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
        return EventLoopFuture.whenAllSucceed(snapshots, on: eventLoop).map { all in
            var total = MetricsSnapshot()
            for snapshot in all { total.add(snapshot) }
            return total.prometheusText
        }
    }

    /// Binds the admin listener (`/healthz`, `/readyz`, `/metrics`).
    public func startAdmin(host: String, port: Int, group: any EventLoopGroup, isReady: @escaping @Sendable () -> Bool = { true }) async throws -> any Channel {
        try await HTTPListener.bind(host: host, port: port, group: group) { channel in
            AdminHandler(isReady: isReady, metrics: { self.metricsText(on: channel.eventLoop) })
        }
    }
}
