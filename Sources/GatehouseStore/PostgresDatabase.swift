// SPDX-License-Identifier: Apache-2.0
private import CGatehouseLibPQ
import NIOConcurrencyHelpers
#if canImport(Glibc)
import Glibc
#endif

/// PostgreSQL through libpq: a small pool of connections to any conninfo string or URI.
///
/// After the server restarts, pooled connections are dead; the first statement on one fails with
/// the connection broken. Such a failure before any statement of the unit of work succeeded is
/// retried once on a fresh connection (nothing was done, so nothing is done twice), and the idle
/// connections are dropped. A failure later in a unit is reported (`unavailable`): its
/// transaction did not commit.
public final class PostgresDatabase: SQLDatabase {
    public var dialect: SQLDialect { .postgres }
    let conninfo: String
    private let maximumConnections: Int
    private let idle = NIOLockedValueBox<[PostgresConnection]>([])

    /// Connects once now, so that a wrong URL or an unreachable server is reported at start.
    public init(conninfo: String, maximumConnections: Int = 4) throws(StoreError) {
        self.conninfo = conninfo
        self.maximumConnections = maximumConnections
        let first = try PostgresConnection(conninfo: conninfo)
        self.idle.withLockedValue { $0.append(first) }
    }

    public func withConnection<T>(_ body: (any SQLConnection) throws(StoreError) -> T) throws(StoreError) -> T {
        try self.run(body)
    }

    public func withTransaction<T>(_ body: (any SQLConnection) throws(StoreError) -> T) throws(StoreError) -> T {
        try self.run { connection throws(StoreError) in
            try connection.executeScript("BEGIN")
            do throws(StoreError) {
                let result = try body(connection)
                try connection.executeScript("COMMIT")
                return result
            } catch {
                if error.kind != .unavailable { try? connection.executeScript("ROLLBACK") }
                throw error
            }
        }
    }

    private func run<T>(_ body: (PostgresConnection) throws(StoreError) -> T) throws(StoreError) -> T {
        var fresh = false
        while true {
            let connection = try fresh ? PostgresConnection(conninfo: self.conninfo) : self.checkOut()
            connection.succeeded = 0
            do throws(StoreError) {
                let result = try body(connection)
                self.checkIn(connection)
                return result
            } catch {
                guard connection.isBroken else {
                    self.checkIn(connection)
                    throw error
                }
                // The server went away (restart, failover): the other idle connections are
                // likely dead too.
                self.idle.withLockedValue { $0.removeAll() }
                guard !fresh, connection.succeeded == 0 else { throw error }
                fresh = true
            }
        }
    }

    private func checkOut() throws(StoreError) -> PostgresConnection {
        if let connection = self.idle.withLockedValue({ $0.popLast() }) { return connection }
        return try PostgresConnection(conninfo: self.conninfo)
    }

    private func checkIn(_ connection: PostgresConnection) {
        guard !connection.isBroken else { return }
        self.idle.withLockedValue { idle in
            if idle.count < self.maximumConnections { idle.append(connection) }
        }
    }

    public func close() {
        self.idle.withLockedValue { $0.removeAll() }
    }
}

/// One `PGconn*`, used by one thread at a time.
// Unchecked: the pool hands a connection to one thread at a time.
final class PostgresConnection: SQLConnection, @unchecked Sendable {
    private let handle: OpaquePointer
    /// Statements that succeeded since the connection was checked out (see `PostgresDatabase`).
    var succeeded = 0

    init(conninfo: String) throws(StoreError) {
        guard let handle = PQconnectdb(conninfo) else { throw StoreError(.unavailable, "libpq: out of memory") }
        guard PQstatus(handle) == CONNECTION_OK else {
            let message = Self.firstLine(PQerrorMessage(handle))
            PQfinish(handle)
            throw StoreError(.unavailable, "cannot connect to PostgreSQL: \(message)")
        }
        self.handle = handle
        // NOTICEs (`… already exists, skipping`) would go to stderr.
        try self.executeScript("SET client_min_messages TO warning")
    }

    deinit { PQfinish(self.handle) }

    var isBroken: Bool { PQstatus(self.handle) != CONNECTION_OK }

    func executeScript(_ sql: String) throws(StoreError) {
        let result = PQexec(self.handle, sql)
        defer { PQclear(result) }
        try self.check(result)
    }

    func query(_ sql: String, _ parameters: [SQLValue]) throws(StoreError) -> [SQLRow] {
        // libpq reads the values during the call only; owned copies keep them alive until it returns.
        let values: [UnsafeMutablePointer<CChar>?] = parameters.map { parameter in
            switch parameter {
            case .null: return nil
            case .integer(let value): return strdup(String(value))
            case .text(let value): return strdup(value)
            }
        }
        defer { values.forEach { free($0) } }
        let result = values.map { UnsafePointer($0) }.withUnsafeBufferPointer { pointers in
            PQexecParams(self.handle, sql, Int32(parameters.count), nil, pointers.baseAddress, nil, nil, 0)
        }
        defer { PQclear(result) }
        try self.check(result)
        var rows: [SQLRow] = []
        let columns = PQnfields(result)
        for row in 0..<PQntuples(result) {
            var values: [SQLValue] = []
            for column in 0..<columns {
                if PQgetisnull(result, row, column) == 1 {
                    values.append(.null)
                } else {
                    values.append(.text(String(cString: PQgetvalue(result, row, column))))
                }
            }
            rows.append(SQLRow(values: values))
        }
        return rows
    }

    private func check(_ result: OpaquePointer?) throws(StoreError) {
        let status = result.map { PQresultStatus($0) } ?? PGRES_FATAL_ERROR
        if status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK {
            self.succeeded += 1
            return
        }
        let message = Self.firstLine(result.flatMap { PQresultErrorMessage($0) } ?? PQerrorMessage(self.handle))
        if self.isBroken { throw StoreError(.unavailable, "PostgreSQL connection lost: \(message)") }
        let sqlState = result.flatMap { PQresultErrorField($0, Int32(UInt8(ascii: "C"))) }.map { String(cString: $0) }
        switch sqlState {
        case "23505": throw StoreError(.uniqueViolation, "PostgreSQL: \(message)")
        // Class 08 (connection exception), 57P (operator intervention: shutdown, restart), 53 (resources).
        case let state? where state.hasPrefix("08") || state.hasPrefix("57P") || state.hasPrefix("53"):
            throw StoreError(.unavailable, "PostgreSQL: \(message)")
        default: throw StoreError(.failed, "PostgreSQL: \(message)")
        }
    }

    /// Waits up to `milliseconds` for a `NOTIFY` on a channel this connection listens to; true
    /// when one (or more) arrived. Throws `unavailable` when the connection is lost.
    func awaitNotification(milliseconds: Int32) throws(StoreError) -> Bool {
        var received = false
        while let notification = PQnotifies(self.handle) {
            PQfreemem(notification)
            received = true
        }
        if received { return true }
        var descriptor = pollfd(fd: PQsocket(self.handle), events: Int16(POLLIN), revents: 0)
        guard descriptor.fd >= 0 else { throw StoreError(.unavailable, "PostgreSQL connection lost") }
        let ready = poll(&descriptor, 1, milliseconds)
        guard ready > 0 else { return false }
        guard PQconsumeInput(self.handle) == 1, !self.isBroken else {
            throw StoreError(.unavailable, "PostgreSQL connection lost: \(Self.firstLine(PQerrorMessage(self.handle)))")
        }
        while let notification = PQnotifies(self.handle) {
            PQfreemem(notification)
            received = true
        }
        return received
    }

    private static func firstLine(_ message: UnsafePointer<CChar>?) -> String {
        let text = message.map { String(cString: $0) } ?? "unknown error"
        return String(text.split(separator: "\n").first ?? "unknown error")
    }
}
