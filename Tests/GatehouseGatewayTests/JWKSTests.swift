// SPDX-License-Identifier: Apache-2.0
import GatehouseTestSupport
import Foundation
import GatehouseConfig
import GatehouseCrypto
import GatehouseGateway
import GatehouseJOSE
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization
import Testing

/// What the test JWKS endpoint serves: a document, or failure.
final class JWKSDocument: Sendable {
    let text = Mutex<String?>(nil)
    let fetches = Atomic<Int>(0)
}

/// Serves `document` with `Cache-Control: max-age=300`, or 503 when it is nil.
final class JWKSEndpoint: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let document: JWKSDocument

    init(document: JWKSDocument) { self.document = document }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = self.unwrapInboundIn(data) else { return }
        self.document.fetches.add(1, ordering: .relaxed)
        let text = self.document.text.withLock { $0 }
        var headers = HTTPHeaders()
        let body = text ?? "down"
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        headers.add(name: "Cache-Control", value: "public, max-age=300")
        headers.add(name: "Connection", value: "close")
        context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: text == nil ? .serviceUnavailable : .ok, headers: headers))), promise: nil)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(self.wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}

/// Serves `document` over TLS with `certificates`' server certificate (signed by the test CA).
func bindHTTPSDocument(_ document: JWKSDocument, certificates: TestCertificates, group: any EventLoopGroup) async throws -> any Channel {
    let tls = try NIOSSLContext(
        configuration: .makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificates.serverCertificateFile).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: certificates.serverKeyFile, format: .pem))
        )
    )
    return try await ServerBootstrap(group: group)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                try channel.pipeline.syncOperations.addHandler(JWKSEndpoint(document: document))
            }
        }
        .bind(host: "127.0.0.1", port: 0).get()
}

@Suite("Keys from jwks_url")
struct JWKSTests {
    func token(_ key: EVPKey, kid: String) throws -> String {
        try Signer(material: .asymmetric(key), algorithm: .es256, keyID: kid).sign(
            JSONObject(["iss": .string("https://idp.test"), "sub": .string("u1"), "exp": .number(Date().timeIntervalSince1970 + 600)]),
            type: nil
        )
    }

    func jwks(_ keys: [(EVPKey, String)]) throws -> String {
        JWKS(keys: try keys.map { JWK(key: try $0.0.publicKey(), keyID: $0.1, algorithm: .es256) }).serialized
    }

    @Test("fetched before serving; an unknown kid triggers one refetch; the last good keys survive the endpoint going down")
    func lifecycle() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let document = JWKSDocument()
        let first = try EVPKey.generate(.ec(.p256))
        let second = try EVPKey.generate(.ec(.p256))
        document.text.withLock { $0 = try? self.jwks([(first, "k1")]) }
        let endpoint = try await HTTPListener.bind(host: "127.0.0.1", port: 0, group: group) { _ in JWKSEndpoint(document: document) }
        let upstream = try await HTTPListener.bind(host: "127.0.0.1", port: 0, group: group) { _ in EchoHandler() }
        let yaml = """
            verify:
              issuer: https://idp.test
              algorithms: [ES256]
              typ: any
              keys: { jwks_url: "http://127.0.0.1:\(endpoint.localAddress!.port!)/.well-known/jwks.json" }
            routes:
              - { prefix: /, upstream: "http://127.0.0.1:\(upstream.localAddress!.port!)" }

            """
        let config = try GatewayConfig.parse(yaml, file: "jwks.conf", baseDirectory: "/tmp")
        let gateway = try await GatewayServer.start(config: config, group: group, host: "127.0.0.1", port: 0)
        #expect(gateway.isReady && document.fetches.load(ordering: .relaxed) == 1, "keys were fetched before the listener opened")
        func call(_ token: String) throws -> RawHTTPClient.Response {
            try RawHTTPClient.request(port: gateway.port, "GET", "/x", headers: [("Authorization", "Bearer \(token)")])
        }
        #expect(try call(self.token(first, kid: "k1")).status == 200)

        // Rotation: the IdP adds k2. The first token with k2 is refused and triggers a refetch.
        document.text.withLock { $0 = try? self.jwks([(first, "k1"), (second, "k2")]) }
        let rotated = try self.token(second, kid: "k2")
        let refused = try call(rotated)
        #expect(refused.status == 401 && refused.json?["error_description"] as? String == "unknown_kid")
        var status = 0
        for _ in 0..<50 where status != 200 {
            try await Task.sleep(for: .milliseconds(50))
            status = try call(rotated).status
        }
        #expect(status == 200, "the refetched key set verifies the new kid")
        #expect(document.fetches.load(ordering: .relaxed) == 2)
        // More unknown kids within 5 s do not hammer the endpoint.
        for _ in 0..<5 { _ = try call(self.token(second, kid: "k-unknown")) }
        try await Task.sleep(for: .milliseconds(200))
        #expect(document.fetches.load(ordering: .relaxed) == 2, "refetches are rate-limited")

        // The endpoint goes down: the last good keys keep serving.
        document.text.withLock { $0 = nil }
        try await endpoint.close()
        #expect(try call(self.token(first, kid: "k1")).status == 200)
        #expect(try call(rotated).status == 200)

        try await gateway.stop()
        try await upstream.close()
        try await group.shutdownGracefully()
    }

    @Test("with the endpoint down at start, the gateway serves anyway and /readyz says 503 until keys arrive")
    func startsWithoutKeys() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let document = JWKSDocument()
        let endpoint = try await HTTPListener.bind(host: "127.0.0.1", port: 0, group: group) { _ in JWKSEndpoint(document: document) }
        let yaml = """
            verify:
              issuer: https://idp.test
              algorithms: [ES256]
              jwks_startup_timeout: 300ms
              keys: { jwks_url: "http://127.0.0.1:\(endpoint.localAddress!.port!)/jwks" }
            routes:
              - { prefix: /, upstream: "http://127.0.0.1:9" }

            """
        let config = try GatewayConfig.parse(yaml, file: "jwks.conf", baseDirectory: "/tmp")
        let started = ContinuousClock.now
        let gateway = try await GatewayServer.start(config: config, group: group, host: "127.0.0.1", port: 0)
        #expect(ContinuousClock.now - started < .seconds(3))
        let admin = try await gateway.startAdmin(host: "127.0.0.1", port: 0, group: group)
        let adminPort = admin.localAddress!.port!
        #expect(try RawHTTPClient.request(port: adminPort, "GET", "/readyz").status == 503)
        let publicKey = try EVPKey.generate(.ec(.p256)).publicKey()
        document.text.withLock { $0 = JWKS(keys: [JWK(key: publicKey, keyID: "k1")]).serialized }
        var ready = 503
        for _ in 0..<60 where ready != 200 {
            try await Task.sleep(for: .milliseconds(100))
            ready = try RawHTTPClient.request(port: adminPort, "GET", "/readyz").status
        }
        #expect(ready == 200, "the retry (1 s after the failure) loaded the keys")
        let metrics = try RawHTTPClient.request(port: adminPort, "GET", "/metrics").text
        let errors = metrics.split(separator: "\n").first { $0.hasPrefix(#"gatehouse_jwks_refresh_total{result="error"} "#) }
            .flatMap { Int($0.split(separator: " ")[1]) } ?? 0
        #expect(metrics.contains(#"gatehouse_jwks_refresh_total{result="ok"} 1"#) && errors >= 1, "one success after one or more failures")
        try await admin.close()
        try await gateway.stop()
        try await endpoint.close()
        try await group.shutdownGracefully()
    }
}
