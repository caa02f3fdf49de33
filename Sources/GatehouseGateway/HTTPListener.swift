// SPDX-License-Identifier: Apache-2.0
public import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket

/// Binds HTTP/1.1 listeners whose connections end in handlers made per connection.
public enum HTTPListener {
    /// Binds `host:port` (port 0 picks a free one; read it from the returned channel's
    /// `localAddress`) with NIO's whole server pipeline (decoder, encoder, pipelining, error
    /// handling): for the admin listener, `gatehouse echo` and tests. `makeHandler` runs on each
    /// connection's event loop.
    ///
    /// With `webSocketEcho`, a valid WebSocket handshake gets its `101` and the connection becomes
    /// a ``WebSocketEcho`` (an invalid one gets `400` or `426`); other requests still go to the
    /// handler `makeHandler` made, which must then be a `RemovableChannelHandler`.
    public static func bind(
        host: String, port: Int, group: any EventLoopGroup, webSocketEcho: Bool = false,
        makeHandler: @escaping @Sendable (any Channel) -> any ChannelHandler
    ) async throws -> any Channel {
        try await self.bootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    guard webSocketEcho else {
                        try pipeline.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
                        try pipeline.addHandler(makeHandler(channel))
                        return
                    }
                    let upgrader = NIOWebSocketServerUpgrader(
                        maxFrameSize: WebSocketEcho.maxMessageBytes,
                        automaticErrorHandling: false,
                        shouldUpgrade: { channel, head in
                            channel.eventLoop.makeSucceededFuture(WebSocketEcho.acceptsHandshake(head) ? HTTPHeaders() : nil)
                        },
                        upgradePipelineHandler: { channel, _ in
                            channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(WebSocketEcho()) }
                        }
                    )
                    try pipeline.configureHTTPServerPipeline(
                        withPipeliningAssistance: true,
                        withServerUpgrade: (
                            upgraders: [upgrader],
                            completionHandler: { context in
                                context.pipeline.removeHandler(name: "websocket-refusal", promise: nil)
                                context.pipeline.removeHandler(name: "http-handler", promise: nil)
                            }
                        ),
                        withErrorHandling: true
                    )
                    try pipeline.addHandler(WebSocketHandshakeRefusal(), name: "websocket-refusal")
                    try pipeline.addHandler(makeHandler(channel), name: "http-handler")
                }
            }
            .bind(host: host, port: port)
            .get()
    }

    /// Binds the gateway's listener: each connection's bytes go to one handler made by
    /// `makeHandler` (`GatewayConnection`, which parses, times and answers them itself), after TLS
    /// when `tls` is set. Connections over `limits.maxConnections` are closed at once.
    static func bindGateway(
        host: String, port: Int, group: any EventLoopGroup, limits: ConnectionLimits, tls: NIOSSLContext?,
        makeHandler: @escaping @Sendable (any Channel) -> GatewayConnection
    ) async throws -> any Channel {
        let counter = ConnectionCounter(maximum: limits.maxConnections)
        return try await self.bootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard counter.admit(channel) else {
                        channel.close(promise: nil)
                        return
                    }
                    let pipeline = channel.pipeline.syncOperations
                    if let tls { try pipeline.addHandler(NIOSSLServerHandler(context: tls)) }
                    try pipeline.addHandler(makeHandler(channel))
                }
            }
            .bind(host: host, port: port)
            .get()
    }

    private static func bootstrap(group: any EventLoopGroup) -> ServerBootstrap {
        ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    }
}
