// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseConfig
import GatehouseCrypto
import GatehouseGateway
import GatehouseJOSE
import GatehouseTestSupport
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing

/// Faults under load, over real sockets: the upstream dies and comes back; the issuer's key rotates.
@Suite("Faults under load", .serialized)
struct FaultTests {
    /// Statuses of requests sent back to back on `threads` threads until `stop` is set, in order per thread.
    final class Load: @unchecked Sendable {
        private let lock = NSLock()
        private var log: [(at: Date, status: Int)] = []
        let stop = Atomic<Bool>(false)

        func record(_ status: Int) { self.lock.withLock { self.log.append((Date(), status)) } }
        var entries: [(at: Date, status: Int)] { self.lock.withLock { self.log } }

        /// Runs `request` on `threads` threads until `stop`; returns when they have all started.
        func run(threads: Int, _ request: @escaping @Sendable () -> Int) {
            for _ in 0..<threads {
                Thread {
                    while !self.stop.load(ordering: .relaxed) { self.record(request()) }
                }.start()
            }
        }
    }

    @Test("the upstream killed during load: 502 while it is down, every request 200 again once it is back")
    func upstreamRestart() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let port = try TestPostgres.freePort()
        // The upstream's accepted connections too, so that killing it closes them as a dying process would.
        let accepted = Mutex<[any Channel]>([])
        var upstream: (any Channel)? = try await HTTPListener.bind(host: "127.0.0.1", port: port, group: group) { channel in
            accepted.withLock { $0.append(channel) }
            return EchoHandler()
        }
        let yaml = """
            access_log: false
            routes:
              - { prefix: /, upstream: "http://127.0.0.1:\(port)", auth: public, connect_timeout: 1s }

            """
        let gateway = try await GatewayServer.start(
            config: try GatewayConfig.parse(yaml, file: "fault.conf", baseDirectory: "/tmp"), group: group, host: "127.0.0.1", port: 0
        )
        let gatewayPort = gateway.port
        let load = Load()
        load.run(threads: 4) { (try? RawHTTPClient.request(port: gatewayPort, "GET", "/orders").status) ?? -1 }
        try await Task.sleep(for: .milliseconds(700))
        // From the moment the kill begins, requests may fail; not before.
        let killed = Date()
        try await upstream?.close()
        upstream = nil
        for channel in accepted.withLock({ $0 }) { try? await channel.close() }
        try await Task.sleep(for: .milliseconds(1000))
        upstream = try await HTTPListener.bind(host: "127.0.0.1", port: port, group: group) { _ in EchoHandler() }
        let restarted = Date()
        try await Task.sleep(for: .milliseconds(1500))
        load.stop.store(true, ordering: .relaxed)
        try await Task.sleep(for: .milliseconds(200))

        let entries = load.entries
        let statuses = Set(entries.map(\.status))
        #expect(statuses.isSubset(of: [200, 502]), "only 200 or 502: \(statuses)")
        #expect(entries.contains { $0.status == 502 }, "the outage was seen")
        #expect(!entries.contains { $0.status == 502 && $0.at < killed }, "502 before the upstream died")
        // Recovery: from 300 ms after the restart on, every request succeeds.
        let late = entries.filter { $0.at > restarted.addingTimeInterval(0.3) }
        #expect(!late.isEmpty && late.allSatisfy { $0.status == 200 }, "\(late.filter { $0.status != 200 }.count) failures after the restart")
        print("upstream restart: \(entries.count) requests, \(entries.filter { $0.status == 502 }.count) × 502 while down, \(late.count) × 200 after")

        try await gateway.stop()
        try await upstream?.close()
        try await group.shutdownGracefully()
    }

    @Test("a signing key rotated during load (new kid published, old kept, then signing with the new): no valid token refused")
    func keyRotation() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let document = JWKSDocument()
        let old = try EVPKey.generate(.ec(.p256))
        let new = try EVPKey.generate(.ec(.p256))
        let helper = JWKSTests()
        document.text.withLock { $0 = try? helper.jwks([(old, "k-old")]) }
        // The JWKS says max-age=300; the gateway learns the new kid when a token names it.
        let endpoint = try await HTTPListener.bind(host: "127.0.0.1", port: 0, group: group) { _ in JWKSEndpoint(document: document) }
        let upstream = try await HTTPListener.bind(host: "127.0.0.1", port: 0, group: group) { _ in EchoHandler() }
        let yaml = """
            access_log: false
            verify:
              issuer: https://idp.test
              algorithms: [ES256]
              typ: any
              keys: { jwks_url: "http://127.0.0.1:\(endpoint.localAddress!.port!)/jwks" }
            routes:
              - { prefix: /, upstream: "http://127.0.0.1:\(upstream.localAddress!.port!)" }

            """
        let gateway = try await GatewayServer.start(
            config: try GatewayConfig.parse(yaml, file: "rotate.conf", baseDirectory: "/tmp"), group: group, host: "127.0.0.1", port: 0
        )
        let gatewayPort = gateway.port
        let signing = Mutex<(EVPKey, String)>((old, "k-old"))
        let load = Load()
        load.run(threads: 4) {
            let (key, kid) = signing.withLock { $0 }
            guard let token = try? helper.token(key, kid: kid) else { return -1 }
            return (try? RawHTTPClient.request(port: gatewayPort, "GET", "/x", headers: [("Authorization", "Bearer \(token)")]).status) ?? -1
        }
        try await Task.sleep(for: .milliseconds(500))
        // Rotation as it is meant to be done: publish the new key beside the old one; the gateway
        // fetches it (here: on the first unknown kid after a refresh; in practice: max-age); only
        // then sign with it.
        document.text.withLock { $0 = try? helper.jwks([(old, "k-old"), (new, "k-new")]) }
        _ = try? RawHTTPClient.request(port: gatewayPort, "GET", "/x", headers: [("Authorization", "Bearer \(try helper.token(new, kid: "k-new"))")])
        var ready = false
        for _ in 0..<50 where !ready {
            try await Task.sleep(for: .milliseconds(20))
            ready = (try? RawHTTPClient.request(port: gatewayPort, "GET", "/x", headers: [("Authorization", "Bearer \(try helper.token(new, kid: "k-new"))")]).status) == 200
        }
        #expect(ready, "the gateway learned the new kid")
        signing.withLock { $0 = (new, "k-new") }
        try await Task.sleep(for: .milliseconds(700))
        load.stop.store(true, ordering: .relaxed)
        try await Task.sleep(for: .milliseconds(200))
        let entries = load.entries
        #expect(entries.count > 100)
        #expect(entries.allSatisfy { $0.status == 200 }, "\(entries.filter { $0.status != 200 }.count) valid tokens refused")
        print("key rotation: \(entries.count) requests with valid tokens during the rotation, \(entries.filter { $0.status != 200 }.count) refused")

        try await gateway.stop()
        try await endpoint.close()
        try await upstream.close()
        try await group.shutdownGracefully()
    }
}
