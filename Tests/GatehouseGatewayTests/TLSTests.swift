// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseConfig
import GatehouseGateway
import GatehouseTestSupport
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Testing

/// TLS on the listener and to https upstreams, with a CA, server and client certificates the test
/// makes; the client is curl.
@Suite("TLS")
struct TLSTests {
    /// `gatehouse echo` behind TLS; with `clientCA`, it demands a client certificate from that CA.
    static func tlsEcho(_ certificates: TestCertificates, clientCA: String?, group: any EventLoopGroup) async throws -> any Channel {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificates.serverCertificateFile).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: certificates.serverKeyFile, format: .pem))
        )
        if let clientCA {
            configuration.certificateVerification = .noHostnameVerification
            configuration.trustRoots = .file(clientCA)
        }
        let context = try NIOSSLContext(configuration: configuration)
        return try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(EchoHandler())
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    /// curl's status and body for `url`, trusting `caFile`.
    static func curl(_ url: String, caFile: String) throws -> (status: Int, body: String) {
        try Curl.run(["--cacert", caFile, url])
    }

    @Test("the listener terminates TLS; https upstreams are verified; mutual TLS with a client certificate")
    func tls() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let certificates = try TestCertificates(subjectAltName: "DNS:localhost,IP:127.0.0.1")
        let upstream = try await Self.tlsEcho(certificates, clientCA: nil, group: group)
        let mutual = try await Self.tlsEcho(certificates, clientCA: certificates.caFile, group: group)
        let (port, mutualPort) = (upstream.localAddress!.port!, mutual.localAddress!.port!)
        let yaml = """
            listen: 127.0.0.1:0
            access_log: false
            tls: { cert_file: "\(certificates.serverCertificateFile)", key_file: "\(certificates.serverKeyFile)" }
            routes:
              - { prefix: /trusted/, upstream: "https://localhost:\(port)", auth: public, upstream_tls: { ca_file: "\(certificates.caFile)" } }
              - { prefix: /system/, upstream: "https://localhost:\(port)", auth: public }
              - prefix: /mutual/
                upstream: "https://localhost:\(mutualPort)"
                auth: public
                upstream_tls: { ca_file: "\(certificates.caFile)", cert_file: "\(certificates.clientCertificateFile)", key_file: "\(certificates.clientKeyFile)" }
              - { prefix: /anonymous/, upstream: "https://localhost:\(mutualPort)", auth: public, upstream_tls: { ca_file: "\(certificates.caFile)" } }

            """
        let config = try GatewayConfig.parse(yaml, file: "tls.conf", baseDirectory: "/tmp")
        let gateway = try await GatewayServer.start(config: config, group: group, host: "127.0.0.1", port: 0)
        let base = "https://127.0.0.1:\(gateway.port)"

        // Through TLS on both sides: the upstream sees https as the client's scheme, and its own name as Host.
        let trusted = try Self.curl(base + "/trusted/orders", caFile: certificates.caFile)
        #expect(trusted.status == 200)
        let echoed = try JSONSerialization.jsonObject(with: Data(trusted.body.utf8)) as? [String: Any]
        let headers = echoed?["headers"] as? [String: [String]]
        #expect(headers?["x-forwarded-proto"] == ["https"])
        #expect(headers?["host"] == ["localhost:\(port)"])
        // A second request reuses the pooled TLS connection and still works.
        #expect(try Self.curl(base + "/trusted/again", caFile: certificates.caFile).status == 200)
        // The system's bundle does not trust the test's CA: 502.
        let untrusted = try Self.curl(base + "/system/orders", caFile: certificates.caFile)
        #expect(untrusted.status == 502 && untrusted.body.contains("bad_gateway"))
        // Mutual TLS: with the client certificate 200, without it the upstream refuses: 502.
        #expect(try Self.curl(base + "/mutual/orders", caFile: certificates.caFile).status == 200)
        #expect(try Self.curl(base + "/anonymous/orders", caFile: certificates.caFile).status == 502)
        // Plain HTTP on the TLS listener gets no HTTP answer.
        let plain = try RawHTTPClient(port: gateway.port, timeoutSeconds: 5)
        try plain.send("GET /trusted/x HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(throws: (any Error).self) { try plain.readResponse() }

        // upstream_tls belongs to https upstreams; certificate files must be readable.
        #expect(throws: ConfigError.self) {
            try GatewayConfig.parse(
                "routes:\n  - { prefix: /, upstream: \"http://localhost:1\", auth: public, upstream_tls: { ca_file: \"\(certificates.caFile)\" } }\n",
                file: "c.conf", baseDirectory: "/tmp"
            )
        }
        #expect(throws: ConfigError.self) {
            try GatewayConfig.parse("tls: { cert_file: /nonexistent.pem, key_file: /nonexistent.key }\nroutes: []\n", file: "c.conf", baseDirectory: "/tmp")
        }

        try await gateway.stop()
        try await upstream.close()
        try await mutual.close()
        try await group.shutdownGracefully()
    }
}
