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
    private let pools: [ObjectIdentifier: NIOLoopBound<UpstreamPool>]

    /// Binds `config.listen` (or `host`/`port` when given, for tests) and starts serving.
    public static func start(
        config: GatewayConfig, verifiers: [Verifier], group: any EventLoopGroup, host: String? = nil, port: Int? = nil
    ) async throws -> GatewayServer {
        let authorizer = RequestAuthorizer(routes: RouteTable(config.routes), providers: ProviderSet(verifiers), cookie: config.verify.cookie)
        var pools: [ObjectIdentifier: NIOLoopBound<UpstreamPool>] = [:]
        for loop in group.makeIterator() {
            let bound = try await loop.submit { NIOLoopBound(UpstreamPool(eventLoop: loop), eventLoop: loop) }.get()
            pools[ObjectIdentifier(loop)] = bound
        }
        let poolsByLoop = pools
        let channel = try await HTTPListener.bind(
            host: host ?? config.listen.host, port: port ?? config.listen.port, group: group
        ) { channel in
            GatewayHandler(authorizer: authorizer, pool: poolsByLoop[ObjectIdentifier(channel.eventLoop)]!.value, scheme: "http")
        }
        return GatewayServer(channel: channel, pools: pools)
    }

    private init(channel: any Channel, pools: [ObjectIdentifier: NIOLoopBound<UpstreamPool>]) {
        self.channel = channel
        self.pools = pools
    }

    /// The port actually bound.
    public var port: Int { self.channel.localAddress?.port ?? 0 }

    /// Stops accepting and closes pooled upstream connections.
    public func stop() async throws {
        try await self.channel.close()
        for pool in self.pools.values {
            try await pool.eventLoop.submit { pool.value.closeAll() }.get()
        }
    }
}
