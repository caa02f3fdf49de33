// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseTestSupport
import Testing

/// The WebSocket clients in Tests/WebSocket/: `ws_check.py` (Python's `websockets`) and
/// `autobahn.sh` (Autobahn|Testsuite's fuzzing client), each run as its own process.
enum WebSocketClients {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("WebSocket")

    /// Runs `executable arguments…` (standard error goes to the test's); its status and standard
    /// output. It is sent SIGTERM after `timeout`.
    static func run(_ executable: String, _ arguments: [String], timeout: Duration = .seconds(60)) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [executable] + arguments
        process.standardInput = FileHandle.nullDevice
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let seconds = Double(timeout.components.seconds)
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds) { if process.isRunning { process.terminate() } }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// `ws_check.py URL arguments…`: its JSON answer.
    static func check(_ url: String, _ arguments: [String] = []) throws -> [String: Any] {
        let (status, output) = try self.run("python3", [self.folder.appendingPathComponent("ws_check.py").path, url] + arguments)
        let json = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any]
        #expect(status == (json?["ok"] as? Bool == true ? 0 : 1), "\(output)")
        return try #require(json, "ws_check.py printed no JSON (is websockets installed? make test-deps installs it): \(output)")
    }

    /// The python2.7 that `autobahn.sh` finds, or nil: the machine has none.
    static let python27: String? = {
        guard let located = try? run(folder.appendingPathComponent("autobahn.sh").path, ["--locate-python"]), located.status == 0 else {
            return nil
        }
        return located.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }()
}

@Suite("gatehouse echo speaks WebSocket", .serialized)
struct WebSocketEchoTests {
    /// A running `gatehouse echo` on a free port.
    static func startEcho() throws -> (ServeProcess, port: Int) {
        let port = try TestPostgres.freePort()
        let echo = try ServeProcess(arguments: ["echo", "--listen", "127.0.0.1:\(port)"], directory: try temporaryDirectory())
        #expect(echo.wait(for: "listening"), "\(echo.text)")
        return (echo, port)
    }

    @Test("a websockets client: text, binary, 1 MiB, fragmented, ping/pong and close")
    func pythonClient() throws {
        let (echo, port) = try Self.startEcho()
        defer { _ = echo.stop() }
        let result = try WebSocketClients.check(
            "ws://127.0.0.1:\(port)/chat?room=1", ["-H", "Authorization: Bearer abc", "-H", "Cookie: a=b", "--origin", "http://localhost:8080"]
        )
        #expect(result["ok"] as? Bool == true, "\(result)")
        #expect((result["handshake"] as? [String: Any])?["status"] as? Int == 101)
        let checks = try #require(result["checks"] as? [String: [String: Any]])
        for name in ["text", "binary", "large", "fragmented", "ping", "close"] {
            #expect(checks[name]?["ok"] as? Bool == true, "\(name): \(checks[name] ?? [:])")
        }
        #expect(checks["large"]?["bytes"] as? Int == 1 << 20)
        #expect(checks["close"]?["code"] as? Int == 1000)
    }

    @Test("plain HTTP keeps the JSON echo; a bad handshake gets 400 or 426 and no 101")
    func handshakes() throws {
        let (echo, port) = try Self.startEcho()
        defer { _ = echo.stop() }
        let plain = try RawHTTPClient.request(port: port, "GET", "/hello?x=1")
        #expect(plain.status == 200)
        #expect(plain.json?["path"] as? String == "/hello")
        #expect(plain.json?["query"] as? String == "x=1")

        let upgrade = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Version", "13")]
        let key = ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        let wrongVersion = try RawHTTPClient.request(port: port, "GET", "/", headers: [upgrade[0], upgrade[1], ("Sec-WebSocket-Version", "8"), key])
        #expect(wrongVersion.status == 426)
        #expect(wrongVersion.header("sec-websocket-version") == "13")
        #expect(try RawHTTPClient.request(port: port, "GET", "/", headers: upgrade).status == 400)
        #expect(try RawHTTPClient.request(port: port, "POST", "/", headers: upgrade + [key]).status == 400)
        #expect(try RawHTTPClient.request(port: port, "GET", "/", headers: upgrade + [("Sec-WebSocket-Key", "short")]).status == 400)
        #expect(try RawHTTPClient.request(port: port, "GET", "/", headers: [upgrade[0], ("Connection", "keep-alive"), upgrade[2], key]).status == 400)

        // RFC 6455 section 1.3's example key and accept value.
        let client = try RawHTTPClient(port: port)
        try client.send("GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        let switched = try client.readResponseHead()
        #expect(switched.status == 101)
        #expect(switched.header("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        #expect(switched.header("upgrade")?.lowercased() == "websocket")
    }

    @Test("a frame over 16 MiB is refused from its header with close 1009, before its payload")
    func oversizedFrame() throws {
        let (echo, port) = try Self.startEcho()
        defer { _ = echo.stop() }
        let client = try RawHTTPClient(port: port)
        try client.send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        #expect(try client.readResponseHead().status == 101)
        // A masked binary frame header that announces 16 MiB + 1 bytes; none of them follows.
        let length = UInt64(16 << 20) + 1
        try client.send([0x82, 127] + (0..<8).reversed().map { UInt8(truncatingIfNeeded: length >> ($0 * 8)) } + [1, 2, 3, 4])
        #expect(try client.read(exactly: 4) == [0x88, 0x02, 0x03, 0xF1])  // close, 1009
        #expect(client.isClosedByPeer())
    }

    @Test("a client that sends 1 MiB messages and never reads: the echo stops reading, its peak RSS stays bounded")
    func stalledReader() throws {
        let (echo, port) = try Self.startEcho()
        defer { _ = echo.stop() }
        func peakRSS() throws -> Int {
            let status = try String(contentsOfFile: "/proc/\(echo.process.processIdentifier)/status", encoding: .utf8)
            let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") })
            return try #require(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])) / 1024
        }
        let before = try peakRSS()
        let result = try WebSocketClients.check("ws://127.0.0.1:\(port)/", ["--checks", "stall", "--stall-mib", "256"])
        let stall = try #require((result["checks"] as? [String: [String: Any]])?["stall"])
        #expect(stall["ok"] as? Bool == true, "\(stall)")
        let after = try peakRSS()
        print("stalled reader: \(stall["sent_mib"] ?? 0) MiB sent before the echo stopped reading; echo peak RSS \(before) → \(after) MiB")
        #expect(after - before < 48, "the echo's peak RSS grew from \(before) to \(after) MiB")
    }

    /// Autobahn's fuzzing client against `url`: its summary (see autobahn.sh).
    static func autobahn(_ url: String, agent: String) throws -> [String: Any] {
        let out = try temporaryDirectory()
        let (status, output) = try WebSocketClients.run(
            WebSocketClients.folder.appendingPathComponent("autobahn.sh").path, [url, "--agent", agent, "--out", out.path],
            timeout: .seconds(540)
        )
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any], "\(status): \(output)")
        let counts = try #require(summary["counts"] as? [String: Int])
        let tally = counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        print("Autobahn against \(agent): \(summary["cases"] ?? 0) cases: \(tally); non-strict: \(summary["non_strict"] ?? [])")
        #expect(status == 0)
        #expect(counts["FAILED"] == 0, "failed: \(summary["failed"] ?? [])")
        #expect(counts["UNIMPLEMENTED"] == 0)
        #expect(summary["cases"] as? Int ?? 0 >= 300, "cases 1-11 are about 300")
        return summary
    }

    @Test(
        "Autobahn|Testsuite cases 1-11 against gatehouse echo, directly and through the gateway: no case FAILED, the same verdicts",
        .enabled(if: WebSocketClients.python27 != nil, "no python2.7 (pyenv's 2.7.18): Autobahn|Testsuite cannot run here"),
        .timeLimit(.minutes(10))
    )
    func autobahn() throws {
        let (echo, port) = try Self.startEcho()
        defer { _ = echo.stop() }
        let direct = try Self.autobahn("ws://127.0.0.1:\(port)/", agent: "gatehouse-echo")

        let directory = try temporaryDirectory()
        let gatewayPort = try TestPostgres.freePort()
        try """
            listen: 127.0.0.1:\(gatewayPort)
            admin_listen: 127.0.0.1:\(try TestPostgres.freePort())
            access_log: false
            issuer: { enabled: false }
            routes:
              - { prefix: /, upstream: "http://127.0.0.1:\(port)", auth: public }

            """.write(to: directory.appendingPathComponent("gateway.conf"), atomically: true, encoding: .utf8)
        let gateway = try ServeProcess(arguments: ["serve", "--config", "gateway.conf"], directory: directory)
        defer { _ = gateway.stop() }
        #expect(gateway.wait(for: "admin listening"), "\(gateway.text)")
        let through = try Self.autobahn("ws://127.0.0.1:\(gatewayPort)/", agent: "gatehouse-gateway")
        let directVerdicts = try #require(direct["behaviors"] as? [String: String])
        let gatewayVerdicts = try #require(through["behaviors"] as? [String: String])
        let differing = directVerdicts.keys.filter { directVerdicts[$0] != gatewayVerdicts[$0] }.sorted()
        #expect(directVerdicts.count == gatewayVerdicts.count)
        #expect(differing.isEmpty, "verdicts differ through the gateway: \(differing.map { "\($0): \(directVerdicts[$0]!) vs \(gatewayVerdicts[$0] ?? "none")" })")
    }
}
