// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseTestSupport
import Synchronization
import Testing

/// `serve` with its standard output and standard error read apart, each on a thread of its own.
final class SplitServeProcess: Sendable {
    let process: Process
    private let output = Collected()
    private let error = Collected()

    /// What one pipe has said so far.
    final class Collected: Sendable {
        private let text = Mutex("")
        func append(_ data: Data) { self.text.withLock { $0 += String(decoding: data, as: UTF8.self) } }
        var value: String { self.text.withLock { $0 } }
    }

    init(arguments: [String], directory: URL) throws {
        let process = Process()
        process.executableURL = CLI.executable
        process.arguments = arguments
        process.currentDirectoryURL = directory
        process.environment = ProcessInfo.processInfo.environment.filter { $0.key != "GATEHOUSE_CONFIG" }
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        self.process = process
        try process.run()
        for (pipe, text) in [(stdout, self.output), (stderr, self.error)] {
            let handle = pipe.fileHandleForReading
            Thread.detachNewThread {
                while true {
                    let data = handle.availableData
                    if data.isEmpty { return }
                    text.append(data)
                }
            }
        }
    }

    var standardOutput: String { self.output.value }
    var standardError: String { self.error.value }

    /// Waits until `predicate` holds for (standard output, standard error), up to `seconds`.
    func wait(seconds: Double = 20, until predicate: (String, String) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if predicate(self.standardOutput, self.standardError) { return true }
            usleep(20_000)
        }
        return predicate(self.standardOutput, self.standardError)
    }

    func stop() -> Int32 {
        kill(self.process.processIdentifier, SIGTERM)
        self.process.waitUntilExit()
        return self.process.terminationStatus
    }
}

@Suite("serve: background events on standard error, in the log format", .serialized)
struct EventLogTests {
    /// A JWKS with the RFC 7515 A.3 key and a symmetric key, which a remote JWKS may not publish.
    static let jwks = #"{"keys":[{"kty":"EC","kid":"a3","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},{"kty":"oct","kid":"h","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI"}]}"#

    static func configuration(jwksPort: Int, feedPort: Int, format: String) -> String {
        """
        listen: 127.0.0.1:0
        admin_listen: 127.0.0.1:0
        log_format: \(format)
        issuer: { enabled: false }
        verify:
          issuer: https://idp.example.com
          audience: api
          algorithms: [ES256]
          keys: { jwks_url: "http://127.0.0.1:\(jwksPort)/jwks.json" }
          jwks_startup_timeout: 1s
          revocation: { feed: postgres, database: "postgresql://gh:s3cr3t@127.0.0.1:\(feedPort)/gh?connect_timeout=2" }
        routes:
          - { prefix: /, upstream: "http://127.0.0.1:9", auth: public }

        """
    }

    @Test("log_format json: an unreachable jwks_url and revocation feed are JSON warnings on stderr; the recovery and a refused symmetric key follow")
    func jsonEvents() throws {
        let directory = try temporaryDirectory()
        let jwksPort = try TestPostgres.freePort()
        let feedPort = try TestPostgres.freePort()
        try Self.configuration(jwksPort: jwksPort, feedPort: feedPort, format: "json")
            .write(to: directory.appendingPathComponent("gateway.conf"), atomically: true, encoding: .utf8)
        let serve = try SplitServeProcess(arguments: ["serve"], directory: directory)
        defer { if serve.process.isRunning { _ = serve.stop() } }
        #expect(serve.wait { output, _ in output.contains("admin listening") }, "\(serve.standardOutput)\(serve.standardError)")
        #expect(serve.wait { _, error in error.contains("JWKS fetch failed") && error.contains("revocation feed failed") }, "\(serve.standardError)")

        // The JWKS endpoint comes up: the refresher's next try (1 s, then 2 s later) recovers.
        let jwksDirectory = try temporaryDirectory()
        try Self.jwks.write(to: jwksDirectory.appendingPathComponent("jwks.json"), atomically: true, encoding: .utf8)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        server.arguments = ["python3", "-m", "http.server", "\(jwksPort)", "--bind", "127.0.0.1", "--directory", jwksDirectory.path]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer {
            // SIGKILL: the test process may ignore SIGTERM, and its children inherit that.
            kill(server.processIdentifier, SIGKILL)
            server.waitUntilExit()
        }
        #expect(serve.wait { _, error in error.contains("JWKS fetch recovered") }, "\(serve.standardError)")
        #expect(serve.stop() == 0)

        let lines = serve.standardError.split(separator: "\n").map(String.init)
        let objects = lines.map { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        for (line, object) in zip(lines, objects) {
            #expect(object?["time"] is String && object?["level"] is String && object?["msg"] is String, "not a JSON event: \(line)")
        }
        let jwksFailure = objects.first { ($0?["msg"] as? String)?.hasPrefix("JWKS fetch failed") == true } ?? nil
        #expect(jwksFailure?["level"] as? String == "warning")
        #expect(jwksFailure?["logger"] as? String == "gatehouse.jwks")
        #expect(jwksFailure?["url"] as? String == "http://127.0.0.1:\(jwksPort)/jwks.json")
        #expect((jwksFailure?["error"] as? String)?.isEmpty == false)
        #expect((jwksFailure?["time"] as? String)?.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"#, options: .regularExpression) != nil)

        let feedFailure = objects.first { ($0?["msg"] as? String)?.hasPrefix("revocation feed failed") == true } ?? nil
        #expect(feedFailure?["level"] as? String == "warning" && feedFailure?["source"] as? String == "postgres")
        #expect(!serve.standardError.contains("s3cr3t"), "the feed's conninfo is never logged")
        #expect(
            lines.filter { $0.contains("revocation feed failed") }.count == 1, "a feed that keeps failing is logged once, then counted"
        )

        let recovered = objects.first { ($0?["msg"] as? String) == "JWKS fetch recovered" } ?? nil
        #expect(recovered?["level"] as? String == "info")
        let symmetric = objects.first { ($0?["msg"] as? String)?.hasPrefix("symmetric (oct) keys") == true } ?? nil
        #expect(symmetric?["level"] as? String == "warning" && symmetric?["keys"] as? String == "1")
    }

    @Test("log_format text: the same warning as `time level msg key=value`")
    func textEvents() throws {
        let directory = try temporaryDirectory()
        let jwksPort = try TestPostgres.freePort()
        let feedPort = try TestPostgres.freePort()
        try Self.configuration(jwksPort: jwksPort, feedPort: feedPort, format: "text")
            .write(to: directory.appendingPathComponent("gateway.conf"), atomically: true, encoding: .utf8)
        let serve = try SplitServeProcess(arguments: ["serve"], directory: directory)
        #expect(serve.wait { _, error in error.contains("JWKS fetch failed") }, "\(serve.standardError)")
        #expect(serve.stop() == 0)
        let line = serve.standardError.split(separator: "\n").first { $0.contains("JWKS fetch failed") }.map(String.init) ?? ""
        #expect(
            line.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z warning JWKS fetch failed"#, options: .regularExpression) != nil, "\(line)"
        )
        #expect(line.contains("logger=gatehouse.jwks") && line.contains("url=http://127.0.0.1:\(jwksPort)/jwks.json"), "\(line)")
    }
}
