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
import NIOSSL
import Synchronization
import Testing

@Suite("Keys from an https jwks_url")
struct JWKSOverHTTPSTests {
    @Test("the chain and the host name are verified, against ca_file or the system's bundle")
    func https() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let certificates = try TestCertificates(subjectAltName: "DNS:localhost")
        let document = JWKSDocument()
        let key = try EVPKey.generate(.ec(.p256))
        let helper = JWKSTests()
        document.text.withLock { $0 = try? helper.jwks([(key, "k1")]) }
        let endpoint = try await bindHTTPSDocument(document, certificates: certificates, group: group)
        let port = endpoint.localAddress!.port!
        let upstream = try await HTTPListener.bind(host: "127.0.0.1", port: 0, group: group) { _ in EchoHandler() }
        let upstreamPort = upstream.localAddress!.port!

        func gateway(_ keys: String) async throws -> GatewayServer {
            let yaml = """
                verify:
                  issuer: https://idp.test
                  algorithms: [ES256]
                  typ: any
                  jwks_startup_timeout: 2s
                  keys: \(keys)
                routes:
                  - { prefix: /, upstream: "http://127.0.0.1:\(upstreamPort)" }

                """
            let config = try GatewayConfig.parse(yaml, file: "jwks.conf", baseDirectory: "/tmp")
            return try await GatewayServer.start(config: config, group: group, host: "127.0.0.1", port: 0)
        }
        func call(_ server: GatewayServer, _ token: String) throws -> Int {
            try RawHTTPClient.request(port: server.port, "GET", "/x", headers: [("Authorization", "Bearer \(token)")]).status
        }
        let token = try helper.token(key, kid: "k1")

        // The certificate names localhost and is signed by the test's CA: trusted through ca_file.
        let trusted = try await gateway("{ jwks_url: \"https://localhost:\(port)/jwks\", ca_file: \"\(certificates.caFile)\" }")
        #expect(trusted.isReady)
        #expect(try call(trusted, token) == 200)
        // The same server reached by an address its certificate does not name: refused.
        let wrongName = try await gateway("{ jwks_url: \"https://127.0.0.1:\(port)/jwks\", ca_file: \"\(certificates.caFile)\" }")
        #expect(!wrongName.isReady)
        #expect(try call(wrongName, token) == 401)
        // The system's bundle does not know the test's CA: refused.
        let untrusted = try await gateway("{ jwks_url: \"https://localhost:\(port)/jwks\" }")
        #expect(!untrusted.isReady)
        #expect(try call(untrusted, token) == 401)
        #expect(document.fetches.load(ordering: .relaxed) == 1, "only the trusted gateway got as far as a request")

        // ca_file goes with an https URL only, and must be readable.
        #expect(throws: ConfigError.self) {
            try GatewayConfig.parse(
                "verify: { issuer: i, algorithms: [ES256], keys: { jwks_url: \"http://localhost/j\", ca_file: \"\(certificates.caFile)\" } }\nroutes: []\n",
                file: "c.conf", baseDirectory: "/tmp"
            )
        }
        #expect(throws: ConfigError.self) {
            try GatewayConfig.parse(
                "verify: { issuer: i, algorithms: [ES256], keys: { jwks_url: \"https://localhost/j\", ca_file: /nonexistent.pem } }\nroutes: []\n",
                file: "c.conf", baseDirectory: "/tmp"
            )
        }

        for server in [trusted, wrongName, untrusted] { try await server.stop() }
        try await endpoint.close()
        try await upstream.close()
        try await group.shutdownGracefully()
    }
}
