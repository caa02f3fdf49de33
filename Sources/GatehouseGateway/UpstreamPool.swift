// SPDX-License-Identifier: Apache-2.0
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// One HTTP/1.1 connection to an upstream, and the handler that hands its response parts to
/// whichever client exchange currently owns it.
///
/// `@unchecked Sendable` only so that futures of its own event loop can carry it: it is made,
/// used and pooled on that loop and never crosses to another.
final class UpstreamConnection: @unchecked Sendable {
    let channel: any Channel
    let key: String
    let handler: UpstreamResponseHandler
    /// The decoder's context: writing through it puts bytes on the socket (and TLS) directly, the
    /// request having been serialised by the gateway (`HTTPWire`).
    let writer: ChannelHandlerContext
    /// Whether reads are paused because the client cannot take more of the response.
    private var readsPaused = false

    /// Pauses or resumes reading the response; a change of state only (each costs an epoll_ctl).
    func setReads(_ on: Bool) {
        guard self.readsPaused == on else { return }
        self.readsPaused = !on
        self.channel.setOption(ChannelOptions.autoRead, value: on).whenFailure { _ in }
    }

    /// Writes a serialised request head, after telling the response decoder its method (a
    /// response to HEAD has no body).
    func writeHead(_ head: ByteBuffer, method: HTTPMethod) {
        self.handler.decoder.write(data: method == .HEAD ? Self.headRequest : method == .CONNECT ? Self.connectRequest : Self.otherRequest)
        self.writer.write(NIOAny(head), promise: nil)
    }

    /// What the decoder is told: only HEAD and CONNECT change how it reads a response.
    private static let headRequest = HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .HEAD, uri: "/"))
    private static let connectRequest = HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .CONNECT, uri: "/"))
    private static let otherRequest = HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/"))

    init(channel: any Channel, key: String, handler: UpstreamResponseHandler, writer: ChannelHandlerContext) {
        self.channel = channel
        self.key = key
        self.handler = handler
        self.writer = writer
    }
}

/// What an exchange hears from its upstream connection.
protocol UpstreamDelegate: AnyObject {
    func upstreamRead(_ part: HTTPClientResponsePart)
    func upstreamReadComplete()
    func upstreamWritabilityChanged(isWritable: Bool)
    func upstreamClosed()
}

/// The last handler of an upstream pipeline. Confined to its channel's event loop.
final class UpstreamResponseHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    /// The exchange using the connection; nil while it idles in the pool.
    weak var delegate: (any UpstreamDelegate)?
    /// Called when the connection closes, so the pool forgets it.
    var onClose: (() -> Void)?
    /// The pipeline's response decoder (`UpstreamConnection.writeHead` tells it each method).
    let decoder: HTTPResponseDecoder

    init(decoder: HTTPResponseDecoder) {
        self.decoder = decoder
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = self.unwrapInboundIn(data)
        guard let delegate else {
            // Bytes on an idle connection: the upstream is confused. Drop the connection.
            context.close(promise: nil)
            return
        }
        delegate.upstreamRead(part)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.delegate?.upstreamReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.delegate?.upstreamWritabilityChanged(isWritable: context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.onClose?()
        self.onClose = nil
        self.delegate?.upstreamClosed()
        self.delegate = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Keep-alive connections to upstreams, one pool per event loop so that a request never leaves
/// its loop and nothing is locked. Confined to `eventLoop`.
final class UpstreamPool {
    let eventLoop: any EventLoop
    /// Idle connections by `host:port`, most recently used last.
    private var idle: [String: [UpstreamConnection]] = [:]
    /// At most this many idle connections per upstream on one loop.
    private let maximumIdle: Int

    init(eventLoop: any EventLoop, maximumIdle: Int = 64) {
        self.eventLoop = eventLoop
        self.maximumIdle = maximumIdle
    }

    /// An idle connection to `host:port` (over TLS with `tls`), or a new one.
    func acquire(host: String, port: Int, tls: NIOSSLContext?, connectTimeout: TimeAmount) -> EventLoopFuture<UpstreamConnection> {
        // Connections made with different TLS settings are not interchangeable.
        let key = tls.map { "\(ObjectIdentifier($0).hashValue)@\(host):\(port)" } ?? "\(host):\(port)"
        while let connection = self.idle[key]?.popLast() {
            if connection.channel.isActive {
                connection.handler.onClose = nil
                return self.eventLoop.makeSucceededFuture(connection)
            }
        }
        return ClientBootstrap(group: self.eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: TLSContexts.serverName(host)))
                    }
                    // No request encoder: the gateway writes requests as bytes (`HTTPWire`).
                    let decoder = HTTPResponseDecoder()
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(decoder))
                    try channel.pipeline.syncOperations.addHandler(UpstreamResponseHandler(decoder: decoder))
                }
            }
            .connect(host: host, port: port)
            .flatMapThrowing { channel in
                let pipeline = channel.pipeline.syncOperations
                let handler = try pipeline.handler(type: UpstreamResponseHandler.self)
                let decoding = try pipeline.context(handlerType: ByteToMessageHandler<HTTPResponseDecoder>.self)
                return UpstreamConnection(channel: channel, key: key, handler: handler, writer: decoding)
            }
    }

    /// Takes a connection back after a complete exchange, or closes it if the pool is full.
    func release(_ connection: UpstreamConnection) {
        connection.handler.delegate = nil
        guard connection.channel.isActive, (self.idle[connection.key]?.count ?? 0) < self.maximumIdle else {
            connection.channel.close(promise: nil)
            return
        }
        connection.handler.onClose = { [weak self, weak connection] in
            guard let self, let connection else { return }
            self.idle[connection.key]?.removeAll { $0 === connection }
        }
        // Reads stay on while idle, so that a close by the upstream is noticed at once.
        connection.setReads(true)
        self.idle[connection.key, default: []].append(connection)
    }

    /// Closes every idle connection (at shutdown).
    func closeAll() {
        for connections in self.idle.values { for connection in connections { connection.channel.close(promise: nil) } }
        self.idle.removeAll()
    }
}
