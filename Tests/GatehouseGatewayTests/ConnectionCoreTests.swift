// SPDX-License-Identifier: Apache-2.0
import Foundation
#if canImport(Glibc)
import Glibc
#endif
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

/// Answers every request head `delay` later, with `late`.
final class SlowUpstream: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let delay: TimeAmount
    init(delay: TimeAmount) { self.delay = delay }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard String(buffer: self.unwrapInboundIn(data)).contains("\r\n\r\n") else { return }
        let channel = context.channel
        context.eventLoop.scheduleTask(in: self.delay) {
            channel.writeAndFlush(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate"), promise: nil)
        }
    }
}

/// A listening socket whose one-slot backlog is full and which never accepts: a connection to it
/// waits (its SYNs go unanswered) until the connecting side gives up.
struct UnansweringListener {
    let port: Int
    private let fds: [Int32]

    init() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
        listen(listener, 0)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        self.port = Int(UInt16(bigEndian: address.sin_port))
        // Fill the backlog (a queue of 0 holds one): later connections stay in SYN_SENT.
        var fillers: [Int32] = []
        for _ in 0..<2 {
            let filler = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue), 0)
            _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(filler, $0, length) } }
            fillers.append(filler)
        }
        usleep(100_000)
        self.fds = [listener] + fillers
    }

    func close() { for fd in self.fds { Glibc.close(fd) } }
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

    @Test("an upstream connection that fails after its exchange timed out does not touch the next exchange")
    func lateConnectFailure() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let stuck = try UnansweringListener()
        let slow = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(SlowUpstream(delay: .milliseconds(2500))) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let yaml = """
            access_log: false
            routes:
              - { prefix: /stuck/, upstream: "http://127.0.0.1:\(stuck.port)", auth: public, timeout: 1s, connect_timeout: 2s }
              - { prefix: /slow/, upstream: "http://127.0.0.1:\(slow.localAddress!.port!)", auth: public, timeout: 10s }

            """
        let config = try GatewayConfig.parse(yaml, file: "late.conf", baseDirectory: "/tmp")
        let gateway = try await GatewayServer.start(config: config, group: group, host: "127.0.0.1", port: 0)
        let client = try RawHTTPClient(port: gateway.port, timeoutSeconds: 10)
        try client.send("GET /stuck/x HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try client.readResponse().status == 504)
        // The stuck connect gives up a second later, while this exchange waits for its upstream:
        // that failure belongs to the exchange that timed out, not to this one.
        try client.send("GET /slow/x HTTP/1.1\r\nHost: a\r\n\r\n")
        let response = try client.readResponse()
        #expect(response.status == 200 && response.text == "late", "the next exchange got \(response.status)")
        try await gateway.stop()
        try await slow.close()
        stuck.close()
        try await group.shutdownGracefully()
    }
}
