// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatehouseStore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Hardening II, finding 11: the SQLite database and its `-wal`/`-shm` files are private (0600),
/// created so and tightened when found looser (DESIGN.md, "Operations").
@Suite("SQLite file modes", .serialized)
struct SQLiteFileModeTests {
    static func mode(_ path: String) -> mode_t? {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        return status.st_mode & 0o777
    }

    static func newPath() -> String { NSTemporaryDirectory() + "gatehouse-modes-\(UUID().uuidString).db" }

    @Test("a new database and its -wal and -shm files are 0600 under the usual umask 022")
    func created() throws {
        let previous = umask(0o022)
        defer { umask(previous) }
        let path = Self.newPath()
        let store = try Store.open("sqlite:" + path)
        defer { store.database.close() }
        try store.migrate(now: 0)
        _ = try store.createUser(email: "ann@example.com", name: nil, passwordHash: "h", role: "viewer", now: 0)
        for file in [path, path + "-wal", path + "-shm"] {
            #expect(Self.mode(file) == 0o600, "\(file): \(String(Self.mode(file) ?? 0, radix: 8))")
        }
    }

    @Test("an existing database left 0644 (and its -wal/-shm) is tightened to 0600 when opened")
    func tightened() throws {
        let path = Self.newPath()
        do {
            let store = try Store.open("sqlite:" + path)
            try store.migrate(now: 0)
            store.database.close()
        }
        // As an older version or a copy left them; a stray -wal and -shm too.
        for file in [path + "-wal", path + "-shm"] where !FileManager.default.fileExists(atPath: file) {
            #expect(FileManager.default.createFile(atPath: file, contents: nil))
        }
        for file in [path, path + "-wal", path + "-shm"] { chmod(file, 0o644) }
        let store = try Store.open("sqlite:" + path)
        defer { store.database.close() }
        #expect(try store.roles().count == 3)
        for file in [path, path + "-wal", path + "-shm"] {
            #expect(Self.mode(file) == 0o600, "\(file): \(String(Self.mode(file) ?? 0, radix: 8))")
        }
    }
}
