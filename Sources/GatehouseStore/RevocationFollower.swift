// SPDX-License-Identifier: Apache-2.0
import Dispatch
import class Foundation.Thread
import Logging
import NIOConcurrencyHelpers
#if canImport(Glibc)
import Glibc
#endif

/// Follows a store's revocation log on a thread of its own: loads every row after its cursor,
/// hands them to `deliver`, then waits and loads again — woken at once by PostgreSQL's `NOTIFY`
/// where it can listen, else every `interval` (SQLite). After any failure (the server restarted,
/// the file is locked) it reconnects with backoff and loads from its cursor, so nothing that
/// ended meanwhile is missed; the first load after start returns every revocation still relevant.
public final class RevocationFollower: Sendable {
    /// Where the log is read.
    public enum Source: Sendable {
        /// The issuer's own store: listened to when it is PostgreSQL, polled when it is SQLite.
        case store(Store)
        /// A PostgreSQL database by conninfo or URI (`verify.revocation: {feed: postgres}`).
        case postgres(String)

        /// For logs: never the conninfo, which may hold a password.
        var name: String {
            switch self {
            case .store: "store"
            case .postgres: "postgres"
            }
        }
    }

    /// Rows read per query; a longer backlog is read in several.
    static let pageSize = 10_000
    /// Static, as the gateway's loggers are (see `JWKSRefresher.logger`).
    private static let logger = Logger(label: "gatehouse.revocation")

    private let stopped = NIOLockedValueBox(false)
    /// Left when the thread ends.
    private let running = DispatchGroup()

    /// Starts following. `deliver` gets each batch of new rows; `loaded` is called after every
    /// load that reached the end of the log (the first one makes the feed ready).
    public init(
        source: Source, interval: Duration, deliver: @escaping @Sendable ([RevocationRecord]) -> Void,
        loaded: @escaping @Sendable () -> Void
    ) {
        let stopped = self.stopped
        let running = self.running
        running.enter()
        let thread = Thread {
            Self.follow(source: source, interval: interval, stopped: stopped, deliver: deliver, loaded: loaded)
            running.leave()
        }
        thread.name = "gatehouse-revocations"
        thread.start()
    }

    /// Stops within one wait (`interval`, or a second while listening).
    public func stop() {
        self.stopped.withLockedValue { $0 = true }
    }

    /// Stops, and returns once the thread has ended (within one wait, or one backoff of at most
    /// 5 s while the store is failing): after it, the follower no longer touches the store.
    public func stopAndWait() async {
        self.stop()
        await withCheckedContinuation { continuation in
            self.running.notify(queue: .global()) { continuation.resume() }
        }
    }

    private static func follow(
        source: Source, interval: Duration, stopped: NIOLockedValueBox<Bool>, deliver: @Sendable ([RevocationRecord]) -> Void,
        loaded: @Sendable () -> Void
    ) {
        let conninfo: String?
        switch source {
        case .postgres(let url): conninfo = url
        case .store(let store): conninfo = (store.database as? PostgresDatabase)?.conninfo
        }
        let waitMilliseconds = Int32(clamping: interval.components.seconds * 1000 + interval.components.attoseconds / 1_000_000_000_000_000)
        var cursor: Int64 = 0
        var listener: PostgresConnection?
        var backoff: Int32 = 250
        // Failures in a row: the first is logged, the rest only counted until the feed recovers.
        var failures = 0
        while !stopped.withLockedValue({ $0 }) {
            do throws(StoreError) {
                // Read the log through the listening connection when there is one (LISTEN before
                // the first read, so that nothing committed in between goes unnoticed).
                if let conninfo, listener == nil {
                    let connection = try PostgresConnection(conninfo: conninfo)
                    try connection.executeScript("LISTEN \(Store.revocationChannel)")
                    listener = connection
                }
                while true {
                    let rows: [RevocationRecord]
                    if let listener {
                        rows = try Store.revocations(after: cursor, limit: Self.pageSize, on: listener)
                    } else if case .store(let store) = source {
                        rows = try store.revocations(after: cursor, limit: Self.pageSize)
                    } else {
                        rows = []
                    }
                    if let last = rows.last {
                        cursor = last.seq
                        deliver(rows)
                    }
                    if rows.count < Self.pageSize { break }
                }
                loaded()
                if failures > 0 {
                    Self.logger.info("revocation feed reconnected", metadata: ["source": "\(source.name)", "failures": "\(failures)"])
                    failures = 0
                }
                backoff = 250
                if let listener {
                    // Woken by NOTIFY; reads again at least once a second regardless.
                    _ = try listener.awaitNotification(milliseconds: min(waitMilliseconds, 1000))
                } else {
                    usleep(UInt32(waitMilliseconds) * 1000)
                }
            } catch {
                if failures == 0 {
                    Self.logger.warning(
                        "revocation feed failed; the last good list keeps serving, reconnecting",
                        metadata: ["source": "\(source.name)", "error": "\(error)"]
                    )
                }
                failures += 1
                listener = nil
                usleep(UInt32(backoff) * 1000)
                backoff = min(backoff * 2, 5000)
            }
        }
    }
}
