// SPDX-License-Identifier: Apache-2.0
import NIOCore
import NIOHTTP1
import Synchronization

/// Limits a listener enforces per connection, from `gateway.conf`.
public struct ConnectionLimits: Sendable {
    /// Largest request head (all header names and values) accepted; beyond it, 431.
    public var maxHeaderBytes: Int
    /// Most header fields accepted; beyond it, 431.
    public var maxHeaderCount: Int
    /// Time to finish a request head once its first byte has arrived (slowloris).
    public var headerTimeout: TimeAmount
    /// Time a connection may wait for a next request without sending a byte.
    public var idleTimeout: TimeAmount
    /// Connections open at once; more are closed as soon as they are accepted.
    public var maxConnections: Int

    public init(maxHeaderBytes: Int = 32 * 1024, maxHeaderCount: Int = 100, headerTimeout: TimeAmount = .seconds(10),
                idleTimeout: TimeAmount = .seconds(60), maxConnections: Int = 16384) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaderCount = maxHeaderCount
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
        self.maxConnections = maxConnections
    }

    var decoderLimits: NIOHTTPDecoderLimitConfiguration {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = self.maxHeaderBytes
        limits.maxHeaderListSize = self.maxHeaderBytes
        limits.maxHeaderFieldCount = self.maxHeaderCount
        return limits
    }
}

/// Closes connections that take too long to send a request head (slowloris: `header_timeout`
/// from the head's first byte) or sit idle between requests (`idle_timeout`). It sees raw bytes,
/// so it stands before the HTTP decoder; the gateway tells it when a head is complete. It keeps a
/// deadline, not a timer: the gateway's per-loop sweep calls `expire(now:)` (a timer per request
/// cost more than the request's verification).
final class HeadTimeoutHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let headerTimeout: TimeAmount
    private let idleTimeout: TimeAmount
    private var deadline: NIODeadline?
    private var channel: (any Channel)?
    /// Waiting for a head: no bytes yet (idle) or some (header timeout running).
    private enum State { case idle, receivingHead, busy }
    private var state = State.idle

    init(headerTimeout: TimeAmount, idleTimeout: TimeAmount) {
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.channel = context.channel
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.channel = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        self.waitForHead()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if self.state == .idle {
            self.state = .receivingHead
            self.deadline = .now() + self.headerTimeout
        }
        context.fireChannelRead(data)
    }

    /// The request head is complete: no deadline until the exchange ends.
    func headReceived() {
        self.state = .busy
        self.deadline = nil
    }

    /// The exchange ended: the connection waits for the next request.
    func waitForHead() {
        self.state = .idle
        self.deadline = .now() + self.idleTimeout
    }

    /// Closes the connection if its deadline has passed.
    func expire(now: NIODeadline) {
        guard let deadline = self.deadline, now >= deadline, self.state != .busy else { return }
        self.deadline = nil
        self.channel?.close(promise: nil)
    }
}

/// Counts a listener's open connections and closes those beyond `maxConnections` at once.
final class ConnectionCounter: Sendable {
    private let open = Atomic<Int>(0)
    let maximum: Int

    init(maximum: Int) { self.maximum = maximum }

    /// Admits a new connection, or returns false when the listener is full.
    func admit(_ channel: any Channel) -> Bool {
        let count = self.open.add(1, ordering: .relaxed).newValue
        channel.closeFuture.whenComplete { _ in self.open.subtract(1, ordering: .relaxed) }
        return count <= self.maximum
    }
}
