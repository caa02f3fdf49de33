// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseTestSupport
import Testing

/// SIGTERM and SIGINT through `serve`'s service group: the listeners close, idle keep-alive
/// connections close, the exchange in flight finishes within `shutdown_grace`, and the process
/// exits 0 as soon as the last connection has closed — not after the grace.
@Suite("serve: graceful shutdown", .serialized)
struct GracefulShutdownTests {
    /// An upstream that answers `GET` after `delay` seconds and says `got PATH` when one arrives.
    final class SlowUpstream {
        let process = Process()
        let port: Int
        private let output = SplitServeProcess.Collected()

        init(delay: Double) throws {
            self.port = try TestPostgres.freePort()
            let script = """
                import http.server, time
                class Slow(http.server.BaseHTTPRequestHandler):
                    protocol_version = "HTTP/1.1"
                    def do_GET(self):
                        print("got", self.path, flush=True)
                        time.sleep(\(delay))
                        body = b"slow answer"
                        self.send_response(200)
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                    def log_message(self, *args): pass
                server = http.server.ThreadingHTTPServer(("127.0.0.1", \(self.port)), Slow)
                print("ready", flush=True)
                server.serve_forever()
                """
            self.process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            self.process.arguments = ["python3", "-c", script]
            let pipe = Pipe()
            self.process.standardOutput = pipe
            self.process.standardError = FileHandle.nullDevice
            try self.process.run()
            let output = self.output
            let handle = pipe.fileHandleForReading
            Thread.detachNewThread {
                while case let data = handle.availableData, !data.isEmpty { output.append(data) }
            }
        }

        /// Waits until the upstream has said `text`, up to `seconds`.
        func wait(for text: String, seconds: Double = 10) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while !self.output.value.contains(text), Date() < deadline { usleep(20_000) }
            return self.output.value.contains(text)
        }

        deinit {
            // SIGKILL: the test process may ignore SIGTERM, and its children inherit that.
            kill(self.process.processIdentifier, SIGKILL)
            self.process.waitUntilExit()
        }
    }

    /// `serve` on a free port in a fresh folder, every path routed to `upstream`, once it listens.
    static func serve(upstream: Int, grace: String) throws -> (SplitServeProcess, port: Int, admin: Int) {
        let directory = try temporaryDirectory()
        let (port, admin) = (try TestPostgres.freePort(), try TestPostgres.freePort())
        try """
            listen: 127.0.0.1:\(port)
            admin_listen: 127.0.0.1:\(admin)
            shutdown_grace: \(grace)
            issuer: { enabled: false }
            routes:
              - { prefix: /, upstream: "http://127.0.0.1:\(upstream)", auth: public, timeout: 30s }

            """.write(to: directory.appendingPathComponent("gateway.conf"), atomically: true, encoding: .utf8)
        let serve = try SplitServeProcess(arguments: ["serve", "--log-format", "text"], directory: directory)
        guard serve.wait(until: { output, _ in output.contains("admin listening") }) else {
            kill(serve.process.processIdentifier, SIGKILL)
            Issue.record("serve did not start: \(serve.standardOutput)\(serve.standardError)")
            throw CancellationError()
        }
        return (serve, port, admin)
    }

    /// Sends `signal` to `serve` and waits until it exits: exit 0 is expected, the seconds it
    /// took are returned.
    static func stop(_ serve: SplitServeProcess, with signal: Int32) -> TimeInterval {
        let signalled = Date()
        kill(serve.process.processIdentifier, signal)
        serve.process.waitUntilExit()
        let elapsed = Date().timeIntervalSince(signalled)
        #expect(serve.process.terminationReason == .exit && serve.process.terminationStatus == 0, "signal \(signal): \(serve.standardError)")
        return elapsed
    }

    /// Whether a new connection to `port` is refused, within `seconds`.
    static func refuses(port: Int, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            do { _ = try RawHTTPClient(port: port, timeoutSeconds: 1) } catch { return true }
            usleep(20_000)
        } while Date() < deadline
        return false
    }

    @Test("SIGTERM with a slow exchange in flight: the listeners close, an idle connection closes, the exchange completes, exit 0 long before the grace")
    func drainsInFlight() throws {
        let upstream = try SlowUpstream(delay: 4)
        #expect(upstream.wait(for: "ready"))
        let (serve, port, admin) = try Self.serve(upstream: upstream.port, grace: "20s")
        defer { if serve.process.isRunning { kill(serve.process.processIdentifier, SIGKILL) } }

        // An idle keep-alive connection: one exchange done, the next not begun.
        let idle = try RawHTTPClient(port: port, timeoutSeconds: 10)
        try idle.send("GET /quick HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(upstream.wait(for: "got /quick"))
        #expect(try idle.readResponse().status == 200)

        let busy = try RawHTTPClient(port: port, timeoutSeconds: 15)
        try busy.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        // The request has reached the upstream, which answers four seconds later.
        #expect(upstream.wait(for: "got /slow"))

        let signalled = Date()
        kill(serve.process.processIdentifier, SIGTERM)
        #expect(serve.wait(seconds: 5) { output, _ in output.contains("gatehouse draining (up to 20 s)") }, "\(serve.standardOutput)")
        // Both within a second, while the exchange is still in flight.
        #expect(Self.refuses(port: port, seconds: 1), "the gateway listener closed at SIGTERM")
        #expect(Self.refuses(port: admin, seconds: 1), "the admin listener closed at SIGTERM, not after the drain")
        #expect(idle.isClosedByPeer(), "the idle keep-alive connection closed at SIGTERM")
        #expect(serve.process.isRunning, "the exchange in flight holds the process")

        let response = try busy.readResponse()
        #expect(response.status == 200 && response.text == "slow answer")
        #expect(response.header("connection") == "close")
        #expect(busy.isClosedByPeer())

        serve.process.waitUntilExit()
        let elapsed = Date().timeIntervalSince(signalled)
        #expect(serve.process.terminationReason == .exit && serve.process.terminationStatus == 0, "\(serve.standardError)")
        #expect(elapsed < 10, "exited \(elapsed) s after SIGTERM: when the last exchange ended, not after shutdown_grace (20 s)")
    }

    @Test("SIGTERM with an exchange longer than shutdown_grace: it is cut off at the grace, exit 0")
    func graceRunsOut() throws {
        let upstream = try SlowUpstream(delay: 30)
        #expect(upstream.wait(for: "ready"))
        let (serve, port, _) = try Self.serve(upstream: upstream.port, grace: "1s")
        defer { if serve.process.isRunning { kill(serve.process.processIdentifier, SIGKILL) } }

        let busy = try RawHTTPClient(port: port, timeoutSeconds: 15)
        try busy.send("GET /forever HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(upstream.wait(for: "got /forever"))

        let elapsed = Self.stop(serve, with: SIGTERM)
        #expect(elapsed >= 0.9 && elapsed < 6, "exited \(elapsed) s after SIGTERM, the grace being 1 s")
        #expect(throws: (any Error).self, "the exchange was cut off without a response") { try busy.readResponse() }
    }

    @Test("SIGTERM or SIGINT with only an idle keep-alive connection: it closes, exit 0 at once")
    func idle() throws {
        let upstream = try SlowUpstream(delay: 0)
        #expect(upstream.wait(for: "ready"))
        for signal in [SIGTERM, SIGINT] {
            let (serve, port, _) = try Self.serve(upstream: upstream.port, grace: "20s")
            defer { if serve.process.isRunning { kill(serve.process.processIdentifier, SIGKILL) } }
                let idle = try RawHTTPClient(port: port)
            try idle.send("GET /once HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(try idle.readResponse().status == 200)

            let elapsed = Self.stop(serve, with: signal)
            #expect(elapsed < 3, "signal \(signal): exited \(elapsed) s after it, with shutdown_grace 20 s")
            #expect(idle.isClosedByPeer())
        }
    }
}
