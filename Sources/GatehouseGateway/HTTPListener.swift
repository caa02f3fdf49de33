// SPDX-License-Identifier: Apache-2.0
public import NIOCore
import NIOHTTP1
import NIOPosix
public import NIOSSL

/// Binds an HTTP/1.1 listener whose connections end in handlers made per connection.
public enum HTTPListener {
    /// Binds `host:port` (port 0 picks a free one; read it from the returned channel's
    /// `localAddress`). `makeHandler` runs on each connection's event loop. With `limits`, the
    /// decoder's head limits, the head and idle timeouts and the connection cap apply, and the
    /// decoder's refusals are answered as JSON 431/400. With `tls`, connections speak TLS first; a
    /// handshake that stalls is closed by the idle timeout, which runs from the moment of accept.
    public static func bind(
        host: String, port: Int, group: any EventLoopGroup, limits: ConnectionLimits? = nil, tls: NIOSSLContext? = nil,
        makeHandler: @escaping @Sendable (any Channel) -> any ChannelHandler
    ) async throws -> any Channel {
        let counter = limits.map { ConnectionCounter(maximum: $0.maxConnections) }
        return try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    if let tls { try pipeline.addHandler(NIOSSLServerHandler(context: tls)) }
                    guard let limits else {
                        try pipeline.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
                        try pipeline.addHandler(makeHandler(channel))
                        return
                    }
                    guard counter?.admit(channel) != false else {
                        channel.close(promise: nil)
                        return
                    }
                    try pipeline.addHandler(HeadTimeoutHandler(headerTimeout: limits.headerTimeout, idleTimeout: limits.idleTimeout))
                    try pipeline.configureHTTPServerPipeline(
                        withPipeliningAssistance: true, withErrorHandling: false, withOutboundHeaderValidation: true,
                        withEncoderConfiguration: .init(), withDecoderLimitConfiguration: limits.decoderLimits
                    )
                    // Before the pipelining handler, as NIO places its own error handler.
                    let pipelining = try pipeline.handler(type: HTTPServerPipelineHandler.self)
                    try pipeline.addHandler(ProtocolErrorResponder(), position: .before(pipelining))
                    try pipeline.addHandler(makeHandler(channel))
                }
            }
            .bind(host: host, port: port)
            .get()
    }
}
