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
/// from the head's first byte), sit idle between requests (`idle_timeout`), or take nothing the
/// gateway writes for `idle_timeout` (a client that stops reading a response); and notices request
/// bodies that send nothing for `idle_timeout` while the gateway reads them (the gateway answers
/// those: 408 or a close). It sees raw bytes, so it stands before the HTTP decoder; the gateway
/// tells it when a head is complete, when the request has ended, and when it stops or resumes
/// reading the client itself (back-pressure, pipelining: then silence is not the client's). It
/// keeps deadlines, not timers: the gateway's per-loop sweep calls `expire(now:)` (a timer per
/// request cost more than the request's verification).
final class HeadTimeoutHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// What ran out.
    enum Expiry {
        /// No head or no next request in time, or the client took nothing written for
        /// `idle_timeout`: the connection was closed here.
        case closed
        /// The request body sent nothing for `idle_timeout`: the gateway decides how it ends.
        case body
    }

    private let headerTimeout: TimeAmount
    private let idleTimeout: TimeAmount
    private var deadline: NIODeadline?
    /// Set while the client cannot take what is written to it.
    private var writeDeadline: NIODeadline?
    private var channel: (any Channel)?
    private enum State {
        /// Waiting for a head: no bytes yet (`idle_timeout`) or some (`header_timeout`).
        case idle, receivingHead
        /// The head is in, the request's body not yet whole: every byte moves the deadline, which
        /// does not run while the gateway is not reading.
        case readingBody
        /// The request is whole: the exchange has its own timeouts.
        case busy
    }
    private var state = State.idle
    /// The gateway is not reading the client.
    private var readsPaused = false

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
        switch self.state {
        case .idle:
            self.state = .receivingHead
            self.deadline = .now() + self.headerTimeout
        case .readingBody:
            self.deadline = self.bodyDeadline
        case .receivingHead, .busy:
            break
        }
        context.fireChannelRead(data)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.writeDeadline = context.channel.isWritable ? nil : .now() + self.idleTimeout
        context.fireChannelWritabilityChanged()
    }

    private var bodyDeadline: NIODeadline? { self.readsPaused ? nil : .now() + self.idleTimeout }

    /// The request head is complete; its body (if any) follows.
    func headReceived() {
        self.state = .readingBody
        self.deadline = self.bodyDeadline
    }

    /// The request is whole: no deadline until the exchange ends.
    func requestEnded() {
        self.state = .busy
        self.deadline = nil
    }

    /// The gateway stopped (`false`) or resumed (`true`) reading the client.
    func clientReads(_ on: Bool) {
        self.readsPaused = !on
        if self.state == .readingBody { self.deadline = self.bodyDeadline }
    }

    /// The exchange ended: the connection waits for the next request.
    func waitForHead() {
        self.state = .idle
        self.deadline = .now() + self.idleTimeout
    }

    /// What ran out, if a deadline has passed; all but a stalled body close the connection here.
    func expire(now: NIODeadline) -> Expiry? {
        if let writeDeadline = self.writeDeadline, now >= writeDeadline {
            self.channel?.close(promise: nil)
            return .closed
        }
        guard let deadline = self.deadline, now >= deadline else { return nil }
        self.deadline = nil
        switch self.state {
        case .idle, .receivingHead:
            self.channel?.close(promise: nil)
            return .closed
        case .readingBody:
            self.state = .busy
            return .body
        case .busy:
            return nil
        }
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
