// SPDX-License-Identifier: Apache-2.0
import GatehouseConfig
import NIOCore
import NIOConcurrencyHelpers
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Ended sessions, whose access tokens the gateway refuses (`revoked`) until they expire.
///
/// Feeds (the co-located issuer, a store follower, the HTTP poller) publish here; every event loop
/// of the gateway keeps its own copy (`RevocationList`), filled by a task on that loop, so the
/// per-request check is one dictionary lookup with no lock. Entries leave once every token they
/// cover has expired, allowing for the verifier's leeway.
public final class RevocationBoard: Sendable {
    /// One ended session: its `sid` and when (seconds since the epoch) its last access token expires.
    public struct Entry: Sendable, Equatable {
        public var sessionID: String
        public var expiresAt: Double

        public init(sessionID: String, expiresAt: Double) {
            self.sessionID = sessionID
            self.expiresAt = expiresAt
        }
    }

    private struct State {
        var entries: [String: Double] = [:]
        var lists: [NIOLoopBound<RevocationList>] = []
        var feeds = 0
        var loadedFeeds: Set<Int> = []
        var nextPrune = 0.0
    }

    private let state = NIOLockedValueBox(State())
    private let errors = Atomic<Int>(0)
    /// How long past `expiresAt` an entry is kept: the largest leeway a provider grants.
    let retention: Double

    public init(retention: Duration = .seconds(30)) {
        self.retention = retention.seconds
    }

    /// Adds ended sessions; every event loop has them within one task hop.
    public func publish(_ batch: [Entry]) {
        guard !batch.isEmpty else { return }
        let now = currentTime()
        let lists = self.state.withLockedValue { state in
            for entry in batch where entry.expiresAt + self.retention > now {
                state.entries[entry.sessionID] = max(state.entries[entry.sessionID] ?? 0, entry.expiresAt)
            }
            if now >= state.nextPrune {
                state.entries = state.entries.filter { $0.value + self.retention > now }
                state.nextPrune = now + 10
            }
            return state.lists
        }
        for list in lists {
            list.eventLoop.execute { list.value.add(batch) }
        }
    }

    /// Whether the board holds `sessionID` (a lock: for the issuer's endpoints, not the gateway's
    /// per-request path, which reads its loop's copy).
    public func contains(_ sessionID: String) -> Bool {
        self.state.withLockedValue { $0.entries[sessionID] != nil }
    }

    /// Sessions the board holds now.
    public var count: Int { self.state.withLockedValue { $0.entries.count } }

    /// Feed pages or connections that failed (`gatehouse_revocation_feed_errors_total`).
    public var feedErrors: Int { self.errors.load(ordering: .relaxed) }

    /// A feed failed once: unreachable, or a page that is malformed, too large or out of range.
    public func countFeedError() {
        self.errors.add(1, ordering: .relaxed)
    }

    // MARK: Readiness

    /// A feed that must load once before the gateway reports ready; call `loaded(feed:)` after
    /// each complete load.
    public func registerFeed() -> Int {
        self.state.withLockedValue { state in
            state.feeds += 1
            return state.feeds
        }
    }

    public func loaded(feed: Int) {
        self.state.withLockedValue { _ = $0.loadedFeeds.insert(feed) }
    }

    /// Every registered feed has loaded once.
    public var isReady: Bool { self.state.withLockedValue { $0.loadedFeeds.count == $0.feeds } }

    // MARK: Event loops

    /// A copy for `eventLoop` (called on it), with every entry published so far; later ones follow.
    package func makeList(on eventLoop: any EventLoop) -> NIOLoopBound<RevocationList> {
        let list = NIOLoopBound(RevocationList(retention: self.retention), eventLoop: eventLoop)
        let entries = self.state.withLockedValue { state in
            state.lists.append(list)
            return state.entries
        }
        list.value.add(entries.map { Entry(sessionID: $0.key, expiresAt: $0.value) })
        return list
    }
}

/// One event loop's copy of the board. Confined to its loop: no locks.
package final class RevocationList {
    private var entries: [String: Double] = [:]
    private let retention: Double
    /// Counts the batches added: a holder of a long-lived session (a WebSocket tunnel) looks it
    /// up again only when this moved.
    package private(set) var revision = 0

    package init(retention: Double) { self.retention = retention }

    package func add(_ batch: [RevocationBoard.Entry]) {
        for entry in batch { self.entries[entry.sessionID] = max(self.entries[entry.sessionID] ?? 0, entry.expiresAt) }
        self.revision += 1
    }

    /// Whether tokens of `sessionID` are refused. An entry past its expiry changes nothing: the
    /// tokens it covered are refused as expired anyway.
    @inline(__always)
    package func contains(_ sessionID: String) -> Bool {
        !self.entries.isEmpty && self.entries[sessionID] != nil
    }

    /// Drops entries whose tokens have all expired (called by the loop's sweep now and then).
    package func prune(now: Double) {
        guard !self.entries.isEmpty else { return }
        self.entries = self.entries.filter { $0.value + self.retention > now }
    }
}

@available(*, unavailable)
extension RevocationList: Sendable {}
