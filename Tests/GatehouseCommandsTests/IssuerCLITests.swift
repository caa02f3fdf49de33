// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseJOSE
import GatehouseTestSupport
import Testing

/// A running `gatehouse serve` child process, stopped with SIGTERM.
final class ServeProcess {
    let process = Process()
    private let output = Pipe()
    private(set) var text = ""

    /// `launcher`: a command that runs `gatehouse` (e.g. `taskset -c 0`), by absolute path first.
    init(arguments: [String], directory: URL, launcher: [String] = []) throws {
        self.process.executableURL = launcher.first.map { URL(fileURLWithPath: $0) } ?? CLI.executable
        self.process.arguments = launcher.isEmpty ? arguments : launcher.dropFirst() + [CLI.executable.path] + arguments
        self.process.currentDirectoryURL = directory
        self.process.environment = ProcessInfo.processInfo.environment.filter { $0.key != "GATEHOUSE_CONFIG" }
        self.process.standardOutput = self.output
        self.process.standardError = self.output
        try self.process.run()
    }

    /// Reads output until `marker` appears (or 20 s pass).
    func wait(for marker: String) -> Bool {
        let deadline = Date().addingTimeInterval(20)
        while !self.text.contains(marker), Date() < deadline, self.process.isRunning {
            self.text += String(decoding: self.output.fileHandleForReading.availableData, as: UTF8.self)
        }
        return self.text.contains(marker)
    }

    func stop() -> Int32 {
        kill(self.process.processIdentifier, SIGTERM)
        self.process.waitUntilExit()
        return self.process.terminationStatus
    }
}

@Suite("issuer from the command line", .serialized)
struct IssuerCLITests {
    static func post(_ port: Int, _ path: String, _ json: String, bearer: String? = nil) throws -> RawHTTPClient.Response {
        var headers = [("Content-Type", "application/json")]
        if let bearer { headers.append(("Authorization", "Bearer \(bearer)")) }
        return try RawHTTPClient.request(port: port, "POST", path, headers: headers, body: Array(json.utf8))
    }

    @Test("serve without a configuration runs the development setup on 127.0.0.1:8080")
    func developmentSetup() throws {
        let directory = try temporaryDirectory()
        let serve = try ServeProcess(arguments: ["serve"], directory: directory)
        #expect(serve.wait(for: "admin listening"), "\(serve.text)")
        #expect(serve.text.contains("development setup"))
        #expect(serve.text.contains("route /demo/ -> http://127.0.0.1:"))
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent(".gatehouse/es256.pem").path))
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent(".gatehouse/gatehouse.db").path))

        let registered = try Self.post(8080, "/auth/register", #"{"email":"dev@example.com","password":"development"}"#)
        #expect(registered.status == 201)
        let access = try #require(registered.json?["access_token"] as? String)
        let demo = try RawHTTPClient.request(port: 8080, "GET", "/demo/hello", headers: [("Authorization", "Bearer \(access)")])
        #expect(demo.status == 200)
        let seen = demo.json?["headers"] as? [String: [String]]
        #expect(seen?["x-user-id"] == ["1"])
        #expect(try RawHTTPClient.request(port: 8080, "GET", "/demo/hello").status == 401)
        #expect(try RawHTTPClient.request(port: 9901, "GET", "/readyz").status == 200)
        #expect(serve.stop() == 0)

        // A second start reuses the key and the database.
        let again = try ServeProcess(arguments: ["serve"], directory: directory)
        #expect(again.wait(for: "admin listening"))
        #expect(!again.text.contains("generated"))
        #expect(try Self.post(8080, "/auth/login", #"{"email":"dev@example.com","password":"development"}"#).status == 200)
        #expect(again.stop() == 0)
    }

    @Test("migrate, users create / grant-role / revoke-role, then log in through serve")
    func usersCommands() throws {
        let directory = try temporaryDirectory()
        let kid = try CLI.run(["keys", "generate", "--out", directory.path]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        let port = 20_000 + Int.random(in: 0..<2000)
        let conf = directory.appendingPathComponent("gateway.conf")
        try """
            listen: 127.0.0.1:\(port)
            admin_listen: 127.0.0.1:0
            issuer:
              issuer: http://cli.test
              signing: { key_file: \(kid).pem }
              database: sqlite:users.db
              auto_migrate: false
              argon2: { memory_kib: 1024, iterations: 1, parallelism: 1 }
            routes: []

            """.write(to: conf, atomically: true, encoding: .utf8)
        let notMigrated = try ServeProcess(arguments: ["serve", "--config", conf.path], directory: directory)
        notMigrated.process.waitUntilExit()
        #expect(notMigrated.process.terminationStatus == 1)

        let migrate = try CLI.run(["migrate", "--config", conf.path])
        #expect(migrate.status == 0 && migrate.output.contains("applied migrations 1"), "\(migrate.error)")
        #expect(try CLI.run(["migrate", "--config", conf.path]).output.contains("schema up to date"))

        let create = try CLI.run(
            ["users", "create", "--email", "Boss@Example.com", "--role", "editor", "--password-stdin", "--config", conf.path],
            input: "a long password\n"
        )
        #expect(create.status == 0 && create.output.contains("boss@example.com (editor)"), "\(create.error)")
        let duplicate = try CLI.run(
            ["users", "create", "--email", "boss@example.com", "--password-stdin", "--config", conf.path], input: "a long password\n"
        )
        #expect(duplicate.status != 0 && duplicate.error.contains("exists"))
        let noTerminal = try CLI.run(["users", "create", "--email", "x@example.com", "--config", conf.path])
        #expect(noTerminal.status != 0 && noTerminal.error.contains("--password-stdin"))
        #expect(try CLI.run(["users", "grant-role", "--email", "boss@example.com", "--role", "admin", "--config", conf.path]).status == 0)
        #expect(try CLI.run(["users", "grant-role", "--email", "boss@example.com", "--role", "root", "--config", conf.path]).status != 0)
        #expect(try CLI.run(["users", "revoke-role", "--email", "boss@example.com", "--role", "editor", "--config", conf.path]).status == 0)

        let serve = try ServeProcess(arguments: ["serve", "--config", conf.path], directory: directory)
        #expect(serve.wait(for: "admin listening"), "\(serve.text)")
        #expect(serve.text.contains("issuer on: iss http://cli.test"))
        let login = try Self.post(port, "/auth/login", #"{"email":"boss@example.com","password":"a long password"}"#)
        #expect(login.status == 200)
        let user = login.json?["user"] as? [String: Any]
        #expect(user?["roles"] as? [String] == ["admin"])

        // Another process ends the user's sessions; serve, following its SQLite store, refuses the
        // access token within a poll (500 ms).
        let access = try #require(login.json?["access_token"] as? String)
        #expect(try RawHTTPClient.request(port: port, "GET", "/users/me", headers: [("Authorization", "Bearer \(access)")]).status == 200)
        let revoke = try CLI.run(["sessions", "revoke", "--user", "Boss@Example.com", "--config", conf.path])
        #expect(revoke.status == 0 && revoke.output.contains("revoked 1 session of boss@example.com"), "\(revoke.output)\(revoke.error)")
        var status = 200
        let deadline = Date().addingTimeInterval(3)
        while status == 200, Date() < deadline {
            usleep(20_000)
            status = try RawHTTPClient.request(port: port, "GET", "/users/me", headers: [("Authorization", "Bearer \(access)")]).status
        }
        #expect(status == 401)
        #expect(try CLI.run(["sessions", "revoke", "--sid", "no-such-session", "--config", conf.path]).status != 0)
        // A session id may begin with "-" (base64url): it is read as the value, not as an option.
        let dashed = try CLI.run(["sessions", "revoke", "--sid", "-q3Xz", "--config", conf.path])
        #expect(dashed.status != 0 && dashed.error.contains("no session -q3Xz"), "\(dashed.error)")
        #expect(try CLI.run(["sessions", "revoke", "--config", conf.path]).status != 0)
        #expect(try CLI.run(["sessions", "revoke", "--user", "a@b.co", "--sid", "x", "--config", conf.path]).status != 0)
        #expect(serve.stop() == 0)
    }
}
