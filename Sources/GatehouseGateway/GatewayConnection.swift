// SPDX-License-Identifier: Apache-2.0
import GatehouseConfig
import GatehouseHTTP
import GatehouseHTTP1
import GatehouseJOSE
import Logging
import NIOCore
import NIOHTTP1

/// One client connection of the gateway, and its only handler: bytes in, bytes out. It parses
/// requests itself (`HTTP1RequestParser`), asks `ConnectionStateMachine` what to do at each step and
/// does it — decide the request (`RequestAuthorizer`), answer it, hand it to the local endpoints or
/// forward it on a pooled upstream connection of the same event loop, streaming bodies both ways
/// with back-pressure.
///
/// Requests pipelined behind the one in flight stay unparsed in `input` until it ends; the
/// machine says when to read. Confined to its channel's event loop.
final class GatewayConnection: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let state: LoopState
    private let scheme: String
    private var machine: ConnectionStateMachine
    private var parser: HTTP1RequestParser
    /// Bytes read and not yet parsed.
    private var input: ByteBuffer?
    private var context: ChannelHandlerContext?
    /// The peer's address as text, made once per connection (`X-Forwarded-For`, the issuer's
    /// per-address limits): formatting it costs an `inet_ntop` each time.
    private var peerAddress: String?
    /// The peer is one of `trusted_proxies`: its forwarding headers pass.
    private var peerTrusted = false
    private var readsOn = true
    private var parsing = false
    private var parseAgain = false
    /// Counts exchanges, so that an upstream connection that completes late is not taken by the
    /// exchange that followed the one it was made for.
    private var exchangeNumber = 0

    /// The exchange in flight: what its access-log line says, and how its bodies are framed.
    private var log = ExchangeLog()
    private var method = HTTPMethod.GET
    private var version = HTTPVersion.http1_1
    private var responseBody = BodyWriter(framing: .none)
    private var requestBody = BodyWriter(framing: .none)
    private var upstream: UpstreamConnection?
    /// The request for the upstream, serialised, until a connection takes it.
    private var upstreamRequest: ByteBuffer?
    /// The request being read for the local endpoints.
    private var localRequest: LocalRequest?
    /// The WebSocket handshake forwarded, whose 101 must answer its key.
    private var handshake: WebSocketHandshake?
    /// The session of the handshake's token: revoking it ends the tunnel.
    private var handshakeSessionID: String?
    /// Once the upstream switched protocols: the tunnel's bytes.
    private var tunnel: TunnelRelay?

    init(state: LoopState, scheme: String, timeouts: ConnectionStateMachine.Timeouts, limits: HTTP1Limits) {
        self.state = state
        self.scheme = scheme
        self.machine = ConnectionStateMachine(timeouts: timeouts, now: .now())
        self.parser = HTTP1RequestParser(limits: limits)
    }

    private var pool: UpstreamPool { self.state.pool }
    private var metrics: LoopMetrics { self.state.metrics }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.peerAddress = context.channel.remoteAddress?.ipAddress
        self.peerTrusted = self.peerAddress.map(self.state.trustedProxies.contains) ?? false
        self.state.connections[ObjectIdentifier(self)] = self
        if self.state.draining { self.drain() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.state.connections[ObjectIdentifier(self)] = nil
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.state.connections[ObjectIdentifier(self)] = nil
        if let tunnel = self.tunnel { self.tunnelEnded(tunnel) }
        self.tunnel = nil
        self.machine.closed()
        self.dropUpstream()
        self.input = nil
        context.fireChannelInactive()
    }

    // MARK: Reading the client

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = self.unwrapInboundIn(data)
        if self.tunnel != nil {
            self.relay(bytes, from: .client, context: context)
            return
        }
        self.input.cumulate(&bytes)
        self.parseInput(context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.upstream?.writer.flush()
        context.fireChannelReadComplete()
    }

    /// Parses and handles what the machine wants of the input, then sets the reads. Never nested:
    /// handling a request can end it at once (a pooled upstream, an answer ready), and a call from
    /// there only asks the running loop to go on, so that pipelined requests cannot deepen the stack.
    private func parseInput(context: ChannelHandlerContext) {
        guard !self.parsing else {
            self.parseAgain = true
            return
        }
        self.parsing = true
        defer { self.parsing = false }
        repeat {
            self.parseAgain = false
            self.parseAvailable(context: context)
        } while self.parseAgain
        if case .idle = self.machine.state, let input = self.input, input.readableBytes > 0 {
            self.machine.headBytesArrived(now: .now())
        }
        self.applyReads(context: context)
    }

    private func parseAvailable(context: ChannelHandlerContext) {
        while self.machine.wantsInput, self.context != nil, var input = self.input {
            self.input = nil  // taken out while parsing, so that slicing it does not copy
            let event: HTTP1RequestEvent?
            do {
                event = try self.parser.next(from: &input)
            } catch {
                self.input = input
                self.refuse(error, context: context)
                break
            }
            self.input = input
            guard let event else { break }
            self.handle(event, context: context)
        }
    }

    private func handle(_ event: HTTP1RequestEvent, context: ChannelHandlerContext) {
        switch event {
        case .head(let head):
            self.begin(head, context: context)
        case .body(let buffer):
            switch self.machine.requestBodyPart(now: .now()) {
            case .upstream: if let upstream = self.upstream { self.requestBody.write(buffer, to: upstream.writer) }
            case .local: self.readLocalBody(buffer, context: context)
            case .discard: break
            }
        case .end:
            // Request trailers are dropped: an upstream may merge them into the headers.
            switch self.machine.requestEnded(now: .now()) {
            case .endUpstreamRequest:
                if let upstream = self.upstream {
                    self.requestBody.end(trailers: nil, to: upstream.writer)
                    upstream.writer.flush()
                }
            case .respondLocally: self.respondLocally(context: context)
            case .close: self.closeAfterFlush(context: context)
            case .readNext, .none: break
            }
        }
    }

    /// Reads are on when the machine wants them; a change of state only, since each costs an epoll_ctl.
    private func applyReads(context: ChannelHandlerContext) {
        let on = self.machine.shouldRead(hasBufferedInput: (self.input?.readableBytes ?? 0) > 0)
        guard on != self.readsOn else { return }
        self.readsOn = on
        context.channel.setOption(ChannelOptions.autoRead, value: on).whenFailure { _ in }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        let writable = context.channel.isWritable
        self.machine.clientWritabilityChanged(writable, now: .now())
        // The client cannot take more: stop reading the upstream's response until it can.
        self.upstream?.setReads(writable)
        // Nor its requests, which would pile answers up: they go on when it takes them.
        self.parseInput(context: context)
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    /// The request's bytes were refused: 431 for a head over the limits, 400 otherwise, when no
    /// answer has begun, then the connection closes (after a framing error nothing on it can be
    /// trusted: request smuggling).
    private func refuse(_ error: HTTP1ParseError, context: ChannelHandlerContext) {
        let idle: Bool
        if case .idle = self.machine.state { idle = true } else { idle = false }
        guard self.machine.abandon() else {
            context.close(promise: nil)
            return
        }
        if idle {
            self.method = .GET
            self.version = .http1_1
            self.log = ExchangeLog(requestID: HeaderRewriter.makeRequestID())
        }
        self.dropUpstream()
        self.localRequest = nil
        let answer: HTTPError
        switch error {
        case .headTooLarge, .tooManyFields: answer = .headersTooLarge
        case .unsupportedVersion: answer = .invalidRequest("the request is not valid HTTP/1.1 (unsupported HTTP version)")
        case .invalid(let reason): answer = .invalidRequest("the request is not valid HTTP/1.1 (\(reason))")
        }
        self.log.failure = answer.code
        self.answer(answer, context: context)
    }

    // MARK: Deciding a request

    private func begin(_ head: HTTP1RequestHead, context: ChannelHandlerContext) {
        let now = NIODeadline.now()
        self.exchangeNumber &+= 1
        self.method = head.method
        self.version = head.version
        self.responseBody.framing = .none
        self.handshake = nil
        self.log = ExchangeLog(requestID: HeaderRewriter.requestID(of: head.fields), target: head.target)
        let decision = self.state.authorizer.decide(
            method: head.method, version: head.version, asksUpgrade: head.upgrade != nil, target: head.target, fields: head.fields,
            now: currentTime(), cache: self.state.cache, revoked: self.state.revoked
        )
        switch decision {
        case .respond(let error, let route):
            self.log.route = route ?? "none"
            if let reason = error.rejection { self.metrics.countRejection(reason) }
            if error.rejection == .unknownKeyID { self.state.onUnknownKeyID?() }
            self.log.failure = error.rejection?.rawValue ?? error.code
            self.machine.requestHead(keepAlive: head.keepAlive, plan: .answer(closes: error.closesConnection), now: now)
            self.answer(error, context: context)
        case .local(let route, let path):
            self.log.route = route
            self.beginLocal(head, path: path, now: now, context: context)
        case .verified(let identity):
            // Forward-auth: the answer is the identity headers on an empty 200.
            self.log.route = RequestAuthorizer.verifyPath
            self.log.userID = identity.userID
            self.machine.requestHead(keepAlive: head.keepAlive, plan: .answer(closes: false), now: now)
            var headers = HTTPHeaders()
            HeaderRewriter.addIdentity(identity, to: &headers)
            headers.add(name: "Content-Length", value: "0")
            headers.add(name: "Cache-Control", value: "no-store")
            self.log.status = 200
            self.metrics.countRequest(route: self.log.route, status: 200)
            self.writeHead(.ok, headers: headers, context: context)
            self.finishResponse(context: context)
        case .forward(let route, let path, let identity):
            self.log.route = route.prefix
            self.log.userID = identity?.userID
            self.forward(head, route: route, path: path, identity: identity, now: now, context: context)
        case .upgrade(let route, let path, let identity, let handshake):
            self.log.route = route.prefix
            self.log.userID = identity?.userID
            self.handshake = handshake
            self.handshakeSessionID = identity?.sessionID
            let terms = ConnectionStateMachine.TunnelTerms(
                idleTimeout: route.websocketIdleTimeout.timeAmount,
                credentialsEnd: route.websocketOutlivesToken ? nil : identity?.validUntil.map { Self.deadline(at: $0, now: now) }
            )
            self.forward(head, route: route, path: path, identity: identity, upgrade: terms, now: now, context: context)
        }
    }

    /// The loop's clock's deadline for a wall-clock time (seconds since the epoch), within ten years.
    private static func deadline(at time: Double, now: NIODeadline) -> NIODeadline {
        let seconds = min(max(time - currentTime(), 0), 10 * 365 * 86_400)
        return now + .nanoseconds(Int64(seconds * 1e9))
    }

    private func forward(
        _ head: HTTP1RequestHead, route: RouteConfig, path: RequestPath, identity: Identity?, upgrade: ConnectionStateMachine.TunnelTerms? = nil,
        now: NIODeadline, context: ChannelHandlerContext
    ) {
        let upstreamURL = route.upstream
        let defaultPort = upstreamURL.scheme == "https" ? 443 : 80
        let authority = upstreamURL.port == defaultPort ? upstreamURL.host : "\(upstreamURL.host):\(upstreamURL.port)"
        var forwarding = ForwardingContext(
            clientAddress: self.peerAddress ?? "unknown", scheme: self.scheme,
            upstreamAuthority: authority, preserveHost: route.preserveHost, forwardToken: route.forwardToken,
            accessCookie: self.state.authorizer.cookie, trustedPeer: self.peerTrusted
        )
        forwarding.webSocket = upgrade != nil
        let target = path.forwardedTarget(stripping: route.stripPrefix ? route.prefix : nil, basePath: upstreamURL.basePath)
        var request = HeadWriter(method: head.method, target: target, allocator: context.channel.allocator)
        let facts = HeaderRewriter.writeRequestFields(
            of: head.fields, identity: identity, context: forwarding, requestID: self.log.requestID, to: &request
        )
        self.upstreamRequest = request.finish()
        self.requestBody.framing = facts.body
        self.machine.requestHead(keepAlive: head.keepAlive, plan: .forward(deadline: now + route.timeout.timeAmount, upgrade: upgrade), now: now)
        // The gateway answers `Expect: 100-continue` itself once the request is admitted (a
        // handshake has no body to ask for: its answer is the 101).
        if facts.expectsContinue, upgrade == nil { self.writeContinue(context: context) }
        // A pooled connection is taken at once; a new one takes a round trip, during which the
        // machine holds the client's reads, so that the body waits in the socket, not in memory.
        let tls = upstreamURL.scheme == "https" ? self.state.upstreamTLS[route.prefix] : nil
        let key = UpstreamPool.Key(host: upstreamURL.host, port: upstreamURL.port, tls: tls.map(ObjectIdentifier.init))
        if let connection = self.pool.takeIdle(key) {
            self.attach(connection, context: context)
            return
        }
        let exchange = self.exchangeNumber
        self.pool.connect(key, tls: tls, connectTimeout: route.connectTimeout.timeAmount)
            .assumeIsolated()
            .whenComplete { result in
                guard exchange == self.exchangeNumber else {
                    // Made for an exchange that ended (its route timed out): a fresh connection for the pool.
                    if case .success(let connection) = result { self.pool.release(connection) }
                    return
                }
                switch result {
                case .success(let connection): self.attach(connection, context: context)
                case .failure: self.upstreamFailed(.badGateway, context: context)
                }
            }
    }

    private func attach(_ connection: UpstreamConnection, context: ChannelHandlerContext) {
        guard context.channel.isActive, let request = self.upstreamRequest, self.machine.upstreamConnected(now: .now()) else {
            // The client left, or the exchange already ended (timeout) while connecting.
            if connection.channel.isActive { self.pool.release(connection) }
            return
        }
        self.upstream = connection
        self.upstreamRequest = nil
        self.log.forwardedAt = .now()
        // An upstream that read a handshake may have left HTTP whatever it answers: never reused.
        if self.handshake != nil { connection.handler.spoil() }
        connection.handler.delegate = self
        connection.writeHead(request, method: self.method)
        connection.setReads(context.channel.isWritable)
        // The body (and the request's end) were left unparsed while connecting.
        self.parseInput(context: context)
        connection.writer.flush()
    }

    /// Called by the loop's sweep with the loop's clock: whatever deadline passed.
    func sweep(now: NIODeadline) {
        guard let context = self.context else { return }
        if let tunnel = self.tunnel, let sessionID = tunnel.sessionID, let revoked = self.state.revoked, revoked.revision != tunnel.checkedRevision {
            self.tunnel?.checkedRevision = revoked.revision
            if revoked.contains(sessionID) { self.endTunnel(.revoked, context: context) }
        }
        guard let expiry = self.machine.expire(now: now) else { return }
        switch expiry {
        case .close:
            context.close(promise: nil)
        case .bodyStalled:
            guard self.machine.abandon() else {
                context.close(promise: nil)
                return
            }
            self.dropUpstream()
            self.localRequest = nil
            self.log.failure = HTTPError.requestTimeout.code
            self.answer(.requestTimeout, context: context)
            self.applyReads(context: context)
        case .upstreamTimedOut:
            self.upstreamFailed(.gatewayTimeout, context: context)
        case .tunnelIdle:
            if self.tunnel?.endReason == nil { self.tunnel?.endReason = .idle }
            self.closeTunnel(context: context)
        case .tunnelCredentialsEnded:
            self.endTunnel(.expired, context: context)
        }
    }

    /// The upstream failed before answering: 502 or 504, and its connection is not reused; once
    /// the response began, the client's connection closes (it sees a truncated body).
    private func upstreamFailed(_ error: HTTPError, context: ChannelHandlerContext) {
        self.dropUpstream()
        guard self.machine.upstreamFailed() else {
            self.log.failure = "upstream_closed"
            self.logExchange()
            context.close(promise: nil)
            return
        }
        self.upstreamRequest = nil
        self.log.failure = error.code
        self.answer(error, context: context)
        self.parseInput(context: context)
    }

    /// Forgets the upstream connection of an exchange cut short: its state is unknown, so it closes.
    private func dropUpstream() {
        if let upstream = self.upstream {
            upstream.handler.delegate = nil
            upstream.channel.close(promise: nil)
            self.upstream = nil
        }
    }

    // MARK: Writing the response

    /// Writes one of the gateway's own JSON responses.
    private func answer(_ error: HTTPError, context: ChannelHandlerContext) {
        self.log.status = Int(error.status.code)
        self.metrics.countRequest(route: self.log.route, status: self.log.status)
        let text = error.body
        self.writeHead(error.status, headers: error.headers(bodyBytes: text.utf8.count), context: context)
        var body = context.channel.allocator.buffer(capacity: text.utf8.count)
        body.writeString(text)
        self.responseBody.write(body, to: context)
        self.finishResponse(context: context)
    }

    /// Writes a response head with a `Content-Length` among `headers`, and the `Connection` field:
    /// the body goes as is, or not at all when the request was HEAD.
    private func writeHead(_ status: HTTPResponseStatus, headers: HTTPHeaders, context: ChannelHandlerContext) {
        var headers = headers
        if let connection = self.connectionField { headers.add(name: "Connection", value: connection) }
        self.responseBody.framing = HTTPWire.responseHasBody(status: Int(status.code), requestMethod: self.method) ? .raw : .none
        context.write(self.wrapOutboundOut(HTTPWire.responseHead(status, headers: headers, allocator: context.channel.allocator)), promise: nil)
    }

    /// An HTTP/1.0 client: keep-alive only when both sides say so, no chunked bodies.
    private var isHTTP10: Bool { self.version.major == 1 && self.version.minor == 0 }

    /// What every response says in `Connection`: `close` when the connection ends after it,
    /// `keep-alive` to an HTTP/1.0 client that keeps it (which would close otherwise).
    private var connectionField: String? {
        if self.machine.closesAfterResponse { return "close" }
        return self.isHTTP10 ? "keep-alive" : nil
    }

    /// `100 Continue`: the client may send the body.
    private func writeContinue(context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: 25)
        buffer.writeStaticString("HTTP/1.1 100 Continue\r\n\r\n")
        context.writeAndFlush(self.wrapOutboundOut(buffer), promise: nil)
    }

    /// Ends a response of the gateway's own (not an upstream's, see `upstreamRead`).
    private func finishResponse(context: ChannelHandlerContext) {
        self.finishResponse(next: self.machine.responseEnded(now: .now()), trailers: nil, context: context)
    }

    private func finishResponse(next: ConnectionStateMachine.Next, trailers: HTTP1Fields?, context: ChannelHandlerContext) {
        self.logExchange()
        self.responseBody.end(trailers: trailers, to: context)
        switch next {
        case .readNext, .awaitRequestEnd:
            context.flush()
        case .closeAfterFlush:
            self.closeAfterFlush(context: context)
        }
    }

    /// Closes once everything written has gone out; whatever the client pipelined behind goes unanswered.
    private func closeAfterFlush(context: ChannelHandlerContext) {
        self.input = nil
        let channel = context.channel
        context.writeAndFlush(self.wrapOutboundOut(context.channel.allocator.buffer(capacity: 0))).assumeIsolated().whenComplete { _ in
            channel.close(promise: nil)
        }
        // A client that stops reading with less than the write buffer's high-water mark pending
        // never makes the flush complete (nor the channel unwritable): it gets `idle_timeout`.
        let deadline = context.eventLoop.assumeIsolated().scheduleTask(in: self.machine.timeouts.idle) { channel.close(promise: nil) }
        channel.closeFuture.assumeIsolated().whenComplete { _ in deadline.cancel() }
    }

    // MARK: Shutdown

    /// The server is draining: close now if idle, else once the exchange in flight ends (its
    /// response says `Connection: close`).
    func drain() {
        guard let context = self.context else { return }
        switch self.machine.drain(now: .now()) {
        case .closeNow: context.close(promise: nil)
        case .finishExchange: break
        case .endTunnel: self.sendTunnelCloses(.drain, context: context)
        }
    }

    /// Closes the connection whatever it is doing (the grace period is over).
    func close() {
        self.context?.close(promise: nil)
    }
}

// MARK: Upstream side

extension GatewayConnection: UpstreamDelegate {
    func upstreamRead(_ event: HTTP1ResponseEvent) {
        guard let context = self.context, self.upstream != nil else { return }
        switch event {
        case .head(let head):
            if head.status == 101 {
                self.switchProtocols(head, context: context)
                return
            }
            // 100 Continue was answered by the gateway; other 1xx are not relayed.
            if head.status < 200 { return }
            self.log.status = head.status
            self.metrics.countRequest(route: self.log.route, status: self.log.status)
            context.write(self.wrapOutboundOut(self.clientResponseHead(head, allocator: context.channel.allocator)), promise: nil)
        case .body(let buffer):
            self.responseBody.write(buffer, to: context)
        case .end(let trailers):
            guard self.machine.isStreamingResponse else {
                self.upstreamFailed(.badGateway, context: context)
                return
            }
            if let forwardedAt = self.log.forwardedAt {
                let seconds = Double((NIODeadline.now() - forwardedAt).nanoseconds) / 1e9
                self.log.upstreamSeconds = seconds
                self.metrics.observeUpstream(route: self.log.route, seconds: seconds)
            }
            let (reuse, next) = self.machine.upstreamResponseEnded(now: .now())
            if let upstream = self.upstream {
                self.upstream = nil
                if reuse {
                    self.pool.release(upstream)
                } else {
                    upstream.handler.delegate = nil
                    upstream.channel.close(promise: nil)
                }
            }
            self.finishResponse(next: next, trailers: trailers, context: context)
            self.parseInput(context: context)
        }
    }

    /// The upstream's response head as the client gets it, and how its body follows. The parser
    /// hands the body over without its chunk framing; it is framed again, or for an HTTP/1.0 client
    /// (which cannot read chunks) delimited by closing the connection, as is a body the upstream
    /// ended by closing.
    private func clientResponseHead(_ head: HTTP1ResponseHead, allocator: ByteBufferAllocator) -> ByteBuffer {
        let oldClient = self.isHTTP10
        var writer = HeadWriter(status: HTTPResponseStatus(statusCode: head.status), allocator: allocator)
        let facts = HeaderRewriter.writeResponseFields(of: head.fields, dropTransferEncoding: oldClient, to: &writer)
        var closesClient = false
        switch head.framing {
        case .none:
            self.responseBody.framing = .none
        case .length:
            self.responseBody.framing = .raw
        case .chunked where !oldClient:
            self.responseBody.framing = .chunked
        case .untilClose where !oldClient && !facts.chunked:
            writer.add(name: "Transfer-Encoding", value: "chunked")
            self.responseBody.framing = .chunked
        case .chunked, .untilClose:
            // An HTTP/1.0 client cannot read chunks, and a coding other than chunked ends with the
            // connection (RFC 9112 §6.3): the body goes as is, ended by closing.
            self.responseBody.framing = .raw
            closesClient = true
        }
        self.machine.upstreamResponseHead(reusable: head.keepAlive && head.framing != .untilClose, closesClient: closesClient)
        if let connection = self.connectionField { writer.add(name: "Connection", value: connection) }
        return writer.finish()
    }

    func upstreamReadComplete() {
        self.context?.flush()
    }

    func upstreamWritabilityChanged(isWritable: Bool) {
        // The upstream cannot take more of the request body: the machine stops reading the client until it can.
        guard let context = self.context else { return }
        self.machine.upstreamWritabilityChanged(isWritable, now: .now())
        if isWritable {
            // What was held in the client's buffer goes now: no read of the client may come to flush it.
            self.parseInput(context: context)
            self.upstream?.writer.flush()
        } else {
            self.applyReads(context: context)
        }
    }

    func upstreamClosed() {
        guard let context = self.context, self.upstream != nil else { return }
        self.upstream = nil
        if self.tunnel != nil {
            // The upstream ended the tunnel: what it sent reaches the client, then it closes too.
            if self.tunnel?.endReason == nil { self.tunnel?.endReason = .upstream }
            self.closeAfterFlush(context: context)
            return
        }
        self.upstreamFailed(.badGateway, context: context)
    }
}

// MARK: The WebSocket tunnel

extension GatewayConnection {
    /// A 101: a tunnel when the exchange was a handshake and the upstream completed it; any other
    /// 101 is a 502, and both sides close (an upstream tricked into a bare 101 must not open a
    /// raw tunnel).
    private func switchProtocols(_ head: HTTP1ResponseHead, context: ChannelHandlerContext) {
        let now = NIODeadline.now()
        guard let handshake = self.handshake, handshake.isAccepted(by: head.fields), let upstream = self.upstream,
            self.machine.upstreamSwitchedProtocols(now: now)
        else {
            self.dropUpstream()
            guard self.machine.abandon() else {
                context.close(promise: nil)
                return
            }
            self.log.failure = "bad_upgrade"
            self.answer(.badGateway, context: context)
            return
        }
        upstream.handler.startTunnel()
        self.handshake = nil
        self.log.status = 101
        self.metrics.countRequest(route: self.log.route, status: 101)
        self.metrics.tunnelOpened(route: self.log.route)
        self.tunnel = TunnelRelay(openedAt: now, sessionID: self.handshakeSessionID)
        var writer = HeadWriter(status: .switchingProtocols, allocator: context.channel.allocator)
        HeaderRewriter.writeSwitchingFields(of: head.fields, to: &writer)
        context.write(self.wrapOutboundOut(writer.finish()), promise: nil)
        // Frames the client sent right behind its handshake.
        if let input = self.input, input.readableBytes > 0 {
            self.input = nil
            self.relay(input, from: .client, context: context)
            upstream.writer.flush()
        }
        self.input = nil
        self.applyReads(context: context)
        context.flush()
        if self.state.draining { self.drain() }
    }

    /// Bytes from one side go to the other while the tunnel runs (see `TunnelRelay`).
    private func relay(_ bytes: ByteBuffer, from side: TunnelRelay.Side, context: ChannelHandlerContext) {
        guard var relay = self.tunnel, !relay.closing else { return }
        let ending = self.machine.tunnelEnding
        self.machine.tunnelMoved(now: .now())
        let pass: TunnelRelay.Pass
        do {
            pass = try bytes.withUnsafeReadableBytes { bytes throws(WebSocketFrameScanner.Failure) in try relay.pass(bytes, from: side, ending: ending != nil) }
        } catch {
            // Not WebSocket framing: nothing more of it can be relayed.
            if relay.endReason == nil { relay.endReason = side == .client ? .client : .upstream }
            self.tunnel = relay
            self.closeTunnel(context: context)
            return
        }
        // Whoever sends the first close frame ends the tunnel (for the metrics).
        if relay.endReason == nil, relay.sawClose(from: side) { relay.endReason = side == .client ? .client : .upstream }
        self.tunnel = relay
        let passed = bytes.getSlice(at: bytes.readerIndex, length: pass.forward)
        switch side {
        case .client:
            guard let upstream = self.upstream else { break }
            if let passed, pass.forward > 0 { upstream.writer.write(NIOAny(passed), promise: nil) }
            if pass.sendClose, let ending { self.writeClose(ending, toUpstream: upstream) }
        case .upstream:
            if let passed, pass.forward > 0 { context.write(self.wrapOutboundOut(passed), promise: nil) }
            if pass.sendClose, let ending { self.writeClose(ending, context: context) }
        }
        if ending != nil, relay.clientAnsweredClose { self.closeTunnel(context: context) }
    }

    func upstreamTunnelRead(_ bytes: ByteBuffer) {
        guard let context = self.context else { return }
        self.relay(bytes, from: .upstream, context: context)
    }

    /// The gateway ends the tunnel for `reason` (its credentials ended, its session was revoked).
    private func endTunnel(_ reason: ConnectionStateMachine.TunnelEnd, context: ChannelHandlerContext) {
        guard self.machine.endTunnel(reason, now: .now()) else { return }
        self.sendTunnelCloses(reason, context: context)
    }

    /// Sends the close frames that can go now, each side between frames; the others follow their
    /// frame under way (`TunnelRelay.Pass.sendClose`). Both sockets close after the client's close
    /// frame, or after `tunnelCloseGrace` (the sweep).
    private func sendTunnelCloses(_ reason: ConnectionStateMachine.TunnelEnd, context: ChannelHandlerContext) {
        guard var relay = self.tunnel else { return }
        relay.endReason = relay.endReason ?? reason
        let due = relay.closesDue()
        self.tunnel = relay
        if due.toClient { self.writeClose(reason, context: context) }
        if due.toUpstream, let upstream = self.upstream { self.writeClose(reason, toUpstream: upstream) }
        if relay.clientAnsweredClose { self.closeTunnel(context: context) }
    }

    private func writeClose(_ reason: ConnectionStateMachine.TunnelEnd, context: ChannelHandlerContext) {
        let frame = TunnelRelay.closeFrame(for: reason, masked: false)
        var buffer = context.channel.allocator.buffer(capacity: frame.count)
        buffer.writeBytes(frame)
        context.writeAndFlush(self.wrapOutboundOut(buffer), promise: nil)
    }

    private func writeClose(_ reason: ConnectionStateMachine.TunnelEnd, toUpstream upstream: UpstreamConnection) {
        let frame = TunnelRelay.closeFrame(for: reason, masked: true)
        var buffer = upstream.channel.allocator.buffer(capacity: frame.count)
        buffer.writeBytes(frame)
        upstream.writer.writeAndFlush(NIOAny(buffer), promise: nil)
    }

    /// Closes both sides, the client's once what was written to it has gone out.
    private func closeTunnel(context: ChannelHandlerContext) {
        guard self.tunnel?.closing == false else { return }
        self.tunnel?.closing = true
        if let upstream = self.upstream {
            upstream.handler.delegate = nil
            upstream.writer.flush()
            upstream.channel.close(promise: nil)
            self.upstream = nil
        }
        self.closeAfterFlush(context: context)
    }

    /// The client's connection closed with a tunnel on it: counted and logged once.
    private func tunnelEnded(_ tunnel: TunnelRelay) {
        let reason = tunnel.endReason ?? .client
        self.metrics.tunnelClosed(route: self.log.route, reason: reason)
        guard let accessLog = self.state.accessLog else { return }
        let seconds = Double((NIODeadline.now() - tunnel.openedAt).nanoseconds) / 1e9
        var metadata = self.exchangeMetadata()
        metadata["duration_ms"] = .stringConvertible((seconds * 1e6).rounded() / 1e3)
        metadata["bytes_from_client"] = .stringConvertible(tunnel.bytesFromClient)
        metadata["bytes_from_upstream"] = .stringConvertible(tunnel.bytesFromUpstream)
        metadata["reason"] = .string(reason.rawValue)
        accessLog.logger.info("websocket", metadata: metadata)
    }
}

// MARK: Local endpoints (the issuer)

extension GatewayConnection {
    private func beginLocal(_ head: HTTP1RequestHead, path: RequestPath, now: NIODeadline, context: ChannelHandlerContext) {
        guard let local = self.state.authorizer.local else { return }
        self.machine.requestHead(keepAlive: head.keepAlive, plan: .local, now: now)
        if case .length(let declared) = head.framing, declared > local.maximumBodyBytes {
            self.refuseLocalBody(context: context)
            return
        }
        if head.expectsContinue { self.writeContinue(context: context) }
        self.localRequest = LocalRequest(
            head: head.nioHead, path: path.path, query: path.query, body: context.channel.allocator.buffer(capacity: 0), peerAddress: self.peerAddress
        )
    }

    private func readLocalBody(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        guard let local = self.state.authorizer.local, var request = self.localRequest else { return }
        // Taken out while appending, so that the buffer is not copied on write.
        self.localRequest = nil
        guard request.body.readableBytes + buffer.readableBytes <= local.maximumBodyBytes else {
            self.refuseLocalBody(context: context)
            return
        }
        var buffer = buffer
        request.body.writeBuffer(&buffer)
        self.localRequest = request
    }

    /// 413, and the connection closes after it (the rest of the body is not worth reading).
    private func refuseLocalBody(context: ChannelHandlerContext) {
        self.localRequest = nil
        guard self.machine.abandon() else {
            context.close(promise: nil)
            return
        }
        self.log.failure = "payload_too_large"
        self.answer(HTTPError(status: .payloadTooLarge, code: "payload_too_large", description: "the request body is over the limit"), context: context)
    }

    private func respondLocally(context: ChannelHandlerContext) {
        guard let local = self.state.authorizer.local, let request = self.localRequest else { return }
        self.localRequest = nil
        local.respond(to: request, on: context.eventLoop).assumeIsolated().whenComplete { result in
            guard context.channel.isActive, case .exchange(let exchange) = self.machine.state, exchange.response == .workingLocal else { return }
            let response: LocalResponse
            switch result {
            case .success(let answer): response = answer
            case .failure:
                response = LocalResponse(
                    status: .internalServerError, json: HTTPError(status: .internalServerError, code: "server_error", description: "internal error").body
                )
            }
            self.log.status = Int(response.status.code)
            self.metrics.countRequest(route: self.log.route, status: self.log.status)
            var headers = response.headers
            headers.replaceOrAdd(name: "Content-Length", value: String(response.body.count))
            self.writeHead(response.status, headers: headers, context: context)
            if !response.body.isEmpty {
                var body = context.channel.allocator.buffer(capacity: response.body.count)
                body.writeBytes(response.body)
                self.responseBody.write(body, to: context)
            }
            self.finishResponse(context: context)
            self.parseInput(context: context)
        }
    }
}

// MARK: The access log

/// What the access-log line of one exchange says: never the token, never the query.
struct ExchangeLog {
    var requestID = ""
    /// The request target; the log shows its path only (a query may carry secrets).
    var target = ""
    /// The matched route's prefix (`none` when no route matched), for the metrics too.
    var route = "none"
    var status = 0
    var forwardedAt: NIODeadline?
    var upstreamSeconds: Double?
    var userID: String?
    var failure: String?
}

extension GatewayConnection {
    private func logExchange() {
        guard let accessLog = self.state.accessLog else { return }
        accessLog.logger.info("request", metadata: self.exchangeMetadata())
    }

    private func exchangeMetadata() -> Logger.Metadata {
        var metadata: Logger.Metadata = [
            "request_id": .string(self.log.requestID), "method": .string(self.method.rawValue),
            "path": .string(String(self.log.target.prefix { $0 != "?" })), "route": .string(self.log.route),
            "status": .stringConvertible(self.log.status),
        ]
        if let seconds = self.log.upstreamSeconds { metadata["upstream_ms"] = .stringConvertible((seconds * 1e6).rounded() / 1e3) }
        if let userID = self.log.userID { metadata["user_id"] = .string(userID) }
        if let failure = self.log.failure { metadata["reason"] = .string(failure) }
        return metadata
    }
}

@available(*, unavailable)
extension GatewayConnection: Sendable {}

extension HTTP1RequestHead {
    /// The head as NIO's type, for the local endpoints (the issuer reads `HTTPHeaders`; not the hot path).
    var nioHead: HTTPRequestHead {
        var headers = HTTPHeaders()
        headers.reserveCapacity(self.fields.count)
        for index in 0..<self.fields.count { headers.add(name: self.fields.name(at: index), value: self.fields.value(at: index)) }
        return HTTPRequestHead(version: self.version, method: self.method, uri: self.target, headers: headers)
    }
}
