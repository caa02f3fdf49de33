// SPDX-License-Identifier: Apache-2.0
import GatehouseConfig
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// One GET over HTTP or HTTPS, for the gateway's own fetches (JWKS documents, the revocation
/// feed): the body (`maximumBytes` at most) and its `Cache-Control: max-age`. A connection per
/// fetch. HTTPS verifies the certificate chain and the host name (or, for an IP address, the
/// certificate's IP addresses).
enum HTTPFetch {
    struct Document: Sendable {
        let text: String
        let maxAge: Int?
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// GETs `target` (default: the URL's path) from `url`'s host, with `authorization` as the
    /// `Authorization` header when given; `tls` is required for https URLs.
    static func get(
        _ url: UpstreamURL, target: String? = nil, authorization: String? = nil, tls: NIOSSLContext? = nil, on loop: any EventLoop,
        timeout: TimeAmount, maximumBytes: Int = 1 << 20
    ) -> EventLoopFuture<Document> {
        guard url.scheme == "http" || tls != nil else { return loop.makeFailedFuture(Failure(description: "https needs a TLS context")) }
        let promise = loop.makePromise(of: Document.self)
        let timer = loop.scheduleTask(in: timeout) { promise.fail(Failure(description: "no answer within \(timeout)")) }
        promise.futureResult.whenComplete { _ in timer.cancel() }
        ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if url.scheme == "https", let tls {
                        let name = TLSContexts.serverName(url.host)
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: name))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(CollectingHandler(promise: promise, maximumBytes: maximumBytes))
                }
            }
            .connect(host: url.host, port: url.port)
            .whenComplete { result in
                switch result {
                case .failure(let error): promise.fail(error)
                case .success(let channel):
                    var headers = HTTPHeaders()
                    headers.add(name: "Host", value: url.port == (url.scheme == "https" ? 443 : 80) ? url.host : "\(url.host):\(url.port)")
                    headers.add(name: "Accept", value: "application/json")
                    if let authorization { headers.add(name: "Authorization", value: authorization) }
                    headers.add(name: "Connection", value: "close")
                    let uri = target ?? (url.basePath.isEmpty ? "/" : url.basePath)
                    let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: uri, headers: headers)
                    channel.write(HTTPClientRequestPart.head(head), promise: nil)
                    channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
                    promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
                }
            }
        return promise.futureResult
    }

    private final class CollectingHandler: ChannelInboundHandler {
        typealias InboundIn = HTTPClientResponsePart

        let promise: EventLoopPromise<Document>
        let maximumBytes: Int
        private var status: HTTPResponseStatus?
        private var maxAge: Int?
        private var body: [UInt8] = []

        init(promise: EventLoopPromise<Document>, maximumBytes: Int) {
            self.promise = promise
            self.maximumBytes = maximumBytes
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch self.unwrapInboundIn(data) {
            case .head(let head):
                self.status = head.status
                self.maxAge = Self.maxAge(head.headers)
            case .body(let buffer):
                self.body += buffer.readableBytesView
                if self.body.count > self.maximumBytes {
                    self.promise.fail(Failure(description: "the response is larger than \(self.maximumBytes) bytes"))
                    context.close(promise: nil)
                }
            case .end:
                guard self.status == .ok else {
                    self.promise.fail(Failure(description: "answered \(self.status?.code ?? 0)"))
                    return
                }
                self.promise.succeed(Document(text: String(decoding: self.body, as: UTF8.self), maxAge: self.maxAge))
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.promise.fail(Failure(description: "the connection closed early"))
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            self.promise.fail(error)
            context.close(promise: nil)
        }

        static func maxAge(_ headers: HTTPHeaders) -> Int? {
            for directive in headers[canonicalForm: "cache-control"] where directive.lowercased().hasPrefix("max-age=") {
                return Int(directive.dropFirst("max-age=".count))
            }
            return nil
        }
    }
}
