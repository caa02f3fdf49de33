// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseTestSupport
import Testing

/// `serve` for a person at a terminal: start-up errors are one sentence and exit 1; lines are
/// text or JSON as asked.
@Suite("serve: start-up errors and log formats", .serialized)
struct ServeStartTests {
    /// Runs `serve` with `yaml` until it exits (for configurations that must not start).
    static func serveFails(_ yaml: String, in directory: URL) throws -> CLI.Result {
        let conf = directory.appendingPathComponent("gateway-\(UUID().uuidString).conf")
        try yaml.write(to: conf, atomically: true, encoding: .utf8)
        return try CLI.run(["serve", "--config", conf.path], directory: directory)
    }

    static func expectOneSentence(_ result: CLI.Result, mentioning phrase: String) {
        #expect(result.status == 1)
        let lines = result.error.split(separator: "\n")
        #expect(lines.count == 1 && lines.first?.hasPrefix("error: ") == true, "\(result.error)")
        #expect(result.error.contains(phrase), "\(result.error)")
        #expect(!result.error.contains("Fatal error") && !result.output.contains("listening"))
    }

    @Test("a port in use, a bad key file and an unreachable database: one sentence each, exit 1")
    func startErrors() throws {
        let directory = try temporaryDirectory()
        // A port someone else listens on.
        let holder = Process()
        holder.executableURL = CLI.executable
        let port = try TestPostgres.freePort()
        holder.arguments = ["echo", "--listen", "127.0.0.1:\(port)"]
        let holderOutput = Pipe()
        holder.standardOutput = holderOutput
        try holder.run()
        defer {
            holder.terminate()
            holder.waitUntilExit()
        }
        _ = holderOutput.fileHandleForReading.availableData
        let routes = "routes:\n  - { prefix: /, upstream: \"http://127.0.0.1:9\", auth: public }\n"
        Self.expectOneSentence(
            try Self.serveFails("listen: 127.0.0.1:\(port)\nadmin_listen: 127.0.0.1:0\n" + routes, in: directory),
            mentioning: "127.0.0.1:\(port): the address is already in use"
        )

        try "not a key\n".write(to: directory.appendingPathComponent("bad.pem"), atomically: true, encoding: .utf8)
        let issuer = "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nissuer:\n  issuer: http://x.test\n"
        Self.expectOneSentence(
            try Self.serveFails(issuer + "  signing: { key_file: bad.pem }\n  database: sqlite:x.db\n" + routes, in: directory),
            mentioning: "bad.pem"
        )

        let kid = try CLI.run(["keys", "generate", "--out", directory.path]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        let closed = try TestPostgres.freePort()
        Self.expectOneSentence(
            try Self.serveFails(
                issuer + "  signing: { key_file: \(kid).pem }\n  database: \"postgresql://u:p@127.0.0.1:\(closed)/db?connect_timeout=2\"\n" + routes,
                in: directory
            ),
            mentioning: "cannot connect to PostgreSQL"
        )
    }

    @Test("--log-format json: every line a JSON object; text: plain lines, the access log as key=value")
    func logFormats() throws {
        let directory = try temporaryDirectory()
        let port = try TestPostgres.freePort()
        try """
            listen: 127.0.0.1:\(port)
            admin_listen: 127.0.0.1:0
            routes:
              - { prefix: /, upstream: "http://127.0.0.1:9", auth: public }

            """.write(to: directory.appendingPathComponent("gateway.conf"), atomically: true, encoding: .utf8)
        for format in ["json", "text"] {
            let serve = try ServeProcess(arguments: ["serve", "--log-format", format], directory: directory)
            #expect(serve.wait(for: "admin listening"), "\(serve.text)")
            #expect(try RawHTTPClient.request(port: port, "GET", "/orders?secret=1").status == 502)
            #expect(serve.wait(for: "/orders"), "the access-log line arrives within its 100 ms flush")
            #expect(serve.stop() == 0)
            let lines = serve.text.split(separator: "\n").map(String.init)
            let request = lines.first { $0.contains("/orders") } ?? ""
            #expect(!request.contains("secret"), "the query is never logged")
            if format == "json" {
                for line in lines {
                    let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                    #expect(object?["time"] is String && object?["msg"] is String, "\(line)")
                }
                #expect(request.contains(#""status":502"#))
            } else {
                #expect(lines.contains { $0.hasPrefix("gatehouse listening on 127.0.0.1:\(port)") })
                #expect(request.contains(" request ") && request.contains("path=/orders") && request.contains("status=502"), "\(request)")
            }
        }
    }

    @Test("threads: 0 and the Argon2 pool follow the CPUs the process may use: one under taskset -c 0")
    func sizedByAffinity() throws {
        let directory = try temporaryDirectory()
        let kid = try CLI.run(["keys", "generate", "--out", directory.path]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        try """
            listen: 127.0.0.1:0
            admin_listen: 127.0.0.1:0
            issuer:
              issuer: http://127.0.0.1
              signing: { key_file: \(kid).pem }
              database: sqlite:gatehouse.db
            routes: []

            """.write(to: directory.appendingPathComponent("gateway.conf"), atomically: true, encoding: .utf8)
        let pinned = try ServeProcess(arguments: ["serve", "--log-format", "text"], directory: directory, launcher: ["/usr/bin/taskset", "-c", "0"])
        #expect(pinned.wait(for: "admin listening"), "\(pinned.text)")
        #expect(pinned.stop() == 0)
        #expect(pinned.text.contains("(1 event loop, issuer on:"), "\(pinned.text)")
        #expect(pinned.text.contains("argon2 workers 1"), "\(pinned.text)")
    }
}
