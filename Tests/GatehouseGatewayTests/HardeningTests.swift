// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseConfig
import GatehouseCrypto
import GatehouseGateway
import GatehouseHTTP
import GatehouseJOSE
import GatehouseTestSupport
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing

/// The bytes a raw upstream received, over all its connections, and how many connections it took.
final class WireRecord: Sendable {
    let bytes = Mutex<[UInt8]>([])
    let connections = Atomic<Int>(0)

    var text: String { String(decoding: self.bytes.withLock { $0 }, as: UTF8.self) }
}

/// An upstream that records every byte it receives and answers `200` with a two-byte body as soon
/// as it has seen a request head — before reading any body, as many servers do.
final class RecordingUpstream: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let record: WireRecord
    private var answered = false

    init(record: WireRecord) { self.record = record }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = self.unwrapInboundIn(data)
        let all = self.record.bytes.withLock { bytes in
            bytes += buffer.readableBytesView
            return bytes
        }
        guard !self.answered, String(decoding: all, as: UTF8.self).contains("\r\n\r\n") else { return }
        self.answered = true
        context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")), promise: nil)
    }
}

/// Local endpoints that answer `/local/…` with the size of the body they were handed.
struct BodySizeEndpoints: LocalEndpoints {
    func route(for path: String) -> String? { path.hasPrefix("/local/") ? "/local/" : nil }
    var maximumBodyBytes: Int { 1 << 20 }
    func respond(to request: LocalRequest, on eventLoop: any EventLoop) -> EventLoopFuture<LocalResponse> {
        eventLoop.makeSucceededFuture(LocalResponse(status: .ok, json: "{\"body_bytes\":\(request.body.readableBytes)}"))
    }
    func checkReady(on eventLoop: any EventLoop) -> EventLoopFuture<Bool> { eventLoop.makeSucceededFuture(true) }
    var metricsText: String { "" }
}

/// What an audit found to get past the gateway (issue "Hardening II"), each tried over real
/// sockets against a running gateway: these tests guard whatever connection core serves them.
@Suite("Hardening: ways past the gateway, closed", .serialized)
struct HardeningTests {
    /// A live gateway whose `/raw/` route leads to a `RecordingUpstream`.
    func withRecordingGateway(topLevel: String = "", routes: String = "", _ body: (LiveGateway, WireRecord) async throws -> Void) async throws {
        let record = WireRecord()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let upstream = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                record.connections.add(1, ordering: .relaxed)
                return channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(RecordingUpstream(record: record)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let raw = "http://127.0.0.1:\(upstream.localAddress!.port!)"
        do {
            try await withLiveGateway(topLevel: topLevel, routes: "  - { prefix: /raw/, upstream: \"\(raw)\", auth: public }\n" + routes) { live in
                try await body(live, record)
            }
        } catch {
            try await upstream.close()
            try await group.shutdownGracefully()
            throw error
        }
        try await upstream.close()
        try await group.shutdownGracefully()
    }

    @Test("CONNECT and TRACE: 405 with Allow and Connection: close as soon as the head is read; nothing reaches the upstream")
    func connectAndTrace() async throws {
        try await self.withRecordingGateway { live, record in
            for head in [
                // The smuggling shape: a length the decoder would not read, then a request with forged identity.
                "CONNECT /raw/x HTTP/1.1\r\nHost: a\r\nContent-Length: 60\r\n\r\n",
                "CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n",
                "TRACE /raw/x HTTP/1.1\r\nHost: a\r\n\r\n",
                "TRACE /raw/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
                "trace /raw/x HTTP/1.1\r\nHost: a\r\n\r\n",
            ] {
                let client = try RawHTTPClient(port: live.port, timeoutSeconds: 5)
                try client.send(head + "GET /raw/smuggled HTTP/1.1\r\nHost: a\r\nX-User-Id: 1\r\n\r\n")
                let response: RawHTTPClient.Response
                do { response = try client.readResponse() } catch {
                    Issue.record("\(head.debugDescription): no answer (\(error))")
                    continue
                }
                // A lower-case method is no method of HTTP's (case-sensitive), and a CONNECT's target
                // must be host:port (RFC 9112 §3.2.3): the parser refuses both as malformed.
                let expected = head.hasPrefix("trace") || head.hasPrefix("CONNECT /") ? 400 : 405
                #expect(response.status == expected, "\(head.debugDescription)")
                if expected == 405 {
                    #expect(response.json?["error"] as? String == "method_not_allowed", "\(head.debugDescription)")
                    #expect(response.header("allow")?.contains("GET") == true && response.header("allow")?.contains("TRACE") == false)
                    #expect(response.header("connection")?.lowercased() == "close")
                }
                #expect(client.isClosedByPeer(), "\(head.debugDescription): the connection stays open")
            }
            try await Task.sleep(for: .milliseconds(100))
            #expect(record.connections.load(ordering: .relaxed) == 0, "a CONNECT or TRACE reached the upstream: \(record.text.debugDescription)")
        }
    }

    @Test("a chunked request's trailers never reach the upstream; its body does")
    func requestTrailersDropped() async throws {
        try await self.withRecordingGateway { live, record in
            let client = try RawHTTPClient(port: live.port, timeoutSeconds: 5)
            try client.send(
                "POST /raw/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
                    + "X-User-Id: 1\r\nAuthorization: Bearer forged\r\nHost: evil.test\r\nX-Harmless: y\r\n\r\n"
            )
            #expect(try client.readResponse().status == 200)
            var seen = ""
            for _ in 0..<50 where !seen.hasSuffix("0\r\n\r\n") {
                try await Task.sleep(for: .milliseconds(20))
                seen = record.text
            }
            #expect(seen.contains("hello"), "the body was forwarded")
            #expect(seen.hasSuffix("\r\n0\r\n\r\n"), "the upstream received a trailer section: \(seen.debugDescription)")
            for forged in ["X-User-Id: 1", "Bearer forged", "evil.test", "X-Harmless"] {
                #expect(!seen.contains(forged), "\(forged) reached the upstream in a trailer")
            }
        }
    }

    @Test("paths an upstream may read differently (;, %3B, %2F, \\, %5C) get 400; the query is free; routes may keep them")
    func pathHazards() async throws {
        let routes = """
              - { prefix: /jsession/, upstream: "$ECHO", auth: public, semicolons: keep }
              - { prefix: /vhost/, upstream: "$ECHO", auth: public, encoded_slashes: keep }
              - { prefix: /app/, upstream: "$ECHO", auth: public, semicolons: keep }
              - { prefix: /app/admin/, upstream: "$ECHO", any_role: [admin] }

            """
        try await withLiveGateway(routes: routes) { live in
            func get(_ target: String) throws -> RawHTTPClient.Response {
                let client = try RawHTTPClient(port: live.port, timeoutSeconds: 5)
                try client.send("GET \(target) HTTP/1.1\r\nHost: a\r\n\r\n")
                return try client.readResponse()
            }
            for target in [
                "/public/..;/admin/x", "/public/a;b", "/public/a%3Bb", "/public/a%3bb", "/public/a%2Fb", "/public/a%2fb",
                "/public/a%5Cb", "/public/a%5cb", "/public/a\\b", "/api/..%2f..%2fadmin", "/jsession/a%2Fb", "/vhost/a;b",
                // No route keeps a backslash; kept `;` must not move a path under a guarded route as
                // Tomcat reads it (`/app/admin/users`).
                "/vhost/a%5Cb", "/vhost/..%5Cadmin", "/app/admin;x/users", "/app/;x/admin/users", "/app/admin%3Bx/users",
            ] {
                let response = try get(target)
                #expect(response.status == 400 && response.json?["error"] as? String == "invalid_request", "\(target)")
            }
            // The query is not the path; other escapes pass as before.
            let query = try get("/public/a?x=;%2F%5C&y=%3B")
            #expect(query.status == 200 && query.json?["query"] as? String == "x=;%2F%5C&y=%3B")
            #expect(try get("/public/a%25b").json?["path"] as? String == "/base/a%25b")
            // semicolons: keep — forwarded as sent, and `..;` is still a dot segment (as Tomcat reads
            // it), so it cannot leave the route unseen: climbing into /admin/, which does not keep
            // semicolons, is refused.
            #expect(try get("/jsession/a;jsessionid=1/b").json?["path"] as? String == "/jsession/a;jsessionid=1/b")
            #expect(try get("/jsession/a%3Bv=1").json?["path"] as? String == "/jsession/a%3Bv=1")
            #expect(try get("/jsession/x/..;/y").json?["path"] as? String == "/jsession/y")
            #expect(try get("/jsession/..;/admin/x").status == 400)
            // encoded_slashes: keep — %2F stays encoded and is no separator.
            #expect(try get("/vhost/%2f/queue").json?["path"] as? String == "/vhost/%2F/queue")
            #expect(try get("/app/a;v=1/b").json?["path"] as? String == "/app/a;v=1/b")
        }
    }

    @Test("a body that stalls for idle_timeout is cut off on every path: 408 before an answer, a close after one")
    func stalledBodies() async throws {
        try await self.withRecordingGateway(topLevel: "idle_timeout: 1s\n") { live, _ in
            func stalled(_ head: String, expecting status: Int, _ what: String) throws {
                let client = try RawHTTPClient(port: live.port, timeoutSeconds: 6)
                let started = Date()
                try client.send(head + "0123456789")
                let response = try client.readResponse()
                #expect(response.status == status, "\(what)")
                if status == 408 { #expect(response.json?["error"] as? String == "request_timeout", "\(what)") }
                #expect(client.isClosedByPeer(), "\(what): the connection stayed open")
                let elapsed = Date().timeIntervalSince(started)
                #expect(elapsed > 0.8 && elapsed < 5, "\(what): cut off after \(elapsed) s")
            }
            // A forwarded upload whose upstream waits for the whole body.
            try stalled("POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n", expecting: 408, "forwarded upload")
            // A chunked upload stalls inside a chunk.
            try stalled("POST /public/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n", expecting: 408, "chunked upload")

            // Answered at once (401), then its body is read and dropped: the close comes after the
            // idle timeout, not never.
            let refused = try RawHTTPClient(port: live.port, timeoutSeconds: 6)
            let started = Date()
            try refused.send("POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789")
            #expect(try refused.readResponse().status == 401)
            #expect(refused.isClosedByPeer(), "the body of an answered request kept the connection forever")
            #expect(Date().timeIntervalSince(started) < 5)

            // The upstream answered before the body (RecordingUpstream): the client goes on uploading,
            // then stalls.
            let early = try RawHTTPClient(port: live.port, timeoutSeconds: 6)
            try early.send("POST /raw/x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789")
            #expect(try early.readResponse().status == 200)
            #expect(early.isClosedByPeer(), "an upload after the upstream answered kept the connection forever")
        }
    }

    @Test("a stalled body at the local endpoints (the issuer's) gets 408 too")
    func stalledLocalBody() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let config = try GatewayConfig.parse("idle_timeout: 1s\naccess_log: false\nroutes: []\n", file: "local.conf", baseDirectory: "/tmp")
        let gateway = try await GatewayServer.start(config: config, verifiers: [], group: group, host: "127.0.0.1", port: 0, local: BodySizeEndpoints())
        let whole = try RawHTTPClient.request(port: gateway.port, "POST", "/local/x", body: Array("hello".utf8))
        #expect(whole.status == 200 && whole.json?["body_bytes"] as? Int == 5)
        let client = try RawHTTPClient(port: gateway.port, timeoutSeconds: 6)
        try client.send("POST /local/x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789")
        let response = try client.readResponse()
        #expect(response.status == 408 && response.json?["error"] as? String == "request_timeout")
        #expect(client.isClosedByPeer())
        try await gateway.stop()
        try await group.shutdownGracefully()
    }

    @Test("/auth/verify answers all four identity headers, empty when the token has no such claim")
    func verifyAnswersFourHeaders() async throws {
        try await withLiveGateway { live in
            let bare = try live.token(omitting: ["roles", "scope"])
            let response = try RawHTTPClient.request(port: live.port, "GET", "/auth/verify", headers: [("Authorization", "Bearer \(bare)")])
            #expect(response.status == 200)
            #expect(response.headers("x-user-id") == ["7"])
            for name in ["x-user-role", "x-user-roles", "x-user-scopes"] {
                #expect(response.headers(name) == [""], "\(name) must be answered, empty, so that a copying proxy overwrites the client's")
            }
            let full = try RawHTTPClient.request(port: live.port, "GET", "/auth/verify", headers: [("Authorization", "Bearer \(try live.token())")])
            #expect(full.headers("x-user-role") == ["viewer"] && full.headers("x-user-scopes") == ["content:read,profile:read"])
        }
    }

    @Test("forwarding headers spelled with _ (X_Real_IP, read as HTTP_X_REAL_IP by CGI-style servers) never pass")
    func underscoredForwardingHeaders() async throws {
        try await withLiveGateway(topLevel: "trusted_proxies: [127.0.0.0/8]\n") { live in
            let sent = [
                ("X_Real_IP", "10.9.9.9"), ("X_Original_URL", "/admin"), ("X_Rewrite_URL", "/admin"), ("X_Forwarded_Port", "1"),
                ("X_Forwarded_Prefix", "/p"), ("x_forwarded_for", "10.9.9.9"), ("X_Forwarded_Proto", "https"), ("X_Forwarded_Host", "evil"),
                ("X_Request_Id", "forged"), ("x_user_id", "1"),
            ]
            let seen = try RawHTTPClient.request(port: live.port, "GET", "/public/x", headers: sent)
            let headers = try #require(seen.json?["headers"] as? [String: [String]])
            for (name, _) in sent { #expect(headers[name.lowercased()] == nil, "\(name) reached the upstream") }
            #expect(headers["x-forwarded-for"] == ["127.0.0.1"])
        }
    }

    @Test("a client that takes nothing of a response for idle_timeout is disconnected, and so is the upstream")
    func stalledReader() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let download = try await HTTPListener.bind(host: "127.0.0.1", port: 0, group: group) { _ in StreamingUpstream(size: 256 << 20) }
        let yaml = """
            access_log: false
            idle_timeout: 1s
            routes:
              - { prefix: /down/, upstream: "http://127.0.0.1:\(download.localAddress!.port!)", auth: public }

            """
        let config = try GatewayConfig.parse(yaml, file: "stall.conf", baseDirectory: "/tmp")
        let gateway = try await GatewayServer.start(config: config, group: group, host: "127.0.0.1", port: 0)
        let client = try RawHTTPClient(port: gateway.port, timeoutSeconds: 5)
        try client.send("GET /down/x HTTP/1.1\r\nHost: a\r\n\r\n")
        var open = 1
        for _ in 0..<60 where open > 0 {
            try await Task.sleep(for: .milliseconds(100))
            open = try await gateway.openConnections()
        }
        #expect(open == 0, "a client that reads nothing held its connection")
        withExtendedLifetime(client) {}
        try await gateway.stop()
        try await download.close()
        try await group.shutdownGracefully()
    }

    static let clientForwardingHeaders = [
        ("Forwarded", "for=10.9.9.9;host=admin.internal"), ("X-Real-IP", "10.9.9.9"), ("X-Forwarded-Port", "8443"),
        ("X-Forwarded-Prefix", "/admin"), ("X-Original-URL", "/admin/delete"), ("X-Rewrite-URL", "/admin/delete"),
    ]

    @Test("a client's forwarding headers are removed unless the peer is a trusted proxy")
    func forwardingHeaders() async throws {
        try await withLiveGateway { live in
            let seen = try RawHTTPClient.request(port: live.port, "GET", "/public/x", headers: Self.clientForwardingHeaders)
            let headers = try #require(seen.json?["headers"] as? [String: [String]])
            for (name, _) in Self.clientForwardingHeaders {
                #expect(headers[name.lowercased()] == nil, "\(name) reached the upstream from an untrusted client")
            }
            #expect(headers["x-forwarded-for"] == ["127.0.0.1"])
        }
        try await withLiveGateway(topLevel: "trusted_proxies: [127.0.0.0/8]\n") { live in
            let seen = try RawHTTPClient.request(port: live.port, "GET", "/public/x", headers: Self.clientForwardingHeaders)
            let headers = try #require(seen.json?["headers"] as? [String: [String]])
            for (name, value) in Self.clientForwardingHeaders {
                #expect(headers[name.lowercased()] == [value], "\(name) from a trusted proxy must pass")
            }
        }
    }

    @Test("two Host fields are refused (400), so preserve_host never forwards two")
    func duplicateHost() async throws {
        try await withLiveGateway { live in
            for path in ["/kept/x", "/public/x"] {
                let response = try RawHTTPClient.request(port: live.port, "GET", path, headers: [("Host", "a.test"), ("Host", "b.test")])
                #expect(response.status == 400, "\(path)")
            }
            let kept = try RawHTTPClient.request(port: live.port, "GET", "/kept/x", headers: [("Host", "a.test")])
            #expect((kept.json?["headers"] as? [String: [String]])?["host"] == ["a.test"])
        }
    }

    @Test("forward_token: false removes the gateway's access cookie from Cookie, and keeps the others")
    func accessCookieNotForwarded() async throws {
        try await withLiveGateway { live in
            let token = try live.token()
            func cookies(_ header: String, path: String = "/public/x") throws -> [String]? {
                let response = try RawHTTPClient.request(port: live.port, "GET", path, headers: [("Cookie", header)])
                return (response.json?["headers"] as? [String: [String]])?["cookie"]
            }
            #expect(try cookies("a=1; access_token=\(token); b=2") == ["a=1; b=2"])
            #expect(try cookies("access_token=\(token)") == nil)
            #expect(try cookies("access_token_x=1;access_token=\(token)") == ["access_token_x=1"])
            // Where the token is forwarded, the cookie is too.
            #expect(try cookies("a=1; access_token=\(token)", path: "/api/x") == ["a=1; access_token=\(token)"])
        }
    }

    @Test("a hostile revocation feed page is an error like an unreachable feed: counted, retried, the last good list kept")
    func hostileFeedPages() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let document = JWKSDocument()
        let endpoint = try await HTTPListener.bind(host: "127.0.0.1", port: 0, group: group) { _ in JWKSEndpoint(document: document) }
        let exp = Int(Date().timeIntervalSince1970) + 600
        func page(cursor: Int, sid: String) -> String {
            "{\"cursor\": \(cursor), \"revocations\": [{\"sid\": \"\(sid)\", \"exp\": \(exp)}], \"more\": false}"
        }
        document.text.withLock { $0 = page(cursor: 1, sid: "good-1") }
        let board = RevocationBoard()
        let poller = RevocationPoller(
            url: UpstreamURL("http://127.0.0.1:\(endpoint.localAddress!.port!)/auth/revocations")!, secret: "s", interval: .milliseconds(20),
            tls: nil, board: board, loop: group.next()
        )
        func settle(_ done: () -> Bool) async throws {
            for _ in 0..<250 where !done() { try await Task.sleep(for: .milliseconds(10)) }
        }
        try await settle { board.contains("good-1") }
        #expect(board.contains("good-1") && board.feedErrors == 0)

        let manyEntries = (0...10_000).map { "{\"sid\": \"s\($0)\", \"exp\": \(exp)}" }.joined(separator: ",")
        let hostile = [
            "{\"cursor\": 1e300, \"revocations\": [], \"more\": false}",
            "{\"cursor\": -1, \"revocations\": []}",
            "{\"cursor\": 2.5, \"revocations\": []}",
            "{\"cursor\": \"2\", \"revocations\": []}",
            "{\"cursor\": 9007199254740993, \"revocations\": []}",
            "{\"revocations\": []}",
            "{\"cursor\": 2, \"revocations\": {}}",
            "{\"cursor\": 2, \"revocations\": [], \"more\": \"yes\"}",
            "{\"cursor\": 2, \"revocations\": [{\"sid\": \"bad-1\", \"exp\": \"soon\"}]}",
            "{\"cursor\": 2, \"revocations\": [{\"sid\": \"bad-2\", \"exp\": 1e300}]}",
            "{\"cursor\": 2, \"revocations\": [{\"sid\": \"bad-2\", \"exp\": \(exp + 400 * 86_400)}]}",
            "{\"cursor\": 2, \"revocations\": [{\"sid\": \"bad-3\", \"exp\": -5}]}",
            "{\"cursor\": 2, \"revocations\": [{\"sid\": 7, \"exp\": \(exp)}]}",
            "{\"cursor\": 2, \"revocations\": [{\"sid\": \"\", \"exp\": \(exp)}]}",
            "{\"cursor\": 2, \"revocations\": [{\"sid\": \"\(String(repeating: "x", count: 300))\", \"exp\": \(exp)}]}",
            "{\"cursor\": 2, \"revocations\": [\(manyEntries)]}",
            "[1, 2, 3]",
            "not json",
        ]
        for (index, text) in hostile.enumerated() {
            let errorsBefore = board.feedErrors
            document.text.withLock { $0 = text }
            try await settle { board.feedErrors > errorsBefore }
            #expect(board.feedErrors > errorsBefore, "page \(index) was not counted as an error: \(text.prefix(80))")
            #expect(board.contains("good-1"), "page \(index) lost the last good list")
        }
        #expect(!board.contains("bad-1") && !board.contains("bad-2") && !board.contains("bad-3") && !board.contains("s0"), "a bad page published part of itself")
        // A page that says there is more without moving the cursor would be asked for without end.
        let before = document.fetches.load(ordering: .relaxed)
        let errorsBefore = board.feedErrors
        document.text.withLock { $0 = "{\"cursor\": 1, \"revocations\": [], \"more\": true}" }
        try await Task.sleep(for: .milliseconds(300))
        let fetched = document.fetches.load(ordering: .relaxed) - before
        #expect(board.feedErrors > errorsBefore && fetched < 40, "\(fetched) fetches in 300 ms at a 20 ms interval")
        // The feed recovers with the next good page.
        document.text.withLock { $0 = page(cursor: 2, sid: "good-2") }
        try await settle { board.contains("good-2") }
        #expect(board.contains("good-2") && board.contains("good-1"))
        poller.stop()
        try await endpoint.close()
        try await group.shutdownGracefully()
    }

    @Test("a symmetric (oct) key in a remote JWKS is refused even with HS256 allowed; keys not for signing are skipped")
    func remoteSymmetricKeys() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let ec = try EVPKey.generate(.ec(.p256))
        let rsa = try EVPKey.generate(.rsa(bits: 2048))
        let secret = [UInt8](repeating: 0x6B, count: 32)
        // Keycloak publishes an RSA-OAEP encryption key beside its signing keys; X25519 is for key agreement.
        var encryption = try #require(
            try JSONSerialization.jsonObject(with: Data(JWK(key: try rsa.publicKey(), keyID: "enc-1").json.serialized.utf8)) as? [String: Any]
        )
        encryption["use"] = "enc"
        encryption["alg"] = "RSA-OAEP"
        let keys: [[String: Any]] = [
            try #require(try JSONSerialization.jsonObject(with: Data(JWK(key: try ec.publicKey(), keyID: "e1", algorithm: .es256).json.serialized.utf8)) as? [String: Any]),
            ["kty": "oct", "kid": "h1", "alg": "HS256", "k": Base64URL.encode(secret)],
            encryption,
            ["kty": "OKP", "crv": "X25519", "kid": "x1", "x": Base64URL.encode([UInt8](repeating: 9, count: 32))],
        ]
        let document = JWKSDocument()
        document.text.withLock { $0 = String(decoding: try! JSONSerialization.data(withJSONObject: ["keys": keys]), as: UTF8.self) }
        let endpoint = try await HTTPListener.bind(host: "127.0.0.1", port: 0, group: group) { _ in JWKSEndpoint(document: document) }
        let upstream = try await HTTPListener.bind(host: "127.0.0.1", port: 0, group: group) { _ in EchoHandler() }
        let yaml = """
            access_log: false
            verify:
              issuer: https://idp.test
              algorithms: [ES256, HS256]
              typ: any
              keys: { jwks_url: "http://127.0.0.1:\(endpoint.localAddress!.port!)/jwks" }
            routes:
              - { prefix: /, upstream: "http://127.0.0.1:\(upstream.localAddress!.port!)" }

            """
        let config = try GatewayConfig.parse(yaml, file: "jwks.conf", baseDirectory: "/tmp")
        let gateway = try await GatewayServer.start(config: config, group: group, host: "127.0.0.1", port: 0)
        #expect(gateway.isReady, "the signing keys of the set were loaded")
        let claims = JSONObject(["iss": .string("https://idp.test"), "sub": .string("u1"), "exp": .number(Date().timeIntervalSince1970 + 600)])
        let forged = try Signer(material: .secret(secret), algorithm: .hs256, keyID: "h1").sign(claims, type: nil)
        let refused = try RawHTTPClient.request(port: gateway.port, "GET", "/x", headers: [("Authorization", "Bearer \(forged)")])
        #expect(refused.status == 401, "a token signed with a published symmetric key was accepted")
        let genuine = try Signer(material: .asymmetric(ec), algorithm: .es256, keyID: "e1").sign(claims, type: nil)
        #expect(try RawHTTPClient.request(port: gateway.port, "GET", "/x", headers: [("Authorization", "Bearer \(genuine)")]).status == 200)
        let metrics = try await gateway.metricsText(on: group.next()).get()
        func value(_ prefix: String) -> Int? {
            metrics.split(separator: "\n").first { $0.hasPrefix(prefix + " ") }.flatMap { Int($0.split(separator: " ")[1]) }
        }
        // The forged token's unknown kid made the gateway fetch again: each fetch refuses the key once.
        let fetches = try #require(value("gatehouse_jwks_refresh_total{result=\"ok\"}"))
        #expect(fetches >= 1 && value("gatehouse_jwks_keys_refused_total{reason=\"symmetric\"}") == fetches, "\(metrics)")
        try await gateway.stop()
        try await endpoint.close()
        try await upstream.close()
        try await group.shutdownGracefully()
    }
}
