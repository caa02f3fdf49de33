// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseConfig
import GatehouseGateway
import GatehouseHTTP
import GatehouseTestSupport
import NIOCore
import NIOPosix
import Synchronization
import Testing

@Suite("The revocation poll feed over https")
struct RevocationPollHTTPSTests {
    @Test("a page from an https issuer is loaded when its certificate is trusted and names the host; never otherwise")
    func pollOverHTTPS() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let certificates = try TestCertificates(subjectAltName: "DNS:localhost")
        // An issuer's /auth/revocations page, served over TLS.
        let document = JWKSDocument()
        let exp = Int(Date().timeIntervalSince1970) + 600
        document.text.withLock { $0 = #"{"cursor":7,"revocations":[{"sid":"ended-1","exp":\#(exp)}],"more":false}"# }
        let endpoint = try await bindHTTPSDocument(document, certificates: certificates, group: group)
        let port = endpoint.localAddress!.port!

        /// Polls `url` trusting `caFile` (nil: the system's bundle) for up to two seconds.
        func poll(_ url: String, caFile: String?) async throws -> RevocationBoard {
            let board = RevocationBoard()
            // The initialiser `serve` uses, from verify.revocation's settings.
            let poller = try RevocationPoller(
                url: UpstreamURL(url)!, secret: "feed-secret", interval: .milliseconds(100), caFile: caFile, board: board, loop: group.next()
            )
            let deadline = Date().addingTimeInterval(2)
            while !board.isReady, Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
            poller.stop()
            return board
        }

        let trusted = try await poll("https://localhost:\(port)/auth/revocations", caFile: certificates.caFile)
        #expect(trusted.isReady && trusted.contains("ended-1"))
        let fetchedByTrusted = document.fetches.load(ordering: .relaxed)
        #expect(fetchedByTrusted >= 1)
        // A name the certificate does not carry, or a CA the system's bundle does not know: nothing
        // is loaded and no request is made, so the secret is never sent.
        let wrongName = try await poll("https://127.0.0.1:\(port)/auth/revocations", caFile: certificates.caFile)
        #expect(!wrongName.isReady && !wrongName.contains("ended-1"))
        let untrusted = try await poll("https://localhost:\(port)/auth/revocations", caFile: nil)
        #expect(!untrusted.isReady && !untrusted.contains("ended-1"))
        #expect(document.fetches.load(ordering: .relaxed) == fetchedByTrusted)

        // ca_file goes with an https url only, and must be readable.
        func feed(_ revocation: String) throws -> GatewayConfig {
            try GatewayConfig.parse(
                "verify: { issuer: i, algorithms: [ES256], keys: { jwks_url: \"https://localhost/j\" }, revocation: \(revocation) }\nroutes: []\n",
                file: "c.conf", baseDirectory: "/tmp"
            )
        }
        let parsed = try feed("{ feed: poll, url: \"https://localhost:\(port)/auth/revocations\", secret: s, ca_file: \"\(certificates.caFile)\" }")
        guard case .poll(_, _, _, let caFile) = parsed.verify.revocation else {
            Issue.record("no poll feed")
            return
        }
        #expect(caFile == certificates.caFile)
        // Not an http(s) URL: refused with the configuration, not when the poller starts.
        #expect(throws: ConfigError.self) { try feed("{ feed: poll, url: \"ftp://localhost/r\", secret: s }") }
        #expect(throws: ConfigError.self) { try feed("{ feed: poll, url: \"http://localhost/r\", secret: s, ca_file: \"\(certificates.caFile)\" }") }
        #expect(throws: ConfigError.self) { try feed("{ feed: poll, url: \"https://localhost/r\", secret: s, ca_file: /nonexistent.pem }") }

        try await endpoint.close()
        try await group.shutdownGracefully()
    }
}
