// SPDX-License-Identifier: Apache-2.0
private import CGatehouseSQLite
import Dispatch
import NIOConcurrencyHelpers
#if canImport(Glibc)
import Glibc
#endif

/// The embedded store: one SQLite file in WAL mode behind one connection. Calls are serialised by
/// a lock (each takes microseconds); other processes on the same file (`gatehouse users …` while
/// `serve` runs) wait up to the busy timeout.
///
/// Commits do not fsync (WAL with `synchronous=NORMAL`); checkpoints do, and SQLite's automatic
/// checkpoint would run one inside whichever commit crosses 1000 pages, stalling every request
/// queued behind it (measured: refresh p99 181 ms). A second connection checkpoints instead, once
/// a second, off the request path (PASSIVE: it never blocks the writer).
public final class SQLiteDatabase: SQLDatabase {
    public var dialect: SQLDialect { .sqlite }
    private let connection: NIOLockedValueBox<SQLiteConnection?>
    private let checkpointer: Checkpointer
    public let path: String

    /// Opens (creating if needed) the database file at `path`. The file and its `-wal` and `-shm`
    /// files are private (0600): a new database file is created so before SQLite opens it (SQLite
    /// gives the `-wal` and `-shm` files it creates the database file's mode), and an existing
    /// file, or a `-wal`/`-shm` left looser by an older version, is tightened.
    public init(path: String) throws(StoreError) {
        self.path = path
        try Self.makePrivate(path)
        let connection = try SQLiteConnection(path: path)
        try connection.executeScript("PRAGMA wal_autocheckpoint=0")
        self.connection = NIOLockedValueBox(connection)
        self.checkpointer = Checkpointer(connection: try SQLiteConnection(path: path))
        // WAL mode is on now, so the -wal and -shm files exist.
        try Self.makePrivate(path)
    }

    /// Creates `path` empty with mode 0600 if it is missing (never following a link), and takes
    /// group and other permissions away from it and its `-wal` and `-shm` files.
    static func makePrivate(_ path: String) throws(StoreError) {
        guard !path.isEmpty, path != ":memory:", !path.hasPrefix("file:") else { return }
        let created = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0o600)
        if created >= 0 {
            Glibc.close(created)
        } else if errno != EEXIST {
            throw StoreError(.unavailable, "cannot create SQLite database \(path): \(String(cString: strerror(errno)))")
        }
        for file in [path, path + "-wal", path + "-shm"] {
            var status = stat()
            guard stat(file, &status) == 0 else { continue }
            let mode = status.st_mode & 0o777
            guard mode & 0o077 != 0 else { continue }
            guard chmod(file, mode & 0o700) == 0 else {
                throw StoreError(.unavailable, "cannot make \(file) private (chmod): \(String(cString: strerror(errno)))")
            }
        }
    }

    public func withConnection<T>(_ body: (any SQLConnection) throws(StoreError) -> T) throws(StoreError) -> T {
        let result: Result<T, StoreError> = self.connection.withLockedValue { connection in
            guard let connection else { return .failure(StoreError(.unavailable, "the SQLite database is closed")) }
            do throws(StoreError) { return .success(try body(connection)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    public func withTransaction<T>(_ body: (any SQLConnection) throws(StoreError) -> T) throws(StoreError) -> T {
        try self.withConnection { connection throws(StoreError) in
            try connection.executeScript("BEGIN IMMEDIATE")
            do throws(StoreError) {
                let result = try body(connection)
                try connection.executeScript("COMMIT")
                return result
            } catch {
                try? connection.executeScript("ROLLBACK")
                throw error
            }
        }
    }

    public func close() {
        self.checkpointer.cancel()
        self.connection.withLockedValue { $0 = nil }
    }
}

/// Checkpoints the WAL once a second on its own connection and queue.
private final class Checkpointer: Sendable {
    // Unchecked: a dispatch source may be cancelled from any thread.
    private nonisolated(unsafe) let timer: any DispatchSourceTimer

    init(connection: SQLiteConnection) {
        self.timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "gatehouse.sqlite.checkpoint"))
        self.timer.schedule(deadline: .now() + 1, repeating: 1)
        self.timer.setEventHandler { try? connection.executeScript("PRAGMA wal_checkpoint(PASSIVE)") }
        self.timer.resume()
    }

    func cancel() { self.timer.cancel() }
}

/// An open `sqlite3*` with a cache of prepared statements.
// Unchecked: only used under `SQLiteDatabase`'s lock.
final class SQLiteConnection: SQLConnection, @unchecked Sendable {
    private let handle: OpaquePointer
    private var statements: [String: OpaquePointer] = [:]

    init(path: String) throws(StoreError) {
        var handle: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let status = sqlite3_open_v2(path, &handle, flags, nil)
        guard status == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close_v2(handle)
            throw StoreError(.unavailable, "cannot open SQLite database \(path): \(message)")
        }
        self.handle = handle
        sqlite3_busy_timeout(handle, 5000)
        try self.executeScript("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON")
    }

    deinit {
        for statement in self.statements.values { sqlite3_finalize(statement) }
        sqlite3_close_v2(self.handle)
    }

    func executeScript(_ sql: String) throws(StoreError) {
        var message: UnsafeMutablePointer<CChar>?
        let status = sqlite3_exec(self.handle, sql, nil, nil, &message)
        defer { sqlite3_free(message) }
        guard status == SQLITE_OK else {
            throw self.error(status, message.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(self.handle)))
        }
    }

    func query(_ sql: String, _ parameters: [SQLValue]) throws(StoreError) -> [SQLRow] {
        let statement = try self.prepared(sql)
        defer {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }
        for (index, parameter) in parameters.enumerated() {
            let position = Int32(index + 1)
            let status: Int32
            switch parameter {
            case .null: status = sqlite3_bind_null(statement, position)
            case .integer(let value): status = sqlite3_bind_int64(statement, position, value)
            // SQLITE_TRANSIENT: SQLite copies the bytes, so Swift's temporary C string may die.
            case .text(let value): status = sqlite3_bind_text(statement, position, value, -1, CGatehouseSQLite_transient())
            }
            guard status == SQLITE_OK else { throw self.error(status, "binding parameter \(position)") }
        }
        var rows: [SQLRow] = []
        while true {
            let status = sqlite3_step(statement)
            if status == SQLITE_DONE { break }
            guard status == SQLITE_ROW else { throw self.error(status, String(cString: sqlite3_errmsg(self.handle))) }
            var values: [SQLValue] = []
            for column in 0..<sqlite3_column_count(statement) {
                switch sqlite3_column_type(statement, column) {
                case SQLITE_NULL: values.append(.null)
                case SQLITE_INTEGER: values.append(.integer(sqlite3_column_int64(statement, column)))
                default: values.append(.text(sqlite3_column_text(statement, column).map { String(cString: $0) } ?? ""))
                }
            }
            rows.append(SQLRow(values: values))
        }
        return rows
    }

    /// The statement for `sql` (`$n` parameters become SQLite's numbered `?n`), prepared once.
    private func prepared(_ sql: String) throws(StoreError) -> OpaquePointer {
        if let statement = self.statements[sql] { return statement }
        var statement: OpaquePointer?
        let status = sqlite3_prepare_v2(self.handle, sql.replacingDollarParameters(), -1, &statement, nil)
        guard status == SQLITE_OK, let statement else { throw self.error(status, String(cString: sqlite3_errmsg(self.handle))) }
        self.statements[sql] = statement
        return statement
    }

    private func error(_ status: Int32, _ message: String) -> StoreError {
        switch status & 0xFF {
        // SQLITE_CONSTRAINT_UNIQUE (2067) and _PRIMARYKEY (1555) are macros Swift cannot see.
        case SQLITE_CONSTRAINT where [2067, 1555].contains(sqlite3_extended_errcode(self.handle)):
            return StoreError(.uniqueViolation, "SQLite: \(message)")
        case SQLITE_BUSY, SQLITE_LOCKED, SQLITE_CANTOPEN, SQLITE_IOERR, SQLITE_FULL:
            return StoreError(.unavailable, "SQLite: \(message)")
        default:
            return StoreError(.failed, "SQLite: \(message)")
        }
    }
}

extension String {
    /// `$1` → `?1`: the store writes PostgreSQL's parameter syntax; SQLite numbers them as `?NNN`.
    func replacingDollarParameters() -> String {
        String(self.map { $0 == "$" ? "?" : $0 })
    }
}
