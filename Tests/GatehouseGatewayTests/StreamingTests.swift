// SPDX-License-Identifier: Apache-2.0
import GatehouseTestSupport
import Foundation
import GatehouseConfig
import GatehouseGateway
import GatehouseJOSE
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing

/// An upstream that answers every request with `size` bytes, written as fast as its socket takes
/// them (it waits for writability, so it never buffers more than one chunk itself).
final class StreamingUpstream: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let size: Int
    /// Close the connection after this many body bytes instead of finishing (nil: finish).
    let dieAfter: Int?
    private var remaining = 0
    private var written = 0
    private var chunk: ByteBuffer?

    init(size: Int, dieAfter: Int? = nil) {
        self.size = size
        self.dieAfter = dieAfter
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = self.unwrapInboundIn(data) else { return }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Length", value: String(self.size))
        context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
        self.remaining = self.size
        self.chunk = context.channel.allocator.buffer(repeating: 0x61, count: 64 * 1024)
        self.pump(context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { self.pump(context: context) }
    }

    private func pump(context: ChannelHandlerContext) {
        guard var chunk = self.chunk else { return }
        while self.remaining > 0, context.channel.isWritable {
            if let dieAfter = self.dieAfter, self.written >= dieAfter {
                context.flush()
                context.close(promise: nil)
                self.chunk = nil
                return
            }
            let count = min(self.remaining, chunk.readableBytes)
            context.write(self.wrapOutboundOut(.body(.byteBuffer(chunk.getSlice(at: chunk.readerIndex, length: count)!))), promise: nil)
            self.remaining -= count
            self.written += count
            chunk.moveReaderIndex(to: chunk.readerIndex)
        }
        context.flush()
        if self.remaining == 0 {
            self.chunk = nil
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}

/// An upstream that reads request bodies slowly: it stops reading for `pause` after the first chunk.
final class SlowSink: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let pause: TimeAmount
    private var received = 0
    private var paused = false

    init(pause: TimeAmount) { self.pause = pause }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head: break
        case .body(let buffer):
            self.received += buffer.readableBytes
            if !self.paused {
                self.paused = true
                let channel = context.channel
                channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
                context.eventLoop.scheduleTask(in: self.pause) {
                    channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
                }
            }
        case .end:
            var headers = HTTPHeaders()
            let body = "\(self.received)"
            headers.add(name: "Content-Length", value: String(body.utf8.count))
            context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
            context.write(self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}

/// Resident set size of this process, bytes.
func residentBytes() -> Int {
    let fields = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8))?.split(separator: " ") ?? []
    return (fields.count > 1 ? Int(fields[1]) ?? 0 : 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
}

@Suite("Streaming with back-pressure, over real sockets")
struct StreamingTests {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)

    private func gateway(upstreamPort: Int) async throws -> GatewayServer {
        let yaml = "routes:\n  - { prefix: /, upstream: \"http://127.0.0.1:\(upstreamPort)\", auth: public, timeout: 60s }\n"
        let config = try GatewayConfig.parse(yaml, file: "streaming.conf", baseDirectory: "/tmp")
        return try await GatewayServer.start(config: config, verifiers: [], group: self.group, host: "127.0.0.1", port: 0)
    }

    @Test("a 512 MiB download through a client that stops reading does not grow the gateway's memory")
    func download() async throws {
        let size = 512 << 20
        let upstream = try await HTTPListener.bind(host: "127.0.0.1", port: 0, group: self.group) { _ in StreamingUpstream(size: size) }
        let gateway = try await self.gateway(upstreamPort: upstream.localAddress!.port!)
        let client = try RawHTTPClient(port: gateway.port, timeoutSeconds: 30)
        try client.send("GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        let before = residentBytes()
        // Stop reading for a second: without back-pressure the gateway would buffer what the
        // upstream sends meanwhile (hundreds of MiB on loopback).
        try await Task.sleep(for: .seconds(1))
        let stalled = residentBytes()
        let response = try client.readStreamingResponse()
        #expect(response.status == 200 && response.bodyBytes == size)
        #expect(stalled - before < 64 << 20, "grew \((stalled - before) >> 20) MiB while the client did not read")
        try await gateway.stop()
        try await upstream.close()
        try await self.group.shutdownGracefully()
    }

    @Test("a 256 MiB upload to an upstream that stops reading does not grow the gateway's memory")
    func upload() async throws {
        let size = 256 << 20
        let upstream = try await HTTPListener.bind(host: "127.0.0.1", port: 0, group: self.group) { _ in SlowSink(pause: .seconds(1)) }
        let gateway = try await self.gateway(upstreamPort: upstream.localAddress!.port!)
        let client = try RawHTTPClient(port: gateway.port, timeoutSeconds: 30)
        let before = residentBytes()
        try client.send("POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: \(size)\r\n\r\n")
        let chunk = [UInt8](repeating: 0x62, count: 1 << 20)
        var peak = 0
        for _ in 0..<(size >> 20) {
            try client.send(chunk)
            peak = max(peak, residentBytes())
        }
        let response = try client.readResponse()
        #expect(response.status == 200 && response.text == String(size))
        #expect(peak - before < 64 << 20, "grew \((peak - before) >> 20) MiB while the upstream did not read")
        try await gateway.stop()
        try await upstream.close()
        try await self.group.shutdownGracefully()
    }

    @Test("an upstream that dies mid-response ends the client's response: the connection closes, short")
    func upstreamDiesMidResponse() async throws {
        let upstream = try await HTTPListener.bind(host: "127.0.0.1", port: 0, group: self.group) { _ in
            StreamingUpstream(size: 10 << 20, dieAfter: 1 << 20)
        }
        let gateway = try await self.gateway(upstreamPort: upstream.localAddress!.port!)
        let client = try RawHTTPClient(port: gateway.port, timeoutSeconds: 10)
        try client.send("GET /dies HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(throws: RawHTTPClient.Failure.self) { try client.readStreamingResponse() }
        // The gateway still serves new connections afterwards.
        let healthy = try await HTTPListener.bind(host: "127.0.0.1", port: 0, group: self.group) { _ in StreamingUpstream(size: 10) }
        try await gateway.stop()
        let next = try await self.gateway(upstreamPort: healthy.localAddress!.port!)
        #expect(try RawHTTPClient.request(port: next.port, "GET", "/ok").body.count == 10)
        try await next.stop()
        try await healthy.close()
        try await upstream.close()
        try await self.group.shutdownGracefully()
    }
}

extension RawHTTPClient {
    struct StreamedResponse {
        let status: Int
        let bodyBytes: Int
    }

    /// Reads a Content-Length response without keeping its body (for very large ones).
    func readStreamingResponse() throws -> StreamedResponse {
        let head = try self.readResponseHead()
        guard let length = head.header("content-length").flatMap(Int.init) else { throw Failure.malformed("no length") }
        try self.discard(length)
        return StreamedResponse(status: head.status, bodyBytes: length)
    }
}

/// Answers each request after a delay.
final class DelayedResponder: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let delay: TimeAmount

    init(delay: TimeAmount) { self.delay = delay }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = self.unwrapInboundIn(data) else { return }
        let channel = context.channel
        context.eventLoop.assumeIsolated().scheduleTask(in: self.delay) {
            var headers = HTTPHeaders()
            headers.add(name: "Content-Length", value: "4")
            channel.write(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)), promise: nil)
            channel.write(HTTPServerResponsePart.body(.byteBuffer(channel.allocator.buffer(string: "done"))), promise: nil)
            channel.writeAndFlush(HTTPServerResponsePart.end(nil), promise: nil)
        }
    }
}

/// When something happened, once.
final class Moment: Sendable {
    private let instant = Mutex<ContinuousClock.Instant?>(nil)
    func record() { self.instant.withLock { $0 = $0 ?? .now } }
    var value: ContinuousClock.Instant? { self.instant.withLock { $0 } }
}

@Suite("Draining on SIGTERM")
struct DrainTests {
    /// A gateway on two loops in front of an upstream that answers after `upstreamDelay`.
    static func gateway(upstreamDelay: TimeAmount) async throws -> (MultiThreadedEventLoopGroup, any Channel, GatewayServer) {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let upstream = try await HTTPListener.bind(host: "127.0.0.1", port: 0, group: group) { _ in DelayedResponder(delay: upstreamDelay) }
        let yaml = "routes:\n  - { prefix: /, upstream: \"http://127.0.0.1:\(upstream.localAddress!.port!)\", auth: public }\n"
        let config = try GatewayConfig.parse(yaml, file: "drain.conf", baseDirectory: "/tmp")
        let gateway = try await GatewayServer.start(config: config, verifiers: [], group: group, host: "127.0.0.1", port: 0)
        return (group, upstream, gateway)
    }

    @Test("in-flight requests finish with Connection: close, idle connections close, new ones are refused")
    func drain() async throws {
        let (group, upstream, gateway) = try await Self.gateway(upstreamDelay: .seconds(2))
        let port = gateway.port

        let idle = try RawHTTPClient(port: port, timeoutSeconds: 10)
        try idle.send("GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try idle.readResponse().status == 200)
        let busy = try RawHTTPClient(port: port, timeoutSeconds: 10)
        try busy.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        try await Task.sleep(for: .milliseconds(100))

        let started = ContinuousClock.now
        // Started synchronously (blocking socket reads in this test can hold the cooperative
        // threads a task would need), then finished by drain(grace:) below.
        let began = gateway.beginDrain()
        #expect(idle.isClosedByPeer(), "an idle keep-alive connection closes at once")
        #expect(throws: (any Error).self, "the listener no longer accepts") {
            let late = try RawHTTPClient(port: port, timeoutSeconds: 2)
            try late.send("GET /late HTTP/1.1\r\nHost: a\r\n\r\n")
            _ = try late.readResponse()
        }
        let response = try busy.readResponse()
        #expect(response.status == 200 && response.text == "done" && response.header("connection") == "close")
        #expect(busy.isClosedByPeer())
        try await began.get()
        try await gateway.drain(grace: .seconds(8))
        #expect(ContinuousClock.now - started < .seconds(7), "drain ends when the last exchange does, not at the grace")
        #expect(try await gateway.openConnections() == 0)
        try await upstream.close()
        try await group.shutdownGracefully()
    }

    @Test("the drain is woken by the last connection's close; an exchange longer than the grace is cut off at the grace")
    func graceRunsOut() async throws {
        let (group, upstream, gateway) = try await Self.gateway(upstreamDelay: .seconds(30))
        // No connection: nothing to wait for.
        try await gateway.allConnectionsClosed().get()

        let busy = try RawHTTPClient(port: gateway.port, timeoutSeconds: 10)
        try busy.send("GET /forever HTTP/1.1\r\nHost: a\r\n\r\n")
        try await Task.sleep(for: .milliseconds(100))
        let closed = gateway.allConnectionsClosed()
        let woken = Moment()
        closed.whenSuccess { woken.record() }
        try await Task.sleep(for: .milliseconds(200))
        #expect(woken.value == nil, "a connection is open")

        let started = ContinuousClock.now
        try await gateway.drain(grace: .seconds(1))
        let took = ContinuousClock.now - started
        #expect(took >= .milliseconds(900) && took < .seconds(5), "drain returned after \(took), the grace being 1 s")
        #expect(throws: (any Error).self, "the exchange was cut off without a response") { try busy.readResponse() }
        try await closed.get()
        let wokenAt = try #require(woken.value)
        #expect(wokenAt - started < .seconds(5))
        #expect(try await gateway.openConnections() == 0)
        try await upstream.close()
        try await group.shutdownGracefully()
    }
}
