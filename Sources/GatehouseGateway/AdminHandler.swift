// SPDX-License-Identifier: Apache-2.0
public import NIOCore
import NIOHTTP1

/// The admin listener: `GET /healthz` (the process is alive), `GET /readyz` (ready to serve:
/// keys loaded), `GET /metrics` (Prometheus text).
public final class AdminHandler: ChannelInboundHandler {
    public typealias InboundIn = HTTPServerRequestPart
    public typealias OutboundOut = HTTPServerResponsePart

    private let isReady: @Sendable (any EventLoop) -> EventLoopFuture<Bool>
    private let metrics: @Sendable () -> EventLoopFuture<String>
    private var head: HTTPRequestHead?

    public init(isReady: @escaping @Sendable (any EventLoop) -> EventLoopFuture<Bool>, metrics: @escaping @Sendable () -> EventLoopFuture<String>) {
        self.isReady = isReady
        self.metrics = metrics
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break
        case .end:
            guard let head = self.head else { return }
            self.head = nil
            let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
            switch (head.method, path) {
            case (.GET, "/healthz"), (.HEAD, "/healthz"):
                self.respond(context: context, head: head, status: .ok, body: "ok\n")
            case (.GET, "/readyz"), (.HEAD, "/readyz"):
                self.isReady(context.eventLoop).assumeIsolated().whenComplete { result in
                    let ready = (try? result.get()) ?? false
                    self.respond(context: context, head: head, status: ready ? .ok : .serviceUnavailable, body: ready ? "ready\n" : "not ready\n")
                }
            case (.GET, "/metrics"):
                self.metrics().assumeIsolated().whenComplete { result in
                    switch result {
                    case .success(let text):
                        self.respond(context: context, head: head, status: .ok, body: text, type: "text/plain; version=0.0.4")
                    case .failure:
                        self.respond(context: context, head: head, status: .internalServerError, body: "metrics unavailable\n")
                    }
                }
            default:
                self.respond(context: context, head: head, status: .notFound, body: "not found\n")
            }
        }
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead, status: HTTPResponseStatus, body: String, type: String = "text/plain") {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: type)
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
        context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if head.method != .HEAD { context.write(self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil) }
        let channel = context.channel
        let keepAlive = head.isKeepAlive
        context.writeAndFlush(self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            if !keepAlive { channel.close(promise: nil) }
        }
    }
}

@available(*, unavailable)
extension AdminHandler: Sendable {}
