// SPDX-License-Identifier: Apache-2.0
import GatehouseGateway
import GatehouseTestSupport
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

/// Answers every request with a chunked body — `parts` chunks of the request's path — and a
/// trailer; HEAD gets the head only.
final class ChunkedUpstream: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private var head: HTTPRequestHead?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break
        case .end:
            guard let head = self.head else { return }
            var headers = HTTPHeaders()
            headers.add(name: "Transfer-Encoding", value: "chunked")
            headers.add(name: "Trailer", value: "X-Checksum")
            context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
            if head.method != .HEAD {
                for _ in 0..<3 { context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: head.uri)))), promise: nil) }
            }
            context.writeAndFlush(self.wrapOutboundOut(.end(["X-Checksum": "42"])), promise: nil)
        }
    }
}

/// Answers the first request with a body that ends when the connection closes (no length, no
/// chunks), as an HTTP/1.0 server would.
final class CloseDelimitedUpstream: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private var received = ""

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.received += String(buffer: self.unwrapInboundIn(data))
        guard self.received.contains("\r\n\r\n") else { return }
        let response = ByteBuffer(string: "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
        let channel = context.channel
        context.writeAndFlush(self.wrapOutboundOut(response)).whenComplete { _ in channel.close(promise: nil) }
    }
}

@Suite("Bytes on the wire: pipelining and body framing through the gateway")
struct WireFramingTests {
    @Test("pipelined requests are answered in order, whether forwarded or refused, on one connection")
    func pipelining() async throws {
        try await withLiveGateway { live in
            let client = try RawHTTPClient(port: live.port, timeoutSeconds: 5)
            try client.send(
                "GET /public/first HTTP/1.1\r\nHost: a\r\n\r\n"
                    + "GET /api/refused HTTP/1.1\r\nHost: a\r\n\r\n"
                    + "POST /public/third HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
                    + "GET /api/fourth HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer \(try live.token())\r\n\r\n"
            )
            let first = try client.readResponse()
            #expect(first.status == 200 && first.json?["path"] as? String == "/base/first")
            let refused = try client.readResponse()
            #expect(refused.status == 401 && refused.json?["error_description"] as? String == "no bearer token")
            let third = try client.readResponse()
            #expect(third.status == 200 && third.json?["path"] as? String == "/base/third" && third.json?["body_bytes"] as? Int == 5)
            let fourth = try client.readResponse()
            #expect(fourth.status == 200 && fourth.json?["path"] as? String == "/api/fourth")
            #expect((fourth.json?["headers"] as? [String: [String]])?["x-user-id"] == ["7"])
            // The connection still serves afterwards.
            try client.send("GET /public/fifth HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(try client.readResponse().json?["path"] as? String == "/base/fifth")
        }
    }

    @Test("a request asking to close ends the connection: what was pipelined behind it is not answered")
    func pipelinedBehindClose() async throws {
        try await withLiveGateway { live in
            let client = try RawHTTPClient(port: live.port, timeoutSeconds: 5)
            try client.send(
                "GET /public/last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                    + "GET /public/never HTTP/1.1\r\nHost: a\r\n\r\n"
            )
            let last = try client.readResponse()
            #expect(last.status == 200 && last.header("connection") == "close" && last.json?["path"] as? String == "/base/last")
            #expect(client.isClosedByPeer())
        }
    }

    @Test("an HTTP/1.0 client that asks for keep-alive is told so and keeps its connection")
    func http10KeepAlive() async throws {
        try await withLiveGateway { live in
            let client = try RawHTTPClient(port: live.port, timeoutSeconds: 5)
            for path in ["one", "two"] {
                try client.send("GET /public/\(path) HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
                let response = try client.readResponse()
                #expect(response.status == 200 && response.header("connection") == "keep-alive")
                #expect(response.json?["path"] as? String == "/base/\(path)")
            }
            // Without the header, HTTP/1.0 means one request per connection.
            let once = try RawHTTPClient(port: live.port, timeoutSeconds: 5)
            try once.send("GET /api/x HTTP/1.0\r\n\r\n")
            let refused = try once.readResponse()
            #expect(refused.status == 401 && refused.header("connection") == "close")
            #expect(once.isClosedByPeer())
        }
    }

    @Test("a chunked request body reaches the upstream whole, framed again")
    func chunkedRequest() async throws {
        try await withLiveGateway { live in
            let client = try RawHTTPClient(port: live.port, timeoutSeconds: 5)
            try client.send("POST /public/upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n")
            let response = try client.readResponse()
            #expect(response.status == 200 && response.json?["body_bytes"] as? Int == 11)
            // sha256("hello world")
            #expect(response.json?["body_sha256"] as? String == "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9")
        }
    }

    @Test("a chunked response is relayed with its trailer; HEAD gets no body and the connection stays in step")
    func chunkedResponse() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let upstream = try await HTTPListener.bind(host: "127.0.0.1", port: 0, group: group) { _ in ChunkedUpstream() }
        try await withLiveGateway(routes: "  - { prefix: /chunked/, upstream: \"http://127.0.0.1:\(upstream.localAddress!.port!)\", auth: public }\n") { live in
            let client = try RawHTTPClient(port: live.port, timeoutSeconds: 5)
            try client.send("GET /chunked/abc HTTP/1.1\r\nHost: a\r\n\r\n")
            let response = try client.readResponse()
            #expect(response.status == 200 && response.header("transfer-encoding") == "chunked")
            #expect(String(decoding: response.body, as: UTF8.self) == "/chunked/abc/chunked/abc/chunked/abc")
            #expect(response.header("trailer") == nil, "a hop-by-hop header")

            try client.send("HEAD /chunked/head HTTP/1.1\r\nHost: a\r\n\r\n")
            let head = try client.readResponse(head: true)
            #expect(head.status == 200)
            try client.send("GET /chunked/after HTTP/1.1\r\nHost: a\r\n\r\n")
            let after = try client.readResponse()
            #expect(String(decoding: after.body, as: UTF8.self) == "/chunked/after/chunked/after/chunked/after")

            // An HTTP/1.0 client cannot read chunks: the body ends with the connection instead.
            let old = try RawHTTPClient(port: live.port, timeoutSeconds: 5)
            try old.send("GET /chunked/old HTTP/1.0\r\nHost: a\r\n\r\n")
            let plain = try old.readResponse()
            #expect(plain.status == 200 && plain.header("transfer-encoding") == nil && plain.header("connection") == "close")
            #expect(String(decoding: plain.body, as: UTF8.self) == "/chunked/old/chunked/old/chunked/old")
        }
        try await upstream.close()
        try await group.shutdownGracefully()
    }

    @Test("a body the upstream ends by closing reaches an HTTP/1.1 client chunked, complete")
    func closeDelimitedResponse() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let upstream = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(CloseDelimitedUpstream()) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        try await withLiveGateway(routes: "  - { prefix: /old/, upstream: \"http://127.0.0.1:\(upstream.localAddress!.port!)\", auth: public }\n") { live in
            let client = try RawHTTPClient(port: live.port, timeoutSeconds: 5)
            try client.send("GET /old/x HTTP/1.1\r\nHost: a\r\n\r\n")
            let response = try client.readResponse()
            #expect(response.status == 200 && response.header("transfer-encoding") == "chunked")
            #expect(String(decoding: response.body, as: UTF8.self) == "until the end")
            try client.send("GET /public/next HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(try client.readResponse().json?["path"] as? String == "/base/next")
        }
        try await upstream.close()
        try await group.shutdownGracefully()
    }
}
