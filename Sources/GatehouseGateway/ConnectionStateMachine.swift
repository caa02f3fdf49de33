// SPDX-License-Identifier: Apache-2.0
import NIOCore

/// What one client connection of the gateway is doing, as a value: fed events by its adapter
/// (`GatewayConnection`), it answers what to do next and keeps every timeout on the times it is
/// given, so that it is tested without sockets and without sleeping.
///
/// Requests run one at a time. Bytes of a request pipelined behind the one in flight stay unparsed
/// in the adapter's buffer until the exchange ends (`wantsInput`), with the client's reads paused
/// meanwhile (`shouldRead`). The states carry their data: an exchange knows how far its request and
/// its response have come, and which deadline runs.
struct ConnectionStateMachine {
    struct Timeouts: Equatable, Sendable {
        /// From the first byte of a head to its end.
        var head: TimeAmount
        /// Waiting for a request, between two parts of a request body, and for a client that takes
        /// nothing of a response.
        var idle: TimeAmount
    }

    enum State: Equatable {
        /// Waiting for a request head; `headStarted` once some of its bytes are in.
        case idle(deadline: NIODeadline, headStarted: Bool)
        case exchange(Exchange)
        /// A WebSocket tunnel: the upstream switched protocols, bytes flow both ways as they come.
        case tunnel(Tunnel)
        /// The last response closes the connection: nothing more is read, the adapter closes once
        /// that response is flushed.
        case closing
        case closed
    }

    /// One request and its response.
    struct Exchange: Equatable {
        enum Request: Equatable {
            /// The body is still coming; `stallDeadline` runs while the gateway wants to read it.
            case body(stallDeadline: NIODeadline?)
            case complete
        }

        enum Response: Equatable {
            /// The gateway's own answer is written whole: the rest of the request body is read and
            /// dropped.
            case answered
            /// Waiting for an upstream connection (its body waits in the client's socket), then for
            /// the upstream's response head, by `deadline` (the route's timeout).
            case connecting(deadline: NIODeadline)
            case awaitingHead(deadline: NIODeadline)
            /// The upstream's response flows to the client; `reusable` when the upstream keeps its
            /// connection open after it.
            case streaming(reusable: Bool)
            /// A request for the local endpoints (the issuer): its body is read, then answered.
            case readingLocal
            case workingLocal
        }

        var request: Request
        var response: Response
        /// Whether the connection stays open after this exchange.
        var keepAlive: Bool
        /// The request is a WebSocket handshake: a valid 101 opens a tunnel on these terms.
        var upgrade: TunnelTerms?

        /// Nothing of the response has reached the client: a failure can still be answered.
        var responseUnstarted: Bool {
            switch self.response {
            case .connecting, .awaitingHead, .readingLocal: true
            case .answered, .streaming, .workingLocal: false
            }
        }
    }

    /// What a WebSocket tunnel lives by, fixed at its handshake.
    struct TunnelTerms: Equatable {
        /// The route's `websocket_idle_timeout`: nothing moved either way for this long ends it.
        var idleTimeout: TimeAmount
        /// When the credentials it was opened with end (`exp` plus leeway); nil: they do not
        /// (an anonymous tunnel, or `websocket_outlive_token`). Revocation ends it anyway.
        var credentialsEnd: NIODeadline?
    }

    /// Why a tunnel ended: `gatehouse_websocket_closed_total`'s `reason`.
    enum TunnelEnd: String, Equatable, Sendable {
        case client, upstream, idle, expired, revoked, drain
    }

    struct Tunnel: Equatable {
        let terms: TunnelTerms
        var idleDeadline: NIODeadline
        /// Set once the gateway ends the tunnel itself (close frames sent between frames): why,
        /// and when both sockets close whatever the peers do (a drain: its own grace decides).
        var ending: (reason: TunnelEnd, closeDeadline: NIODeadline?)?

        static func == (lhs: Tunnel, rhs: Tunnel) -> Bool {
            lhs.terms == rhs.terms && lhs.idleDeadline == rhs.idleDeadline && lhs.ending?.reason == rhs.ending?.reason
                && lhs.ending?.closeDeadline == rhs.ending?.closeDeadline
        }
    }

    /// How long a tunnel the gateway ends waits for the client's close frame.
    static let tunnelCloseGrace = TimeAmount.seconds(1)

    /// What the gateway does with a request whose head it has read.
    enum Plan: Equatable {
        /// Answers it now (an error, `/auth/verify`); `closes` when the answer ends the connection.
        case answer(closes: Bool)
        /// Reads the body for the local endpoints.
        case local
        /// Forwards it; the upstream must answer by `deadline`. `upgrade`: a WebSocket handshake.
        case forward(deadline: NIODeadline, upgrade: TunnelTerms? = nil)
    }

    /// Where a request body part goes.
    enum BodyRoute: Equatable {
        case upstream, local, discard
    }

    /// What follows the end of a request body.
    enum RequestEnd: Equatable {
        /// Finish the request to the upstream.
        case endUpstreamRequest
        /// Hand the request to the local endpoints.
        case respondLocally
        /// Nothing: the exchange is over (its answer went out before), go on reading.
        case readNext
        /// The exchange is over and the connection closes (a drain began meanwhile).
        case close
        /// Nothing to do.
        case none
    }

    /// After a response ends.
    enum Next: Equatable {
        /// Parse whatever the client sent next.
        case readNext
        /// The rest of the request body still comes (and is dropped).
        case awaitRequestEnd
        /// Close once the response is flushed.
        case closeAfterFlush
    }

    /// A deadline that passed.
    enum Expiry: Equatable {
        /// Close the connection (no request, a head too slow, a client that takes nothing).
        case close
        /// The request body stalled: answer 408 if `abandon()` allows, else close.
        case bodyStalled
        /// The upstream did not answer in time: 504 (`upstreamFailed()`).
        case upstreamTimedOut
        /// Nothing moved through the tunnel for its idle timeout: close both sockets.
        case tunnelIdle
        /// The tunnel's credentials ended: end it (`endTunnel(.expired)`).
        case tunnelCredentialsEnded
    }

    /// What a drain does to a connection.
    enum Drain: Equatable {
        /// Close it now: no exchange runs.
        case closeNow
        /// The exchange in flight ends with `Connection: close`.
        case finishExchange
        /// A tunnel: it ends with close frames (`endTunnel(.drain)` was applied).
        case endTunnel
    }

    let timeouts: Timeouts
    private(set) var state: State
    /// Set while the client takes nothing of what is written to it.
    private var writeStallDeadline: NIODeadline?
    /// The upstream can take more of the request body.
    private var upstreamWritable = true
    private var draining = false

    init(timeouts: Timeouts, now: NIODeadline) {
        self.timeouts = timeouts
        self.state = .idle(deadline: now + timeouts.idle, headStarted: false)
    }

    // MARK: What the adapter asks

    /// Whether the adapter may parse the next request part: a head when idle and the client takes
    /// what is written to it (else answers would pile up), body while the exchange reads one — not
    /// while connecting (the body waits in the socket), not while the upstream is full, not while a
    /// local answer is worked on.
    var wantsInput: Bool {
        switch self.state {
        case .idle: return self.writeStallDeadline == nil
        case .closing, .closed, .tunnel: return false
        case .exchange(let exchange):
            guard case .body = exchange.request else { return false }
            switch exchange.response {
            case .answered, .readingLocal: return true
            case .awaitingHead, .streaming: return self.upstreamWritable
            case .connecting, .workingLocal: return false
            }
        }
    }

    /// Whether the client's reads should be on. They stay on while a response is under way (a
    /// client that leaves is seen at once, and each change costs a system call), except that bytes
    /// the gateway cannot take yet stay in the socket, not in memory.
    func shouldRead(hasBufferedInput: Bool) -> Bool {
        switch self.state {
        case .idle: return self.wantsInput
        case .closing, .closed: return false
        // The client's bytes go to the upstream as they come, while it takes them.
        case .tunnel: return self.upstreamWritable
        case .exchange:
            return self.wantsInput || !hasBufferedInput && self.requestComplete
        }
    }

    private var requestComplete: Bool {
        if case .exchange(let exchange) = self.state, case .body = exchange.request { return false }
        return true
    }

    /// The earliest deadline that runs; the adapter's one timer fires then (or later: `expire` checks).
    var nextDeadline: NIODeadline? {
        var deadline = self.writeStallDeadline
        func consider(_ other: NIODeadline?) {
            guard let other else { return }
            deadline = deadline.map { min($0, other) } ?? other
        }
        switch self.state {
        case .idle(let idle, _):
            consider(idle)
        case .exchange(let exchange):
            if case .body(let stall) = exchange.request, self.bodyTimerRuns(exchange) { consider(stall) }
            switch exchange.response {
            case .connecting(let upstream), .awaitingHead(let upstream): consider(upstream)
            default: break
            }
        case .tunnel(let tunnel):
            consider(tunnel.idleDeadline)
            if let ending = tunnel.ending { consider(ending.closeDeadline) } else { consider(tunnel.terms.credentialsEnd) }
        case .closing, .closed:
            break
        }
        return deadline
    }

    /// The body timer is off while the gateway itself holds the reads (connecting, a full
    /// upstream, a local answer in the works): a client cannot be late for what it may not send.
    private func bodyTimerRuns(_ exchange: Exchange) -> Bool {
        switch exchange.response {
        case .answered, .readingLocal: true
        case .awaitingHead, .streaming: self.upstreamWritable
        case .connecting, .workingLocal: false
        }
    }

    // MARK: Events from the client

    /// Bytes of a head arrived: the head timeout runs from the first of them.
    mutating func headBytesArrived(now: NIODeadline) {
        guard case .idle(_, false) = self.state else { return }
        self.state = .idle(deadline: now + self.timeouts.head, headStarted: true)
    }

    /// A request head was read and `plan` decided for it. Its end follows as an event of its own
    /// (`requestEnded`), also when it has no body.
    mutating func requestHead(keepAlive: Bool, plan: Plan, now: NIODeadline) {
        guard case .idle = self.state else { preconditionFailure("a request head outside idle: \(self.state)") }
        let response: Exchange.Response
        var upgrade: TunnelTerms?
        var keepAlive = keepAlive && !self.draining
        switch plan {
        case .answer(let closes):
            response = .answered
            if closes { keepAlive = false }
        case .local:
            response = .readingLocal
        case .forward(let deadline, let terms):
            response = .connecting(deadline: deadline)
            upgrade = terms
        }
        self.upstreamWritable = true
        self.state = .exchange(
            Exchange(request: .body(stallDeadline: now + self.timeouts.idle), response: response, keepAlive: keepAlive, upgrade: upgrade)
        )
    }

    /// A part of the request body was read.
    mutating func requestBodyPart(now: NIODeadline) -> BodyRoute {
        guard case .exchange(var exchange) = self.state, case .body = exchange.request else { return .discard }
        exchange.request = .body(stallDeadline: now + self.timeouts.idle)
        self.state = .exchange(exchange)
        switch exchange.response {
        case .awaitingHead, .streaming: return .upstream
        case .readingLocal: return .local
        case .answered, .connecting, .workingLocal: return .discard
        }
    }

    /// The request's last part was read.
    mutating func requestEnded(now: NIODeadline) -> RequestEnd {
        guard case .exchange(var exchange) = self.state, case .body = exchange.request else { return .none }
        exchange.request = .complete
        self.state = .exchange(exchange)
        switch exchange.response {
        case .awaitingHead, .streaming:
            return .endUpstreamRequest
        case .readingLocal:
            exchange.response = .workingLocal
            self.state = .exchange(exchange)
            return .respondLocally
        case .answered:
            // Its answer went out while the body still came: the exchange ends here.
            return self.endExchange(exchange, now: now) == .readNext ? .readNext : .close
        case .connecting, .workingLocal:
            return .none
        }
    }

    /// The exchange cannot go on: the request's framing was refused, its body stalled or is too
    /// large. True when an answer may still be written (then `responseEnded` closes after it);
    /// false when the adapter must just close. Either way nothing more of the request is read.
    mutating func abandon() -> Bool {
        switch self.state {
        case .idle:
            self.state = .exchange(Exchange(request: .complete, response: .answered, keepAlive: false))
            return true
        case .tunnel:
            self.state = .closing
            return false
        case .exchange(var exchange) where exchange.responseUnstarted:
            exchange.request = .complete
            exchange.response = .answered
            exchange.keepAlive = false
            self.state = .exchange(exchange)
            return true
        case .exchange, .closing, .closed:
            self.state = .closing
            return false
        }
    }

    // MARK: The WebSocket tunnel

    /// The upstream answered 101 and its accept value matched: true when the exchange was a
    /// handshake whose request is complete, and the connection is a tunnel
    /// now (the route's timeout and `idle_timeout` stop here); false means 502.
    mutating func upstreamSwitchedProtocols(now: NIODeadline) -> Bool {
        guard case .exchange(let exchange) = self.state, case .awaitingHead = exchange.response, let terms = exchange.upgrade,
            exchange.request == .complete
        else { return false }
        self.writeStallDeadline = nil
        self.state = .tunnel(Tunnel(terms: terms, idleDeadline: now + terms.idleTimeout))
        return true
    }

    /// Bytes moved through the tunnel, either way: its idle timeout starts again.
    mutating func tunnelMoved(now: NIODeadline) {
        guard case .tunnel(var tunnel) = self.state else { return }
        tunnel.idleDeadline = now + tunnel.terms.idleTimeout
        self.state = .tunnel(tunnel)
    }

    /// The gateway ends the tunnel for `reason`: true when it was not ending already (the adapter
    /// then sends the close frames, each between frames, and stops relaying); both sockets close
    /// after the client's close frame or `tunnelCloseGrace` — for a drain, its `shutdown_grace`
    /// (the server closes what is left then), so that a long frame under way can finish.
    mutating func endTunnel(_ reason: TunnelEnd, now: NIODeadline) -> Bool {
        guard case .tunnel(var tunnel) = self.state, tunnel.ending == nil else { return false }
        tunnel.ending = (reason, reason == .drain ? nil : now + Self.tunnelCloseGrace)
        self.state = .tunnel(tunnel)
        return true
    }

    /// Why the tunnel is ending, if the gateway ends it.
    var tunnelEnding: TunnelEnd? {
        if case .tunnel(let tunnel) = self.state { return tunnel.ending?.reason }
        return nil
    }


    // MARK: Events from the upstream

    /// An upstream connection is ready; false when the exchange no longer wants it (it ended, or
    /// timed out, while connecting): the adapter gives it back.
    mutating func upstreamConnected(now: NIODeadline) -> Bool {
        guard case .exchange(var exchange) = self.state, case .connecting(let deadline) = exchange.response else { return false }
        exchange.response = .awaitingHead(deadline: deadline)
        // The body timer starts when the gateway reads the body, not while it connected.
        if case .body = exchange.request { exchange.request = .body(stallDeadline: now + self.timeouts.idle) }
        self.state = .exchange(exchange)
        return true
    }

    /// Whether the upstream can take more of the request body.
    mutating func upstreamWritabilityChanged(_ writable: Bool, now: NIODeadline) {
        self.upstreamWritable = writable
        // The body timer starts afresh when the gateway reads again.
        guard writable, case .exchange(var exchange) = self.state, case .body = exchange.request else { return }
        exchange.request = .body(stallDeadline: now + self.timeouts.idle)
        self.state = .exchange(exchange)
    }

    /// The upstream's final response head arrived. `reusable`: the upstream keeps its connection;
    /// `closesClient`: its body can only be delimited by closing the client's connection.
    mutating func upstreamResponseHead(reusable: Bool, closesClient: Bool) {
        guard case .exchange(var exchange) = self.state, case .awaitingHead = exchange.response else { return }
        exchange.response = .streaming(reusable: reusable)
        if closesClient { exchange.keepAlive = false }
        self.state = .exchange(exchange)
    }

    /// The upstream's response ended. `reuseUpstream`: its connection may go back to the pool (it
    /// said so, and the whole request was sent on it).
    mutating func upstreamResponseEnded(now: NIODeadline) -> (reuseUpstream: Bool, next: Next) {
        guard case .exchange(let exchange) = self.state, case .streaming(let reusable) = exchange.response else {
            return (false, .closeAfterFlush)
        }
        let reuse = reusable && exchange.request == .complete
        return (reuse, self.responseEnded(now: now))
    }

    /// The upstream failed (could not connect, closed, timed out) before its response began: true
    /// when the adapter answers 502/504 (the connection stays as it was asked to), false when the
    /// response is under way and the only honest end is to close.
    mutating func upstreamFailed() -> Bool {
        guard case .exchange(var exchange) = self.state else {
            if case .tunnel = self.state { self.state = .closing }
            return false
        }
        switch exchange.response {
        case .connecting, .awaitingHead:
            exchange.response = .answered
            self.state = .exchange(exchange)
            return true
        case .streaming:
            self.state = .closing
            return false
        case .answered, .readingLocal, .workingLocal:
            return false
        }
    }

    // MARK: The response

    /// The gateway finished writing a response of its own (an answer, a local endpoint's) or the
    /// upstream's: what the connection does next.
    mutating func responseEnded(now: NIODeadline) -> Next {
        guard case .exchange(var exchange) = self.state else { return .closeAfterFlush }
        guard exchange.request == .complete else {
            // A response that ends before its request: read and drop the rest of the body.
            exchange.response = .answered
            if !exchange.keepAlive {
                self.state = .closing
                return .closeAfterFlush
            }
            self.state = .exchange(exchange)
            return .awaitRequestEnd
        }
        return self.endExchange(exchange, now: now)
    }

    private mutating func endExchange(_ exchange: Exchange, now: NIODeadline) -> Next {
        guard exchange.keepAlive, !self.draining else {
            self.state = .closing
            return .closeAfterFlush
        }
        // A new request may be waiting already: the adapter reports its bytes (`headBytesArrived`).
        self.state = .idle(deadline: now + self.timeouts.idle, headStarted: false)
        return .readNext
    }

    /// The client can or cannot take more: a client that takes nothing for `idle_timeout` is closed.
    mutating func clientWritabilityChanged(_ writable: Bool, now: NIODeadline) {
        // In a tunnel, a client that takes nothing stops the upstream's reads: nothing moves, and
        // the tunnel's idle timeout applies.
        if case .tunnel = self.state { return }
        self.writeStallDeadline = writable ? nil : now + self.timeouts.idle
    }

    // MARK: Time and shutdown

    /// What passed by `now`, if anything; the deadline that expired is off afterwards.
    mutating func expire(now: NIODeadline) -> Expiry? {
        if let stall = self.writeStallDeadline, now >= stall {
            self.writeStallDeadline = nil
            self.state = .closing
            return .close
        }
        switch self.state {
        case .idle(let deadline, _):
            guard now >= deadline else { return nil }
            self.state = .closing
            return .close
        case .exchange(var exchange):
            switch exchange.response {
            case .connecting(let deadline), .awaitingHead(let deadline):
                if now >= deadline { return .upstreamTimedOut }
            default:
                break
            }
            if case .body(let stall?) = exchange.request, self.bodyTimerRuns(exchange), now >= stall {
                exchange.request = .body(stallDeadline: nil)
                self.state = .exchange(exchange)
                return .bodyStalled
            }
            return nil
        case .tunnel(let tunnel):
            if let ending = tunnel.ending {
                guard let deadline = ending.closeDeadline, now >= deadline else { return nil }
                self.state = .closing
                return .close
            }
            if now >= tunnel.idleDeadline {
                self.state = .closing
                return .tunnelIdle
            }
            if let end = tunnel.terms.credentialsEnd, now >= end { return .tunnelCredentialsEnded }
            return nil
        case .closing, .closed:
            return nil
        }
    }

    /// The server drains: idle connections close, the exchange in flight ends with
    /// `Connection: close` (a handshake that gets its 101 still opens a tunnel, which the adapter
    /// then ends at once), a tunnel ends with close frames.
    mutating func drain(now: NIODeadline) -> Drain {
        self.draining = true
        switch self.state {
        case .idle:
            self.state = .closing
            return .closeNow
        case .exchange(var exchange):
            exchange.keepAlive = false
            self.state = .exchange(exchange)
            return .finishExchange
        case .tunnel:
            return self.endTunnel(.drain, now: now) ? .endTunnel : .finishExchange
        case .closing, .closed:
            return .finishExchange
        }
    }

    /// Whether the upstream's response is being relayed (its head arrived, its end has not).
    var isStreamingResponse: Bool {
        if case .exchange(let exchange) = self.state, case .streaming = exchange.response { return true }
        return false
    }

    /// Whether the response being written says `Connection: close`.
    var closesAfterResponse: Bool {
        if case .exchange(let exchange) = self.state { return !exchange.keepAlive }
        return true
    }

    mutating func closed() {
        self.state = .closed
        self.writeStallDeadline = nil
    }
}
