// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseConfig
import GatehouseGateway
import GatehouseHTTP
import GatehouseTestSupport
import NIOCore
import NIOPosix
import Testing

/// An upstream that answers every request head with its response and, in the same write, a second
/// response nobody asked for (response splitting, a broken upstream).
final class SplittingUpstream: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private var pending: [UInt8] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.pending += Array(buffer: self.unwrapInboundIn(data))
        while let end = self.pending.firstRange(of: Array("\r\n\r\n".utf8)) {
            self.pending.removeSubrange(..<end.upperBound)
            context.writeAndFlush(
                self.wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngoodHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil")),
                promise: nil
            )
        }
    }
}

/// A value crossing to another thread on purpose: the test's sender writes, its reader reads.
final class Handed<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// Found by the review of the one-handler core: each over real sockets.
@Suite("The connection core over real sockets", .serialized)
struct ConnectionCoreTests {
    @Test("20 000 requests to the local endpoints pipelined in one go are all answered, in order, without nesting calls")
    func pipelinedLocalRequests() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let config = try GatewayConfig.parse("access_log: false\nroutes: []\n", file: "local.conf", baseDirectory: "/tmp")
        let gateway = try await GatewayServer.start(config: config, verifiers: [], group: group, host: "127.0.0.1", port: 0, local: BodySizeEndpoints())
        let client = try RawHTTPClient(port: gateway.port, timeoutSeconds: 30)
        let count = 20_000
        // Each answer is ready at once (a succeeded future): handling one used to parse the next
        // from inside it, one stack frame deeper per pipelined request.
        let batch = String(repeating: "GET /local/x HTTP/1.1\r\nHost: a\r\n\r\n", count: count)
        let sender = Handed(client)
        let sent = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            try? sender.value.send(batch)
            sent.signal()
        }
        var answered = 0
        while answered < count, let response = try? client.readResponse(), response.status == 200, response.json?["body_bytes"] as? Int == 0 {
            answered += 1
        }
        sent.wait()
        #expect(answered == count)
        try await gateway.stop()
        try await group.shutdownGracefully()
    }

    @Test("bytes an upstream sends after its response never answer the next pipelined request")
    func upstreamBytesAfterTheResponse() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let upstream = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(SplittingUpstream()) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let yaml = """
            access_log: false
            routes:
              - { prefix: /, upstream: "http://127.0.0.1:\(upstream.localAddress!.port!)", auth: public }

            """
        let config = try GatewayConfig.parse(yaml, file: "split.conf", baseDirectory: "/tmp")
        let gateway = try await GatewayServer.start(config: config, group: group, host: "127.0.0.1", port: 0)
        let client = try RawHTTPClient(port: gateway.port, timeoutSeconds: 5)
        try client.send(String(repeating: "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", count: 3))
        for index in 0..<3 {
            let response = try client.readResponse()
            #expect(response.status == 200 && response.text == "good", "response \(index): \(response.text)")
        }
        try await gateway.stop()
        try await upstream.close()
        try await group.shutdownGracefully()
    }
}
