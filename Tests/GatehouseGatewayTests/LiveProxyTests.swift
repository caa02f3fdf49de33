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
import Synchronization
import Testing

/// Counts connections a test upstream accepts.
final class ConnectionCounter: Sendable {
    let value = Atomic<Int>(0)
}

/// Lines collected from another thread.
final class LineCollector: Sendable {
    let lines = Mutex<[String]>([])
}

/// Accepts requests and never answers them.
final class SilentHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
}

/// A real gateway in front of a real `gatehouse echo`, on 127.0.0.1, with a real ES256 key.
final class LiveGateway {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    let key: EVPKey
    let echoConnections = ConnectionCounter()
    var echo: (any Channel)!
    var silent: (any Channel)!
    var gateway: GatewayServer!
    var sink: AccessLogSink!
    let directory: URL

    /// Access-log lines, as the gateway wrote them.
    let accessLines = LineCollector()
    /// Where `/down/` points: connections are refused.
    let closedPort = ClosedPort()

    /// `routes`: more route lines, appended to the fixed ones; `$ECHO` in them is the echo upstream's URL.
    init(topLevel: String = "", routes: String = "") async throws {
        self.key = try EVPKey.generate(.ec(.p256))
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-live-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        try self.key.publicKeyPEM().write(to: self.directory.appendingPathComponent("pub.pem"), atomically: true, encoding: .utf8)
        let counter = self.echoConnections
        self.echo = try await HTTPListener.bind(host: "127.0.0.1", port: 0, group: self.group) { _ in
            counter.value.add(1, ordering: .relaxed)
            return EchoHandler()
        }
        self.silent = try await HTTPListener.bind(host: "127.0.0.1", port: 0, group: self.group) { _ in SilentHandler() }
        let closedPort = self.closedPort.port
        let echo = "http://127.0.0.1:\(self.echo.localAddress!.port!)"
        let yaml = topLevel + """
            verify:
              issuer: https://auth.test
              audience: api
              algorithms: [ES256]
              keys: { public_key_file: pub.pem, kid: k1 }
              cookie: access_token
              allowed_origins: [https://app.test]
            routes:
              - { prefix: /, upstream: "\(echo)" }
              - { prefix: /api/, upstream: "\(echo)" }
              - { prefix: /admin/, upstream: "\(echo)", any_role: [admin] }
              - { prefix: /opt/, upstream: "\(echo)", auth: optional }
              - { prefix: /public/, upstream: "\(echo)/base", auth: public, strip_prefix: true, forward_token: false }
              - { prefix: /kept/, upstream: "\(echo)", auth: public, preserve_host: true }
              - { prefix: /down/, upstream: "http://127.0.0.1:\(closedPort)", connect_timeout: 2s }
              - { prefix: /slow/, upstream: "http://127.0.0.1:\(self.silent.localAddress!.port!)", timeout: 300ms }
            \(routes.replacingOccurrences(of: "$ECHO", with: echo))
            """
        let config = try GatewayConfig.parse(yaml, file: "live.conf", baseDirectory: self.directory.path)
        let verifier = try config.verify.providers[0].makeVerifier(issuerConfig: nil, maxTokenBytes: config.verify.maxTokenBytes)
        let lines = self.accessLines
        let sink = AccessLogSink { bytes in
            let text = String(decoding: bytes, as: UTF8.self)
            lines.lines.withLock { $0 += text.split(separator: "\n").map(String.init) }
        }
        self.sink = sink
        self.gateway = try await GatewayServer.start(
            config: config, verifiers: [verifier], group: self.group, host: "127.0.0.1", port: 0, accessLog: sink
        )
    }

    func shutdown() async throws {
        try await self.gateway.stop()
        try await self.echo.close()
        try await self.silent.close()
        try await self.group.shutdownGracefully()
    }

    var port: Int { self.gateway.port }

    func token(_ extra: KeyValuePairs<String, JSONValue> = [:], omitting: [String] = [], expiresIn: Double = 600) throws -> String {
        var claims = JSONObject([
            "iss": .string("https://auth.test"), "aud": .string("api"), "sub": .string("alice"), "user_id": .number(7),
            "exp": .number(Date().timeIntervalSince1970 + expiresIn), "roles": .array([.string("viewer")]),
            "scope": .string("content:read profile:read"),
        ])
        for (name, value) in extra { claims[name] = value }
        for name in omitting { claims[name] = nil }
        return try Signer(material: .asymmetric(self.key), algorithm: .es256, keyID: "k1").sign(claims, type: "at+jwt")
    }
}

/// Runs `body` against a fresh live gateway and always shuts it down.
func withLiveGateway(topLevel: String = "", routes: String = "", _ body: (LiveGateway) async throws -> Void) async throws {
    let live = try await LiveGateway(topLevel: topLevel, routes: routes)
    do {
        try await body(live)
    } catch {
        try await live.shutdown()
        throw error
    }
    try await live.shutdown()
}

@Suite("The gateway over real sockets, in front of gatehouse echo")
struct LiveProxyTests {
    @Test("a valid token reaches the upstream as X-User-* headers; client identity and hop-by-hop headers never do")
    func injectionAndStripping() async throws {
        try await withLiveGateway { live in
            let response = try RawHTTPClient.request(port: live.port, "GET", "/api/orders/1?x=1", headers: [
                ("Authorization", "Bearer \(try live.token())"), ("X-User-Id", "forged"), ("X_User_Role", "admin"),
                ("x-user-scopes", "everything"), ("Connection", "keep-alive, X-Drop"), ("X-Drop", "secret"),
                ("Keep-Alive", "timeout=5"), ("X-Forwarded-For", "10.1.2.3"), ("X-Request-Id", "req-42"),
            ])
            #expect(response.status == 200)
            let seen = try #require(response.json)
            let headers = try #require(seen["headers"] as? [String: [String]])
            #expect(seen["path"] as? String == "/api/orders/1" && seen["query"] as? String == "x=1")
            #expect(headers["x-user-id"] == ["7"] && headers["x-user-role"] == ["viewer"])
            #expect(headers["x-user-roles"] == ["viewer"] && headers["x-user-scopes"] == ["content:read,profile:read"])
            #expect(headers["x_user_role"] == nil && headers["x-drop"] == nil && headers["keep-alive"] == nil)
            #expect(headers["x-forwarded-for"] == ["10.1.2.3, 127.0.0.1"] && headers["x-forwarded-proto"] == ["http"])
            #expect(headers["x-forwarded-host"] == ["127.0.0.1:\(live.port)"] && headers["x-request-id"] == ["req-42"])
            #expect(headers["host"] == ["127.0.0.1:\(live.echo.localAddress!.port!)"])
            #expect(headers["authorization"]?.first?.hasPrefix("Bearer ") == true)
        }
    }

    @Test("the access cookie: unsafe methods need an Origin from verify.allowed_origins or X-Requested-With")
    func cookieOrigins() async throws {
        try await withLiveGateway { live in
            let cookie = ("Cookie", "access_token=\(try live.token())")
            #expect(try RawHTTPClient.request(port: live.port, "GET", "/api/x", headers: [cookie]).status == 200)
            let forged = try RawHTTPClient.request(port: live.port, "POST", "/api/x", headers: [cookie, ("Origin", "https://evil.test")])
            #expect(forged.status == 403 && forged.json?["error"] as? String == "invalid_origin")
            #expect(try RawHTTPClient.request(port: live.port, "DELETE", "/api/x", headers: [cookie]).status == 403)
            let allowed = try RawHTTPClient.request(port: live.port, "POST", "/api/x", headers: [cookie, ("Origin", "https://app.test")])
            #expect(allowed.status == 200 && (allowed.json?["headers"] as? [String: [String]])?["x-user-id"] == ["7"])
            #expect(try RawHTTPClient.request(port: live.port, "PUT", "/api/x", headers: [cookie, ("X-Requested-With", "fetch")]).status == 200)
            // At forward-auth too, with the method asked about.
            let asked = [cookie, ("X-Forwarded-Method", "PATCH")]
            #expect(try RawHTTPClient.request(port: live.port, "GET", "/auth/verify", headers: asked).status == 403)
            #expect(try RawHTTPClient.request(port: live.port, "GET", "/auth/verify", headers: asked + [("Origin", "https://app.test")]).status == 200)
        }
    }

    @Test("public and optional routes strip identity headers too; strip_prefix, base path, forward_token, preserve_host")
    func publicAndOptional() async throws {
        try await withLiveGateway { live in
            let forged = [("X-User-Id", "forged"), ("X-User-Role", "admin"), ("Authorization", "Bearer whatever")]
            let publicResponse = try RawHTTPClient.request(port: live.port, "GET", "/public/a/b?q=1", headers: forged)
            let seen = try #require(publicResponse.json)
            let headers = try #require(seen["headers"] as? [String: [String]])
            #expect(publicResponse.status == 200 && seen["path"] as? String == "/base/a/b" && seen["query"] as? String == "q=1")
            #expect(headers["x-user-id"] == nil && headers["x-user-role"] == nil && headers["authorization"] == nil)
            let kept = try RawHTTPClient.request(port: live.port, "GET", "/kept/x", headers: [("Host", "client.example")])
            let keptHeaders = kept.json?["headers"] as? [String: [String]]
            #expect(keptHeaders?["host"] == ["client.example"] && keptHeaders?["x-forwarded-host"] == ["client.example"])
            let optional = try RawHTTPClient.request(port: live.port, "GET", "/opt/x", headers: [("X-User-Id", "forged")])
            #expect(optional.status == 200 && (optional.json?["headers"] as? [String: [String]])?["x-user-id"] == nil)
            let withToken = try RawHTTPClient.request(port: live.port, "GET", "/opt/x", headers: [("Authorization", "Bearer \(try live.token())")])
            #expect((withToken.json?["headers"] as? [String: [String]])?["x-user-id"] == ["7"])
        }
    }

    @Test("401 with the RFC 6750 challenge and a JSON body; 403; 404; 400")
    func statusCodes() async throws {
        try await withLiveGateway { live in
            let missing = try RawHTTPClient.request(port: live.port, "GET", "/api/x")
            #expect(missing.status == 401 && missing.header("www-authenticate") == "Bearer")
            #expect(missing.json?["error"] as? String == "invalid_token" && missing.header("content-type") == "application/json")
            let expired = try RawHTTPClient.request(port: live.port, "GET", "/api/x", headers: [("Authorization", "Bearer \(try live.token(expiresIn: -120))")])
            #expect(expired.status == 401 && expired.header("www-authenticate") == #"Bearer error="invalid_token", error_description="expired""#)
            #expect(expired.json?["error_description"] as? String == "expired")
            let forbidden = try RawHTTPClient.request(port: live.port, "GET", "/admin/x", headers: [("Authorization", "Bearer \(try live.token())")])
            #expect(forbidden.status == 403 && forbidden.json?["error"] as? String == "insufficient_scope")
            let escaped = try RawHTTPClient.request(port: live.port, "GET", "/api/../admin/x", headers: [("Authorization", "Bearer \(try live.token())")])
            #expect(escaped.status == 403, "the normalised path is what is matched")
            let above = try RawHTTPClient.request(port: live.port, "GET", "/../etc/passwd")
            #expect(above.status == 400 && above.json?["error"] as? String == "invalid_request")
            let twice = try RawHTTPClient.request(port: live.port, "GET", "/api/x", headers: [("Authorization", "Bearer a.b.c"), ("Authorization", "Bearer a.b.c")])
            #expect(twice.status == 400)
        }
    }

    @Test("502 when the upstream is unreachable, 504 when it does not answer in time, both JSON")
    func upstreamFailures() async throws {
        try await withLiveGateway { live in
            let token = try live.token()
            let down = try RawHTTPClient.request(port: live.port, "GET", "/down/x", headers: [("Authorization", "Bearer \(token)")])
            #expect(down.status == 502 && down.json?["error"] as? String == "bad_gateway")
            let started = Date()
            let slow = try RawHTTPClient.request(port: live.port, "GET", "/slow/x", headers: [("Authorization", "Bearer \(token)")])
            #expect(slow.status == 504 && slow.json?["error"] as? String == "gateway_timeout")
            #expect(Date().timeIntervalSince(started) < 5)
            // The gateway keeps serving afterwards.
            #expect(try RawHTTPClient.request(port: live.port, "GET", "/api/x", headers: [("Authorization", "Bearer \(token)")]).status == 200)
        }
    }

    @Test("the admin listener: /healthz, /readyz and Prometheus /metrics counting what happened")
    func admin() async throws {
        try await withLiveGateway { live in
            let admin = try await live.gateway.startAdmin(host: "127.0.0.1", port: 0, group: live.group)
            let port = admin.localAddress!.port!
            let token = try live.token()
            for _ in 0..<3 { _ = try RawHTTPClient.request(port: live.port, "GET", "/api/x", headers: [("Authorization", "Bearer \(token)")]) }
            _ = try RawHTTPClient.request(port: live.port, "GET", "/api/x", headers: [("Authorization", "Bearer \(try live.token(expiresIn: -100))")])
            _ = try RawHTTPClient.request(port: live.port, "GET", "/admin/x", headers: [("Authorization", "Bearer \(token)")])
            #expect(try RawHTTPClient.request(port: port, "GET", "/healthz").text == "ok\n")
            #expect(try RawHTTPClient.request(port: port, "GET", "/readyz").status == 200)
            #expect(try RawHTTPClient.request(port: port, "GET", "/nothing").status == 404)
            let metrics = try RawHTTPClient.request(port: port, "GET", "/metrics")
            let lines = Set(metrics.text.split(separator: "\n").map(String.init))
            #expect(metrics.status == 200 && metrics.header("content-type")?.hasPrefix("text/plain") == true)
            for expected in [
                #"gatehouse_requests_total{route="/api/",status="200"} 3"#, #"gatehouse_requests_total{route="/api/",status="401"} 1"#,
                #"gatehouse_requests_total{route="/admin/",status="403"} 1"#, #"gatehouse_token_rejections_total{reason="expired"} 1"#,
                #"gatehouse_token_rejections_total{reason="bad_signature"} 0"#, #"gatehouse_upstream_duration_seconds_count{route="/api/"} 3"#,
                #"gatehouse_upstream_duration_seconds_bucket{route="/api/",le="+Inf"} 3"#,
            ] {
                #expect(lines.contains(expected), "\(expected)")
            }
            // Each event loop keeps its own cache, so each of the two misses the valid token once
            // at most; the expired token is always a miss.
            func value(_ name: String) -> Int? {
                lines.first { $0.hasPrefix(name + " ") }.flatMap { Int($0.split(separator: " ")[1]) }
            }
            let hits = try #require(value("gatehouse_token_cache_hits_total"))
            let misses = try #require(value("gatehouse_token_cache_misses_total"))
            #expect(hits + misses == 5 && (2...3).contains(misses))
            try await admin.close()
        }
    }

    @Test("/auth/verify answers forward-auth: 200 with the identity headers, 401/403 otherwise, never the upstream")
    func forwardAuth() async throws {
        try await withLiveGateway { live in
            let token = try live.token()
            let before = live.echoConnections.value.load(ordering: .relaxed)
            for method in ["GET", "POST", "HEAD"] {
                let ok = try RawHTTPClient.request(port: live.port, method, "/auth/verify", headers: [("Authorization", "Bearer \(token)"), ("X-User-Id", "forged")])
                #expect(ok.status == 200 && ok.body.isEmpty, "\(method)")
                #expect(ok.header("x-user-id") == "7" && ok.header("x-user-role") == "viewer" && ok.header("x-user-scopes") == "content:read,profile:read")
            }
            let missing = try RawHTTPClient.request(port: live.port, "GET", "/auth/verify")
            #expect(missing.status == 401 && missing.header("www-authenticate") == "Bearer" && missing.header("x-user-id") == nil)
            let expired = try RawHTTPClient.request(port: live.port, "GET", "/auth/verify", headers: [("Authorization", "Bearer \(try live.token(expiresIn: -100))")])
            #expect(expired.status == 401 && expired.json?["error_description"] as? String == "expired")
            let cases: [(String, Int)] = [
                ("?any_role=admin", 403), ("?any_role=admin,viewer", 200), ("?all_scopes=content:read", 200),
                ("?all_scopes=content:read,users:write", 403), ("?any_role=viewer&all_scopes=profile:read", 200),
            ]
            for (query, status) in cases {
                let response = try RawHTTPClient.request(port: live.port, "GET", "/auth/verify" + query, headers: [("Authorization", "Bearer \(token)")])
                #expect(response.status == status, "\(query)")
            }
            // Envoy's ext_authz appends the original path to its path_prefix.
            let envoy = try RawHTTPClient.request(port: live.port, "POST", "/auth/verify/api/orders?x=1", headers: [("Authorization", "Bearer \(token)")])
            #expect(envoy.status == 200 && envoy.header("x-user-id") == "7")
            #expect(try RawHTTPClient.request(port: live.port, "GET", "/auth/verify/api/orders").status == 401)
            try await Task.sleep(for: .milliseconds(100))
            #expect(live.echoConnections.value.load(ordering: .relaxed) == before, "forward-auth never calls an upstream")
        }
    }

    @Test("one JSON access-log line per request, with its fields and never the token or the query")
    func accessLog() async throws {
        try await withLiveGateway { live in
            let token = try live.token()
            _ = try RawHTTPClient.request(port: live.port, "GET", "/api/orders?secret=shh", headers: [("Authorization", "Bearer \(token)"), ("X-Request-Id", "trace-1")])
            _ = try RawHTTPClient.request(port: live.port, "GET", "/api/x", headers: [("Authorization", "Bearer \(try live.token(expiresIn: -100))")])
            _ = try RawHTTPClient.request(port: live.port, "GET", "/down/x", headers: [("Authorization", "Bearer \(token)")])
            // Lines leave each loop's buffer every 100 ms.
            try await Task.sleep(for: .milliseconds(400))
            live.sink.flush()
            let lines = live.accessLines.lines.withLock { $0 }
            #expect(lines.count == 3)
            let records = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            #expect(records.count == 3, "every line is one JSON object")
            let ok = try #require(records.first { $0["request_id"] as? String == "trace-1" })
            #expect(ok["method"] as? String == "GET" && ok["path"] as? String == "/api/orders" && ok["route"] as? String == "/api/")
            #expect(ok["status"] as? Int == 200 && ok["user_id"] as? String == "7" && ok["upstream_ms"] is Double && ok["time"] is String)
            let expired = try #require(records.first { $0["status"] as? Int == 401 })
            #expect(expired["reason"] as? String == "expired" && expired["user_id"] == nil)
            let down = try #require(records.first { $0["status"] as? Int == 502 })
            #expect(down["reason"] as? String == "bad_gateway" && (down["request_id"] as? String)?.count == 32)
            for line in lines {
                #expect(!line.contains(token) && !line.contains("shh") && !line.contains(String(token.prefix(20))))
            }
        }
    }

    @Test("keep-alive on both sides: many requests, one client connection, upstream connections reused")
    func keepAlive() async throws {
        try await withLiveGateway { live in
            let client = try RawHTTPClient(port: live.port)
            let token = try live.token()
            for index in 0..<20 {
                try client.send("GET /api/\(index) HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer \(token)\r\n\r\n")
                let response = try client.readResponse()
                #expect(response.status == 200 && response.json?["path"] as? String == "/api/\(index)")
            }
            // Errors answered by the gateway keep the connection too.
            try client.send("GET /api/x HTTP/1.1\r\nHost: gw\r\n\r\n")
            #expect(try client.readResponse().status == 401)
            try client.send("GET /api/last HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer \(token)\r\nConnection: close\r\n\r\n")
            let last = try client.readResponse()
            #expect(last.status == 200 && last.header("connection") == "close")
            #expect(client.isClosedByPeer())
            #expect(live.echoConnections.value.load(ordering: .relaxed) <= 2, "at most one upstream connection per event loop")
            let counts = try await live.gateway.tokenCacheCounts()
            #expect(counts.misses == 1 && counts.hits == 20, "one signature check, then cache hits")
        }
    }

    @Test("a 20 MiB upload streams through intact; HEAD and Expect: 100-continue work")
    func bodies() async throws {
        try await withLiveGateway { live in
            let token = try live.token()
            var random = [UInt8](repeating: 0, count: 20 << 20)
            for index in stride(from: 0, to: random.count, by: 4096) { random[index] = UInt8(truncatingIfNeeded: index / 4096 &* 2654435761) }
            let upload = try RawHTTPClient.request(port: live.port, "POST", "/api/upload", headers: [("Authorization", "Bearer \(token)")], body: random)
            let expected = Digest.sha256.hash(random).map { String(format: "%02x", $0) }.joined()
            #expect(upload.status == 200 && upload.json?["body_bytes"] as? Int == random.count)
            #expect(upload.json?["body_sha256"] as? String == expected)

            let head = try RawHTTPClient.request(port: live.port, "HEAD", "/api/h", headers: [("Authorization", "Bearer \(token)")])
            #expect(head.status == 200 && head.body.isEmpty)

            let client = try RawHTTPClient(port: live.port)
            try client.send("POST /api/continue HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer \(token)\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
            let interim = try client.readResponse(informational: true)
            #expect(interim.status == 100)
            try client.send("hello")
            let final = try client.readResponse()
            #expect(final.status == 200 && final.json?["body_bytes"] as? Int == 5)
            #expect((final.json?["headers"] as? [String: [String]])?["expect"] == nil)

            // Refused before the body is sent: no 100, a 401, and the body is never wanted.
            let refused = try RawHTTPClient(port: live.port)
            try refused.send("POST /api/continue HTTP/1.1\r\nHost: gw\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
            #expect(try refused.readResponse(informational: true).status == 401)
        }
    }
}

@Suite("Limits and request smuggling over real sockets")
struct LimitTests {
    /// Sends raw bytes on a fresh connection; returns the gateway's answer and whether it then closed.
    private func exchange(_ live: LiveGateway, _ request: String) throws -> (RawHTTPClient.Response, closed: Bool) {
        let client = try RawHTTPClient(port: live.port, timeoutSeconds: 5)
        try client.send(request)
        let response = try client.readResponse()
        return (response, client.isClosedByPeer())
    }

    @Test("framing that could smuggle a request is a 400 and the connection closes; the upstream sees nothing")
    func smuggling() async throws {
        try await withLiveGateway { live in
            let cases = [
                "POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                "POST /public/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
                "POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
                "POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!",
                "GET /public/x HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n  b\r\n\r\n",
                "POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
                "GET /public/x HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n",
            ]
            for request in cases {
                let (response, closed) = try self.exchange(live, request)
                #expect(response.status == 400 && response.json?["error"] as? String == "invalid_request", "\(request.debugDescription)")
                #expect(closed, "\(request.debugDescription)")
            }
            try await Task.sleep(for: .milliseconds(200))
            #expect(live.echoConnections.value.load(ordering: .relaxed) == 0, "no refused head reached the upstream")
            // A bad chunk size comes after a valid head, which has already streamed upstream: the
            // client gets its 400, and both connections close (the upstream one is never reused).
            let (chunked, closed) = try self.exchange(
                live, "POST /public/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
            #expect(chunked.status == 400 && closed)
        }
    }

    @Test("oversized heads and too many headers are a 431 in JSON")
    func headersTooLarge() async throws {
        try await withLiveGateway { live in
            let big = "GET /public/x HTTP/1.1\r\nHost: a\r\nX-Big: \(String(repeating: "a", count: 40 * 1024))\r\n\r\n"
            let (large, closedAfterLarge) = try self.exchange(live, big)
            #expect(large.status == 431 && large.json?["error"] as? String == "headers_too_large" && closedAfterLarge)
            let many = "GET /public/x HTTP/1.1\r\nHost: a\r\n" + (0..<150).map { "X-H\($0): v\r\n" }.joined() + "\r\n"
            #expect(try self.exchange(live, many).0.status == 431)
        }
    }

    @Test("slowloris heads and idle connections are closed; busy ones are not")
    func timeouts() async throws {
        // Margins are wide: other suites load the machine while this one runs.
        try await withLiveGateway(topLevel: "header_timeout: 300ms\nidle_timeout: 3s\n") { live in
            let slow = try RawHTTPClient(port: live.port, timeoutSeconds: 5)
            let started = Date()
            try slow.send("GET /public/x HTTP/1.1\r\nHost: a\r\n")
            #expect(slow.isClosedByPeer())
            #expect(Date().timeIntervalSince(started) < 2.5)

            let idle = try RawHTTPClient(port: live.port, timeoutSeconds: 5)
            try idle.send("GET /public/x HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(try idle.readResponse().status == 200)
            // Within the idle timeout the connection still serves.
            try await Task.sleep(for: .milliseconds(500))
            try idle.send("GET /public/y HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(try idle.readResponse().status == 200)
            let idleSince = Date()
            #expect(idle.isClosedByPeer())
            #expect(Date().timeIntervalSince(idleSince) > 2)
        }
    }

    @Test("connections beyond max_connections are closed at once")
    func maxConnections() async throws {
        try await withLiveGateway(topLevel: "max_connections: 3\n") { live in
            let open = try (0..<3).map { _ in try RawHTTPClient(port: live.port, timeoutSeconds: 5) }
            for client in open { try client.send("GET /public/x HTTP/1.1\r\nHost: a\r\n\r\n") }
            for client in open { #expect(try client.readResponse().status == 200) }
            let extra = try RawHTTPClient(port: live.port, timeoutSeconds: 5)
            #expect(extra.isClosedByPeer())
            withExtendedLifetime(open) {}
        }
    }
}
