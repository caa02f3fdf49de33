// SPDX-License-Identifier: Apache-2.0
import GatehouseCrypto
import GatehouseJOSE
public import NIOCore
public import NIOHTTP1

/// `gatehouse echo`: answers every request with the request it saw, as JSON — `method`, `path`
/// (without the query), `query` (raw), `headers` (lower-case name → values in order), `body_bytes`
/// and `body_sha256`. The body is hashed as it streams in, never held.
public final class EchoHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = HTTPServerRequestPart
    public typealias OutboundOut = HTTPServerResponsePart

    private var head: HTTPRequestHead?
    private var digest: DigestStream?
    private var bodyBytes = 0

    public init() {}

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.digest = DigestStream(.sha256)
            self.bodyBytes = 0
        case .body(let buffer):
            self.bodyBytes += buffer.readableBytes
            buffer.withUnsafeReadableBytes { self.digest?.update($0) }
        case .end:
            guard let head = self.head, let digest = self.digest else { return }
            self.respond(context: context, head: head, digest: digest.finish())
            self.head = nil
            self.digest = nil
        }
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead, digest: [UInt8]) {
        let uri = head.uri
        let question = uri.firstIndex(of: "?")
        var headers = JSONObject()
        for (name, value) in head.headers {
            let key = name.lowercased()
            if case .array(let values) = headers[key] {
                headers[key] = .array(values + [.string(value)])
            } else {
                headers[key] = .array([.string(value)])
            }
        }
        let report = JSONObject([
            "method": .string(head.method.rawValue),
            "path": .string(question.map { String(uri[..<$0]) } ?? uri),
            "query": .string(question.map { String(uri[uri.index(after: $0)...]) } ?? ""),
            "headers": .object(headers),
            "body_bytes": .number(Double(self.bodyBytes)),
            "body_sha256": .string(Hex.encode(digest)),
        ])
        let body = context.channel.allocator.buffer(string: report.serialized + "\n")
        var responseHeaders = HTTPHeaders()
        responseHeaders.add(name: "Content-Type", value: "application/json")
        responseHeaders.add(name: "Content-Length", value: String(body.readableBytes))
        let keepAlive = head.isKeepAlive
        if !keepAlive { responseHeaders.add(name: "Connection", value: "close") }
        context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: responseHeaders))), promise: nil)
        if head.method != .HEAD { context.write(self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        let done = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: done)
        let channel = context.channel
        if !keepAlive { done.futureResult.whenComplete { _ in channel.close(promise: nil) } }
    }
}
