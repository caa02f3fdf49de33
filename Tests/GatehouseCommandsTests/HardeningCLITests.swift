// SPDX-License-Identifier: Apache-2.0
import Foundation
@testable import GatehouseCommands
import GatehouseCrypto
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Hardening II, finding 11: private files and masked secrets, through the real commands.
@Suite("Private files and masked secrets")
struct HardeningCLITests {
    static func mode(_ path: String) -> mode_t? {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        return status.st_mode & 0o777
    }

    @Test("keys generate creates the private key 0600 from the first byte: one O_CREAT|O_EXCL open with mode 0600, no chmod, no rename")
    func keyFileNeverLooser() throws {
        let directory = try temporaryDirectory()
        let trace = directory.appendingPathComponent("trace").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/strace")
        process.arguments = [
            "-f", "-qq", "-o", trace, "-e", "trace=open,openat,creat,chmod,fchmod,fchmodat,rename,renameat,renameat2,link,linkat",
            CLI.executable.path, "keys", "generate", "--out", directory.appendingPathComponent("keys").path,
        ]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let kid = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0 && !kid.isEmpty)
        let pem = directory.appendingPathComponent("keys/\(kid).pem").path
        #expect(Self.mode(pem) == 0o600)
        let calls = try String(contentsOfFile: trace, encoding: .utf8).split(separator: "\n").filter { $0.contains("keys/") }
        let creations = calls.filter { $0.contains("O_CREAT") && !$0.contains(".jwk.json") }
        #expect(creations.count == 1, "\(calls)")
        #expect(creations.allSatisfy { $0.contains("\(kid).pem\"") && $0.contains("O_EXCL") && $0.contains(", 0600)") }, "\(creations)")
        #expect(!calls.contains { $0.contains("chmod") || $0.contains("rename") || $0.contains("link(") }, "\(calls)")
        // It never overwrites: the key file was new.
        #expect(try String(contentsOfFile: pem, encoding: .utf8).hasPrefix("-----BEGIN PRIVATE KEY-----"))
    }

    @Test("migrate creates the SQLite database 0600; users and sessions tighten one left 0644")
    func databaseModes() throws {
        let directory = try temporaryDirectory()
        let kid = try CLI.run(["keys", "generate", "--out", directory.path]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        let conf = directory.appendingPathComponent("gateway.conf")
        try """
            issuer:
              issuer: http://cli.test
              signing: { key_file: \(kid).pem }
              database: sqlite:users.db
              argon2: { memory_kib: 1024, iterations: 1, parallelism: 1 }
            routes: []

            """.write(to: conf, atomically: true, encoding: .utf8)
        let database = directory.appendingPathComponent("users.db").path
        func files() -> [String] { [database, database + "-wal", database + "-shm"].filter { FileManager.default.fileExists(atPath: $0) } }
        let migrate = try CLI.run(["migrate", "--config", conf.path])
        #expect(migrate.status == 0, "\(migrate.error)")
        #expect(files().contains(database))
        for file in files() { #expect(Self.mode(file) == 0o600, "migrate: \(file)") }

        let commands: [([String], String?)] = [
            (["users", "create", "--email", "ann@example.com", "--password-stdin"], "a long password\n"),
            (["users", "grant-role", "--email", "ann@example.com", "--role", "editor"], nil),
            (["sessions", "revoke", "--user", "ann@example.com"], nil),
        ]
        for (arguments, input) in commands {
            for file in files() { chmod(file, 0o644) }
            let result = try CLI.run(arguments + ["--config", conf.path], input: input)
            #expect(result.status == 0, "\(arguments): \(result.error)")
            for file in files() { #expect(Self.mode(file) == 0o600, "\(arguments[0]) \(arguments[1]): \(file)") }
        }
    }

    @Test("config check masks the database password in every form libpq reads", arguments: [
        ("postgresql://gh:s3cr3t@127.0.0.1:5432/gh", "postgresql://gh:***@127.0.0.1:5432/gh"),
        ("postgres://gh:s3cr3t@db/gh?sslmode=require", "postgres://gh:***@db/gh?sslmode=require"),
        ("postgresql://gh:s3@cr3t@db/gh", "postgresql://gh:***@db/gh"),
        ("postgresql://gh:s3cr3t@h1:5432,h2:5433/gh?target_session_attrs=read-write", "postgresql://gh:***@h1:5432,h2:5433/gh?target_session_attrs=read-write"),
        ("postgresql://gh@db/gh?password=s3cr3t", "postgresql://gh@db/gh?password=***"),
        ("postgresql:///gh?host=/run/pg&password=s3cr3t&sslmode=disable", "postgresql:///gh?host=/run/pg&password=***&sslmode=disable"),
        ("postgresql://db/gh?%70assword=s3cr3t", "postgresql://db/gh?%70assword=***"),
        ("host=db password=s3cr3t dbname=gh", "host=db password=*** dbname=gh"),
        ("host=db password = s3cr3t dbname=gh", "host=db password = *** dbname=gh"),
        ("host=db\tpassword=\ts3cr3t\tdbname=gh", "host=db\tpassword=\t***\tdbname=gh"),
        (#"host=db password='s3 cr\' 3t' dbname=gh"#, "host=db password=*** dbname=gh"),
        (#"password=s3\ cr3t host=db"#, "password=*** host=db"),
        ("password=s3cr3t", "password=***"),
        ("dbname='postgresql://gh:s3cr3t@db/gh'", "dbname='postgresql://gh:***@db/gh'"),
        ("dbname='host=db password=s3cr3t'", "dbname='host=db password=***'"),
        ("host=db dbname=gh user=gh", "host=db dbname=gh user=gh"),
        ("sqlite:/var/lib/gatehouse.db", "sqlite:/var/lib/gatehouse.db"),
    ])
    func masking(_ database: String, _ expected: String) {
        let masked = EffectiveConfig.maskPassword(database)
        #expect(masked == expected)
        #expect(!masked.contains("s3") && !masked.contains("cr3t"))
    }

    @Test("config check prints no database password and no previous refresh secret")
    func configCheck() throws {
        let directory = try temporaryDirectory()
        try EVPKey.generate(.ec(.p256)).privateKeyPEM().write(to: directory.appendingPathComponent("signing.pem"), atomically: true, encoding: .utf8)
        for database in [#"'host=127.0.0.1 password = ''hun ter\'' 2'' dbname=gh'"#, "postgresql://gh@127.0.0.1/gh?sslmode=disable&password=hunter2"] {
            try """
                issuer:
                  issuer: https://auth.test
                  signing: { key_file: signing.pem }
                  database: \(database)
                  previous_refresh_secrets: [old-refresh-secret-hunter2-0123456789]
                routes: []

                """.write(to: directory.appendingPathComponent("gateway.conf"), atomically: true, encoding: .utf8)
            let check = try CLI.run(["config", "check", "--config", directory.appendingPathComponent("gateway.conf").path])
            #expect(check.status == 0, "\(check.error)")
            #expect(check.output.contains("database: ") && !check.output.contains("hun"), "\(check.output)")
            #expect(check.output.contains("previous_refresh_secrets: ['***']"))
        }
    }
}
