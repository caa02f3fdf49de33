// SPDX-License-Identifier: Apache-2.0
public import GatehouseConfig
import GatehouseJOSE
public import NIOCore
public import NIOSSL

/// The `poll` revocation feed, for gateways that may not reach the database: asks the issuer's
/// `GET /auth/revocations?since=CURSOR` (bearer `issuer.revocation_secret`) every `interval` and
/// publishes what it answers. The first request (cursor 0) returns every revocation still
/// relevant, so a gateway that was down misses nothing; a long backlog comes in pages (`more`).
/// While the issuer cannot be reached, what was loaded keeps being enforced and polling goes on.
/// Confined to its event loop.
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

    private func poll() {
        guard !self.stopped else { return }
        let target = (self.url.basePath.isEmpty ? "/" : self.url.basePath) + "?since=\(self.cursor)"
        HTTPFetch.get(
            self.url, target: target, authorization: self.authorization, tls: self.tls, on: self.loop, timeout: .seconds(5),
            maximumBytes: 16 << 20
        ).whenComplete { result in
            guard case .success(let document) = result, let page = Self.page(document.text) else {
                self.schedule(in: self.interval)
                return
            }
            self.board.publish(page.entries)
            self.cursor = max(self.cursor, page.cursor)
            if page.more {
                self.poll()
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

    /// `{"cursor": N, "revocations": [{"sid", "exp"}], "more": bool}`; nil when it is not that.
    static func page(_ text: String) -> (cursor: Int64, entries: [RevocationBoard.Entry], more: Bool)? {
        guard case .object(let object)? = try? JSONReader.parse(text), let cursor = object["cursor"]?.numberValue,
            let list = object["revocations"]?.arrayValue
        else { return nil }
        var entries: [RevocationBoard.Entry] = []
        entries.reserveCapacity(list.count)
        for item in list {
            guard let sid = item.objectValue?["sid"]?.stringValue, let exp = item.objectValue?["exp"]?.numberValue else { return nil }
            entries.append(RevocationBoard.Entry(sessionID: sid, expiresAt: exp))
        }
        let more: Bool
        if case .bool(let value)? = object["more"] { more = value } else { more = false }
        return (Int64(cursor), entries, more)
    }
}
