// SPDX-License-Identifier: Apache-2.0
import GatehouseConfig
import GatehouseHTTP
import GatehouseJOSE
import Logging
import NIOCore
import NIOHTTP1
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One client connection of the gateway: decides each request (`RequestAuthorizer`), answers it
/// itself or forwards it on a pooled upstream connection of the same event loop, streaming bodies
/// both ways with back-pressure (a side that cannot write stops the other side's reads).
///
/// Both sockets carry bytes: responses and upstream requests are serialised here (`HTTPWire`), with
/// no NIO encoder, validator or pipelining handler on the way; requests pipelined behind the one in
/// flight wait in `pipelined`, with the client's reads paused, and run in order once it ends.
/// Confined to its channel's event loop.
final class GatewayHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = ByteBuffer

    private enum Phase {
        /// Waiting for a request head.
        case idle
        /// The gateway answered itself; the rest of the request body is read and dropped.
        case answered
        /// Waiting for an upstream connection; request parts are held (reads are paused).
        case connecting
        /// Request and response flow between client and `upstream`.
        case forwarding
        /// Reading the body of a request for the local endpoints (the issuer).
        case readingLocal
        /// The local endpoints are working on the request.
        case awaitingLocal
        /// The last response closes the connection: whatever the client sent after is ignored,
        /// never taken as a request (the gateway may have refused the framing of what came before).
        case closing
    }

    private let state: LoopState
    private var pool: UpstreamPool { self.state.pool }
    private var cache: TokenCache? { self.state.cache }
    private var metrics: LoopMetrics { self.state.metrics }
    /// The current request's route prefix (`none` when no route matched), for the metrics.
    private var routeLabel = "none"
    private var forwardedAt: NIODeadline?
    /// What the access-log line of the current exchange says.
    private var requestID = ""
    private var method = HTTPMethod.GET
    private var version = HTTPVersion.http1_1
    /// The request target; the log shows its path only (a query may carry secrets).
    private var target = ""
    private var status = 0
    private var upstreamSeconds: Double?
    private var userID: String?
    private var failure: String?
    private let scheme: String
    private var context: ChannelHandlerContext?
    /// The peer's address as text, made once per connection (`X-Forwarded-For`, the issuer's
    /// per-address limits): formatting it costs an `inet_ntop` each time.
    private var peerAddress: String?
    /// The peer is one of `trusted_proxies`: its forwarding headers pass.
    private var peerTrusted = false

    private var phase = Phase.idle
    private var clientKeepAlive = true
    private var requestComplete = false
    private var held: [HTTPServerRequestPart] = []
    /// Parts of requests that arrived while an earlier one was in flight (HTTP/1.1 pipelining).
    private var pipelined: [HTTPServerRequestPart] = []
    /// How the current response's body goes to the client, and the request's to the upstream.
    private var responseBody = BodyWriter(framing: .none)
    private var requestBody = BodyWriter(framing: .none)
    private var upstream: UpstreamConnection?
    private var responseStarted = false
    private var upstreamReusable = false
    /// When the current exchange's upstream must have answered by (the per-loop sweep checks it).
    private var responseDeadline: NIODeadline?
    /// The request for the upstream, serialised, until a connection takes it.
    private var upstreamRequest: ByteBuffer?
    /// Whether the exchange wants the client's reads on (off while waiting for an upstream, or
    /// while the upstream is full), and whether they are paused (also while requests are pipelined).
    private var clientReadsWanted = true
    private var clientReadsPaused = false
    /// The request being read for the local endpoints.
    private var localRequest: LocalRequest?

    init(state: LoopState, scheme: String) {
        self.state = state
        self.scheme = scheme
    }

    /// The connection's head/idle timer, when the listener enforces limits.
    private var headTimeout: HeadTimeoutHandler?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.peerAddress = context.channel.remoteAddress?.ipAddress
        self.peerTrusted = self.peerAddress.map(self.state.trustedProxies.contains) ?? false
        self.headTimeout = try? context.pipeline.syncOperations.handler(type: HeadTimeoutHandler.self)
        self.state.connections[ObjectIdentifier(self)] = self
        if self.state.draining { context.close(promise: nil) }
    }

    /// The exchange is over: wait for the next request head. (When the server drains, `drain()`
    /// turned keep-alive off, so the response just finished closes the connection once flushed.)
    /// Pipelined requests run once the caller has written the end of this response.
    private func enterIdle(context: ChannelHandlerContext) {
        guard self.clientKeepAlive else {
            self.phase = .closing
            self.pipelined.removeAll()
            return
        }
        self.phase = .idle
        if !self.state.draining { self.headTimeout?.waitForHead() }
        if !self.pipelined.isEmpty {
            context.eventLoop.assumeIsolated().execute { self.runPipelined(context: context) }
        }
    }

    /// Hands the held parts over in order, up to a request that must wait for the one in flight.
    private func runPipelined(context: ChannelHandlerContext) {
        while self.context != nil, let part = self.pipelined.first {
            if case .head = part, self.phase != .idle { break }
            self.pipelined.removeFirst()
            self.handle(part, context: context)
        }
        self.applyClientReads(context: context)
    }

    /// The server is draining: close now if idle, else once the exchange in flight ends (its
    /// response says `Connection: close`).
    func drain() {
        guard let context = self.context else { return }
        if self.phase == .idle {
            context.close(promise: nil)
        } else {
            self.clientKeepAlive = false
        }
    }

    /// Closes the connection whatever it is doing (the grace period is over).
    func close() {
        self.context?.close(promise: nil)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.state.connections[ObjectIdentifier(self)] = nil
        self.context = nil
    }

    // MARK: Client side

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard self.phase != .closing else { return }
        let part = self.unwrapInboundIn(data)
        if case .head = part, self.phase != .idle {
            self.pipelined.append(part)
            self.applyClientReads(context: context)
        } else if !self.pipelined.isEmpty {
            self.pipelined.append(part)
        } else {
            self.handle(part, context: context)
        }
    }

    private func handle(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch (self.phase, part) {
        case (.idle, .head(let head)):
            self.begin(head, context: context)
        case (.answered, .end):
            self.requestEnded()
            self.enterIdle(context: context)
            // Its response went out while the connection was to be kept (a drain began since).
            if self.phase == .closing { self.closeAfterFlush(context: context) }
        case (.answered, _):
            break  // the body of a request already answered
        case (.connecting, let part):
            if case .end = part { self.requestEnded() }
            self.held.append(part)
        case (.forwarding, .body(let buffer)):
            if let upstream = self.upstream { self.requestBody.write(buffer, to: upstream.writer) }
        case (.forwarding, .end):
            self.requestEnded()
            if let upstream = self.upstream {
                // Request trailers are dropped: an upstream may merge them into the headers.
                self.requestBody.end(trailers: nil, to: upstream.writer)
                upstream.writer.flush()
            }
        case (.readingLocal, .body(var buffer)):
            self.readLocalBody(&buffer, context: context)
        case (.readingLocal, .end):
            self.requestEnded()
            self.respondLocally(context: context)
        case (.awaitingLocal, _):
            context.close(promise: nil)
        case (.closing, _):
            break
        case (_, .head), (.idle, _):
            // Heads wait in `pipelined` while an exchange runs; anything else is a broken peer.
            context.close(promise: nil)
        }
    }

    /// The request's last part has arrived: its body can no longer stall.
    private func requestEnded() {
        self.requestComplete = true
        self.headTimeout?.requestEnded()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if self.phase == .forwarding { self.upstream?.writer.flush() }
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // The client cannot take more: stop reading the upstream's response until it can.
        self.upstream?.setReads(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    /// Pauses or resumes reading the client for the exchange.
    private func setClientReads(_ on: Bool, context: ChannelHandlerContext) {
        self.clientReadsWanted = on
        self.applyClientReads(context: context)
    }

    /// Reads are on when the exchange wants them and no pipelined request waits; a change of state
    /// only, since each costs an epoll_ctl.
    private func applyClientReads(context: ChannelHandlerContext) {
        let on = self.clientReadsWanted && self.pipelined.isEmpty
        guard self.clientReadsPaused == on else { return }
        self.clientReadsPaused = !on
        self.headTimeout?.clientReads(on)
        context.channel.setOption(ChannelOptions.autoRead, value: on).whenFailure { _ in }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.state.connections[ObjectIdentifier(self)] = nil
        self.dropUpstream()
        self.pipelined.removeAll()
        context.fireChannelInactive()
    }

    /// The decoder refused the request — 431 for an oversized head, 400 for anything else (bad
    /// syntax, both Content-Length and Transfer-Encoding, conflicting lengths, bad chunk sizes) —
    /// answered in the gateway's JSON unless a response is already under way, then the connection
    /// closes: after a framing error nothing on it can be trusted (request smuggling).
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Bytes after a request that asked to close: that request is answered and the connection
        // then closes; the decoder reads no further, so the extra bytes are never taken as requests.
        if let parserError = error as? HTTPParserError, parserError == .closedConnection { return }
        let mayAnswer: Bool
        switch self.phase {
        case .idle, .connecting, .readingLocal: mayAnswer = true
        case .forwarding: mayAnswer = !self.responseStarted
        case .answered, .awaitingLocal, .closing: mayAnswer = false
        }
        guard let parserError = error as? HTTPParserError, mayAnswer else {
            context.close(promise: nil)
            return
        }
        if self.phase == .idle { self.resetExchange(method: .GET, version: .http1_1, requestID: HeaderRewriter.makeRequestID()) }
        self.abandonRequest(
            answering: parserError == .headerOverflow
                ? .headersTooLarge : .invalidRequest("the request is not valid HTTP/1.1 (\(parserError))"),
            context: context
        )
    }

    /// The request body sent nothing for `idle_timeout`: 408 when no answer has begun, else the
    /// connection just closes.
    private func bodyStalled(context: ChannelHandlerContext) {
        let answerable = self.phase == .connecting || self.phase == .readingLocal || (self.phase == .forwarding && !self.responseStarted)
        if answerable {
            self.abandonRequest(answering: .requestTimeout, context: context)
        } else {
            context.close(promise: nil)
        }
    }

    /// Ends the exchange with `error` before its request was read whole; nothing more is read or
    /// forwarded on this connection, which closes after the answer.
    private func abandonRequest(answering error: HTTPError, context: ChannelHandlerContext) {
        self.dropUpstream()
        self.held.removeAll()
        self.pipelined.removeAll()
        self.localRequest = nil
        self.clientKeepAlive = false
        self.phase = .answered
        self.failure = error.code
        self.answer(error, context: context)
    }

    /// Forgets the upstream connection of an exchange cut short: its state is unknown, so it closes.
    private func dropUpstream() {
        self.responseDeadline = nil
        if let upstream = self.upstream {
            upstream.handler.delegate = nil
            upstream.channel.close(promise: nil)
            self.upstream = nil
        }
    }

    /// The access-log fields of a new exchange.
    private func resetExchange(method: HTTPMethod, version: HTTPVersion, requestID: String) {
        self.method = method
        self.version = version
        self.requestID = requestID
        self.target = ""
        self.routeLabel = "none"
        self.upstreamSeconds = nil
        self.userID = nil
        self.failure = nil
        self.requestComplete = false
        self.responseStarted = false
    }

    private func begin(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        self.headTimeout?.headReceived()
        self.clientKeepAlive = head.isKeepAlive
        self.resetExchange(method: head.method, version: head.version, requestID: HeaderRewriter.requestID(of: head.headers))
        self.target = head.uri
        switch self.state.authorizer.decide(head, now: currentTime(), cache: self.cache, revoked: self.state.revoked) {
        case .respond(let error, let route):
            self.routeLabel = route ?? "none"
            if let reason = error.rejection { self.metrics.countRejection(reason) }
            if error.rejection == .unknownKeyID { self.state.onUnknownKeyID?() }
            if error.closesConnection { self.clientKeepAlive = false }
            self.failure = error.rejection?.rawValue ?? error.code
            self.phase = .answered
            self.answer(error, context: context)
        case .local(let route, let path):
            self.routeLabel = route
            self.beginLocal(head, path: path, context: context)
        case .verified(let identity):
            // Forward-auth: the answer is the identity headers on an empty 200.
            self.routeLabel = RequestAuthorizer.verifyPath
            self.userID = identity.userID
            self.phase = .answered
            var headers = HTTPHeaders()
            HeaderRewriter.addIdentity(identity, to: &headers)
            headers.add(name: "Content-Length", value: "0")
            headers.add(name: "Cache-Control", value: "no-store")
            self.status = 200
            self.metrics.countRequest(route: self.routeLabel, status: 200)
            self.writeHead(.ok, headers: headers, context: context)
            self.finishResponse(context: context)
        case .forward(let route, let path, let identity):
            self.routeLabel = route.prefix
            self.userID = identity?.userID
            let upstreamURL = route.upstream
            let defaultPort = upstreamURL.scheme == "https" ? 443 : 80
            let authority = upstreamURL.port == defaultPort ? upstreamURL.host : "\(upstreamURL.host):\(upstreamURL.port)"
            let forwarding = ForwardingContext(
                clientAddress: self.peerAddress ?? "unknown", scheme: self.scheme,
                upstreamAuthority: authority, preserveHost: route.preserveHost, forwardToken: route.forwardToken,
                accessCookie: self.state.authorizer.cookie, trustedPeer: self.peerTrusted
            )
            let target = path.forwardedTarget(stripping: route.stripPrefix ? route.prefix : nil, basePath: upstreamURL.basePath)
            var request = HeadWriter(method: head.method, target: target, allocator: context.channel.allocator)
            let facts = HeaderRewriter.writeRequestFields(of: head.headers, identity: identity, context: forwarding, requestID: self.requestID, to: &request)
            self.upstreamRequest = request.finish()
            self.requestBody.framing = facts.body
            // The gateway answers `Expect: 100-continue` itself once the request is admitted.
            if facts.expectsContinue { self.writeContinue(context: context) }
            self.phase = .connecting
            self.responseDeadline = .now() + .nanoseconds(Int64(route.timeout.seconds * 1e9))
            // A pooled connection completes at once; a new one takes a round trip, during which
            // the client's reads are held so that the body waits in the socket, not in memory.
            self.pool.acquire(
                host: upstreamURL.host, port: upstreamURL.port, tls: upstreamURL.scheme == "https" ? self.state.upstreamTLS[route.prefix] : nil,
                connectTimeout: .nanoseconds(Int64(route.connectTimeout.seconds * 1e9))
            )
                .assumeIsolated()
                .whenComplete { result in
                    switch result {
                    case .success(let connection): self.attach(connection, context: context)
                    case .failure: self.failBeforeResponse(.badGateway, context: context)
                    }
                }
            if self.phase == .connecting { self.setClientReads(false, context: context) }
        }
    }

    private func attach(_ connection: UpstreamConnection, context: ChannelHandlerContext) {
        guard self.phase == .connecting, context.channel.isActive, let request = self.upstreamRequest else {
            // The client left, or the exchange already ended (timeout) while connecting.
            if connection.channel.isActive { self.pool.release(connection) }
            return
        }
        self.upstream = connection
        self.upstreamReusable = false
        self.forwardedAt = .now()
        self.upstreamRequest = nil
        connection.handler.delegate = self
        connection.writeHead(request, method: self.method)
        for part in self.held {
            switch part {
            case .body(let buffer): self.requestBody.write(buffer, to: connection.writer)
            case .end: self.requestBody.end(trailers: nil, to: connection.writer)  // trailers are dropped, as above
            case .head: break
            }
        }
        self.held.removeAll()
        connection.writer.flush()
        self.phase = .forwarding
        connection.setReads(context.channel.isWritable)
        self.setClientReads(self.requestComplete || connection.channel.isWritable, context: context)
    }

    /// Called by the loop's sweep: enforces the response timeout and the head/idle timeouts.
    func sweep(now: NIODeadline) {
        if self.headTimeout?.expire(now: now) == .body, let context = self.context { self.bodyStalled(context: context) }
        if let deadline = self.responseDeadline, now >= deadline, !self.responseStarted, let context = self.context {
            self.responseDeadline = nil
            self.failBeforeResponse(.gatewayTimeout, context: context)
        }
    }

    /// The upstream failed before answering: 502 or 504, and the connection is not reused.
    private func failBeforeResponse(_ error: HTTPError, context: ChannelHandlerContext) {
        guard self.phase == .connecting || self.phase == .forwarding, !self.responseStarted else { return }
        self.dropUpstream()
        self.failure = error.code
        self.held.removeAll()
        if self.requestComplete { self.enterIdle(context: context) } else { self.phase = .answered }
        self.setClientReads(true, context: context)
        self.answer(error, context: context)
    }

    /// Writes one of the gateway's own JSON responses.
    private func answer(_ error: HTTPError, context: ChannelHandlerContext) {
        self.status = Int(error.status.code)
        self.metrics.countRequest(route: self.routeLabel, status: self.status)
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
        if !self.clientKeepAlive { return "close" }
        return self.isHTTP10 ? "keep-alive" : nil
    }

    /// `100 Continue`: the client may send the body.
    private func writeContinue(context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: 25)
        buffer.writeStaticString("HTTP/1.1 100 Continue\r\n\r\n")
        context.writeAndFlush(self.wrapOutboundOut(buffer), promise: nil)
    }

    /// Ends the response; closes the connection when the client did not ask for keep-alive.
    private func finishResponse(context: ChannelHandlerContext, trailers: HTTPHeaders? = nil) {
        self.logExchange()
        self.responseBody.end(trailers: trailers, to: context)
        if self.clientKeepAlive {
            context.flush()
        } else {
            // Whatever the client pipelined behind a closing response goes unanswered.
            self.pipelined.removeAll()
            self.closeAfterFlush(context: context)
        }
    }

    /// Closes the connection once everything written so far has gone out.
    private func closeAfterFlush(context: ChannelHandlerContext) {
        let channel = context.channel
        context.writeAndFlush(self.wrapOutboundOut(context.channel.allocator.buffer(capacity: 0))).assumeIsolated().whenComplete { _ in
            channel.close(promise: nil)
        }
    }
}

// MARK: Upstream side

extension GatewayHandler: UpstreamDelegate {
    func upstreamRead(_ part: HTTPClientResponsePart) {
        guard let context = self.context, self.phase == .forwarding else { return }
        switch part {
        case .head(let head):
            // 100 Continue was answered by the gateway; other 1xx are not relayed.
            if head.status.code < 200 { return }
            self.responseDeadline = nil
            self.responseStarted = true
            self.upstreamReusable = head.isKeepAlive
            self.status = Int(head.status.code)
            self.metrics.countRequest(route: self.routeLabel, status: self.status)
            context.write(self.wrapOutboundOut(self.clientResponseHead(head, allocator: context.channel.allocator)), promise: nil)
        case .body(let buffer):
            self.responseBody.write(buffer, to: context)
        case .end(let trailers):
            guard self.responseStarted else { return }
            if let forwardedAt = self.forwardedAt {
                let seconds = Double((NIODeadline.now() - forwardedAt).nanoseconds) / 1e9
                self.upstreamSeconds = seconds
                self.metrics.observeUpstream(route: self.routeLabel, seconds: seconds)
            }
            let upstream = self.upstream
            self.upstream = nil
            if let upstream {
                if self.upstreamReusable && self.requestComplete {
                    self.pool.release(upstream)
                } else {
                    upstream.handler.delegate = nil
                    upstream.channel.close(promise: nil)
                }
            }
            // A response that ends before its request: read and drop the rest of the body.
            if self.requestComplete { self.enterIdle(context: context) } else { self.phase = .answered }
            self.setClientReads(true, context: context)
            self.finishResponse(context: context, trailers: trailers)
        }
    }

    /// The upstream's response head as the client gets it, and how its body follows. NIO's decoder
    /// hands the body over without its chunk framing; it is framed again, or for an HTTP/1.0 client
    /// (which cannot read chunks) delimited by closing the connection, as is a body the upstream
    /// ended by closing.
    private func clientResponseHead(_ head: HTTPResponseHead, allocator: ByteBufferAllocator) -> ByteBuffer {
        let oldClient = self.isHTTP10
        var writer = HeadWriter(status: head.status, allocator: allocator)
        let facts = HeaderRewriter.writeResponseFields(of: head.headers, dropTransferEncoding: oldClient, to: &writer)
        if !HTTPWire.responseHasBody(status: Int(head.status.code), requestMethod: self.method) {
            self.responseBody.framing = .none
        } else if facts.hasLength && !facts.chunked {
            self.responseBody.framing = .raw
        } else if oldClient {
            self.responseBody.framing = .raw
            self.clientKeepAlive = false
        } else {
            if !facts.chunked { writer.add(name: "Transfer-Encoding", value: "chunked") }
            self.responseBody.framing = .chunked
        }
        if let connection = self.connectionField { writer.add(name: "Connection", value: connection) }
        return writer.finish()
    }

    func upstreamReadComplete() {
        self.context?.flush()
    }

    func upstreamWritabilityChanged(isWritable: Bool) {
        // The upstream cannot take more of the request body: stop reading the client until it can.
        guard self.phase == .forwarding, !self.requestComplete, let context = self.context else { return }
        self.setClientReads(isWritable, context: context)
    }

    func upstreamClosed() {
        guard let context = self.context, self.phase == .forwarding else { return }
        self.upstream = nil
        if self.responseStarted {
            // Mid-response: the only honest end is to close; the client sees a truncated body.
            self.failure = "upstream_closed"
            self.logExchange()
            context.close(promise: nil)
        } else {
            self.failBeforeResponse(.badGateway, context: context)
        }
    }
}

// MARK: Local endpoints (the issuer)

extension GatewayHandler {
    private func beginLocal(_ head: HTTPRequestHead, path: RequestPath, context: ChannelHandlerContext) {
        guard let local = self.state.authorizer.local else { return }
        let declared = head.headers["content-length"].first.flatMap { Int($0) } ?? 0
        if declared > local.maximumBodyBytes {
            self.refuseLocalBody(context: context)
            return
        }
        if head.headers[canonicalForm: "expect"].contains(where: { $0.lowercased() == "100-continue" }) {
            self.writeContinue(context: context)
        }
        self.phase = .readingLocal
        self.localRequest = LocalRequest(
            head: head, path: path.path, query: path.query, body: context.channel.allocator.buffer(capacity: 0),
            peerAddress: self.peerAddress
        )
    }

    private func readLocalBody(_ buffer: inout ByteBuffer, context: ChannelHandlerContext) {
        guard let local = self.state.authorizer.local, var request = self.localRequest else { return }
        // Taken out while appending, so that the buffer is not copied on write.
        self.localRequest = nil
        guard request.body.readableBytes + buffer.readableBytes <= local.maximumBodyBytes else {
            self.refuseLocalBody(context: context)
            return
        }
        request.body.writeBuffer(&buffer)
        self.localRequest = request
    }

    /// 413, and the connection closes after it (the rest of the body is not worth reading).
    private func refuseLocalBody(context: ChannelHandlerContext) {
        self.localRequest = nil
        self.clientKeepAlive = false
        self.phase = .answered
        self.failure = "payload_too_large"
        self.answer(
            HTTPError(status: .payloadTooLarge, code: "payload_too_large", description: "the request body is over the limit"),
            context: context
        )
    }

    private func respondLocally(context: ChannelHandlerContext) {
        guard let local = self.state.authorizer.local, let request = self.localRequest else { return }
        self.localRequest = nil
        self.phase = .awaitingLocal
        local.respond(to: request, on: context.eventLoop).assumeIsolated().whenComplete { result in
            guard self.phase == .awaitingLocal, context.channel.isActive else { return }
            let response: LocalResponse
            switch result {
            case .success(let answer): response = answer
            case .failure:
                response = LocalResponse(
                    status: .internalServerError, json: HTTPError(status: .internalServerError, code: "server_error", description: "internal error").body
                )
            }
            self.status = Int(response.status.code)
            self.metrics.countRequest(route: self.routeLabel, status: self.status)
            var headers = response.headers
            headers.replaceOrAdd(name: "Content-Length", value: String(response.body.count))
            self.writeHead(response.status, headers: headers, context: context)
            if !response.body.isEmpty {
                var body = context.channel.allocator.buffer(capacity: response.body.count)
                body.writeBytes(response.body)
                self.responseBody.write(body, to: context)
            }
            self.enterIdle(context: context)
            self.finishResponse(context: context)
        }
    }
}

extension GatewayHandler {
    /// One access-log line for the exchange: never the token, never the query.
    private func logExchange() {
        guard let log = self.state.accessLog else { return }
        var metadata: Logger.Metadata = [
            "request_id": .string(self.requestID), "method": .string(self.method.rawValue), "path": .string(String(self.target.prefix { $0 != "?" })),
            "route": .string(self.routeLabel), "status": .stringConvertible(self.status),
        ]
        if let seconds = self.upstreamSeconds { metadata["upstream_ms"] = .stringConvertible((seconds * 1e6).rounded() / 1e3) }
        if let userID = self.userID { metadata["user_id"] = .string(userID) }
        if let failure = self.failure { metadata["reason"] = .string(failure) }
        log.logger.info("request", metadata: metadata)
    }
}

@available(*, unavailable)
extension GatewayHandler: Sendable {}

/// Seconds since the epoch, for token time checks.
func currentTime() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}
