// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseConfig
import GatehouseGateway
import GatehouseHTTP
import GatehouseJOSE
import GatehouseTestSupport
import NIOCore
import NIOPosix
import Testing

/// `Tests/WebSocket/peer.py`: Python's `websockets` as the upstream and as the client.
enum WebSocketPeer {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Tests/WebSocket/peer.py").path

    /// The upstream: echoes, and first tells each connection what it saw of the handshake.
    final class Upstream: @unchecked Sendable {
        let process = Process()
        let port: Int

        init() throws {
            self.process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            self.process.arguments = ["python3", WebSocketPeer.script, "upstream"]
            let output = Pipe()
            self.process.standardOutput = output
            try self.process.run()
            var line = Data()
            while !line.contains(UInt8(ascii: "\n")) {
                let more = output.fileHandleForReading.availableData
                guard !more.isEmpty else { break }
                line += more
            }
            let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard text.hasPrefix("port "), let port = Int(text.dropFirst(5)) else {
                throw TestFailure("the WebSocket upstream did not start (is python3's websockets installed? make test-deps installs it): \(text)")
            }
            self.port = port
        }

        /// SIGKILL: the test process blocks SIGTERM in its threads, and the child inherits the mask.
        func stop() {
            kill(self.process.processIdentifier, SIGKILL)
            self.process.waitUntilExit()
        }
    }

    /// Runs the client with `arguments` (URL, scenario, …) and returns its JSON line; `whileRunning`
    /// gets each earlier line (the stall scenario's signal).
    static func client(_ arguments: [String], headers: [(String, String)] = [], whileRunning: ((String) -> Void)? = nil) throws -> [String: Any] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.script, "client"] + arguments + headers.flatMap { ["--header", "\($0.0):\($0.1)"] }
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        var lines: [String] = []
        var pending = Data()
        while true {
            let more = output.fileHandleForReading.availableData
            if more.isEmpty { break }
            pending += more
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending = pending[(newline + 1)...]
                lines.append(line)
                if line.contains("\"stalling\"") { whileRunning?(line) }
            }
        }
        process.waitUntilExit()
        guard let last = lines.last, let json = try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any] else {
            throw TestFailure("the WebSocket client printed nothing usable: \(lines)")
        }
        return json
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// An upstream that answers every handshake with a bare 101: no accept value.
final class BareSwitchingUpstream: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard String(buffer: self.unwrapInboundIn(data)).contains("\r\n\r\n") else { return }
        let answer = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nraw bytes"
        context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: answer)), promise: nil)
    }
}

/// An upstream that refuses every request with a keep-alive 403, and counts its connections.
final class RefusingUpstream: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard String(buffer: self.unwrapInboundIn(data)).contains("\r\n\r\n") else { return }
        context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")), promise: nil)
    }
}

/// A gateway in front of the Python upstream: `/ws/` needs a token (query parameter `access_token`
/// allowed), `/admin/` the admin role, `/opt/` is optional, `/pub/` public, `/short/` closes idle
/// tunnels after a second, `/bare/` is an upstream that answers with a bare 101.
final class WebSocketGateway: @unchecked Sendable {
    static let secret = "websocket-tests-secret-of-32-bytes!!"
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let upstream: WebSocketPeer.Upstream
    let bare: any Channel
    let refusing: any Channel
    let refusingConnections = Collector<Int>()
    let revocations = RevocationBoard()
    let gateway: GatewayServer
    let accessLines = Collector<String>()

    init() async throws {
        self.upstream = try WebSocketPeer.Upstream()
        self.bare = try await ServerBootstrap(group: self.group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(BareSwitchingUpstream()) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let connections = self.refusingConnections
        self.refusing = try await ServerBootstrap(group: self.group)
            .childChannelInitializer { channel in
                connections.append(1)
                return channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(RefusingUpstream()) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let up = "http://127.0.0.1:\(self.upstream.port)"
        let yaml = """
            access_log: true
            verify:
              issuer: https://auth.test
              audience: api
              algorithms: [HS256]
              leeway: 0s
              keys: { secret: "\(Self.secret)", kid: k1 }
              cookie: access_token
              allowed_origins: [https://app.test]
            routes:
              - { prefix: /ws/, upstream: "\(up)", token_param: access_token }
              - { prefix: /admin/, upstream: "\(up)", any_role: [admin] }
              - { prefix: /opt/, upstream: "\(up)", auth: optional }
              - { prefix: /pub/, upstream: "\(up)", auth: public }
              - { prefix: /short/, upstream: "\(up)", auth: public, websocket_idle_timeout: 1s }
              - { prefix: /outlive/, upstream: "\(up)", websocket_outlive_token: true }
              - { prefix: /bare/, upstream: "http://127.0.0.1:\(self.bare.localAddress!.port!)", auth: public }
              - { prefix: /refuse/, upstream: "http://127.0.0.1:\(self.refusing.localAddress!.port!)", auth: public }

            """
        let config = try GatewayConfig.parse(yaml, file: "websocket.conf", baseDirectory: "/tmp")
        let lines = self.accessLines
        let sink = AccessLogSink { bytes in
            for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") { lines.append(String(line)) }
        }
        self.gateway = try await GatewayServer.start(
            config: config, group: self.group, host: "127.0.0.1", port: 0, accessLog: sink, revocations: self.revocations
        )
    }

    func url(_ path: String) -> String { "ws://127.0.0.1:\(self.gateway.port)\(path)" }

    func token(expiresIn: Double = 600, roles: [String] = ["viewer"], sessionID: String = "session-1") throws -> String {
        let claims = JSONObject([
            "iss": .string("https://auth.test"), "aud": .string("api"), "sub": .string("alice"), "user_id": .number(7),
            "exp": .number(Date().timeIntervalSince1970 + expiresIn), "roles": .array(roles.map { .string($0) }), "sid": .string(sessionID),
        ])
        return try Signer(material: .secret(Array(Self.secret.utf8)), algorithm: .hs256, keyID: "k1").sign(claims, type: "at+jwt")
    }

    func client(_ path: String, _ scenario: String, headers: [(String, String)] = [], whileRunning: ((String) -> Void)? = nil) throws -> [String: Any] {
        try WebSocketPeer.client([self.url(path), scenario], headers: headers, whileRunning: whileRunning)
    }

    func metrics() async throws -> String {
        try await self.gateway.metricsText(on: self.group.next()).get()
    }

    func shutdown() async throws {
        // A test that drained the gateway closed its listener already.
        try? await self.gateway.stop()
        self.upstream.stop()
        try await self.bare.close()
        try await self.refusing.close()
        try await self.group.shutdownGracefully()
    }

    static func with(_ body: (WebSocketGateway) async throws -> Void) async throws {
        let fixture = try await WebSocketGateway()
        do {
            try await body(fixture)
        } catch {
            try? await fixture.shutdown()
            throw error
        }
        try await fixture.shutdown()
    }
}

/// What the upstream saw of a handshake.
private func seen(_ result: [String: Any]) -> (path: String, headers: [String: [String]])? {
    guard let report = result["handshake"] as? [String: Any], let path = report["path"] as? String,
        let headers = report["headers"] as? [String: [String]]
    else { return nil }
    return (path, headers)
}

private func status(_ result: [String: Any]) -> Int { result["status"] as? Int ?? -1 }

private func residentKiB() -> Int {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
    return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
}

@Suite("WebSocket through the gateway, with real peers", .serialized)
struct WebSocketWireTests {
    @Test("handshakes are decided like requests: 101 only when allowed, identity injected, forged identity gone")
    func handshakes() async throws {
        try await WebSocketGateway.with { gateway in
            let token = try gateway.token()
            #expect(status(try gateway.client("/ws/room", "handshake")) == 401)
            #expect(status(try gateway.client("/ws/room", "handshake", headers: [("Authorization", "Bearer not.a.token")])) == 401)
            #expect(status(try gateway.client("/admin/feed", "handshake", headers: [("Authorization", "Bearer \(token)")])) == 403)
            #expect(status(try gateway.client("/nowhere", "handshake")) == 404)

            let opened = try gateway.client("/ws/room?x=1", "handshake", headers: [("Authorization", "Bearer \(token)"), ("X-User-Id", "admin"), ("X_User_Role", "admin")])
            #expect(status(opened) == 101)
            let upstream = try #require(seen(opened))
            #expect(upstream.path == "/ws/room?x=1")
            #expect(upstream.headers["x-user-id"] == ["7"])
            #expect(upstream.headers["x-user-role"] == ["viewer"])
            #expect(upstream.headers["x_user_role"] == nil)
            #expect(upstream.headers["upgrade"] == ["websocket"])
            #expect(upstream.headers["connection"] == ["Upgrade"])
            #expect(upstream.headers["sec-websocket-key"]?.count == 1)

            let anonymous = try gateway.client("/opt/x", "handshake", headers: [("X-User-Id", "admin")])
            #expect(status(anonymous) == 101)
            #expect(seen(anonymous)?.headers["x-user-id"] == nil)
            #expect(status(try gateway.client("/pub/x", "handshake")) == 101)
        }
    }

    @Test("browser credentials: the cookie and the query token need an allowed Origin; the token leaves the URL")
    func browserCredentials() async throws {
        try await WebSocketGateway.with { gateway in
            let token = try gateway.token()
            let origin = ("Origin", "https://app.test")
            let query = try gateway.client("/ws/room?access_token=\(token)&v=2", "handshake", headers: [origin])
            #expect(status(query) == 101)
            #expect(seen(query)?.path == "/ws/room?v=2")
            #expect(seen(query)?.headers["x-user-id"] == ["7"])
            #expect(status(try gateway.client("/ws/room?access_token=\(token)", "handshake", headers: [("Origin", "https://evil.test")])) == 403)
            #expect(status(try gateway.client("/ws/room?access_token=\(token)", "handshake")) == 403)
            let both = try gateway.client("/ws/room?access_token=\(token)", "handshake", headers: [origin, ("Authorization", "Bearer \(token)")])
            #expect(status(both) == 400)

            let cookie = ("Cookie", "theme=dark; access_token=\(token)")
            #expect(status(try gateway.client("/ws/room", "handshake", headers: [cookie, origin])) == 101)
            #expect(status(try gateway.client("/ws/room", "handshake", headers: [cookie, ("Origin", "https://evil.test")])) == 403)
            #expect(status(try gateway.client("/ws/room", "handshake", headers: [cookie])) == 403)
            // The access log never shows the token.
            try await Task.sleep(for: .milliseconds(300))
            #expect(!gateway.accessLines.values.contains { $0.contains(token) })
        }
    }

    @Test("messages pass intact: text, binary, 1 MiB, fragmented, ping/pong; 200 tunnels at once")
    func messages() async throws {
        try await WebSocketGateway.with { gateway in
            let result = try gateway.client("/pub/echo", "echo")
            #expect(status(result) == 101)
            #expect(result["echoed"] as? [String] == ["text", "binary", "large", "fragmented"])
            #expect(result["pong"] as? Bool == true)
            #expect(result["close_code"] as? Int == 1000)

            let many = try WebSocketPeer.client([gateway.url("/pub/many"), "many", "200"])
            #expect(many["ok"] as? Int == 200, "\(many)")
            try await Task.sleep(for: .milliseconds(500))
            let metrics = try await gateway.metrics()
            #expect(metrics.contains("gatehouse_websocket_tunnels{route=\"/pub/\"} 0"))
            #expect(metrics.contains("gatehouse_websocket_closed_total{route=\"/pub/\",reason=\"client\"} 201"), "\(metrics)")
            let line = try #require(gateway.accessLines.values.first { $0.contains("websocket") && $0.contains("/pub/echo") })
            #expect(line.contains("bytes_from_client") && line.contains("duration_ms"), "\(line)")
        }
    }

    @Test("a tunnel ends with 1008 when its token expires, and with 1008 within a second of its session's revocation")
    func credentialsEnd() async throws {
        try await WebSocketGateway.with { gateway in
            let expiring = try gateway.token(expiresIn: 3)
            let expired = try gateway.client("/ws/room", "hold", headers: [("Authorization", "Bearer \(expiring)")])
            #expect(expired["close_code"] as? Int == 1008, "\(expired)")
            #expect(expired["close_reason"] as? String == "token expired")
            let seconds = expired["seconds"] as? Double ?? 0
            #expect(seconds > 1.5 && seconds < 4.5, "ended after \(seconds) s")

            // A route whose tunnels outlive the token: open past its exp, until its session is revoked.
            let outliving = try gateway.token(expiresIn: 2, sessionID: "session-revoked")
            let url = gateway.url("/outlive/x")
            let holder = Task.detached { try Handed(WebSocketPeer.client([url, "hold"], headers: [("Authorization", "Bearer \(outliving)")])) }
            try await Task.sleep(for: .seconds(4))
            gateway.revocations.publish([RevocationBoard.Entry(sessionID: "session-revoked", expiresAt: Date().timeIntervalSince1970 + 600)])
            let revoked = try await holder.value.value
            #expect(revoked["close_code"] as? Int == 1008, "\(revoked)")
            #expect(revoked["close_reason"] as? String == "session revoked")
            let held = revoked["seconds"] as? Double ?? 0
            // Opened about 0.3 s after the task began: revoked at ~3.7 s into the hold, ended within a second.
            #expect(held > 3 && held < 5, "ended after \(held) s")
            try await Task.sleep(for: .milliseconds(300))
            let metrics = try await gateway.metrics()
            #expect(metrics.contains("gatehouse_websocket_closed_total{route=\"/ws/\",reason=\"expired\"} 1"), "\(metrics)")
            #expect(metrics.contains("gatehouse_websocket_closed_total{route=\"/outlive/\",reason=\"revoked\"} 1"))
        }
    }

    @Test("a drain ends tunnels with 1001")
    func drain() async throws {
        try await WebSocketGateway.with { gateway in
            let url = gateway.url("/pub/x")
            let holder = Task.detached { try Handed(WebSocketPeer.client([url, "hold"])) }
            try await Task.sleep(for: .seconds(2))
            let started = ContinuousClock.now
            try await gateway.gateway.drain(grace: .seconds(10))
            let drained = ContinuousClock.now - started
            let result = try await holder.value.value
            #expect(result["close_code"] as? Int == 1001, "\(result)")
            // The client answered the close frame: the drain did not wait out its grace.
            #expect(drained < .seconds(3), "the drain took \(drained)")
        }
    }

    @Test("a 101 without the right accept value is a 502 and opens no tunnel")
    func bare101() async throws {
        try await WebSocketGateway.with { gateway in
            let result = try gateway.client("/bare/x", "handshake")
            #expect(status(result) == 502, "\(result)")
        }
    }

    @Test("an upstream connection that carried a handshake never returns to the pool, whatever the answer")
    func handshakeConnectionNotPooled() async throws {
        try await WebSocketGateway.with { gateway in
            #expect(status(try gateway.client("/refuse/ws", "handshake")) == 403)
            // A plain request after it must not get the connection the handshake went on (the
            // upstream may have left HTTP on it): a second connection.
            let plain = try RawHTTPClient.request(port: gateway.gateway.port, "GET", "/refuse/x")
            #expect(plain.status == 403)
            let second = try RawHTTPClient.request(port: gateway.gateway.port, "GET", "/refuse/y")
            #expect(second.status == 403)
            // Plain requests share one pooled connection; the handshake had its own.
            #expect(gateway.refusingConnections.values.count == 2)
        }
    }

    @Test("a frame sent right behind the handshake reaches the upstream at once")
    func framePipelinedBehindTheHandshake() async throws {
        try await WebSocketGateway.with { gateway in
            let result = try gateway.client("/pub/early", "pipelined")
            #expect(status(result) == 101)
            #expect(result["echoed_early"] as? Bool == true, "\(result)")
        }
    }

    @Test("a tunnel in which nothing moves for websocket_idle_timeout is closed")
    func idle() async throws {
        try await WebSocketGateway.with { gateway in
            let result = try gateway.client("/short/x", "hold")
            // Closed without a close frame (1006 to the client), about a second after the report.
            #expect(result["close_code"] as? Int == 1006, "\(result)")
            let seconds = result["seconds"] as? Double ?? 0
            #expect(seconds > 0.5 && seconds < 3, "closed after \(seconds) s")
        }
    }

    @Test("a client that reads nothing stops its upstream, not the gateway's memory")
    func stalledReader() async throws {
        try await WebSocketGateway.with { gateway in
            let before = residentKiB()
            let during = Collector<Int>()
            let result = try gateway.client("/pub/stall", "stall") { _ in during.append(residentKiB()) }
            #expect(status(result) == 101)
            let peak = try #require(during.values.first)
            // 64 MiB were offered; what the gateway holds stays at socket buffers and a read or two.
            #expect(peak - before < 16 * 1024, "RSS grew by \(peak - before) KiB while the client stalled")
            // The stall reached the client: its sends blocked long before the 64 MiB (without
            // back-pressure all of it went, and the gateway's RSS grew by ~60 MiB).
            #expect(result["sent_kib"] as? Int ?? 65536 < 65536, "\(result)")
        }
    }
}
