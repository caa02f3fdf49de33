// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseTestSupport
import Testing

/// Ten thousand idle clients against a real `gatehouse serve` (its own process, so that the two
/// ends of each connection count against two processes' descriptor limits).
@Suite("10,000 idle connections", .serialized)
struct IdleConnectionsTests {
    static func descriptors(of pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    @Test("the gateway holds them, keeps serving, and releases every descriptor when they go")
    func tenThousandIdle() async throws {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        limit.rlim_cur = limit.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let count = 10_000
        try #require(limit.rlim_max >= rlim_t(count + 500), "the descriptor limit (\(limit.rlim_max)) cannot hold \(count) connections")

        let directory = try temporaryDirectory()
        let (port, echoPort) = (try TestPostgres.freePort(), try TestPostgres.freePort())
        try """
            listen: 127.0.0.1:\(port)
            admin_listen: 127.0.0.1:0
            access_log: false
            idle_timeout: 5m
            routes:
              - { prefix: /, upstream: "http://127.0.0.1:\(echoPort)", auth: public }

            """.write(to: directory.appendingPathComponent("gateway.conf"), atomically: true, encoding: .utf8)
        let echo = try ServeProcess(arguments: ["echo", "--listen", "127.0.0.1:\(echoPort)"], directory: directory)
        defer { _ = echo.stop() }
        #expect(echo.wait(for: "listening"))
        let serve = try ServeProcess(arguments: ["serve"], directory: directory)
        defer { _ = serve.stop() }
        #expect(serve.wait(for: "admin listening"), "\(serve.text)")
        let pid = serve.process.processIdentifier
        // Each event loop keeps its own upstream pool: warm them all, so that the baseline counts
        // the pooled connections a later request reuses.
        for _ in 0..<8 { #expect(try RawHTTPClient.request(port: port, "GET", "/warm").status == 200) }
        try await Task.sleep(for: .milliseconds(200))
        let baseline = Self.descriptors(of: pid)

        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var idle: [Int32] = []
        defer { idle.forEach { close($0) } }
        for _ in 0..<count {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard fd >= 0, connected == 0 else {
                Issue.record("connection \(idle.count) failed: errno \(errno)")
                if fd >= 0 { close(fd) }
                break
            }
            idle.append(fd)
        }
        #expect(idle.count == count)
        // Accepted, each holding a descriptor in the gateway.
        var held = Self.descriptors(of: pid)
        for _ in 0..<100 where held < baseline + count {
            try await Task.sleep(for: .milliseconds(50))
            held = Self.descriptors(of: pid)
        }
        #expect(held >= baseline + count, "the gateway holds \(held - baseline) of \(count)")
        let started = ContinuousClock.now
        #expect(try RawHTTPClient.request(port: port, "GET", "/busy").status == 200)
        let took = ContinuousClock.now - started
        idle.forEach { close($0) }
        idle.removeAll()
        var after = Self.descriptors(of: pid)
        for _ in 0..<150 where after > baseline {
            try await Task.sleep(for: .milliseconds(20))
            after = Self.descriptors(of: pid)
        }
        print("10,000 idle connections: gateway descriptors \(baseline) → \(held) → \(after); a request among them took \(took)")
        #expect(after <= baseline)
    }
}
