// SPDX-License-Identifier: Apache-2.0
public import GatehouseConfig
public import GatehouseHTTP
import GatehouseJOSE
import Logging
public import NIOCore
public import NIOSSL

/// The `poll` revocation feed, for gateways that may not reach the database: asks the issuer's
/// `GET /auth/revocations?since=CURSOR` (bearer `issuer.revocation_secret`) every `interval` and
/// publishes what it answers. The first request (cursor 0) returns every revocation still
/// relevant, so a gateway that was down misses nothing; a long backlog comes in pages (`more`).
/// While the issuer cannot be reached, or answers a page that is not a valid one, what was loaded
/// keeps being enforced and polling goes on; each failure is logged and counted. Confined to its
/// event loop.
public final class RevocationPoller: @unchecked Sendable {
    private let url: UpstreamURL
    private let tls: NIOSSLContext?
    private let authorization: String
    private let interval: TimeAmount
    private let board: RevocationBoard
    private let feed: Int
    private let loop: any EventLoop
    private var cursor: Int64 = 0
    private var next: Scheduled<Void>?
    private var stopped = false
    private static let logger = Logger(label: "gatehouse.revocation")
    /// Failures in a row: the first is logged, the rest only counted until the feed recovers.
    private var failures = 0

    /// Starts polling `url` at once; `tls` is required for an https `url`.
    public init(url: UpstreamURL, secret: String, interval: Duration, tls: NIOSSLContext?, board: RevocationBoard, loop: any EventLoop) {
        self.url = url
        self.tls = tls
        self.authorization = "Bearer " + secret
        self.interval = .nanoseconds(Int64(interval.seconds * 1e9))
        self.board = board
        self.feed = board.registerFeed()
        self.loop = loop
        loop.execute { self.poll() }
    }

    /// From `verify.revocation`'s poll settings: over https, trusting `caFile` or else the
    /// system's bundle, so that the secret and the list travel encrypted to a server whose name
    /// was checked. Throws when the trust roots cannot be loaded.
    public convenience init(
        url: UpstreamURL, secret: String, interval: Duration, caFile: String?, board: RevocationBoard, loop: any EventLoop
    ) throws(TLSContexts.SetupError) {
        let tls = url.scheme == "https" ? try TLSContexts.client(caFile: caFile) : nil
        self.init(url: url, secret: secret, interval: interval, tls: tls, board: board, loop: loop)
    }

    public func stop() {
        self.loop.execute {
            self.stopped = true
            self.next?.cancel()
        }
    }

    private func poll(page number: Int = 1) {
        guard !self.stopped else { return }
        let target = (self.url.basePath.isEmpty ? "/" : self.url.basePath) + "?since=\(self.cursor)"
        HTTPFetch.get(
            self.url, target: target, authorization: self.authorization, tls: self.tls, on: self.loop, timeout: .seconds(5),
            maximumBytes: 16 << 20
        ).whenComplete { result in
            let page: Page
            do { page = try Self.page(result.get().text, after: self.cursor, now: currentTime()) } catch {
                self.board.countFeedError()
                if self.failures == 0 {
                    Self.logger.warning("revocation feed failed; the last good list keeps serving", metadata: ["url": "\(self.url)", "error": "\(error)"])
                }
                self.failures += 1
                self.schedule(in: self.interval)
                return
            }
            if self.failures > 0 {
                Self.logger.info("revocation feed recovered", metadata: ["url": "\(self.url)", "failures": "\(self.failures)"])
                self.failures = 0
            }
            self.board.publish(page.entries)
            self.cursor = max(self.cursor, page.cursor)
            if page.more, number < Self.maximumPagesInARow {
                self.poll(page: number + 1)
            } else if page.more {
                self.schedule(in: self.interval)
            } else {
                self.board.loaded(feed: self.feed)
                self.schedule(in: self.interval)
            }
        }
    }

    private func schedule(in delay: TimeAmount) {
        guard !self.stopped else { return }
        self.next = self.loop.scheduleTask(in: delay) { self.poll() }
    }

    struct Page {
        var cursor: Int64
        var entries: [RevocationBoard.Entry]
        var more: Bool
    }

    /// Why a page was refused.
    struct InvalidPage: Error, CustomStringConvertible {
        let description: String
    }

    /// The most entries a page may hold (the issuer answers 10 000 at most).
    static let maximumEntries = 10_000
    /// Pages fetched back to back (`more`) before the next waits `interval`: a million entries.
    static let maximumPagesInARow = 100
    /// The furthest ahead an entry's `exp` may be: an access token's lifetime is far shorter, and
    /// an entry is kept until its `exp`.
    static let longestEntry = 366.0 * 86_400

    /// `{"cursor": N, "revocations": [{"sid", "exp"}], "more": bool}`, every field checked before it
    /// is converted: the cursor an integer in 0..<2^53 (where a double still counts exactly), past
    /// `after` when `more` is true (else the feed would be asked the same page without end), each
    /// `sid` 1 to 128 printable ASCII bytes, each `exp` a time in seconds after the epoch and at most
    /// `longestEntry` after `now`, `more` a boolean when present.
    static func page(_ text: String, after: Int64, now: Double) throws(InvalidPage) -> Page {
        guard case .object(let object)? = try? JSONReader.parse(text) else { throw InvalidPage(description: "not a JSON object") }
        guard let cursor = object["cursor"]?.numberValue, cursor >= 0, cursor < 9_007_199_254_740_992, cursor.rounded() == cursor else {
            throw InvalidPage(description: "cursor is not an integer from 0 to 2^53")
        }
        guard let list = object["revocations"]?.arrayValue else { throw InvalidPage(description: "revocations is not an array") }
        guard list.count <= Self.maximumEntries else { throw InvalidPage(description: "more than \(Self.maximumEntries) revocations") }
        var entries: [RevocationBoard.Entry] = []
        entries.reserveCapacity(list.count)
        for (index, item) in list.enumerated() {
            guard let sid = item.objectValue?["sid"]?.stringValue, (1...128).contains(sid.utf8.count),
                sid.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
            else { throw InvalidPage(description: "revocations[\(index)].sid is not 1 to 128 printable ASCII bytes") }
            guard let exp = item.objectValue?["exp"]?.numberValue, exp > 0, exp <= now + Self.longestEntry else {
                throw InvalidPage(description: "revocations[\(index)].exp is not a time in seconds")
            }
            entries.append(RevocationBoard.Entry(sessionID: sid, expiresAt: exp))
        }
        var more = false
        switch object["more"] {
        case nil: break
        case .bool(let value)?: more = value
        default: throw InvalidPage(description: "more is not a boolean")
        }
        guard !more || Int64(cursor) > after else { throw InvalidPage(description: "more is true but the cursor did not advance") }
        return Page(cursor: Int64(cursor), entries: entries, more: more)
    }
}
