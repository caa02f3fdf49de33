// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseConfig
import GatehouseGateway
import GatehouseTestSupport
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing

/// Clients that misbehave on purpose: more smuggling framings, ten thousand idle connections, and
/// clients that vanish in the middle of an upload or a download — with file descriptors counted
/// before and after, so that nothing leaks.
@Suite("Proxy abuse", .serialized)
struct ProxyAbuseTests {
    /// This process's open file descriptors (gateway, upstreams and clients all live here).
    static func openDescriptors() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
    }

    /// Waits up to 3 s for the count to come back to `baseline` (closes are asynchronous).
    static func settles(to baseline: Int) async throws -> Int {
        var now = Self.openDescriptors()
        for _ in 0..<150 where now > baseline {
            try await Task.sleep(for: .milliseconds(20))
            now = Self.openDescriptors()
        }
        return now
    }

    @Test("bare LF line ends and chunked not last are refused before anything is forwarded; a bare LF after a chunk size is a 400 too")
    func bareLineFeeds() async throws {
        try await withLiveGateway { live in
            func refused(_ request: String) throws {
                let client = try RawHTTPClient(port: live.port, timeoutSeconds: 5)
                try client.send(request)
                #expect(try client.readResponse().status == 400, "\(request.debugDescription)")
                #expect(client.isClosedByPeer(), "\(request.debugDescription)")
            }
            let before = live.echoConnections.value.load(ordering: .relaxed)
            for head in [
                "GET /public/x HTTP/1.1\nHost: a\n\n",
                "GET /public/x HTTP/1.1\r\nHost: a\nX-Smuggled: y\r\n\r\n",
                "POST /public/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
            ] { try refused(head) }
            try await Task.sleep(for: .milliseconds(100))
            #expect(live.echoConnections.value.load(ordering: .relaxed) == before, "a refused head reached the upstream")
            // The body comes after a valid head that may already be upstream: the client gets its 400
            // and both connections close, so nothing after the bad chunk can be read as a request.
            try refused("POST /public/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\nGET /public/smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
        }
    }

    @Test("a client that vanishes mid-upload or mid-download: the upstream connection is closed, no descriptor leaks")
    func vanishingClients() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let download = try await HTTPListener.bind(host: "127.0.0.1", port: 0, group: group) { _ in StreamingUpstream(size: 256 << 20) }
        let upload = try await HTTPListener.bind(host: "127.0.0.1", port: 0, group: group) { _ in EchoHandler() }
        let yaml = """
            access_log: false
            routes:
              - { prefix: /down/, upstream: "http://127.0.0.1:\(download.localAddress!.port!)", auth: public }
              - { prefix: /up/, upstream: "http://127.0.0.1:\(upload.localAddress!.port!)", auth: public }

            """
        let config = try GatewayConfig.parse(yaml, file: "abuse.conf", baseDirectory: "/tmp")
        let gateway = try await GatewayServer.start(config: config, group: group, host: "127.0.0.1", port: 0)
        // Warm the upload route's pool with a complete exchange: the baseline counts that pooled
        // connection, which a finished exchange may keep and an abandoned one may not.
        #expect(try RawHTTPClient.request(port: gateway.port, "POST", "/up/x", body: Array("hello".utf8)).status == 200)
        try await Task.sleep(for: .milliseconds(100))
        let baseline = Self.openDescriptors()

        for round in 0..<20 {
            // Mid-upload: a head promising 100 MiB, 1 MiB of it, then gone.
            // (A RawHTTPClient closes its socket when it goes out of scope.)
            do {
                let uploader = try RawHTTPClient(port: gateway.port, timeoutSeconds: 5)
                try uploader.send("POST /up/x HTTP/1.1\r\nHost: a\r\nContent-Length: \(100 << 20)\r\n\r\n")
                try uploader.send([UInt8](repeating: 0x62, count: 1 << 20))
            }
            // Mid-download: the head and a little of 256 MiB, then gone.
            do {
                let downloader = try RawHTTPClient(port: gateway.port, timeoutSeconds: 5)
                try downloader.send("GET /down/x HTTP/1.1\r\nHost: a\r\n\r\n")
                #expect(try downloader.readResponseHead().status == 200, "round \(round)")
                try downloader.discard(64 * 1024)
            }
        }
        let after = try await Self.settles(to: baseline)
        print("vanishing clients: 20 uploads and 20 downloads abandoned; descriptors \(baseline) before, \(after) after")
        #expect(after <= baseline, "upstream connections of abandoned exchanges were kept")
        #expect(try await gateway.openConnections() == 0)

        try await gateway.stop()
        try await download.close()
        try await upload.close()
        try await group.shutdownGracefully()
    }
}
