// SPDX-License-Identifier: Apache-2.0
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A throwaway PostgreSQL server on 127.0.0.1 for tests: its own data directory under the system's
/// temp directory, a free port, fsync off. Run as the `postgres` user when the tests run as root
/// (initdb refuses root). Never a mock: the store tests and the issuer tests talk to it over TCP.
///
/// `shared` is one server per test process, stopped at exit; each test makes its own database.
/// Tests that stop and start the server make their own instance.
public final class TestPostgres: @unchecked Sendable {
    public let port: Int
    public let directory: String
    private let password = "gatehouse-test"
    private static let binaries = "/usr/lib/postgresql/15/bin"
    private let lock = NSLock()
    private var databases = 0

    public enum Failure: Error, CustomStringConvertible {
        case command(String, String)
        public var description: String {
            switch self {
            case .command(let command, let output): return "\(command) failed: \(output)"
            }
        }
    }

    /// The server of this test process, started on first use.
    public static let shared: Result<TestPostgres, any Error> = Result { try TestPostgres() }

    /// Starts a server; a port found free and taken by another test before the server binds it
    /// makes it try the next free port (three attempts).
    public convenience init() throws {
        var attempt = 1
        while true {
            do {
                try self.init(port: try Self.freePort())
                return
            } catch where attempt < 3 {
                attempt += 1
            }
        }
    }

    private init(port: Int) throws {
        self.port = port
        self.directory = NSTemporaryDirectory() + "gatehouse-pg-\(getpid())-\(self.port)"
        try? FileManager.default.removeItem(atPath: self.directory)
        try FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o777])
        try self.password.write(toFile: self.directory + "/pwfile", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: self.directory + "/pwfile")
        try self.run(
            "\(Self.binaries)/initdb", "-D", self.directory + "/data", "-U", "gatehouse", "--pwfile=\(self.directory)/pwfile",
            "-A", "scram-sha-256", "--no-sync"
        )
        try self.start()
        TestPostgres.registerForExit(self)
    }

    /// A conninfo URI for a new, empty database.
    public func makeDatabase() throws -> String {
        let name = self.lock.withLock {
            self.databases += 1
            return "test_\(self.databases)"
        }
        try self.run(
            "/usr/bin/env", "PGPASSWORD=\(self.password)", "\(Self.binaries)/psql", "-h", "127.0.0.1", "-p", String(self.port), "-U", "gatehouse",
            "-d", "postgres", "-q", "-c", "CREATE DATABASE \(name)"
        )
        return self.url(database: name)
    }

    public func url(database: String) -> String {
        "postgresql://gatehouse:\(self.password)@127.0.0.1:\(self.port)/\(database)?connect_timeout=5"
    }

    public func start() throws {
        try self.run(
            "\(Self.binaries)/pg_ctl", "-D", self.directory + "/data", "-l", self.directory + "/log", "-w", "-t", "30", "start", "-o",
            "-c listen_addresses=127.0.0.1 -p \(self.port) -k \(self.directory) -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
    }

    public func stop() throws {
        try self.run("\(Self.binaries)/pg_ctl", "-D", self.directory + "/data", "-w", "-m", "fast", "stop")
    }

    /// Runs a command, as `postgres` when we are root; throws with its output when it fails.
    private func run(_ arguments: String...) throws {
        let outputPath = self.directory + "/command-\(UUID().uuidString).out"
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        let status = Self.spawn(getuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--"] + arguments : arguments, output: outputPath)
        guard status == 0 else {
            let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
            throw Failure.command(arguments.joined(separator: " "), "exit \(status): \(text)")
        }
    }

    /// posix_spawn + waitpid. (Foundation's `Process.waitUntilExit` was seen to hang here after
    /// `pg_ctl start` had exited.) Output goes to a file: the server that `pg_ctl start` leaves
    /// running would hold a pipe open forever.
    private static func spawn(_ arguments: [String], output: String) -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid = pid_t()
        guard posix_spawn(&pid, arguments[0], &actions, nil, argv, environ) == 0 else { return -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        // WIFEXITED / WEXITSTATUS are macros.
        return (status & 0x7F) == 0 ? (status >> 8) & 0xFF : -1
    }

    /// A port on 127.0.0.1 that was free a moment ago (the kernel picked it).
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw Failure.command("bind", "no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    // Servers still running when the test process exits are stopped (immediate mode) and removed.
    private static let running = NSLock()
    nonisolated(unsafe) private static var directories: [String] = []

    private static func registerForExit(_ server: TestPostgres) {
        Self.running.withLock {
            if Self.directories.isEmpty { atexit { TestPostgres.stopAll() } }
            Self.directories.append(server.directory)
        }
    }

    private static func stopAll() {
        for directory in Self.running.withLock({ Self.directories }) {
            let stop = ["\(Self.binaries)/pg_ctl", "-D", directory + "/data", "-m", "immediate", "stop"]
            _ = Self.spawn(getuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--"] + stop : stop, output: "/dev/null")
            try? FileManager.default.removeItem(atPath: directory)
        }
    }
}
