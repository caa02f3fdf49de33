// SPDX-License-Identifier: Apache-2.0
import NIOCore
import GatehouseHTTP1
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A connection to an upstream: its channel, and the handler that reads its responses.
final class UpstreamConnection: @unchecked Sendable {
    let channel: any Channel
    /// The pool key: host, port and TLS settings.
    let key: UpstreamPool.Key
    let handler: UpstreamResponseHandler
    /// The handler's context: request bytes are written from it.
    let writer: ChannelHandlerContext
    private var readsPaused = false

    /// Pauses or resumes reading the response (the client is not writable); a change only, since
    /// each costs an epoll_ctl.
    func setReads(_ on: Bool) {
        guard self.readsPaused == on else { return }
        self.readsPaused = !on
        self.channel.setOption(ChannelOptions.autoRead, value: on).whenFailure { _ in }
    }

    /// Writes a request head (serialised by the gateway); a response to HEAD has no body.
    func writeHead(_ head: ByteBuffer, method: HTTPMethod) {
        self.handler.expectResponse(toHEAD: method == .HEAD)
        self.writer.write(NIOAny(head), promise: nil)
    }

    init(channel: any Channel, key: UpstreamPool.Key, handler: UpstreamResponseHandler, writer: ChannelHandlerContext) {
        self.channel = channel
        self.key = key
        self.handler = handler
        self.writer = writer
    }
}

/// What an upstream connection reports to the exchange using it.
protocol UpstreamDelegate: AnyObject {
    func upstreamRead(_ event: HTTP1ResponseEvent)
    func upstreamReadComplete()
    func upstreamWritabilityChanged(isWritable: Bool)
    /// After a WebSocket 101 (`startTunnel()`): the upstream's bytes as they come, unparsed.
    func upstreamTunnelRead(_ bytes: ByteBuffer)
    /// The connection closed, or its bytes were not a valid response, before the response ended.
    func upstreamClosed()
}

/// The only handler of an upstream connection: parses its responses (`HTTP1ResponseParser`) and
/// hands them to the delegate, the exchange the connection serves.
final class UpstreamResponseHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    weak var delegate: (any UpstreamDelegate)?
    /// While pooled: tells the pool the connection is gone.
    var onClose: (() -> Void)?
    private var parser: HTTP1ResponseParser
    /// The upstream sent more than the response, or switched protocols: never reused.
    private(set) var spoiled = false
    /// After a WebSocket 101: bytes go to the delegate as they come.
    private var tunnelling = false
    private var input: ByteBuffer?

    init(limits: HTTP1Limits) {
        self.parser = HTTP1ResponseParser(limits: limits)
    }

    func expectResponse(toHEAD: Bool) {
        self.parser.expectResponse(toHEAD: toHEAD)
    }

    /// The response head just read was a 101 the exchange accepted: from its end on, the
    /// connection carries WebSocket frames, and never returns to the pool.
    func startTunnel() {
        self.tunnelling = true
        self.spoiled = true
    }

    /// The connection will not return to the pool (it carried a WebSocket handshake).
    func spoil() {
        self.spoiled = true
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = self.unwrapInboundIn(data)
        if self.tunnelling {
            self.delegate?.upstreamTunnelRead(bytes)
            return
        }
        guard self.delegate != nil else {
            // Bytes on an idle connection: the upstream is confused. Drop the connection.
            context.close(promise: nil)
            return
        }
        self.input.cumulate(&bytes)
        while let delegate = self.delegate, var input = self.input {
            self.input = nil
            let event: HTTP1ResponseEvent?
            do { event = try self.parser.next(from: &input) } catch {
                context.close(promise: nil)
                return
            }
            self.input = input
            guard let event else { break }
            // Bytes after a response, before any request asked for them: the upstream is broken,
            // and the pool must not hand this connection to the next request.
            if case .end = event, input.readableBytes > 0 { self.spoiled = true }
            delegate.upstreamRead(event)
            if self.tunnelling {
                // What followed the 101 in this read is the tunnel's first bytes.
                let rest = self.input
                self.input = nil
                if let rest, rest.readableBytes > 0 { self.delegate?.upstreamTunnelRead(rest) }
                return
            }
        }
        // Bytes after the response, on a connection back in the pool: not a valid exchange.
        if self.delegate == nil, let input = self.input, input.readableBytes > 0 { context.close(promise: nil) }
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
        // A body delimited by the close ends here; anything else was cut short.
        if !self.tunnelling, let delegate = self.delegate, case .end? = try? self.parser.endOfInput() {
            delegate.upstreamRead(.end(trailers: nil))
        }
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
    private var idle: [Key: [UpstreamConnection]] = [:]
    /// At most this many idle connections per upstream on one loop.
    private let maximumIdle: Int

    /// What an upstream's response head may hold: more than a client's request may (upstreams
    /// set many cookies), still bounded.
    private let limits = HTTP1Limits(maxHeadBytes: 64 * 1024, maxFieldCount: 256)

    init(eventLoop: any EventLoop, maximumIdle: Int = 64) {
        self.eventLoop = eventLoop
        self.maximumIdle = maximumIdle
    }

    /// Where an upstream connection goes: connections made with different TLS settings are not
    /// interchangeable. Made without allocating, for every request.
    struct Key: Hashable {
        var host: String
        var port: Int
        var tls: ObjectIdentifier?
    }

    /// A pooled idle connection to `key`, if one is still open.
    func takeIdle(_ key: Key) -> UpstreamConnection? {
        while let connection = self.idle[key]?.popLast() {
            if connection.channel.isActive {
                connection.handler.onClose = nil
                return connection
            }
        }
        return nil
    }

    /// A new connection to `key`'s host and port.
    func connect(_ key: Key, tls: NIOSSLContext?, connectTimeout: TimeAmount) -> EventLoopFuture<UpstreamConnection> {
        let host = key.host
        return ClientBootstrap(group: self.eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: TLSContexts.serverName(host)))
                    }
                    // The gateway writes requests as bytes (`HTTPWire`) and parses responses itself.
                    try channel.pipeline.syncOperations.addHandler(UpstreamResponseHandler(limits: self.limits))
                }
            }
            .connect(host: host, port: key.port)
            .flatMapThrowing { channel in
                let pipeline = channel.pipeline.syncOperations
                let handler = try pipeline.handler(type: UpstreamResponseHandler.self)
                let writer = try pipeline.context(handlerType: UpstreamResponseHandler.self)
                return UpstreamConnection(channel: channel, key: key, handler: handler, writer: writer)
            }
    }

    /// Takes a connection back after a complete exchange, or closes it if the pool is full.
    func release(_ connection: UpstreamConnection) {
        connection.handler.delegate = nil
        guard connection.channel.isActive, !connection.handler.spoiled, (self.idle[connection.key]?.count ?? 0) < self.maximumIdle else {
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
