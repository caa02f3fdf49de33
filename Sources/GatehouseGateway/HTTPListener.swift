// SPDX-License-Identifier: Apache-2.0
public import NIOCore
import NIOHTTP1
import NIOPosix

/// Binds an HTTP/1.1 listener whose connections end in handlers made per connection.
public enum HTTPListener {
    /// Binds `host:port` (port 0 picks a free one; read it from the returned channel's
    /// `localAddress`). `makeHandler` runs on each connection's event loop.
    public static func bind(
        host: String, port: Int, group: any EventLoopGroup,
        makeHandler: @escaping @Sendable (any Channel) -> any ChannelHandler
    ) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withPipeliningAssistance: true, withErrorHandling: true
                    )
                    try channel.pipeline.syncOperations.addHandler(makeHandler(channel))
                }
            }
            .bind(host: host, port: port)
            .get()
    }
}
